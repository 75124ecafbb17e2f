"""``medsam-echo export-onnx MODEL OUT_DIR``: the image encoder and prompt decoder as ONNX for onnxruntime.

``MODEL`` is anything the predictor loads: ``litemedsam``, a checkpoint, a hub id, ``scratch:<arch>`` or
a run folder (LoRA merged first; the run's learned prompts, structures, prompt kinds and view prior come
along). Each graph is checked by onnxruntime against the torch model before the folder is written (see
:mod:`medsam_echo.models.onnx_export`). Run the export with::

    medsam-echo predict --model OUT_DIR --engine onnx ...
    EchoPredictor.from_source("OUT_DIR", engine="onnx")

Needs the ``onnx`` extra: ``pip install -e ".[onnx]"`` (onnxruntime, onnx, onnxscript).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """``medsam-echo export-onnx MODEL OUT_DIR [--profile NAME] [--opset N] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="medsam-echo export-onnx", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("model", help="litemedsam, checkpoint, hub id, scratch:<architecture> or run folder")
    add("out_dir", type=Path, help="the export folder (replaced once the new export is complete)")
    add("--profile", choices=("sam", "medsam", "litemedsam"),
        help="preprocessing of a checkpoint or scratch model (default: the loader's choice; a run keeps its own)")
    add("--opset", type=int, help="ONNX opset (default: the exporter's)")
    add("--seed", type=int, default=0, help="initialisation of a scratch: model (default 0)")
    args = parser.parse_args(argv)

    from medsam_echo.inference.onnx_engine import export_source

    start = time.perf_counter()
    try:
        manifest = export_source(args.model, args.out_dir, profile=args.profile, seed=args.seed, opset=args.opset,
                                 log_fn=print)
    except (ValueError, KeyError, ImportError, FileNotFoundError, RuntimeError) as err:
        print(f"medsam-echo export-onnx: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out_dir} in {time.perf_counter() - start:.1f} s ({manifest['exporter']}, opset "
          f"{manifest['opset']}): {', '.join(manifest['graphs'].values())}")
    for kind, check in manifest["verified"].items():
        print(f"  {kind}: onnxruntime vs torch max |diff| {check['max_abs_diff']:.2e}")
    if manifest["learned_structures"]:
        print(f"  learned prompts: {', '.join(manifest['learned_structures'])} (automatic mode)")
    print(f"  run it: medsam-echo predict --model {args.out_dir} --engine onnx ...")
    return 0
