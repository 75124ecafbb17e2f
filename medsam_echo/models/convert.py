"""Write models: transformers directories with their profile, and the original segment-anything layout.

CLI:
    medsam-echo convert-checkpoint SRC OUT_DIR [--profile sam|medsam|litemedsam] [--to-original OUT.pth]

``OUT_DIR`` loads with ``transformers.SamModel.from_pretrained(OUT_DIR)`` (safetensors) and holds
``preprocessing.json``; ``--to-original`` also writes the segment-anything key layout, which loads in
segment-anything and MedSAM code (``sam_model_registry[...](checkpoint=OUT.pth)``); for a TinyViT model
it is LiteMedSAM's / MobileSAM's own layout (``build_lite_medsam().load_state_dict(..., strict=True)``).
A TinyViT ``OUT_DIR`` is read back by ``load_sam`` (transformers has no TinyViT SAM class).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import SamModel

from medsam_echo.atomic import atomic_write, atomic_write_dir
from medsam_echo.models.errors import CheckpointError
from medsam_echo.models.keymap import hf_to_original
from medsam_echo.models.profile import PreprocessProfile


def save_sam(model: SamModel, profile: PreprocessProfile, out_dir: str | Path) -> Path:
    """Write ``model`` (safetensors + config.json) and ``preprocessing.json`` into ``out_dir``, atomically:
    everything is written to a temporary sibling directory that replaces ``out_dir`` at the end."""

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        profile.save(tmp)

    return atomic_write_dir(out_dir, fill)


def to_original_state_dict(model: SamModel) -> dict[str, torch.Tensor]:
    """The model's weights under segment-anything keys (contiguous CPU tensors)."""
    state, unmapped = hf_to_original(model.state_dict())
    if unmapped:
        raise CheckpointError(
            f"cannot write the segment-anything layout: {len(unmapped)} key(s) have no original counterpart "
            f"(merge LoRA first; bottleneck adapters do not exist in segment-anything): {unmapped[:10]}"
        )
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_original(model: SamModel, path: str | Path) -> Path:
    """Write the segment-anything layout ``.pth`` atomically (temp file, then rename)."""
    state = to_original_state_dict(model)
    return atomic_write(path, lambda tmp: torch.save(state, tmp))
