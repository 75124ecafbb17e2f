"""Point prompts: positives inside (rings and several components too), negatives outside, (x, y) order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medsam_echo.data.sample import LABELS
from medsam_echo.prompts.points import most_interior_point, neighbour_mask, sample_points

FAST = settings(max_examples=50, deadline=None)


def _values(mask: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Mask values at (x, y) points: column = x, row = y."""
    return mask[xy[:, 1], xy[:, 0]]


@FAST
@given(data=st.data(), n_pos=st.integers(0, 12), n_neg=st.integers(0, 12), seed=st.integers(0, 2**32 - 1))
def test_positives_inside_negatives_outside(masks, data, n_pos, n_neg, seed):
    mask = data.draw(masks.any)
    if mask.all():
        n_neg = 0
    xy, labels = sample_points(mask, n_pos, n_neg, np.random.default_rng(seed))
    assert xy.shape == (n_pos + n_neg, 2) and labels.shape == (n_pos + n_neg,)
    assert labels.tolist() == [1] * n_pos + [0] * n_neg
    assert _values(mask, xy[labels == 1]).all()
    assert not _values(mask, xy[labels == 0]).any()


@FAST
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_ring_positives_never_fall_in_the_hole(masks, data, seed):
    """MedSAM's sampler draws x and y independently; in a ring that lands in the hole. Ours cannot."""
    ring = data.draw(masks.rings)
    xy, _ = sample_points(ring, 20, 0, np.random.default_rng(seed))
    assert _values(ring, xy).all()


@FAST
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_negatives_come_from_the_region_asked_for(masks, data, seed):
    mask = data.draw(masks.random)
    region = np.roll(mask, 1, axis=1) & ~mask
    if not region.any():
        region = ~mask
    if not region.any():
        return
    xy, labels = sample_points(mask, 1, 8, np.random.default_rng(seed), negatives_from=region)
    assert _values(region, xy[labels == 0]).all()


def test_points_are_xy_on_a_non_square_image():
    mask = np.zeros((8, 30), bool)  # a single pixel at row 6, column 25
    mask[6, 25] = True
    xy, _ = sample_points(mask, 3, 0, np.random.default_rng(0))
    assert xy.tolist() == [[25, 6]] * 3  # fewer pixels than points: repeats, never outside
    assert most_interior_point(mask).tolist() == [25, 6]


def test_margin_keeps_positives_away_from_the_boundary():
    yy, xx = np.mgrid[:41, :61]
    disk = np.hypot(xx - 30, yy - 20) <= 15
    xy, _ = sample_points(disk, 200, 0, np.random.default_rng(1), margin_px=10)
    assert np.all(np.hypot(xy[:, 0] - 30, xy[:, 1] - 20) <= 15 - 10 + 1)


def test_most_interior_point_is_the_disk_centre_and_deterministic():
    yy, xx = np.mgrid[:50, :80]
    disk = np.hypot(xx - 61, yy - 17) <= 9
    assert most_interior_point(disk).tolist() == [61, 17]
    assert most_interior_point(disk).tolist() == most_interior_point(disk.copy()).tolist()


@FAST
@given(data=st.data())
def test_most_interior_point_lies_in_the_mask(masks, data):
    mask = data.draw(masks.any)
    x, y = most_interior_point(mask)
    assert mask[y, x]


def test_image_border_counts_as_boundary():
    """A mask filling the image is deepest in its middle, not at an edge."""
    assert most_interior_point(np.ones((9, 21), bool)).tolist() == [10, 4]


def test_empty_mask_and_empty_negative_region_are_errors():
    with pytest.raises(ValueError, match="empty mask"):
        sample_points(np.zeros((4, 4), bool), 1, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="negative region empty"):
        sample_points(np.ones((4, 4), bool), 1, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty mask"):
        most_interior_point(np.zeros((4, 4), bool))


def test_neighbours_of_the_cavity_are_myocardium_and_atrium(label_map):
    neighbours = neighbour_mask(label_map, "lv_endo")
    assert set(np.unique(label_map[neighbours])) == {LABELS["myo"], LABELS["la"]}
    assert not neighbour_mask(label_map, "lv_epi")[label_map == LABELS["myo"]].any()
    with pytest.raises(KeyError, match="unknown structure"):
        neighbour_mask(label_map, "rv")
