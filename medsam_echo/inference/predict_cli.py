"""``medsam-echo predict``: run a model (or the ellipse baseline) on a CAMUS split or on image files.

Dataset mode (predictions for ``medsam-echo evaluate``)::

    medsam-echo predict --model RUN --data ROOT --split test --prompt box|points|auto --out PRED_DIR

writes ``PRED_DIR/<case>.nii.gz`` label maps (CAMUS values, the ground truth's grid and spacing) and
``predict.json`` (model, split, prompt protocol).
Prompts are made from the ground truth with ``prompts.eval_prompts.evaluation_prompts``, seeded per
case and protocol, so every model sees the same prompts. ``auto`` uses no ground truth; when the model
has no view prior it is fitted on the ``train`` split of ``--data`` (never the evaluated split).

File mode::

    medsam-echo predict --model RUN --input FILES_OR_DIR --prompts PROMPTS.json|auto --out DIR

writes per input ``<stem>.png`` (``<stem>.nii.gz`` for NIfTI inputs, with the spacing) and
``<stem>_overlay.png``, and one ``coco.json`` (see :mod:`medsam_echo.inference.files`). ``PROMPTS.json``
maps file names to a list of ``{"structure": name, "box": [x0, y0, x1, y1]}`` and / or
``{"points": [[x, y], ...], "labels": [1, 0, ...]}`` entries (px, inclusive boxes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medsam_echo.data.io import DataError, write_image
from medsam_echo.data.sample import STRUCTURES
from medsam_echo.inference.files import predict_files
from medsam_echo.inference.predictor import EchoPredictor

PROTOCOL_FILE = "predict.json"  # dataset mode: how the predictions were made


def predict_dataset(
    predictor: EchoPredictor,
    root: Path,
    split: str,
    prompt: str,
    out: Path,
    *,
    jitter_px: float = 0.0,
    n_pos: int = 1,
    n_neg: int = 0,
) -> int:
    """Write ``out/<case>.nii.gz`` for every case of ``split``; returns the number of cases."""
    from medsam_echo.data.open import open_dataset
    from medsam_echo.prompts.eval_prompts import evaluation_prompts
    from medsam_echo.prompts.policies import PromptPolicyConfig

    dataset = open_dataset(root, split)
    if len(dataset) == 0:
        raise DataError(f"{root}: split {split!r} has no cases")
    if prompt == "auto" and predictor.view_prior is None:
        from medsam_echo.inference.sources import fit_prior

        print(f"predict: no view prior with the model; fitting one on the train split of {root}")
        predictor.view_prior = fit_prior(root)
    config = PromptPolicyConfig(
        policy="box" if prompt == "auto" else prompt, jitter_amount=float(jitter_px), n_pos=n_pos, n_neg=n_neg
    )
    salt = f"predict/{prompt}/{jitter_px}/{n_pos}+{n_neg}"
    out.mkdir(parents=True, exist_ok=True)
    for sample in dataset:
        predictor.set_image(sample.image, sample.spacing)
        if prompt == "auto":
            label = predictor.segment(view=sample.view or None).label_map
        else:
            if sample.label is None:
                raise DataError(
                    f"{sample.case_id}: --prompt {prompt} needs ground truth to draw prompts from"
                )
            p = evaluation_prompts(
                sample.label, predictor.structures, sample.case_id, config, spacing=sample.spacing, salt=salt
            )
            label = predictor.predict(p.boxes, p.points, p.labels, p.structures).label_map()
        write_image(out / f"{sample.case_id}.nii.gz", label, spacing=sample.spacing)
    protocol = {"model": predictor.source, "data": str(root), "split": split, "prompt": prompt,
                "jitter_px": jitter_px, "n_pos": n_pos, "n_neg": n_neg, "salt": salt,
                "structures": list(predictor.structures), "cases": len(dataset)}  # fmt: skip
    (out / PROTOCOL_FILE).write_text(json.dumps(protocol, indent=2) + "\n")
    return len(dataset)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsam-echo predict", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--model", required=True, help="run dir, RUN/model, checkpoint, hub id, or baseline:ellipse")
    add("--out", required=True, type=Path, help="output folder (created)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--data", type=Path, metavar="ROOT", help="dataset mode: CAMUS root")
    mode.add_argument("--input", type=Path, nargs="+", metavar="FILE_OR_DIR", help="file mode: images")
    add(
        "--split", default="test", choices=("train", "val", "test", "all"), help="dataset mode (default test)"
    )
    add("--prompt", choices=("box", "points", "auto"), default="box", help="dataset mode prompt protocol")
    add(
        "--jitter-px",
        type=float,
        default=0.0,
        help="box sides pushed outward by U{0..N} px (default 0: tight)",
    )
    add("--n-pos", type=int, default=1, help="positive points per structure (--prompt points)")
    add("--n-neg", type=int, default=0, help="negative points per structure, on neighbours (--prompt points)")
    add("--prompts", help="file mode: PROMPTS.json, or auto")
    add(
        "--view",
        choices=("2CH", "4CH"),
        help="file mode, auto: the view (default: from the file name, or the best)",
    )
    add("--view-prior", type=Path, help="view_prior.json for auto prompts (default: saved with the run)")
    add("--structures", nargs="+", choices=sorted(STRUCTURES), help="default: the run's training structures")
    add("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.input is not None and args.prompts is None:
        print(
            "medsam-echo predict: error: file mode (--input) needs --prompts PROMPTS.json or auto",
            file=sys.stderr,
        )
        return 2
    try:
        predictor = EchoPredictor.from_source(
            args.model,
            device=args.device,
            view_prior=args.view_prior,
            structures=tuple(args.structures) if args.structures else None,
        )
        if args.data is not None:
            n = predict_dataset(
                predictor,
                args.data,
                args.split,
                args.prompt,
                args.out,
                jitter_px=args.jitter_px,
                n_pos=args.n_pos,
                n_neg=args.n_neg,
            )
            print(f"wrote {n} label maps to {args.out}")
        else:
            path = predict_files(predictor, args.input, args.prompts, args.out, args.view)
            print(f"wrote label maps, overlays and {path}")
    except (DataError, ValueError, KeyError, RuntimeError, FileNotFoundError) as err:
        print(f"medsam-echo predict: error: {err}", file=sys.stderr)
        return 1
    return 0
