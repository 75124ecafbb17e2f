"""Every key and shape of the released ViT-B / L / H checkpoints maps, built on the meta device."""

from __future__ import annotations

import pytest
import torch

from medsam_echo.models.architecture import infer_sam_config
from medsam_echo.models.keymap import hf_to_original, original_to_hf
from medsam_echo.models.registry import ARCHITECTURES, build_sam


def _original_meta_state(name: str) -> dict[str, torch.Tensor]:
    from segment_anything import sam_model_registry

    with torch.device("meta"):
        return sam_model_registry[name]().state_dict()


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_released_layout_maps_key_for_key(name):
    original = _original_meta_state(name)
    hf, unmapped = original_to_hf(original)
    assert unmapped == []
    ours = build_sam(name, device="meta").state_dict()
    assert set(hf) == set(ours)
    assert {k: tuple(v.shape) for k, v in hf.items()} == {k: tuple(v.shape) for k, v in ours.items()}
    back, unmapped = hf_to_original(ours)
    assert unmapped == [] and set(back) == set(original)


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_architecture_is_inferred_from_shapes(name):
    hf, _ = original_to_hf(_original_meta_state(name))
    config = infer_sam_config(hf, name)
    a = ARCHITECTURES[name]
    width, depth, heads, global_idx, size, patch, window = (
        a.width, a.depth, a.heads, list(a.global_attn), a.image_size, a.patch, a.window)
    vision = config.vision_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (width, depth, heads)
    assert list(vision.global_attn_indexes) == global_idx
    assert (vision.image_size, vision.patch_size, vision.window_size) == (size, patch, window)
    assert config.mask_decoder_config.num_attention_heads == 8
    assert config.mask_decoder_config.mlp_dim == 2048


def test_vit_b_parameter_counts_match_the_reference():
    model = build_sam("vit_b", device="meta")
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert round(count(model.vision_encoder) / 1e6, 1) == 89.7
    assert round(count(model.mask_decoder) / 1e6, 2) == 4.06


def test_non_standard_sizes_round_trip_through_inference():
    """A model no registry knows (odd window, global blocks, widths) is rebuilt from shapes alone."""
    from transformers import SamConfig, SamModel

    config = SamConfig(
        vision_config=dict(hidden_size=40, num_hidden_layers=5, num_attention_heads=5, image_size=96,
                           patch_size=12, window_size=5, global_attn_indexes=[0, 4], output_channels=48,
                           num_pos_feats=24, mlp_dim=72),
        prompt_encoder_config=dict(hidden_size=48, image_size=96, patch_size=12, mask_input_channels=8),
        mask_decoder_config=dict(hidden_size=48, mlp_dim=40, num_hidden_layers=3, iou_head_hidden_dim=20,
                                 iou_head_depth=4, attention_downsample_rate=2, layer_norm_eps=1e-5),
    )
    with torch.device("meta"):
        state = SamModel(config).state_dict()
    inferred = infer_sam_config(state)
    for part in ("vision_config", "prompt_encoder_config", "mask_decoder_config"):
        assert getattr(inferred, part).to_dict() == getattr(config, part).to_dict(), part
