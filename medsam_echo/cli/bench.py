"""``medsam-echo bench --preset NAME --out FILE.json``: time training (ours vs a MedSAM-style baseline),
the embedding cache and inference, side by side in one run (see benchmarks/README.md)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from medsam_echo.bench.presets import PRESETS, get_preset
from medsam_echo.bench.runner import _narrowed, run_preset
from medsam_echo.models.registry import input_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medsam-echo bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", required=True, help=f"one of {sorted(PRESETS)}")
    parser.add_argument("--out", required=True, type=Path, help="where to write the JSON result")
    parser.add_argument("--work-dir", type=Path, help="scratch folder to keep (default: a temporary one)")
    parser.add_argument("--model", help="measure this model instead of the preset's: an architecture name "
                        "(random weights) or shipped weights such as litemedsam")
    parser.add_argument("--methods", nargs="+", help="measure only these methods (default: the preset's)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="measure only these batch sizes")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); 1 on a busy "
                        "machine, where a spinning OpenMP team waits for its descheduled members")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        preset = _narrowed(get_preset(args.preset), args.methods, args.batch_sizes)
        if args.model:
            input_size(args.model)  # a KeyError names the known models
            preset = replace(preset, architecture=args.model)
    except (KeyError, ValueError) as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    if preset.architecture == "vit_b" and not torch.cuda.is_available():
        print(f"error: preset {args.preset!r} needs a CUDA GPU (ViT-B at 1024 px)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="medsam-bench-") as scratch:
        work_dir = args.work_dir or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        result = run_preset(preset, work_dir, name=args.preset, log=lambda m: print(m, file=sys.stderr, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ours {result['train_img_s']:.2f} img/s vs baseline {result['baseline_train_img_s']:.2f} img/s "
          f"({result['speedup_vs_baseline']:.2f}x); embedding cache {result['cache_speedup']:.1f}x; wrote {args.out}")
    return 0
