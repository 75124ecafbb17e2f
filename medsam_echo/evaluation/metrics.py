"""Overlap and surface-distance metrics in mm, per case and structure.

Conventions (the medpy / CAMUS ones, so numbers are comparable with published tables):

- Masks are boolean arrays ``(H, W)`` indexed ``[y, x]``; ``spacing`` is ``(sx, sy)`` in mm per pixel
  (the order of ``EchoSample.spacing``). It is handed to the distance transform as ``(sy, sx)``, the
  order of the array axes.
- The surface of a mask is the mask minus its binary erosion with the 4-connected cross; pixels on the
  image border count as surface (erosion treats outside the image as background, as medpy does).
- Directed distances run from every surface pixel of A to the nearest surface pixel of B (Euclidean
  distance transform with the spacing), and from B to A.
- ``hd_mm`` is the maximum over both directed sets, ``hd95_mm`` the 95th percentile (linear
  interpolation) of the two sets pooled (medpy ``hd95``), ``mad_mm`` the mean of the two directed means
  (medpy ``assd``, CAMUS's "mean absolute distance").

Empty masks:

- prediction and ground truth both empty: Dice 1 and all distances 0 (a correct "absent");
- exactly one of them empty: Dice 0 and all distances NaN (undefined). ``summarize`` averages distances
  over the finite values only and reports the number of NaN cases apart, so a missing structure is never
  silently averaged in as 0 mm nor silently dropped.

The distance transform runs on the union bounding box of both masks plus a one-pixel margin, which gives
exactly the full-image result (every surface pixel lies inside the crop) at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy import ndimage

from medsam_echo.data.sample import STRUCTURES, structure_mask

METRICS: tuple[str, ...] = ("dice", "hd_mm", "hd95_mm", "mad_mm")
_CROSS = ndimage.generate_binary_structure(2, 1)


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool and np.any((mask != 0) & (mask != 1)):
        raise ValueError(
            f"{name} must be a binary mask; got values {np.unique(mask)[:5].tolist()} (a label map?)"
        )
    return mask.astype(bool, copy=False)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _as_mask(pred, "pred"), _as_mask(gt, "gt")
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"masks must be 2-D with equal shapes, got {pred.shape} and {gt.shape}")
    return pred, gt


def _check_spacing(spacing: tuple[float, float]) -> tuple[float, float]:
    sx, sy = (float(s) for s in spacing)
    if not (np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0):
        raise ValueError(f"spacing must be two positive mm values (sx, sy), got {spacing!r}")
    return sx, sy


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient ``2|P & G| / (|P| + |G|)`` of two boolean masks ``(H, W)``; 1.0 when both are empty."""
    pred, gt = _check_pair(pred, gt)
    total = int(pred.sum()) + int(gt.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface pixels ``(H, W)`` bool: ``mask`` minus its erosion by the 4-connected cross."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def _union_crop(pred: np.ndarray, gt: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(pred | gt)
    h, w = pred.shape
    return (
        slice(max(rows.min() - 1, 0), min(rows.max() + 2, h)),
        slice(max(cols.min() - 1, 0), min(cols.max() + 2, w)),
    )


def directed_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Surface distances in mm in both directions between two non-empty masks.

    Args:
        pred: ``(H, W)`` bool mask.
        gt: ``(H, W)`` bool mask, same shape.
        spacing: ``(sx, sy)`` mm per pixel.

    Returns:
        ``(pred_to_gt, gt_to_pred)``: 1-D float arrays, one distance (mm) per surface pixel of the source.

    Raises:
        ValueError: if a mask is empty (distances are undefined) or shapes / spacing are invalid.
    """
    pred, gt = _check_pair(pred, gt)
    sx, sy = _check_spacing(spacing)
    if not pred.any() or not gt.any():
        raise ValueError("surface distances are undefined for an empty mask")
    crop = _union_crop(pred, gt)
    # The crop keeps a background margin except where a mask touches the image border, where the
    # image border is the crop border: the surfaces equal those of the full image either way.
    surf_p, surf_g = surface(pred[crop]), surface(gt[crop])
    to_gt = ndimage.distance_transform_edt(~surf_g, sampling=(sy, sx))
    to_pred = ndimage.distance_transform_edt(~surf_p, sampling=(sy, sx))
    return to_gt[surf_p], to_pred[surf_g]


def mask_metrics(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float]) -> dict[str, float]:
    """Dice, ``hd_mm``, ``hd95_mm`` and ``mad_mm`` of one structure (empty-mask rules: module docstring).

    Args:
        pred: ``(H, W)`` bool predicted mask.
        gt: ``(H, W)`` bool ground-truth mask.
        spacing: ``(sx, sy)`` mm per pixel.

    Returns:
        ``{"dice", "hd_mm", "hd95_mm", "mad_mm"}`` as floats.
    """
    pred, gt = _check_pair(pred, gt)
    _check_spacing(spacing)
    has_pred, has_gt = bool(pred.any()), bool(gt.any())
    if not has_pred and not has_gt:
        return {"dice": 1.0, "hd_mm": 0.0, "hd95_mm": 0.0, "mad_mm": 0.0}
    if has_pred != has_gt:
        return {"dice": 0.0, "hd_mm": float("nan"), "hd95_mm": float("nan"), "mad_mm": float("nan")}
    a, b = directed_distances(pred, gt, spacing)
    return {
        "dice": dice(pred, gt),
        "hd_mm": float(max(a.max(), b.max())),
        "hd95_mm": float(np.percentile(np.concatenate([a, b]), 95)),
        "mad_mm": float((a.mean() + b.mean()) / 2.0),
    }


def case_metrics(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    spacing: tuple[float, float],
    structures: Iterable[str] = tuple(STRUCTURES),
) -> dict[str, dict[str, float]]:
    """Metrics of every structure of one case.

    Args:
        pred_labels: ``(H, W)`` integer label map with CAMUS values (0 bg, 1 LV cavity, 2 myo, 3 LA).
        gt_labels: ``(H, W)`` ground-truth label map on the same pixel grid.
        spacing: ``(sx, sy)`` mm per pixel of that grid.
        structures: keys of ``STRUCTURES`` (default: all of ``lv_endo``, ``myo``, ``lv_epi``, ``la``).

    Returns:
        ``{structure: {"dice", "hd_mm", "hd95_mm", "mad_mm"}}``.
    """
    if np.shape(pred_labels) != np.shape(gt_labels):
        raise ValueError(
            f"prediction shape {np.shape(pred_labels)} differs from ground truth {np.shape(gt_labels)}: "
            "predictions must be on the ground truth's pixel grid"
        )
    return {
        name: mask_metrics(structure_mask(pred_labels, name), structure_mask(gt_labels, name), spacing)
        for name in structures
    }


def summarize(values: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Means and standard deviations of per-case metric dicts, with the NaN cases kept apart.

    Args:
        values: dicts as returned by ``mask_metrics``.

    Returns:
        ``{"n", "n_nan"}`` and, for each metric ``m`` of ``METRICS``, ``m`` (mean) and ``m + "_std"``
        (sample standard deviation, NaN below two values). ``n`` counts the cases, ``n_nan`` those with
        undefined distances (one mask empty). Dice is averaged over all ``n`` cases (those count 0),
        distances over the ``n - n_nan`` finite ones (NaN when there are none).
    """
    table = np.array([[row[m] for m in METRICS] for row in values], dtype=float).reshape(-1, len(METRICS))
    out: dict[str, float] = {"n": len(table), "n_nan": int(np.isnan(table[:, 1]).sum())}
    for j, name in enumerate(METRICS):
        finite = table[:, j][~np.isnan(table[:, j])]
        out[name] = float(finite.mean()) if finite.size else float("nan")
        out[f"{name}_std"] = float(finite.std(ddof=1)) if finite.size > 1 else float("nan")
    return out
