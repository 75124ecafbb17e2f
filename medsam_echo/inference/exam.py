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
value a list of entries for every frame, or ``{"<frame>": [entries], ...}`` for key frames (see
:class:`~medsam_echo.inference.cine.CinePrompts`); entries as in :mod:`~medsam_echo.inference.files`,
px of the full frame.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsam_echo.data.dicom import DicomCine, is_dicom_file, read_dicom_cine
from medsam_echo.data.io import DataError
from medsam_echo.data.sample import STRUCTURES
from medsam_echo.inference import cine_outputs as outputs
from medsam_echo.inference.cine import (
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
    SEG written by an earlier run ...) is left out, with a line appended to ``skipped``.
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
        return {
            view: _with_view(read_dicom_cine(_find(name, files)), view, "--views")
            for view, name in views.items()
        }
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
    """``PROMPTS.json`` (module docstring) as ``{loop key: CinePrompts}``; errors name the file and entry."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read the prompts file ({err})") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object mapping file names or views to prompts")
    prompts = {}
    for key, cine in loops.items():
        spec = data.get(cine.path.name, data.get(key))
        if spec is None:
            raise DataError(
                f"{path}: no prompts for {cine.path.name!r} (view {key}); key them by file name or view"
            )
        keys = {0: spec} if isinstance(spec, list) else spec
        if not isinstance(keys, dict) or not keys:
            raise DataError(f"{path}: {key}: expected a list of prompts or {{frame: [prompts]}}")
        prompts[key] = CinePrompts({_frame(path, key, k, cine.n_frames): _entries(path, key, k, v)
                                    for k, v in keys.items()})  # fmt: skip
    return prompts


def _frame(path: Path, key: str, frame, n: int) -> int:
    try:
        index = int(frame)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < n:
        raise DataError(f"{path}: {key}: key frame {frame!r} is not a frame index in 0..{n - 1}")
    return index


def _entries(path: Path, key: str, frame, entries) -> list[dict]:
    where = f"{path}: {key} frame {frame}"
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{where}: expected a non-empty list of prompts")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("structure") not in STRUCTURES:
            raise DataError(
                f"{where}[{i}]: expected {{'structure': one of {sorted(STRUCTURES)}, 'box' / 'points'}}"
            )
        if not {"box", "points"} & set(entry):
            raise DataError(f"{where}[{i}]: no 'box' and no 'points'")
    return entries


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
    labels, scores = segment_cine(predictor, cine.frames, prompts, spacing=cine.spacing, view=cine.view,
                                  crop=cine.region, batch_size=batch_size)  # fmt: skip
    seconds = time.perf_counter() - start
    area, unit = area_curve(labels, cine.spacing)
    phases = None
    if cine.n_frames > 1:
        phases = find_phases(area, cine.frame_times_ms, cine.r_waves_ms, cine.heart_rate)
        if phases.source.startswith("ECG R-waves"):
            phases.source = phases.source.replace("ECG R-waves", f"ECG R-waves ({cine.r_wave_source})", 1)
    return LoopResult(key, cine, labels, scores, area, unit, phases, seconds)


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
    from medsam_echo.inference.dicom_seg import highdicom_module

    highdicom_module()  # fail before segmenting when the SEG cannot be written
    skipped: list[str] = []
    loops = assign_views(collect_dicom(inputs, skipped), parse_views(views) if views else None)
    outputs.check_outputs(out, outputs.planned_outputs(loops))
    spec = None if prompts == "auto" else load_cine_prompts(Path(prompts), loops)
    results = {
        key: analyse_loop(predictor, key, cine, spec and spec[key], batch_size) for key, cine in loops.items()
    }
    planned = outputs.planned_outputs(loops)
    outputs.write_summary(out, {"complete": False, "outputs": planned})  # claims the names before writing
    for result in results.values():
        _write_loop(out, result)
    summary = {**exam_summary(predictor, prompts, results), "skipped": skipped}
    return outputs.write_summary(out, {**summary, "complete": True, "outputs": planned})


def _write_loop(out: Path, result: LoopResult) -> None:
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
    outputs.write_atomic(out / f"{key}_seg.dcm", lambda tmp: write_dicom_seg(tmp, cine, result.labels))


def exam_summary(predictor: EchoPredictor, prompts: str, results: dict[str, LoopResult]) -> dict:
    """``summary.json``'s content: per view the file, frames, spacing and its source, ED / ES; the exam's EF."""
    per_view = {key: _view_summary(result) for key, result in results.items()}
    frames = sum(r.cine.n_frames for r in results.values())
    summary = {"model": predictor.source, "prompts": prompts, "views": per_view,
               "seconds_per_frame": sum(r.seconds for r in results.values()) / max(frames, 1)}  # fmt: skip
    loops = {key: (r.labels, r.cine.spacing, r.phases) for key, r in results.items() if r.phases is not None}
    if loops:
        summary["exam"] = exam_volumes(loops)
    else:
        summary["exam"] = {"method": None, "note": "single-frame images: no ED / ES, no volumes"}
    return summary


def _view_summary(result: LoopResult) -> dict:
    cine, phases = result.cine, result.phases
    row = {
        "file": str(cine.path),
        "view": cine.view,
        "view_source": cine.view_source or None,
        "frames": cine.n_frames,
        "spacing_mm": None if cine.spacing is None else list(cine.spacing),
        "spacing_source": cine.spacing_source,
        "area_unit": result.unit,
        "sector_region_xyxy": None if cine.region is None else list(cine.region),
        "frame_time_ms": None
        if cine.frame_times_ms is None or cine.n_frames < 2
        else float(np.median(np.diff(cine.frame_times_ms))),
        "mean_predicted_iou": float(np.mean(result.scores)),
    }
    if phases is not None:
        row |= {"ed_frame": phases.ed, "es_frame": phases.es, "phase_source": phases.source,
                "beats": [{"ed_frame": ed, "es_frame": es} for ed, es in phases.beats],
                "area_length": per_view_area_length(result.labels, cine.spacing, phases)}  # fmt: skip
    return row
