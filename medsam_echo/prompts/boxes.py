"""Box prompts: the tight box of a mask and the noise a user's hand adds to it.

Boxes are XYXY ``(x0, y0, x1, y1)`` in px of the array they were made on, with *inclusive* max indices:
the box of a single pixel at column 3, row 5 is ``(3, 5, 3, 5)``. They are int64 pixel indices here;
``Geometry.boxes_to_input`` (``medsam_echo.data.transforms``) maps them to model-input px.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

JITTER_MODES = ("outward", "relative", "mm")
MAIN_REGION_SHARE = 0.2  # components smaller than this share of the largest one are stray blobs


def _as_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """``mask`` as a 2-D bool array; a clear error for anything else."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H, W), got shape {mask.shape}")
    if mask.dtype != bool:
        if not (np.issubdtype(mask.dtype, np.integer) and set(np.unique(mask).tolist()) <= {0, 1}):
            raise ValueError(f"{name} must be boolean (or 0/1 integers), got dtype {mask.dtype}")
        mask = mask.astype(bool)
    return mask


def box_from_mask(mask: np.ndarray) -> np.ndarray:
    """The tight box of a mask.

    Args:
        mask: ``(H, W)`` bool; every component counts (the box of a multi-component mask holds them all).

    Returns:
        ``(4,)`` int64 ``(x0, y0, x1, y1)`` px, inclusive.

    Raises:
        ValueError: the mask is empty (it has no box).
    """
    mask = _as_mask(mask)
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        raise ValueError(f"empty mask {mask.shape}: it has no box")
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.int64)


def clip_box(box: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Clip an inclusive XYXY box ``(4,)`` to an ``(H, W)`` image: x in ``[0, W-1]``, y in ``[0, H-1]``."""
    h, w = int(image_shape[0]), int(image_shape[1])
    high = np.array([w - 1, h - 1, w - 1, h - 1])
    return np.clip(np.asarray(box), 0, high).astype(np.int64)


def _check_box(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box)
    if box.shape != (4,):
        raise ValueError(f"box must have shape (4,) XYXY, got {box.shape}")
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"box {box.tolist()} has max < min; expected XYXY (x0, y0, x1, y1)")
    return box.astype(np.float64)


def _side_shifts(
    box: np.ndarray,
    rng: np.random.Generator,
    mode: str,
    amount: float,
    spacing: tuple[float, float] | None,
) -> np.ndarray:
    """Signed shifts ``(4,)`` in px to add to ``(x0, y0, x1, y1)``."""
    if mode == "outward":
        # MedSAM: each side pushed outward by U{0..N} px, independently.
        steps = rng.integers(0, int(amount), size=4, endpoint=True).astype(np.float64)
        return steps * np.array([-1.0, -1.0, 1.0, 1.0])
    if mode == "relative":
        if amount >= 0.5:
            raise ValueError(f"relative jitter must be < 0.5 of the box size, got {amount}")
        size = np.array([box[2] - box[0] + 1, box[3] - box[1] + 1])
        return rng.uniform(-amount, amount, size=4) * np.tile(size, 2)
    if spacing is None:
        raise ValueError("jitter mode 'mm' needs the pixel spacing (sx, sy) in mm")
    sx, sy = (float(s) for s in spacing)
    if sx <= 0 or sy <= 0:
        raise ValueError(f"spacing must be positive (sx, sy) mm, got {spacing}")
    return rng.uniform(-amount, amount, size=4) / np.array([sx, sy, sx, sy])


def jitter_box(
    box: np.ndarray,
    rng: np.random.Generator,
    mode: str = "outward",
    *,
    image_shape: tuple[int, int],
    amount: float = 20,
    spacing: tuple[float, float] | None = None,
) -> np.ndarray:
    """A noisy copy of a box, as a user (or MedSAM's training) would draw it, clipped to the image.

    Args:
        box: ``(4,)`` XYXY inclusive px.
        rng: the only source of randomness.
        mode: how far each of the four sides moves, independently:
            ``"outward"``: outward by U{0..amount} px (MedSAM: 20 px at 1024);
            ``"relative"``: by U[-amount, amount] of the box width (x sides) or height (y sides), amount < 0.5;
            ``"mm"``: by U[-amount, amount] mm, converted with ``spacing`` ``(sx, sy)`` mm/px.
        image_shape: ``(H, W)`` of the image the box lives on; the result stays inside it.
        amount: px, fraction or mm, by mode; 0 returns the box unchanged (clipped).
        spacing: ``(sx, sy)`` mm per px, needed by ``"mm"``.

    Returns:
        ``(4,)`` int64 XYXY inclusive px with ``x0 <= x1`` and ``y0 <= y1``.
    """
    if mode not in JITTER_MODES:
        raise ValueError(f"unknown jitter mode {mode!r}; choose from {JITTER_MODES}")
    if amount < 0:
        raise ValueError(f"jitter amount must be >= 0, got {amount}")
    box = _check_box(box)
    moved = np.rint(box + _side_shifts(box, rng, mode, amount, spacing))
    # Opposite sides may cross after rounding a large inward move: collapse them onto their midpoint.
    for lo, hi in ((0, 2), (1, 3)):
        if moved[hi] < moved[lo]:
            moved[lo] = moved[hi] = np.floor((moved[lo] + moved[hi]) / 2)
    return clip_box(moved, image_shape)


def main_region(mask: np.ndarray, share: float = MAIN_REGION_SHARE) -> np.ndarray:
    """``(H, W)`` bool: the connected components (8-connected) of ``mask`` holding at least ``share`` of the
    largest one's pixels (a myocardium ring broken at the apex keeps both halves; a stray blob goes)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= share * sizes.max()) + 1
    return np.isin(labels, keep)


def boxes_of(masks: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``(n, 4)`` boxes of the :func:`main_region` of ``masks`` ``(n, H, W)``; an empty mask keeps its
    ``fallback`` ``(n, 4)`` box."""
    return np.stack([box_from_mask(main_region(m)) if m.any() else np.asarray(fallback[i])
                     for i, m in enumerate(masks)])
