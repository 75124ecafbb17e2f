"""The README's main job on real weights: configs/quickstart.yaml fine-tunes pretrained LiteMedSAM.

Shrunk to seconds (3 synthetic patients at 80 x 64 px, two steps), but the same config, model, cache and
loop: zero-shot validation is recorded as step 0, the encoder runs once per image into the embedding
cache, and the saved model is the fine-tuned LiteMedSAM.
"""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from medsam_echo.adapters.persist import load_trained
from medsam_echo.cli.train import main as train_main
from medsam_echo.models.loader import load_sam
from medsam_echo.models.tinyvit import TinyViTSamModel
from tests.training.conftest import REPO

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


def _overrides(tmp_path, *extra: str) -> list[str]:
    return [
        f"output_dir={tmp_path / 'run'}", f"data.root={tmp_path / 'synthetic'}", "data.synthetic_patients=3",
        "data.synthetic_size=[80,64]", "train.batch_size=2", "train.eval_batch_size=4", "train.max_steps=2",
        "optim.warmup_steps=0", f"train.embedding_cache_dir={tmp_path / 'embeddings'}", *extra,
    ]


def test_quickstart_fine_tunes_litemedsam_and_records_the_zero_shot_score(tmp_path, capsys):
    assert train_main(["--config", QUICKSTART, *_overrides(tmp_path)]) == 0
    out = tmp_path / "run"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2]
    assert records[0]["train_loss"] is None and 0.0 < records[0]["val_dice_lv_endo"] <= 1.0
    printed = capsys.readouterr().out
    assert "before fine-tuning (step 0): validation Dice" in printed and "validation Dice" in printed.splitlines()[-1]

    # One embedding per training and validation image (1 + 1 patients x 4 images), computed once.
    entries = list((tmp_path / "embeddings").glob("*/*.safetensors"))
    assert len(entries) == 8
    assert load_file(str(entries[0]))["embedding"].shape == (256, 64, 64)

    model, loaded = load_trained(out / "model")
    assert isinstance(model, TinyViTSamModel) and loaded.profile.name == "litemedsam"
    assert json.loads((out / "model" / "base.json").read_text())["base"] == "litemedsam"
    trained = load_file(str(out / "model" / "trained.safetensors"))
    assert trained and all(k.startswith("mask_decoder.") for k in trained)  # decoder_only saves only that
    moved = model.mask_decoder.iou_token.weight
    base = load_sam("litemedsam").model.mask_decoder.iou_token.weight
    assert not torch.equal(moved, base)  # two steps changed the decoder


def test_a_second_run_reuses_the_embedding_cache(tmp_path, capsys):
    assert train_main(["--config", QUICKSTART, *_overrides(tmp_path)]) == 0
    capsys.readouterr()
    again = _overrides(tmp_path, f"output_dir={tmp_path / 'again'}", "data.structures=[lv_endo,lv_epi,la]")
    assert train_main(["--config", QUICKSTART, *again]) == 0
    printed = capsys.readouterr().out
    assert "4 images (0 computed by process 0)" in printed  # train and val both served from the cache
    record = json.loads((tmp_path / "again" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_dice_lv_epi", "val_dice_myo"} <= set(record)  # myo derived from lv_epi - lv_endo
