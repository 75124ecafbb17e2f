"""`medsam-echo data summary`: the JSON contract, formats detected, problems reported not raised."""

from __future__ import annotations

import json

import pytest

from medsam_echo.cli import main as cli_main
from medsam_echo.data.camus import CamusDataset
from medsam_echo.data.coco import export_coco


def _summary(capsys, *args) -> dict:
    assert cli_main(["data", "summary", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_summary_of_the_nifti_release(nifti_root, capsys):
    result = _summary(capsys, nifti_root)
    assert result["format"] == "camus-nifti"
    assert (result["patients"], result["images"], result["labelled_images"]) == (10, 40, 40)
    assert result["splits"] == {"train": 32, "val": 4, "test": 4}
    assert abs(sum(result["label_fraction"].values()) - 1) < 1e-3 and result["label_fraction"]["myo"] > 0
    sx, sy = result["spacing_mm"]["sx"], result["spacing_mm"]["sy"]
    assert sx[0] <= sx[1] < sy[0] <= sy[1]  # the generator's grid is finer along x than along y
    assert result["problems"] == []


def test_summary_of_the_mhd_release_does_not_write_folds(mhd_copy, capsys):
    result = _summary(capsys, mhd_copy)
    assert result["format"] == "camus-mhd" and result["patients"] == 20 and result["images"] == 80
    assert result["splits"]["test"] == 8 and result["labelled_images"] == 72
    assert not (mhd_copy / "splits_final.json").exists()


def test_summary_reports_broken_and_missing_files_instead_of_failing(nifti_copy, capsys):
    broken = nifti_copy / "database_nifti/patient0001/patient0001_4CH_ED.nii.gz"
    broken.write_bytes(broken.read_bytes()[:100])
    (nifti_copy / "database_nifti/patient0002/patient0002_2CH_ES_gt.nii.gz").unlink()
    result = _summary(capsys, nifti_copy)
    assert result["images"] == 39 and len(result["problems"]) == 2
    assert any("patient0001_4CH_ED.nii.gz" in p for p in result["problems"])
    assert cli_main(["data", "summary", str(nifti_copy), "--strict"]) == 1
    assert "problems: 2" in capsys.readouterr().out


def test_summary_of_a_coco_file(nifti_root, tmp_path, capsys):
    path = export_coco(CamusDataset(nifti_root, "val"), tmp_path / "coco")
    result = _summary(capsys, path)
    assert result["format"] == "coco" and result["images"] == 4 and result["splits"]["val"] == 4


def test_not_a_dataset_exits_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["data", "summary", str(tmp_path)])
    assert exit_.value.code == 2
    assert "not a CAMUS root" in capsys.readouterr().err
