"""File mode of ``medsam-echo predict``: images in, label maps + overlays + one COCO file out.

``PROMPTS.json`` maps input file names to a list of ``{"structure": name, "box": [x0, y0, x1, y1]}``
and / or ``{"points": [[x, y], ...], "labels": [1, 0, ...]}`` entries (px of that image, inclusive
boxes); each structure is decoded on its own, then all are combined into one label map. ``auto``
instead uses the predictor's automatic mode, with the view read from the file name when it says
``2CH`` / ``4CH``. Outputs per input: ``<stem>.png`` (``<stem>.nii.gz`` for NIfTI / MetaImage
inputs, with the spacing) and ``<stem>_overlay.png``; and ``coco.json`` for all of them (its ``score``:
the predicted IoU of a prompted structure, the confidence of an automatic one, also in ``confidence.csv``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

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
    out.mkdir(parents=True, exist_ok=True)
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
        elif path.name not in spec:
            raise DataError(f"{prompts}: no prompts for input {path.name!r}")
        else:
            label, scores = prompted_label_map(predictor, spec[path.name], f"{prompts}: {path.name!r}")
        stem = output_stem(path)
        suffix = ".nii.gz" if image_suffix(path) in MEDICAL_SUFFIXES else ".png"
        write_image(out / f"{stem}{suffix}", label, spacing=spacing)
        write_image(out / f"{stem}_overlay.png", overlay(image, label))
        writer.add(path.name, label, scores)
    if spec is None:
        print_review(write_confidence(out, rows, review_below), len(files), review_below)
    return writer.write(out / "coco.json")
