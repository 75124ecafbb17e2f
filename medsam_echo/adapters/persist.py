"""Save only what was trained, reload it onto the base checkpoint, merge LoRA for deployment.

A trained-weights directory holds:
- ``trained.safetensors``: every parameter with ``requires_grad=True`` (LoRA / adapter weights and
  trained base modules), under its name in the prepared model;
- ``method.json``: the ``MethodConfig``;
- ``base.json``: the base checkpoint (as given to the loader) and the preprocessing profile.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from medsam_echo.adapters.bottleneck import bottleneck_adapters
from medsam_echo.adapters.methods import MethodConfig, apply_method
from medsam_echo.atomic import atomic_write, atomic_write_text
from medsam_echo.models.errors import CheckpointError
from medsam_echo.models.loader import LoadedSam, load_sam
from medsam_echo.models.profile import PreprocessProfile

TRAINED_FILE = "trained.safetensors"
METHOD_FILE = "method.json"
BASE_FILE = "base.json"


def trained_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train (``requires_grad=True``), detached, contiguous, on the CPU."""
    return {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_trained(
    model: nn.Module, method: MethodConfig, out_dir: str | Path, *, base: str, profile: PreprocessProfile
) -> Path:
    """Write the trained weights, the method and the base reference into ``out_dir`` (each file atomic)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = trained_state(model)
    atomic_write(out_dir / TRAINED_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    atomic_write_text(out_dir / METHOD_FILE, json.dumps(method.to_dict(), indent=2))
    base_info = {"base": str(base), "profile": profile.to_dict()}
    atomic_write_text(out_dir / BASE_FILE, json.dumps(base_info, indent=2))
    return out_dir


def load_trained(trained_dir: str | Path, *, base: str | Path | None = None, **load_kwargs) -> tuple[nn.Module, LoadedSam]:
    """Rebuild a fine-tuned model: load the base, apply the saved method, load the trained weights.

    Args:
        trained_dir: directory written by :func:`save_trained`.
        base: base checkpoint; defaults to the one recorded in ``base.json``.
        **load_kwargs: passed to :func:`load_sam` (``device``, ``dtype``, ...).

    Returns:
        ``(model, loaded_base)``; ``loaded_base.profile`` is the profile saved with the trained weights.
    """
    trained_dir = Path(trained_dir)
    for name in (TRAINED_FILE, METHOD_FILE, BASE_FILE):
        if not (trained_dir / name).is_file():
            raise CheckpointError(f"{trained_dir}: missing {name}; not a medsam-echo trained-weights directory")
    method = MethodConfig.from_dict(json.loads((trained_dir / METHOD_FILE).read_text()))
    info = json.loads((trained_dir / BASE_FILE).read_text())
    profile = PreprocessProfile.from_dict(info["profile"], source=str(trained_dir / BASE_FILE))
    loaded = load_sam(base or _resolve_base(info["base"], trained_dir), profile=profile, **load_kwargs)
    model = apply_method(loaded.model, method)
    _load_trained_weights(model, trained_dir / TRAINED_FILE)
    return model.eval(), loaded


def _resolve_base(base: str, trained_dir: Path) -> str:
    """A base recorded relative to the trained-weights directory (a run's own ``base/``) or as given."""
    local = trained_dir / base
    return str(local) if not Path(base).is_absolute() and local.exists() else base


def _load_trained_weights(model: nn.Module, path: Path) -> None:
    from safetensors import SafetensorError

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file: {err}") from err
    from medsam_echo.models.loader import check_finite

    check_finite(state, path)  # a diverged run's weights predict garbage (whole-image masks, NaN scores)
    params = dict(model.named_parameters())
    expected = {n for n, p in params.items() if p.requires_grad}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    shapes = [n for n in sorted(expected & set(state)) if tuple(state[n].shape) != tuple(params[n].shape)]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path}: trained weights do not match the method's model: missing {missing[:10]}, "
            f"unexpected {unexpected[:10]}, mis-shaped {shapes[:10]}"
        )
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold LoRA / DoRA updates into the base weights; returns the plain ``SamModel``.

    Raises:
        ValueError: the model has bottleneck adapters, which cannot be folded into linear weights.
    """
    if bottleneck_adapters(model):
        raise ValueError("bottleneck adapters are non-linear and cannot be merged; save the trained weights instead")
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model
