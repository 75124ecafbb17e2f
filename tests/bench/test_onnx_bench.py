"""The ONNX keys of ``cpu-litemedsam``, in isolation: the exported encoder is timed beside ours, its masks agree.

Needs the ``onnx`` extra; skips without it unless ``MEDSAM_ECHO_REQUIRE_ONNX`` is set (``.ci/run``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import replace

import pytest
import torch

from medsam_echo.bench.encoder import compare_encoders, encoder_variants
from medsam_echo.bench.presets import get_preset
from medsam_echo.bench.summary import summarize_peer
from medsam_echo.bench.versus_peer import _headline, _onnx_variant
from medsam_echo.models.profile import get_profile
from medsam_echo.models.registry import build_sam


@pytest.fixture(scope="module")
def onnx_tools():
    """Skip without the onnx extra; fail instead where CI sets MEDSAM_ECHO_REQUIRE_ONNX."""
    for module in ("onnxruntime", "onnx", "onnxscript"):
        try:
            importlib.import_module(module)
        except ImportError as err:
            message = f"the ONNX bench needs {module} (pip install -e '.[onnx]'): {err}"
            if os.environ.get("MEDSAM_ECHO_REQUIRE_ONNX"):
                pytest.fail(message)
            pytest.skip(message)


@pytest.mark.onnx
def test_the_onnx_encoder_is_timed_beside_ours_and_its_masks_agree(onnx_tools, tmp_path, single_thread):
    """The scratch TinyViT (our encoder's code) exported, timed in the same rounds, masks end to end."""
    from medsam_echo.bench.onnx_bench import onnx_mask_agreement

    model = build_sam("tinyvit_tiny", seed=0).eval()
    preset = replace(get_preset("peer-micro"), onnx=True)
    onnx, report = _onnx_variant(preset, model, get_profile("sam", 64), "cpu", tmp_path, log=lambda _: None)
    assert onnx is not None and report["export_s"] > 0 and report["threads"] == 1
    assert (tmp_path / "onnx" / "image_encoder.onnx").is_file()
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[[4.0, 4.0, 40.0, 50.0], [20.0, 2.0, 60.0, 30.0]], [[10.0, 8.0, 60.0, 30.0], [0, 0, 63, 63]]])
    variants = encoder_variants(model)
    variants["onnx"] = onnx
    result = compare_encoders(model, pixels, boxes, variants, rounds=1)
    assert result["images_per_s"]["onnx"] > 0
    assert result["max_abs_diff_vs_eager"]["onnx"] < 1e-4 and result["mask_dice_min_vs_eager"]["onnx"] >= 0.999
    agreement = onnx_mask_agreement(model, onnx, pixels, boxes)
    assert agreement["masks"] == 4 and agreement["dice_min"] >= 0.999
    assert agreement["max_abs_embedding_diff"] < 1e-4 and agreement["max_abs_iou_diff"] < 1e-4


def test_the_headline_keeps_its_keys_and_adds_the_onnx_ones():
    training = {"ours": {"img_s": 2.0}, "peer": {"img_s": 1.0}, "peer+alloc": {"img_s": 1.5},
                "ours_3": {"labels_per_s": 5.0}}
    encoder = {"images_per_s": {"peer": 1.0, "fast+alloc": 3.0, "onnx": 4.5},
               "mask_dice_min_vs_eager": {"fast+alloc": 0.9999}, "onnx": {"dice_min": 0.9995, "masks": 12}}
    result = {"training": training, "encoder": encoder, "cache": {"speedup": 1.9}}
    headline = _headline(result)
    assert headline["onnx_encoder_speedup"] == pytest.approx(1.5) and headline["onnx_mask_dice_min"] == 0.9995
    for key, value in (("train_img_s", 2.0), ("peer_train_img_s", 1.0), ("encoder_img_s", 3.0),
                       ("peer_encoder_img_s", 1.0)):
        assert headline[key] == value
    skipped = {**result, "encoder": {**encoder, "images_per_s": {"peer": 1.0, "fast+alloc": 3.0},
                                     "onnx": {"skipped": "onnxruntime not installed"}}}
    assert _headline(skipped)["onnx_encoder_speedup"] is None and _headline(skipped)["onnx_mask_dice_min"] is None


def test_the_onnx_variant_is_skipped_with_a_reason(tmp_path):
    model = build_sam("tinyvit_tiny", seed=0).eval()
    off = replace(get_preset("peer-micro"), onnx=False)
    assert _onnx_variant(off, model, get_profile("sam", 64), "cpu", tmp_path, log=lambda _: None) == (
        None, {"skipped": "off in this preset"})
    on_gpu = _onnx_variant(get_preset("peer-micro"), model, get_profile("sam", 64), "cuda", tmp_path, log=print)
    assert on_gpu[0] is None and "CPU" in on_gpu[1]["skipped"]
    assert not (tmp_path / "onnx").exists()


def test_the_summary_prints_the_onnx_line():
    result = {"preset": "p", "date": "2026-12-04", "settings": {"structures": ["lv_endo"]},
              "hardware": {"cpu": "x", "cpu_cores": 2, "torch_threads": 2, "loadavg_start": [1.0], "loadavg_end": [1.0]},
              "train_img_s": 2.0, "peer_train_img_s": 1.0, "train_speedup_vs_peer": 2.0,
              "train_speedup_vs_peer_same_allocator": 1.5, "per_label_speedup_vs_peer": 5.0,
              "encoder_speedup_vs_peer": 3.0, "encoder_mask_dice_min": 0.9999, "cache_speedup": 1.9,
              "onnx_encoder_speedup": 1.5, "onnx_mask_dice_min": 0.9995, "training": {},
              "encoder": {"batch": 4, "images_per_s": {"onnx": 4.5}, "speedup_vs_peer": {"onnx": 4.5},
                          "mask_dice_vs_eager": {"onnx": 1.0}, "mask_dice_min_vs_eager": {"onnx": 0.9999},
                          "onnx": {"threads": 2, "masks": 12, "export_s": 60.0}},
              "cache": {"images_per_epoch": 8, "batch_size": 4, "epoch_s_recompute": 2.0, "epoch_s_cached": 1.0,
                        "speedup": 2.0, "fill_s": 1.0}}
    text = summarize_peer(result)
    assert "**1.50x** our torch encoder" in text and "Dice min **0.9995**" in text
