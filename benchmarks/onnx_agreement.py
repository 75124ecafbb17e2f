"""The ONNX engine against the torch engine on real images: masks, predicted IoU and speed (issue 28).

The model is exported once (``medsam-echo export-onnx``'s code), then every image of the chosen patients
goes through two ``EchoPredictor``: ``engine="torch"`` (the default) and ``engine="onnx"`` (onnxruntime,
CPU). Each structure is prompted with its tight ground-truth box; the masks are compared on the original
grid (Dice per mask) with their logits and predicted IoU. ``set_image`` (preprocessing + image encoder)
and ``predict`` (prompt encoder + decoder + resize) are timed per image, the two engines alternating
(A B, then B A on the next image), with as many onnxruntime threads as torch has.

    nice -n 10 python benchmarks/onnx_agreement.py --data ../shared/data/camus224 --split val --patients 6 \\
        --out benchmarks/results/2026-12-04_cpu-2core_onnx-litemedsam-camus224-val.json

Never the testing subgroup: ``--split`` is ``train`` or ``val``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medsam_echo.data.open import open_dataset
from medsam_echo.data.sample import structure_mask
from medsam_echo.inference import EchoPredictor
from medsam_echo.inference.onnx_engine import export_source
from medsam_echo.prompts.boxes import box_from_mask


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--data", default="../shared/data/camus224")
    parser.add_argument("--split", default="val", choices=["train", "val"])
    parser.add_argument("--patients", type=int, default=6, help="the first N patients of the split (both views, ED, ES)")
    parser.add_argument("--structures", nargs="+", default=["lv_endo", "lv_epi", "la"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads")
    parser.add_argument("--onnx-dir", help="an existing export of --model (default: export into a temporary folder)")
    parser.add_argument("--out", help="write the result as JSON")
    return parser


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = open_dataset(args.data, args.split)
    chosen = sorted({s.patient for s in dataset})[: args.patients]
    samples = [s for s in dataset if s.patient in chosen]
    with tempfile.TemporaryDirectory(prefix="onnx-agreement-") as tmp:
        onnx_dir = Path(args.onnx_dir or Path(tmp) / "onnx")
        export_s = None
        if args.onnx_dir is None:
            start = time.perf_counter()
            manifest = export_source(args.model, onnx_dir, log_fn=print)
            export_s = time.perf_counter() - start
        else:
            manifest = json.loads((onnx_dir / "onnx_model.json").read_text())
        predictors = {"torch": EchoPredictor.from_source(args.model, device="cpu"),
                      "onnx": EchoPredictor.from_source(str(onnx_dir), engine="onnx")}
    times: dict[str, dict[str, list[float]]] = {e: {"set_image": [], "predict": []} for e in predictors}
    rows = []
    for i, sample in enumerate(samples):
        present = [s for s in args.structures if structure_mask(sample.label, s).any()]
        boxes = np.stack([box_from_mask(structure_mask(sample.label, s)) for s in present])
        out = {}
        for name in (list(predictors) if i % 2 == 0 else list(predictors)[::-1]):
            predictor = predictors[name]
            start = time.perf_counter()
            predictor.set_image(sample.image)
            times[name]["set_image"].append(time.perf_counter() - start)
            start = time.perf_counter()
            out[name] = predictor.predict(boxes=boxes, structure=present)
            times[name]["predict"].append(time.perf_counter() - start)
        a, b = out["onnx"], out["torch"]
        for j, structure in enumerate(present):
            rows.append({"case_id": sample.case_id, "structure": structure,
                         "dice": _dice(a.masks[j], b.masks[j]),
                         "max_abs_logit_diff": float(np.abs(a.logits[j] - b.logits[j]).max()),
                         "iou_diff": float(abs(a.scores[j] - b.scores[j])),
                         "pixels_differing": int((a.masks[j] != b.masks[j]).sum())})
        print(f"{i + 1}/{len(samples)} {sample.case_id}: Dice min "
              f"{min(r['dice'] for r in rows[-len(present):]):.5f}", flush=True)
    median = {e: {k: 1000 * statistics.median(v) for k, v in t.items()} for e, t in times.items()}
    dice = [r["dice"] for r in rows]
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/onnx_agreement.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": args.model, "data": args.data, "split": args.split, "patients": chosen,
        "images": len(samples), "masks": len(rows), "structures": args.structures,
        "dice_min": min(dice), "dice_mean": float(np.mean(dice)),
        "masks_below_0.999": sum(d < 0.999 for d in dice),
        "max_abs_logit_diff": max(r["max_abs_logit_diff"] for r in rows),
        "max_iou_diff": max(r["iou_diff"] for r in rows),
        "max_pixels_differing": max(r["pixels_differing"] for r in rows),
        "median_ms": median,
        "set_image_speedup_onnx_vs_torch": median["torch"]["set_image"] / median["onnx"]["set_image"],
        "predict_speedup_onnx_vs_torch": median["torch"]["predict"] / median["onnx"]["predict"],
        "export_s": export_s, "exporter": manifest["exporter"], "opset": manifest["opset"],
        "export_verified": manifest["verified"],
        "hardware": {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
                     "threads": args.threads, "load_1min_end": round(os.getloadavg()[0], 2)},
        "versions": manifest["versions"],
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows", "export_verified")}, indent=1))
    if args.out:
        with open(args.out, "w") as stream:
            json.dump(result, stream, indent=1)
            stream.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
