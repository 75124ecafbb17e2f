"""``medsam-echo fit-view-prior``: learn the automatic-prompt view prior from a training split.

Example::

    medsam-echo fit-view-prior --data ../shared/data/camus224 --out runs/sam_lora/view_prior.json
"""

from __future__ import annotations

import argparse

import numpy as np

from medsam_echo.data.sample import STRUCTURES, structure_mask
from medsam_echo.prompts.auto import ViewPrior, denormalise_box, fit_view_prior
from medsam_echo.prompts.boxes import box_from_mask


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two inclusive XYXY px boxes ``(4,)`` (areas count whole pixels)."""
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]) + 1, 0, None).prod()
    area_a, area_b = ((box[2:] - box[:2] + 1).prod() for box in (a, b))
    return float(inter / (area_a + area_b - inter))


def prior_box_iou(prior: ViewPrior, samples, structures: list[str]) -> dict[str, float]:
    """Mean IoU per structure between the prior's boxes and the true boxes of labelled ``samples``."""
    scores: dict[str, list[float]] = {name: [] for name in structures}
    for sample in samples:
        for name in structures:
            true = box_from_mask(structure_mask(sample.label, name))
            guess = denormalise_box(prior.boxes[sample.view][name], sample.label.shape)
            scores[name].append(box_iou(guess, true))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsam-echo fit-view-prior", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="dataset: CAMUS release, folder with dataset.yaml, or COCO JSON")
    parser.add_argument("--split", default="train", choices=["train", "val"], help="split to fit on")
    parser.add_argument("--structures", nargs="+", default=list(STRUCTURES), choices=list(STRUCTURES))
    parser.add_argument("--out", required=True, help="JSON file, or a model directory (gets view_prior.json)")
    parser.add_argument(
        "--check-split", choices=["val"], help="also report the prior's box IoU on this split"
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from medsam_echo.data.open import open_dataset

    try:
        prior = fit_view_prior(args.data, args.split, args.structures)
    except ValueError as err:
        print(f"fit-view-prior: {err}")
        return 1
    path = prior.save(args.out)
    print(f"wrote {path} from {dict(prior.counts)} {args.split} images")
    for view, boxes in sorted(prior.boxes.items()):
        for name, box in boxes.items():
            print(f"  {view} {name:8s} x0={box[0]:.3f} y0={box[1]:.3f} x1={box[2]:.3f} y1={box[3]:.3f}")
    if args.check_split:
        ious = prior_box_iou(prior, open_dataset(args.data, args.check_split), args.structures)
        print(f"prior box IoU on {args.check_split}: " + ", ".join(f"{k} {v:.3f}" for k, v in ious.items()))
    return 0
