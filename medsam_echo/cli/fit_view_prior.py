"""``medsam-echo fit-view-prior``: learn the automatic-prompt view prior from a training split.

Example::

    medsam-echo fit-view-prior --data ../shared/data/camus224 --out runs/sam_lora/view_prior.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medsam_echo.atomic import OutputExistsError, atomic_write, check_output
from medsam_echo.data.sample import STRUCTURES
from medsam_echo.prompts.auto import fit_view_prior, prior_box_iou


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsam-echo fit-view-prior", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="dataset: CAMUS release, folder with dataset.yaml, or COCO JSON")
    parser.add_argument("--split", default="train", choices=["train", "val"], help="split to fit on")
    parser.add_argument("--structures", nargs="+", default=list(STRUCTURES), choices=list(STRUCTURES))
    parser.add_argument("--out", required=True, help="JSON file, or a model directory (gets view_prior.json)")
    parser.add_argument(
        "--check-split", choices=["val"], help="also report the prior's box IoU on this split"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from medsam_echo.data.open import open_dataset
    from medsam_echo.prompts.auto import VIEW_PRIOR_FILENAME

    out = Path(args.out)
    out = out / VIEW_PRIOR_FILENAME if out.is_dir() else out
    try:
        check_output(out, overwrite=args.overwrite)
    except OutputExistsError as err:
        parser.exit(2, f"medsam-echo fit-view-prior: error: {err}\n")
    try:
        prior = fit_view_prior(args.data, args.split, args.structures)
        ious = (prior_box_iou(prior, open_dataset(args.data, args.check_split), args.structures)
                if args.check_split else None)
    except ValueError as err:  # DataError included: the file and what is wrong with it
        print(f"medsam-echo fit-view-prior: error: {err}", file=sys.stderr)
        return 1
    path = atomic_write(out, prior.save)
    print(f"wrote {path} from {dict(prior.counts)} {args.split} images")
    for view, boxes in sorted(prior.boxes.items()):
        for name, box in boxes.items():
            print(f"  {view} {name:8s} x0={box[0]:.3f} y0={box[1]:.3f} x1={box[2]:.3f} y1={box[3]:.3f}")
    if ious is not None:
        print(f"prior box IoU on {args.check_split}: " + ", ".join(f"{k} {v:.3f}" for k, v in ious.items()))
    return 0
