"""The loop users compare us with, written the way MedSAM's ``train_one_gpu.py`` trains.

MedSAM-style on purpose, as the reference point of every ratio the benchmark reports:

- fp32, attention computed by hand (``attn_implementation="eager"``, as segment-anything's ``Attention``);
- the prompt is drawn per sample inside the Dataset's ``__getitem__``: the ground-truth box of each
  structure, every side pushed outward by ``U{0..shift}`` px (MedSAM: 20 px at 1024);
- the image encoder runs on every step (no embedding cache), then the prompt encoder and mask decoder
  (``SamModel(pixel_values=..., input_boxes=...)``, one mask per box);
- loss = Dice (sigmoid, squared denominators, as MONAI's ``DiceLoss``) + BCE on the logits upsampled to
  the input size; default ``torch.optim.AdamW(lr=1e-4, weight_decay=0.01)``; a plain PyTorch loop,
  ``num_workers=0``, no pinned memory.

One deliberate difference from MedSAM, for a fair per-image comparison: every item carries one box per
configured structure (MedSAM draws one structure per item), as our loop prompts every structure.
The images, label maps and initial weights are those of the engine (the same ``PreprocessedSet``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from medsam_echo.prompts.policies import structure_masks


class MedSAMStyleSet(Dataset):
    """Items of a preprocessed set with masks and jittered boxes made here, per sample.

    Args:
        preprocessed_set: a ``PreprocessedSet`` (``pixel_values (3, S, S)``, ``labels (S, S)``).
        structures: structure names (``medsam_echo.data.sample.STRUCTURES``), one box and mask each.
        shift_px: largest outward shift of each box side, px at the model input.
        seed: seeds each item's generator together with its index.
    """

    def __init__(self, preprocessed_set, structures: Sequence[str], *, shift_px: int, seed: int = 0) -> None:
        self.base, self.structures, self.shift_px, self.seed = preprocessed_set, list(structures), shift_px, seed
        self.draws = 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """``{"pixel_values" (3, S, S), "masks" (n, S, S) float, "boxes" (n, 4) XYXY px}``."""
        item = self.base[index]
        masks = structure_masks(item["labels"].numpy(), self.structures)
        rng = np.random.default_rng([self.seed, index, self.draws])
        self.draws += 1
        boxes = np.stack([self._box(mask, rng, index, name) for mask, name in zip(masks, self.structures, strict=True)])
        return {"pixel_values": item["pixel_values"], "masks": torch.from_numpy(masks).float(),
                "boxes": torch.from_numpy(boxes)}

    def _box(self, mask: np.ndarray, rng: np.random.Generator, index: int, name: str) -> np.ndarray:
        """``(4,)`` float32 XYXY box of ``mask`` (S, S), each side moved outward by ``U{0..shift_px}`` px."""
        rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
        if not rows.any():
            raise ValueError(f"training image {index}: structure {name!r} is empty; no box to draw")
        y0, y1 = np.flatnonzero(rows)[[0, -1]]
        x0, x1 = np.flatnonzero(cols)[[0, -1]]
        d = rng.integers(0, self.shift_px + 1, size=4)
        size = mask.shape[0] - 1
        return np.array([max(0, x0 - d[0]), max(0, y0 - d[1]), min(size, x1 + d[2]), min(size, y1 + d[3])],
                        dtype=np.float32)


def medsam_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """MedSAM's ``DiceLoss(sigmoid=True, squared_pred=True) + BCEWithLogitsLoss``.

    Args:
        logits: ``(B, n, S, S)`` at the input resolution.
        masks: ``(B, n, S, S)`` float {0, 1}.
    """
    prob = logits.sigmoid()
    inter = (prob * masks).sum(dim=(-1, -2))
    denom = (prob**2).sum(dim=(-1, -2)) + (masks**2).sum(dim=(-1, -2))
    dice = 1.0 - (2.0 * inter + 1e-5) / (denom + 1e-5)
    return dice.mean() + F.binary_cross_entropy_with_logits(logits, masks)


class BaselineLoop:
    """MedSAM's loop around an already built model; :meth:`step` trains on the next batch.

    Args:
        model: ``SamModel`` (possibly peft-wrapped) with the method's parameters trainable, in fp32,
            built with eager attention.
        dataset: a :class:`MedSAMStyleSet`.
        batch_size: images per step.
        device: where the model runs.
    """

    def __init__(self, model: torch.nn.Module, dataset: MedSAMStyleSet, *, batch_size: int, device) -> None:
        self.model = model.to(device).train()
        self.device = torch.device(device)
        self.batch_size = batch_size
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0)
        if len(self.loader) == 0:
            raise ValueError(f"batch_size={batch_size} is larger than the {len(dataset)} training images")
        self._batches = self._cycle()

    def _cycle(self) -> Iterator[dict]:
        while True:
            yield from self.loader

    def step(self) -> float:
        """One optimizer step on the next batch; returns the loss."""
        batch = next(self._batches)
        image = batch["pixel_values"].to(self.device)
        boxes, masks = batch["boxes"].to(self.device), batch["masks"].to(self.device)
        self.optimizer.zero_grad()
        low_res = self.model(pixel_values=image, input_boxes=boxes, multimask_output=False).pred_masks[:, :, 0]
        logits = F.interpolate(low_res, size=image.shape[-2:], mode="bilinear", align_corners=False)
        loss = medsam_loss(logits, masks)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
