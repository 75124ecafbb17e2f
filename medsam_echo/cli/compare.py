"""``medsam-echo compare EVAL_DIR EVAL_DIR ... --out REPORT.md``: evaluate outputs side by side.

Per structure and phase: mean Dice, HD95 and MAD (mm) of each run; paired per-case differences against the
first run with 95 % t-intervals; EF / EDV / ESV agreement per run; Bland-Altman PNGs beside the report.
See :mod:`medsam_echo.evaluation.compare`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """``medsam-echo compare EVAL_DIR [EVAL_DIR ...] [--names A B ...] --out REPORT.md``."""
    parser = argparse.ArgumentParser(prog="medsam-echo compare", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("runs", nargs="+", type=Path, metavar="EVAL_DIR",
        help="`medsam-echo evaluate` output folders; the first is the reference of the differences")
    add("--names", nargs="+", metavar="NAME", help="one display name per EVAL_DIR (default: folder names)")
    add("--out", required=True, metavar="REPORT.md",
        help="markdown report (PNGs go beside it), or a folder for FOLDER/comparison.md; never replaces a file "
             "compare did not write")  # fmt: skip
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give at least two EVAL_DIR folders to compare")
    if args.names and len(args.names) != len(args.runs):
        parser.error(f"--names: {len(args.names)} names for {len(args.runs)} folders")
    names = args.names or [p.name for p in args.runs]
    if len(set(names)) < len(names):
        names = [str(p) for p in args.runs]  # two folders called e.g. "eval": tell them apart by path
    if len(set(names)) < len(names):
        parser.error("two runs have the same name; pass distinct --names")

    from medsam_echo.evaluation.compare import check_report_out, load_run, report_path, write_comparison

    try:
        check_report_out(report_path(args.out))  # before reading anything
        runs = [load_run(path, name) for path, name in zip(args.runs, names, strict=True)]
        report = write_comparison(runs, args.out)
    except (OSError, ValueError, KeyError) as err:
        print(f"medsam-echo compare: error: {err}", file=sys.stderr)
        return 1
    for line in report.warnings:
        print(f"medsam-echo compare: warning: {line}", file=sys.stderr)
    print(f"wrote {report.path}")
    for path in report.figures:
        print(f"wrote {path}")
    return 0
