"""``medsam-echo evaluate --pred PRED_DIR --data ROOT [--split test] --out OUT_DIR``: score label maps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medsam_echo.atomic import OutputExistsError, check_output
from medsam_echo.data.io import DataError
from medsam_echo.evaluation.evaluate import EvaluationError, evaluate, read_prediction_notes
from medsam_echo.evaluation.metrics import METRICS


def main(argv: list[str]) -> int:
    """``medsam-echo evaluate --pred PRED_DIR --data ROOT [--split test] --out OUT_DIR [--allow-missing]``."""
    parser = argparse.ArgumentParser(prog="medsam-echo evaluate", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--pred", required=True, type=Path, metavar="PRED_DIR", help="<case>.nii.gz / .png label maps")
    add("--data", required=True, type=Path, metavar="ROOT",
        help="ground truth: CAMUS root (2023 NIfTI or 2019 MHD), folder with dataset.yaml, or COCO JSON")
    add("--split", default="test", choices=("train", "val", "test", "all"), help="default: test")
    add("--out", required=True, type=Path, metavar="OUT_DIR", help="output folder (created)")
    add("--allow-missing", action="store_true", help="leave out cases without prediction (reported)")
    add("--overwrite", action="store_true", help="replace the results of an earlier evaluate in OUT_DIR")
    args = parser.parse_args(argv)
    try:  # a folder holding anything but an earlier evaluate's results is never written into
        check_output(args.out, overwrite=args.overwrite, is_dir=True, inputs=(args.pred, args.data),
                     ours=lambda out: (out / "summary.json").is_file())
    except OutputExistsError as err:
        parser.exit(2, f"medsam-echo evaluate: error: {err}\n")

    from medsam_echo.data.open import open_dataset
    from medsam_echo.evaluation.report import write_outputs

    try:
        dataset = open_dataset(args.data, args.split)
        if len(dataset) == 0:
            raise EvaluationError(f"{args.data}: split {args.split!r} has no cases")
        result = evaluate(dataset, args.pred, allow_missing=args.allow_missing)
        protocol, confidence = read_prediction_notes(args.pred)
        summary = write_outputs(result, args.out, split=args.split, protocol=protocol, confidence=confidence)
    except (DataError, EvaluationError) as err:
        print(f"medsam-echo evaluate: error: {err}", file=sys.stderr)
        return 1
    _print_table(summary)
    print(f"wrote {args.out}/report.md")
    return 0


def _print_table(summary: dict) -> None:
    def num(value: float | None) -> str:
        return f"{'nan' if value is None else format(value, '.3f'):>9}"

    print(f"{'structure':<10}" + "".join(f"{k:>9}" for k in METRICS))
    for name, m in summary["structures"].items():
        print(f"{name:<10}" + "".join(num(m[k]) for k in METRICS))
    ef = summary["ef"]
    print(
        f"EF (%): n={ef['n']}" + "".join(f" {k}={num(ef[k]).strip()}" for k in ("corr", "bias", "std", "mae"))
    )
