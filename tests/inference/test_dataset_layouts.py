"""One dataset contract for every stage: predict --data and evaluate on a folder dataset and a COCO
dataset give the metrics they give on the CAMUS layout of the same images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from medsam_echo.cli import main as cli
from medsam_echo.data.camus import CamusDataset
from medsam_echo.data.coco import export_coco
from medsam_echo.data.open import detect_format, open_dataset


def _folder_copy(camus_root: Path, out: Path) -> Path:
    """The same NIfTI images and labels as a folder dataset (dataset.yaml, images/, labels/)."""
    dataset = CamusDataset(camus_root)
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    splits: dict[str, list[str]] = {}
    for index in range(len(dataset)):
        image, label = dataset.source_files(index)
        case = dataset.cases[index]
        shutil.copyfile(image, out / "images" / f"{case}.nii.gz")
        shutil.copyfile(label, out / "labels" / f"{case}.nii.gz")
        sample = dataset[index]
        splits.setdefault(sample.split, [])
        if sample.patient not in splits[sample.split]:
            splits[sample.split].append(sample.patient)
    config = {"labels": {"background": 0, "lv_endo": 1, "myo": 2, "la": 3}, "patient_regex": r"^(patient\d+)",
              "splits": splits}
    (out / "dataset.yaml").write_text(yaml.safe_dump(config))
    return out


@pytest.fixture(scope="module")
def layouts(camus_root, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("layouts")
    coco = export_coco(CamusDataset(camus_root), base / "coco")
    return {"camus": camus_root, "folder": _folder_copy(camus_root, base / "folder"), "coco": coco}


def test_every_layout_opens_to_the_same_cases(layouts):
    opened = {name: open_dataset(root, "test") for name, root in layouts.items()}
    assert {name: detect_format(root) for name, root in layouts.items()} == {
        "camus": "camus-nifti", "folder": "folder", "coco": "coco"}
    reference = opened["camus"]
    for name, dataset in opened.items():
        assert dataset.cases == reference.cases, name
        sample, expected = dataset[0], reference[0]
        assert (sample.view, sample.phase, sample.patient) == (expected.view, expected.phase, expected.patient)
        assert sample.spacing == pytest.approx(expected.spacing)
        assert (sample.label == expected.label).all()


def test_predict_and_evaluate_give_the_same_metrics_on_every_layout(layouts, tiny_dir, tmp_path, capsys):
    summaries = {}
    for name, root in layouts.items():
        pred, scores = tmp_path / f"pred_{name}", tmp_path / f"eval_{name}"
        assert cli(["predict", "--model", str(tiny_dir), "--data", str(root), "--split", "all", "--out", str(pred)]) == 0
        assert cli(["evaluate", "--pred", str(pred), "--data", str(root), "--split", "all", "--out", str(scores)]) == 0
        summaries[name] = json.loads((scores / "summary.json").read_text())
    capsys.readouterr()
    reference = summaries["camus"]
    assert reference["ef"]["n"] > 0  # biplane EF from the views and phases, on every layout
    for name in ("folder", "coco"):
        for structure, metrics in reference["structures"].items():
            assert summaries[name]["structures"][structure] == pytest.approx(metrics, nan_ok=True), (name, structure)
        ef = {k: v for k, v in reference["ef"].items() if isinstance(v, (int, float))}
        assert {k: summaries[name]["ef"][k] for k in ef} == pytest.approx(ef, nan_ok=True), name


def test_an_unknown_root_or_split_is_named(tmp_path):
    from medsam_echo.data.io import DataError

    with pytest.raises(DataError, match="not a CAMUS root"):
        open_dataset(tmp_path)
    with pytest.raises(DataError, match="unknown split 'validation'"):
        open_dataset(tmp_path, "validation")
    with pytest.raises(DataError, match="COCO annotation file not found"):
        open_dataset(tmp_path / "missing.json")
