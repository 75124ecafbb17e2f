"""Tiny segment-anything models with random weights, saved in the formats users have."""

from __future__ import annotations

from functools import partial

import pytest
import torch

IMG, PATCH = 64, 8


def build_original_tiny(seed: int = 0) -> torch.nn.Module:
    """A small SAM from segment-anything's own modules; every parameter random (rel-pos tables too,
    which segment-anything initialises to zero and would hide a transposed table)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    grid = IMG // PATCH
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=IMG, patch_size=PATCH, embed_dim=48, depth=3, num_heads=3, mlp_ratio=4.0, out_chans=32,
            qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
            window_size=3, global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(grid, grid), input_image_size=(IMG, IMG), mask_in_chans=16
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=8),
            transformer_dim=32, iou_head_depth=3, iou_head_hidden_dim=24,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    with torch.no_grad():
        for param in sam.parameters():
            param.copy_(torch.randn_like(param) * 0.2)
    return sam.eval()


@pytest.fixture(scope="session")
def original_sam() -> torch.nn.Module:
    return build_original_tiny()


@pytest.fixture(scope="session")
def original_pth(tmp_path_factory, original_sam) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "sam_tiny.pth"
    torch.save(original_sam.state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def medsam_training_pth(tmp_path_factory, original_sam) -> str:
    """MedSAM's training-script layout: {"model", "optimizer", "epoch"} with DDP `module.` prefixes."""
    path = tmp_path_factory.mktemp("ckpt") / "medsam_model_latest.pth"
    model = {f"module.{k}": v for k, v in original_sam.state_dict().items()}
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "weight_decay": 0.01, "params": [0, 1]}]}
    torch.save({"model": model, "optimizer": optimizer, "epoch": 3}, path)
    return str(path)
