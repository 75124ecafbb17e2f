"""``medsam-echo prompt-sweep``: how a model's Dice depends on box jitter and on correction clicks.

Example::

    medsam-echo prompt-sweep --model runs/medsam_lora --data ../shared/data/camus224 --split val \\
        --levels 0 0.05 0.1 0.2 --max-clicks 10 --out runs/medsam_lora/prompt_sweep.json

Every case's prompts are seeded from its id, so two models swept on the same split see the same prompts.
``--starts`` adds click sweeps from other starts: ``box`` (a tight box), ``loose`` (every side outward by
U{0..10} px, ``predict --jitter-px 10``) and ``auto`` (the automatic mode's result, ``EchoPredictor.segment``:
no human input); each is reported as ``dice_by_clicks_from_<start>``, ``noc85_from_<start>`` and
``noc90_from_<start>`` next to the sweep from nothing. ``--from-auto`` is ``--starts auto``.

The clicks go through ``EchoPredictor.refine``, as in the notebook and the API: what a click does follows
the model's saved prompt kinds (``predictor.click_behaviour``: mask feedback for a click-trained run, box
edits for box-only weights such as the shipped LiteMedSAM). ``--clicks prompts`` instead adds every click to
the prompts and decodes them all again without a mask (the protocol of earlier releases).
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
    parser.add_argument("--from-auto", action="store_true", help="same as --starts auto")
    parser.add_argument("--starts", nargs="+", default=[], choices=["box", "loose", "auto"],
                        help="also sweep clicks from a tight box, a loose box (outward 0-10 px) or the automatic result")
    parser.add_argument("--clicks", default="predictor", choices=["predictor", "prompts"],
                        help="predictor: EchoPredictor.refine by the model's prompt kinds (default); prompts: "
                        "every click added to the prompts, decoded without a mask")
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


def _auto_prompts(predictor, data: str):
    """``(image, structures) -> Prompts``: the automatic mode's final boxes (learned prompts or view prior;
    a model with neither gets a view prior fitted on the ``train`` split of ``data``)."""
    from medsam_echo.inference.sources import fit_prior

    if predictor.automatic_method == "view-prior" and predictor.view_prior is None:
        predictor.view_prior = fit_prior(data)

    def auto(image, structures):
        predictor.set_image(image)
        return predictor.segment(structures=structures).prediction.prompts

    return auto


def _predictor(source: str, device: str):
    """The ``EchoPredictor`` of ``source`` (its prompt kinds set how a click is taken)."""
    from medsam_echo.inference import EchoPredictor

    return EchoPredictor.from_source(source, device=device)


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
    wanted = list(dict.fromkeys([*args.starts, *(["auto"] if args.from_auto else [])]))
    try:
        predictor = _predictor(args.model, args.device) if args.clicks == "predictor" or "auto" in wanted else None
        auto = _auto_prompts(predictor, args.data) if "auto" in wanted else None
    except (CheckpointError, DataError, RuntimeError) as err:
        print(f"medsam-echo prompt-sweep: error: {err}", file=sys.stderr)
        return 1

    def sweep(start: str) -> list[dict]:
        clicker = predictor.clicker() if args.clicks == "predictor" else None
        return click_sweep(predict, samples, args.structures, max_clicks=args.max_clicks, start=start,
                           auto_prompts=auto, clicker=clicker, shape_metrics=True)

    click_rows = sweep("none")
    starts = {start: sweep(start) for start in wanted}
    summary = summarize_sweeps(jitter_rows, click_rows, starts)
    behaviour = predictor.click_behaviour if args.clicks == "predictor" else "prompts re-decoded"
    print(f"{len(samples)} {args.split} cases, profile {profile.name}, clicks: {behaviour}")
    for section, values in summary.items():
        print(f"{section}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
    if args.out:
        payload = {"args": vars(args), "click_behaviour": behaviour, "summary": summary, "jitter": jitter_rows, "clicks": click_rows,
                   **{f"clicks_from_{start}": rows for start, rows in starts.items()}}
        atomic_write_text(args.out, json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0
