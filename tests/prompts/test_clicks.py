"""Simulated correction clicks land in the largest error region with the right label."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from medsam_echo.prompts.clicks import error_regions, largest_region, next_click

FAST = settings(max_examples=50, deadline=None)


@FAST
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), use_rng=st.booleans())
def test_click_lands_in_the_error_region_with_its_label(masks, data, seed, use_rng):
    gt = data.draw(masks.any)
    rng = np.random.default_rng(seed)
    pred = gt ^ (rng.random(gt.shape) < 0.2)
    click = next_click(pred, gt, np.random.default_rng(seed) if use_rng else None)
    if np.array_equal(pred, gt):
        assert click is None
        return
    (x, y), label = click
    missed, false = error_regions(pred, gt)
    assert (missed if label == 1 else false)[y, x]
    region, size = largest_region(missed if label == 1 else false)
    assert region[y, x]
    assert size == max(largest_region(missed)[1], largest_region(false)[1])


def test_missed_tissue_gets_a_positive_click_at_its_centre():
    gt = np.zeros((30, 50), bool)
    gt[5:25, 5:45] = True
    pred = gt.copy()
    pred[10:21, 30:41] = False  # an 11x11 hole centred on (x=35, y=15)
    pred[0:2, 0:3] = True  # a smaller false positive
    xy, label = next_click(pred, gt)
    assert label == 1 and xy.tolist() == [35, 15]


def test_false_tissue_gets_a_negative_click():
    gt = np.zeros((20, 40), bool)
    gt[2:6, 2:6] = True
    pred = gt.copy()
    pred[10:19, 25:34] = True  # a 9x9 leak centred on (x=29, y=14)
    xy, label = next_click(pred, gt)
    assert label == 0 and xy.tolist() == [29, 14]


def test_perfect_prediction_needs_no_click():
    gt = np.eye(6, dtype=bool)
    assert next_click(gt.copy(), gt) is None
