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


def _ellipse(h=60, w=50, cx=25, cy=30, a=15, b=22) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1


def test_the_stripe_score_is_two_for_a_smooth_region_and_counts_frayed_rows():
    from medsam_echo.prompts.clicks import n_components, stripe_score

    smooth = _ellipse()
    assert stripe_score(smooth) == 2.0 and n_components(smooth) == 1
    striped = smooth.copy()
    striped[:, ::4] = False  # vertical cuts: every row flips many times
    assert stripe_score(striped) > 6 and n_components(striped) > 5
    rows = smooth.copy()
    rows[::3] = False  # horizontal stripes: rows stay smooth, components multiply
    assert stripe_score(rows) == 2.0 and n_components(rows) > 5
    assert stripe_score(np.zeros((4, 4), bool)) == 0.0 and n_components(np.zeros((4, 4), bool)) == 0
    assert n_components(np.pad(np.ones((1, 1), bool), 3) | smooth[:7, :7], min_px=2) == 0


def test_the_plain_box_edit_moves_the_nearest_side_past_a_negative_click_and_grows_to_a_positive():
    from medsam_echo.prompts.clicks import edit_box

    box = np.array([10, 10, 40, 50])
    assert edit_box(box, (37, 30), 0, (60, 60)).tolist() == [10, 10, 36, 50]  # right side, just past
    assert edit_box(box, (20, 12), 0, (60, 60)).tolist() == [10, 13, 40, 50]  # top side
    assert edit_box(box, (55, 5), 1, (60, 60)).tolist() == [10, 5, 55, 50]  # grown to hold it
    assert edit_box(box, (5, 5), 0, (60, 60)).tolist() == [10, 10, 40, 50]  # negative outside: nothing
    assert edit_box(box, (25, 30), 1, (60, 60)).tolist() == [10, 10, 40, 50]  # positive inside: nothing
    # the nearest side would drop an earlier positive click at (39, 30): the next nearest moves instead
    assert edit_box(box, (37, 30), 0, (60, 60), keep=[[39, 30]]).tolist() == [38, 10, 40, 50]


def test_box_edit_candidates_cut_where_the_least_mask_goes_and_grow_by_the_gap():
    from medsam_echo.prompts.clicks import NEGATIVE_STEPS, box_edit_candidates, honours

    mask = _ellipse()  # x 10..40, y 8..52
    box = np.array([5.0, 3.0, 45.0, 57.0])
    cuts = box_edit_candidates(box, mask, (25, 48), 0, mask.shape)  # near the bottom of the mask
    assert len(cuts) == 4 and all(c[[0, 1, 2]].tolist() == [5, 3, 45] for c in cuts[: len(NEGATIVE_STEPS)])
    assert cuts[len(NEGATIVE_STEPS) - 1][3] == 47  # the bottom all the way to just past the click
    assert cuts[0][3] == 52  # half way first: the least moved comes first
    grown = box_edit_candidates(box, mask, (25, 56), 1, mask.shape)  # 4 px below the mask's extent
    assert [c[3] for c in grown] == [59, 59, 59]  # 57 + 4, 6, 8 px, each capped by the image (H = 60)
    grown = box_edit_candidates(np.array([5.0, 3.0, 45.0, 54.0]), mask, (25, 55), 1, (80, 60))
    assert [c[3] for c in grown] == [57, 59, 60]
    assert box_edit_candidates(box, mask, (25, 30), 1, mask.shape) == []  # already in the mask
    assert box_edit_candidates(box, mask, (2, 2), 0, mask.shape) == []  # negative off the mask
    assert honours(mask, [[25, 30], [2, 2]], [1, 0]) and not honours(mask, [[25, 30]], [0])
