"""``medsam-echo data summary ROOT [--json]``: what a dataset holds and what is wrong with it.

``ROOT`` may be a CAMUS release (2023 NIfTI or 2019 MetaImage layout), a folder with ``dataset.yaml``
(see :mod:`medsam_echo.data.folder`) or a COCO JSON file. Every image and label map is decoded, so broken
files are found and listed under ``problems`` instead of stopping the summary.
"""

from __future__ import annotations

import argparse
import builtins
import json
from pathlib import Path

from medsam_echo.data.io import DataError, printable
from medsam_echo.data.open import detect_format
from medsam_echo.data.summary import summarize


def _print_text(summary: dict) -> None:
    print = _print  # file names that are not UTF-8 print as \xNN escapes
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    print(f"{summary['root']}: {summary['format']}")
    print(
        f"  patients {summary['patients']}, images {summary['images']}"
        f" ({summary['labelled_images']} labelled)"
    )
    print(f"  images per split: {splits}, unassigned {summary['unassigned_images']}")
    print(
        "  label pixel fraction: " + ", ".join(f"{k} {v:.3f}" for k, v in summary["label_fraction"].items())
    )
    for key, unit in (("spacing_mm", "mm"), ("image_size_px", "px")):
        ranges = ", ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in summary[key].items())
        print(f"  {key.rsplit('_', 1)[0].replace('_', ' ')} ({unit}): {ranges or 'n/a'}")
    print(f"  problems: {len(summary['problems'])}")
    for problem in summary["problems"]:
        print(f"    - {problem}")


def _print(*parts: object) -> None:
    builtins.print(*(printable(str(p)) for p in parts))


def main(argv: list[str]) -> int:
    """``medsam-echo data summary ROOT [--json] [--strict]``."""
    parser = argparse.ArgumentParser(prog="medsam-echo data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser(
        "summary", help="format, patients, images per split, labels, spacing, problems"
    )
    summary.add_argument("root", type=Path, help="CAMUS root, folder with dataset.yaml, or COCO JSON")
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.add_argument("--strict", action="store_true", help="exit with status 1 if problems were found")
    args = parser.parse_args(argv)
    try:
        detect_format(args.root)
    except DataError as err:  # not a dataset at all: a usage error
        parser.exit(2, f"medsam-echo data: error: {err}\n")
    try:
        result = summarize(args.root)
    except DataError as err:  # a dataset whose index cannot be read (split files, dataset.yaml, COCO JSON)
        parser.exit(1, f"medsam-echo data: error: {err}\n")
    if args.json:
        print(json.dumps(result))
    else:
        _print_text(result)
    return 1 if args.strict and result["problems"] else 0
