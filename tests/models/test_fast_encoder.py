"""The inference encoder is the model's encoder, faster: same embeddings, original left untouched."""

from __future__ import annotations

import pytest
import torch

from medsam_echo.models.fast_encoder import InferenceEncoder, fold_batchnorm, resolve_precision
from medsam_echo.models.registry import build_sam


def _with_random_batchnorm(model):
    """Non-trivial BatchNorm statistics and affine weights, so folding has something to get wrong."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.randn(module.num_features, generator=generator))
                module.bias.copy_(torch.randn(module.num_features, generator=generator))
    return model.eval()


def test_folded_channels_last_encoder_gives_the_same_embeddings():
    model = _with_random_batchnorm(build_sam("tinyvit_tiny"))
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = InferenceEncoder(model.vision_encoder)
    with torch.no_grad():
        torch.testing.assert_close(fast(pixels), model.get_image_embeddings(pixels), rtol=0, atol=1e-5)
    assert fast.folded == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is not folded
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.vision_encoder.modules())


def test_fold_batchnorm_removes_every_pair():
    encoder = _with_random_batchnorm(build_sam("tinyvit_tiny")).vision_encoder
    count = fold_batchnorm(encoder)
    assert count > 0 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules())


def test_a_vit_encoder_is_used_as_it_is():
    model = build_sam("tiny").eval()
    fast = InferenceEncoder(model.vision_encoder)
    assert fast.encoder is model.vision_encoder and fast.folded == 0
    pixels = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(fast(pixels), model.get_image_embeddings(pixels), rtol=0, atol=0)


def test_bf16_is_close_and_precision_names_are_checked():
    model = _with_random_batchnorm(build_sam("tinyvit_tiny"))
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = model.get_image_embeddings(pixels)
        low = InferenceEncoder(model.vision_encoder, precision="bf16")(pixels)
    assert low.dtype == torch.float32
    assert (low - reference).norm() / reference.norm() < 0.05
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="encoder precision 'half'"):
        resolve_precision("half", "cpu")
