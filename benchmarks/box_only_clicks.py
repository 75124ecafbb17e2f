"""Correction clicks on a box-only model: which click behaviour helps (issue 24).

Zero-shot LiteMedSAM (or any ``--model``) gets a loose box per structure (every side pushed outward by
U{0..LOOSE} px, seeded by the case id), then simulated correction clicks at the most interior point of the
largest error region (``prompts.clicks.next_click``), answered with each click behaviour of
``EchoPredictor.refine`` (``prompts.kinds``): ``mask-feedback`` (the click joins the prompts, the previous
logits go back as the mask prompt: what ``refine`` always did), ``point-prompts`` (box + every click, no
mask prompt) and ``box-edit`` (the click edits the box, the box alone is decoded). Reported per behaviour,
structure and click count: mean Dice, the stripe score (label flips per mask row, 2.0 for a smooth region),
the mean number of 8-connected components, and the share of masks worse than at click 0; plus NoC@85/90.

    nice -n 10 python benchmarks/box_only_clicks.py --data ../shared/data/camus224 --split val \\
        --patients 12 --out benchmarks/results/2026-12-04_cpu-2core_box-only-clicks.json

Never the testing subgroup: ``--split`` is ``train`` or ``val``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict

import numpy as np
import torch

from medsam_echo.data.open import open_dataset
from medsam_echo.inference import EchoPredictor
from medsam_echo.prompts.kinds import CLICK_BEHAVIOURS
from medsam_echo.prompts.sweep import LOOSE_PX, click_sweep, noc_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--data", default="../shared/data/camus224")
    parser.add_argument("--split", default="val", choices=["train", "val"])
    parser.add_argument("--patients", type=int, default=12, help="the first N patients of the split")
    parser.add_argument("--phases", nargs="+", default=["ED"])
    parser.add_argument("--structures", nargs="+", default=["lv_endo", "la", "myo"])
    parser.add_argument("--behaviours", nargs="+", default=list(CLICK_BEHAVIOURS), choices=CLICK_BEHAVIOURS)
    parser.add_argument("--loose-px", type=float, default=LOOSE_PX, help="outward box jitter U{0..N} px per side")
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared 2-core CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="write the rows and the table as JSON")
    return parser


def select(dataset, patients: int, phases) -> list:
    """The samples of the first ``patients`` patients (sorted ids) at ``phases``, both views."""
    chosen = sorted({s.patient for s in dataset})[:patients]
    return [s for s in dataset if s.patient in chosen and s.phase in phases]


def table(rows: list[dict], clicks: int) -> list[dict]:
    """Per behaviour, structure and click count: mean Dice, stripes, components, share worse than click 0."""
    start = {(r["behaviour"], r["case_id"], r["structure"]): r["dice"] for r in rows if r["clicks"] == 0}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["behaviour"], r["structure"], r["clicks"]].append(r)
    out = []
    for (behaviour, structure, c), items in sorted(groups.items()):
        worse = [r["dice"] < start[behaviour, r["case_id"], structure] - 1e-9 for r in items]
        out.append({"behaviour": behaviour, "structure": structure, "clicks": c, "n": len(items),
                    "dice": float(np.mean([r["dice"] for r in items])),
                    "stripes": float(np.mean([r["stripes"] for r in items])),
                    "components": float(np.mean([r["components"] for r in items])),
                    "worse_than_start": float(np.mean(worse))})  # fmt: skip
    return out


def nocs(rows: list[dict]) -> dict:
    """``{behaviour: {"noc85"|"noc90": {structure: mean}}}``."""
    result: dict = {}
    for behaviour in sorted({r["behaviour"] for r in rows}):
        mine = [r for r in rows if r["behaviour"] == behaviour]
        for target in (0.85, 0.90):
            per: dict[str, list[int]] = defaultdict(list)
            for row in noc_table(mine, target):
                per[row["structure"]].append(row["noc"])
            result.setdefault(behaviour, {})[f"noc{round(100 * target)}"] = {
                s: float(np.mean(v)) for s, v in sorted(per.items())
            }
    return result


def markdown(summary: list[dict], structures, clicks: int) -> str:
    header = "| behaviour | structure | " + " | ".join(f"Dice @{c}" for c in range(clicks + 1))
    header += f" | stripes @0 -> @{clicks} | components @0 -> @{clicks} | worse than the box @{clicks} |"
    lines = [header, "|" + "---|" * (clicks + 6)]
    by = {(r["behaviour"], r["structure"], r["clicks"]): r for r in summary}
    for behaviour in dict.fromkeys(r["behaviour"] for r in summary):
        for s in structures:
            cells = [f"{by[behaviour, s, c]['dice']:.3f}" for c in range(clicks + 1)]
            a, b = by[behaviour, s, 0], by[behaviour, s, clicks]
            lines.append(f"| {behaviour} | {s} | " + " | ".join(cells)
                         + f" | {a['stripes']:.2f} -> {b['stripes']:.2f} | {a['components']:.2f} -> "
                           f"{b['components']:.2f} | {100 * b['worse_than_start']:.0f} % |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    samples = select(open_dataset(args.data, args.split), args.patients, args.phases)
    started = time.perf_counter()
    predictor = EchoPredictor.from_source(args.model, device=args.device)
    load_s = time.perf_counter() - started
    clicker = predictor.clicker()
    rows = []
    for i, sample in enumerate(samples):
        for behaviour in args.behaviours:  # image-major: each image is encoded once
            predictor.click_behaviour = behaviour
            for row in click_sweep(None, [sample], args.structures, max_clicks=args.clicks, start="loose",
                                   clicker=clicker, loose_px=args.loose_px, shape_metrics=True):  # fmt: skip
                rows.append({**row, "behaviour": behaviour})
        print(f"{i + 1}/{len(samples)} {sample.case_id} ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = table(rows, args.clicks)
    result = {
        "args": vars(args),
        "model": {"source": args.model, "prompt_kinds": list(predictor.prompt_kinds.kinds),
                  "default_click_behaviour": predictor.prompt_kinds.click_behaviour},  # fmt: skip
        "cases": [s.case_id for s in samples],
        "hardware": {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": args.threads,
                     "load_1min": round(os.getloadavg()[0], 2)},  # fmt: skip
        "seconds": {"load": round(load_s, 1), "total": round(time.perf_counter() - started, 1)},
        "table": summary,
        "noc": nocs(rows),
        "rows": rows,
    }
    print(markdown(summary, args.structures, args.clicks))
    print(json.dumps(result["noc"]))
    if args.out:
        with open(args.out, "w") as stream:
            json.dump(result, stream, indent=1)
            stream.write("\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
