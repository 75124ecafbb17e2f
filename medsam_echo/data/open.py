"""The dataset contract: one function opens any supported dataset from a root and a split.

    dataset = open_dataset("data/CAMUS_public", "val")       # CAMUS 2023 NIfTI or 2019 MetaImage release
    dataset = open_dataset("my_echo/", "train")               # a folder with dataset.yaml
    dataset = open_dataset("labels/coco.json", "test")        # a COCO segmentation JSON
    videos = open_dataset("EchoNet-Dynamic", "test", kind="video")       # FileList.csv + Videos/
    videos = open_dataset("data/CAMUS_public", "val", kind="video")      # CAMUS (half-)sequences

Whatever the layout, the result is a :class:`~medsam_echo.data.base.CaseDataset`: a lazy sequence of
:class:`~medsam_echo.data.sample.EchoSample` (image ``[y, x]``, CAMUS label values, spacing ``(sx, sy)`` mm,
case id, patient, split, and view / phase where the layout knows them), with ``cases``, ``patients``,
``splits()``, ``sample(case_id)`` and ``source_files(index)``. Every stage (training, validation,
``evaluate``, ``predict --data``, ``fit-view-prior``, ``prompt-sweep``, ``data summary``) opens its data here.

With ``kind="video"`` it is a :class:`~medsam_echo.data.video.VideoDataset` (the same interface) of
:class:`~medsam_echo.data.sample.VideoSample`: whole loops with their frame rate, EF / EDV / ESV, traced
ED / ES frames and label maps. ``kind="auto"`` takes the layout's own kind (:data:`LAYOUT_KINDS`): an
EchoNet-Dynamic folder holds videos only, so callers that handle both kinds pass ``"auto"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medsam_echo.data.base import CaseDataset
from medsam_echo.data.io import DataError

SPLITS = ("train", "val", "test", "all")
KINDS = ("image", "video", "auto")
# The kinds of sample each layout yields, its own kind first.
LAYOUT_KINDS: dict[str, tuple[str, ...]] = {
    "coco": ("image",),
    "folder": ("image",),
    "camus-nifti": ("image", "video"),
    "camus-mhd": ("image", "video"),
    "echonet": ("video",),
}


def detect_format(root: str | Path) -> str:
    """``"coco"``, ``"folder"``, ``"echonet"``, ``"camus-nifti"`` or ``"camus-mhd"``; a :class:`DataError`
    names ``root``. A folder holding ``FileList.csv`` is an EchoNet-Dynamic release."""
    from medsam_echo.data.camus import detect_layout

    root = Path(root)
    if root.suffix.lower() == ".json":
        if not root.is_file():
            raise DataError(f"{root}: COCO annotation file not found")
        return "coco"
    if (root / "dataset.yaml").is_file():
        return "folder"
    if (root / "FileList.csv").is_file():
        return "echonet"
    return detect_layout(root)


def open_dataset(
    root: str | Path,
    split: str | None = "all",
    *,
    views: Sequence[str] | None = None,
    phases: Sequence[str] | None = None,
    on_missing: str = "raise",
    save_splits: bool = True,
    kind: str = "image",
) -> CaseDataset:
    """The ``split`` of the dataset at ``root``.

    Args:
        root: a CAMUS release folder, a folder with ``dataset.yaml``, an EchoNet-Dynamic folder
            (``FileList.csv`` + ``Videos/``), or a COCO JSON file.
        split: ``"train"``, ``"val"``, ``"test"``, or ``"all"`` / ``None`` for every image.
        views, phases: CAMUS only: the views (``2CH``, ``4CH``) and phases (``ED``, ``ES``) to index.
        on_missing: ``"raise"`` (an error naming the missing file) or ``"skip"`` (skipped and listed in
            ``dataset.skipped``); COCO files list their images, so nothing can be missing.
        save_splits: CAMUS 2019 only: write the patient split it draws (``splits.json``) beside the data.
        kind: ``"image"`` (:class:`EchoSample` items), ``"video"`` (:class:`VideoSample` items: EchoNet
            videos, CAMUS sequences), or ``"auto"``: the layout's own kind.

    Raises:
        DataError: ``root`` is none of the layouts, a file is missing or unreadable, or the layout has no
            samples of that ``kind`` (e.g. EchoNet opened as images).
    """
    if split not in (*SPLITS, None):
        raise DataError(f"{root}: unknown split {split!r}; choose from {list(SPLITS)}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    chosen = None if split in (None, "all") else split
    fmt = detect_format(root)
    kind = LAYOUT_KINDS[fmt][0] if kind == "auto" else kind
    if kind not in LAYOUT_KINDS[fmt]:
        hint = " (open it with kind='video' or 'auto')" if fmt == "echonet" else ""
        raise DataError(f"{root}: the {fmt} layout has no {kind} samples, only {' and '.join(LAYOUT_KINDS[fmt])}{hint}")
    if kind == "video":
        return _open_videos(root, fmt, chosen, views=views, on_missing=on_missing, save_splits=save_splits)
    if fmt == "coco":
        from medsam_echo.data.coco import CocoDataset

        return CocoDataset(root, split=chosen)
    if fmt == "folder":
        from medsam_echo.data.folder import FolderDataset

        return FolderDataset(root, chosen, on_missing=on_missing)
    from medsam_echo.data.camus import PHASES, VIEWS, CamusDataset

    return CamusDataset(root, chosen, views=views or VIEWS, phases=phases or PHASES, on_missing=on_missing,
                        save_splits=save_splits)


def _open_videos(root: str | Path, fmt: str, split: str | None, *, views: Sequence[str] | None, on_missing: str,
                 save_splits: bool) -> CaseDataset:  # fmt: skip
    if fmt == "echonet":
        from medsam_echo.data.echonet import EchoNetDataset

        return EchoNetDataset(root, split, on_missing=on_missing)
    from medsam_echo.data.camus import VIEWS, CamusVideoDataset

    return CamusVideoDataset(root, split, views=views or VIEWS, on_missing=on_missing, save_splits=save_splits)
