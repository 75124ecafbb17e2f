"""``medsam-echo synth OUT_DIR``: write a synthetic CAMUS-layout echo dataset with known EF."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from medsam_echo.data.synthetic import FORMATS, make_camus


def main(argv: list[str]) -> int:
    """``medsam-echo synth OUT_DIR --patients N --seed S [--format nifti|mhd]``."""
    parser = argparse.ArgumentParser(prog="medsam-echo synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write (created)")
    parser.add_argument("--patients", type=int, default=10, help="number of patients (>= 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--format", choices=sorted(FORMATS), default="nifti", help="2023 NIfTI or 2019 MHD layout"
    )
    parser.add_argument(
        "--size", type=int, nargs=2, default=(192, 160), metavar=("H", "W"), help="image size in px"
    )
    parser.add_argument("--frames", type=int, default=6, help="frames per (half-)sequence; 0 for none")
    args = parser.parse_args(argv)
    if min(args.size) < 16:
        parser.error(f"--size: {args.size[0]} x {args.size[1]} px; both sides must be >= 16 px")
    if args.patients < 3:
        parser.error(f"--patients: {args.patients}; at least 3 (one patient per split)")
    start = time.perf_counter()
    try:
        make_camus(
            args.out_dir,
            patients=args.patients,
            seed=args.seed,
            fmt=args.format,
            size=tuple(args.size),
            frames=args.frames,
        )
    except (FileExistsError, ValueError) as err:
        parser.error(str(err))
    elapsed = time.perf_counter() - start
    print(f"wrote {args.patients} synthetic patients ({args.format}) to {args.out_dir} in {elapsed:.1f} s")
    return 0
