"""CAMUS, both public releases, as a lazy sequence of :class:`EchoSample`.

Layouts (auto-detected from ``root``; see Leclerc et al., IEEE TMI 2019):

- ``camus-nifti`` (2023): ``database_nifti/patientXXXX/patientXXXX_{2CH,4CH}_{ED,ES}[_gt].nii.gz``,
  ``..._half_sequence[_gt].nii.gz``, optional ``Info_{2CH,4CH}.cfg``, and
  ``database_split/subgroup_{training,validation,testing}.txt`` -> splits ``train`` / ``val`` / ``test``.
- ``camus-mhd`` (2019): ``training/patientXXXX/...{ED,ES}[_gt].mhd`` (+ ``.raw``), ``..._sequence.mhd``,
  the same Info files, and ``testing/`` patients without labels (split ``test``). The release has no split
  files: ``train`` / ``val`` come from a seeded 10-fold patient-level split stratified by EF and image
  quality, saved as nnU-Net-style ``splits_final.json`` and reused (see :mod:`medsam_echo.data.splits`).

Images are returned as SimpleITK reads them: ``[y, x]`` with the apex at the top; spacing from the headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsam_echo.data.base import Case, CaseDataset
from medsam_echo.data.io import DataError, read_image, read_text
from medsam_echo.data.sample import LABELS, EchoSample, TracedFrames, VideoSample
from medsam_echo.data.splits import check_disjoint, ef_quality_stratum, load_or_create_folds
from medsam_echo.data.video import MissingVideoError, VideoDataset

N_FOLDS = 10  # 2019 release: folds of the training patients (fewer if there are fewer patients)
VIEWS = ("2CH", "4CH")
PHASES = ("ED", "ES")
LAYOUTS: dict[str, dict] = {
    "camus-nifti": {"dirs": {"database_nifti": ""}, "ext": ".nii.gz", "sequence": "half_sequence"},
    "camus-mhd": {"dirs": {"training": "", "testing": "test"}, "ext": ".mhd", "sequence": "sequence"},
}
SUBGROUPS = {
    "train": "subgroup_training.txt",
    "val": "subgroup_validation.txt",
    "test": "subgroup_testing.txt",
}
_VALID_LABELS = np.array(sorted(LABELS.values()))


def detect_layout(root: str | Path) -> str:
    """``"camus-nifti"`` or ``"camus-mhd"``; raises :class:`DataError` naming ``root`` otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: CAMUS root folder not found")
    if (root / "database_nifti").is_dir():
        return "camus-nifti"
    if (root / "training").is_dir() or (root / "testing").is_dir():
        return "camus-mhd"
    raise DataError(
        f"{root}: not a CAMUS root (expected database_nifti/ (2023) or training/ + testing/ (2019))"
    )


def parse_info(path: str | Path) -> dict[str, object]:
    """Parse a CAMUS ``Info_*.cfg`` file of ``key: value`` lines; numbers become int / float."""
    path = Path(path)
    info: dict[str, object] = {}
    for number, line in enumerate(read_text(path, "Info file").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise DataError(f"{path}:{number}: expected 'key: value', got {line!r}")
        info[key.strip()] = _number(value.strip())
    return info


def info_ef(info: dict[str, object]) -> float | None:
    """The EF in % of a parsed Info file: ``EF`` (2023 release) or ``LVef`` (2019 release), else None."""
    value = info.get("EF", info.get("LVef"))
    return float(value) if isinstance(value, (int, float)) else None


def _number(text: str) -> object:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@dataclass
class EchoSequence:
    """A (half-)sequence of one view: ``frames`` ``(T, H, W)``, ``labels`` ``(T, H, W)`` uint8 or ``None``,
    ``spacing`` ``(sx, sy)`` mm, and ``meta`` with the Info fields (ED / ES frame numbers are 1-based)."""

    frames: np.ndarray
    labels: np.ndarray | None
    spacing: tuple[float, float]
    patient: str
    view: str
    split: str
    meta: dict

    def frame(self, index: int) -> EchoSample:
        """Frame ``index`` (0-based) as an :class:`EchoSample` with phase ``f001``-style (1-based)."""
        tag = f"f{index % len(self.frames) + 1:03d}"
        label = None if self.labels is None else self.labels[index]
        case_id = f"{self.patient}_{self.view}_{tag}"
        return EchoSample(
            self.frames[index],
            label,
            self.spacing,
            case_id,
            self.patient,
            self.view,
            tag,
            self.split,
            self.meta,
        )


class CamusDataset(CaseDataset):
    """CAMUS images as :class:`EchoSample`, decoded lazily in ``__getitem__``.

    Args:
        root: the release folder (holding ``database_nifti/`` or ``training/`` / ``testing/``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` for all patients.
        views: views to include, subset of ``("2CH", "4CH")``.
        phases: phases to include, subset of ``("ED", "ES")``.
        on_missing: ``"raise"`` (default) on a missing image or ground-truth file, or ``"skip"``: leave
            that case out and record it in :attr:`skipped`.
        fold: 2019 release only: which of the 10 folds (fewer if fewer training patients) is ``val``.
        splits_path: 2019 release only: the folds JSON (default ``root/splits_final.json``).
        seed: 2019 release only: seed of the folds when they are first made.
        save_splits: 2019 release only: write newly made folds to ``splits_path`` (default True).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        views: Sequence[str] = VIEWS,
        phases: Sequence[str] = PHASES,
        on_missing: str = "raise",
        fold: int = 0,
        splits_path: str | Path | None = None,
        seed: int = 0,
        save_splits: bool = True,
    ) -> None:
        _check_split(split)
        for name, given, allowed in (("views", views, VIEWS), ("phases", phases, PHASES)):
            if not set(given) <= set(allowed):
                raise ValueError(f"{name} must be a subset of {allowed}, got {tuple(given)}")
        super().__init__(on_missing)
        self.root = Path(root)
        self.layout = detect_layout(self.root)
        self.views, self.phases = tuple(views), tuple(phases)
        self._dirs = self._patient_dirs()
        self.patient_split = self._splits(fold, splits_path, seed, save_splits)
        self._set_cases([c for c in self._index() if split is None or c.split == split])

    # ---- indexing -------------------------------------------------------------------------------
    def _patient_dirs(self) -> dict[str, tuple[Path, str]]:
        """patient -> (its folder, fixed split of its release folder or "")."""
        found: dict[str, tuple[Path, str]] = {}
        for sub, fixed_split in LAYOUTS[self.layout]["dirs"].items():
            for folder in sorted((self.root / sub).glob("patient*")) if (self.root / sub).is_dir() else []:
                if folder.name in found:
                    raise DataError(f"{folder}: patient also present in {found[folder.name][0]}")
                found[folder.name] = (folder, fixed_split)
        if not found:
            raise DataError(f"{self.root}: no patient* folders found for layout {self.layout}")
        return found

    def _splits(self, fold: int, splits_path: str | Path | None, seed: int, save: bool) -> dict[str, str]:
        if self.layout == "camus-nifti":
            return self._subgroup_splits()
        fixed = {p: s for p, (_, s) in self._dirs.items() if s}
        training = sorted(p for p in self._dirs if p not in fixed)
        if len(training) < 2:
            return {**{p: "train" for p in training}, **fixed}
        strata = {p: ef_quality_stratum(*self._ef_quality(p)) for p in training}
        path = splits_path or self.root / "splits_final.json"
        n_folds = min(N_FOLDS, len(training))
        folds = load_or_create_folds(path, training, strata, n_folds=n_folds, seed=seed, save=save)
        if not 0 <= fold < len(folds):
            raise ValueError(f"fold must be in 0..{len(folds) - 1}, got {fold}")
        return {
            **{p: "train" for p in folds[fold]["train"]},
            **{p: "val" for p in folds[fold]["val"]},
            **fixed,
        }

    def _subgroup_splits(self) -> dict[str, str]:
        folder = self.root / "database_split"
        lists: dict[str, list[str]] = {}
        for split, name in SUBGROUPS.items():
            path = folder / name
            if path.is_file():
                lists[split] = [line.strip() for line in read_text(path, "split file").splitlines()
                                  if line.strip()]
        if not lists:
            self.problems.append(f"{folder}: no subgroup_*.txt split files; all patients have split ''")
        check_disjoint(lists, source=str(folder))
        splits = {p: s for s, members in lists.items() for p in members}
        for patient in sorted(set(splits) - set(self._dirs)):
            self._missing(f"{folder / SUBGROUPS[splits[patient]]}: lists {patient}, which has no folder")
        unlisted = sorted(set(self._dirs) - set(splits))
        if lists and unlisted:
            self.problems.append(f"{folder}: {len(unlisted)} patients in no split file, e.g. {unlisted[0]}")
        return splits

    def _ef_quality(self, patient: str) -> tuple[float | None, str | None]:
        """The patient's EF and worst image quality over the views, from the Info files."""
        try:
            infos = [self.info(patient, view) for view in VIEWS]
        except DataError as err:  # stratified without it; loading the patient's images names the file
            self.problems.append(str(err))
            return None, None
        efs = [info_ef(i) for i in infos if info_ef(i) is not None]
        order = ["Good", "Medium", "Poor"]
        qualities = [i["ImageQuality"] for i in infos if i.get("ImageQuality") in order]
        return (efs[0] if efs else None), (max(qualities, key=order.index) if qualities else None)

    def _index(self) -> list[Case]:
        ext = LAYOUTS[self.layout]["ext"]
        cases = []
        for patient, (folder, fixed_split) in self._dirs.items():
            for view in self.views:
                for phase in self.phases:
                    stem = f"{patient}_{view}_{phase}"
                    image, label = folder / f"{stem}{ext}", folder / f"{stem}_gt{ext}"
                    if not image.is_file():
                        self._missing(f"{image}: image file not found")
                        continue
                    if not label.is_file():
                        if fixed_split != "test":  # the 2019 testing/ folder has no labels
                            self._missing(f"{label}: ground-truth file not found")
                            continue
                        label = None
                    split = self.patient_split.get(patient, "")
                    cases.append(Case(stem, patient, split, image, label, view, phase))
        return cases

    def info(self, patient: str, view: str) -> dict[str, object]:
        """The parsed ``Info_{view}.cfg`` of ``patient``, or ``{}`` when the file is absent."""
        path = self._dirs[patient][0] / f"Info_{view}.cfg"
        return parse_info(path) if path.is_file() else {}

    def _load(self, case: Case) -> EchoSample:
        image, spacing = read_image(case.image_path)
        label = None if case.label_path is None else load_label(case.label_path, image.shape[:2], spacing=spacing)
        info = self.info(case.patient, case.view)
        meta = {
            "layout": self.layout,
            "image_path": str(case.image_path),
            "label_path": str(case.label_path) if case.label_path else None,
            "info": info,
            "ef": info_ef(info),
            "image_quality": info.get("ImageQuality"),
        }
        return EchoSample(
            image, label, spacing, case.case_id, case.patient, case.view, case.phase, case.split, meta
        )

    def sequence(self, patient: str, view: str) -> EchoSequence | None:
        """The (half-)sequence of ``patient`` / ``view`` as frame stacks; ``None`` if the release has none."""
        if patient not in self._dirs or view not in VIEWS:
            raise KeyError(f"no patient {patient!r} / view {view!r} in {self.root}")
        folder = self._dirs[patient][0]
        stem, ext = f"{patient}_{view}_{LAYOUTS[self.layout]['sequence']}", LAYOUTS[self.layout]["ext"]
        if not (folder / f"{stem}{ext}").is_file():
            return None
        frames, spacing = read_image(folder / f"{stem}{ext}", allow_stack=True)
        gt = folder / f"{stem}_gt{ext}"
        labels = load_label(gt, frames.shape, allow_stack=True, spacing=spacing) if gt.is_file() else None
        split, meta = self.patient_split.get(patient, ""), {"info": self.info(patient, view)}
        return EchoSequence(frames, labels, spacing, patient, view, split, meta)


def load_label(path: Path, shape: tuple[int, ...], *, allow_stack: bool = False,
               spacing: tuple[float, float] | None = None) -> np.ndarray:
    """Read a CAMUS label map, check its shape (and header spacing, when given) against the image and its
    values against ``LABELS``."""
    label, label_spacing = read_image(path, allow_stack=allow_stack)
    if label.shape != tuple(shape):
        raise DataError(f"{path}: label shape {label.shape} differs from its image's shape {tuple(shape)}")
    if not np.isin(label, _VALID_LABELS).all():
        bad = np.setdiff1d(np.unique(label), _VALID_LABELS)
        raise DataError(f"{path}: label values {bad[:5].tolist()} are outside the CAMUS label map {LABELS}")
    check_spacing(path, label_spacing, spacing)
    return label.astype(np.uint8)


def check_spacing(path: Path, label_spacing: tuple[float, float], image_spacing: tuple[float, float] | None) -> None:
    """A label map whose header spacing differs from its image's (by more than 0.1 %) is not its label map."""
    if image_spacing is None or np.allclose(label_spacing, image_spacing, rtol=1e-3, atol=1e-6):
        return
    raise DataError(f"{path}: header spacing {tuple(round(s, 6) for s in label_spacing)} mm differs from its "
                    f"image's {tuple(round(s, 6) for s in image_spacing)} mm; the label map was made for another image")


def _check_split(split: str | None) -> None:
    if split not in (None, "train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val', 'test' or None, got {split!r}")


class CamusVideoDataset(VideoDataset):
    """CAMUS (half-)sequences as :class:`VideoSample`, one per patient and view, decoded lazily.

    2023 release: ``*_half_sequence.nii.gz`` with ``*_half_sequence_gt.nii.gz`` label maps of every frame;
    2019 release: ``*_sequence.mhd`` (no labels). Case ids are ``patient0001_2CH``; splits and arguments are
    those of :class:`CamusDataset`. ED / ES are the Info file's ``ED`` / ``ES`` frame numbers (1-based) when
    they lie in the sequence, else its first and last frame (a half-sequence runs from ED to ES); EF, EDV,
    ESV come from ``EF`` / ``LVef``, ``LVedv``, ``LVesv``, and the frame rate from ``FrameRate``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        views: Sequence[str] = VIEWS,
        on_missing: str = "raise",
        fold: int = 0,
        splits_path: str | Path | None = None,
        seed: int = 0,
        save_splits: bool = True,
    ) -> None:
        _check_split(split)
        super().__init__(on_missing)
        self.images = CamusDataset(root, None, views=views, on_missing="skip", fold=fold, splits_path=splits_path,
                                   seed=seed, save_splits=save_splits)  # fmt: skip
        self.root, self.layout = self.images.root, self.images.layout
        self.problems.extend(self.images.problems)
        self._set_cases(self._index_sequences(split))

    def _index_sequences(self, split: str | None) -> list[Case]:
        ext, kind = LAYOUTS[self.layout]["ext"], LAYOUTS[self.layout]["sequence"]
        expected = [
            (patient, view, folder / f"{patient}_{view}_{kind}{ext}", folder / f"{patient}_{view}_{kind}_gt{ext}")
            for patient, (folder, _) in self.images._dirs.items()
            for view in self.images.views
        ]
        if not any(image.is_file() for _, _, image, _ in expected):
            raise DataError(f"{self.root}: no *_{kind}{ext} files; this copy of the release has no sequences")
        cases = []
        for patient, view, image, label in expected:
            patient_split = self.images.patient_split.get(patient, "")
            if split is not None and patient_split != split:
                continue
            if not image.is_file():
                self._missing(f"{image}: sequence file not found")
                continue
            label_path = label if label.is_file() else None
            cases.append(Case(f"{patient}_{view}", patient, patient_split, image, label_path, view))
        return cases

    def _load(self, case: Case) -> VideoSample:
        sequence = self.images.sequence(case.patient, case.view)
        if sequence is None:  # removed since indexing
            raise MissingVideoError(f"{case.image_path}: sequence file not found")
        info, n, warnings = sequence.meta["info"], len(sequence.frames), []
        labels = {} if sequence.labels is None else {t: sequence.labels[t] for t in range(n)}
        fps = info.get("FrameRate")
        meta = {"layout": self.layout, "video_path": str(case.image_path), "info": info,
                "label_path": str(case.label_path) if case.label_path else None,
                "image_quality": info.get("ImageQuality"), "warnings": warnings}  # fmt: skip
        return VideoSample(
            sequence.frames, float(fps) if isinstance(fps, (int, float)) and fps > 0 else None, case.case_id,
            spacing=sequence.spacing, patient=case.patient, view=case.view, split=case.split, ef=info_ef(info),
            edv=_info_number(info, "LVedv"), esv=_info_number(info, "LVesv"),
            traced=_sequence_phases(info, labels, n, f"Info_{case.view}.cfg", warnings), labels=labels,
            structures=tuple(name for name in LABELS if name != "background") if labels else (), meta=meta,
        )  # fmt: skip


def _info_number(info: dict[str, object], key: str) -> float | None:
    value = info.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _sequence_phases(info: dict[str, object], labels: dict[int, np.ndarray], n: int, source: str,
                     warnings: list[str]) -> TracedFrames:  # fmt: skip
    """ED / ES of a (half-)sequence: the Info file's 1-based frame numbers, else its first and last frame."""
    ed, es = info.get("ED"), info.get("ES")
    if isinstance(ed, int) and isinstance(es, int) and 1 <= ed <= n and 1 <= es <= n:
        ed, es = ed - 1, es - 1
    else:
        if ed is not None or es is not None:
            warnings.append(f"{source}: ED {ed!r} / ES {es!r} are not frames of the {n}-frame sequence; "
                            "ED is its first frame, ES its last")
        ed, es, source = 0, n - 1, "sequence ends (ED first, ES last)"
    areas = {t: float(np.count_nonzero(labels[t] == LABELS["lv_endo"])) for t in (ed, es) if t in labels}
    return TracedFrames(ed, es, areas.get(ed), areas.get(es), source)
