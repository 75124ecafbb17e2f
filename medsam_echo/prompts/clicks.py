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


def edit_box(
    box: np.ndarray,
    xy,
    label: int,
    image_shape: tuple[int, int],
    *,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """A box edited by a correction click, for models trained with boxes only (the ``box-edit`` behaviour).

    - A negative click inside the box moves the nearest side in to just past the click (the click's pixel
      leaves the box). A side whose move would empty the box or drop a point of ``keep`` (earlier positive
      clicks) is skipped for the next nearest; when none can move, the box stays.
    - A positive click outside the box grows it to hold the click.
    - A negative click outside the box, or a positive one inside it, leaves the box as it is: a box cannot
      say that (the brush can).

    Args:
        box: ``(4,)`` XYXY inclusive px.
        xy: the click ``(x, y)`` px.
        label: 1 positive, 0 negative.
        image_shape: ``(H, W)``; the result stays inside the image.
        keep: ``(k, 2)`` ``(x, y)`` points that must stay inside (earlier positive clicks), or ``None``.

    Returns:
        ``(4,)`` float64 XYXY inclusive px.
    """
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=np.float64))
    x, y = float(xy[0]), float(xy[1])
    inside = x0 <= x <= x1 and y0 <= y <= y1
    if label:
        if not inside:
            x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
        h, w = int(image_shape[0]), int(image_shape[1])
        return np.clip(np.array([x0, y0, x1, y1]), 0, [w - 1, h - 1, w - 1, h - 1])
    if not inside:
        return np.array([x0, y0, x1, y1])
    keep = np.zeros((0, 2)) if keep is None else np.asarray(keep, dtype=np.float64).reshape(-1, 2)
    # (distance from the click to the side, side index, the side's new value)
    moves = sorted(
        [(x - x0, 0, np.floor(x) + 1), (y - y0, 1, np.floor(y) + 1), (x1 - x, 2, np.ceil(x) - 1),
         (y1 - y, 3, np.ceil(y) - 1)]
    )  # fmt: skip
    for _, side, value in moves:
        moved = np.array([x0, y0, x1, y1])
        moved[side] = value
        if moved[2] < moved[0] or moved[3] < moved[1]:
            continue
        held = (keep[:, 0] >= moved[0]) & (keep[:, 0] <= moved[2]) & (keep[:, 1] >= moved[1]) & (keep[:, 1] <= moved[3])
        was_held = (keep[:, 0] >= x0) & (keep[:, 0] <= x1) & (keep[:, 1] >= y0) & (keep[:, 1] <= y1)
        if np.array_equal(held, was_held):
            return moved
    return np.array([x0, y0, x1, y1])


def stripe_score(mask: np.ndarray) -> float:
    """Label flips per mask row: the mean, over the rows holding any foreground, of the 0 <-> 1 changes along
    the row (outside the image counts as background). 2.0 for a smooth (row-convex) region; a mask frayed
    into stripes scores higher. 0.0 for an empty mask."""
    mask = _as_mask(mask)
    rows = mask[mask.any(axis=1)]
    if rows.size == 0:
        return 0.0
    padded = np.pad(rows.astype(np.int8), ((0, 0), (1, 1)))
    return float(np.abs(np.diff(padded, axis=1)).sum(axis=1).mean())


def n_components(mask: np.ndarray, min_px: int = 1) -> int:
    """The number of 8-connected components of a bool mask ``(H, W)`` with at least ``min_px`` px."""
    components, count = ndimage.label(_as_mask(mask), structure=_STRUCTURE_8)
    if count == 0:
        return 0
    return int((np.bincount(components.ravel())[1:] >= min_px).sum())


# The box-edit behaviour (``EchoPredictor.refine`` on a box-only model): candidate boxes per click, decoded
# together, the least-moved one whose mask honours every click taken, within a change budget. Measured
# against the plain edit above on camus224 validation (benchmarks/box_only_clicks.py).
NEGATIVE_SIDES = 2  # a negative click tries the sides whose cut just past it removes the least of the mask
NEGATIVE_STEPS = (0.5, 1.0)  # each moved this share of the way from where it is to just past the click
GROW_STEPS = (1.0, 1.5, 2.0)  # a positive click moves sides out by this many times its gap to the mask
BOX_EDIT_BUDGET = 0.10  # an edit may change at most this share of the mask's area; else the mask stays


def box_edit_candidates(box: np.ndarray, mask: np.ndarray, xy, label: int, image_shape: tuple[int, int]) -> list[np.ndarray]:
    """Boxes to try for one correction click on a box-only model, the least-moved first.

    - A negative click on the mask, inside the box: of the four sides, the :data:`NEGATIVE_SIDES` whose cut
      just past the click removes the fewest mask pixels, each moved :data:`NEGATIVE_STEPS` of the way
      there (the model draws its mask some px inside the box, so half way is often enough).
    - A positive click off the mask: every side beyond which the click lies (outside the mask's extent)
      moved out by :data:`GROW_STEPS` times the click's distance to the mask's extent on that side (the
      same inset the model keeps from the box side then lands the mask edge on the click or past it).
    - Otherwise (a negative click off the mask, a positive one in it, or a positive one inside the mask's
      extent: a hole a box cannot fill) nothing: ``[]``.

    Args:
        box: ``(4,)`` XYXY inclusive px; mask: ``(H, W)`` bool, the current mask; xy: ``(x, y)`` px;
        label: 1 positive, 0 negative; image_shape: ``(H, W)``.

    Returns:
        ``(4,)`` float64 boxes inside the image.
    """
    mask = _as_mask(mask)
    h, w = int(image_shape[0]), int(image_shape[1])
    box = np.asarray(box, dtype=np.float64)
    x, y = float(xy[0]), float(xy[1])
    col, row = int(round(min(max(x, 0), w - 1))), int(round(min(max(y, 0), h - 1)))
    high = np.array([w - 1, h - 1, w - 1, h - 1], dtype=np.float64)
    out: list[np.ndarray] = []
    if not label:
        x0, y0, x1, y1 = box
        if not mask[row, col] or not (x0 <= x <= x1 and y0 <= y <= y1):
            return out
        cols, rows = np.arange(w), np.arange(h)
        per_col, per_row = mask.sum(axis=0), mask.sum(axis=1)
        cuts = []
        for side, value in ((0, np.floor(x) + 1), (1, np.floor(y) + 1), (2, np.ceil(x) - 1), (3, np.ceil(y) - 1)):
            moved = box.copy()
            moved[side] = value
            if moved[2] < moved[0] or moved[3] < moved[1]:
                continue
            lines, counts = (cols, per_col) if side % 2 == 0 else (rows, per_row)
            removed = counts[lines < value].sum() if side < 2 else counts[lines > value].sum()
            cuts.append((int(removed), side, value))
        for _, side, value in sorted(cuts)[:NEGATIVE_SIDES]:
            for step in NEGATIVE_STEPS:
                moved = box.copy()
                moved[side] = np.round(box[side] + (value - box[side]) * step)
                out.append(moved)
        return out
    if mask[row, col] or not mask.any():
        return out
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    extent = (cols[0], rows[0], cols[-1], rows[-1])
    gaps = [(side, sign, gap) for side, sign, gap in
            ((0, -1, extent[0] - x), (1, -1, extent[1] - y), (2, 1, x - extent[2]), (3, 1, y - extent[3])) if gap > 0]  # fmt: skip
    if not gaps:
        return out
    for step in GROW_STEPS:
        moved = box.copy()
        for side, sign, gap in gaps:
            moved[side] = box[side] + sign * max(np.ceil(step * gap), 1.0)
        out.append(np.clip(moved, 0, high))
    return out


def honours(mask: np.ndarray, points: np.ndarray, labels: np.ndarray) -> bool:
    """Whether ``mask`` ``(H, W)`` holds every positive point and no negative one (``(k, 2)`` ``(x, y)`` px)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if points.size == 0:
        return True
    h, w = mask.shape
    cols = np.clip(np.rint(points[:, 0]).astype(int), 0, w - 1)
    rows = np.clip(np.rint(points[:, 1]).astype(int), 0, h - 1)
    return bool(np.array_equal(mask[rows, cols], np.asarray(labels).reshape(-1) == 1))
