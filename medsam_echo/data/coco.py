"""COCO segmentation JSON: read it as a dataset, and export any dataset to it.

Reading accepts what labelling tools export: polygons, uncompressed RLE and compressed RLE (decoded
with pycocotools). Category names are matched to :data:`~medsam_echo.data.sample.LABELS` directly or
through ``category_map`` (e.g. ``{"LV": "lv_endo"}``). Masks are painted largest first, so nested
structures (e.g. an ``lv_epi``-shaped myocardium polygon with the cavity drawn on top) come out right.
An image listed without annotations is all background, unless its entry says ``"labelled": false``.

Export writes ``images/<case_id>.png`` (8-bit; other dtypes are min-max rescaled) and one JSON with
compressed-RLE annotations, exact for rings such as the myocardium. Image entries carry extra fields
``spacing`` ``[sx, sy]`` (mm), ``case_id``, ``patient``, ``split``, ``view``, ``phase``, which the reader
uses, so a CAMUS -> COCO -> dataset round trip keeps labels, ids and spacing.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from medsam_echo.data.base import Case, CaseDataset
from medsam_echo.data.io import DataError, read_image, read_text, to_uint8, write_image
from medsam_echo.data.sample import LABELS, EchoSample


def _mask_api():
    try:
        from pycocotools import mask
    except ImportError as err:  # pragma: no cover - pycocotools is a core dependency
        raise ImportError("COCO support needs pycocotools: pip install pycocotools") from err
    return mask


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE) as a bool mask ``(H, W)``."""
    mask = _mask_api()
    if isinstance(segmentation, list):
        rle = mask.merge(mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        rle = dict(segmentation)
    else:
        raise ValueError(f"unsupported segmentation {str(segmentation)[:80]!r}")
    with warnings.catch_warnings():  # pycocotools < 2.0.9 trips numpy 2's __array__(copy=) deprecation
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        return mask.decode(rle).astype(bool)


class CocoDataset(CaseDataset):
    """Images and label maps from a COCO JSON file.

    Args:
        annotation_file: the COCO JSON.
        image_dir: folder that ``file_name`` entries are relative to (default: the JSON's folder).
        category_map: category name -> name in ``LABELS``, for categories not already named so.
        split: keep only images whose ``split`` field equals this (``None``: all).
    """

    def __init__(
        self,
        annotation_file: str | Path,
        image_dir: str | Path | None = None,
        *,
        category_map: Mapping[str, str] | None = None,
        split: str | None = None,
    ) -> None:
        super().__init__("raise")
        self.annotation_file = Path(annotation_file)
        data = _read_json(self.annotation_file)
        self.image_dir = Path(image_dir) if image_dir is not None else self.annotation_file.parent
        self._values = self._category_values(data["categories"], category_map or {})
        self._images = {int(image["id"]): image for image in data["images"]}
        self._annotations: dict[int, list[dict]] = {image_id: [] for image_id in self._images}
        for ann in data["annotations"]:
            if ann.get("image_id") not in self._annotations:
                raise DataError(f"{self.annotation_file}: annotation {ann.get('id')} refers to unknown image")
            self._annotations[ann["image_id"]].append(ann)
        cases = []
        for image in self._images.values():
            case_id = image.get("case_id") or Path(image["file_name"]).stem
            path = self.image_dir / image["file_name"]
            cases.append(Case(case_id, image.get("patient") or case_id, image.get("split", ""), path, None))
        self._image_id = {c.case_id: image_id for c, image_id in zip(cases, self._images, strict=True)}
        self._set_cases([c for c in cases if split is None or c.split == split])

    def _category_values(self, categories: Iterable[dict], category_map: Mapping[str, str]) -> dict[int, int]:
        values = {}
        for category in categories:
            name = category_map.get(category["name"], category["name"])
            if name not in LABELS or name == "background":
                raise DataError(
                    f"{self.annotation_file}: category {category['name']!r} maps to no label of "
                    f"{sorted(LABELS)}; "
                    "pass category_map={'<name>': '<label>'}"
                )
            values[int(category["id"])] = LABELS[name]
        return values

    def source_files(self, index: int) -> tuple[Path, ...]:
        """The image file and the annotation JSON that case ``index`` is made from."""
        return self._cases[index].image_path, self.annotation_file

    def _load(self, case: Case) -> EchoSample:
        entry = self._images[self._image_id[case.case_id]]
        image, _ = read_image(case.image_path)
        height, width = int(entry["height"]), int(entry["width"])
        if image.shape[:2] != (height, width):
            raise DataError(
                f"{case.image_path}: image is {image.shape[:2]} (H, W) but {self.annotation_file} "
                f"says {(height, width)}"
            )
        label = self._paint(entry["id"], height, width) if entry.get("labelled", True) else None
        spacing = tuple(float(s) for s in entry.get("spacing", (1.0, 1.0)))
        meta = {"image_path": str(case.image_path), "annotation_file": str(self.annotation_file)}
        view, phase = entry.get("view", ""), entry.get("phase", "")
        return EchoSample(image, label, spacing, case.case_id, case.patient, view, phase, case.split, meta)

    def _paint(self, image_id: int, height: int, width: int) -> np.ndarray:
        label = np.zeros((height, width), np.uint8)
        masks = []
        for ann in self._annotations[image_id]:
            if ann.get("category_id") not in self._values:
                raise DataError(
                    f"{self.annotation_file}: annotation {ann.get('id')} has an unknown category_id"
                )
            try:
                mask = decode_segmentation(ann["segmentation"], height, width)
            except (KeyError, ValueError, TypeError) as err:
                raise DataError(
                    f"{self.annotation_file}: annotation {ann.get('id')}: bad segmentation ({err})"
                ) from err
            masks.append((int(mask.sum()), self._values[ann["category_id"]], mask))
        for _, value, mask in sorted(masks, key=lambda m: -m[0]):  # largest first, nested ones on top
            label[mask] = value
        return label


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: COCO annotation file not found")
    try:
        data = json.loads(read_text(path, "COCO file"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a COCO file (the top level must be an object)")
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise DataError(f"{path}: not a COCO file, missing keys {missing}")
    return data


def coco_categories() -> list[dict]:
    """COCO categories of the CAMUS labels: ids are the label values (``lv_endo`` 1, ``myo`` 2, ``la`` 3)."""
    return [{"id": v, "name": n, "supercategory": "heart"} for n, v in LABELS.items() if v]


def mask_annotation(mask: np.ndarray, ann_id: int, image_id: int, category_id: int) -> dict:
    """A COCO annotation of a bool mask ``(H, W)``: compressed RLE (exact for rings), area, bbox
    ``[x, y, width, height]`` px."""
    mask_api = _mask_api()
    rle = mask_api.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {
        "id": ann_id, "image_id": image_id, "category_id": category_id, "iscrowd": 0,
        "area": int(mask_api.area(rle)), "bbox": [float(v) for v in mask_api.toBbox(rle)],
        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
    }


def export_coco(dataset, out_dir: str | Path, *, name: str = "annotations.json") -> Path:
    """Write ``dataset`` (a sequence of EchoSample) as ``out_dir/images/*.png`` + ``out_dir/<name>``.

    Returns:
        The JSON path. One compressed-RLE annotation per label value present in each labelled image.
    """
    out_dir = Path(out_dir)
    categories = coco_categories()
    images, annotations = [], []
    for image_id, sample in enumerate(dataset, start=1):
        file_name = f"images/{sample.case_id}.png"
        write_image(out_dir / file_name, to_uint8(sample.image))
        height, width = sample.image.shape[:2]
        images.append(
            {"id": image_id, "file_name": file_name, "height": height, "width": width,
             "spacing": list(sample.spacing), "case_id": sample.case_id, "patient": sample.patient,
             "split": sample.split, "view": sample.view, "phase": sample.phase,
             "labelled": sample.label is not None}
        )  # fmt: skip
        values = [] if sample.label is None else [int(v) for v in np.unique(sample.label) if v]
        if set(values) - set(LABELS.values()):
            raise DataError(f"{sample.case_id}: label values {values} are outside the label map {LABELS}")
        for value in values:
            annotations.append(mask_annotation(sample.label == value, len(annotations) + 1, image_id, int(value)))
    path = out_dir / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


