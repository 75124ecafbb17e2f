"""Folder datasets: dataset.yaml contract, label remapping, spacing sources, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.data.folder import FolderDataset
from medsam_echo.data.io import DataError, write_image

YAML = """\
labels: {background: 0, lv_endo: 255, myo: 128}
spacing: [0.4, 0.6]
patient_regex: "^(p\\\\d+)_"
splits: {train: [p1], val: [p2]}
"""


def _label(h: int = 40, w: int = 30) -> np.ndarray:
    label = np.zeros((h, w), np.uint8)
    label[5:20, 5:15] = 128
    label[8:15, 8:12] = 255
    return label


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "dataset.yaml").write_text(YAML)
    for stem, suffix in (("p1_a", ".png"), ("p1_b", ".png"), ("p2_a", ".nii.gz")):
        write_image(tmp_path / "images" / f"{stem}{suffix}", np.full((40, 30), 90, np.uint8), (0.2, 0.3))
        write_image(tmp_path / "labels" / f"{stem}{suffix}", _label(), (0.2, 0.3))
    return tmp_path


def test_folder_remaps_labels_and_assigns_patients_and_splits(folder):
    data = FolderDataset(folder)
    assert data.cases == ["p1_a", "p1_b", "p2_a"] and data.patients == ["p1", "p2"]
    assert data.splits() == {"train": 2, "val": 1}
    sample = data.sample("p1_b")
    assert set(np.unique(sample.label)) == {0, 1, 2}  # 255 -> lv_endo (1), 128 -> myo (2)
    assert (sample.label == 1).sum() == 28 and sample.split == "train"
    assert len(FolderDataset(folder, "val")) == 1


def test_spacing_from_header_or_yaml(folder):
    data = FolderDataset(folder)
    assert data.sample("p1_a").spacing == (0.4, 0.6)  # PNG has no header: dataset.yaml
    np.testing.assert_allclose(data.sample("p2_a").spacing, (0.2, 0.3), rtol=1e-6)  # NIfTI header wins
    assert data.sample("p2_a").meta["spacing_source"] == "header"


def test_unknown_label_value_is_an_error_naming_the_file(folder):
    bad = _label()
    bad[0, 0] = 3
    write_image(folder / "labels/p1_a.png", bad)
    with pytest.raises(DataError, match=r"labels/p1_a.png: label values \[3\] are not in the label map"):
        FolderDataset(folder).sample("p1_a")


def test_size_mismatch_and_missing_labels(folder):
    write_image(folder / "labels/p1_b.png", _label(41, 30))
    with pytest.raises(DataError, match=r"p1_b.png: label shape \(41, 30\) differs"):
        FolderDataset(folder).sample("p1_b")
    (folder / "labels/p1_b.png").unlink()
    with pytest.raises(DataError, match="no label file for image p1_b.png"):
        FolderDataset(folder)
    skipped = FolderDataset(folder, on_missing="skip")
    assert len(skipped) == 2 and len(skipped.skipped) == 1
    unlabelled = FolderDataset(folder, require_labels=False)
    assert unlabelled.sample("p1_b").label is None


def test_yaml_contract_is_enforced(folder):
    config = folder / "dataset.yaml"
    config.write_text("labels: {lv: 1}\n")
    with pytest.raises(DataError, match=r"dataset.yaml: unknown label names \['lv'\]"):
        FolderDataset(folder)
    config.write_text("labels: {lv_endo: 1}\nsplits: {train: [p1], test: [p1]}\n")
    with pytest.raises(DataError, match="patient p1 is listed in both train and test"):
        FolderDataset(folder)
    config.write_text("labels: {lv_endo: 1}\ncolour: red\n")
    with pytest.raises(DataError, match="expected a mapping with keys"):
        FolderDataset(folder)


def test_duplicate_stems_and_orphan_labels_are_errors(folder):
    write_image(folder / "labels/zzz.png", _label())
    with pytest.raises(DataError, match="zzz.png: label file without an image"):
        FolderDataset(folder)
    (folder / "labels/zzz.png").unlink()
    write_image(folder / "images/p1_a.jpg", np.zeros((40, 30), np.uint8))
    with pytest.raises(DataError, match="p1_a.png: same stem as|p1_a.jpg: same stem as"):
        FolderDataset(folder)
