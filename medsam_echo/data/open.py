"""The dataset contract: one function opens any supported dataset from a root and a split.

    dataset = open_dataset("data/CAMUS_public", "val")       # CAMUS 2023 NIfTI or 2019 MetaImage release
    dataset = open_dataset("my_echo/", "train")               # a folder with dataset.yaml
    dataset = open_dataset("labels/coco.json", "test")        # a COCO segmentation JSON

Whatever the layout, the result is a :class:`~medsam_echo.data.base.CaseDataset`: a lazy sequence of
:class:`~medsam_echo.data.sample.EchoSample` (image ``[y, x]``, CAMUS label values, spacing ``(sx, sy)`` mm,
case id, patient, split, and view / phase where the layout knows them), with ``cases``, ``patients``,
``splits()``, ``sample(case_id)`` and ``source_files(index)``. Every stage (training, validation,
``evaluate``, ``predict --data``, ``fit-view-prior``, ``prompt-sweep``, ``data summary``) opens its data here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medsam_echo.data.base import CaseDataset
from medsam_echo.data.io import DataError

SPLITS = ("train", "val", "test", "all")


def detect_format(root: str | Path) -> str:
    """``"coco"``, ``"folder"``, ``"camus-nifti"`` or ``"camus-mhd"``; a :class:`DataError` names ``root``."""
    from medsam_echo.data.camus import detect_layout

    root = Path(root)
    if root.suffix.lower() == ".json":
        if not root.is_file():
            raise DataError(f"{root}: COCO annotation file not found")
        return "coco"
    if (root / "dataset.yaml").is_file():
        return "folder"
    return detect_layout(root)


def open_dataset(
    root: str | Path,
    split: str | None = "all",
    *,
    views: Sequence[str] | None = None,
    phases: Sequence[str] | None = None,
    on_missing: str = "raise",
    save_splits: bool = True,
) -> CaseDataset:
    """The ``split`` of the dataset at ``root``.

    Args:
        root: a CAMUS release folder, a folder with ``dataset.yaml``, or a COCO JSON file.
        split: ``"train"``, ``"val"``, ``"test"``, or ``"all"`` / ``None`` for every image.
        views, phases: CAMUS only: the views (``2CH``, ``4CH``) and phases (``ED``, ``ES``) to index.
        on_missing: ``"raise"`` (an error naming the missing file) or ``"skip"`` (skipped and listed in
            ``dataset.skipped``); COCO files list their images, so nothing can be missing.
        save_splits: CAMUS 2019 only: write the patient split it draws (``splits.json``) beside the data.

    Raises:
        DataError: ``root`` is none of the layouts, or a file is missing or unreadable.
    """
    if split not in (*SPLITS, None):
        raise DataError(f"{root}: unknown split {split!r}; choose from {list(SPLITS)}")
    chosen = None if split in (None, "all") else split
    fmt = detect_format(root)
    if fmt == "coco":
        from medsam_echo.data.coco import CocoDataset

        return CocoDataset(root, split=chosen)
    if fmt == "folder":
        from medsam_echo.data.folder import FolderDataset

        return FolderDataset(root, chosen, on_missing=on_missing)
    from medsam_echo.data.camus import PHASES, VIEWS, CamusDataset

    return CamusDataset(root, chosen, views=views or VIEWS, phases=phases or PHASES, on_missing=on_missing,
                        save_splits=save_splits)
