"""What ``predict`` writes: label maps, overlays, and one COCO file of the predictions.

The COCO file is a complete COCO dataset (``images``, ``categories``, ``annotations``) that
``pycocotools.coco.COCO`` loads. Categories are the CAMUS label values named by structure (``lv_endo`` 1,
``myo`` 2, ``la`` 3: the ids :func:`medsam_echo.data.coco.export_coco` gives the ground truth), one
annotation per label value present in an image, with a compressed-RLE ``segmentation`` of the label
map's pixels of that value (so they never overlap) and a ``score`` (the predicted IoU).

To score it with ``COCOeval`` against a ground-truth export, image ids must agree:
:func:`results_against` re-numbers the annotations by matching file names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from medsam_echo.atomic import atomic_write_text
from medsam_echo.data.coco import coco_categories, mask_annotation
from medsam_echo.data.io import to_uint8
from medsam_echo.data.sample import LABELS

# Overlay colours (RGB) per label value.
COLOURS: dict[int, tuple[int, int, int]] = {1: (230, 60, 60), 2: (60, 200, 90), 3: (70, 130, 240)}


def overlay(image: np.ndarray, label_map: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """An RGB ``(H, W, 3)`` uint8 picture of ``image`` with the label map's regions tinted and outlined."""
    if image.shape[:2] != label_map.shape:
        raise ValueError(f"image {image.shape[:2]} and label map {label_map.shape} differ in size")
    gray = to_uint8(image)
    rgb = np.repeat(gray[:, :, None], 3, axis=2) if gray.ndim == 2 else gray.copy()
    palette = np.zeros((256, 3), np.float32)
    for value, colour in COLOURS.items():
        palette[value] = colour
    tint = palette[label_map]
    inside = (label_map > 0)[:, :, None]
    rgb = np.where(inside, (1 - alpha) * rgb + alpha * tint, rgb).astype(np.uint8)
    for value, colour in COLOURS.items():
        contours, _ = cv2.findContours(
            (label_map == value).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(rgb, contours, -1, colour, 1)
    return rgb


def label_score(name: str, scores: Mapping[str, float]) -> float:
    """The score of label ``name`` (``lv_endo``, ``myo``, ``la``) from per-structure ``scores``.

    A structure prompted directly gives its own score. A label made from other prompts (``myo`` as
    ``lv_epi`` minus ``lv_endo``, or ``lv_endo`` as ``lv_epi`` minus ``myo``) takes the ``lv_epi`` score.

    Raises:
        KeyError: neither the label nor ``lv_epi`` was scored.
    """
    if name in scores:
        return float(scores[name])
    if "lv_epi" in scores:
        return float(scores["lv_epi"])
    raise KeyError(f"no score for {name!r}: scores are given for {sorted(scores)}")


class CocoWriter:
    """Collects label maps image by image and writes one COCO JSON."""

    def __init__(self) -> None:
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, file_name: str, label_map: np.ndarray, scores: Mapping[str, float]) -> int:
        """Add one image's ``(H, W)`` label map; ``scores`` maps structure names to predicted IoU.

        Returns the new image id. Scores per label value: see :func:`label_score`.
        """
        image_id = len(self.images) + 1
        height, width = label_map.shape
        self.images.append(
            {"id": image_id, "file_name": file_name, "width": int(width), "height": int(height)}
        )
        for name, value in LABELS.items():
            if value == 0 or not (label_map == value).any():
                continue
            annotation = mask_annotation(label_map == value, len(self.annotations) + 1, image_id, value)
            self.annotations.append({**annotation, "score": label_score(name, scores)})
        return image_id

    def write(self, path: str | Path) -> Path:
        """Write the COCO dataset JSON to ``path``."""
        path = Path(path)
        atomic_write_text(
            path, json.dumps({"images": self.images, "annotations": self.annotations, "categories": coco_categories()})
        )
        return path


def results_against(pred_json: str | Path, gt_json: str | Path) -> list[dict]:
    """The predicted annotations re-numbered to the ground truth's image ids, for ``COCO.loadRes``.

    Images are matched by file name without folders (``images/a.png`` matches ``a.png``).

    Raises:
        ValueError: a predicted image has no ground-truth image of the same name, naming it.
    """
    pred, gt = (json.loads(Path(p).read_text()) for p in (pred_json, gt_json))
    by_name = {Path(image["file_name"]).name: image["id"] for image in gt["images"]}
    new_ids = {}
    for image in pred["images"]:
        name = Path(image["file_name"]).name
        if name not in by_name:
            raise ValueError(f"{pred_json}: image {name!r} is not in {gt_json}")
        new_ids[image["id"]] = by_name[name]
    return [{**ann, "image_id": new_ids[ann["image_id"]]} for ann in pred["annotations"]]
