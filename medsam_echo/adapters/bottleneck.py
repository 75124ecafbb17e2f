"""Bottleneck adapters in the image-encoder blocks, as in Medical-SAM-Adapter (Wu et al.).

Each attention block of the image encoder gets two adapters (``D -> r*D -> D`` with GELU):
- ``attn_adapter`` after attention, with its own skip connection: ``h = a + A1(a)`` for attention output ``a``;
- ``mlp_adapter`` parallel to the MLP on the normalised input ``n``: ``mlp(n) + scale * A2(n)``.

Blocks are ViT's ``SamVisionLayer`` (``vision_encoder.layers.N``) or TinyViT's attention blocks
(``vision_encoder.layers.S.blocks.B``, width ``D`` of their stage; the MBConv stage has no attention and
gets none). TinyViT's MLP normalises its own input, so its adapter reads ``mlp.norm(x)``.

They are attached with forward hooks, so the base parameter names (and the key table to the original
layout) stay unchanged and the adapters live beside the block's ``attn`` and ``mlp``. The up-projection
starts at zero, so inserting adapters does not change the model's output.
"""

from __future__ import annotations

import torch
from torch import nn

ATTN_ADAPTER = "attn_adapter"
MLP_ADAPTER = "mlp_adapter"


class BottleneckAdapter(nn.Module):
    """``x (..., D) -> up(gelu(down(x))) (..., D)`` with ``down: D -> r*D``; ``up`` zero-initialised.

    Args:
        dim: token width ``D``.
        ratio: bottleneck width as a fraction of ``D`` (0.25 in Medical-SAM-Adapter).
    """

    def __init__(self, dim: int, ratio: float = 0.25) -> None:
        super().__init__()
        hidden = max(1, round(dim * ratio))
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


def _attn_hook(adapter: BottleneckAdapter):
    def hook(module: nn.Module, args: tuple, output: tuple) -> tuple:
        if not adapter.enabled:
            return output
        if isinstance(output, torch.Tensor):  # TinyViT attention returns the tensor itself
            return output + adapter(output)
        hidden, *rest = output
        return (hidden + adapter(hidden), *rest)

    return hook


def _mlp_hook(adapter: BottleneckAdapter, scale: float):
    def hook(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> torch.Tensor:
        if not adapter.enabled:
            return output
        normed = args[0] if args else next(iter(kwargs.values()))
        if hasattr(module, "norm"):  # TinyViT's Mlp: pre-norm inside the module
            normed = module.norm(normed)
        return output + scale * adapter(normed)

    return hook


def insert_adapters(model: nn.Module, *, ratio: float = 0.25, mlp_scale: float = 0.5) -> list[BottleneckAdapter]:
    """Add bottleneck adapters to every attention block of ``model.vision_encoder`` (a ``SamModel``).

    Returns:
        The adapters created (trainable; everything else is left as it was).
    """
    created = []
    for layer in attention_blocks(model.vision_encoder):
        dim = layer.attn.qkv.in_features
        if hasattr(layer, ATTN_ADAPTER):
            raise ValueError("adapters are already inserted in this model")
        device = layer.attn.qkv.weight.device
        attn_adapter = BottleneckAdapter(dim, ratio).to(device)
        mlp_adapter = BottleneckAdapter(dim, ratio).to(device)
        layer.add_module(ATTN_ADAPTER, attn_adapter)
        layer.add_module(MLP_ADAPTER, mlp_adapter)
        layer.attn.register_forward_hook(_attn_hook(attn_adapter))
        layer.mlp.register_forward_hook(_mlp_hook(mlp_adapter, mlp_scale), with_kwargs=True)
        created += [attn_adapter, mlp_adapter]
    return created


def attention_blocks(encoder: nn.Module) -> list[nn.Module]:
    """The blocks with ``attn`` and ``mlp`` children: ViT layers, or TinyViT's attention-stage blocks."""
    return [m for m in encoder.modules() if hasattr(m, "attn") and hasattr(m, "mlp")]


def bottleneck_adapters(model: nn.Module) -> list[BottleneckAdapter]:
    """All bottleneck adapters in ``model`` (empty when none were inserted)."""
    return [m for m in model.modules() if isinstance(m, BottleneckAdapter)]
