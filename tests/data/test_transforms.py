"""Preprocessing: exact label round trip, prompts that move with the image, profile intensities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medsam_echo.data.transforms import make_geometry, preprocess
from medsam_echo.models.profile import IMAGENET_MEAN_255, IMAGENET_STD_255, get_profile

PROFILES = ["sam", "medsam"]


def _blob_label(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 4, (h, w)).astype(np.uint8)  # worst case: every pixel its own region
    label[h // 4 : h // 2, w // 3 : w // 2] = 1
    return label


@settings(max_examples=40, deadline=None)
@given(h=st.integers(5, 64), w=st.integers(5, 64), name=st.sampled_from(PROFILES), seed=st.integers(0, 99))
def test_label_round_trip_is_exact_for_both_profiles(h, w, name, seed):
    label = _blob_label(h, w, seed)
    out = preprocess(np.zeros((h, w), np.uint8), get_profile(name, 64), label)
    assert out.label.shape == (64, 64) and out.label.dtype == np.uint8
    np.testing.assert_array_equal(out.geometry.to_original(out.label), label)


@pytest.mark.parametrize("name", PROFILES)
def test_round_trip_on_torch_masks_and_batches(name):
    label = _blob_label(37, 53, 1)
    out = preprocess(np.zeros((37, 53)), get_profile(name, 128), label)
    batch = torch.from_numpy(np.stack([out.label, out.label]))
    back = out.geometry.to_original(batch)
    assert isinstance(back, torch.Tensor) and back.shape == (2, 37, 53)
    np.testing.assert_array_equal(back[1].numpy(), label)


def test_sam_profile_keeps_aspect_and_pads_bottom_right():
    out = preprocess(np.full((50, 100), 7, np.uint8), get_profile("sam", 64))
    assert out.geometry.valid_size == (32, 64)
    np.testing.assert_array_equal(out.geometry.valid_box, [0, 0, 63, 31])
    assert np.all(out.pixel_values[:, 32:, :] == 0)
    expected = (7 - np.array(IMAGENET_MEAN_255)) / np.array(IMAGENET_STD_255)
    np.testing.assert_allclose(out.pixel_values[:, 5, 5], expected, rtol=1e-5)


def test_medsam_profile_stretches_and_min_max_normalises_without_imagenet_stats():
    image = np.tile(np.arange(0, 200, 2, dtype=np.uint16), (50, 1))  # 50 x 100 ramp, uint16
    out = preprocess(image, get_profile("medsam", 64))
    assert out.geometry.valid_size == (64, 64)
    assert out.pixel_values.dtype == np.float32 and out.pixel_values.shape == (3, 64, 64)
    assert out.pixel_values.min() == pytest.approx(0.0) and out.pixel_values.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(out.pixel_values[0], out.pixel_values[2])  # grayscale -> 3 channels


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_sam_profile_maps_non_uint8_inputs_to_0_255_before_imagenet(dtype):
    image = np.linspace(0, 1, 64 * 64).reshape(64, 64).astype(dtype) * (1000 if dtype == np.uint16 else 1)
    out = preprocess(image.astype(dtype), get_profile("sam", 64))
    low = (0 - IMAGENET_MEAN_255[0]) / IMAGENET_STD_255[0]
    high = (255 - IMAGENET_MEAN_255[0]) / IMAGENET_STD_255[0]
    assert out.pixel_values[0].min() == pytest.approx(low, abs=1e-3)
    assert out.pixel_values[0].max() == pytest.approx(high, abs=1e-3)


@pytest.mark.parametrize("name", PROFILES)
def test_points_and_boxes_move_with_the_image(name):
    label = np.zeros((45, 70), np.uint8)
    label[10:30, 20:41] = 1  # box x 20..40, y 10..29 (inclusive)
    out = preprocess(np.zeros(label.shape), get_profile(name, 128), label)
    geometry = out.geometry
    ys, xs = np.nonzero(out.label)
    box_in_input = geometry.boxes_to_input(np.array([[20, 10, 40, 29]]))[0]
    np.testing.assert_allclose(box_in_input, [xs.min(), ys.min(), xs.max(), ys.max()], atol=1.0)
    point = geometry.points_to_input(np.array([[30, 20]]))[0]  # inside the box, (x, y)
    assert out.label[int(round(point[1])), int(round(point[0]))] == 1
    corners = geometry.points_to_input(np.array([[0.0, 0.0], [69.0, 44.0]]))
    assert np.all(corners >= -0.5) and np.all(corners <= np.array(geometry.valid_size[::-1]) - 0.5)


@pytest.mark.parametrize("name", PROFILES)
def test_prompt_maps_are_exact_inverses(name):
    geometry = make_geometry((91, 37), get_profile(name, 256))
    points = np.random.default_rng(0).uniform(0, 36, (20, 2))
    boxes = np.hstack([points[:10], points[10:] + 5])
    np.testing.assert_allclose(geometry.points_to_original(geometry.points_to_input(points)), points)
    np.testing.assert_allclose(geometry.boxes_to_original(geometry.boxes_to_input(boxes)), boxes)
    full = geometry.boxes_to_input(np.array([[0, 0, 36, 90]]))[0]
    np.testing.assert_allclose(full, geometry.valid_box)


@pytest.mark.parametrize("name", PROFILES)
def test_logits_come_back_bilinear_at_original_size_from_any_resolution(name):
    label = _blob_label(60, 40, 2) == 1
    out = preprocess(np.zeros(label.shape), get_profile(name, 128), label.astype(np.uint8))
    logits = np.where(out.label == 1, 8.0, -8.0).astype(np.float32)
    back = out.geometry.to_original(logits)
    assert back.shape == (60, 40) and back.dtype == np.float32
    agreement = ((back > 0) == label).mean()
    assert agreement > 0.9  # random speckle label; boundaries blur, bulk agrees
    low_res = torch.zeros(1, 1, 32, 32, requires_grad=True)
    up = out.geometry.to_original(low_res)
    assert up.shape == (1, 1, 60, 40)
    up.sum().backward()  # stays differentiable for losses at the original resolution
    assert low_res.grad is not None


def test_bad_inputs_are_rejected():
    geometry = make_geometry((20, 30), get_profile("sam", 64))
    with pytest.raises(ValueError, match="label shape"):
        preprocess(np.zeros((20, 30)), get_profile("sam", 64), np.zeros((21, 30), np.uint8))
    with pytest.raises(ValueError, match="integer or bool"):
        preprocess(np.zeros((20, 30)), get_profile("sam", 64), np.zeros((20, 30), np.float32))
    with pytest.raises(ValueError, match=r"expected a prediction \(\.\.\., 64, 64\)"):
        geometry.to_original(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="expected an image"):
        preprocess(np.zeros((20, 30, 4)), get_profile("sam", 64))
