"""What a cine-loop prediction writes, atomically, and never over files the command did not write.

Per loop ``KEY`` (the view, or the file's stem when the view is unknown):

- ``KEY_labels.nii.gz``: ``(T, H, W)`` label maps (CAMUS values) with the spacing; when the file has
  none, NIfTI still needs a number: the header holds 1 per px and its description (``descrip``) says
  :data:`NO_SPACING_NOTE`, as does ``summary.json`` (``labels_spacing``) -- never an unmarked 1 mm;
- ``KEY_area.csv``: ``frame, time_ms, area, phase`` (area in the unit of the header, mm2 or px2);
- ``KEY_area.png``: the area curve with ED / ES marked (matplotlib's Agg canvas);
- ``KEY_overlay.gif``: the loop with the label maps tinted (Pillow);
- ``KEY_seg.dcm``: the DICOM Segmentation over the source loop (:mod:`~medsam_echo.inference.dicom_seg`);

and ``summary.json`` for the exam, whose ``outputs`` list is what the command wrote: a later run may
replace exactly those files, any other existing file of the same name is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from medsam_echo.data.io import DataError, write_image
from medsam_echo.inference.export import overlay

SUMMARY = "summary.json"
WRITER = "medsam-echo predict (DICOM cine)"
SUFFIXES = ("_labels.nii.gz", "_area.csv", "_area.png", "_overlay.gif", "_seg.dcm")
NO_SPACING_NOTE = "spacing unknown: 1 voxel = 1 px, not mm"  # the NIfTI description (80 bytes at most)


def planned_outputs(keys: Iterable[str]) -> list[str]:
    """File names the command writes for loops ``keys``, ``summary.json`` last."""
    return [f"{key}{suffix}" for key in keys for suffix in SUFFIXES] + [SUMMARY]


def check_outputs(out: Path, names: list[str]) -> None:
    """Refuse to start when ``out`` holds any of ``names`` that an earlier run of this command did not write.

    Raises:
        DataError: naming the first such file.
    """
    previous = _previous_outputs(out)
    for name in names:
        if (out / name).exists() and name not in previous:
            raise DataError(
                f"{out / name}: exists and was not written by {WRITER}; refusing to overwrite it "
                "(choose another --out)"
            )


def _previous_outputs(out: Path) -> set[str]:
    path = out / SUMMARY
    if not path.exists():
        return set()
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return set()
    if not isinstance(summary, dict) or summary.get("writer") != WRITER:
        return set()
    return set(summary.get("outputs", [])) | {SUMMARY}


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` with ``tmp`` of the same name in a hidden sibling folder, then move it to ``path``.

    Keeps the name (writers pick the format from the suffix); ``path`` appears complete or not at all.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(folder / path.name)
        os.replace(folder / path.name, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def write_labels(path: Path, labels: np.ndarray, spacing: tuple[float, float] | None) -> Path:
    """``(T, H, W)`` label maps as NIfTI (uint16 for a 3-frame stack, which would read back as RGB).

    Without ``spacing`` the header's description says :data:`NO_SPACING_NOTE` (module docstring).
    """
    stack = labels.astype(np.uint16) if len(labels) == 3 else labels
    if len(labels) == 1:
        stack = labels[0]
    if spacing is not None:
        return write_atomic(path, lambda tmp: write_image(tmp, stack, spacing))

    def unmarked(tmp: Path) -> None:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(stack))
        image.SetSpacing((1.0,) * image.GetDimension())
        image.SetMetaData("ITK_FileNotes", NO_SPACING_NOTE)  # ITK writes it as the NIfTI descrip
        sitk.WriteImage(image, str(tmp), useCompression=True)

    return write_atomic(path, unmarked)


def write_area_csv(path: Path, area: np.ndarray, unit: str, times_ms: np.ndarray | None, phases) -> Path:
    """One row per frame: ``frame, time_ms, area_<unit>, phase`` (``ED`` / ``ES`` / empty)."""
    marks = _marks(phases)
    rows = [f"frame,time_ms,area_{unit},phase"]
    for t, value in enumerate(area):
        time = "" if times_ms is None else f"{times_ms[t]:.3f}"
        rows.append(f"{t},{time},{value:.3f},{marks.get(t, '')}")
    return write_atomic(path, lambda tmp: tmp.write_text("\n".join(rows) + "\n"))


def _marks(phases) -> dict[int, str]:
    marks: dict[int, str] = {}
    for ed, es in phases.beats if phases is not None else []:
        marks[ed] = "ED"
        if es is not None:
            marks[es] = "ES"
    return marks


def plot_area(path: Path, area: np.ndarray, unit: str, times_ms: np.ndarray | None, phases, title: str) -> Path:
    """The area curve (x: time in s, or frame index) with every ED (red) and ES (blue) marked.

    Drawn on a ``matplotlib.figure.Figure`` (the Agg canvas), never ``pyplot``: no backend is touched.
    """
    from matplotlib.figure import Figure

    x = np.arange(len(area)) if times_ms is None else np.asarray(times_ms) / 1000.0
    fig = Figure(figsize=(6, 3), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.plot(x, area, "k.-", lw=1)
    marks = _marks(phases)
    for phase, colour in (("ED", "tab:red"), ("ES", "tab:blue")):
        idx = [t for t, m in marks.items() if m == phase]
        ax.plot(x[idx], area[idx], "o", color=colour, label=phase)
    ax.set_xlabel("frame" if times_ms is None else "time (s)")
    ax.set_ylabel(f"LV cavity area ({unit.replace('2', '²')})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_gif(path: Path, frames: np.ndarray, labels: np.ndarray, frame_ms: float | None) -> Path:
    """The loop ``(T, H, W)`` with its label maps tinted, as a looping GIF (``frame_ms`` per frame, default 40)."""
    from PIL import Image

    pictures = [Image.fromarray(overlay(frame, label)) for frame, label in zip(frames, labels, strict=True)]
    duration = int(round(frame_ms or 40.0))

    def save(tmp: Path) -> None:
        pictures[0].save(
            tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0
        )

    return write_atomic(path, save)


def write_summary(out: Path, summary: dict) -> Path:
    """``summary.json`` (NaN written as null), with the writer's name that :func:`check_outputs` looks for."""
    text = json.dumps(_no_nan({"writer": WRITER, **summary}), indent=2) + "\n"
    return write_atomic(out / SUMMARY, lambda tmp: tmp.write_text(text))


def _no_nan(value):
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
