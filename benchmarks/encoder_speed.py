"""LiteMedSAM image-encoder throughput on this machine: each CPU speed step measured side by side.

    python benchmarks/encoder_speed.py --out benchmarks/results/DATE_cpu-2core_encoder-litemedsam.json

Variants, all on the real LiteMedSAM weights and the same random 256 x 256 batch, timed in interleaved
rounds (A B C ... C B A) so that a load that comes and goes hits all alike:
- ``eager``: the model's own encoder, fp32, glibc's allocator defaults (where the issue started: ~1.4 s
  per image);
- ``eager+alloc``: the same with freed memory kept for reuse (``medsam_echo.runtime.tune_allocator``);
- ``fast``: ``InferenceEncoder`` (BatchNorm folded, channels-last), fp32, allocator defaults;
- ``fast+alloc``: what ``medsam-echo`` runs (embedding cache, predictor);
- ``fast+alloc+bf16``: bf16 autocast (CPUs with AVX512-BF16 / AMX);
- ``fast+alloc+compile``: ``torch.compile`` on top (compile time reported apart).
Prints images/s and the ratio to ``eager``, and the max abs difference of each variant's embeddings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from medsam_echo.bench import measure
from medsam_echo.models.fast_encoder import InferenceEncoder
from medsam_echo.models.loader import load_sam
from medsam_echo.runtime import tune_allocator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = load_sam("litemedsam").model.eval()
    pixels = torch.rand(args.batch, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    fast = InferenceEncoder(model.vision_encoder)
    variants = {  # name -> (callable, keep freed memory)
        "eager": (model.get_image_embeddings, False),
        "eager+alloc": (model.get_image_embeddings, True),
        "fast": (fast, False),
        "fast+alloc": (fast, True),
        "fast+alloc+bf16": (InferenceEncoder(model.vision_encoder, precision="bf16"), True),
    }
    compile_s = None
    if not args.no_compile:
        compiled = InferenceEncoder(model.vision_encoder, compile=True)
        tune_allocator(True)
        start = time.perf_counter()
        compiled(pixels)
        compile_s = time.perf_counter() - start
        variants["fast+alloc+compile"] = (compiled, True)
    with torch.no_grad():
        reference = model.get_image_embeddings(pixels)
    times: dict[str, list[float]] = {name: [] for name in variants}
    diffs = {}
    for name, (encode, keep) in variants.items():  # warm-up, and the accuracy of each variant
        tune_allocator(keep)
        with torch.no_grad():
            diffs[name] = float((encode(pixels) - reference).abs().max())
    order = list(variants)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            encode, keep = variants[name]
            tune_allocator(keep)
            with torch.no_grad():
                start = time.perf_counter()
                encode(pixels)
                times[name].append(time.perf_counter() - start)
    tune_allocator(True)
    rate = {name: args.batch / statistics.median(t) for name, t in times.items()}
    result = {
        "date": measure.utc_now(), "hardware": measure.hardware(), "versions": measure.versions(),
        "batch": args.batch, "rounds": args.rounds, "compile_s": compile_s,
        "images_per_s": rate, "speedup_vs_eager": {n: rate[n] / rate["eager"] for n in rate},
        "max_abs_diff_vs_eager": diffs,
    }
    for name in variants:
        print(f"{name:22s} {rate[name]:6.2f} images/s  x{rate[name] / rate['eager']:.2f}  max|diff| {diffs[name]:.1e}")
    if compile_s is not None:
        print(f"torch.compile: first call {compile_s:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
