"""The automatic mode's cascade and confidence, with an oracle decoder (no model).

The oracle segments a structure's label values inside its box grown by ``GROW`` px: a model that can
reach a little past a loose box. The cascade must walk a start mask out to the whole structure; the
confidence must be high where prompts agree and low where they do not.
"""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.data.sample import STRUCTURES, structure_mask
from medsam_echo.inference.automatic import (
    N_PERTURBED,
    boxes_of,
    cascade,
    confidence,
    label_confidence,
    main_region,
    mask_dice,
    middle_box,
    perturbed_boxes,
)
from medsam_echo.prompts.boxes import box_from_mask
from tests.prompts.conftest import camus_like

GROW = 4
STRUCTS = ("lv_endo", "la")


def oracle_for(label: np.ndarray, structures=STRUCTS, grow: int = GROW):
    """decode(boxes) -> masks, scores of an oracle that segments the truth near each box; counts calls."""
    yy, xx = np.mgrid[: label.shape[0], : label.shape[1]]
    calls = []

    def decode(boxes):
        calls.append(np.asarray(boxes).copy())
        masks = []
        for name, (x0, y0, x1, y1) in zip(structures, boxes, strict=True):
            near = (xx >= x0 - grow) & (xx <= x1 + grow) & (yy >= y0 - grow) & (yy <= y1 + grow)
            masks.append(np.isin(label, STRUCTURES[name]) & near)
        return np.stack(masks), np.full(len(structures), 0.9)

    decode.calls = calls
    return decode


def test_the_cascade_grows_a_partial_start_mask_to_the_whole_structure():
    label = camus_like()
    truth = np.stack([structure_mask(label, s) for s in STRUCTS])
    start = truth.copy()
    start[:, :, : label.shape[1] // 2 + 2] = False  # only the right half of each structure was found
    decode = oracle_for(label)
    final = cascade(decode, start, np.zeros((2, 4), np.int64), n_iter=5)
    np.testing.assert_array_equal(final.masks, truth)
    assert np.array_equal(final.boxes, np.stack([box_from_mask(m) for m in truth]))
    assert len(decode.calls) < 5  # stopped once the boxes no longer changed
    one = cascade(oracle_for(label), start, np.zeros((2, 4), np.int64), n_iter=1)
    assert one.masks.sum() < final.masks.sum()


def test_an_empty_start_mask_falls_back_to_the_given_box():
    label = camus_like()
    start = np.zeros((2, *label.shape), bool)
    fallback = np.stack([middle_box(label.shape)] * 2)
    decode = oracle_for(label)
    cascade(decode, start, fallback, n_iter=1)
    np.testing.assert_array_equal(decode.calls[0], fallback)
    assert middle_box((100, 60)).tolist() == [15, 25, 45, 75]


def test_perturbed_boxes_move_every_side_and_stay_in_the_image():
    boxes = np.array([[10, 20, 29, 59], [0, 0, 3, 3]])
    moved = perturbed_boxes(boxes, (64, 40), fraction=0.1)
    assert moved.shape == (N_PERTURBED, 2, 4)
    np.testing.assert_array_equal(moved[0, 0], [8, 16, 31, 63])  # grown by 10 % of 20 x 40 px
    np.testing.assert_array_equal(moved[1, 0], [12, 24, 27, 55])  # shrunk
    np.testing.assert_array_equal(moved[2, 0], [8, 16, 27, 55])  # shifted up-left
    assert (moved[..., :2] >= 0).all() and (moved[..., 2] <= 39).all() and (moved[..., 3] <= 63).all()
    assert (moved[..., 2:] >= moved[..., :2]).all()  # a 4 px box shrunk by 1 px per side stays a box


def test_confidence_is_high_when_prompts_agree_and_low_when_they_do_not():
    label = camus_like()
    truth = np.stack([structure_mask(label, s) for s in STRUCTS])
    decode = oracle_for(label, grow=0)
    final = cascade(decode, truth, np.zeros((2, 4), np.int64))
    good = confidence(decode, final, truth, label.shape)
    assert set(good) == {"confidence", "stability", "agreement", "predicted_iou"}
    assert good["agreement"].tolist() == [1.0, 1.0]
    assert (good["stability"] > 0.85).all()
    parts = np.stack([good["stability"], good["agreement"], good["predicted_iou"]])
    np.testing.assert_allclose(good["confidence"], parts.min(axis=0))  # every check must pass
    wrong_start = np.zeros_like(truth)
    wrong_start[:, :5, :5] = True  # the start found something else in the corner
    bad = confidence(decode, final, wrong_start, label.shape)
    assert (bad["confidence"] < good["confidence"] - 0.4).all()
    assert good["predicted_iou"].tolist() == [0.9, 0.9]  # the oracle's IoU head


def test_boxes_come_from_the_main_region_of_a_mask():
    mask = np.zeros((40, 40), bool)
    mask[10:20, 10:20] = True  # the structure, 100 px
    mask[30:32, 35:37] = True  # a stray 4 px blob: would stretch the box to (37, 32)
    mask[10:20, 22:28] = True  # a second half of the structure (60 px >= 20 % of 100): kept
    assert boxes_of(mask[None], np.zeros((1, 4))).tolist() == [[10, 10, 27, 19]]
    assert main_region(np.zeros((5, 5), bool)).sum() == 0


def test_mask_dice_and_label_confidence():
    a = np.zeros((4, 4), bool)
    assert mask_dice(a, a) == 1.0
    b = a.copy()
    b[0, 0] = True
    assert mask_dice(a, b) == 0.0 and mask_dice(b, b) == 1.0
    scores = {"lv_endo": 0.9, "lv_epi": 0.7, "la": 0.8}
    assert label_confidence("la", scores) == 0.8
    assert label_confidence("myo", scores) == 0.7  # epicardium minus cavity: the weaker of the two
    with pytest.raises(KeyError, match="no confidence for 'myo'"):
        label_confidence("myo", {"lv_endo": 0.9, "la": 0.8})
