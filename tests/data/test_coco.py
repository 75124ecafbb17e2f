"""COCO: polygons and RLE in, exact RLE out; CAMUS -> COCO -> dataset keeps labels, ids and spacing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsam_echo.data.camus import CamusDataset
from medsam_echo.data.coco import CocoDataset, export_coco
from medsam_echo.data.io import DataError, write_image


def test_export_then_read_round_trips_exactly(nifti_root, tmp_path):
    source = CamusDataset(nifti_root, "train", views=("2CH",))
    json_path = export_coco(source, tmp_path / "coco")
    loaded = CocoDataset(json_path)
    assert loaded.cases == source.cases and loaded.patients == source.patients
    for a, b in zip(source, loaded, strict=True):
        np.testing.assert_array_equal(a.label, b.label)  # the myocardium ring survives (RLE, not polygons)
        np.testing.assert_array_equal(a.image, b.image)
        assert b.spacing == pytest.approx(a.spacing) and (b.view, b.phase, b.split) == (
            a.view,
            a.phase,
            a.split,
        )


def test_unlabelled_images_stay_unlabelled(mhd_root, tmp_path):
    test = CamusDataset(mhd_root, "test")
    loaded = CocoDataset(export_coco(test, tmp_path / "coco"))
    assert len(loaded) == len(test) and all(s.label is None for s in loaded)


def _tool_export(tmp_path, categories, annotations):
    write_image(tmp_path / "frame.png", np.zeros((20, 30), np.uint8))
    data = {"images": [{"id": 1, "file_name": "frame.png", "height": 20, "width": 30}],
            "annotations": annotations, "categories": categories}  # fmt: skip
    path = tmp_path / "export.json"
    path.write_text(json.dumps(data))
    return path


def test_polygons_nested_structures_and_category_map(tmp_path):
    epi = {"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[2, 2, 20, 2, 20, 16, 2, 16]]}
    cavity = {"id": 2, "image_id": 1, "category_id": 8, "segmentation": [[6, 6, 14, 6, 14, 12, 6, 12]]}
    path = _tool_export(tmp_path, [{"id": 7, "name": "Myo"}, {"id": 8, "name": "LV"}], [cavity, epi])
    label = CocoDataset(path, category_map={"Myo": "myo", "LV": "lv_endo"})[0].label
    assert label[9, 10] == 1 and label[3, 3] == 2 and label[0, 0] == 0  # cavity painted over the wall
    assert CocoDataset(path, category_map={"Myo": "myo", "LV": "lv_endo"}).sample("frame").case_id == "frame"


def test_uncompressed_rle_is_read(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[4:8, 10:20] = 1
    flat = mask.flatten(order="F")  # COCO RLE runs are column-major
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    rle = {"size": [20, 30], "counts": counts}
    path = _tool_export(
        tmp_path, [{"id": 1, "name": "la"}], [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": rle}]
    )
    np.testing.assert_array_equal(CocoDataset(path)[0].label, mask * 3)


def test_bad_coco_files_are_named(tmp_path):
    path = _tool_export(tmp_path, [{"id": 1, "name": "RV"}], [])
    with pytest.raises(DataError, match="export.json: category 'RV' maps to no label"):
        CocoDataset(path)
    path = _tool_export(tmp_path, [{"id": 1, "name": "la"}], [])
    data = json.loads(path.read_text())
    data["images"][0]["height"] = 21
    path.write_text(json.dumps(data))
    with pytest.raises(
        DataError, match=r"frame.png: image is \(20, 30\) \(H, W\) but .*export.json says \(21, 30\)"
    ):
        CocoDataset(path)[0]
    (tmp_path / "plain.json").write_text("{}")
    with pytest.raises(DataError, match="plain.json: not a COCO file"):
        CocoDataset(tmp_path / "plain.json")
