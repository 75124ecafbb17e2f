"""The benchmark runner end to end, and the fairness of its side-by-side comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medsam_echo.bench.variants import EngineLoop, baseline_loop, engine_config
from medsam_echo.cli.bench import main
from medsam_echo.prompts.policies import structure_masks


def test_micro_preset_writes_every_documented_figure(tmp_path):
    out = tmp_path / "results" / "micro.json"
    assert main(["--preset", "micro", "--out", str(out), "--threads", "1", "--work-dir", str(tmp_path / "w")]) == 0
    result = json.loads(out.read_text())
    for key in ("train_img_s", "baseline_train_img_s", "speedup_vs_baseline", "cache_speedup"):
        assert result[key] > 0, key
    assert {"cpu", "cpu_cores", "gpu", "loadavg_start", "loadavg_end"} <= set(result["hardware"])
    assert result["versions"]["torch"] and result["versions"]["transformers"]
    runs = {r["variant"]: r for r in result["runs"]}
    assert set(runs) == {"baseline", "ours"}
    for run in runs.values():
        assert run["img_s"] == pytest.approx(2 / (run["step_ms"] / 1e3))
        assert run["peak_mem_mb"] > 0 and run["flops_per_step"] > 0
    # Same model, same images: the counted work of the two loops agrees to within the loss computation.
    assert runs["ours"]["flops_per_step"] == pytest.approx(runs["baseline"]["flops_per_step"], rel=0.05)
    cache = result["cache"]
    assert cache["images_per_epoch"] == 4 and cache["epoch_s_cached"] > 0
    assert cache["speedup"] == pytest.approx(cache["epoch_s_recompute"] / cache["epoch_s_cached"])
    assert result["inference"]["ours"]["encoder_ms"] > 0 and result["inference"]["baseline"]["attention"] == "eager"
    # Every timed engine loop is a run folder holding the config it ran, read back through the run folder.
    from medsam_echo.training.run_folder import RunFolder

    folders = {path.parent.name: RunFolder(path.parent).config()
               for path in (tmp_path / "w" / "engine").glob("*/config.yaml")}
    ours = folders["medsam_full_b2_ours"]
    assert ours.method.name == "medsam_full" and ours.train.batch_size == 2
    assert folders["cache_cached"].train.embedding_cache is True
    assert folders["cache_recompute"].train.embedding_cache is False


def test_a_tinyvit_model_runs_through_the_same_bench(tmp_path):
    """LiteMedSAM's encoder family needs no special case: --model swaps it into any preset."""
    out = tmp_path / "tv.json"
    args = ["--preset", "micro", "--model", "tinyvit_tiny", "--out", str(out), "--threads", "1"]
    assert main([*args, "--work-dir", str(tmp_path / "w")]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["architecture"] == "tinyvit_tiny" and result["settings"]["image_size"] == 64
    assert result["train_img_s"] > 0 and result["cache"]["speedup"] > 0


def test_shipped_weights_are_benched_as_they_are():
    from medsam_echo.models.registry import input_size, model_source

    assert (model_source("litemedsam"), input_size("litemedsam")) == ("litemedsam", 256)
    assert model_source("tiny") == "scratch:tiny"


def test_unknown_preset_and_gpu_preset_without_gpu_are_clear_errors(tmp_path, capsys):
    assert main(["--preset", "fast", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown bench preset 'fast'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--preset", "gpu-vitb", "--out", str(tmp_path / "x.json")]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("method", ["medsam_full", "lora_encoder"])
def test_baseline_and_ours_start_from_the_same_weights_and_see_the_same_images(bench_camus, tmp_path, method):
    cfg = engine_config(architecture="tiny", image_size=128, method=method, batch_size=2, data_root=bench_camus,
                        output_dir=tmp_path / "engine")
    ours, base = EngineLoop(cfg), baseline_loop(cfg)
    ours_state = ours.accelerator.unwrap_model(ours.model).model.state_dict()
    base_state = base.model.state_dict()
    assert ours_state.keys() == base_state.keys()
    for key in ours_state:
        torch.testing.assert_close(ours_state[key], base_state[key], rtol=0, atol=0, msg=key)
    trainable = {n for n, p in base.model.named_parameters() if p.requires_grad}
    assert trainable == {n.removeprefix("model.") for n, p in ours.model.named_parameters() if p.requires_grad}
    # Attention differs on purpose: the anchors compute it by hand.
    assert type(base.model.vision_encoder.layers[0].attn).__name__ == "SamVisionAttention"
    assert type(ours.accelerator.unwrap_model(ours.model).model.vision_encoder.layers[0].attn).__name__ == "SamVisionSdpaAttention"
    dataset = base.loader.dataset
    assert len(dataset) == len(ours.train_set) == 16
    for index in (0, 7, 15):
        mine, theirs = ours.train_set[index], dataset[index]
        torch.testing.assert_close(theirs["pixel_values"], mine["pixel_values"], rtol=0, atol=0)
        expected = structure_masks(mine["labels"].numpy(), cfg.data.structures)
        np.testing.assert_array_equal(theirs["masks"].numpy(), expected.astype(np.float32))


def test_baseline_boxes_are_the_structure_boxes_pushed_outward_by_at_most_the_shift(bench_camus, tmp_path):
    cfg = engine_config(architecture="tiny", image_size=128, method="decoder_only", batch_size=2,
                        data_root=bench_camus, output_dir=tmp_path / "engine")
    dataset = baseline_loop(cfg).loader.dataset
    assert dataset.shift_px == 2  # MedSAM's 20 px at 1024, at 128 px
    grown = []
    for index in range(len(dataset)):
        item = dataset[index]
        for mask, box in zip(item["masks"].numpy(), item["boxes"].numpy(), strict=True):
            ys, xs = np.nonzero(mask)
            tight = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)
            delta = np.array([tight[0] - box[0], tight[1] - box[1], box[2] - tight[2], box[3] - tight[3]])
            assert (delta >= 0).all() and (delta <= 2).all(), (index, box, tight)
            grown.append(delta)
    assert np.stack(grown).max() > 0  # the jitter is really applied


def test_one_step_of_each_loop_trains_with_a_finite_loss(bench_camus, tmp_path):
    cfg = engine_config(architecture="tiny", image_size=128, method="medsam_full", batch_size=2,
                        data_root=bench_camus, output_dir=tmp_path / "engine", mixed_precision="bf16")
    ours, base = EngineLoop(cfg), baseline_loop(cfg)
    before = base.model.vision_encoder.patch_embed.projection.weight.detach().clone()
    assert np.isfinite(ours.step()) and np.isfinite(base.step())
    assert not torch.equal(before, base.model.vision_encoder.patch_embed.projection.weight)


def test_a_preset_can_be_narrowed_to_some_methods_and_batch_sizes(capsys, tmp_path):
    from medsam_echo.bench.presets import get_preset
    from medsam_echo.bench.runner import _narrowed

    part = _narrowed(get_preset("gpu-vitb"), ["lora_encoder"], [4, 8])
    assert part.methods == ("lora_encoder",) and part.batch_sizes == (4, 8)
    assert part.headline == ("lora_encoder", 4)  # the preset's own headline (medsam_full) is not measured
    assert _narrowed(get_preset("gpu-vitb"), None, [4]).headline == ("medsam_full", 4)
    assert main(["--preset", "cpu-tiny", "--methods", "full_ft", "--out", str(tmp_path / "x.json")]) == 2
    assert "--methods: unknown ['full_ft']" in capsys.readouterr().err


def test_threads_below_one_are_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--preset", "micro", "--threads", "0", "--out", str(tmp_path / "x.json")])
    assert exit_.value.code == 2 and "--threads 0" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
