"""Infer a ``SamConfig`` from the tensor shapes of a ``SamModel``-layout state dict.

Everything is read from shapes, so non-standard sizes (tiny test models, MedSAM-Lite-like widths,
other input sizes) load as well as the released ViT-B / L / H:

- image encoder width = ``patch_embed.projection.weight.shape[0]``; patch size = its kernel size;
- depth = number of ``vision_encoder.layers.N``; input size = ``pos_embed`` grid x patch size;
- head dim = ``rel_pos_h.shape[1]`` (the original tables are ``(2*S-1, head_dim)``), heads = width / head dim;
- global-attention blocks = those whose table spans the whole grid (``2*grid-1`` rows); the window size
  comes from the others (``(rows+1)/2``);
- MLP width, output channels, decoder width / MLP width / depth / attention downsampling, IoU head
  depth and width, number of mask tokens: from the matching weights.

The decoder's head count cannot be read from shapes: it keeps SAM's 8. Its two-way blocks normalise with
``layer_norm_eps = 1e-5`` (PyTorch's default, which segment-anything uses); transformers' own default is
1e-6, which shifts real SAM / LiteMedSAM logits by about 0.01.

TinyViT image encoders (LiteMedSAM, MobileSAM; ``vision_encoder.patch_embed.seq.*`` keys) are read by
:func:`_tiny_vit_spec`: stage widths, depths, heads (rows of ``attention_biases``), windows (its columns
are the ``window**2`` distinct offsets), MLP and MBConv ratios and the patch-embedding kernel. Their
input size is not in the weights: both reference implementations fix the embedding grid at 64 x 64, so
it is 64 x the encoder's stride (256 px for LiteMedSAM, 1024 px for MobileSAM).
"""

from __future__ import annotations

import math
import re

import torch
from transformers import SamConfig

from medsam_echo.models.errors import CheckpointError
from medsam_echo.models.registry import DECODER_LAYER_NORM_EPS, tiny_vit_sam_config
from medsam_echo.models.tinyvit import EMBEDDING_GRID, TinyViTSpec

DECODER_HEADS = 8
_LAYER = re.compile(r"^vision_encoder\.layers\.(\d+)\.")
_DEC_LAYER = re.compile(r"^mask_decoder\.transformer\.layers\.(\d+)\.")
_IOU_HIDDEN = re.compile(r"^mask_decoder\.iou_prediction_head\.layers\.(\d+)\.weight$")
TINY_VIT_MARKER = "vision_encoder.patch_embed.seq.0.c.weight"
_STAGE_BLOCK = re.compile(r"^vision_encoder\.layers\.(\d+)\.blocks\.(\d+)\.")
# The reference TinyViT merges without striding into its last stage for these widths.
_STRIDE_ONE_WIDTHS = (320, 448, 576)


def _get(state: dict[str, torch.Tensor], key: str, source: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{source}: cannot infer the architecture, key {key!r} is missing")
    return state[key]


def _count(state: dict[str, torch.Tensor], pattern: re.Pattern) -> int:
    indices = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def _vision_config(state: dict[str, torch.Tensor], source: str) -> dict:
    proj = _get(state, "vision_encoder.patch_embed.projection.weight", source)
    width, channels, patch = proj.shape[0], proj.shape[1], proj.shape[2]
    depth = _count(state, _LAYER)
    if depth == 0:
        raise CheckpointError(f"{source}: no image-encoder blocks (vision_encoder.layers.N) found")
    pos = state.get("vision_encoder.pos_embed")
    neck = _get(state, "vision_encoder.neck.conv1.weight", source)
    mlp = _get(state, "vision_encoder.layers.0.mlp.lin1.weight", source)
    cfg = dict(
        hidden_size=width, num_channels=channels, patch_size=patch, num_hidden_layers=depth,
        output_channels=neck.shape[0], mlp_dim=mlp.shape[0],
        qkv_bias="vision_encoder.layers.0.attn.qkv.bias" in state, use_abs_pos=pos is not None,
        use_rel_pos="vision_encoder.layers.0.attn.rel_pos_h" in state,
    )
    pe = _get(state, "shared_image_embedding.positional_embedding", source)
    cfg["num_pos_feats"] = pe.shape[1]
    if pos is None:
        raise CheckpointError(f"{source}: models without an absolute position embedding are not supported")
    grid = pos.shape[1]
    cfg["image_size"] = grid * patch
    cfg.update(_attention_layout(state, width, depth, grid, source))
    return cfg


def _attention_layout(state: dict[str, torch.Tensor], width: int, depth: int, grid: int, source: str) -> dict:
    if "vision_encoder.layers.0.attn.rel_pos_h" not in state:
        raise CheckpointError(f"{source}: image encoder without relative position tables is not supported")
    rows = [state[f"vision_encoder.layers.{i}.attn.rel_pos_h"].shape[0] for i in range(depth)]
    head_dim = state["vision_encoder.layers.0.attn.rel_pos_h"].shape[1]
    if width % head_dim:
        raise CheckpointError(f"{source}: width {width} is not a multiple of the rel-pos head dim {head_dim}")
    global_rows = 2 * grid - 1
    global_idx = [i for i, r in enumerate(rows) if r == global_rows]
    windowed = sorted({r for r in rows if r != global_rows})
    if len(windowed) > 1:
        raise CheckpointError(f"{source}: blocks use several window sizes {[(r + 1) // 2 for r in windowed]}")
    window = (windowed[0] + 1) // 2 if windowed else grid
    return dict(num_attention_heads=width // head_dim, window_size=window, global_attn_indexes=global_idx)


def _decoder_config(state: dict[str, torch.Tensor], source: str) -> dict:
    tokens = _get(state, "mask_decoder.mask_tokens.weight", source)
    hidden = tokens.shape[1]
    q = _get(state, "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight", source)
    lin1 = _get(state, "mask_decoder.transformer.layers.0.mlp.lin1.weight", source)
    iou_in = _get(state, "mask_decoder.iou_prediction_head.proj_in.weight", source)
    return dict(
        hidden_size=hidden, mlp_dim=lin1.shape[0], num_hidden_layers=_count(state, _DEC_LAYER),
        num_attention_heads=DECODER_HEADS, attention_downsample_rate=hidden // q.shape[0],
        num_multimask_outputs=tokens.shape[0] - 1, iou_head_hidden_dim=iou_in.shape[0],
        iou_head_depth=_count(state, _IOU_HIDDEN) + 2, layer_norm_eps=DECODER_LAYER_NORM_EPS,
    )


def _prompt_config(state: dict[str, torch.Tensor], vision: dict, source: str) -> dict:
    conv2 = _get(state, "prompt_encoder.mask_embed.conv2.weight", source)
    hidden = _get(state, "prompt_encoder.no_mask_embed.weight", source).shape[1]
    points = len({k.split(".")[2] for k in state if k.startswith("prompt_encoder.point_embed.")})
    return dict(
        hidden_size=hidden, image_size=vision["image_size"], patch_size=vision["patch_size"],
        mask_input_channels=conv2.shape[0], num_point_embeddings=points,
    )


def infer_sam_config(state: dict[str, torch.Tensor], source: str = "checkpoint") -> SamConfig:
    """Build the ``SamConfig`` that ``state`` (``SamModel`` keys) was made with.

    Args:
        state: ``SamModel``-layout state dict (tensors may live on the meta device).
        source: name used in error messages (usually the file path).

    Raises:
        CheckpointError: a key needed to infer the architecture is missing or shapes are inconsistent.
    """
    if TINY_VIT_MARKER in state:
        spec = _tiny_vit_spec(state, source)
        decoder = _decoder_config(state, source)
        neck = _get(state, "vision_encoder.neck.conv1.weight", source).shape[0]
        prompt = _prompt_config(state, {"image_size": spec.image_size, "patch_size": spec.downsampling}, source)
        return tiny_vit_sam_config(spec, decoder=decoder, prompt=prompt, neck=neck)
    vision = _vision_config(state, source)
    decoder = _decoder_config(state, source)
    prompt = _prompt_config(state, vision, source)
    if decoder["hidden_size"] % DECODER_HEADS or (decoder["hidden_size"] // decoder["attention_downsample_rate"]) % DECODER_HEADS:
        raise CheckpointError(
            f"{source}: decoder width {decoder['hidden_size']} is not divisible by SAM's {DECODER_HEADS} heads"
        )
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def _tiny_vit_spec(state: dict[str, torch.Tensor], source: str) -> TinyViTSpec:
    """The :class:`TinyViTSpec` of a ``SamModel``-layout TinyViT state dict."""
    depths: dict[int, int] = {}
    for key in state:
        if m := _STAGE_BLOCK.match(key):
            stage, block = int(m.group(1)), int(m.group(2))
            depths[stage] = max(depths.get(stage, 0), block + 1)
    if not depths or sorted(depths) != list(range(len(depths))) or len(depths) < 2:
        raise CheckpointError(f"{source}: TinyViT stages vision_encoder.layers.N.blocks.M not found or not contiguous")
    conv1 = _get(state, "vision_encoder.layers.0.blocks.0.conv1.c.weight", source)
    dims, heads, windows = [conv1.shape[1]], [1], [1]
    for stage in range(1, len(depths)):
        prefix = f"vision_encoder.layers.{stage}.blocks.0."
        biases = _get(state, prefix + "attn.attention_biases", source)
        window = round(biases.shape[1] ** 0.5)
        if window * window != biases.shape[1]:
            raise CheckpointError(f"{source}: {prefix}attn.attention_biases has {biases.shape[1]} offsets, not a square")
        dims.append(_get(state, prefix + "attn.norm.weight", source).shape[0])
        heads.append(biases.shape[0])
        windows.append(window)
    fc1 = _get(state, "vision_encoder.layers.1.blocks.0.mlp.fc1.weight", source)
    local = _get(state, "vision_encoder.layers.1.blocks.0.local_conv.c.weight", source)
    kernel = state[TINY_VIT_MARKER].shape[-1]
    strides = tuple(1 if d in _STRIDE_ONE_WIDTHS else 2 for d in dims[1:])
    stride = (1 if kernel == 1 else 4) * math.prod(strides)
    try:
        return TinyViTSpec(
            embed_dims=tuple(dims), depths=tuple(depths[i] for i in range(len(depths))), num_heads=tuple(heads),
            window_sizes=tuple(windows), mlp_ratio=fc1.shape[0] / dims[1],
            mbconv_expand_ratio=conv1.shape[0] / dims[0], local_conv_size=local.shape[-1], patch_kernel=kernel,
            merge_strides=strides, image_size=EMBEDDING_GRID * stride,
        )
    except ValueError as err:
        raise CheckpointError(f"{source}: inconsistent TinyViT shapes: {err}") from err

