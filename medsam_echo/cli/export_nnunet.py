"""``medsam-echo export-nnunet --data ROOT --out NNUNET_RAW``: any dataset as an nnU-Net v2 raw dataset.

Writes ``NNUNET_RAW/DatasetNNN_Name/`` (imagesTr, labelsTr, imagesTs, dataset.json, splits_final.json)
with the toolkit's case ids and its train / val split, so nnU-Net trains on what our training uses and its
predictions go straight into ``medsam-echo evaluate``. See :mod:`medsam_echo.data.nnunet`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from medsam_echo.data.io import DataError


def main(argv: list[str]) -> int:
    """``medsam-echo export-nnunet --data ROOT --out NNUNET_RAW [--dataset-id N] [--name CAMUS] ...``."""
    parser = argparse.ArgumentParser(prog="medsam-echo export-nnunet", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--data", required=True, type=Path, metavar="ROOT",
        help="CAMUS root (2023 NIfTI or 2019 MHD), folder with dataset.yaml, or COCO JSON")
    add("--out", required=True, type=Path, metavar="NNUNET_RAW", help="nnU-Net raw folder (nnUNet_raw)")
    add("--dataset-id", type=int, default=501, metavar="N", help="nnU-Net dataset id, 1..999 (default 501)")
    add("--name", default="CAMUS", help="nnU-Net dataset name (default CAMUS)")
    add("--preprocessed", type=Path, metavar="DIR",
        help="nnUNet_preprocessed folder: also write splits_final.json where nnU-Net's trainer reads it")
    add("--split-seed", type=int, default=None, metavar="S",
        help="only for a dataset without a val split: seed of the patient-level folds drawn (default 0)")
    add("--split-folds", type=int, default=10, metavar="K",
        help="only for a dataset without a val split: val = fold 0 of K patient folds (default 10)")
    add("--overwrite", action="store_true",
        help="write into a non-empty dataset folder, replacing only the files this export writes")
    args = parser.parse_args(argv)
    if args.split_folds < 2:  # checked before anything is written (no half-written dataset)
        parser.error(f"--split-folds {args.split_folds}: need at least 2 folds (val = fold 0 of K)")
    if not 1 <= args.dataset_id <= 999:
        parser.error(f"--dataset-id {args.dataset_id}: nnU-Net dataset ids are 1..999")

    from medsam_echo.data.nnunet import export_nnunet, nnunet_commands
    from medsam_echo.data.open import open_dataset

    start = time.perf_counter()
    try:
        dataset = open_dataset(args.data, "all")
        result = export_nnunet(
            dataset, args.out, dataset_id=args.dataset_id, name=args.name, preprocessed=args.preprocessed,
            overwrite=args.overwrite, n_folds=args.split_folds, seed=args.split_seed or 0,
            description=f"exported by medsam-echo export-nnunet from {args.data}",
        )
    except (DataError, ValueError, OSError) as err:
        print(f"medsam-echo export-nnunet: error: {err}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    folder = result.dataset_dir
    print(f"wrote {folder} in {elapsed:.1f} s")
    print(f"  imagesTr / labelsTr: {len(result.train) + len(result.val)} "
          f"(train {len(result.train)}, val {len(result.val)}); imagesTs: {len(result.test)}")
    print(f"  split: {result.split_source}")
    if args.split_seed is not None and "own" in result.split_source:
        print("  note: --split-seed is ignored, the dataset defines its own val split")
    for path in result.splits_copies:
        print(f"  wrote {path}")
    if result.left_out:
        print(f"  left out {len(result.left_out)} cases, e.g. {result.left_out[0]}")
    if result.foreign_files:
        print(f"  warning: {len(result.foreign_files)} files in {folder} were not written by this export and "
              f"nnU-Net will read them, e.g. {result.foreign_files[0]}", file=sys.stderr)
    print("\nnext (nnU-Net v2, 2d, fold 0 = our train / val split):")
    for line in nnunet_commands(result, args.out, args.preprocessed):
        print(f"  {line}")
    print(f"  medsam-echo evaluate --pred nnunet_pred_test --data {args.data} --split test --out eval_nnunet")
    return 0
