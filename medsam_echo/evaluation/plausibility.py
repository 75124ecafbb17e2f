"""Anatomical plausibility checks of one predicted CAMUS label map.

Each check is ``True`` when the prediction is implausible in that way:

- ``missing_structure``: the LV cavity (1), the myocardium (2) or the LA (3) is absent.
- ``holes``: the LV cavity, the LV epicardium (cavity + myocardium) or the LA encloses pixels that are
  not its own (``binary_fill_holes`` with the 4-connected background).
- ``several_components``: a label (1, 2 or 3) has more than one 8-connected component.
- ``cavity_not_enclosed``: more than ``OPEN_CAVITY_TOLERANCE`` of the LV cavity's surface pixels touch
  the background (4-adjacency). In CAMUS the cavity is bounded by the myocardium and, at the base, by the
  LA; the expert labels of camus224 reach at most 1.2 %, where a few corner pixels touch the background.
- ``la_not_touching_lv``: there is an LA but none of its pixels is 4-adjacent to the cavity or myocardium.

Checks about a structure that is absent are ``False``: that case is already counted as missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy import ndimage

from medsam_echo.data.sample import LABELS, structure_mask

CHECKS: tuple[str, ...] = (
    "missing_structure",
    "holes",
    "several_components",
    "cavity_not_enclosed",
    "la_not_touching_lv",
)
OPEN_CAVITY_TOLERANCE = 0.02  # fraction of cavity surface pixels allowed to touch the background
_CROSS = ndimage.generate_binary_structure(2, 1)
_SQUARE = np.ones((3, 3), dtype=bool)
_LABEL_VALUES = (LABELS["lv_endo"], LABELS["myo"], LABELS["la"])


def _has_hole(mask: np.ndarray) -> bool:
    return bool((ndimage.binary_fill_holes(mask) & ~mask).any())


def _touching(mask: np.ndarray, other: np.ndarray) -> np.ndarray:
    return mask & ndimage.binary_dilation(other, structure=_CROSS)


def _cavity_open(labels: np.ndarray) -> bool:
    cavity = labels == LABELS["lv_endo"]
    if not cavity.any():
        return False
    surface = cavity & ~ndimage.binary_erosion(cavity, structure=_CROSS)
    open_px = _touching(cavity, labels == LABELS["background"]).sum()
    return bool(open_px > OPEN_CAVITY_TOLERANCE * surface.sum())


def _la_detached(labels: np.ndarray) -> bool:
    la, lv = labels == LABELS["la"], structure_mask(labels, "lv_epi")
    return bool(la.any() and lv.any() and not _touching(la, lv).any())


def check_plausibility(labels: np.ndarray) -> dict[str, bool]:
    """Run every check of the module docstring on one label map.

    Args:
        labels: ``(H, W)`` integer label map with CAMUS values (0 bg, 1 LV cavity, 2 myo, 3 LA).

    Returns:
        ``{check: implausible}`` for each name in ``CHECKS``, in that order.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected a 2-D label map (H, W), got shape {labels.shape}")
    masks = [labels == value for value in _LABEL_VALUES]
    return {
        "missing_structure": not all(m.any() for m in masks),
        "holes": any(_has_hole(structure_mask(labels, s)) for s in ("lv_endo", "lv_epi", "la")),
        "several_components": any(ndimage.label(m, structure=_SQUARE)[1] > 1 for m in masks),
        "cavity_not_enclosed": _cavity_open(labels),
        "la_not_touching_lv": _la_detached(labels),
    }


def count_implausible(results: Iterable[Mapping[str, bool]]) -> dict[str, int]:
    """Per check, the number of predictions flagged, plus ``"any"`` (flagged by at least one check)."""
    results = list(results)
    counts = {name: sum(bool(r[name]) for r in results) for name in CHECKS}
    counts["any"] = sum(any(r[name] for name in CHECKS) for r in results)
    return counts
