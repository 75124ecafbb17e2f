"""The real entry point: smoke run, resume after SIGKILL, non-finite loss, embedding cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medsam_echo.adapters.persist import load_trained
from medsam_echo.cli.train import main as train_main
from tests.training.conftest import REPO, tiny_overrides

QUICKSTART = str(REPO / "configs" / "quickstart_scratch.yaml")


def test_smoke_run_writes_config_metrics_and_a_loadable_model(camus_root, tmp_path):
    out = tmp_path / "run"
    assert train_main(["--config", QUICKSTART, *tiny_overrides(camus_root, out, "train.max_steps=3")]) == 0
    assert {"config.yaml", "metrics.jsonl", "model", "best", "checkpoints", "base"} <= {p.name for p in out.iterdir()}
    assert (out / "model" / "view_prior.json").is_file()  # automatic prompts come with the model
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 3 and {"epoch", "val_dice", "val_dice_lv_endo", "val_dice_myo", "val_dice_la"} <= set(record)
    model, loaded = load_trained(out / "model")
    assert loaded.profile.name == "sam"
    with torch.no_grad():
        out_masks = model(pixel_values=torch.zeros(1, 3, 128, 128), input_boxes=torch.tensor([[[10.0, 10, 90, 90]]]))
    assert out_masks.pred_masks.shape[:2] == (1, 1)


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(camus_root, tmp_path, monkeypatch,
                                                                                   capsys):
    from medsam_echo.training import loop

    real = loop.sam_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss, parts = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 4 else loss), parts

    monkeypatch.setattr(loop, "sam_loss", poisoned)
    out = tmp_path / "run"
    args = ["--config", QUICKSTART, *tiny_overrides(camus_root, out, "train.max_steps=6", "train.save_every_steps=2")]
    assert train_main(args) == 1
    err = capsys.readouterr().err
    assert "non-finite loss at step 4" in err and "The last good checkpoint is" in err and "step-00000002" in err
    assert (out / "checkpoints" / "latest").read_text() == "step-00000002"


def test_non_finite_loss_before_any_checkpoint_points_at_inputs_and_weights(camus_root, tmp_path, monkeypatch,
                                                                              capsys):
    from medsam_echo.training import loop

    real = loop.sam_loss
    monkeypatch.setattr(loop, "sam_loss", lambda *a, **k: (lambda lp: (lp[0] * float("nan"), lp[1]))(real(*a, **k)))
    assert train_main(["--config", QUICKSTART, *tiny_overrides(camus_root, tmp_path / "run", "train.max_steps=2")]) == 1
    err = capsys.readouterr().err
    assert "No checkpoint has been saved yet" in err and "inputs or the model's weights" in err


def _run(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "medsam_echo.train", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_killed_run_resumes_to_the_same_weights(camus_root, tmp_path):
    """SIGKILL in the second epoch after a checkpoint, then --resume: the uninterrupted run's weights, bit for
    bit (8 images in batches of 2: 4 steps an epoch, so the resumed run crosses an epoch boundary)."""
    common = ["--config", QUICKSTART, "train.max_steps=12", "train.save_every_steps=3", "train.epochs=100",
              "data.max_train_samples=8"]
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    ref = _run([*common, *tiny_overrides(camus_root, straight)])
    assert ref.wait(timeout=300) == 0, ref.stdout.read()

    victim = _run([*common, *tiny_overrides(camus_root, crashed)])
    latest = crashed / "checkpoints" / "latest"
    deadline = time.time() + 300
    while not (latest.is_file() and latest.read_text() == "step-00000006") and time.time() < deadline:
        assert victim.poll() is None, victim.stdout.read()
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    assert not (crashed / "model").exists()  # it really died before the end

    resumed = _run([*common, *tiny_overrides(camus_root, crashed), "--resume"])
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert "resumed from" in output and "at step 6" in output
    a = load_file(str(straight / "model" / "trained.safetensors"))
    b = load_file(str(crashed / "model" / "trained.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_cached_and_uncached_embeddings_give_the_same_loss(camus_root, tmp_path):
    from accelerate import Accelerator

    from medsam_echo.training.config import load_config
    from medsam_echo.training.data import collate
    from medsam_echo.training.datasets import build_datasets
    from medsam_echo.training.embedding_cache import EmbeddedSet, EmbeddingCache, item_key, model_key
    from medsam_echo.training.loop import _step_loss
    from medsam_echo.training.model import PromptedSam, build_training_model

    cfg = load_config(QUICKSTART, [*tiny_overrides(camus_root, tmp_path / "run"), "method.name=decoder_only",
                                   "method.train_prompt_encoder=null"])
    built = build_training_model(cfg.model.source, cfg.method, profile=None, seed=0)
    accelerator = Accelerator()
    train_set, _ = build_datasets(cfg, built.profile, accelerator)
    encoder = built.base_model.vision_encoder.eval()
    cache = EmbeddingCache(tmp_path / "emb", model_key(encoder, built.profile))
    keys = [item_key(train_set, i) for i in range(4)]
    assert cache.fill(train_set, keys, lambda x: encoder(x)[0]) == 4
    assert cache.fill(train_set, keys, lambda x: encoder(x)[0]) == 0  # second epoch: nothing recomputed
    model = PromptedSam(built.model).eval()
    plain = collate([train_set[i] for i in range(4)])
    cached = collate([EmbeddedSet(train_set, cache, keys + [""] * (len(train_set) - 4))[i] for i in range(4)])
    with torch.no_grad():
        loss_plain, _ = _step_loss(cfg, model, plain, 0, 0, accelerator)
        loss_cached, _ = _step_loss(cfg, model, cached, 0, 0, accelerator)
    torch.testing.assert_close(loss_cached, loss_plain, rtol=2e-3, atol=2e-3)  # embeddings stored in fp16


def test_embedding_cache_refuses_augmentation(camus_root, tmp_path, capsys):
    args = ["--config", QUICKSTART, *tiny_overrides(camus_root, tmp_path / "run", "train.max_steps=1"),
            "method.name=decoder_only", "method.train_prompt_encoder=null", "train.embedding_cache=true",
            "data.augment.enabled=true"]
    assert train_main(args) == 2
    assert "augmented images have no fixed embedding" in capsys.readouterr().err


def test_test_split_is_never_trained_on(camus_root, tmp_path, capsys):
    assert train_main(["--config", QUICKSTART, *tiny_overrides(camus_root, tmp_path / "r", "data.val_split=test")]) == 2
    assert "test split is for final evaluation only" in capsys.readouterr().err


def test_time_budget_stops_with_validation_and_a_saved_model(camus_root, tmp_path):
    out = tmp_path / "run"
    args = ["--config", QUICKSTART, *tiny_overrides(camus_root, out, "train.max_minutes=0.0001", "train.epochs=50")]
    assert train_main(args) == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 1  # the budget is checked after every step
    assert (out / "model" / "trained.safetensors").is_file()
    assert (out / "checkpoints" / "latest").read_text() == "step-00000001"


def test_an_lv_epi_run_reports_the_derived_myocardium_and_predicts_label_maps(camus_root, tmp_path):
    """[lv_endo, lv_epi, la]: val_dice_myo from the fused label map; the saved run predicts 0..3 maps."""
    from medsam_echo.data.camus import CamusDataset
    from medsam_echo.data.sample import structure_mask
    from medsam_echo.inference import EchoPredictor
    from medsam_echo.prompts.boxes import box_from_mask

    out = tmp_path / "run"
    structures = ["lv_endo", "lv_epi", "la"]
    overrides = ["train.max_steps=2", f"data.structures=[{', '.join(structures)}]"]
    assert train_main(["--config", QUICKSTART, *tiny_overrides(camus_root, out, *overrides)]) == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {f"val_dice_{s}" for s in (*structures, "myo")} <= set(record)
    assert 0.0 <= record["val_dice_myo"] <= 1.0
    assert record["val_dice"] == pytest.approx(sum(record[f"val_dice_{s}"] for s in structures) / 3)
    predictor = EchoPredictor.from_source(str(out), device="cpu")
    assert predictor.structures == tuple(structures) and set(predictor.view_prior.boxes["2CH"]) == set(structures)
    sample = CamusDataset(camus_root, split="val")[0]
    predictor.set_image(sample.image, sample.spacing)
    boxes = [box_from_mask(structure_mask(sample.label, s)) for s in structures]
    labels = predictor.predict(boxes=boxes, structure=predictor.structures).label_map()
    assert labels.shape == sample.label.shape and set(np.unique(labels)) <= {0, 1, 2, 3}


def test_a_run_is_read_back_by_the_predictor_through_the_run_folder_only(camus_root, tmp_path):
    """Training writes RUN/ through RunFolder; the predictor finds weights, structures and view prior there."""
    from medsam_echo.inference import EchoPredictor
    from medsam_echo.training.run_folder import RunFolder, find_run

    out = tmp_path / "run"
    overrides = tiny_overrides(camus_root, out, "train.max_steps=2", "data.structures=[lv_endo,lv_epi,la]")
    assert train_main(["--config", QUICKSTART, *overrides]) == 0
    run = RunFolder(out)
    assert run.config().data.structures == ["lv_endo", "lv_epi", "la"]  # typed, not a raw dict
    assert [r["step"] for r in run.metrics()][-1] == 2
    found = find_run(out)
    assert found.trained_dir == out / "model" and found.run == run
    assert found.view_prior_path() == out / "model" / "view_prior.json"
    predictor = EchoPredictor.from_source(out)
    assert predictor.structures == ("lv_endo", "lv_epi", "la") and predictor.view_prior is not None
    assert find_run(out / "best").trained_dir == out / "best"
