"""Learned prompts: the prompt-free automatic mode (``auto.mode: tokens``).

Each structure gets ``k`` learned sparse prompt tokens (``(k, C)``, C = the decoder width, 256) that
take the place of a box's two corner embeddings, as SAMed's prompt-free head does. They are initialised
from the prompt encoder's embedding of the structure's mean training box, then trained with the mask
decoder on the same images and targets as the box prompts (``training/loop.py``: the box loss plus
``auto.weight`` times the loss of the learned-prompt masks), and saved with the model as
``learned_prompts.safetensors``. At prediction the learned-prompt masks give boxes for a box-prompted
pass (``inference/automatic.py``); nothing but the image is needed.

    learned = LearnedPrompts(["lv_endo", "myo", "la"])
    learned.init_from_boxes(sam, boxes)                   # (3, 4) XYXY model-input px
    logits, iou = decode_learned(sam, learned, embeddings, ["lv_endo", "la"])   # (B, 2, 1, h, w), (B, 2, 1)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from medsam_echo.data.sample import STRUCTURES

LEARNED_PROMPTS_FILE = "learned_prompts.safetensors"
_FORMAT = "medsam-echo learned prompts v1"


class LearnedPrompts(nn.Module):
    """``k`` learned prompt tokens per structure.

    Args:
        structures: the structures the model segments without prompts (names from ``STRUCTURES``).
        n_tokens: tokens per structure (2 = a box's worth, the default).
        hidden_size: the mask decoder's width (256 for SAM, MedSAM and LiteMedSAM).

    Attributes:
        tokens: ``(n_structures, k, hidden_size)`` parameter.
    """

    def __init__(self, structures: Sequence[str], n_tokens: int = 2, hidden_size: int = 256) -> None:
        super().__init__()
        unknown = [s for s in structures if s not in STRUCTURES]
        if unknown or not structures or len(set(structures)) != len(structures):
            raise ValueError(f"learned prompts need distinct structures from {sorted(STRUCTURES)}, got {list(structures)}")
        if n_tokens < 1:
            raise ValueError(f"learned prompts need at least one token per structure, got {n_tokens}")
        self.structures = tuple(structures)
        self.tokens = nn.Parameter(torch.zeros(len(self.structures), n_tokens, hidden_size))

    def forward(self, structures: Sequence[str]) -> torch.Tensor:
        """``(n, k, C)`` tokens of ``structures``, in that order.

        Raises:
            KeyError: a structure these prompts were not trained for.
        """
        missing = [s for s in structures if s not in self.structures]
        if missing:
            raise KeyError(f"no learned prompts for {missing}: the model learned {list(self.structures)}")
        return self.tokens[[self.structures.index(s) for s in structures]]

    @torch.no_grad()
    def init_from_boxes(self, sam, boxes: torch.Tensor, seed: int = 0) -> None:
        """Start each structure from the prompt encoder's embedding of a box.

        Args:
            sam: the ``SamModel`` (plain or peft-wrapped) whose prompt encoder embeds the boxes.
            boxes: ``(n_structures, 4)`` XYXY in model-input px, one per structure in :attr:`structures`.
            seed: tokens beyond the first two start as small seeded noise.
        """
        boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(len(self.structures), 4)
        weight = sam.prompt_encoder.no_mask_embed.weight
        sparse, _ = sam.prompt_encoder(input_points=None, input_labels=None,
                                       input_boxes=boxes[None].to(weight.device, weight.dtype), input_masks=None)
        k = self.tokens.shape[1]
        generator = torch.Generator().manual_seed(seed)
        noise = 0.02 * torch.randn(self.tokens.shape, generator=generator)
        self.tokens.copy_(noise.to(self.tokens))
        self.tokens[:, : min(k, 2)] = sparse[0, :, : min(k, 2)].to(self.tokens)

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/learned_prompts.safetensors`` (structures in the metadata); returns the path."""
        from safetensors.torch import save_file

        path = Path(directory) / LEARNED_PROMPTS_FILE
        meta = {"format": _FORMAT, "structures": json.dumps(list(self.structures))}
        save_file({"tokens": self.tokens.detach().float().cpu().contiguous()}, str(path), metadata=meta)
        return path


def load_learned_prompts(directory: str | Path) -> LearnedPrompts | None:
    """The learned prompts saved in a trained-weights folder, or ``None`` when it has none.

    Raises:
        ValueError: the file is unreadable, of another format, or its tokens and structures disagree
            (the message names the file).
    """
    from safetensors import safe_open

    path = Path(directory) / LEARNED_PROMPTS_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tokens = handle.get_tensor("tokens") if "tokens" in handle.keys() else None
        structures = json.loads(meta.get("structures", "null"))
    except Exception as err:  # safetensors raises its own error types for a damaged header
        raise ValueError(f"{path}: unreadable learned prompts ({err})") from err
    if meta.get("format") != _FORMAT or tokens is None or not isinstance(structures, list):
        raise ValueError(f"{path}: not medsam-echo learned prompts (expected format {_FORMAT!r} with 'tokens')")
    if tokens.ndim != 3 or tokens.shape[0] != len(structures):
        raise ValueError(f"{path}: tokens {tuple(tokens.shape)} do not match {len(structures)} structures")
    learned = LearnedPrompts(structures, n_tokens=tokens.shape[1], hidden_size=tokens.shape[2])
    learned.tokens.data.copy_(tokens)
    return learned


def decode_learned(
    sam, learned: LearnedPrompts, image_embeddings: torch.Tensor, structures: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of ``n`` structures with no prompt but the learned tokens, for ``B`` images in one decoder call.

    Args:
        sam: a ``SamModel`` (plain or peft-wrapped: the decoder's LoRA applies).
        learned: the learned prompts.
        image_embeddings: ``(B, C, h', w')``.
        structures: the ``n`` structures.

    Returns:
        ``logits`` ``(B, n, 1, h, w)`` (low-res, ``h = 4 h'``) and predicted IoU ``(B, n, 1)``.
    """
    batch, _, height, width = image_embeddings.shape
    tokens = learned(structures).to(image_embeddings.dtype)
    sparse = tokens[None].expand(batch, -1, -1, -1)
    dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, height, width)
    positional = sam.get_image_wide_positional_embeddings().repeat(batch, 1, 1, 1)
    masks, iou = sam.mask_decoder(
        image_embeddings=image_embeddings,
        image_positional_embeddings=positional.to(image_embeddings.dtype),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense.to(image_embeddings.dtype),
        multimask_output=False,
    )
    return masks, iou
