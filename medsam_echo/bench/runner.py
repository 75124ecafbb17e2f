"""``medsam-echo bench``: time our training engine against a MedSAM-style baseline, side by side.

    medsam-echo bench --preset cpu-tiny --out benchmarks/results/DATE_MACHINE_cpu-tiny.json

For every (method, batch size) of the preset, all variants (``medsam_echo.bench.presets``) are built on
the same synthetic images, warmed up, then timed in interleaved rounds (A B B A ...), so that a load
that comes and goes on a shared machine hits every variant alike. The JSON's fields are described in
benchmarks/README.md; the top level carries ``train_img_s`` (ours), ``baseline_train_img_s`` and
``cache_speedup``.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from medsam_echo.adapters.methods import METHODS, MethodConfig
from medsam_echo.bench import measure
from medsam_echo.bench.presets import BenchPreset
from medsam_echo.bench.variants import EngineLoop, baseline_loop, engine_config
from medsam_echo.data.synthetic import make_camus
from medsam_echo.models.registry import build_sam, input_size, model_source
from medsam_echo.training.embedding_cache import EmbeddedSet
from medsam_echo.training.model import encoder_is_cacheable, set_attention


def run_preset(preset: BenchPreset, work_dir: Path, *, name: str = "custom", log=print) -> dict:
    """Measure ``preset``; scratch files (synthetic data, caches) go under ``work_dir``.

    Returns:
        The result dict written as JSON (see benchmarks/README.md).
    """
    image_size = input_size(preset.architecture)
    data_root = work_dir / "synthetic"
    needed = max(preset.cache_images, 2 * max(preset.batch_sizes, default=1))
    make_camus(data_root, patients=max(3, -(-needed * 10 // 32) + 2), seed=0, size=preset.synthetic_size, frames=0)
    result = result_header(preset, name, image_size)
    common = dict(architecture=preset.architecture, image_size=image_size, data_root=data_root,
                  output_dir=work_dir / "engine")
    runs = []
    for method in preset.methods:
        for batch in preset.batch_sizes:
            log(f"[bench] {preset.architecture} {method} batch {batch}")
            runs += _measure_group(preset, dict(common, method=method, batch_size=batch))
    result["runs"] = runs
    log("[bench] embedding cache epoch")
    result["cache"] = measure_cache(preset, common)
    log("[bench] inference latency")
    result["inference"] = _measure_inference(preset, image_size)
    result["hardware"]["loadavg_end"] = list(os.getloadavg())
    result.update(_headline(preset, runs, result["cache"]))
    return result


def run_cache_preset(preset, work_dir: Path, *, name: str = "custom", log=print) -> dict:
    """A :class:`~medsam_echo.bench.presets.CachePreset`: only the recompute-vs-cache epoch."""
    image_size = input_size(preset.architecture)
    root = make_camus(work_dir / "synthetic", patients=max(3, preset.cache_images + 2), seed=0,
                      size=preset.synthetic_size, frames=0)
    result = result_header(preset, name, image_size)
    log(f"[bench] {preset.architecture} embedding cache epoch ({preset.cache_images} images)")
    common = dict(architecture=preset.architecture, image_size=image_size, data_root=root,
                  output_dir=work_dir / "engine")
    result["cache"] = measure_cache(preset, common)
    result["cache_speedup"] = result["cache"]["speedup"]
    result["hardware"]["loadavg_end"] = list(os.getloadavg())
    return result


def run_latency_preset(preset, *, name: str = "custom", log=print) -> dict:
    """A :class:`~medsam_echo.bench.presets.LatencyPreset`: the predictor's prompt-to-mask round trip."""
    from medsam_echo.bench.latency import measure_latency

    result = result_header(preset, name, 1024)
    result.update(measure_latency(preset, log))
    result["hardware"]["loadavg_end"] = list(os.getloadavg())
    return result


def run_agreement_preset(preset, data_root: Path, *, name: str = "custom", log=print) -> dict:
    """An :class:`~medsam_echo.bench.presets.AgreementPreset` on the dataset at ``data_root``."""
    from medsam_echo.bench.encoder import mask_agreement
    from medsam_echo.data.open import open_dataset
    from medsam_echo.models.fast_encoder import InferenceEncoder
    from medsam_echo.models.loader import load_sam
    from medsam_echo.training.data import PreprocessedSet

    loaded = load_sam("litemedsam")
    model = loaded.model.eval()
    dataset = PreprocessedSet(open_dataset(data_root, preset.split), loaded.profile)
    encoders = {"fast+alloc": InferenceEncoder(model.vision_encoder)}
    if preset.bf16_images:
        encoders["fast+alloc+bf16"] = InferenceEncoder(model.vision_encoder, precision="bf16")
    result = result_header(preset, name, 256)
    result["settings"]["data"] = str(data_root)
    result["agreement"] = mask_agreement(model, dataset, preset.structures, encoders, batch=preset.batch,
                                         limit={"fast+alloc+bf16": preset.bf16_images}, log=log)
    result["hardware"]["loadavg_end"] = list(os.getloadavg())
    return result


def result_header(preset, name: str, image_size: int) -> dict:
    return {"preset": name, "date": measure.utc_now(), "hardware": measure.hardware(),
            "versions": measure.versions(), "settings": {**preset.to_dict(), "image_size": image_size}}


def _variant_config(preset: BenchPreset, variant: str, common: dict):
    precision = {"baseline": "no", "ours_fp32": "no", "ours_bf16": "bf16"}.get(variant, preset.mixed_precision)
    run = Path(common["output_dir"]) / f"{common['method']}_b{common['batch_size']}_{variant}"
    return engine_config(**dict(common, output_dir=run), mixed_precision=precision, gradient_checkpointing=variant == "ours_grad_ckpt",
                         compile_encoder=variant == "ours_compile", num_workers=preset.num_workers)


def _build(preset: BenchPreset, variant: str, common: dict):
    cfg = _variant_config(preset, variant, common)
    return baseline_loop(cfg) if variant == "baseline" else EngineLoop(cfg)


def _measure_group(preset: BenchPreset, common: dict) -> list[dict]:
    """Every variant of one (method, batch size): build, warm up, memory, interleaved timing, FLOPs.

    A variant that runs out of GPU memory at any stage is recorded as such and dropped; the others go on.
    """
    frozen_encoder = encoder_is_cacheable(MethodConfig(common["method"]))  # checkpointing it saves nothing
    names = [v for v in preset.variants if not (v == "ours_grad_ckpt" and frozen_encoder)]
    records = {name: {"method": common["method"], "batch_size": common["batch_size"], "variant": name}
               for name in names}
    loops, times = {}, {name: [] for name in names}

    def guarded(name: str, work) -> None:
        try:
            work()
        except torch.OutOfMemoryError:
            loops.pop(name, None)
            records[name]["error"] = "out of memory"
            _release()

    for name in names:
        guarded(name, lambda name=name: _prepare(preset, name, common, loops, records[name]))
    for round_ in range(preset.rounds):
        for name in (list(loops) if round_ % 2 == 0 else list(loops)[::-1]):
            guarded(name, lambda name=name: times[name].extend(_timed(loops[name].step) for _ in range(preset.steps)))
    peak = measure.peak_bf16_flops(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None
    for name in [n for n in ("baseline", "ours") if n in loops]:
        guarded(name, lambda name=name: records[name].update(flops_per_step=measure.count_flops(loops[name].step)))
    for name, loop in loops.items():
        step_s, flops = statistics.median(times[name]), records[name].get("flops_per_step")
        records[name].update(step_ms=1e3 * step_s, step_ms_min=1e3 * min(times[name]), img_s=loop.batch_size / step_s,
                             timed_steps=len(times[name]), flops_per_step=flops,
                             achieved_tflops=flops / step_s / 1e12 if flops else None,
                             mfu=flops / step_s / peak if flops and peak else None)
    loops.clear()
    _release()
    return list(records.values())


def _prepare(preset: BenchPreset, name: str, common: dict, loops: dict, record: dict) -> None:
    """Build variant ``name`` into ``loops``, time its first step, warm it up and measure one step's memory."""
    loops[name] = loop = _build(preset, name, common)
    record["first_step_ms"] = 1e3 * _timed(loop.step)  # one-off costs: compiling, allocator growth, autotuning
    for _ in range(preset.warmup - 1):
        loop.step()
    memory = measure.step_memory(loop.step)
    own = measure.resident_bytes(loop.model, getattr(loop.optimizer, "optimizer", loop.optimizer))
    record.update(memory, peak_mem_mb=own / measure.MIB + memory["step_peak_mb"],
                  memory_kind="cuda_allocated" if torch.cuda.is_available() else "cpu_rss")


def _timed(call) -> float:
    """Wall-clock seconds of ``call()``, queued GPU work included."""
    measure.synchronize()
    start = time.perf_counter()
    call()
    measure.synchronize()
    return time.perf_counter() - start


def measure_cache(preset: BenchPreset, common: dict) -> dict:
    """Epoch time of a frozen-encoder run recomputing the encoder vs reading the embedding cache."""
    shared = dict(common, method="decoder_only", batch_size=preset.cache_batch, mixed_precision=preset.mixed_precision,
                  max_train_samples=preset.cache_images, num_workers=preset.num_workers)
    root = Path(shared.pop("output_dir"))
    recompute = EngineLoop(engine_config(**shared, output_dir=root / "cache_recompute", embedding_cache=False))
    cached = EngineLoop(engine_config(**shared, output_dir=root / "cache_cached", embedding_cache=True))
    if not isinstance(cached.train_set, EmbeddedSet):
        raise RuntimeError("the engine did not switch to the embedding cache for decoder_only")
    recompute.epoch_seconds(), cached.epoch_seconds()  # warm-up epochs
    times = {"recompute": [], "cached": []}
    for round_ in range(preset.rounds):
        pairs = [("recompute", recompute), ("cached", cached)]
        for key, loop in pairs if round_ % 2 == 0 else pairs[::-1]:
            times[key].append(loop.epoch_seconds())
    epoch_recompute, epoch_cached = statistics.median(times["recompute"]), statistics.median(times["cached"])
    images = len(cached.loader) * preset.cache_batch
    result = {"method": "decoder_only", "batch_size": preset.cache_batch, "images_per_epoch": images,
              "epoch_s_recompute": epoch_recompute, "epoch_s_cached": epoch_cached,
              "speedup": epoch_recompute / epoch_cached, "fill_s": cached.cache_fill_s,
              "fill_img_s": images / cached.cache_fill_s}
    del recompute, cached
    _release()
    return result


@torch.inference_mode()
def _measure_inference(preset: BenchPreset, image_size: int) -> dict:
    """Median batch-1 latency (ms) of the image encoder and of prompt encoder + mask decoder (3 boxes)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = {}
    pixels = torch.randn(1, 3, image_size, image_size, device=device)
    boxes = torch.tensor([[[10.0, 10.0, image_size / 2, image_size / 2]] * 3], device=device)
    for label, attention, precision in (("ours", "sdpa", preset.mixed_precision), ("baseline", "eager", "no")):
        model = _inference_model(preset.architecture, device)
        set_attention(model, attention)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16"):
            embeddings = model.get_image_embeddings(pixels)
            encode = _median_ms(partial(model.get_image_embeddings, pixels), preset.inference_repeats)
            decode = _median_ms(partial(model, image_embeddings=embeddings, input_boxes=boxes, multimask_output=False),
                                preset.inference_repeats)
        out[label] = {"encoder_ms": encode, "decoder_ms": decode, "attention": attention, "precision": precision}
    out["encoder_speedup"] = out["baseline"]["encoder_ms"] / out["ours"]["encoder_ms"]
    return out


def _inference_model(name: str, device: str):
    """The preset's model for the latency figures: shipped weights as they are, else random weights."""
    source = model_source(name)
    if source == name:
        from medsam_echo.models.loader import load_sam

        return load_sam(source, device=device).model
    return build_sam(name, device=device).eval()


def _median_ms(call, repeats: int) -> float:
    call()  # warm-up
    return 1e3 * statistics.median(_timed(call) for _ in range(repeats))


def _headline(preset: BenchPreset, runs: list[dict], cache: dict) -> dict:
    method, batch = preset.headline
    chosen = {r["variant"]: r for r in runs if r["method"] == method and r["batch_size"] == batch}
    ours, base = chosen["ours"].get("img_s"), chosen["baseline"].get("img_s")
    return {"headline": {"method": method, "batch_size": batch}, "train_img_s": ours, "baseline_train_img_s": base,
            "speedup_vs_baseline": ours / base if ours and base else None, "cache_speedup": cache["speedup"],
            "mfu": chosen["ours"].get("mfu")}


def _release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _narrowed(preset: BenchPreset, methods: list[str] | None, batch_sizes: list[int] | None) -> BenchPreset:
    """``preset`` restricted to some methods / batch sizes (e.g. to split a long GPU run into calls)."""
    if not methods and not batch_sizes:
        return preset
    methods, batch_sizes = tuple(methods or preset.methods), tuple(batch_sizes or preset.batch_sizes)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"--methods: unknown {unknown}; choose from {sorted(METHODS)}")
    headline = preset.headline
    if headline[0] not in methods or headline[1] not in batch_sizes:
        headline = (methods[0], batch_sizes[0])
    return replace(preset, methods=methods, batch_sizes=batch_sizes, headline=headline)
