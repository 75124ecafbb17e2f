"""A user's own folder of echo frames and label maps, described by a small YAML file.

Layout (the contract; anything else is an error naming the file)::

    root/
      dataset.yaml
      images/<stem>.{png,jpg,jpeg,tif,nii,nii.gz,mhd}
      labels/<stem>.{png,tif,nii,nii.gz,mhd}     # same stem as its image

``dataset.yaml``::

    labels: {background: 0, lv_endo: 255}   # names from medsam_echo LABELS -> value stored in label files
    spacing: [0.3, 0.3]                      # optional (sx, sy) mm for files without a header (PNG / JPEG)
    patient_regex: "^(patient\\d+)"          # optional; group 1 of a match on the stem is the patient id
    splits: {train: [p1, p2], val: [p3], test: [p4]}   # optional, patient ids

Stored label values are remapped to the CAMUS values of :data:`~medsam_echo.data.sample.LABELS`; a value
the YAML does not list is an error naming the label file. A stem that names its view and phase as CAMUS
does (``..._2CH_ED``, ``..._4CH_ES``) gives the sample that view and phase, so ``evaluate`` computes the
biplane EF of such a dataset.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from medsam_echo.data.base import Case, CaseDataset
from medsam_echo.data.camus import check_spacing
from medsam_echo.data.io import PHOTO_SUFFIXES, DataError, image_suffix, read_image, read_text
from medsam_echo.data.sample import LABELS, EchoSample
from medsam_echo.data.splits import check_disjoint

CONFIG_NAME = "dataset.yaml"
_KEYS = {"labels", "spacing", "patient_regex", "splits"}
_VIEW_PHASE = re.compile(r"_([24]CH)_(ED|ES)(?:_|$)", re.IGNORECASE)


def load_config(path: str | Path) -> dict:
    """Read and validate a ``dataset.yaml``; returns it with defaults filled in."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: dataset description not found (see medsam_echo.data.folder for its format)")
    try:
        config = yaml.safe_load(read_text(path, "dataset description")) or {}
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(config, dict) or set(config) - _KEYS:
        raise DataError(f"{path}: expected a mapping with keys from {sorted(_KEYS)}, got {config!r:.200}")
    labels = config.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"{path}: 'labels' must map label names to stored values, e.g. {{lv_endo: 1}}")
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise DataError(f"{path}: unknown label names {unknown}; use names from {sorted(LABELS)}")
    if not all(isinstance(v, int) and v >= 0 for v in labels.values()) or len(set(labels.values())) < len(
        labels
    ):
        raise DataError(f"{path}: label values must be distinct non-negative integers, got {labels}")
    spacing = config.get("spacing")
    if spacing is not None and not (len(spacing) == 2 and all(float(s) > 0 for s in spacing)):
        raise DataError(f"{path}: 'spacing' must be [sx, sy] in mm, both > 0, got {spacing}")
    splits = config.get("splits") or {}
    if set(splits) - {"train", "val", "test"}:
        raise DataError(f"{path}: 'splits' keys must be train / val / test, got {sorted(splits)}")
    check_disjoint(splits, source=str(path))
    return {
        "labels": labels,
        "spacing": spacing,
        "patient_regex": config.get("patient_regex"),
        "splits": splits,
    }


class FolderDataset(CaseDataset):
    """Images and label maps from a folder described by ``dataset.yaml`` (see the module docstring).

    Args:
        root: the folder holding ``dataset.yaml``, ``images/`` and ``labels/``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` for all images.
        require_labels: an image without a label file is an error (``on_missing="raise"``) or a counted
            skip (``"skip"``); with ``False`` it is kept as an unlabelled sample.
        on_missing: ``"raise"`` or ``"skip"``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        require_labels: bool = True,
        on_missing: str = "raise",
    ) -> None:
        super().__init__(on_missing)
        self.root = Path(root)
        self.config = load_config(self.root / CONFIG_NAME)
        stored = np.array(list(self.config["labels"].values()))
        self._lut = np.full(int(stored.max()) + 1, -1, dtype=np.int16)
        self._lut[stored] = [LABELS[name] for name in self.config["labels"]]
        if not (self.root / "images").is_dir():
            raise DataError(f"{self.root / 'images'}: images folder not found")
        images, labels = _files_by_stem(self.root / "images"), _files_by_stem(self.root / "labels")
        orphans = sorted(set(labels) - set(images))
        if orphans:
            raise DataError(f"{labels[orphans[0]]}: label file without an image of the same stem in images/")
        owner = {p: s for s, members in self.config["splits"].items() for p in members}
        cases = []
        for stem, image in images.items():
            label = labels.get(stem)
            if label is None and require_labels:
                self._missing(f"{self.root / 'labels'}: no label file for image {image.name}")
                continue
            patient = self._patient(stem)
            view, phase = _view_phase(stem)
            cases.append(Case(stem, patient, owner.get(patient, ""), image, label, view, phase))
        self._set_cases([c for c in cases if split is None or c.split == split])

    def _patient(self, stem: str) -> str:
        pattern = self.config["patient_regex"]
        if not pattern:
            return stem
        match = re.match(pattern, stem)
        if not match or not match.groups():
            raise DataError(
                f"{self.root / CONFIG_NAME}: patient_regex {pattern!r} has no group 1 match in {stem!r}"
            )
        return match.group(1)

    def _load(self, case: Case) -> EchoSample:
        image, spacing = read_image(case.image_path)
        spacing_source = "header"
        if image_suffix(case.image_path) in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            configured = self.config["spacing"]
            spacing = tuple(float(s) for s in configured) if configured else (1.0, 1.0)
            spacing_source = "dataset.yaml" if configured else "default (1 px = 1 mm)"
        header = None if spacing_source != "header" else spacing
        label = None if case.label_path is None else self._label(case.label_path, image.shape[:2], header)
        meta = {"image_path": str(case.image_path), "label_path": case.label_path and str(case.label_path)}
        meta["spacing_source"] = spacing_source
        return EchoSample(image, label, spacing, case.case_id, case.patient, split=case.split, view=case.view,
                          phase=case.phase, meta=meta)

    def _label(self, path: Path, shape: tuple[int, int], spacing: tuple[float, float] | None) -> np.ndarray:
        stored, label_spacing = read_image(path)
        if stored.shape != shape:
            raise DataError(f"{path}: label shape {stored.shape} differs from its image's shape {shape}")
        if image_suffix(path) not in PHOTO_SUFFIXES:  # both headers hold a spacing: they must agree
            check_spacing(path, label_spacing, spacing)
        if not np.issubdtype(stored.dtype, np.integer):
            raise DataError(f"{path}: label map must hold integers, got {stored.dtype}")
        values = np.unique(stored)
        bad = [int(v) for v in values if v < 0 or v >= len(self._lut) or self._lut[v] < 0]
        if bad:
            raise DataError(
                f"{path}: label values {bad[:5]} are not in the label map {self.config['labels']}"
            )
        return self._lut[stored].astype(np.uint8)


def _view_phase(stem: str) -> tuple[str, str]:
    """``("2CH", "ED")`` from a stem like ``patient0001_2CH_ED``; ``("", "")`` when it names neither."""
    match = _VIEW_PHASE.search(stem)
    return (match.group(1).upper(), match.group(2).upper()) if match else ("", "")


def _files_by_stem(folder: Path) -> dict[str, Path]:
    """stem -> file for the image files in ``folder`` (sorted); two files with one stem is an error."""
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        suffix = image_suffix(path)
        if not suffix or path.name.startswith("."):
            continue
        stem = path.name[: -len(suffix)]
        if stem in found:
            raise DataError(f"{path}: same stem as {found[stem]}; keep one file per image")
        found[stem] = path
    return found
