"""``predict`` (every mode) and ``compare --out`` never replace a file they did not write, and never write
into their inputs (issue 29: data loss)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsam_echo.cli import main as cli
from medsam_echo.data.io import write_image
from medsam_echo.data.open import open_dataset
from tests.conftest import tree_digest


def _dataset_argv(root, out):
    return ["predict", "--model", "baseline:ellipse", "--data", str(root), "--split", "test", "--prompt", "box",
            "--out", str(out)]  # fmt: skip


def test_dataset_mode_refuses_an_output_inside_the_dataset(camus_root, capsys):
    patient = sorted(p for p in (camus_root / "database_nifti").iterdir() if p.is_dir())[0]
    before = tree_digest(camus_root)
    assert cli(_dataset_argv(camus_root, patient)) == 1
    assert "inside the dataset" in capsys.readouterr().err
    assert cli(_dataset_argv(camus_root, camus_root)) == 1
    assert tree_digest(camus_root) == before


def test_dataset_mode_never_replaces_a_users_label_maps(tmp_path, camus_root, capsys):
    case = open_dataset(camus_root, "test").cases[0]
    mine = tmp_path / "mine"
    write_image(mine / f"{case}.nii.gz", np.ones((8, 8), np.uint8))
    before = tree_digest(mine)
    assert cli(_dataset_argv(camus_root, mine)) == 1
    assert "was not written by medsam-echo predict" in capsys.readouterr().err and tree_digest(mine) == before
    assert cli(_dataset_argv(camus_root, tmp_path / "pred")) == 0
    assert cli(_dataset_argv(camus_root, tmp_path / "pred")) == 0  # its own outputs: replaced
    (tmp_path / "file").write_text("x")
    assert cli(_dataset_argv(camus_root, tmp_path / "file")) == 1 and "is a file" in capsys.readouterr().err


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("a_4CH.png", "b_2CH.png"):
        write_image(folder / name, rng.integers(0, 255, (48, 40), dtype=np.uint8))
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({n: [{"structure": "lv_endo", "box": [8, 8, 30, 40]}] for n in ("a_4CH.png", "b_2CH.png")}))
    return folder, prompts


def _file_argv(inputs, prompts, out):
    return ["predict", "--model", "baseline:ellipse", "--input", *map(str, inputs), "--prompts", str(prompts),
            "--out", str(out)]  # fmt: skip


def test_file_mode_refuses_the_input_folder_and_outputs_landing_on_inputs(images, capsys):
    folder, prompts = images
    before = tree_digest(folder)
    assert cli(_file_argv([folder], prompts, folder)) == 1
    assert "is the input folder" in capsys.readouterr().err
    assert cli(_file_argv(sorted(folder.iterdir()), prompts, folder)) == 1  # a.png's mask would be a.png
    assert "is an input" in capsys.readouterr().err
    assert tree_digest(folder) == before


def test_file_mode_never_replaces_a_users_coco_or_label_maps_but_replaces_its_own(tmp_path, images, capsys):
    folder, prompts = images
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "coco.json").write_text('{"mine": true}')
    assert cli(_file_argv([folder], prompts, mine)) == 1
    assert "coco.json: exists and was not written" in capsys.readouterr().err
    assert (mine / "coco.json").read_text() == '{"mine": true}' and sorted(p.name for p in mine.iterdir()) == ["coco.json"]
    out = tmp_path / "out"
    assert cli(_file_argv([folder], prompts, out)) == 0 and cli(_file_argv([folder], prompts, out)) == 0
    assert json.loads((out / "predict_files.json").read_text())["complete"] is True


@pytest.mark.parametrize("value", ["nan", "-0.1", "1.5"])
def test_review_below_outside_0_1_is_an_error_not_a_silently_empty_list(images, tmp_path, capsys, value):
    folder, _ = images
    argv = ["predict", "--model", "baseline:ellipse", "--input", str(folder), "--prompts", "auto",
            "--review-below", value, "--out", str(tmp_path / "o")]  # fmt: skip
    assert cli(argv) == 2 and "expected a confidence in 0..1" in capsys.readouterr().err


def test_dicom_mode_refuses_an_output_file(tmp_path, capsys):
    pytest.importorskip("highdicom")
    from tests import dicom_corpus as corpus

    loop = corpus.us_loop(tmp_path / "a.dcm")
    (tmp_path / "out").write_text("mine")
    argv = _file_argv([loop], corpus.prompts_file(tmp_path / "p.json", "4CH"), tmp_path / "out")
    assert cli(argv) == 1 and "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "mine"
