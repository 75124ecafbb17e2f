"""``medsam-echo export-nnunet``: writes the raw dataset and the split, prints the nnU-Net commands, and
refuses (exit 1, the path named) an unknown root or a non-empty dataset folder unless ``--overwrite``."""

from __future__ import annotations

import json

import pytest

from medsam_echo.cli import main as cli
from medsam_echo.data.open import open_dataset
from medsam_echo.data.synthetic import make_camus


@pytest.fixture(scope="module")
def camus(tmp_path_factory):
    return make_camus(tmp_path_factory.mktemp("cli_nn") / "camus", patients=4, seed=2, size=(32, 28), frames=0)


def test_export_writes_the_dataset_and_prints_the_nnunet_commands(camus, tmp_path, capsys):
    raw, pre = tmp_path / "nnUNet_raw", tmp_path / "nnUNet_preprocessed"
    args = ["export-nnunet", "--data", str(camus), "--out", str(raw), "--dataset-id", "12", "--name", "Echo"]
    assert cli([*args, "--preprocessed", str(pre)]) == 0
    printed = capsys.readouterr().out
    target = raw / "Dataset012_Echo"
    for line in ("nnUNetv2_plan_and_preprocess -d 12 -c 2d --verify_dataset_integrity", "nnUNetv2_train 12 2d 0",
                 "nnUNetv2_predict -i $nnUNet_raw/Dataset012_Echo/imagesTs", f"export nnUNet_raw={raw}"):
        assert line in printed
    fold = json.loads((pre / "Dataset012_Echo" / "splits_final.json").read_text())[0]
    assert fold["val"] == sorted(open_dataset(camus, "val").cases)
    assert json.loads((target / "dataset.json").read_text())["numTraining"] == len(fold["train"]) + len(fold["val"])

    assert cli(args) == 1  # again: the folder is not empty
    assert str(target) in capsys.readouterr().err
    assert cli([*args, "--overwrite"]) == 0


def test_unknown_root_is_an_error_naming_it(tmp_path, capsys):
    missing = tmp_path / "no_such_data"
    assert cli(["export-nnunet", "--data", str(missing), "--out", str(tmp_path / "raw")]) == 1
    assert str(missing) in capsys.readouterr().err and not (tmp_path / "raw").exists()
