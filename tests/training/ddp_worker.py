"""Launched by torchrun in test_distributed.py: train, then dump this rank's trainable parameters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from medsam_echo.adapters.persist import trained_state
from medsam_echo.cli.train import parse_args
from medsam_echo.training.config import load_config
from medsam_echo.training.loop import train

if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    cfg = load_config(args.config, args.overrides)
    result = train(cfg)
    rank = int(os.environ.get("RANK", 0))
    save_file(trained_state(result.model), str(Path(cfg.output_dir) / f"rank{rank}.safetensors"))
