"""DICOM echo exams: ``medsam-echo predict --input EXAM`` on cine loops, from files to EF and DICOM SEG.

1. :func:`collect_dicom`: the DICOM files given, and those in folders given (searched recursively).
2. :func:`assign_views`: a loop per view, the view read from the series (Series Description, View Name,
   View Code Sequence ... see :mod:`medsam_echo.data.dicom`), else from the file name, or given as
   ``--views 2CH=a.dcm,4CH=b.dcm``. One loop of unknown view is allowed (single-plane EF).
3. :func:`analyse_loop` per loop: every frame segmented (:func:`~medsam_echo.inference.cine.segment_cine`,
   cropped to the sector region when the file has one), the area curve, ED / ES.
4. :func:`predict_exam`: the exam's EDV / ESV / EF, and the outputs of
   :mod:`~medsam_echo.inference.cine_outputs`.

Prompts: ``"auto"`` (the predictor's view prior), or a ``PROMPTS.json`` keyed by file name or view, each
value a list of entries used on every frame, or ``{"<frame>": [entries], ...}`` for key frames (see
:class:`~medsam_echo.inference.cine.CinePrompts`); entries as in :mod:`~medsam_echo.inference.files`,
px of the full frame. Every entry is checked against its loop before anything is segmented: a box is four
numbers (no booleans) ``x0 <= x1``, ``y0 <= y1``, at least half of it on the frame (and on the sector
region the frames are cropped to); points lie on it; errors name the prompts file, the loop, the view
and the frame, in px of the full frame.

EF: only for loops known to be apical 2CH / 4CH views (from the series, the file name or ``--views``)
with a complete beat; any other loop gets its reason in ``summary.json`` (``ef_reason``) and on the
console. Biplane needs both views calibrated alike (both mm or both px); otherwise, or when one view has
no EF, the EF is single-plane, and a warning says so. Everything doubtful that the reader did not use
(:mod:`medsam_echo.data.dicom`) is a warning too, on the console and in ``summary.json``'s ``warnings``.

Failures come before the work where they can: the inputs, the output folder (never an input folder or
inside one), the prompts and the DICOM SEG's metadata (built once on an empty segmentation) are all
checked before the first frame is segmented. A later error names the file and the step, and leaves
``summary.json`` with ``complete: false`` and the error.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsam_echo.data.dicom import DicomCine, is_dicom_file, read_dicom_cine
from medsam_echo.data.io import DataError
from medsam_echo.data.sample import STRUCTURES
from medsam_echo.inference import cine_outputs as outputs
from medsam_echo.inference.cine import (
    AREA_LENGTH,
    CinePrompts,
    Phases,
    area_curve,
    exam_volumes,
    find_phases,
    per_view_area_length,
    segment_cine,
)
from medsam_echo.inference.files import view_from_name
from medsam_echo.inference.predictor import EchoPredictor

VIEWS = ("2CH", "4CH")


def collect_dicom(inputs: list[Path], skipped: list[str] | None = None) -> list[Path]:
    """DICOM files among ``inputs``, sorted; errors name the input.

    Files given are kept as they are (a non-ultrasound one is an error when read). Folders are searched
    recursively, and what is in them but not an ultrasound image (a DICOMDIR, structured reports, a DICOM
    SEG written by an earlier run ...) is left out, with a line appended to ``skipped``. A file in them
    that cannot be read at all (a broken loop) is an error: leaving it out would change the exam quietly.
    """
    from medsam_echo.data.dicom import ultrasound_problem

    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            for found in sorted(
                p for p in path.rglob("*") if not p.name.startswith(".") and is_dicom_file(p)
            ):
                problem = ultrasound_problem(found)
                if problem is None:
                    files.append(found)
                elif problem.startswith("not a readable"):
                    raise DataError(f"{found}: {problem}; it is in the input folder {path}: repair or remove it, "
                                    "or give the loops as files")  # fmt: skip
                elif skipped is not None:
                    skipped.append(f"{found}: {problem}")
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: input not found")
    if not files:
        raise DataError(f"no ultrasound DICOM files in {', '.join(map(str, inputs))}")
    return files


def parse_views(text: str) -> dict[str, str]:
    """``"2CH=a.dcm,4CH=b.dcm"`` -> ``{"2CH": "a.dcm", "4CH": "b.dcm"}``; errors say the expected form."""
    views: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        view, sep, name = part.partition("=")
        view = view.strip().upper()
        if not sep or view not in VIEWS or not name.strip() or view in views:
            raise DataError(f"--views {text!r}: expected VIEW=FILE pairs such as 2CH=a.dcm,4CH=b.dcm "
                            f"(views {', '.join(VIEWS)}, each once)")  # fmt: skip
        views[view] = name.strip()
    return views


def assign_views(files: list[Path], views: dict[str, str] | None = None) -> dict[str, DicomCine]:
    """Read the loops and key them by view (``2CH`` / ``4CH``), or by file stem for one loop of unknown view.

    Args:
        files: DICOM files (:func:`collect_dicom`).
        views: ``{view: file}`` from ``--views``; a file is a path, or the name of one of ``files``.
    """
    if views:
        chosen = {view: _find(name, files) for view, name in views.items()}
        if len({p.resolve() for p in chosen.values()}) < len(chosen):
            raise DataError(f"--views names one file for {' and '.join(chosen)} ({next(iter(chosen.values()))}): "
                            "a biplane EF needs two different loops")  # fmt: skip
        return {view: _with_view(read_dicom_cine(path), view, "--views") for view, path in chosen.items()}
    loops: dict[str, DicomCine] = {}
    for path in files:
        cine = read_dicom_cine(path)
        if cine.view is None and view_from_name(path.name):
            cine = _with_view(cine, view_from_name(path.name), "file name")
        key = cine.view or path.name.split(".")[0]
        if key in loops:
            raise DataError(f"{loops[key].path} and {path} are both {key}: name the loops with "
                            "--views 2CH=FILE,4CH=FILE")  # fmt: skip
        loops[key] = cine
    unknown = [c.path for c in loops.values() if c.view is None]
    if unknown and len(loops) > 1:
        raise DataError(f"cannot tell the view of {unknown[0]} from its series (Series Description, View Name, "
                        "View Code Sequence) or its name: give --views 2CH=FILE,4CH=FILE")  # fmt: skip
    return loops


def _with_view(cine: DicomCine, view: str, source: str) -> DicomCine:
    cine.view, cine.view_source = view, source
    return cine


def _find(name: str, files: list[Path]) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    matches = [f for f in files if f.name == name or f.as_posix().endswith("/" + name.lstrip("/"))]
    if len(matches) != 1:
        raise DataError(f"--views: {name!r} is {'not among' if not matches else 'ambiguous in'} the inputs")
    return matches[0]


def load_cine_prompts(path: Path, loops: dict[str, DicomCine]) -> dict[str, CinePrompts]:
    """``PROMPTS.json`` (module docstring) as ``{loop key: CinePrompts}``; errors name the file, loop, frame.

    A plain list of entries applies to every frame (each frame is prompted with it, nothing is tracked).
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the prompts file ({err})") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object mapping file names or views to prompts")
    known = {k for key, cine in loops.items() for k in (key, cine.path.name)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DataError(f"{path}: prompts for {unknown}, which are neither a loop's file name nor its view "
                        f"(the loops: {sorted(known)})")  # fmt: skip
    prompts = {}
    for key, cine in loops.items():
        spec = data.get(cine.path.name, data.get(key))
        where = f"{path}: {cine.path.name} (view {key})"
        if spec is None:
            raise DataError(f"{where}: no prompts; key them by file name or view")
        if isinstance(spec, list):
            entries = _entries(where, "every frame", spec, cine)
            keys = {t: entries for t in range(cine.n_frames)}
        elif isinstance(spec, dict) and spec:
            keys = {_frame(where, k, cine.n_frames): _entries(where, f"frame {k}", v, cine)
                    for k, v in spec.items()}  # fmt: skip
        else:
            raise DataError(f"{where}: expected a list of prompts or {{frame: [prompts]}}")
        prompts[key] = CinePrompts(keys)
    return prompts


def _frame(where: str, frame, n: int) -> int:
    try:
        index = int(frame)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < n or str(frame).strip() != str(index):
        raise DataError(f"{where}: key frame {frame!r} is not a frame index in 0..{n - 1}")
    return index


_ENTRY_KEYS = {"structure", "box", "points", "labels"}


def _entries(where: str, frame: str, entries, cine: DicomCine) -> list[dict]:
    where = f"{where} {frame}"
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{where}: expected a non-empty list of prompts")
    names = []
    for i, entry in enumerate(entries):
        at = f"{where} [{i}]"
        if not isinstance(entry, dict) or entry.get("structure") not in STRUCTURES or set(entry) - _ENTRY_KEYS:
            raise DataError(f"{at}: expected {{'structure': one of {sorted(STRUCTURES)}, 'box' and / or "
                            f"'points' + 'labels'}}, got {entry!r}")  # fmt: skip
        if not {"box", "points"} & set(entry):
            raise DataError(f"{at}: no 'box' and no 'points'")
        at = f"{at} ({entry['structure']})"
        if "box" in entry:
            _check_box(at, entry["box"], cine)
        if "points" in entry:
            _check_points(at, entry["points"], entry.get("labels"), cine)
        elif "labels" in entry:
            raise DataError(f"{at}: 'labels' without 'points'")
        names.append(entry["structure"])
    if len(set(names)) < len(names):
        raise DataError(f"{where}: a structure is prompted twice: {names}")
    return entries


def _numbers(at: str, what: str, values, n: int) -> list[float]:
    """``values`` as ``n`` finite numbers; booleans, strings and NaN are errors."""
    ok = isinstance(values, list) and len(values) == n
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    if not ok:
        raise DataError(f"{at}: {what} must be {n} finite numbers (px of the full frame), got {values!r}")
    return [float(v) for v in values]


def _check_box(at: str, box, cine: DicomCine) -> None:
    """A box is on the frame and on the sector region (at least half of it); errors in full-frame px."""
    x0, y0, x1, y1 = _numbers(at, "'box' [x0, y0, x1, y1]", box, 4)
    if x1 < x0 or y1 < y0:
        raise DataError(f"{at}: box {[x0, y0, x1, y1]} has x1 < x0 or y1 < y0; expected [x0, y0, x1, y1]")
    h, w = cine.frames.shape[1:]
    areas = [("frame", (0, 0, w - 1, h - 1))] + ([("sector region", cine.region)] if cine.region else [])
    for name, (rx0, ry0, rx1, ry1) in areas:
        inside = max(0.0, min(x1, rx1) - max(x0, rx0) + 1) * max(0.0, min(y1, ry1) - max(y0, ry0) + 1)
        if inside < 0.5 * (x1 - x0 + 1) * (y1 - y0 + 1):
            raise DataError(f"{at}: box {[x0, y0, x1, y1]} lies mostly outside the {name} "
                            f"[{rx0}, {ry0}, {rx1}, {ry1}] (px of the full frame, x0, y0, x1, y1)")  # fmt: skip


def _check_points(at: str, points, labels, cine: DicomCine) -> None:
    if not isinstance(points, list) or not points:
        raise DataError(f"{at}: 'points' must be a non-empty list of [x, y], got {points!r}")
    h, w = cine.frames.shape[1:]
    rx0, ry0, rx1, ry1 = cine.region or (0, 0, w - 1, h - 1)
    for point in points:
        x, y = _numbers(at, "a point [x, y]", point, 2)
        if not (rx0 <= x <= rx1 and ry0 <= y <= ry1):
            name = "sector region" if cine.region is not None else "frame"
            raise DataError(f"{at}: point {[x, y]} lies outside the {name} [{rx0}, {ry0}, {rx1}, {ry1}] (px)")
    if labels is not None and (
        not isinstance(labels, list) or len(labels) != len(points)
        or any(isinstance(v, bool) or v not in (0, 1) for v in labels)
    ):  # fmt: skip
        raise DataError(f"{at}: 'labels' must be one 1 (positive) or 0 (negative) per point, got {labels!r}")


@dataclass
class LoopResult:
    """One analysed loop: label maps ``(T, H, W)``, scores ``(T,)``, area ``(T,)`` in ``unit``, phases."""

    key: str
    cine: DicomCine
    labels: np.ndarray
    scores: np.ndarray
    area: np.ndarray
    unit: str
    phases: Phases | None
    seconds: float


def analyse_loop(
    predictor: EchoPredictor, key: str, cine: DicomCine, prompts: CinePrompts | None, batch_size: int = 8
) -> LoopResult:
    """Segment every frame of ``cine`` and find ED / ES (``phases`` None for a single frame)."""
    start = time.perf_counter()
    try:
        labels, scores = segment_cine(predictor, cine.frames, prompts, spacing=cine.spacing, view=cine.view,
                                      crop=cine.region, batch_size=batch_size)  # fmt: skip
    except ValueError as err:
        raise DataError(f"{cine.path} (view {key}): segmenting: {err}") from err
    seconds = time.perf_counter() - start
    area, unit = area_curve(labels, cine.spacing)
    phases = None
    if cine.n_frames > 1:
        phases = find_phases(area, cine.frame_times_ms, cine.r_waves_ms, cine.heart_rate)
        if phases.source.startswith("ECG R-waves"):
            phases.source = phases.source.replace("ECG R-waves", f"ECG R-waves ({cine.r_wave_source})", 1)
    return LoopResult(key, cine, labels, scores, area, unit, phases, seconds)


def check_out_folder(out: Path, inputs: list[Path]) -> None:
    """Refuse an ``--out`` that is a file, an input folder or inside one (a later run would read the
    outputs as inputs, and the inputs could be replaced)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: is a file, not a folder; choose a folder")
    target = out.resolve()
    for path in inputs:
        folder = path.resolve() if path.is_dir() else None
        if folder is not None and (target == folder or folder in target.parents):
            raise DataError(f"--out {out}: is {'the' if target == folder else 'inside the'} input folder {path}; "
                            "choose an output folder outside the inputs")  # fmt: skip
        if path.is_file() and target == path.resolve():
            raise DataError(f"--out {out}: is the input file {path}")


def predict_exam(
    predictor: EchoPredictor,
    inputs: list[Path],
    prompts: str,
    out: Path,
    *,
    views: str | None = None,
    batch_size: int = 8,
) -> Path:
    """The whole DICOM mode of ``predict`` (module docstring); returns the path of ``summary.json``."""
    from medsam_echo.inference.dicom_seg import check_dicom_seg, highdicom_module

    highdicom_module()  # fail before segmenting when the SEG cannot be written
    check_out_folder(out, inputs)
    skipped: list[str] = []
    loops = assign_views(collect_dicom(inputs, skipped), parse_views(views) if views else None)
    planned = outputs.planned_outputs(loops)
    outputs.check_outputs(out, planned)
    spec = None if prompts == "auto" else load_cine_prompts(Path(prompts), loops)
    algorithm = "AUTOMATIC" if prompts == "auto" else "SEMIAUTOMATIC"
    repairs = {}
    for key, cine in loops.items():
        try:
            repairs[key] = check_dicom_seg(cine, algorithm_type=algorithm)
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise DataError(f"{cine.path} (view {key}): checking the DICOM SEG metadata before segmenting: {err}") from err
    warnings = [f"{cine.path.name} ({key}): {w}" for key, cine in loops.items() for w in cine.warnings]
    _tell(warnings, skipped)
    state = {"complete": False, "outputs": planned, "prompts": prompts, "warnings": warnings, "skipped": skipped}
    outputs.write_summary(out, {**state, "reason": "segmenting (interrupted if this stays)"})  # claims the names
    step = "segmenting"
    try:
        results = {
            key: analyse_loop(predictor, key, cine, spec and spec[key], batch_size) for key, cine in loops.items()
        }
        summary = exam_summary(predictor, prompts, results)
        for line in summary.pop("ef_warnings"):
            warnings.append(line)
            print(f"medsam-echo predict: warning: {line}", file=sys.stderr)
        for key, result in results.items():
            step = f"writing the outputs of {result.cine.path} (view {key})"
            _write_loop(out, result, algorithm)
            summary["views"][key]["seg_metadata_repairs"] = repairs[key]
    except BaseException as err:
        reason = f"{step}: {type(err).__name__}: {err}" if str(err) else f"{step}: {type(err).__name__}"
        outputs.write_summary(out, {**state, "reason": reason})
        if isinstance(err, (ValueError, OSError, RuntimeError, KeyError)) and not isinstance(err, DataError):
            raise DataError(reason) from err
        raise
    return outputs.write_summary(out, {**summary, **state, "complete": True, "warnings": warnings})


def _tell(warnings: list[str], skipped: list[str]) -> None:
    for line in warnings:
        print(f"medsam-echo predict: warning: {line}", file=sys.stderr)
    for line in skipped:
        print(f"medsam-echo predict: skipped {line}", file=sys.stderr)


def _write_loop(out: Path, result: LoopResult, algorithm: str = "SEMIAUTOMATIC") -> None:
    from medsam_echo.inference.dicom_seg import write_dicom_seg

    cine, key = result.cine, result.key
    frame_ms = (
        None
        if cine.frame_times_ms is None or cine.n_frames < 2
        else float(np.median(np.diff(cine.frame_times_ms)))
    )
    title = f"{key}: {cine.path.name} (ED / ES from {result.phases.source if result.phases else 'n/a'})"
    outputs.write_labels(out / f"{key}_labels.nii.gz", result.labels, cine.spacing)
    outputs.write_area_csv(
        out / f"{key}_area.csv", result.area, result.unit, cine.frame_times_ms, result.phases
    )
    outputs.plot_area(
        out / f"{key}_area.png", result.area, result.unit, cine.frame_times_ms, result.phases, title
    )
    outputs.write_gif(out / f"{key}_overlay.gif", cine.frames, result.labels, frame_ms)
    outputs.write_atomic(
        out / f"{key}_seg.dcm", lambda tmp: write_dicom_seg(tmp, cine, result.labels, algorithm_type=algorithm)
    )


def no_ef_reason(result: LoopResult) -> str:
    """Why a loop gives no EF (``""`` when it does): a single frame, not an apical view, no complete beat."""
    cine, phases = result.cine, result.phases
    if phases is None:
        return "a single frame: no ED / ES"
    if cine.view not in VIEWS:
        why = f" ({cine.view_problem})" if cine.view_problem else " (the series does not name the view)"
        return (f"not known to be an apical 2CH / 4CH view{why}; if it is one, say so with "
                f"--views 2CH={cine.path.name} or 4CH={cine.path.name}")  # fmt: skip
    if phases.source.endswith("(no complete beat)"):
        return f"no complete beat (ED / ES from the {phases.source}): ED and ES are not both in one cycle"
    return ""


def exam_summary(predictor: EchoPredictor, prompts: str, results: dict[str, LoopResult]) -> dict:
    """``summary.json``'s content: per view the file, frames, spacing and its source, ED / ES; the exam's EF.

    ``ef_warnings`` lists why the EF is not biplane or absent (the caller prints and stores them).
    """
    per_view = {key: _view_summary(result) for key, result in results.items()}
    frames = sum(r.cine.n_frames for r in results.values())
    summary = {"model": predictor.source, "prompts": prompts, "views": per_view,
               "seconds_per_frame": sum(r.seconds for r in results.values()) / max(frames, 1)}  # fmt: skip
    reasons = {key: no_ef_reason(r) for key, r in results.items()}
    usable = {key: r for key, r in results.items() if not reasons[key]}
    notes: list[str] = []
    for key, reason in reasons.items():
        if reason:
            per_view[key]["ef_reason"] = reason
            notes.append(f"{results[key].cine.path.name} ({key}): no EF from this loop: {reason}")
    calibrated = {key for key, r in usable.items() if r.cine.spacing is not None}
    if len(usable) == 2 and len(calibrated) == 1:
        (kept,) = calibrated
        (dropped,) = set(usable) - calibrated
        notes.append(f"{dropped} has no spacing and {kept} has: biplane volumes would mix px and mm, so the "
                     f"EF is single-plane from {kept}")  # fmt: skip
        usable = {kept: usable[kept]}
    loops = {key: (r.labels, r.cine.spacing, r.phases) for key, r in usable.items()}
    if loops:
        summary["exam"] = exam_volumes(loops)
        if summary["exam"]["method"] == AREA_LENGTH and len(results) > 1:
            notes.append(f"the EF is single-plane ({AREA_LENGTH}) from {', '.join(loops)} only")
    else:
        summary["exam"] = {"method": None, "views": [], "edv_ml": None, "esv_ml": None, "ef": None,
                           "reason": "no loop gives an EF: " + "; ".join(f"{k}: {v}" for k, v in reasons.items())}  # fmt: skip
    summary["ef_warnings"] = notes
    return summary


def _view_summary(result: LoopResult) -> dict:
    cine, phases = result.cine, result.phases
    row = {
        "file": str(cine.path),
        "view": cine.view,
        "view_source": cine.view_source or None,
        "view_problem": cine.view_problem or None,
        "frames": cine.n_frames,
        "spacing_mm": None if cine.spacing is None else list(cine.spacing),
        "spacing_source": cine.spacing_source,
        "labels_spacing": "mm, from the file" if cine.spacing is not None else
        "unknown: the label map's header holds 1 per px (not mm) and says so in its description",
        "area_unit": result.unit,
        "sector_region_xyxy": None if cine.region is None else list(cine.region),
        "frame_time_ms": None
        if cine.frame_times_ms is None or cine.n_frames < 2
        else float(np.median(np.diff(cine.frame_times_ms))),
        "mean_predicted_iou": float(np.mean(result.scores)),
        "warnings": list(cine.warnings),
    }
    if phases is not None:
        row |= {"ed_frame": phases.ed, "es_frame": phases.es, "phase_source": phases.source,
                "beats": [{"ed_frame": ed, "es_frame": es} for ed, es in phases.beats]}  # fmt: skip
        if cine.view in VIEWS and not no_ef_reason(result):
            row["area_length"] = per_view_area_length(result.labels, cine.spacing, phases)
    return row
