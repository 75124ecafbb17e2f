"""Crash-safe training checkpoints on top of ``accelerator.save_state``.

Layout of ``OUTPUT_DIR/checkpoints/``::

    step-00000040/   accelerate state: trained weights only, optimizer, RNG; progress.json (step, best)
    step-00000080/
    latest           text file naming the newest complete checkpoint

A checkpoint is written into ``.tmp-step-N`` by every process, then renamed by the main process, and only
then does ``latest`` (itself replaced atomically) point at it. A crash at any moment leaves ``latest``
naming a complete checkpoint. Only the newest ``keep`` checkpoints are kept.

Weights: accelerate would save the whole model; a pre-save hook swaps in only the parameters that train
(``requires_grad``), and a pre-load hook loads them back strictly, so a LoRA run's checkpoint holds
megabytes, not the frozen 90 M base.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from medsam_echo.adapters.persist import trained_state
from medsam_echo.atomic import atomic_write_text

LATEST = "latest"
PROGRESS_FILE = "progress.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class Progress:
    """Loop position and best score, saved as ``progress.json`` in every checkpoint (JSON, not pickle:
    accelerate unpickles registered custom objects without ``weights_only``)."""

    step: int = 0
    best_dice: float = -1.0
    best_step: int = -1
    epoch_losses: list[float] = field(default_factory=list)  # this epoch's so far: its train_loss after a resume

    @classmethod
    def load(cls, checkpoint: Path) -> Progress:
        path = checkpoint / PROGRESS_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise RuntimeError(f"{path}: unreadable training progress ({err})") from err


def install_trained_only_hooks(accelerator) -> None:
    """Make ``save_state`` / ``load_state`` store only the trained parameters of each prepared model."""

    from accelerate.utils import DistributedType

    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        return  # sharded engines save their own (sharded) weights

    def save_hook(models, weights, output_dir):
        for i, model in enumerate(models):
            weights[i] = trained_state(accelerator.unwrap_model(model))

    def load_hook(models, input_dir):
        for i, model in enumerate(list(models)):
            name = WEIGHTS_FILE if i == 0 else f"model_{i}.safetensors"
            load_trained_weights(accelerator.unwrap_model(model), Path(input_dir) / name)
        models.clear()  # loaded here; accelerate must not load them again

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def load_trained_weights(model: torch.nn.Module, path: Path) -> None:
    """Copy the tensors of ``path`` into the trainable parameters of ``model``; keys must match exactly."""
    state = load_file(str(path))
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
    if missing or unexpected:
        raise RuntimeError(f"{path}: checkpoint does not match the trained parameters: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]} (was the method or model changed since?)")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def save_checkpoint(accelerator, output_dir: Path, progress: Progress, *, keep: int = 2) -> Path:
    """Write ``checkpoints/step-N`` atomically on all processes; returns its path."""
    root = output_dir / "checkpoints"
    final = root / f"step-{progress.step:08d}"
    tmp = root / f".tmp-step-{progress.step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / PROGRESS_FILE).write_text(json.dumps(asdict(progress)))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_text(root / LATEST, final.name)
        _prune(root, keep)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint, or ``None`` when the run has none."""
    pointer = output_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not path.is_dir():
        raise FileNotFoundError(f"{pointer} names {path.name}, which does not exist; delete {pointer} to start over")
    return path


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
