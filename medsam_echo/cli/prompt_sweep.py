"""``medsam-echo prompt-sweep``: how a model's Dice depends on box jitter and on correction clicks.

Example::

    medsam-echo prompt-sweep --model runs/medsam_lora --data ../shared/data/camus224 --split val \\
        --levels 0 0.05 0.1 0.2 --max-clicks 10 --out runs/medsam_lora/prompt_sweep.json

Every case's prompts are seeded from its id, so two models swept on the same split see the same prompts.
``--from-auto`` adds a click sweep that starts from the automatic mode's result (``EchoPredictor.segment``:
no human input, then correction clicks), reported as ``noc90_from_auto`` next to ``noc90`` from nothing.
"""

from __future__ import annotations

import argparse
import json
import sys

from medsam_echo.atomic import OutputExistsError, atomic_write_text, check_output
from medsam_echo.data.sample import DEFAULT_STRUCTURES, STRUCTURES
from medsam_echo.prompts.boxes import JITTER_MODES
from medsam_echo.prompts.sweep import click_sweep, jitter_sweep, summarize_sweeps


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsam-echo prompt-sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint file, model directory, hub id or training run")
    parser.add_argument("--data", required=True, help="dataset: CAMUS release, folder with dataset.yaml, or COCO JSON")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--structures", nargs="+", default=list(DEFAULT_STRUCTURES), choices=list(STRUCTURES))
    parser.add_argument("--mode", default="relative", choices=JITTER_MODES, help="box jitter mode")
    parser.add_argument("--levels", nargs="+", type=float, default=[0.0, 0.05, 0.1, 0.2])
    parser.add_argument("--repeats", type=int, default=1, help="jittered boxes per case and level")
    parser.add_argument("--max-clicks", type=int, default=10, help="click budget (NoC@90 cap)")
    parser.add_argument("--from-auto", action="store_true",
                        help="also sweep clicks from the automatic result (NoC@90 from automatic start)")
    parser.add_argument("--limit", type=int, default=0, help="first N cases only (0: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="write all rows and the summary as JSON here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return parser


def _load(source: str, device: str):
    """``(model, profile)`` of a checkpoint source or a training run (``RUN``, ``RUN/model``, ``RUN/best``)."""
    from medsam_echo.adapters.persist import load_trained
    from medsam_echo.models.loader import load_sam
    from medsam_echo.training.run_folder import find_run

    found = find_run(source)
    if found is not None:
        model, base = load_trained(found.trained_dir, device=device)
        return model.eval(), base.profile
    loaded = load_sam(source, device=device)
    return loaded.model, loaded.profile


def _auto_prompts(source: str, device: str, data: str):
    """``(image, structures) -> Prompts``: the automatic mode's final boxes (learned prompts or view prior;
    a model with neither gets a view prior fitted on the ``train`` split of ``data``)."""
    from medsam_echo.inference import EchoPredictor
    from medsam_echo.inference.sources import fit_prior

    predictor = EchoPredictor.from_source(source, device=device)
    if predictor.automatic_method == "view-prior" and predictor.view_prior is None:
        predictor.view_prior = fit_prior(data)

    def auto(image, structures):
        predictor.set_image(image)
        return predictor.segment(structures=structures).prediction.prompts

    return auto


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from medsam_echo.data.io import DataError
    from medsam_echo.data.open import open_dataset
    from medsam_echo.models.errors import CheckpointError
    from medsam_echo.prompts.decode import make_predict_fn

    try:
        if args.out:
            check_output(args.out, overwrite=args.overwrite)
    except OutputExistsError as err:
        parser.exit(2, f"medsam-echo prompt-sweep: error: {err}\n")
    try:
        model, profile = _load(args.model, args.device)
        samples = open_dataset(args.data, args.split)
        samples = [samples[i] for i in range(min(args.limit, len(samples)) if args.limit else len(samples))]
    except (CheckpointError, DataError) as err:
        print(f"medsam-echo prompt-sweep: error: {err}", file=sys.stderr)
        return 1
    if not samples:
        print(f"medsam-echo prompt-sweep: error: no {args.split} cases under {args.data}", file=sys.stderr)
        return 1
    predict = make_predict_fn(model, profile)
    jitter_rows = jitter_sweep(
        predict, samples, args.structures, args.levels, mode=args.mode, repeats=args.repeats
    )
    click_rows = click_sweep(predict, samples, args.structures, max_clicks=args.max_clicks)
    starts = {}
    if args.from_auto:
        try:
            auto = _auto_prompts(args.model, args.device, args.data)
        except (CheckpointError, DataError, RuntimeError) as err:
            print(f"medsam-echo prompt-sweep: error: {err}", file=sys.stderr)
            return 1
        starts["auto"] = click_sweep(predict, samples, args.structures, max_clicks=args.max_clicks, start="auto",
                                     auto_prompts=auto)
    summary = summarize_sweeps(jitter_rows, click_rows, starts)
    print(f"{len(samples)} {args.split} cases, profile {profile.name}")
    for section, values in summary.items():
        print(f"{section}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
    if args.out:
        payload = {"args": vars(args), "summary": summary, "jitter": jitter_rows, "clicks": click_rows,
                   **{f"clicks_from_{start}": rows for start, rows in starts.items()}}
        atomic_write_text(args.out, json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0
