"""Key table between the original segment-anything layout and transformers' ``SamModel``.

The transformers wheel does not ship its conversion script, so this is our own table. Each rule is a
regular expression on the original key and its replacement; :func:`original_to_hf` applies the first
matching rule and :func:`hf_to_original` applies the inverse table. Both are exact inverses on every key
of a SAM checkpoint (tested on the ViT-B/L/H layouts).

TinyViT encoders (LiteMedSAM, MobileSAM) keep their original module names under ``vision_encoder.``;
their neck is SAM's and maps like the ViT neck.

Two keys are special:
- Original SAM has one Fourier-feature matrix, ``prompt_encoder.pe_layer.positional_encoding_gaussian_matrix``;
  ``SamModel`` holds it twice, tied: ``shared_image_embedding.positional_embedding`` and
  ``prompt_encoder.shared_embedding.positional_embedding``.
- ``SamFeedForward`` names its first and last linear layers ``proj_in`` / ``proj_out`` and the hidden
  ones ``layers.{i-1}``, where the original MLP uses ``layers.0 .. layers.{n-1}``.
"""

from __future__ import annotations

import re

import torch

ORIGINAL_PE = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
HF_PE = ("shared_image_embedding.positional_embedding", "prompt_encoder.shared_embedding.positional_embedding")
# Buffers some original checkpoints carry; they are preprocessing constants, not weights.
ORIGINAL_PIXEL_KEYS = ("pixel_mean", "pixel_std")
# MobileSAM checkpoints keep TinyViT's ImageNet classifier, which SAM never runs.
UNUSED_ORIGINAL_PREFIXES = ("image_encoder.norm_head.", "image_encoder.head.")

# (original pattern, hf replacement, hf pattern, original replacement); patterns anchored at both ends.
_RULES: list[tuple[str, str, str, str]] = [
    # TinyViT (LiteMedSAM, MobileSAM): our encoder keeps the original names below the prefix.
    (r"image_encoder\.(patch_embed\.seq|layers\.\d+\.(?:blocks|downsample))\.(.+)", r"vision_encoder.\1.\2",
     r"vision_encoder\.(patch_embed\.seq|layers\.\d+\.(?:blocks|downsample))\.(.+)", r"image_encoder.\1.\2"),
    (r"image_encoder\.patch_embed\.proj\.(.+)", r"vision_encoder.patch_embed.projection.\1",
     r"vision_encoder\.patch_embed\.projection\.(.+)", r"image_encoder.patch_embed.proj.\1"),
    (r"image_encoder\.pos_embed", r"vision_encoder.pos_embed",
     r"vision_encoder\.pos_embed", r"image_encoder.pos_embed"),
    (r"image_encoder\.blocks\.(\d+)\.norm(\d)\.(.+)", r"vision_encoder.layers.\1.layer_norm\2.\3",
     r"vision_encoder\.layers\.(\d+)\.layer_norm(\d)\.(.+)", r"image_encoder.blocks.\1.norm\2.\3"),
    (r"image_encoder\.blocks\.(\d+)\.(attn|mlp)\.(.+)", r"vision_encoder.layers.\1.\2.\3",
     r"vision_encoder\.layers\.(\d+)\.(attn|mlp)\.(.+)", r"image_encoder.blocks.\1.\2.\3"),
    (r"image_encoder\.neck\.0\.(.+)", r"vision_encoder.neck.conv1.\1",
     r"vision_encoder\.neck\.conv1\.(.+)", r"image_encoder.neck.0.\1"),
    (r"image_encoder\.neck\.1\.(.+)", r"vision_encoder.neck.layer_norm1.\1",
     r"vision_encoder\.neck\.layer_norm1\.(.+)", r"image_encoder.neck.1.\1"),
    (r"image_encoder\.neck\.2\.(.+)", r"vision_encoder.neck.conv2.\1",
     r"vision_encoder\.neck\.conv2\.(.+)", r"image_encoder.neck.2.\1"),
    (r"image_encoder\.neck\.3\.(.+)", r"vision_encoder.neck.layer_norm2.\1",
     r"vision_encoder\.neck\.layer_norm2\.(.+)", r"image_encoder.neck.3.\1"),
    (r"prompt_encoder\.point_embeddings\.(\d+)\.(.+)", r"prompt_encoder.point_embed.\1.\2",
     r"prompt_encoder\.point_embed\.(\d+)\.(.+)", r"prompt_encoder.point_embeddings.\1.\2"),
    (r"prompt_encoder\.(not_a_point_embed|no_mask_embed)\.(.+)", r"prompt_encoder.\1.\2",
     r"prompt_encoder\.(not_a_point_embed|no_mask_embed)\.(.+)", r"prompt_encoder.\1.\2"),
    (r"prompt_encoder\.mask_downscaling\.0\.(.+)", r"prompt_encoder.mask_embed.conv1.\1",
     r"prompt_encoder\.mask_embed\.conv1\.(.+)", r"prompt_encoder.mask_downscaling.0.\1"),
    (r"prompt_encoder\.mask_downscaling\.1\.(.+)", r"prompt_encoder.mask_embed.layer_norm1.\1",
     r"prompt_encoder\.mask_embed\.layer_norm1\.(.+)", r"prompt_encoder.mask_downscaling.1.\1"),
    (r"prompt_encoder\.mask_downscaling\.3\.(.+)", r"prompt_encoder.mask_embed.conv2.\1",
     r"prompt_encoder\.mask_embed\.conv2\.(.+)", r"prompt_encoder.mask_downscaling.3.\1"),
    (r"prompt_encoder\.mask_downscaling\.4\.(.+)", r"prompt_encoder.mask_embed.layer_norm2.\1",
     r"prompt_encoder\.mask_embed\.layer_norm2\.(.+)", r"prompt_encoder.mask_downscaling.4.\1"),
    (r"prompt_encoder\.mask_downscaling\.6\.(.+)", r"prompt_encoder.mask_embed.conv3.\1",
     r"prompt_encoder\.mask_embed\.conv3\.(.+)", r"prompt_encoder.mask_downscaling.6.\1"),
    (r"mask_decoder\.(iou_token|mask_tokens)\.(.+)", r"mask_decoder.\1.\2",
     r"mask_decoder\.(iou_token|mask_tokens)\.(.+)", r"mask_decoder.\1.\2"),
    (r"mask_decoder\.transformer\.layers\.(\d+)\.norm(\d)\.(.+)",
     r"mask_decoder.transformer.layers.\1.layer_norm\2.\3",
     r"mask_decoder\.transformer\.layers\.(\d+)\.layer_norm(\d)\.(.+)",
     r"mask_decoder.transformer.layers.\1.norm\2.\3"),
    (r"mask_decoder\.transformer\.layers\.(\d+)\.(self_attn|cross_attn_token_to_image|cross_attn_image_to_token|mlp)\.(.+)",
     r"mask_decoder.transformer.layers.\1.\2.\3",
     r"mask_decoder\.transformer\.layers\.(\d+)\.(self_attn|cross_attn_token_to_image|cross_attn_image_to_token|mlp)\.(.+)",
     r"mask_decoder.transformer.layers.\1.\2.\3"),
    (r"mask_decoder\.transformer\.final_attn_token_to_image\.(.+)",
     r"mask_decoder.transformer.final_attn_token_to_image.\1",
     r"mask_decoder\.transformer\.final_attn_token_to_image\.(.+)",
     r"mask_decoder.transformer.final_attn_token_to_image.\1"),
    (r"mask_decoder\.transformer\.norm_final_attn\.(.+)", r"mask_decoder.transformer.layer_norm_final_attn.\1",
     r"mask_decoder\.transformer\.layer_norm_final_attn\.(.+)", r"mask_decoder.transformer.norm_final_attn.\1"),
    (r"mask_decoder\.output_upscaling\.0\.(.+)", r"mask_decoder.upscale_conv1.\1",
     r"mask_decoder\.upscale_conv1\.(.+)", r"mask_decoder.output_upscaling.0.\1"),
    (r"mask_decoder\.output_upscaling\.1\.(.+)", r"mask_decoder.upscale_layer_norm.\1",
     r"mask_decoder\.upscale_layer_norm\.(.+)", r"mask_decoder.output_upscaling.1.\1"),
    (r"mask_decoder\.output_upscaling\.3\.(.+)", r"mask_decoder.upscale_conv2.\1",
     r"mask_decoder\.upscale_conv2\.(.+)", r"mask_decoder.output_upscaling.3.\1"),
]
_FORWARD = [(re.compile(rf"^{a}$"), b) for a, b, _, _ in _RULES]
_BACKWARD = [(re.compile(rf"^{c}$"), d) for _, _, c, d in _RULES]

# MLP heads (hypernetwork MLPs and the IoU head): original layers.i <-> proj_in / layers.{i-1} / proj_out.
_MLP_ORIG = re.compile(r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.layers\.(\d+)\.(.+)$")
_MLP_HF = re.compile(r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.(proj_in|proj_out|layers\.(\d+))\.(.+)$")


def _mlp_depths(keys: list[str], pattern: re.Pattern, depth_of) -> dict[str, int]:
    depths: dict[str, int] = {}
    for key in keys:
        match = pattern.match(key)
        if match:
            depths[match.group(1)] = max(depths.get(match.group(1), 0), depth_of(match))
    return depths


def _convert(key: str, rules: list[tuple[re.Pattern, str]]) -> str | None:
    for pattern, replacement in rules:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return None


def original_to_hf(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename an original segment-anything state dict to ``SamModel`` keys.

    Returns:
        ``(hf_state, unmapped)``: the renamed tensors (shared, not copied) and the original keys that
        no rule matched, so the caller can report them.
    """
    keys = list(state)
    depths = _mlp_depths(keys, _MLP_ORIG, lambda m: int(m.group(2)) + 1)
    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, tensor in state.items():
        if key == ORIGINAL_PE:
            for hf_key in HF_PE:
                out[hf_key] = tensor
            continue
        mlp = _MLP_ORIG.match(key)
        if mlp:
            head, index, rest = mlp.group(1), int(mlp.group(2)), mlp.group(3)
            name = "proj_in" if index == 0 else "proj_out" if index == depths[head] - 1 else f"layers.{index - 1}"
            out[f"{head}.{name}.{rest}"] = tensor
            continue
        new = _convert(key, _FORWARD)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = tensor
    return out, unmapped


def hf_to_original(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a ``SamModel`` state dict to the original segment-anything keys (inverse of
    :func:`original_to_hf`). The two tied positional matrices become the one original key.

    Returns:
        ``(original_state, unmapped)`` as in :func:`original_to_hf`.
    """
    keys = list(state)
    hidden = _mlp_depths(keys, _MLP_HF, lambda m: int(m.group(3)) + 1 if m.group(3) is not None else 0)
    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, tensor in state.items():
        if key in HF_PE:
            out[ORIGINAL_PE] = tensor
            continue
        mlp = _MLP_HF.match(key)
        if mlp:
            head, name, rest = mlp.group(1), mlp.group(2), mlp.group(4)
            index = 0 if name == "proj_in" else hidden.get(head, 0) + 1 if name == "proj_out" else int(mlp.group(3)) + 1
            out[f"{head}.layers.{index}.{rest}"] = tensor
            continue
        new = _convert(key, _BACKWARD)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = tensor
    return out, unmapped
