"""`medsam-echo inspect SRC`: load any checkpoint and print its architecture, profile and parameters."""

from __future__ import annotations

import argparse
import json

from medsam_echo.adapters.freezing import format_summary, parameter_summary
from medsam_echo.models.errors import CheckpointError
from medsam_echo.models.loader import load_sam
from medsam_echo.models.profile import PROFILES


def describe(source: str, profile: str | None = None) -> dict:
    """Architecture, profile and parameter counts of a checkpoint, as a JSON-ready dict."""
    loaded = load_sam(source, profile=profile)
    return {
        "source": source,
        "profile": loaded.profile.to_dict(),
        "profile_reason": loaded.profile_reason,
        "notes": loaded.notes,
        "image_encoder": _encoder(loaded.model.config.vision_config),
        "parameters": parameter_summary(loaded.model),
    }


def _encoder(vision) -> dict:
    if getattr(vision, "encoder_type", "vit") == "tiny_vit":
        return {"type": "tiny_vit", **vision.tiny_vit, "embedding_grid": vision.image_size // vision.patch_size}
    return {
        "type": "vit", "width": vision.hidden_size, "depth": vision.num_hidden_layers,
        "heads": vision.num_attention_heads, "window_size": vision.window_size,
        "global_attn_indexes": list(vision.global_attn_indexes), "image_size": vision.image_size,
        "patch_size": vision.patch_size,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medsam-echo inspect", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument(
        "src", help="checkpoint: .pth, .safetensors, transformers directory, hub id, or litemedsam (shipped weights)"
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), help="override the preprocessing profile")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        info = describe(args.src, args.profile)
    except CheckpointError as err:
        parser.exit(1, f"error: {err}\n")
    except (KeyError, ValueError, TypeError, EOFError, OSError, RuntimeError) as err:  # an unpickler's raw error
        parser.exit(1, f"error: {args.src}: not a readable checkpoint ({type(err).__name__}: {err})\n")
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['source']}\n  profile: {info['profile']['name']} ({info['profile_reason']})")
    for note in info["notes"]:
        print(f"  note: {note}")
    print("  image encoder: " + ", ".join(f"{k}={v}" for k, v in info["image_encoder"].items()))
    print(format_summary(info["parameters"]))
    return 0
