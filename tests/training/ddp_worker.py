"""Launched by torchrun in test_distributed.py: train, then dump this rank's trainable parameters.

With ``DDP_RUNS`` (JSON ``{name: [override, ...]}``) the worker trains one run per entry, each into
``OUTPUT_DIR/<name>``, in one launch (the process group and imports are paid once).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from safetensors.torch import save_file

from medsam_echo.adapters.persist import trained_state
from medsam_echo.cli.train import parse_args
from medsam_echo.training.config import load_config
from medsam_echo.training.loop import train


def _train_and_dump(config: str, overrides: list[str]) -> float:
    cfg = load_config(config, overrides)
    started = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - started
    rank = int(os.environ.get("RANK", 0))
    save_file(trained_state(result.model), str(Path(cfg.output_dir) / f"rank{rank}.safetensors"))
    return seconds


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    runs = json.loads(os.environ.get("DDP_RUNS", "null"))
    if runs is None:
        _train_and_dump(args.config, args.overrides)
    else:
        from accelerate.state import AcceleratorState, GradientState, PartialState

        PartialState.destroy_process_group = lambda self, group=None: None  # end_training: one group for all runs
        base = load_config(args.config, args.overrides).output_dir
        for name, extra in runs.items():
            seconds = _train_and_dump(args.config, [*args.overrides, *extra, f"output_dir={base}/{name}"])
            print(f"run {name}: {seconds:.2f} s", flush=True)
            AcceleratorState._reset_state()  # the process group stays; the next run builds its own Accelerator
            GradientState._reset_state()
