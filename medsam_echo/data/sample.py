"""The one record every dataset yields, and the CAMUS label conventions.

Array conventions used throughout medsam-echo:
- 2-D arrays are indexed ``[row, col]`` = ``[y, x]``, shape ``(H, W)``; the apex of an apical view is
  at the top (row 0 side).
- Spacing is ``(sx, sy)`` in mm per pixel: ``sx`` along x (columns), ``sy`` along y (rows).
- Point coordinates are ``(x, y)`` = ``(column, row)`` in px.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# CAMUS label values in the stored label maps.
LABELS: dict[str, int] = {"background": 0, "lv_endo": 1, "myo": 2, "la": 3}

# Structures users segment and evaluate, as sets of label values. lv_epi = cavity + myocardium.
# What a model segments when nothing else is said: one prompt each for the CAMUS labels.
DEFAULT_STRUCTURES: tuple[str, ...] = ("lv_endo", "myo", "la")

STRUCTURES: dict[str, tuple[int, ...]] = {
    "lv_endo": (1,),
    "myo": (2,),
    "lv_epi": (1, 2),
    "la": (3,),
}


def structure_mask(label_map: np.ndarray, structure: str) -> np.ndarray:
    """Boolean mask ``(H, W)`` of ``structure`` (a key of ``STRUCTURES``) in a label map ``(H, W)``."""
    if structure not in STRUCTURES:
        raise KeyError(f"unknown structure {structure!r}; choose from {sorted(STRUCTURES)}")
    return np.isin(label_map, STRUCTURES[structure])


@dataclass
class EchoSample:
    """One 2-D echo frame with its labels.

    Attributes:
        image: ``(H, W)`` grayscale (or ``(H, W, 3)``), any numeric dtype, apex up.
        label: ``(H, W)`` uint8 label map with CAMUS values (see ``LABELS``), or ``None`` if unlabelled.
        spacing: ``(sx, sy)`` mm per pixel along x (columns) and y (rows).
        case_id: unique id, for CAMUS ``patient0001_2CH_ED`` (nnU-Net-style prediction file stem).
        patient: patient id, e.g. ``patient0001``; splits are made at this level.
        view: ``"2CH"``, ``"4CH"`` or ``""`` when unknown.
        phase: ``"ED"``, ``"ES"``, a frame tag such as ``"f012"``, or ``""``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``""``.
        meta: anything else (Info-file fields, source paths, image quality, EF ...).
    """

    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, float]
    case_id: str
    patient: str = ""
    view: str = ""
    phase: str = ""
    split: str = ""
    meta: dict = field(default_factory=dict)
