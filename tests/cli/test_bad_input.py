"""Bad inputs and occupied outputs, command by command: one line naming the path or key, exit code 2 for
usage errors and 1 for data errors, no traceback, no abort, and nothing the user had changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medsam_echo.cli import main as cli
from tests.conftest import tree_digest

REPO = Path(__file__).resolve().parents[2]


def _refused(capsys, argv, code, *expected, protect=()):
    """Run ``argv``; assert the exit code, the message parts and that ``protect`` is unchanged."""
    before = [tree_digest(p) for p in protect]
    try:
        result = cli(argv)
    except SystemExit as exit_:
        result = exit_.code
    assert result == code
    err = capsys.readouterr().err
    for part in expected:
        assert str(part) in err, err
    assert "Traceback" not in err
    assert [tree_digest(p) for p in protect] == before
    return err


# ---- convert-checkpoint never deletes what is at OUT_DIR -------------------------------------------


def test_convert_refuses_a_folder_holding_other_files(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _refused(capsys, ["convert-checkpoint", str(tiny_dir), str(out)], 2, out, "--overwrite", protect=[out])
    _refused(capsys, ["convert-checkpoint", str(tiny_dir), str(out), "--overwrite"], 2, "did not write",
             protect=[out])


def test_convert_refuses_a_regular_file(tiny_dir, tmp_path, capsys):
    target = tmp_path / "model"
    target.write_text("mine")
    _refused(capsys, ["convert-checkpoint", str(tiny_dir), str(target), "--overwrite"], 2, "is a file",
             protect=[target])


def test_convert_refuses_the_run_holding_its_source(tiny_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_dir, run / "model")
    (run / "config.yaml").write_text("{}")
    for out in (run, run / "model"):
        _refused(capsys, ["convert-checkpoint", str(run / "model"), str(out), "--overwrite"], 2,
                 "could destroy it", protect=[run])


def test_convert_replaces_its_own_output_only_with_overwrite(tiny_dir, tmp_path, capsys):
    out, pth = tmp_path / "hf", tmp_path / "sam.pth"
    assert cli(["convert-checkpoint", str(tiny_dir), str(out)]) == 0
    _refused(capsys, ["convert-checkpoint", str(tiny_dir), str(out)], 2, "--overwrite", protect=[out])
    assert cli(["convert-checkpoint", str(tiny_dir), str(out), "--overwrite"]) == 0
    pth.write_text("mine")
    _refused(capsys, ["convert-checkpoint", str(tiny_dir), str(tmp_path / "hf2"), "--to-original", str(pth)], 2,
             pth, protect=[pth])
    assert not (tmp_path / "hf2").exists()


# ---- data readers: undecodable names and text ---------------------------------------------------------


def test_a_dataset_folder_not_valid_utf8_is_read_without_an_abort(nifti_root, tmp_path):
    """SimpleITK aborts the process on such a path; run in a subprocess so a regression cannot kill pytest."""
    root = Path(shutil.copytree(nifti_root, tmp_path / os.fsdecode(b"caf\xe9")))  # a Latin-1 folder name
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "medsam_echo", "data", "summary", str(root)], env=env,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    out = done.stdout.decode()
    assert "caf\\xe9: camus-nifti" in out and "images 40 (40 labelled)" in out and "problems: 0" in out


def test_an_info_file_not_utf8_is_named(mhd_copy, capsys):
    info = mhd_copy / "training" / "patient0001" / "Info_2CH.cfg"
    info.write_bytes(info.read_bytes() + "Comment: échographie\n".encode("latin-1"))
    before = tree_digest(mhd_copy)
    assert cli(["data", "summary", str(mhd_copy), "--strict"]) == 1
    out = capsys.readouterr().out
    assert f"{info}: this Info file is not UTF-8 text" in out and "images 80" in out
    assert tree_digest(mhd_copy) == before


def test_a_folder_dataset_without_images_is_a_problem(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "dataset.yaml").write_text("labels: {background: 0, lv_endo: 1}\n")
    assert cli(["data", "summary", str(tmp_path), "--strict"]) == 1
    assert "no images" in capsys.readouterr().out


# ---- small commands -----------------------------------------------------------------------------------


def test_synth_refuses_a_size_of_zero(tmp_path, capsys):
    _refused(capsys, ["synth", str(tmp_path / "s"), "--size", "0", "0"], 2, "--size")
    assert not (tmp_path / "s").exists()


def test_fit_view_prior_on_bad_data_is_one_line(nifti_copy, tmp_path, capsys):
    broken = nifti_copy / "database_nifti/patient0001/patient0001_2CH_ED.nii.gz"
    broken.write_bytes(b"")
    out = tmp_path / "prior.json"
    _refused(capsys, ["fit-view-prior", "--data", str(nifti_copy), "--out", str(out)], 1, broken.name)
    assert not out.exists()


def test_prompt_sweep_given_a_folder_that_is_no_model(nifti_root, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    _refused(capsys, ["prompt-sweep", "--model", str(run), "--data", str(nifti_root)], 1, run)


@pytest.mark.parametrize("command", ["fit-view-prior", "prompt-sweep"])
def test_outputs_are_not_overwritten(command, nifti_root, tiny_dir, tmp_path, capsys):
    out = tmp_path / "result.json"
    out.write_text("mine")
    extra = ["--model", str(tiny_dir)] if command == "prompt-sweep" else []
    _refused(capsys, [command, "--data", str(nifti_root), *extra, "--out", str(out)], 2, out, "--overwrite",
             protect=[out])


# ---- checkpoints --------------------------------------------------------------------------------------


def test_random_bytes_are_a_corrupt_file_not_a_security_refusal(tmp_path, capsys):
    path = tmp_path / "model.pth"
    path.write_bytes(bytes(range(256)) * 16)
    err = _refused(capsys, ["inspect", str(path)], 1, path, "not a readable PyTorch checkpoint")
    assert "could run code" not in err


def test_nan_weights_are_refused_on_load(tmp_path, capsys):
    import torch

    from medsam_echo.models.convert import save_sam
    from medsam_echo.models.profile import get_profile
    from medsam_echo.models.registry import build_sam

    model = build_sam("tiny", seed=0)
    with torch.no_grad():
        model.mask_decoder.iou_prediction_head.layers[0].bias.fill_(float("nan"))
    path = save_sam(model, get_profile("sam", 128), tmp_path / "nan")
    _refused(capsys, ["inspect", str(path)], 1, path, "NaN / Inf weights", "iou_prediction_head")


def test_evaluate_never_writes_into_a_folder_it_did_not_fill(nifti_root, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["evaluate", "--pred", str(tmp_path), "--data", str(nifti_root), "--out", str(out)]
    _refused(capsys, argv, 2, out, "--overwrite", protect=[out])
    _refused(capsys, [*argv, "--overwrite"], 2, "did not write", protect=[out])
    _refused(capsys, [*argv[:-1], str(tmp_path / "pred_inside"), "--pred", str(tmp_path / "pred_inside" / "p")], 2,
             "could destroy it")


def test_a_run_with_nan_weights_is_refused_on_load(camus_root, tmp_path, capsys):
    """A diverged run's model/ (NaN weights) would predict whole-image masks and write NaN into coco.json."""
    from safetensors.torch import load_file, save_file

    from medsam_echo.cli.train import main as train_main
    from tests.training.conftest import reset_accelerate_state

    run = tmp_path / "run"
    config = str(REPO / "configs" / "quickstart_scratch.yaml")
    assert train_main(["--config", config, f"output_dir={run}", f"data.root={camus_root}", "data.synthetic_patients=0",
                       "train.max_steps=1", "train.batch_size=2", "train.eval_batch_size=4"]) == 0
    reset_accelerate_state()
    capsys.readouterr()
    weights = run / "model" / "trained.safetensors"
    state = load_file(str(weights))
    state = {k: v.fill_(float("nan")) if "iou_prediction_head" in k else v for k, v in state.items()}
    save_file(state, str(weights))
    _refused(capsys, ["convert-checkpoint", str(run), str(tmp_path / "out")], 1, weights, "NaN / Inf weights")


# ---- issue 29: tracebacks turned into one line -------------------------------------------------------


def test_inspect_on_a_text_file_is_one_line_not_a_traceback(tmp_path, capsys):
    text = tmp_path / "notes.pth"
    text.write_text("hello\n")
    err = _refused(capsys, ["inspect", str(text)], 1, "notes.pth", "not a readable checkpoint")
    assert len(err.strip().splitlines()) == 1


def test_export_nnunet_split_folds_zero_is_refused_before_anything_is_written(camus_root, tmp_path, capsys):
    _refused(capsys, ["export-nnunet", "--data", str(camus_root), "--out", str(tmp_path / "raw"), "--split-folds", "0"],
             2, "--split-folds 0")  # fmt: skip
    assert not (tmp_path / "raw").exists()
