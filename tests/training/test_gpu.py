"""GPU path: bf16 mixed precision, fused AdamW and pinned memory on CUDA (skipped without a GPU)."""

from __future__ import annotations

import json

import pytest

from medsam_echo.cli.train import main as train_main
from tests.training.conftest import REPO, tiny_overrides


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["lora_encoder", "decoder_only"])
def test_bf16_training_on_cuda(camus_root, tmp_path, method):
    out = tmp_path / method
    args = ["--config", str(REPO / "configs" / "quickstart_scratch.yaml"),
            *tiny_overrides(camus_root, out, "train.max_steps=4", "train.mixed_precision=bf16",
                            f"method.name={method}", "method.train_prompt_encoder=null")]
    assert train_main(args) == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 4 and 0.0 <= record["val_dice"] <= 1.0
