"""Point prompts: positives inside a structure, negatives outside it.

Points are ``(x, y)`` = ``(column, row)`` int64 pixel indices of the array they were sampled from; labels
are 1 (positive: the structure) and 0 (negative: not the structure), as SAM's prompt encoder expects.

Points are drawn from the *pixel set* of a mask, never x and y independently: MedSAM's sampler draws the
two coordinates separately, so its "positive" points can fall in the hole of a ring (the myocardium) or
between the components of a multi-part mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medsam_echo.data.sample import LABELS, STRUCTURES
from medsam_echo.prompts.boxes import _as_mask


def interior_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance ``(H, W)`` in px from each mask pixel to the nearest non-mask pixel.

    The image border counts as outside, so a mask touching the edge is not "deepest" at the edge.
    Pixels outside the mask get 0.
    """
    mask = _as_mask(mask)
    padded = np.pad(mask, 1, constant_values=False)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1]


def most_interior_point(mask: np.ndarray) -> np.ndarray:
    """The mask pixel farthest from the mask's boundary (distance-transform maximum).

    Deterministic: among pixels tied at the maximum (the ridge of a rectangle), the one nearest their
    centroid wins, then the first in row-major order.

    Args:
        mask: ``(H, W)`` bool, any shape of structure (ring, several components).

    Returns:
        ``(2,)`` int64 ``(x, y)`` px; always a pixel of ``mask``.

    Raises:
        ValueError: the mask is empty.
    """
    distance = interior_distance(mask)
    peak = distance.max()
    if peak == 0:
        raise ValueError(f"empty mask {distance.shape}: no interior point")
    rows, cols = np.nonzero(distance == peak)
    nearest = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
    return np.array([cols[nearest], rows[nearest]], dtype=np.int64)


def _draw(candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` flat indices from ``candidates``, without replacement when there are enough."""
    return rng.choice(candidates, size=n, replace=candidates.size < n)


def _positive_candidates(mask: np.ndarray, margin_px: float) -> np.ndarray:
    """Flat indices of mask pixels deeper than ``margin_px``; the deepest pixels if none is."""
    if margin_px == 0:
        return np.flatnonzero(mask)
    distance = interior_distance(mask)
    deep = np.flatnonzero(distance > margin_px)
    if deep.size == 0:
        deep = np.flatnonzero(distance == distance.max())
    return deep


def sample_points(
    mask: np.ndarray,
    n_pos: int,
    n_neg: int,
    rng: np.random.Generator,
    *,
    negatives_from: np.ndarray | None = None,
    margin_px: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Random positive points inside a mask and negative points outside it.

    Args:
        mask: ``(H, W)`` bool structure mask (rings and several components are fine).
        n_pos: number of positive points, >= 0.
        n_neg: number of negative points, >= 0.
        rng: the only source of randomness.
        negatives_from: ``(H, W)`` bool region to draw negatives from (e.g. the neighbouring structures,
            see :func:`neighbour_mask`); its pixels inside ``mask`` are never used. ``None``: anywhere
            outside ``mask``.
        margin_px: positives are drawn from pixels more than ``margin_px`` px from the boundary (0: any
            mask pixel); a structure thinner than that gives its deepest pixels instead.

    Returns:
        ``coords`` ``(n_pos + n_neg, 2)`` int64 ``(x, y)`` px, positives first, and ``labels``
        ``(n_pos + n_neg,)`` int64 (1 positive, 0 negative). Points repeat only when a region has fewer
        pixels than points asked for.

    Raises:
        ValueError: the mask is empty, or negatives are asked for and the negative region is empty.
    """
    mask = _as_mask(mask)
    if n_pos < 0 or n_neg < 0:
        raise ValueError(f"n_pos and n_neg must be >= 0, got {n_pos}, {n_neg}")
    if not mask.any():
        raise ValueError(f"empty mask {mask.shape}: cannot sample points of it")
    outside = ~mask
    if negatives_from is not None:
        region = _as_mask(negatives_from, "negatives_from")
        if region.shape != mask.shape:
            raise ValueError(f"negatives_from has shape {region.shape}, mask has {mask.shape}")
        outside &= region
    positives = _draw(_positive_candidates(mask, margin_px), n_pos, rng)
    negatives = np.empty(0, dtype=np.int64)
    if n_neg:
        candidates = np.flatnonzero(outside)
        if candidates.size == 0:
            raise ValueError("no pixel to draw negative points from (negative region empty)")
        negatives = _draw(candidates, n_neg, rng)
    rows, cols = np.divmod(np.concatenate([positives, negatives]).astype(np.int64), mask.shape[1])
    labels = np.concatenate([np.ones(n_pos, np.int64), np.zeros(n_neg, np.int64)])
    return np.stack([cols, rows], axis=1), labels


def neighbour_mask(label_map: np.ndarray, structure: str) -> np.ndarray:
    """``(H, W)`` bool: the labelled structures other than ``structure`` (where negatives help most).

    On CAMUS a single click is ambiguous between the cavity, the myocardium and the atrium; negatives on
    the neighbours resolve it. Returns an all-False mask when the label map has no other structure.
    """
    if structure not in STRUCTURES:
        raise KeyError(f"unknown structure {structure!r}; choose from {sorted(STRUCTURES)}")
    label_map = np.asarray(label_map)
    labelled = label_map != LABELS["background"]
    return labelled & ~np.isin(label_map, STRUCTURES[structure])
