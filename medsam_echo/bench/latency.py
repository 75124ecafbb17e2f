"""Prompt-to-mask latency of ``EchoPredictor`` after ``set_image``, with a ViT-B-sized decoder.

The image encoder only runs once per image (``set_image``), so it is made tiny here; the prompt encoder
and mask decoder have ViT-B's size (256 wide, 1024 px input, 64 x 64 embeddings, 256 px low-res
masks), with random weights: latency does not depend on their values. One round trip is
``predictor.predict(boxes=..., structure=...)``: prompt checks, the mapping into the model input, the
decoder, and the masks mapped back onto the original grid. Target: < 50 ms on a 2-core CPU. Both
decoder precisions are timed (``SamEngine(decoder_precision="fp32" | "bf16")``), and with ``--compile``
a ``torch.compile``'d decoder too. Other processes on the machine slow every figure: the load average
is recorded with them, and CPU time (which their load does not inflate) beside the wall time.

    medsam-echo bench --preset predictor-latency --threads 2 --out benchmarks/results/DATE_MACHINE_latency.json
"""

from __future__ import annotations

import time

import numpy as np
import torch
from transformers import SamConfig, SamModel

from medsam_echo.inference.engines import DECODER_PRECISIONS, SamEngine
from medsam_echo.inference.predictor import EchoPredictor
from medsam_echo.models.profile import get_profile
from medsam_echo.models.registry import sam_config


def vit_b_decoder_model() -> SamModel:
    """ViT-B's prompt encoder and mask decoder behind a one-block, 32-wide image encoder at 1024 px."""
    base = sam_config("vit_b").to_dict()
    base["vision_config"].update(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=1, global_attn_indexes=[0], mlp_dim=64
    )
    config = SamConfig(
        vision_config=base["vision_config"],
        prompt_encoder_config=base["prompt_encoder_config"],
        mask_decoder_config=base["mask_decoder_config"],
    )
    torch.manual_seed(0)
    return SamModel(config).eval()


def time_round_trips(
    predictor: EchoPredictor, box: list[int], repeats: int, *, multimask: bool = False
) -> list[tuple[float, float]]:
    """``(wall, cpu)`` milliseconds of ``repeats`` predict calls (after 3 warm-up calls).

    CPU time is this process's, summed over its threads: on a machine shared with other jobs it is the
    figure that does not grow with their load (with one thread it is the compute cost of a call).
    """
    for _ in range(3):
        predictor.predict(boxes=box, structure="lv_endo", multimask=multimask)
    times = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        predictor.predict(boxes=box, structure="lv_endo", multimask=multimask)
        times.append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))
    return times


def measure_latency(preset, log=print) -> dict:
    """Round-trip times of every (decoder precision, single / multimask) case, interleaved A B B A.

    Args:
        preset: a ``LatencyPreset`` (image ``height`` x ``width`` px, ``repeats`` per case, ``compile``).

    Returns:
        ``{"decoder_params", "cases": [{"variant", "masks_per_box", "wall_ms_median", "wall_ms_p90",
        "cpu_ms_median", "n", "first_calls_s"}]}``.
    """
    model = vit_b_decoder_model()
    image = np.random.default_rng(0).integers(0, 255, (preset.height, preset.width), dtype=np.uint8)
    w, h = preset.width, preset.height
    box = [w // 4, h // 5, w * 3 // 4, h * 3 // 5]
    variants = {precision: {"decoder_precision": precision} for precision in DECODER_PRECISIONS}
    if preset.compile:  # a separate model: compiling is in place
        compiled = vit_b_decoder_model()
        variants["fp32+compile"] = {"compile_decoder": True, "model": compiled}
        variants["bf16+compile"] = {"compile_decoder": True, "decoder_precision": "bf16", "model": compiled}
    predictors, first = {}, {}
    for name, options in variants.items():
        options = dict(options)
        engine_model = options.pop("model", model)
        predictors[name] = EchoPredictor(SamEngine(engine_model, get_profile("sam", 1024), **options))
        predictors[name].set_image(image)
        start = time.perf_counter()
        predictors[name].predict(boxes=box)
        predictors[name].predict(boxes=box, multimask=True)
        first[name] = time.perf_counter() - start
        log(f"[bench] {name}: first calls {first[name]:.1f} s (compilation, if any)")
    cases = [(name, multimask) for name in variants for multimask in (False, True)]
    times: dict[tuple[str, bool], list[tuple[float, float]]] = {case: [] for case in cases}
    for round_ in range(4):  # interleaved A B B A, so a load that comes and goes hits every case alike
        for name, multimask in cases if round_ % 2 == 0 else cases[::-1]:
            times[(name, multimask)] += time_round_trips(predictors[name], box, preset.repeats // 4,
                                                         multimask=multimask)
    records = []
    for (name, multimask), pairs in times.items():
        wall, cpu = np.array(pairs).T
        records.append({"variant": name, "masks_per_box": 3 if multimask else 1,
                        "wall_ms_median": float(np.median(wall)), "wall_ms_p90": float(np.percentile(wall, 90)),
                        "cpu_ms_median": float(np.median(cpu)), "n": len(wall), "first_calls_s": first[name]})
    n_decoder = sum(p.numel() for p in model.mask_decoder.parameters())
    return {"decoder_params": n_decoder, "image_hw": [h, w], "cases": records}
