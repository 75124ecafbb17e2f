"""Cine loops: every frame segmented, the LV cavity area curve, ED / ES frames, volumes and EF.

- :func:`segment_cine`: a label map per frame; the image encoder runs once per frame, ``batch_size``
  frames per call (:meth:`EchoPredictor.iterate_frames`); prompts from a :class:`CinePrompts` (a user's
  boxes / clicks on key frames) or the automatic mode. Frames can be cropped to the sector region first
  (burned-in text and ECG strips stay out of the model's view); label maps come back on the full frame.
- :func:`area_curve`: LV cavity (label 1) area per frame, mm^2 -- or px^2 when the file gives no spacing.
- :func:`find_phases`: ED = the largest cavity, ES = the smallest within the same beat. Beats start at the
  ECG R-waves when the file has them (ED = the frame nearest each R-wave), else at the peaks of the area
  curve.
- :func:`exam_volumes`: EDV, ESV and EF by the biplane method of disks
  (:func:`medsam_echo.evaluation.clinical.biplane_ef`) when 2CH and 4CH loops are given, else by the
  single-plane area-length method ``V = 8 A^2 / (3 pi L)``, labelled as such.

Coordinates are px of the full frame, ``(x, y)`` order; arrays ``[t, y, x]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from medsam_echo.data.sample import LABELS, structure_mask
from medsam_echo.evaluation.clinical import biplane_ef, ejection_fraction, long_axis
from medsam_echo.inference.predictor import EchoPredictor

MIN_BEAT_MS = 400.0  # no beat is shorter (150 bpm)
MIN_CONTRACTION = 0.3  # a systole shrinks the cavity by at least 30 % of the loop's area range
BIPLANE = "biplane method of disks (Simpson), 2CH + 4CH"
AREA_LENGTH = "single-plane area-length (8 A^2 / (3 pi L))"
TRACK_MARGIN = 0.02  # tracked boxes: the previous mask's box grown by 2 % of the frame's longer side
ENVELOPE = 0.1  # ... and kept within the key boxes' union grown by 10 % of its size per side


@dataclass
class CinePrompts:
    """A user's prompts on key frames of one loop, for every frame.

    Attributes:
        keys: ``{frame index: [entry, ...]}`` with entries as in a ``PROMPTS.json`` (``structure``,
            ``box`` XYXY px inclusive and / or ``points`` ``(x, y)`` px + ``labels``), px of the full frame.

    A frame between the first and the last key frame uses the entries of the nearest key frame; a
    structure boxed on both key frames around it gets the box linearly interpolated between them (the
    walls move smoothly through a beat). Frames outside that range are tracked by :func:`segment_cine`:
    each structure's box is its mask's box on the neighbouring frame (already segmented), grown by
    ``TRACK_MARGIN`` and kept within :meth:`envelope`.
    """

    keys: dict[int, list[dict]]

    def envelope(self) -> dict[str, np.ndarray]:
        """``{structure: ((x0, y0), (x1, y1))}``: the union of its key boxes, grown by ``ENVELOPE`` per side."""
        boxes: dict[str, list] = {}
        for entries in self.keys.values():
            for entry in entries:
                if "box" in entry:
                    boxes.setdefault(entry["structure"], []).append(entry["box"])
        out = {}
        for name, found in boxes.items():
            arr = np.asarray(found, float)
            lo, hi = arr[:, :2].min(axis=0), arr[:, 2:].max(axis=0)
            grow = ENVELOPE * (hi - lo)
            out[name] = np.stack([lo - grow, hi + grow])
        return out

    def for_frame(self, t: int) -> list[dict]:
        """The entries of frame ``t`` (nearest key frame; boxes interpolated between two key frames)."""
        frames = sorted(self.keys)
        lo = max((k for k in frames if k <= t), default=frames[0])
        hi = min((k for k in frames if k >= t), default=frames[-1])
        entries = [dict(e) for e in self.keys[lo if t - lo <= hi - t else hi]]
        if lo == hi:
            return entries
        w = (t - lo) / (hi - lo)
        box_lo, box_hi = ({e["structure"]: e["box"] for e in self.keys[k] if "box" in e} for k in (lo, hi))
        for entry in entries:
            name = entry["structure"]
            if name in box_lo and name in box_hi:
                entry["box"] = (
                    (1 - w) * np.asarray(box_lo[name], float) + w * np.asarray(box_hi[name], float)
                ).tolist()
        return entries


def segment_cine(
    predictor: EchoPredictor,
    frames: np.ndarray,
    prompts: CinePrompts | None,
    *,
    spacing: tuple[float, float] | None = None,
    view: str | None = None,
    crop: tuple[int, int, int, int] | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A CAMUS label map for every frame of a loop.

    Args:
        predictor: any :class:`EchoPredictor`; ``prompts=None`` uses its automatic mode (needs a view prior).
        frames: ``(T, H, W)`` grey frames.
        prompts: the user's key-frame prompts (px of the full frame), or ``None`` for automatic prompts.
        spacing: ``(sx, sy)`` mm per px, or ``None``. view: ``"2CH"`` / ``"4CH"`` for the automatic mode.
        crop: ``(x0, y0, x1, y1)`` inclusive px box segmented instead of the full frame (the sector).
        batch_size: frames per image-encoder call. progress: called with ``(frames done, T)``.

    Returns:
        ``(labels, scores)``: ``(T, H, W)`` uint8 label maps on the full frame, ``(T,)`` mean predicted IoU.
    """
    x0, y0, x1, y1 = crop or (0, 0, frames.shape[2] - 1, frames.shape[1] - 1)
    labels = np.zeros(frames.shape, np.uint8)
    scores = np.zeros(len(frames), np.float32)
    view_in = frames[:, y0 : y1 + 1, x0 : x1 + 1]
    shifted = None if prompts is None else CinePrompts({t: [_shift(e, -x0, -y0) for e in entries]
                                                        for t, entries in prompts.keys.items()})  # fmt: skip
    done = 0
    first = None if shifted is None else min(shifted.keys)
    for order in _frame_order(len(frames), shifted):
        backward = first is not None and order[0] < first  # tracks on from the first key frame's result
        previous = labels[first, y0 : y1 + 1, x0 : x1 + 1] if backward else None
        for i in predictor.iterate_frames([view_in[t] for t in order], spacing, batch_size=batch_size):
            t = order[i]
            try:
                label, score = _segment_frame(predictor, shifted, t, previous, view)
            except ValueError as err:  # the prompts' coordinates here are of the crop: say so
                crop_note = f" (coordinates in px of the sector crop from ({x0}, {y0}))" if crop else ""
                raise ValueError(f"frame {t}: {err}{crop_note}") from err
            labels[t, y0 : y1 + 1, x0 : x1 + 1], scores[t], previous = label, score, label
            done += 1
            if progress is not None:
                progress(done, len(frames))
    return labels, scores


def _frame_order(n: int, prompts: CinePrompts | None) -> list[list[int]]:
    """Sweeps over the frames: forward from the first key frame, then backward from it (tracking outward)."""
    if prompts is None:
        return [list(range(n))]
    first = min(prompts.keys)
    return [order for order in (list(range(first, n)), list(range(first - 1, -1, -1))) if order]


def _segment_frame(predictor, prompts: CinePrompts | None, t: int, previous: np.ndarray | None, view):
    """``(label map, mean predicted IoU)`` of the current frame ``t`` (px of the cropped frame)."""
    if prompts is None:
        seg = predictor.segment(view=view, with_confidence=False)  # every frame: predicted IoU only
        return seg.label_map, float(np.mean(seg.prediction.scores))
    entries = prompts.for_frame(t)
    if previous is not None and not min(prompts.keys) <= t <= max(prompts.keys):
        entries = _tracked(entries, previous, prompts.envelope())
    return _prompted(predictor, entries)


def _tracked(entries: list[dict], previous: np.ndarray, envelope: dict[str, np.ndarray]) -> list[dict]:
    """Boxes of the previous frame's masks (+ ``TRACK_MARGIN`` of the frame), inside the key boxes' envelope.

    Outside the key frames the heart keeps moving: each structure is boxed where the neighbouring frame
    found it; a structure the neighbour lost keeps the key frame's prompt.
    """
    h, w = previous.shape
    margin = max(1, round(TRACK_MARGIN * max(h, w)))
    out = []
    for entry in entries:
        ys, xs = np.nonzero(structure_mask(previous, entry["structure"]))
        if not len(xs):
            out.append(entry)
            continue
        box = np.array([xs.min() - margin, ys.min() - margin, xs.max() + margin, ys.max() + margin], float)
        if entry["structure"] in envelope:
            lo, hi = envelope[entry["structure"]]
            box = np.clip(box, [lo[0], lo[1], lo[0], lo[1]], [hi[0], hi[1], hi[0], hi[1]])
        out.append({"structure": entry["structure"], "box": box.tolist()})
    return out


def _prompted(predictor: EchoPredictor, entries: list[dict]) -> tuple[np.ndarray, float]:
    """One frame's label map and mean predicted IoU: boxes alone decode together, anything else per structure."""
    if all(set(e) == {"structure", "box"} for e in entries):
        prediction = predictor.predict(
            boxes=[e["box"] for e in entries], structure=[e["structure"] for e in entries]
        )
        return prediction.label_map(), float(np.mean(prediction.scores))
    from medsam_echo.inference.files import prompted_label_map

    label, scores = prompted_label_map(predictor, entries, "cine prompts")
    return label, float(np.mean(list(scores.values())))


def _shift(entry: dict, dx: float, dy: float) -> dict:
    """A prompt entry moved by ``(dx, dy)`` px (full frame -> cropped sector)."""
    out = dict(entry)
    if "box" in entry:
        out["box"] = (np.asarray(entry["box"], float) + [dx, dy, dx, dy]).tolist()
    if "points" in entry:
        out["points"] = (np.asarray(entry["points"], float) + [dx, dy]).tolist()
    return out


def area_curve(labels: np.ndarray, spacing: tuple[float, float] | None) -> tuple[np.ndarray, str]:
    """LV cavity area per frame: ``((T,) float, unit)``, unit ``"mm2"``, or ``"px2"`` without spacing."""
    pixels = (labels == LABELS["lv_endo"]).reshape(len(labels), -1).sum(axis=1).astype(float)
    if spacing is None:
        return pixels, "px2"
    return pixels * spacing[0] * spacing[1], "mm2"


@dataclass
class Phases:
    """ED / ES frames of a loop.

    Attributes:
        ed, es: the frames of the beat used for volumes (indices into the loop).
        beats: ``[(ed, es), ...]`` every beat found, in time order (``es`` None when the loop ends first).
        source: ``"ECG R-waves"`` or ``"area curve"`` -- what the beats were found from.
    """

    ed: int
    es: int
    beats: list[tuple[int, int | None]]
    source: str


def find_phases(
    area: np.ndarray,
    times_ms: np.ndarray | None = None,
    r_waves_ms: np.ndarray | None = None,
    heart_rate: float | None = None,
) -> Phases:
    """ED and ES frames from the area curve ``(T,)``, beats from the R-waves when given (module docstring).

    Args:
        area: ``(T,)`` LV cavity area per frame (any unit).
        times_ms: ``(T,)`` frame times in ms, needed to place R-waves and to bound the beat length.
        r_waves_ms: R-wave times in ms from the first frame, or ``None``.
        heart_rate: beats per minute, bounds the beat length when the file states it.

    The beat used for volumes is the first with both ED and ES. With no complete beat, ED is the first
    beat start and ES the smallest area after it, or without any beat start the largest and the smallest
    area of the loop (``source`` then ends in ``"(no complete beat)"``).
    """
    area = np.asarray(area, float)
    source = "area curve"
    if r_waves_ms is not None and times_ms is not None and len(r_waves_ms):
        starts = _nearest_frames(times_ms, r_waves_ms)
        source = "ECG R-waves"
    else:
        starts = _area_peaks(area, _min_beat_frames(times_ms, heart_rate, len(area)))
    beats = _beats(area, starts)
    complete = [(ed, es) for ed, es in beats if es is not None]
    if complete:
        return Phases(complete[0][0], complete[0][1], beats, source)
    if starts:  # ED known (an R-wave or a peak), no clear systole after it: the smallest cavity after it
        ed = starts[0]
        es = ed + 1 + int(np.argmin(area[ed + 1 :])) if ed + 1 < len(area) else int(np.argmin(area))
        return Phases(ed, es, beats, f"{source} (no complete beat)")
    return Phases(int(np.argmax(area)), int(np.argmin(area)), beats, "area curve (no complete beat)")


def _nearest_frames(times_ms: np.ndarray, events_ms: np.ndarray) -> list[int]:
    """Frames nearest each event inside the loop (half a frame of slack at either end)."""
    times = np.asarray(times_ms, float)
    half = (times[-1] - times[0]) / max(len(times) - 1, 1) / 2
    inside = [t for t in events_ms if times[0] - half <= t <= times[-1] + half]
    return sorted({int(np.argmin(np.abs(times - t))) for t in inside})


def _min_beat_frames(times_ms: np.ndarray | None, heart_rate: float | None, n: int) -> int:
    """Fewest frames a beat can last: 60 % of the stated rate's beat, else 400 ms, else a quarter loop."""
    if times_ms is None or len(times_ms) < 2:
        return max(2, n // 4)
    frame_ms = float(np.median(np.diff(times_ms)))
    beat_ms = 0.6 * 60000.0 / heart_rate if heart_rate else MIN_BEAT_MS
    return max(2, int(beat_ms / frame_ms))


def _area_peaks(area: np.ndarray, distance: int) -> list[int]:
    """ED candidates: peaks of the lightly smoothed curve (loop ends count), refined on the raw curve."""
    smooth = (
        np.convolve(np.pad(area, 1, mode="edge"), np.ones(3) / 3, mode="valid") if len(area) > 4 else area
    )
    span = float(smooth.max() - smooth.min())
    if span <= 0:
        return []
    padded = np.pad(smooth, 1, constant_values=smooth.min() - span)
    peaks, _ = find_peaks(padded, distance=distance, prominence=0.3 * span)
    return sorted({_refine(area, p - 1, np.argmax) for p in peaks})


def _refine(area: np.ndarray, index: int, pick) -> int:
    lo, hi = max(0, index - 1), min(len(area), index + 2)
    return int(lo + pick(area[lo:hi]))


def _beats(area: np.ndarray, starts: list[int]) -> list[tuple[int, int | None]]:
    """``(ed, es)`` per beat: ES the smallest area after ED and before the next ED.

    ES is ``None`` when the loop ends before the cavity fills again, or when the cavity shrinks by less
    than ``MIN_CONTRACTION`` of the loop's area range (a wobble, not a systole).
    """
    span = float(area.max() - area.min())
    beats = []
    for i, ed in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(area)
        window = area[ed + 1 : end]
        if not len(window):
            beats.append((ed, None))
            continue
        es = ed + 1 + int(np.argmin(window))
        rises_after = es + 1 < len(area) and area[es + 1 :].max() > area[es]
        contracts = area[ed] - area[es] >= MIN_CONTRACTION * span > 0
        beats.append((ed, es if contracts and (end < len(area) or rises_after) else None))
    return beats


def area_length_volume(labels: np.ndarray, spacing: tuple[float, float]) -> float:
    """Single-plane area-length LV volume ``8 A^2 / (3 pi L)`` in mL (px^3 / 1000 with unit spacing).

    Args:
        labels: ``(H, W)`` CAMUS label map, apex at the top. spacing: ``(sx, sy)`` mm per px.

    ``A`` is the cavity area (mm^2), ``L`` its long axis from the annulus midpoint to the apex (mm, as in
    :func:`~medsam_echo.evaluation.clinical.long_axis`). NaN when there is no cavity.
    """
    cavity = labels == LABELS["lv_endo"]
    if not cavity.any():
        return float("nan")
    base, apex = long_axis(labels, spacing)
    length = float(np.hypot(*((apex - base) * np.asarray(spacing, float))))
    area = float(cavity.sum()) * spacing[0] * spacing[1]
    return 8.0 * area**2 / (3.0 * np.pi * length) / 1000.0 if length > 0 else float("nan")


def exam_volumes(
    loops: Mapping[str, tuple[np.ndarray, tuple[float, float] | None, Phases]],
) -> dict:
    """EDV, ESV (mL) and EF (%) of an exam, by the best method its loops allow.

    Args:
        loops: ``{view: (labels (T, H, W), spacing (sx, sy) mm or None, phases)}``.

    Returns:
        ``{"method", "views", "edv_ml", "esv_ml", "ef", "units"}``: biplane Simpson with both ``2CH`` and
        ``4CH``, else area-length on the one view. Without spacing in a view, volumes are computed with
        1 px = 1 unit (``units`` says ``"px^3 / 1000 (no spacing)"``); the EF is a ratio and stays
        meaningful when the pixels are square.
    """
    if not loops:
        raise ValueError("no loops: exam volumes need at least one view")
    no_spacing = [v for v, (_, sp, _) in loops.items() if sp is None]
    frames = {
        (view, phase): (labels[getattr(phases, phase.lower())], spacing or (1.0, 1.0))
        for view, (labels, spacing, phases) in loops.items()
        for phase in ("ED", "ES")
    }
    if {"2CH", "4CH"} <= set(loops):
        result = {"method": BIPLANE, "views": ["2CH", "4CH"], **biplane_ef(frames)}
    else:
        view = sorted(loops)[0]
        edv, esv = (area_length_volume(*frames[(view, phase)]) for phase in ("ED", "ES"))
        result = {"method": AREA_LENGTH, "views": [view], "edv_ml": edv, "esv_ml": esv,
                  "ef": ejection_fraction(edv, esv)}  # fmt: skip
    result["units"] = "px^3 / 1000 (no spacing in " + ", ".join(no_spacing) + ")" if no_spacing else "mL"
    return result


def per_view_area_length(labels: np.ndarray, spacing: tuple[float, float] | None, phases: Phases) -> dict:
    """One view's area-length EDV, ESV and EF (a per-view check next to the biplane numbers)."""
    edv, esv = (area_length_volume(labels[i], spacing or (1.0, 1.0)) for i in (phases.ed, phases.es))
    return {"method": AREA_LENGTH, "edv": edv, "esv": esv, "ef": ejection_fraction(edv, esv)}
