"""``medsam-echo predict``: run a model (or the ellipse baseline) on a CAMUS split or on image files.

The automatic mode (``--prompt auto`` / ``--prompts auto``) needs nothing but the images: it starts from
the run's learned prompts (``auto.mode: tokens`` in training) or its view prior (``--auto-method``), and
writes ``confidence.csv`` beside the label maps; ``--review-below X`` lists the cases to check.

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

DICOM mode (``--input`` holds DICOM files or exam folders; ``pip install 'medsam-echo[dicom]'``)::

    medsam-echo predict --model RUN --input EXAM_DIR --prompts PROMPTS.json|auto --out DIR \
        [--views 2CH=a.dcm,4CH=b.dcm]

segments every frame of each cine loop, finds ED / ES and the EF (biplane Simpson with 2CH + 4CH) and
writes per loop label maps, an area-curve CSV and plot, an overlay GIF and a DICOM SEG, and
``summary.json`` (see :mod:`medsam_echo.inference.exam`). Prompts may be keyed by file name or view and
given on key frames (``{"2CH": {"0": [...], "7": [...]}}``).

No mode replaces a file it did not write, and none writes into its inputs: ``--out`` inside the dataset
(dataset mode), equal to an input folder (file mode) or inside one (DICOM mode) is refused before anything
is computed; so is an ``--out`` holding files of the outputs' names that an earlier run of the same mode
did not write (dataset mode: a folder without the ``predict.json`` of an earlier dataset-mode run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medsam_echo.data.io import DataError
from medsam_echo.data.sample import STRUCTURES
from medsam_echo.inference.batch import predict_dataset
from medsam_echo.inference.files import predict_files
from medsam_echo.inference.predictor import EchoPredictor


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsam-echo predict", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--model", required=True, help="run dir, RUN/model, checkpoint, hub id, or baseline:ellipse")
    add("--out", required=True, type=Path, help="output folder (created)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--data", type=Path, metavar="ROOT", help="dataset mode: CAMUS root")
    mode.add_argument(
        "--input", type=Path, nargs="+", metavar="FILE_OR_DIR", help="images; or DICOM loops / exam folders"
    )
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
    add("--views", metavar="2CH=FILE,4CH=FILE", help="DICOM mode: which loop is which view (default: series)")
    add("--batch-size", type=int, default=8, help="DICOM mode: frames per image-encoder call (default 8)")
    add("--view-prior", type=Path, help="view_prior.json for auto prompts (default: saved with the run)")
    add(
        "--auto-method",
        choices=("tokens", "view-prior"),
        help="automatic mode's start: the run's learned prompts (default when it has them) or the view prior",
    )
    add(
        "--review-below",
        type=float,
        metavar="X",
        help="automatic mode: list (and write review.csv) the cases whose confidence is below X (0..1)",
    )
    add("--structures", nargs="+", choices=sorted(STRUCTURES), help="default: the run's training structures")
    add("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    add("--no-guards", action="store_true",
        help="write the raw label maps, without the anatomical guards (one component per structure, holes "
             "filled, cavity inside the epicardium, atrium against the LV; on by default)")
    add("--engine", choices=("torch", "onnx"), default="torch",
        help="torch (default) or onnx: onnxruntime on the CPU (an `export-onnx` folder, or any model exported first)")
    return parser


def _is_dicom_input(inputs: list[Path]) -> bool:
    """True when any input is a DICOM file, or a folder holding one (and no plain images)."""
    from medsam_echo.data.dicom import is_dicom_file
    from medsam_echo.data.io import image_suffix

    for path in inputs:
        if is_dicom_file(path):
            return True
        if path.is_dir() and not any(image_suffix(p) for p in path.iterdir() if p.is_file()):
            return any(is_dicom_file(p) for p in path.rglob("*") if p.is_file())
    return False


def _check_dataset_out(out: Path, root: Path, split: str) -> None:
    """Refuse an ``--out`` inside the dataset, or holding label-map names an earlier predict did not write."""
    import json

    from medsam_echo.data.open import open_dataset
    from medsam_echo.evaluation.evaluate import PROTOCOL_FILE

    folder = root.resolve() if root.is_dir() else root.resolve().parent  # a COCO file: the images beside it
    target = out.resolve()
    if target == folder or folder in target.parents:
        raise DataError(f"--out {out}: is {'the' if target == folder else 'inside the'} dataset {root}; the label "
                        "maps could replace its images or labels: choose a folder outside it")  # fmt: skip
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: is a file, not a folder; choose a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        protocol = json.loads((out / PROTOCOL_FILE).read_text())
    except (OSError, ValueError):
        protocol = None
    if isinstance(protocol, dict) and {"model", "split", "prompt", "cases"} <= set(protocol):
        return  # an earlier dataset-mode run's folder: its label maps are replaced
    names = [f"{case}.nii.gz" for case in open_dataset(root, split).cases]
    names += [PROTOCOL_FILE, "confidence.csv", "review.csv"]
    clash = next((name for name in names if (out / name).exists()), None)
    if clash is not None:
        raise DataError(f"{out / clash}: exists and was not written by medsam-echo predict (no {PROTOCOL_FILE} of "
                        "a dataset-mode run there); refusing to overwrite it (choose another --out)")  # fmt: skip


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.review_below is not None and not 0.0 <= args.review_below <= 1.0:  # NaN fails too
        print(f"medsam-echo predict: error: --review-below {args.review_below}: expected a confidence in 0..1",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.batch_size < 1:
        print(f"medsam-echo predict: error: --batch-size {args.batch_size}: expected 1 or more", file=sys.stderr)
        return 2
    if args.input is not None and args.prompts is None:
        print(
            "medsam-echo predict: error: file mode (--input) needs --prompts PROMPTS.json or auto",
            file=sys.stderr,
        )
        return 2
    automatic = args.prompt == "auto" if args.data is not None else args.prompts == "auto"
    if not automatic and (args.review_below is not None or args.auto_method is not None):
        print("medsam-echo predict: error: --review-below and --auto-method go with the automatic mode "
              "(--prompt auto, or --prompts auto with --input)", file=sys.stderr)
        return 2
    try:
        dicom = args.input is not None and _is_dicom_input(args.input)
        if args.data is not None:
            _check_dataset_out(args.out, args.data, args.split)
        elif dicom:
            from medsam_echo.inference.exam import check_out_folder

            check_out_folder(args.out, args.input)  # before the model is loaded
        predictor = EchoPredictor.from_source(
            args.model,
            device=args.device,
            view_prior=args.view_prior,
            structures=tuple(args.structures) if args.structures else None,
            engine=args.engine,
        )
        predictor.guards = not args.no_guards
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
                auto_method=args.auto_method,
                review_below=args.review_below,
            )
            print(f"wrote {n} label maps to {args.out}")
        elif dicom:
            from medsam_echo.inference.exam import predict_exam

            path = predict_exam(predictor, args.input, args.prompts, args.out, views=args.views,
                                batch_size=args.batch_size)  # fmt: skip
            print(f"wrote label maps, area curves, overlays, DICOM SEG and {path}")
        else:
            path = predict_files(predictor, args.input, args.prompts, args.out, args.view,
                                 auto_method=args.auto_method, review_below=args.review_below)
            print(f"wrote label maps, overlays and {path}")
    except (DataError, ValueError, KeyError, RuntimeError, OSError, ImportError) as err:
        print(f"medsam-echo predict: error: {err}", file=sys.stderr)
        return 1
    return 0
