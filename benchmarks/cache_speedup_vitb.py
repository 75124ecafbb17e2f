"""The embedding cache with the real ViT-B image encoder at 1024 px, on whatever machine runs it.

The CPU presets use small encoders, where the mask decoder dominates a step and the cache gains little.
The cache exists for the ViT-B regime (~1 TFLOP per image in the encoder), and this script measures that
regime directly, even on a 2-core CPU. It times a decoder-only epoch that recomputes the frozen encoder
against the same epoch read from the cache, with the engine's own code, side by side.

    python benchmarks/cache_speedup_vitb.py --images 2 --out benchmarks/results/DATE_MACHINE_cache-vitb.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from medsam_echo.bench import measure
from medsam_echo.bench.presets import BenchPreset
from medsam_echo.bench.runner import measure_cache
from medsam_echo.data.synthetic import make_camus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2, help="images per epoch (each costs ~1 min on 2 CPU cores)")
    parser.add_argument("--precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    preset = BenchPreset(
        architecture="vit_b", methods=("decoder_only",), batch_sizes=(1,), variants=("baseline", "ours"),
        mixed_precision=args.precision, warmup=1, rounds=1, steps=1, cache_images=args.images, cache_batch=1,
        synthetic_size=(256, 224), headline=("decoder_only", 1),
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        make_camus(root, patients=max(3, args.images + 2), seed=0, size=preset.synthetic_size, frames=0)
        common = dict(architecture="vit_b", image_size=1024, data_root=root, output_dir=Path(tmp) / "engine")
        cache = measure_cache(preset, common)
    result = {"script": "benchmarks/cache_speedup_vitb.py", "date": measure.utc_now(), "hardware": measure.hardware(),
              "versions": measure.versions(), "torch_threads": torch.get_num_threads(), "cache": cache,
              "cache_speedup": cache["speedup"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ViT-B 1024 px frozen-encoder epoch: recompute {cache['epoch_s_recompute']:.1f} s, "
          f"cache {cache['epoch_s_cached']:.2f} s -> {cache['speedup']:.1f}x")


if __name__ == "__main__":
    main()
