"""Simulated correction clicks: where a user would click next to fix a prediction.

The protocol of interactive segmentation benchmarks (and SAM's evaluation): find the largest connected
error region, click at its most interior point; positive (1) if the region is missed tissue (false
negative), negative (0) if it is false tissue (false positive). During training SAM instead samples the
click uniformly inside the error region; pass an ``rng`` for that.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medsam_echo.prompts.boxes import _as_mask
from medsam_echo.prompts.points import most_interior_point

# 8-connectivity: diagonal neighbours belong to the same error region.
_STRUCTURE_8 = np.ones((3, 3), dtype=bool)


def largest_region(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The largest 8-connected component of a bool mask ``(H, W)`` and its size in px (ties: first found)."""
    components, count = ndimage.label(mask, structure=_STRUCTURE_8)
    if count == 0:
        return np.zeros_like(mask, dtype=bool), 0
    sizes = np.bincount(components.ravel())[1:]
    best = int(np.argmax(sizes))
    return components == best + 1, int(sizes[best])


def error_regions(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(missed, false)``: bool ``(H, W)`` masks of false negatives (gt & ~pred) and false positives."""
    pred, gt = _as_mask(pred, "pred"), _as_mask(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred has shape {pred.shape}, gt has {gt.shape}")
    return gt & ~pred, pred & ~gt


def next_click(
    pred: np.ndarray,
    gt: np.ndarray,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, int] | None:
    """The simulated user's next correction click.

    Args:
        pred: ``(H, W)`` bool current prediction (all False before the first click).
        gt: ``(H, W)`` bool ground truth.
        rng: ``None`` (evaluation): the most interior point of the largest error region, deterministic.
            A generator (training, as SAM): a uniformly random pixel of that region.

    Returns:
        ``(xy, label)``: ``xy`` ``(2,)`` int64 ``(x, y)`` px inside the largest error region, ``label`` 1
        when that region is missed tissue and 0 when it is false tissue; ``None`` when ``pred == gt``.
        A tie in size between the largest missed and false region goes to the missed one.
    """
    missed, false = error_regions(pred, gt)
    missed_region, missed_size = largest_region(missed)
    false_region, false_size = largest_region(false)
    if missed_size == 0 and false_size == 0:
        return None
    region, label = (missed_region, 1) if missed_size >= false_size else (false_region, 0)
    if rng is None:
        return most_interior_point(region), label
    flat = int(rng.choice(np.flatnonzero(region)))
    row, col = divmod(flat, region.shape[1])
    return np.array([col, row], dtype=np.int64), label
