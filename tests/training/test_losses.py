"""Losses at the input resolution with padding removed; the best candidate is supervised."""

from __future__ import annotations

import torch

from medsam_echo.training.losses import achieved_iou, sam_loss, upsample_logits, valid_mask


def test_padding_never_counts():
    """A prediction that is wrong only inside the padding costs nothing."""
    size = 16
    target = torch.zeros(1, 1, size, size)
    target[0, 0, 2:8, 2:10] = 1
    valid = torch.tensor([[10, 12]])  # (h, w): rows >= 10 and cols >= 12 are padding
    logits = torch.full((1, 1, 1, size, size), -20.0)
    logits[0, 0, 0, 2:8, 2:10] = 20.0
    clean, _ = sam_loss(logits, torch.ones(1, 1, 1), target, valid, iou=0.0)
    logits[0, 0, 0, 12:, :] = 20.0  # "tissue" predicted in the bottom padding
    logits[0, 0, 0, :, 13:] = 20.0
    padded, _ = sam_loss(logits, torch.ones(1, 1, 1), target, valid, iou=0.0)
    torch.testing.assert_close(clean, padded)
    assert valid_mask(valid, size)[0, 0, 0].sum() == 10 * 12


def test_low_res_logits_are_compared_at_the_input_resolution():
    """A 4x coarser logit map is upsampled to the label's size, never the label downsampled."""
    target = torch.zeros(1, 1, 64, 64)
    target[0, 0, 16:48, 16:48] = 1
    low = torch.full((1, 1, 1, 16, 16), -20.0)
    low[..., 4:12, 4:12] = 20.0
    assert upsample_logits(low, 64).shape == (1, 1, 1, 64, 64)
    loss, parts = sam_loss(low, torch.ones(1, 1, 1), target, torch.tensor([[64, 64]]), iou=0.0)
    assert parts["dice"] < 0.02


def test_best_candidate_is_supervised_and_iou_head_learns_achieved_iou():
    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, :4] = 1
    good = torch.where(target[0, 0] > 0, 10.0, -10.0)
    logits = torch.stack([-good, good, torch.zeros(8, 8)])[None, None]  # (1, 1, 3, 8, 8)
    valid = torch.tensor([[8, 8]])
    iou = achieved_iou(logits, target[:, :, None], valid_mask(valid, 8))
    torch.testing.assert_close(iou[0, 0, :2], torch.tensor([0.0, 1.0]))
    loss_right, parts = sam_loss(logits, iou, target, valid)
    assert parts["iou_mse"] == 0.0 and parts["dice"] < 1e-3
    only_bad, _ = sam_loss(logits[:, :, :1], iou[:, :, :1], target, valid)
    assert loss_right < only_bad
