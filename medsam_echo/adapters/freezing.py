"""Freeze or unfreeze the three SAM components, and count what trains.

Components are found by name, so this works on a plain ``SamModel`` and on one wrapped by peft
(``base_model.model.`` prefixes). The Fourier positional matrix shared by the prompt encoder and the
image-wide positional embedding (``shared_image_embedding``) belongs to the prompt encoder.
"""

from __future__ import annotations

import re

from torch import nn

COMPONENTS = ("image_encoder", "prompt_encoder", "mask_decoder")
_PATTERNS = {
    "image_encoder": re.compile(r"(^|\.)vision_encoder\."),
    "prompt_encoder": re.compile(r"(^|\.)(prompt_encoder|shared_image_embedding)\."),
    "mask_decoder": re.compile(r"(^|\.)mask_decoder\."),
}
# Parameters added by a fine-tuning method rather than present in the base checkpoint.
_ADDED = re.compile(r"(\.lora_[A-Za-z_]+\.|\.lora_magnitude_vector\.|_adapter\.)")


def component_of(name: str) -> str:
    """The component (``image_encoder``, ``prompt_encoder``, ``mask_decoder``) a parameter belongs to."""
    for component, pattern in _PATTERNS.items():
        if pattern.search(name):
            return component
    raise KeyError(f"parameter {name!r} belongs to no SAM component")


def is_added(name: str) -> bool:
    """True for LoRA / DoRA / bottleneck-adapter parameters (not part of the base checkpoint)."""
    return bool(_ADDED.search(name))


def set_base_trainable(model: nn.Module, *, image_encoder: bool, prompt_encoder: bool, mask_decoder: bool) -> None:
    """Set ``requires_grad`` of every base (non-adapter) parameter by component; adapters are untouched."""
    wanted = {"image_encoder": image_encoder, "prompt_encoder": prompt_encoder, "mask_decoder": mask_decoder}
    for name, param in model.named_parameters():
        if not is_added(name):
            param.requires_grad_(wanted[component_of(name)])


def parameter_summary(model: nn.Module) -> dict[str, dict[str, int]]:
    """Trainable and total parameter counts per component, plus ``"adapters"`` (added parameters)
    and ``"total"``. Tied parameters are counted once.

    Returns:
        ``{component: {"trainable": int, "total": int}}``.
    """
    rows = {name: {"trainable": 0, "total": 0} for name in (*COMPONENTS, "adapters", "total")}
    for name, param in model.named_parameters():  # named_parameters() yields a tied tensor once
        row = "adapters" if is_added(name) else component_of(name)
        for key in (row, "total"):
            rows[key]["total"] += param.numel()
            rows[key]["trainable"] += param.numel() if param.requires_grad else 0
    return rows


def format_summary(summary: dict[str, dict[str, int]]) -> str:
    """A fixed-width table of :func:`parameter_summary`."""
    lines = [f"{'component':<16}{'trainable':>14}{'total':>14}{'%':>8}"]
    for name, row in summary.items():
        share = 100.0 * row["trainable"] / row["total"] if row["total"] else 0.0
        lines.append(f"{name:<16}{row['trainable']:>14,}{row['total']:>14,}{share:>7.2f}%")
    return "\n".join(lines)
