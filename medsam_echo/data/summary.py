"""What a dataset holds and what is wrong with it (``medsam-echo data summary``).

Every image and label map is decoded, so broken files are found and listed under ``problems`` instead of
stopping the summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medsam_echo.data.io import DataError
from medsam_echo.data.open import detect_format, open_dataset
from medsam_echo.data.sample import LABELS

SPLITS = ("train", "val", "test")


def summarize(root: str | Path) -> dict:
    """The summary of the dataset at ``root`` as a JSON-ready dict (see :func:`main`)."""
    fmt = detect_format(root)
    dataset = open_dataset(root, "all", on_missing="skip", save_splits=False)
    counts = dataset.splits()
    problems = list(dataset.problems) + list(dataset.skipped)
    label_pixels = np.zeros(256, np.int64)
    spacings, sizes, labelled = [], [], 0
    for index in range(len(dataset)):
        try:
            sample = dataset[index]
        except DataError as err:
            problems.append(str(err))
            continue
        spacings.append(sample.spacing)
        sizes.append(sample.image.shape[:2])
        if sample.label is not None:
            labelled += 1
            label_pixels += np.bincount(sample.label.ravel(), minlength=256)
    if len(dataset) == 0:
        problems.append(f"{root}: no images found ({fmt} layout)")
    total = max(int(label_pixels.sum()), 1)
    return {
        "format": fmt,
        "root": str(root),
        "patients": len(dataset.patients),
        "images": len(dataset),
        "labelled_images": labelled,
        "splits": {split: counts.get(split, 0) for split in SPLITS},
        "unassigned_images": counts.get("", 0),
        "label_fraction": {name: round(float(label_pixels[v]) / total, 5) for name, v in LABELS.items()},
        "spacing_mm": _ranges(spacings, ("sx", "sy")),
        "image_size_px": _ranges(sizes, ("h", "w")),
        "problems": problems,
    }


def _ranges(rows: list[tuple], names: tuple[str, str]) -> dict[str, list[float]]:
    if not rows:
        return {}
    values = np.asarray(rows, dtype=np.float64)
    return {name: [float(values[:, i].min()), float(values[:, i].max())] for i, name in enumerate(names)}


