"""A run never replaces what a user has, and checks its config and every data file before it writes.

Each case asserts the exit code, that the message names the folder, file or key, and that nothing on
disk changed (hashes before and after).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from medsam_echo.cli.train import main as train_main
from medsam_echo.data.io import read_image, write_image
from tests.conftest import tree_digest
from tests.training.conftest import REPO, tiny_overrides

QUICKSTART = str(REPO / "configs" / "quickstart_scratch.yaml")


@pytest.fixture(scope="module")
def finished_run(camus_root, tmp_path_factory):
    """A finished 2-step run (module-scoped: tests that use it must leave it as it is)."""
    from tests.training.conftest import reset_accelerate_state

    out = tmp_path_factory.mktemp("finished") / "run"
    assert train_main(["--config", QUICKSTART, *tiny_overrides(camus_root, out, "train.max_steps=2")]) == 0
    reset_accelerate_state()
    return out


def _train(camus_root, out, *extra):
    return train_main(["--config", QUICKSTART, *tiny_overrides(camus_root, out, "train.max_steps=2"), *extra])


@pytest.mark.parametrize("extra", [[], ["optim.lr=1e-4"], ["train.epochs=0"], ["data.root=/nonexistent"]],
                         ids=["same-config", "other-config", "bad-config", "bad-data"])
def test_training_again_into_a_finished_run_changes_nothing(finished_run, camus_root, capsys, extra):
    """Without --resume: refused before anything is written (config.yaml, base/, best/, metrics)."""
    before = tree_digest(finished_run)
    code = _train(camus_root, finished_run, *extra)
    assert code == 2
    err = capsys.readouterr().err
    assert str(finished_run) in err or "train.epochs" in err
    assert tree_digest(finished_run) == before


def test_an_unrelated_file_in_the_output_dir_is_kept(camus_root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _train(camus_root, out) == 2
    assert "already holds other files (notes.txt)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    target = tmp_path / "a_file"
    target.write_text("mine")
    assert _train(camus_root, target) == 2
    assert "is a file" in capsys.readouterr().err and target.read_text() == "mine"


def test_resume_without_a_checkpoint_says_so(camus_root, tmp_path, capsys):
    assert _train(camus_root, tmp_path / "empty", "--resume") == 2
    assert "holds no training run" in capsys.readouterr().err
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("{}")
    assert _train(camus_root, out, "--resume") == 2
    assert "has no checkpoint yet" in capsys.readouterr().err


def test_resume_with_a_changed_config_lists_the_changed_keys(finished_run, camus_root, capsys):
    before = tree_digest(finished_run)
    assert _train(camus_root, finished_run, "--resume", "optim.lr=3e-4", "train.batch_size=4") == 2
    err = capsys.readouterr().err
    assert "optim.lr (0.001 -> 0.0003)" in err and "train.batch_size (2 -> 4)" in err
    assert tree_digest(finished_run) == before


def test_overrides_may_follow_options(camus_root, tmp_path, capsys):
    """key=value overrides before and after options (argparse's intermixed parsing)."""
    args = ["--config", QUICKSTART, f"data.root={camus_root}", "--max-steps", "-5", f"output_dir={tmp_path / 'r'}"]
    assert train_main(args) == 2
    assert "train.max_steps: -5 must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _damage(root):
    """Break four training files in four ways; returns their names."""
    folder = root / "database_nifti"
    patients = sorted((root / "database_split" / "subgroup_training.txt").read_text().split())
    names = {}
    empty = folder / patients[0] / f"{patients[0]}_2CH_ED.nii.gz"
    empty.write_bytes(b"")
    names["zero-byte"] = empty.name
    nan_image = folder / patients[1] / f"{patients[1]}_2CH_ES.nii.gz"
    image, spacing = read_image(nan_image)
    write_image(nan_image, np.full(image.shape, np.nan, np.float32), spacing)
    names["nan"] = nan_image.name
    mislabelled = folder / patients[2] / f"{patients[2]}_4CH_ED_gt.nii.gz"
    label, spacing = read_image(mislabelled)
    write_image(mislabelled, np.where(label == 1, 7, label).astype(np.uint8), spacing)
    names["label-7"] = mislabelled.name
    missized = folder / patients[3] / f"{patients[3]}_4CH_ES_gt.nii.gz"
    label, spacing = read_image(missized)
    write_image(missized, label[:-4], spacing)
    names["missized"] = missized.name
    return names


def test_every_bad_training_file_is_listed_before_the_first_step(camus_root, tmp_path, capsys):
    data = shutil.copytree(camus_root, tmp_path / "data")
    names = _damage(data)
    out = tmp_path / "run"
    assert train_main(["--config", QUICKSTART, *tiny_overrides(data, out, "train.max_steps=6")]) == 1
    err = capsys.readouterr().err
    assert "4 problem(s)" in err
    for name in names.values():
        assert name in err
    assert "non-finite (NaN / Inf) pixel values" in err
    assert not (out / "config.yaml").exists() and not (out / "checkpoints").exists()


def test_a_label_with_another_spacing_is_refused(camus_root, tmp_path, capsys):
    data = shutil.copytree(camus_root, tmp_path / "data")
    patient = sorted((data / "database_split" / "subgroup_training.txt").read_text().split())[0]
    gt = data / "database_nifti" / patient / f"{patient}_2CH_ED_gt.nii.gz"
    label, (sx, sy) = read_image(gt)
    write_image(gt, label, (sx * 2, sy))
    assert train_main(["--config", QUICKSTART, *tiny_overrides(data, tmp_path / "run", "train.max_steps=1")]) == 1
    assert f"{gt.name}: header spacing" in capsys.readouterr().err
