"""Every SAM-family checkpoint into one runtime: a transformers ``SamModel`` plus its preprocessing profile.

    loaded = load_sam("medsam_vit_b.pth")            # original / MedSAM .pth, .safetensors,
    loaded.model, loaded.profile                     # HF directory or hub id

Loading is strict: every missing, unexpected or mis-shaped key is an error that lists them all.
The architecture is inferred from tensor shapes (see ``architecture.py``), except for transformers
directories, whose ``config.json`` is authoritative.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import SamConfig, SamModel

from medsam_echo.models.architecture import infer_sam_config
from medsam_echo.models.assets import SHIPPED
from medsam_echo.models.errors import CheckpointError
from medsam_echo.models.keymap import HF_PE, ORIGINAL_PIXEL_KEYS, UNUSED_ORIGINAL_PREFIXES, original_to_hf
from medsam_echo.models.profile import PROFILES, PreprocessProfile, get_profile
from medsam_echo.models.registry import KNOWN_HUB_MODELS
from medsam_echo.models.sources import RawCheckpoint, read_source
from medsam_echo.models.tinyvit import is_tiny_vit, model_class

log = logging.getLogger(__name__)
_MAX_LISTED = 25


@dataclass
class LoadedSam:
    """A loaded model and how to feed it.

    Attributes:
        model: the ``SamModel`` (eval mode, float32 unless a dtype was asked for).
        profile: the preprocessing profile its weights expect.
        source: what was loaded (path or hub id).
        profile_reason: why this profile was chosen (given / saved with the model / MedSAM source / default).
        notes: what the reader unwrapped or stripped.
    """

    model: SamModel
    profile: PreprocessProfile
    source: str
    profile_reason: str
    notes: list[str] = field(default_factory=list)


def load_sam(
    source: str | Path,
    *,
    profile: str | PreprocessProfile | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
) -> LoadedSam:
    """Load any supported checkpoint (see ``sources.py``) as a ``SamModel``.

    Args:
        source: ``.pth``/``.safetensors`` file, transformers directory, or hub id.
        profile: override the preprocessing profile (``"sam"``, ``"medsam"`` or a profile object).
        device: where the model is placed.
        dtype: floating-point dtype of the parameters.
        attn_implementation: ``"sdpa"`` (default, fused attention) or ``"eager"``.

    Raises:
        CheckpointError: unreadable or unsafe file, or keys / shapes that do not match the architecture.
    """
    raw = read_source(source)
    state, extra_notes = _to_hf_state(raw)
    check_finite(state, raw.path)
    config = _config_for(raw, state)
    config._attn_implementation = attn_implementation
    model = build_from_state(config, state, str(raw.path))
    model.to(device=device, dtype=dtype).eval()
    chosen, reason = choose_profile(
        raw, profile, image_size=config.vision_config.image_size, name=str(source), tiny_vit=is_tiny_vit(config)
    )
    return LoadedSam(model, chosen, str(source), reason, raw.notes + extra_notes)


def check_finite(state: dict[str, torch.Tensor], path) -> None:
    """A checkpoint with NaN / Inf weights predicts garbage (a whole-image mask, NaN scores): refuse it."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} tensor(s) hold NaN / Inf weights ({_listing(bad)}); the "
                              "checkpoint is damaged (or was saved from a diverged run)")


def _to_hf_state(raw: RawCheckpoint) -> tuple[dict[str, torch.Tensor], list[str]]:
    notes = []
    state = dict(raw.state)
    for key in ORIGINAL_PIXEL_KEYS:  # preprocessing constants some checkpoints carry; not weights
        if state.pop(key, None) is not None:
            notes.append(f"ignored the {key!r} buffer (preprocessing comes from the profile)")
    unused = [k for k in state if k.startswith(UNUSED_ORIGINAL_PREFIXES)]
    for key in unused:
        del state[key]
    if unused:
        notes.append(f"ignored {len(unused)} classifier-head tensor(s) ({', '.join(sorted(unused)[:2])}, ...) SAM never runs")
    if raw.layout == "original":
        renamed, unmapped = original_to_hf(state)
        # Keys no rule knows keep their name, so the strict check lists them with the missing ones.
        state = {**renamed, **{k: state[k] for k in unmapped}}
    for key in HF_PE:  # safetensors stores tied tensors once; SamModel exposes both names
        other = HF_PE[1] if key == HF_PE[0] else HF_PE[0]
        if key not in state and other in state:
            state[key] = state[other]
    return state, notes


def _config_for(raw: RawCheckpoint, state: dict[str, torch.Tensor]) -> SamConfig:
    if raw.hf_dir is not None:
        config = SamConfig.from_pretrained(raw.hf_dir)
        if config.model_type != "sam":
            raise CheckpointError(f"{raw.hf_dir}: config.json is a {config.model_type!r} model, not 'sam'")
        return config
    return infer_sam_config(state, str(raw.path))


def build_from_state(config: SamConfig, state: dict[str, torch.Tensor], source: str) -> SamModel:
    """Build a ``SamModel`` for ``config`` and load ``state`` strictly (no random init is computed)."""
    with torch.device("meta"):
        model = model_class(config)(config)
    check_state_matches(model, state, source)
    model.load_state_dict(state, strict=True, assign=True)
    _materialize_buffers(model)
    # assign=True replaces parameters one by one; re-tie the shared positional matrix.
    model.prompt_encoder.shared_embedding.positional_embedding = model.shared_image_embedding.positional_embedding
    return model


def _materialize_buffers(model: torch.nn.Module) -> None:
    """Rebuild non-persistent buffers (not in any state dict) that are still on the meta device."""
    for module in model.modules():
        rebuild = getattr(module, "rebuild_buffers", None)
        if rebuild is not None and any(b.is_meta for b in module.buffers(recurse=False)):
            rebuild()
    left = [n for n, b in model.named_buffers() if b.is_meta]
    if left:
        raise CheckpointError(f"buffers {left[:5]} were not initialised after loading")


def check_state_matches(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise ``CheckpointError`` listing every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} != model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = [
        f"{len(items)} {what}: {_listing(items)}"
        for what, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched))
        if items
    ]
    if problems:
        raise CheckpointError(f"{source}: state dict does not match the model; " + "; ".join(problems))


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def choose_profile(
    raw: RawCheckpoint, override: str | PreprocessProfile | None, *, image_size: int, name: str = "",
    tiny_vit: bool = False,
) -> tuple[PreprocessProfile, str]:
    """Pick the preprocessing profile: given > saved with the model > shipped weights > LiteMedSAM
    architecture > known hub id > MedSAM source > ``sam``.

    A TinyViT encoder at 256 px is LiteMedSAM (``litemedsam``); MobileSAM (TinyViT at 1024 px) was trained
    with SAM's preprocessing. A ViT source counts as MedSAM when its file or directory name contains
    "medsam" or it is a training checkpoint (``{"model": ..., "optimizer": ...}``, as MedSAM's script writes).
    """
    saved = PreprocessProfile.load(raw.hf_dir) if raw.hf_dir is not None else None
    if override is not None:
        chosen = get_profile(override, image_size) if isinstance(override, str) else override
        if saved is not None and saved.name != chosen.name:
            log.warning("%s: overriding the saved %r profile with %r", raw.path, saved.name, chosen.name)
        reason = "given"
    elif saved is not None:
        chosen, reason = saved, f"saved with the model ({raw.hf_dir / 'preprocessing.json'})"
    elif raw.shipped is not None:
        chosen, reason = get_profile(SHIPPED[raw.shipped].profile, image_size), f"shipped weights {raw.shipped}"
    elif tiny_vit and image_size == PROFILES["litemedsam"].image_size:
        chosen, reason = get_profile("litemedsam", image_size), "LiteMedSAM architecture (TinyViT at 256 px)"
    elif tiny_vit:
        chosen, reason = get_profile("sam", image_size), "MobileSAM architecture (TinyViT, SAM preprocessing)"
    elif name in KNOWN_HUB_MODELS:
        chosen, reason = get_profile(KNOWN_HUB_MODELS[name], image_size), f"known hub model {name}"
    elif "medsam" in str(raw.path).lower() or raw.training_checkpoint:
        chosen, reason = get_profile("medsam", image_size), "MedSAM checkpoint"
    else:
        chosen, reason = get_profile("sam", image_size), "default for SAM checkpoints"
    if chosen.image_size != image_size:
        raise CheckpointError(
            f"{raw.path}: profile {chosen.name!r} expects {chosen.image_size} px inputs but the model takes {image_size}"
        )
    return chosen, reason
