"""The fast mask decoder computes what ``SamModel`` computes: outputs and gradients, every prompt kind."""

from __future__ import annotations

import pytest
import torch

from medsam_echo.models import fast_decoder
from medsam_echo.models.registry import build_sam
from medsam_echo.prompts.decode import decode_candidates


@pytest.fixture(scope="module")
def sam():
    model = build_sam("tiny", seed=0).eval()
    with torch.no_grad():  # random weights of a useful size everywhere, so a wrong path cannot hide
        for param in model.mask_decoder.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model


def _inputs(sam, batch: int, n: int, kind: str, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    side = sam.config.vision_config.image_size
    inputs = {}
    if kind in ("boxes", "both"):
        xy = torch.rand(batch, n, 2, generator=gen) * side / 2
        inputs["input_boxes"] = torch.cat([xy, xy + side / 3], dim=-1)
    if kind in ("points", "both"):
        inputs["input_points"] = torch.rand(batch, n, 3, 2, generator=gen) * side
        inputs["input_labels"] = torch.randint(0, 2, (batch, n, 3), generator=gen)
    return inputs


def _embeddings(sam, batch: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    size = sam.config.prompt_encoder_config.image_embedding_size
    channels = sam.config.vision_config.output_channels
    return torch.randn(batch, channels, size, size, generator=gen)


@pytest.mark.parametrize(("kind", "multimask", "with_masks"),
                         [("boxes", False, False), ("boxes", True, True), ("points", True, False), ("both", False, True)])
def test_outputs_and_gradients_match_samodel(sam, kind, multimask, with_masks):
    assert fast_decoder.supports(sam)
    batch, n = 2, 3
    inputs = _inputs(sam, batch, n, kind)
    size = 4 * sam.config.prompt_encoder_config.image_embedding_size
    masks = torch.randn(batch, n, 1, size, size, generator=torch.Generator().manual_seed(2)) if with_masks else None
    results = {}
    for decoder in ("fast", "reference"):
        sam.zero_grad()
        embeddings = _embeddings(sam, batch).requires_grad_(True)
        logits, iou = decode_candidates(sam, embeddings, inputs, input_masks=masks, multimask_output=multimask,
                                        decoder=decoder)  # fmt: skip
        (logits.sin().sum() + iou.sum()).backward()
        grads = {name: p.grad.clone() for name, p in sam.named_parameters() if p.grad is not None}
        results[decoder] = (logits.detach(), iou.detach(), embeddings.grad.clone(), grads)
    (fast_logits, fast_iou, fast_eg, fast_grads), (ref_logits, ref_iou, ref_eg, ref_grads) = results.values()
    m = 3 if multimask else 1
    assert fast_logits.shape == ref_logits.shape == (batch, n, m, size, size) and fast_iou.shape == (batch, n, m)
    torch.testing.assert_close(fast_logits, ref_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast_iou, ref_iou, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast_eg, ref_eg, rtol=1e-3, atol=1e-4)
    assert set(ref_grads) <= set(fast_grads)
    for name, grad in ref_grads.items():
        scale = float(grad.abs().max())  # float32 sums in another order: within 0.1 % of the largest, and
        # 1e-4 for gradients that are zero in exact arithmetic (a key bias under softmax): both sides are noise
        torch.testing.assert_close(fast_grads[name], grad, rtol=0, atol=1e-3 * scale + 1e-4, msg=lambda m, k=name: f"{k}: {m}")


def test_an_unknown_upscaling_layer_goes_through_samodel(sam):
    import copy

    other = copy.deepcopy(sam)
    other.mask_decoder.upscale_conv1 = torch.nn.ConvTranspose2d(
        other.mask_decoder.upscale_conv1.in_channels, other.mask_decoder.upscale_conv1.out_channels, 3, 2, 1, 1)
    assert not fast_decoder.supports(other)
    with pytest.raises(ValueError, match="decoder must be"):
        decode_candidates(sam, _embeddings(sam, 1), _inputs(sam, 1, 1, "boxes"), decoder="fastest")
