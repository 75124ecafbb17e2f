"""Box prompts: tight boxes of any mask, jitter that stays in the image and respects its units."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medsam_echo.prompts.boxes import box_from_mask, jitter_box

FAST = settings(max_examples=50, deadline=None)


def _inside(box: np.ndarray, shape: tuple[int, int]) -> bool:
    h, w = shape
    return 0 <= box[0] <= box[2] <= w - 1 and 0 <= box[1] <= box[3] <= h - 1


@FAST
@given(data=st.data())
def test_box_is_tight_around_every_component(masks, data):
    mask = data.draw(masks.any)
    x0, y0, x1, y1 = box_from_mask(mask)
    rows, cols = np.nonzero(mask)
    assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max(), rows.max())
    assert _inside(np.array([x0, y0, x1, y1]), mask.shape)


@FAST
@given(data=st.data())
def test_transposing_the_image_swaps_x_and_y(masks, data):
    mask = data.draw(masks.any)
    assert box_from_mask(mask.T).tolist() == box_from_mask(mask)[[1, 0, 3, 2]].tolist()


def test_box_is_xy_on_a_non_square_image():
    mask = np.zeros((10, 30), bool)  # H=10 rows, W=30 columns
    mask[2:4, 20:27] = True  # rows 2-3, columns 20-26
    assert box_from_mask(mask).tolist() == [20, 2, 26, 3]


def test_empty_mask_has_no_box():
    with pytest.raises(ValueError, match="empty mask"):
        box_from_mask(np.zeros((5, 6), bool))


def test_non_binary_mask_is_rejected():
    with pytest.raises(ValueError, match="boolean"):
        box_from_mask(np.full((4, 4), 3, np.uint8))


@FAST
@given(data=st.data(), amount=st.integers(0, 30), seed=st.integers(0, 2**32 - 1))
def test_outward_jitter_contains_the_box_and_stays_in_the_image(masks, data, amount, seed):
    mask = data.draw(masks.any)
    box = box_from_mask(mask)
    jittered = jitter_box(box, np.random.default_rng(seed), "outward", image_shape=mask.shape, amount=amount)
    assert _inside(jittered, mask.shape)
    assert jittered[0] <= box[0] and jittered[1] <= box[1] and jittered[2] >= box[2] and jittered[3] >= box[3]
    assert np.all(np.abs(jittered - box) <= amount)


@FAST
@given(data=st.data(), fraction=st.floats(0, 0.49), seed=st.integers(0, 2**32 - 1))
def test_relative_jitter_moves_each_side_by_at_most_a_fraction_of_the_box(masks, data, fraction, seed):
    mask = data.draw(masks.any)
    box = box_from_mask(mask)
    jittered = jitter_box(
        box, np.random.default_rng(seed), "relative", image_shape=mask.shape, amount=fraction
    )
    assert _inside(jittered, mask.shape)
    size = np.tile([box[2] - box[0] + 1, box[3] - box[1] + 1], 2)
    # +1 px: rounding, and the collapse of two sides that crossed.
    assert np.all(np.abs(jittered - box) <= fraction * size + 1)


def test_mm_jitter_uses_anisotropic_spacing():
    """2 mm on a (0.5, 2.0) mm grid is up to 4 px along x but only 1 px along y."""
    box = np.array([40, 40, 60, 60])
    rng = np.random.default_rng(0)
    moves = np.stack(
        [
            jitter_box(box, rng, "mm", image_shape=(100, 100), amount=2.0, spacing=(0.5, 2.0)) - box
            for _ in range(300)
        ]
    )
    assert np.abs(moves[:, [0, 2]]).max() == 4
    assert np.abs(moves[:, [1, 3]]).max() == 1


def test_jitter_is_reproducible_from_the_generator():
    box = np.array([5, 6, 20, 30])
    first = jitter_box(box, np.random.default_rng(7), "outward", image_shape=(40, 40), amount=5)
    again = jitter_box(box, np.random.default_rng(7), "outward", image_shape=(40, 40), amount=5)
    assert np.array_equal(first, again)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "gauss"}, "unknown jitter mode"),
        ({"mode": "mm"}, "spacing"),
        ({"mode": "relative", "amount": 0.5}, "< 0.5"),
        ({"amount": -1}, ">= 0"),
    ],
)
def test_bad_jitter_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jitter_box(np.array([1, 1, 5, 5]), np.random.default_rng(0), image_shape=(10, 10), **kwargs)


def test_box_with_swapped_corners_is_rejected():
    with pytest.raises(ValueError, match="max < min"):
        jitter_box(np.array([5, 1, 1, 5]), np.random.default_rng(0), image_shape=(10, 10))
