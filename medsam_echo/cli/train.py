"""Training entry point, the same code under every launcher:

    medsam-echo train --config configs/quickstart.yaml [--output-dir DIR] [--max-steps N] [--resume] [key=value ...]
    accelerate launch [--multi_gpu ...] -m medsam_echo.train --config FILE ...
    torchrun --nproc_per_node 2 -m medsam_echo.train --config FILE ...
"""

from __future__ import annotations

import argparse
import sys

from medsam_echo.training.config import ConfigError, load_config


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="medsam-echo train", description="Fine-tune a SAM-family model.")
    parser.add_argument("--config", required=True, help="experiment YAML (see configs/)")
    parser.add_argument("--output-dir", help="where the run writes (overrides output_dir)")
    parser.add_argument("--max-steps", type=int, help="stop after N optimizer steps (overrides train.max_steps)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output dir")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides, e.g. optim.lr=3e-4")
    # key=value overrides may come before, between or after the options
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from medsam_echo.data.io import DataError
    from medsam_echo.models.errors import CheckpointError
    from medsam_echo.runtime import tune_allocator
    from medsam_echo.training.loop import TrainingError, train

    tune_allocator()  # also under accelerate launch / torchrun, which do not go through cli.py
    try:
        result = train(cfg, resume=args.resume)
    except ConfigError as err:  # a config value, the output folder or --resume: a usage error
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (DataError, CheckpointError, TrainingError) as err:  # the data, the model source or the run
        print(f"error: {err}", file=sys.stderr)
        return 1
    record = result.record
    if not record:
        print(f"{cfg.output_dir}: the run had already reached step {result.step}; nothing was trained")
    else:
        dice = ", ".join(f"{k[len('val_dice_'):]} {v:.3f}" for k, v in record.items() if k.startswith("val_dice_"))
        print(f"validation Dice {record['val_dice']:.3f} ({dice}) at step {record['step']}; model in {cfg.output_dir}/model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
