"""SamModel's coordinate convention, one batched decoder call for all structures, and combining them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medsam_echo.data.sample import LABELS
from medsam_echo.models.profile import get_profile
from medsam_echo.prompts.decode import (
    combine_structures,
    decode_candidates,
    make_predict_fn,
    select_best,
)
from medsam_echo.prompts.prompt_set import Prompts, to_model_inputs


def test_prompt_encoder_takes_xy_in_model_input_px(tiny_sam):
    """A point at the centre of embedding cell (row i, column j) gets that cell's positional encoding.

    The tiny model has a 128 px input and a 16 x 16 embedding (8 px cells). The cell centre is at
    model-input px ``x = 8 j + 3.5``, ``y = 8 i + 3.5``: SamModel adds 0.5 and divides by 128 itself.
    """
    grid = tiny_sam.get_image_wide_positional_embeddings()[0]  # (C, 16, 16)
    i, j = 3, 12
    point = torch.tensor([[[[8 * j + 3.5, 8 * i + 3.5]]]])
    with torch.no_grad():
        sparse, _ = tiny_sam.get_prompt_embeddings(
            input_points=point, input_labels=torch.ones(1, 1, 1, dtype=torch.long)
        )
    encoding = sparse[0, 0, 0] - tiny_sam.prompt_encoder.point_embed[1].weight[0]
    assert torch.allclose(encoding, grid[:, i, j], atol=1e-5)
    assert not torch.allclose(encoding, grid[:, j, i], atol=1e-3)


def _inputs() -> dict[str, torch.Tensor]:
    prompts = Prompts(
        ("lv_endo", "myo", "la"),
        boxes=np.array([[10, 10, 60, 60], [20, 30, 90, 100], [5, 70, 50, 120]], float),
        points=np.array([[[30, 30]], [[25, 40]], [[20, 90]]], float),
        labels=np.ones((3, 1), int),
    )
    return to_model_inputs([prompts, prompts])


@pytest.mark.parametrize("with_masks", [False, True])
def test_batched_decoding_equals_one_structure_at_a_time(tiny_sam, with_masks):
    inputs = _inputs()
    torch.manual_seed(0)
    masks = torch.randn(2, 3, 1, 64, 64) if with_masks else None
    with torch.no_grad():
        embeddings = tiny_sam.get_image_embeddings(torch.randn(2, 3, 128, 128))
        logits, iou = select_best(*decode_candidates(tiny_sam, embeddings, inputs, input_masks=masks))
        assert logits.shape == (2, 3, 64, 64) and iou.shape == (2, 3)
        for i in range(3):
            one = {k: v[:, i : i + 1] for k, v in inputs.items()}
            single, _ = select_best(*decode_candidates(
                tiny_sam, embeddings, one, input_masks=None if masks is None else masks[:, i : i + 1]
            ))
            assert torch.allclose(single[:, 0], logits[:, i], atol=1e-4)


def test_multimask_output_keeps_the_best_scored_mask(tiny_sam):
    inputs = _inputs()
    with torch.no_grad():
        embeddings = tiny_sam.get_image_embeddings(torch.randn(2, 3, 128, 128))
        logits, iou = select_best(*decode_candidates(tiny_sam, embeddings, inputs, multimask_output=True))
        candidates, scores = decode_candidates(tiny_sam, embeddings, inputs, multimask_output=True)
        out = tiny_sam(image_embeddings=embeddings, multimask_output=True, **inputs)
    # the fast decoder (models/fast_decoder.py) sums in another order: equal to SamModel within float rounding
    assert candidates.shape == (2, 3, 3, 64, 64)
    torch.testing.assert_close(scores, out.iou_scores, rtol=1e-4, atol=1e-5)
    best = scores.argmax(-1)
    assert torch.equal(iou, scores.max(-1).values) and torch.equal(best, out.iou_scores.argmax(-1))
    torch.testing.assert_close(logits[1, 2], out.pred_masks[1, 2, best[1, 2]], rtol=1e-4, atol=1e-4)


def _logits(shape, **regions) -> np.ndarray:
    """Logits -5 everywhere, +5 (or the given value) in each named slice region."""
    out = []
    for region in regions.values():
        plane = np.full(shape, -5.0)
        for index, value in region:
            plane[index] = value
        out.append(plane)
    return np.stack(out)


def test_combine_is_argmax_against_background():
    logits = _logits(
        (4, 4),
        lv_endo=[((0, slice(None)), 5.0), ((1, 0), 1.0)],
        myo=[((1, slice(None)), 3.0)],
        la=[((2, slice(None)), 2.0)],
    )
    labels = combine_structures(logits, ("lv_endo", "myo", "la"))
    assert labels[0].tolist() == [LABELS["lv_endo"]] * 4
    assert labels[1].tolist() == [LABELS["myo"]] * 4  # myo's 3.0 beats the cavity's 1.0 at (1, 0)
    assert labels[2].tolist() == [LABELS["la"]] * 4
    assert labels[3].tolist() == [LABELS["background"]] * 4


def _planes(*masks: np.ndarray, value: float = 4.0) -> np.ndarray:
    """``(n, H, W)`` logits: ``value`` inside each mask, ``-value`` outside."""
    return np.stack([np.where(m, value, -value) for m in masks])


def test_lv_epi_fusion_derives_the_myocardium_and_grows_the_epicardium_to_the_cavity():
    """lv_endo + lv_epi + la: myo = epi - cavity, a cavity pixel outside epi stays cavity, LA by logit."""
    epi, cavity, la = np.zeros((3, 8, 8), bool)
    epi[0:5, 0:6] = True
    cavity[1:5, 1:7] = True  # column 6 pokes out of the predicted epicardium
    la[4:8, 1:6] = True  # overlaps the LV on row 4
    logits = _planes(cavity, epi, la)
    logits[2, 4, 1:3] = 9.0  # the atrium is surer than the LV at (x 1..2, y 4) ...
    logits[2, 4, 3:6] = 1.0  # ... and less sure at (x 3..5, y 4)
    labels = combine_structures(torch.from_numpy(logits), ("lv_endo", "lv_epi", "la"))
    atrium_wins = np.zeros((8, 8), bool)
    atrium_wins[4, 1:3] = True
    assert np.array_equal(labels == LABELS["lv_endo"], cavity & ~atrium_wins)
    assert labels[1:4, 6].tolist() == [LABELS["lv_endo"]] * 3  # outside lv_epi, not background
    assert np.array_equal(labels == LABELS["myo"], epi & ~cavity)
    assert np.array_equal(labels == LABELS["la"], la & ~(cavity & ~atrium_wins))
    assert np.array_equal(labels == LABELS["background"], ~(epi | cavity | la))


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=50, deadline=None)
def test_lv_epi_fusion_labels_every_claimed_pixel(seed):
    """Random logits: a pixel is background only when no structure claims it; myo = lv_epi & ~lv_endo."""
    endo, epi, la = logits = np.random.default_rng(seed).normal(0, 3, (3, 12, 9))
    labels = combine_structures(logits, ("lv_endo", "lv_epi", "la"))
    assert np.array_equal(labels > 0, (logits > 0).any(axis=0))
    assert np.all(la[labels == LABELS["la"]] > 0)
    lv = labels[la <= 0]  # where the atrium cannot win
    assert np.array_equal(lv == LABELS["lv_endo"], endo[la <= 0] > 0)
    assert np.array_equal(lv == LABELS["myo"], (epi > 0)[la <= 0] & (endo <= 0)[la <= 0])


def test_lv_epi_with_the_myo_ring_makes_the_cavity_the_rest_of_the_epicardium():
    epi, ring = np.zeros((2, 7, 7), bool)
    epi[0:6, 0:6] = True
    ring[0:7, 0:7] = True
    ring[1:5, 1:5] = False  # the ring reaches one px outside the epicardium (row 6, column 6)
    labels = combine_structures(_planes(epi, ring), ("lv_epi", "myo"))
    assert np.array_equal(labels == LABELS["lv_endo"], epi & ~ring)
    assert np.array_equal(labels == LABELS["myo"], ring)


def test_combine_refuses_what_it_cannot_split():
    with pytest.raises(ValueError, match="lv_epi alone"):
        combine_structures(np.zeros((1, 3, 3)), ("lv_epi",))
    with pytest.raises(ValueError, match="unique structures"):
        combine_structures(np.zeros((2, 3, 3)), ("la",))
    with pytest.raises(KeyError, match="unknown structures"):
        combine_structures(np.zeros((1, 3, 3)), ("rv",))


@pytest.mark.parametrize(("profile", "dtype"), [("sam", torch.float32), ("medsam", torch.bfloat16)])
def test_predict_fn_returns_masks_on_the_original_grid(tiny_sam, profile, dtype, label_map):
    predict = make_predict_fn(copy.deepcopy(tiny_sam).to(dtype), get_profile(profile, 128))
    image = (label_map * 60).astype(np.uint8)  # 56 x 40, taller than wide
    prompts = Prompts(("lv_endo", "la"), boxes=np.array([[10, 5, 30, 25], [12, 26, 28, 38]]))
    masks = predict(image, prompts)
    assert masks.shape == (2, 56, 40) and masks.dtype == bool
    assert np.array_equal(predict(image, prompts), masks)
