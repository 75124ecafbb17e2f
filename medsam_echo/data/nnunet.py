"""Export any dataset the toolkit opens as an nnU-Net v2 raw dataset, with the toolkit's own split.

Layout written under ``out/DatasetNNN_Name/`` (nnU-Net v2's "raw" format)::

    imagesTr/<case>_0000.nii.gz   labelled images of the train and val splits (one channel)
    labelsTr/<case>.nii.gz        their label maps, CAMUS values (0 background, 1 lv_endo, 2 myo, 3 la)
    imagesTs/<case>_0000.nii.gz   images of the test split only (never their labels)
    dataset.json                  channel_names, labels, numTraining, file_ending ".nii.gz"
    splits_final.json             one fold: {"train": [case ids], "val": [case ids]}

``<case>`` is the toolkit's case id (e.g. ``patient0001_2CH_ED``), so nnU-Net's predictions
(``<case>.nii.gz``) are scored by ``medsam-echo evaluate`` as they are.

Images are 2-D NIfTI files: an ``(H, W)`` array indexed ``[y, x]`` with spacing ``(sx, sy)`` mm; a source
file in a medical format also gives its origin and direction (orientation), copied unchanged, so nnU-Net
writes its predictions on the same grid and in the same orientation. nnU-Net reads a 2-D file as one slice
with a large out-of-plane spacing and plans only a ``2d`` configuration. RGB images are converted to grey.

The split is the one training uses: ``open_dataset(root, "train")`` / ``"val"`` (CAMUS 2023 subgroup
files, CAMUS 2019 seeded patient folds, ``dataset.yaml`` splits, COCO ``split`` fields). A dataset with
no ``val`` split gets a patient-level fold drawn by :func:`medsam_echo.data.splits.stratified_kfold`
(fold 0 of ``n_folds``, ``seed``). nnU-Net's split lists case ids, not patients; every case of a patient
is on one side. nnU-Net (2.8) copies ``splits_final.json`` from the raw folder into the preprocessed
folder when it plans, and training reads it from there.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsam_echo.atomic import atomic_write_text
from medsam_echo.data.io import MEDICAL_SUFFIXES, DataError, image_suffix
from medsam_echo.data.sample import LABELS, EchoSample
from medsam_echo.data.splits import stratified_kfold

FILE_ENDING = ".nii.gz"
CHANNEL = "0000"  # the one input channel: <case>_0000.nii.gz
CHANNEL_NAME = "echo"  # any name but "CT" -> nnU-Net's per-image z-score normalisation
SPLITS_NAME = "splits_final.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_CASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class NnunetExport:
    """What :func:`export_nnunet` wrote; case lists hold toolkit case ids."""

    dataset_dir: Path
    train: list[str] = field(default_factory=list)  # imagesTr + labelsTr, fold 0 train
    val: list[str] = field(default_factory=list)  # imagesTr + labelsTr, fold 0 val
    test: list[str] = field(default_factory=list)  # imagesTs only
    left_out: list[str] = field(default_factory=list)  # "case: reason" (unlabelled, or in no split)
    split_source: str = ""
    splits_copies: list[Path] = field(default_factory=list)
    foreign_files: list[Path] = field(default_factory=list)  # files in the dataset folder we did not write

    @property
    def dataset_id(self) -> int:
        return int(self.dataset_dir.name[len("Dataset") : len("Dataset") + 3])


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetNNN_Name`` as nnU-Net names raw datasets; ``dataset_id`` in 1..999."""
    if not 1 <= int(dataset_id) <= 999:
        raise DataError(f"nnU-Net dataset id must be in 1..999, got {dataset_id}")
    if not _NAME.match(name):
        raise DataError(f"nnU-Net dataset name {name!r}: use letters, digits, '_' and '-' only")
    return f"Dataset{int(dataset_id):03d}_{name}"


def dataset_json(n_training: int, *, name: str, description: str = "") -> dict:
    """The ``dataset.json`` nnU-Net v2 needs: one channel, the toolkit's labels (consecutive 0..3)."""
    return {
        "name": name,
        "description": description,
        "channel_names": {"0": CHANNEL_NAME},
        "labels": dict(sorted(LABELS.items(), key=lambda item: item[1])),
        "numTraining": int(n_training),
        "file_ending": FILE_ENDING,
        "overwrite_image_reader_writer": "SimpleITKIO",
    }


def fold_from_split(
    cases: Sequence[tuple[str, str, str]], *, n_folds: int = 10, seed: int = 0
) -> tuple[dict[str, list[str]], str]:
    """nnU-Net fold 0 from labelled, non-test cases ``(case_id, patient, split)``.

    Returns:
        ``({"train": [case ids], "val": [case ids]}, description)``. With any ``val`` case, the dataset's
        own ``train`` / ``val`` splits (cases in neither are left out of both lists); otherwise a
        patient-level fold 0 of ``stratified_kfold(patients, n_folds=min(n_folds, #patients), seed=seed)``.
    """
    if any(split == "val" for _, _, split in cases):
        fold = {s: sorted(c for c, _, split in cases if split == s) for s in ("train", "val")}
        return fold, "the dataset's own train / val splits (as training uses them)"
    patients = sorted({patient for _, patient, _ in cases})
    if len(patients) < 2:
        raise DataError(f"need at least 2 patients with labels outside the test split to make a train / "
                        f"val fold, got {len(patients)}")
    folds = stratified_kfold(patients, n_folds=min(n_folds, len(patients)), seed=seed)
    val_patients = set(folds[0]["val"])
    fold = {
        "train": sorted(c for c, p, _ in cases if p not in val_patients),
        "val": sorted(c for c, p, _ in cases if p in val_patients),
    }
    how = (f"the dataset has no val split: patient-level fold 0 of {min(n_folds, len(patients))} "
           f"(medsam_echo.data.splits.stratified_kfold, seed {seed})")
    return fold, how


def source_geometry(path: Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(origin, direction)`` of a 2-D medical image file (header only), 2-D parts of a 1-slice volume;
    ``None`` for photo formats or other shapes. Origin in mm ``(x, y)``, direction row-major 2 x 2."""
    if image_suffix(path) not in MEDICAL_SUFFIXES:
        return None
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    dim, size = reader.GetDimension(), reader.GetSize()
    if dim == 2:
        return tuple(reader.GetOrigin()), tuple(reader.GetDirection())
    if dim == 3 and size[2] == 1:
        d = reader.GetDirection()
        return tuple(reader.GetOrigin()[:2]), (d[0], d[1], d[3], d[4])
    return None


def write_nifti(
    path: Path,
    array: np.ndarray,
    spacing: tuple[float, float],
    geometry: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> Path:
    """Write ``array`` ``(H, W)`` (``[y, x]``) as a 2-D NIfTI with spacing ``(sx, sy)`` mm and, if given,
    ``geometry`` = ``(origin, direction)``; atomically (a hidden sibling renamed into place)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in spacing))
    if geometry is not None:
        image.SetOrigin(geometry[0])
        image.SetDirection(geometry[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex}.{path.name}")  # keeps .nii.gz: ITK picks the format by it
    try:
        sitk.WriteImage(image, str(tmp), useCompression=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _grey(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` image; an ``(H, W, 3)`` RGB image becomes its luminance (same dtype)."""
    if image.ndim == 2:
        return image
    weights = np.array([0.299, 0.587, 0.114])
    return (image[..., :3].astype(np.float64) @ weights).astype(image.dtype)


def check_target(out: Path, folder_name: str, *, overwrite: bool) -> Path:
    """The dataset folder ``out/folder_name``; refuse a non-empty one (unless ``overwrite``) and another
    dataset with the same id (nnU-Net would not know which to use). Raises :class:`DataError`."""
    target = out / folder_name
    prefix = folder_name.split("_", 1)[0] + "_"
    clashes = sorted(p for p in out.glob(f"{prefix}*") if p.is_dir() and p.name != folder_name) if out.is_dir() else []
    if clashes:
        raise DataError(f"{clashes[0]}: another nnU-Net dataset with id {prefix[7:10]} already exists in {out}; "
                        "choose another --dataset-id")
    if target.exists() and not target.is_dir():
        raise DataError(f"{target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise DataError(f"{target}: folder exists and is not empty; choose another --out / --dataset-id, or pass "
                        "--overwrite to replace the files this export writes (nothing else is touched)")
    return target


def write_splits(path: Path, fold: dict[str, list[str]], *, overwrite: bool) -> Path:
    """Write ``[fold]`` as nnU-Net's ``splits_final.json``; an existing different file is an error unless
    ``overwrite`` (nnU-Net refuses to plan when the raw and preprocessed split files disagree)."""
    text = json.dumps([fold], indent=1) + "\n"
    if path.is_file() and not overwrite:
        try:
            same = json.loads(path.read_text()) == [fold]
        except json.JSONDecodeError:
            same = False
        if not same:
            raise DataError(f"{path}: a different split file exists; pass --overwrite to replace it")
    return atomic_write_text(path, text)


def export_nnunet(
    dataset: Sequence[EchoSample],
    out: str | Path,
    *,
    dataset_id: int,
    name: str = "CAMUS",
    preprocessed: str | Path | None = None,
    overwrite: bool = False,
    n_folds: int = 10,
    seed: int = 0,
    description: str = "",
) -> NnunetExport:
    """Write ``dataset`` (every split, e.g. ``open_dataset(root, "all")``) as an nnU-Net v2 raw dataset.

    Args:
        dataset: a :class:`~medsam_echo.data.base.CaseDataset` (samples with case id, patient, split).
        out: the ``nnUNet_raw`` folder; ``out/DatasetNNN_Name`` is created.
        dataset_id, name: nnU-Net's dataset id (1..999) and name.
        preprocessed: the ``nnUNet_preprocessed`` folder: ``splits_final.json`` is also written to
            ``preprocessed/DatasetNNN_Name/``, where nnU-Net's trainer reads it.
        overwrite: allow a non-empty dataset folder; only files this export writes are replaced.
        n_folds, seed: the fold drawn when the dataset has no ``val`` split (:func:`fold_from_split`).
        description: free text for ``dataset.json``.

    Returns:
        An :class:`NnunetExport`. Labelled cases of the test split go to ``imagesTs`` without labels;
        unlabelled cases outside the test split, and (when the dataset has a val split) cases in no split,
        are left out and listed.
    """
    folder = dataset_folder_name(dataset_id, name)
    target = check_target(Path(out), folder, overwrite=overwrite)
    result = NnunetExport(target)
    has_val = dataset.splits().get("val", 0) > 0 if hasattr(dataset, "splits") else True
    written, trainable = set(), []
    for index, sample in enumerate(dataset):
        case = sample.case_id
        if not _CASE.match(case):
            raise DataError(f"case id {case!r} cannot be an nnU-Net file name (letters, digits, '_', '-', '.')")
        geometry = _geometry(dataset, index)
        image = _grey(np.asarray(sample.image))
        if sample.split == "test":
            written.add(write_nifti(target / "imagesTs" / f"{case}_{CHANNEL}{FILE_ENDING}", image,
                                    sample.spacing, geometry))
            result.test.append(case)
            continue
        if sample.label is None:
            result.left_out.append(f"{case}: no label, not in the test split")
            continue
        if has_val and sample.split not in ("train", "val"):
            result.left_out.append(f"{case}: in no split (training does not use it)")
            continue
        written.add(write_nifti(target / "imagesTr" / f"{case}_{CHANNEL}{FILE_ENDING}", image,
                                sample.spacing, geometry))
        written.add(write_nifti(target / "labelsTr" / f"{case}{FILE_ENDING}", sample.label.astype(np.uint8),
                                sample.spacing, geometry))
        trainable.append((case, sample.patient or case, sample.split))
    if not trainable:
        raise DataError(f"{target}: no labelled cases outside the test split; nnU-Net needs training cases")
    fold, result.split_source = fold_from_split(trainable, n_folds=n_folds, seed=seed)
    result.train, result.val = fold["train"], fold["val"]
    if preprocessed is not None:  # checked before dataset.json exists: a refused export looks unfinished
        result.splits_copies.append(write_splits(Path(preprocessed) / folder / SPLITS_NAME, fold,
                                                 overwrite=overwrite))
    written.add(write_splits(target / SPLITS_NAME, fold, overwrite=True))
    result.splits_copies.insert(0, target / SPLITS_NAME)
    meta = dataset_json(len(trainable), name=name, description=description)
    written.add(atomic_write_text(target / "dataset.json", json.dumps(meta, indent=2) + "\n"))
    result.foreign_files = sorted(p for p in target.rglob("*") if p.is_file() and p not in written)
    return result


def _geometry(dataset, index: int):
    """Origin and direction of case ``index``'s image file, when the dataset names one."""
    files = dataset.source_files(index) if hasattr(dataset, "source_files") else ()
    return source_geometry(Path(files[0])) if files else None


def nnunet_commands(export: NnunetExport, raw: str | Path, preprocessed: str | Path | None = None) -> list[str]:
    """Shell lines that plan, train and predict with nnU-Net on ``export`` (2d, fold 0, our split)."""
    n, folder = export.dataset_id, export.dataset_dir.name
    pre = str(preprocessed) if preprocessed is not None else "$PWD/nnUNet_preprocessed"
    return [
        f"export nnUNet_raw={Path(raw).resolve()}",
        f"export nnUNet_preprocessed={pre}",
        "export nnUNet_results=$PWD/nnUNet_results",
        f"nnUNetv2_plan_and_preprocess -d {n} -c 2d --verify_dataset_integrity",
        f"mkdir -p $nnUNet_preprocessed/{folder} && "
        f"cp -n $nnUNet_raw/{folder}/{SPLITS_NAME} $nnUNet_preprocessed/{folder}/   # nnU-Net 2.8 also copies it",
        f"nnUNetv2_train {n} 2d 0",
        f"nnUNetv2_predict -i $nnUNet_raw/{folder}/imagesTs -o nnunet_pred_test -d {n} -c 2d -f 0",
        f"# validation cases: $nnUNet_results/{folder}/nnUNetTrainer__nnUNetPlans__2d/fold_0/validation/",
    ]
