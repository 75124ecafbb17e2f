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


@dataclass(frozen=True)
class TracedFrames:
    """The two frames of a loop that an expert traced, and the LV cavity area of each tracing.

    Attributes:
        ed, es: 0-based frame indices; ED is the traced frame with the larger LV cavity, ES the smaller.
        ed_area_px, es_area_px: LV cavity area of the traced mask in px (pixel count), or ``None``.
        source: where they come from (``VolumeTracings.csv``, ``TracedFrames.csv``, ``Info_4CH.cfg`` ...).
    """

    ed: int
    es: int
    ed_area_px: float | None = None
    es_area_px: float | None = None
    source: str = ""


@dataclass
class VideoSample:
    """One echo loop with what is known of it: frames, frame rate, clinical indices, traced frames, labels.

    Attributes:
        frames: ``(T, H, W)`` grey frames in time order, apex up: uint8 for video files, as stored otherwise.
        fps: frames per second, or ``None`` when unknown.
        case_id: unique id (EchoNet: the file name without suffix; CAMUS: ``patient0001_2CH``).
        spacing: ``(sx, sy)`` mm per pixel, or ``None`` when the source gives none (EchoNet videos): then
            lengths and areas are in px and volumes in px units; EF is scale-free.
        patient, view, split: as in :class:`EchoSample` (EchoNet: one video per patient, view ``4CH``).
        ef, edv, esv: the reference EF (%), EDV and ESV (mL), or ``None`` when the dataset has none.
        traced: the traced ED / ES frames, or ``None``.
        labels: ``{frame index: (H, W) uint8 label map}`` with CAMUS values, for the frames that have one
            (EchoNet: the two traced frames, LV cavity = 1; CAMUS sequences: every frame); ``{}`` if none.
        structures: the structures the label maps delineate (a 0 pixel is background only for these).
        meta: anything else (source paths, the dataset's own row, warnings).
    """

    frames: np.ndarray
    fps: float | None
    case_id: str
    spacing: tuple[float, float] | None = None
    patient: str = ""
    view: str = ""
    split: str = ""
    ef: float | None = None
    edv: float | None = None
    esv: float | None = None
    traced: TracedFrames | None = None
    labels: dict[int, np.ndarray] = field(default_factory=dict)
    structures: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.frames.shape[0])

    def frame_times_ms(self) -> np.ndarray | None:
        """``(T,)`` time of each frame in ms from the first, or ``None`` without a frame rate."""
        return None if not self.fps else np.arange(self.n_frames) * (1000.0 / self.fps)

    def frame(self, index: int) -> EchoSample:
        """Frame ``index`` (0-based) as an :class:`EchoSample` with case id ``<case_id>_f001`` (1-based).

        Its phase is ``ED`` / ``ES`` at the traced frames, else the ``f001`` tag; its label is the frame's
        label map or ``None``. Without a spacing the sample gets ``(1.0, 1.0)`` and
        ``meta["spacing_unit"] == "px"``: its distances are in px, not mm.
        """
        index = range(self.n_frames)[index]
        tag = f"f{index + 1:03d}"
        phase = {self.traced.ed: "ED", self.traced.es: "ES"}.get(index, tag) if self.traced else tag
        meta = {**self.meta, "ef": self.ef, "frame": index, "spacing_unit": "mm" if self.spacing else "px"}
        return EchoSample(
            self.frames[index],
            self.labels.get(index),
            self.spacing or (1.0, 1.0),
            f"{self.case_id}_{tag}",
            self.patient,
            self.view,
            phase,
            self.split,
            meta,
        )
