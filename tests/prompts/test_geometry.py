"""Prompts move with the image through the preprocessing of both profiles (data.transforms geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.data.sample import structure_mask
from medsam_echo.data.transforms import preprocess
from medsam_echo.models.profile import get_profile
from medsam_echo.prompts.boxes import box_from_mask
from medsam_echo.prompts.points import most_interior_point
from medsam_echo.prompts.policies import PromptPolicyConfig, make_prompt_batch

STRUCTS = ("lv_endo", "myo", "la")


def _camus(shape: tuple[int, int]) -> np.ndarray:
    """A non-square CAMUS-like label map drawn at any size (same anatomy in relative coordinates)."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w] / np.array([h, w])[:, None, None]
    r = ((xx - 0.55) / 0.25) ** 2 + ((yy - 0.45) / 0.35) ** 2
    label = np.zeros(shape, np.uint8)
    label[(r <= 1.6) & (yy <= 0.45)] = 2
    label[(r <= 1.0) & (yy <= 0.45)] = 1
    label[(np.abs(xx - 0.55) <= 0.2) & (yy > 0.45) & (yy <= 0.7)] = 3
    return label


@pytest.mark.parametrize("profile", ["sam", "medsam"])
@pytest.mark.parametrize("shape", [(56, 40), (150, 210), (300, 200)])
def test_boxes_follow_the_resized_structure(profile, shape):
    label = _camus(shape)
    ready = preprocess(label.astype(np.float32), get_profile(profile, 128), label)
    # Upsampling keeps every pixel (error < 1 px); nearest downsampling skips rows / columns, which can
    # move the extreme pixel of a curved boundary by a little more.
    tolerance = 1.0 if min(ready.geometry.scale) >= 1 else 2.0
    for name in STRUCTS:
        mapped = ready.geometry.boxes_to_input(box_from_mask(structure_mask(label, name))[None])[0]
        resized = box_from_mask(structure_mask(ready.label, name))
        assert np.all(np.abs(mapped - resized) <= tolerance), (profile, shape, name, mapped, resized)


@pytest.mark.parametrize("profile", ["sam", "medsam"])
@pytest.mark.parametrize("shape", [(56, 40), (150, 210), (300, 200)])
def test_interior_points_land_in_the_same_structure(profile, shape):
    label = _camus(shape)
    ready = preprocess(label.astype(np.float32), get_profile(profile, 128), label)
    for name in STRUCTS:
        point = most_interior_point(structure_mask(label, name))[None]
        x, y = np.rint(ready.geometry.points_to_input(point)[0]).astype(int)
        assert structure_mask(ready.label, name)[y, x]
        assert np.allclose(ready.geometry.points_to_original(ready.geometry.points_to_input(point)), point)


@pytest.mark.parametrize("profile", ["sam", "medsam"])
def test_policy_prompts_are_in_model_input_px(profile):
    """Every sampled point lands in its structure of the preprocessed (upsampled) label map."""
    label = _camus((56, 40))
    ready = preprocess(label.astype(np.float32), get_profile(profile, 128), label)
    config = PromptPolicyConfig(policy="box_points", n_pos=5, n_neg=0, jitter_amount=0)
    prompts, inputs = make_prompt_batch(
        [label], STRUCTS, np.random.default_rng(0), config, geometries=[ready.geometry]
    )
    for i, name in enumerate(STRUCTS):
        xy = np.rint(inputs["input_points"][0, i].numpy()).astype(int)
        assert structure_mask(ready.label, name)[xy[:, 1], xy[:, 0]].all()
        resized = box_from_mask(structure_mask(ready.label, name))
        assert np.all(np.abs(inputs["input_boxes"][0, i].numpy() - resized) <= 1.0)
    assert inputs["input_boxes"].max() <= 127
