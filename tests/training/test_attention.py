"""``model.attn_implementation`` really selects the image encoder's attention kernel."""

from __future__ import annotations

import pytest
import torch

from medsam_echo.adapters.methods import MethodConfig
from medsam_echo.training.model import build_training_model, set_attention


def test_scratch_models_use_the_requested_attention_with_the_same_weights_and_outputs():
    built = {impl: build_training_model("scratch:tiny", MethodConfig("medsam_full"), profile=None, seed=0,
                                        attn_implementation=impl).base_model.eval() for impl in ("eager", "sdpa")}
    names = {impl: type(m.vision_encoder.layers[0].attn).__name__ for impl, m in built.items()}
    assert names == {"eager": "SamVisionAttention", "sdpa": "SamVisionSdpaAttention"}
    pixels = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        eager, sdpa = (built[impl].get_image_embeddings(pixels) for impl in ("eager", "sdpa"))
    torch.testing.assert_close(sdpa, eager, rtol=1e-4, atol=1e-5)


def test_unknown_attention_is_refused():
    model = build_training_model("scratch:tiny", MethodConfig("decoder_only"), profile=None, seed=0).base_model
    with pytest.raises(ValueError, match="flash"):
        set_attention(model, "flash")
