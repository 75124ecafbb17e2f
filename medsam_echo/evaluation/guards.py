"""Anatomical guards: repair a predicted CAMUS label map where it breaks the plausibility criteria.

Each guard repairs one check of :mod:`medsam_echo.evaluation.plausibility` (the CAMUS criteria of Leclerc
et al. 2019 that ``evaluate`` counts), in this order:

1. ``one_component``: each label (1 LV cavity, 2 myocardium, 3 LA) keeps its largest 8-connected
   component; the other components become background (``several_components``).
2. ``fill_holes``: holes in the cavity become cavity, holes in the LA become LA, and what is still
   enclosed by the epicardium (cavity + myocardium) becomes myocardium (``holes``).
3. ``enclose_cavity``: cavity pixels that touch the background (4-adjacency) away from the LA become
   myocardium, so the cavity lies inside the epicardium, open only at the base towards the atrium
   (``cavity_not_enclosed``). This moves the cavity's open border by one pixel; it never grows it. It
   acts only on a gap in a myocardium that is there: when more than ``MAX_OPEN_FRACTION`` of the cavity's
   border touches the background (a map without myocardium, e.g. a model that segments the cavity only),
   nothing changes, since eroding the whole border would bias every volume.
4. ``attach_atrium``: an LA separated from the LV by a gap of at most ``MAX_BRIDGE_FRACTION`` of the
   image's shorter side is joined to the LV base by a 3 px wide bridge of LA pixels across the gap,
   along the shortest segment between the two (``la_not_touching_lv``); a farther LA is left as it is
   (and stays flagged by the plausibility check: a guard never invents anatomy it cannot place).

A missing structure is not repaired, and no guard removes a structure: a step that would empty a label
present before it is undone for that label (its pixels keep their predicted value). Every label map the toolkit writes goes through :func:`apply_guards`
unless it is turned off (``predict --no-guards``, ``EchoPredictor(..., guards=False)``); what each guard
changed is returned by :func:`guard_report`.

    repaired = apply_guards(label_map)               # (H, W) uint8 CAMUS values
    repaired, changed = guard_report(label_map)      # changed: {guard: pixels changed}
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medsam_echo.data.sample import LABELS

GUARDS: tuple[str, ...] = ("one_component", "fill_holes", "enclose_cavity", "attach_atrium")
MAX_BRIDGE_FRACTION = 0.1  # the largest LV-LA gap bridged, as a share of the image's shorter side
MAX_OPEN_FRACTION = 0.25  # enclose_cavity acts when at most this share of the cavity border touches background
_CROSS = ndimage.generate_binary_structure(2, 1)
_SQUARE = np.ones((3, 3), dtype=bool)
BG, ENDO, MYO, LA = (LABELS[k] for k in ("background", "lv_endo", "myo", "la"))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    components, count = ndimage.label(mask, structure=_SQUARE)
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())[1:]
    return components == int(np.argmax(sizes)) + 1


def one_component(labels: np.ndarray) -> np.ndarray:
    """Each of labels 1, 2, 3 reduced to its largest 8-connected component (the rest: background)."""
    out = labels.copy()
    for value in (ENDO, MYO, LA):
        mask = labels == value
        if mask.any():
            out[mask & ~_largest_component(mask)] = BG
    return out


def fill_holes(labels: np.ndarray) -> np.ndarray:
    """Holes of the cavity -> cavity, of the LA -> LA, then what the epicardium still encloses -> myocardium."""
    out = labels.copy()
    for value in (ENDO, LA):
        mask = out == value
        if mask.any():
            out[ndimage.binary_fill_holes(mask) & ~mask] = value
    epi = (out == ENDO) | (out == MYO)
    out[ndimage.binary_fill_holes(epi) & (out == BG)] = MYO
    return out


def enclose_cavity(labels: np.ndarray) -> np.ndarray:
    """Cavity pixels 4-adjacent to background and not 8-adjacent to the LA become myocardium.

    Nothing changes without myocardium or when more than ``MAX_OPEN_FRACTION`` of the cavity border is open.
    """
    cavity = labels == ENDO
    if not cavity.any():
        return labels.copy()
    touches_bg = cavity & ndimage.binary_dilation(labels == BG, structure=_CROSS)
    border = cavity & ~ndimage.binary_erosion(cavity, structure=_CROSS)
    if not (labels == MYO).any() or touches_bg.sum() > MAX_OPEN_FRACTION * border.sum():
        return labels.copy()
    near_la = ndimage.binary_dilation(labels == LA, structure=_SQUARE, iterations=2)
    out = labels.copy()
    out[touches_bg & ~near_la] = MYO
    return out


def attach_atrium(labels: np.ndarray, max_fraction: float = MAX_BRIDGE_FRACTION) -> np.ndarray:
    """Bridge a detached LA to the LV epicardium across a gap of at most ``max_fraction`` x the shorter side."""
    la, lv = labels == LA, (labels == ENDO) | (labels == MYO)
    if not la.any() or not lv.any() or (la & ndimage.binary_dilation(lv, structure=_CROSS)).any():
        return labels.copy()
    distance, nearest = ndimage.distance_transform_edt(~lv, return_indices=True)
    la_points = np.argwhere(la)
    gaps = distance[la]
    start = la_points[int(np.argmin(gaps))]  # (y, x) of the LA pixel closest to the LV
    if gaps.min() > max_fraction * min(labels.shape):
        return labels.copy()
    end = np.array([nearest[0][tuple(start)], nearest[1][tuple(start)]])
    steps = int(np.ceil(np.abs(end - start).max())) + 1
    line = np.zeros_like(la)
    for t in np.linspace(0.0, 1.0, steps):
        y, x = np.rint(start + t * (end - start)).astype(int)
        line[y, x] = True
    bridge = ndimage.binary_dilation(line, structure=_SQUARE) & (labels == BG)
    out = labels.copy()
    out[bridge] = LA
    return out


def _keep_every_structure(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``after``, except that a label present in ``before`` and absent from ``after`` gets its pixels back."""
    out = after.copy()
    for value in (ENDO, MYO, LA):
        if (before == value).any() and not (after == value).any():
            out[before == value] = value
    return out


_STEPS = {"one_component": one_component, "fill_holes": fill_holes, "enclose_cavity": enclose_cavity,
          "attach_atrium": attach_atrium}


def guard_report(labels: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Apply every guard of :data:`GUARDS` in order.

    Args:
        labels: ``(H, W)`` integer label map with CAMUS values (0 background, 1 LV cavity, 2 myo, 3 LA).

    Returns:
        ``(repaired, changed)``: the ``(H, W)`` uint8 label map and ``{guard: pixels it changed}``.

    Raises:
        ValueError: not a 2-D map of CAMUS values.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"anatomical guards need a 2-D label map (H, W), got shape {labels.shape}")
    if not np.isin(labels, (BG, ENDO, MYO, LA)).all():
        raise ValueError(f"anatomical guards need CAMUS label values 0-3, got {np.unique(labels)[:8].tolist()}")
    current, changed = labels.astype(np.uint8), {}
    for name in GUARDS:
        repaired = _keep_every_structure(current, _STEPS[name](current))
        changed[name] = int((repaired != current).sum())
        current = repaired
    return current, changed


def apply_guards(labels: np.ndarray) -> np.ndarray:
    """:func:`guard_report` without the report: the repaired ``(H, W)`` uint8 label map."""
    return guard_report(labels)[0]
