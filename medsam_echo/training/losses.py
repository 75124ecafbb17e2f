"""Segmentation losses at the model's input resolution, padding removed, plus the IoU-head loss.

SAM's decoder predicts ``(h, w)`` = 256 px logits for a 1024 px input. Peers compare those directly with
labels of another size; here the logits are upsampled (bilinear) to the input size ``S`` and compared with
the label map at the input resolution, with a weight of 0 on the padding that the ``sam`` profile adds
(bottom / right), so padded pixels never count as background.

With several candidate masks per prompt (multimask output) the best candidate (lowest segmentation loss)
is supervised, as SAM does; the IoU head learns the IoU every candidate actually achieved.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def valid_mask(valid_sizes: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, 1, 1, S, S)`` float weights: 1 inside each image's unpadded ``(h, w)``, 0 in the padding.

    Args:
        valid_sizes: ``(B, 2)`` int ``(h, w)`` in model-input px.
        size: ``S``.
    """
    rows = torch.arange(size, device=valid_sizes.device)
    inside_h = rows[None, :] < valid_sizes[:, :1]  # (B, S)
    inside_w = rows[None, :] < valid_sizes[:, 1:]
    return (inside_h[:, :, None] & inside_w[:, None, :]).float()[:, None, None]


def upsample_logits(logits: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, n, m, h, w)`` low-res logits -> ``(B, n, m, S, S)`` (bilinear, as SAM's postprocessing).

    Where the low-res masks already have the input size (LiteMedSAM: 256 px both), nothing is resampled.
    """
    b, n, m, h, w = logits.shape
    if (h, w) == (size, size):
        return logits.float()
    up = F.interpolate(logits.reshape(b * n * m, 1, h, w).float(), size=(size, size), mode="bilinear", align_corners=False)
    return up.reshape(b, n, m, size, size)


def segmentation_losses(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, *, focal_gamma: float = 2.0,
    with_focal: bool = True,
) -> dict[str, torch.Tensor]:
    """Per-candidate Dice, BCE and (with ``with_focal``) focal losses, each ``(B, n, m)``.

    Every term is a few passes over ``(B, n, m, S, S)`` forward and backward (at 1024 px, 3 structures:
    3 M pixels per image), so a term whose weight is 0 is better not computed at all.

    Args:
        logits: ``(B, n, m, S, S)`` at the input resolution.
        targets: ``(B, n, 1, S, S)`` float {0, 1}.
        weights: ``(B, 1, 1, S, S)`` float, 0 on padding.
    """
    area = weights.sum(dim=(-1, -2)).clamp_min(1.0)
    prob = logits.sigmoid()
    prob_in = prob * weights
    inter = (prob_in * targets).sum(dim=(-1, -2))
    denom = prob_in.sum(dim=(-1, -2)) + (targets * weights).sum(dim=(-1, -2))
    dice = 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)
    bce_map = F.binary_cross_entropy_with_logits(logits, targets.expand_as(logits), reduction="none")
    bce = (bce_map * weights).sum(dim=(-1, -2)) / area
    parts = {"dice": dice, "bce": bce}
    if with_focal:
        p_t = prob * targets + (1 - prob) * (1 - targets)
        parts["focal"] = ((1 - p_t) ** focal_gamma * bce_map * weights).sum(dim=(-1, -2)) / area
    return parts


def achieved_iou(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(B, n, m)`` IoU of each thresholded candidate with its target (no gradient)."""
    with torch.no_grad():
        pred = (logits > 0).float() * weights
        target = targets * weights
        inter = (pred * target).sum(dim=(-1, -2))
        union = (pred + target).clamp_max(1).sum(dim=(-1, -2))
        return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def sam_loss(
    low_res_logits: torch.Tensor,
    iou_pred: torch.Tensor,
    targets: torch.Tensor,
    valid_sizes: torch.Tensor,
    *,
    dice: float = 1.0,
    bce: float = 1.0,
    focal: float = 0.0,
    focal_gamma: float = 2.0,
    iou: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one decoder output.

    Args:
        low_res_logits: ``(B, n, m, h, w)`` decoder logits (``m`` candidates per prompt).
        iou_pred: ``(B, n, m)`` predicted IoU.
        targets: ``(B, n, S, S)`` bool / float target masks at the input resolution.
        valid_sizes: ``(B, 2)`` unpadded ``(h, w)`` of each image in input px.
        dice, bce, focal, iou: term weights.

    Returns:
        ``(loss, parts)``: the scalar loss (mean over images and prompts) and the mean of each term.
    """
    size = targets.shape[-1]
    logits = upsample_logits(low_res_logits, size)
    target = targets.float()[:, :, None]
    weights = valid_mask(valid_sizes, size)
    parts = segmentation_losses(logits, target, weights, focal_gamma=focal_gamma, with_focal=focal > 0)
    per_candidate = dice * parts["dice"] + bce * parts["bce"] + (focal * parts["focal"] if focal > 0 else 0.0)
    best = per_candidate.argmin(dim=-1, keepdim=True)  # (B, n, 1): SAM supervises the best candidate
    seg = per_candidate.gather(-1, best).mean()
    iou_loss = F.mse_loss(iou_pred.float(), achieved_iou(logits, target, weights))
    loss = seg + iou * iou_loss
    report = {k: float(v.detach().gather(-1, best).mean()) for k, v in parts.items()}
    report["iou_mse"] = float(iou_loss.detach())
    return loss, report
