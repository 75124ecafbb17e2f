"""File mode of ``medsam-echo predict``: images in, label maps + overlays + one COCO file out.

``PROMPTS.json`` maps input file names to a list of ``{"structure": name, "box": [x0, y0, x1, y1]}``
and / or ``{"points": [[x, y], ...], "labels": [1, 0, ...]}`` entries (px of that image, inclusive
boxes); each structure is decoded on its own, then all are combined into one label map. ``auto``
instead uses the predictor's automatic mode, with the view read from the file name when it says
``2CH`` / ``4CH``. Outputs per input: ``<stem>.png`` (``<stem>.nii.gz`` for NIfTI / MetaImage
inputs, with the spacing) and ``<stem>_overlay.png``; and ``coco.json`` for all of them (its ``score``:
the predicted IoU of a prompted structure, the confidence of an automatic one, also in ``confidence.csv``).

Nothing the command did not write is replaced: before the first image is read, the output folder is
refused when it is an input folder or an input file, when an output would land on an input, and when it
holds a file of an output's name that an earlier run of this mode did not write (``predict_files.json``
lists what a run wrote; it is written first, with ``complete: false``, and completed at the end).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from medsam_echo.atomic import atomic_write_text
from medsam_echo.data.io import (
    IMAGE_SUFFIXES,
    MEDICAL_SUFFIXES,
    DataError,
    image_suffix,
    read_image,
    read_text,
    write_image,
)
from medsam_echo.data.sample import STRUCTURES
from medsam_echo.inference.export import CocoWriter, overlay
from medsam_echo.inference.predictor import EchoPredictor
from medsam_echo.inference.review import confidence_rows, label_scores, print_review, write_confidence
from medsam_echo.prompts.decode import combine_structures

_ENTRY_KEYS = {"structure", "box", "points", "labels"}
MARKER = "predict_files.json"
WRITER = "medsam-echo predict (files)"


def collect_inputs(inputs: list[Path]) -> list[Path]:
    """Files given, and the image files (``IMAGE_SUFFIXES``) of folders given, in sorted order."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and image_suffix(p))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: input not found")
    if not files:
        raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    for what, keys in (
        ("file name", [f.name for f in files]),
        ("output stem", [output_stem(f) for f in files]),
    ):
        clash = sorted({k for k in keys if keys.count(k) > 1})
        if clash:
            same = [str(f) for f in files if clash[0] in (f.name, output_stem(f))]
            raise DataError(f"inputs share the {what} {clash[0]!r}: {same}")
    return files


def output_stem(path: Path) -> str:
    """``a`` for ``a.png`` and ``a.nii.gz``: the name of the outputs written for an input."""
    return path.name[: -len(image_suffix(path))]


def load_prompt_file(path: Path) -> dict[str, list[dict]]:
    """Read and check ``PROMPTS.json`` (module docstring); errors name the file, the image and the entry."""
    try:
        data = json.loads(read_text(path, "prompts file"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: cannot read the prompts file ({err})") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object mapping file names to lists of prompts")
    for name, entries in data.items():
        if not isinstance(entries, list) or not entries:
            raise DataError(f"{path}: {name!r}: expected a non-empty list of prompts")
        for i, entry in enumerate(entries):
            where = f"{path}: {name!r}[{i}]"
            if not isinstance(entry, dict) or set(entry) - _ENTRY_KEYS:
                raise DataError(
                    f"{where}: expected an object with keys from {sorted(_ENTRY_KEYS)}, got {entry!r}"
                )
            if entry.get("structure") not in STRUCTURES:
                raise DataError(
                    f"{where}: 'structure' must be one of {sorted(STRUCTURES)}, "
                    f"got {entry.get('structure')!r}"
                )
        names = [entry["structure"] for entry in entries]
        if len(set(names)) != len(names):
            raise DataError(f"{path}: {name!r}: a structure is prompted twice: {names}")
    return data


def prompted_label_map(predictor: EchoPredictor, entries: list[dict], where: str) -> tuple[np.ndarray, dict]:
    """Decode each structure's prompt; returns the combined label map and ``{structure: score}``."""
    logits, scores = [], {}
    for i, entry in enumerate(entries):
        try:
            out = predictor.predict(
                boxes=entry.get("box"),
                points=entry.get("points"),
                point_labels=entry.get("labels"),
                structure=entry["structure"],
            )
        except ValueError as err:
            raise DataError(f"{where}[{i}] ({entry['structure']}): {err}") from err
        logits.append(out.logits[0])
        scores[entry["structure"]] = float(out.scores[0])
    return combine_structures(np.stack(logits), [e["structure"] for e in entries]), scores


def view_from_name(name: str) -> str | None:
    """``"2CH"`` / ``"4CH"`` when the file name says so (CAMUS names do), else ``None``."""
    match = re.search(r"(?<![0-9A-Za-z])([24]CH)(?![0-9A-Za-z])", name.upper().replace("_", " "))
    return match.group(1) if match else None


def predict_files(
    predictor: EchoPredictor,
    inputs: list[Path],
    prompts: str,
    out: Path,
    view: str | None = None,
    *,
    auto_method: str | None = None,
    review_below: float | None = None,
) -> Path:
    """File mode (module docstring); returns the path of ``coco.json``.

    With ``prompts="auto"`` the COCO ``score`` of each label is its confidence, also written to
    ``out/confidence.csv`` (and ``out/review.csv`` with ``review_below``; :mod:`~medsam_echo.inference.review`).
    """
    files = collect_inputs(inputs)
    spec = None if prompts == "auto" else load_prompt_file(Path(prompts))
    if spec is not None:
        unknown = sorted(set(spec) - {f.name for f in files})
        if unknown:
            raise DataError(f"{prompts}: prompts for files that are not among the inputs: {unknown}")
        missing = [f.name for f in files if f.name not in spec]
        if missing:
            raise DataError(f"{prompts}: no prompts for input {missing[0]!r}")
    planned = planned_outputs(files, auto=spec is None, review=review_below is not None)
    check_outputs(out, inputs, files, planned)
    _mark(out, planned, complete=False)
    writer = CocoWriter()
    rows: list[dict] = []
    for path in files:
        image, spacing = read_image(path)
        try:
            predictor.set_image(image, spacing)
        except ValueError as err:  # an image the model cannot take (too small, wrong shape)
            raise DataError(f"{path}: {err}") from None
        if spec is None:
            seg = predictor.segment(view=view or view_from_name(path.name), method=auto_method)
            label = seg.label_map
            case_rows = confidence_rows(path.name, seg)
            rows += case_rows
            scores = label_scores(case_rows)
        else:
            label, scores = prompted_label_map(predictor, spec[path.name], f"{prompts}: {path.name!r}")
        stem = output_stem(path)
        suffix = ".nii.gz" if image_suffix(path) in MEDICAL_SUFFIXES else ".png"
        write_image(out / f"{stem}{suffix}", label, spacing=spacing)
        write_image(out / f"{stem}_overlay.png", overlay(image, label))
        writer.add(path.name, label, scores)
    if spec is None:
        print_review(write_confidence(out, rows, review_below), len(files), review_below)
    path = writer.write(out / "coco.json")
    _mark(out, planned, complete=True)
    return path


def planned_outputs(files: list[Path], *, auto: bool, review: bool = False) -> list[str]:
    """The names file mode writes for ``files`` (module docstring), :data:`MARKER` last."""
    names = []
    for path in files:
        stem = output_stem(path)
        names += [f"{stem}{'.nii.gz' if image_suffix(path) in MEDICAL_SUFFIXES else '.png'}", f"{stem}_overlay.png"]
    names.append("coco.json")
    if auto:
        names += ["confidence.csv"] + (["review.csv"] if review else [])
    return [*names, MARKER]


def check_outputs(out: Path, inputs: list[Path], files: list[Path], planned: list[str]) -> None:
    """Refuse to start when writing ``planned`` into ``out`` could destroy a file the command did not write.

    Raises:
        DataError: ``out`` is a file, an input folder, or an output would replace an input or a file that an
            earlier file-mode run did not write (names the first).
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: is a file, not a folder; choose a folder")
    target = out.resolve()
    for path in inputs:
        if path.is_dir() and path.resolve() == target:
            raise DataError(f"--out {out}: is the input folder {path}; the label maps would land among the "
                            "images (and could replace them): choose another folder")  # fmt: skip
    sources = {f.resolve() for f in files}
    previous = _previous_outputs(out)
    for name in planned:
        dest = out / name
        if dest.resolve() in sources:
            raise DataError(f"{dest}: is an input; choose another --out")
        if (dest.exists() or dest.is_symlink()) and name not in previous:
            raise DataError(f"{dest}: exists and was not written by {WRITER}; refusing to overwrite it "
                            "(choose another --out)")  # fmt: skip


def _previous_outputs(out: Path) -> set[str]:
    try:
        marker = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(marker, dict) or marker.get("writer") != WRITER:
        return set()
    return {str(n) for n in marker.get("outputs", [])} | {MARKER}


def _mark(out: Path, planned: list[str], *, complete: bool) -> None:
    """:data:`MARKER`: what this run writes (so that a rerun may replace exactly those), and whether it ended."""
    record = {"writer": WRITER, "complete": complete, "outputs": planned}
    atomic_write_text(out / MARKER, json.dumps(record, indent=2) + "\n")
