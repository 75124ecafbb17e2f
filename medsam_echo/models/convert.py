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

import argparse
from pathlib import Path

import torch
from transformers import SamModel

from medsam_echo.atomic import atomic_write, atomic_write_dir
from medsam_echo.models.errors import CheckpointError
from medsam_echo.models.keymap import hf_to_original
from medsam_echo.models.loader import load_sam
from medsam_echo.models.profile import PROFILES, PreprocessProfile


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


def _load_for_conversion(src: str, profile: str | None) -> tuple[SamModel, PreprocessProfile, list[str]]:
    """A checkpoint source, or a fine-tuned run's weights (``RUN`` / ``RUN/model``) with LoRA merged."""
    from medsam_echo.adapters.persist import TRAINED_FILE, load_trained, merge_lora

    path = Path(src)
    trained = next((d for d in (path, path / "model") if (d / TRAINED_FILE).is_file()), None)
    if trained is None:
        loaded = load_sam(src, profile=profile)
        notes = [f"  note: {note}" for note in loaded.notes]
        return loaded.model, loaded.profile, [f"profile {loaded.profile.name}: {loaded.profile_reason}", *notes]
    model, base = load_trained(trained)
    try:
        model = merge_lora(model)
    except ValueError as err:
        raise CheckpointError(f"{trained}: {err}") from None
    return model, base.profile, [f"fine-tuned weights {trained} on {base.source}, profile {base.profile.name}"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medsam-echo convert-checkpoint", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "src", help="checkpoint (.pth, .safetensors, transformers directory, hub id, litemedsam), or a training "
        "run / RUN/model, whose fine-tuned weights are written with LoRA merged"
    )
    parser.add_argument("out_dir", help="transformers directory to write (model.safetensors, config.json, preprocessing.json)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="override the preprocessing profile")
    parser.add_argument("--to-original", metavar="OUT.pth", help="also write the segment-anything layout here")
    args = parser.parse_args(argv)
    try:
        model, profile, origin = _load_for_conversion(args.src, args.profile)
    except CheckpointError as err:
        parser.exit(1, f"error: {err}\n")
    save_sam(model, profile, args.out_dir)
    print(f"wrote {args.out_dir} ({origin[0]})", *origin[1:], sep="\n")
    if args.to_original:
        save_original(model, args.to_original)
        print(f"wrote {args.to_original} (segment-anything layout)")
    return 0
