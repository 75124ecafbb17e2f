"""Encoder timing and mask agreement: the fast encoders give the masks of fp32 eager, on any dataset."""

from __future__ import annotations

import json

import pytest
import torch

from medsam_echo.bench.encoder import compare_encoders, encoder_variants
from medsam_echo.cli.bench import main
from medsam_echo.models.registry import build_sam


def test_compare_encoders_reports_every_variant_and_agrees_with_itself():
    model = build_sam("tinyvit_tiny", seed=0).eval()
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[[4.0, 4.0, 40.0, 50.0]], [[10.0, 8.0, 60.0, 30.0]]])
    result = compare_encoders(model, pixels, boxes, encoder_variants(model), rounds=1)
    assert set(result["images_per_s"]) == {"eager+alloc", "fast+alloc", "fast+alloc+bf16"}
    assert "speedup_vs_eager" in result and result["speedup_vs_eager"]["eager+alloc"] == 1.0
    assert result["mask_dice_vs_eager"]["eager+alloc"] == 1.0 and result["max_abs_diff_vs_eager"]["eager+alloc"] == 0
    assert result["max_abs_diff_vs_eager"]["fast+alloc"] < 1e-4  # BatchNorm folding is exact up to rounding


def test_encoder_agreement_preset_on_a_dataset(bench_camus, tmp_path):
    out = tmp_path / "agree.json"
    assert main(["--preset", "encoder-agreement", "--data", str(bench_camus), "--out", str(out)]) == 0
    agreement = json.loads(out.read_text())["agreement"]
    fast = agreement["fast+alloc"]
    assert fast["masks"] == 3 * fast["images"] and fast["images"] > 0
    assert fast["dice_min"] > 0.99 and fast["masks_below_0.99"] == 0
    assert agreement["fast+alloc+bf16"]["masks"] > 0


@pytest.mark.parametrize("args", [["--preset", "encoder-agreement"], ["--preset", "micro", "--data", "x"]])
def test_data_is_required_by_encoder_agreement_only(tmp_path, capsys, args):
    assert main([*args, "--out", str(tmp_path / "x.json")]) == 2
    assert "--data ROOT" in capsys.readouterr().err
