"""SAM's mask decoder with the work shared by the prompts of one image done once per image.

``SamModel`` decodes ``n`` prompts of an image by copying the image embedding and its positional encoding
``n`` times (``repeat_interleave``) and running the two-way transformer on every copy. Much of that is the
same for every prompt of an image. :func:`decode` computes exactly what ``SamModel``'s prompt encoder and
``SamMaskDecoder`` compute (parity within float rounding: ``tests/models/test_fast_decoder.py``), with
the same modules and parameters (peft's LoRA layers included), but:

- the dense positional encoding is computed once per call and broadcast, never copied per image or prompt,
  and ``keys + positional encoding`` is formed once per layer instead of twice;
- the no-mask embedding is added to the image embedding once per image, not per prompt;
- until the first image-side update (the first block's image-to-token attention), the image tokens are
  the same for every prompt of an image: the first block's key and value projections (token-to-image
  attention) and its query projection (image-to-token attention) run once per image, and the prompts'
  queries attend to those shared keys in one matrix product per image;
- attention is written out (two matrix products and a softmax): at these shapes (a few prompt tokens
  against 64 x 64 image tokens) that is several times faster on CPUs than ``scaled_dot_product_attention``,
  and it takes no mask, so it has nothing else to do;
- the upscaling stays in token-major layout: each 2 x 2 stride-2 transposed convolution is one matrix
  product per token (``(C, 4 C')``), its LayerNorm normalises the last dimension, and the hypernetwork's
  dot product with the mask tokens is a matrix product too; only the final ``m`` low-res masks are put in
  image layout. This avoids the transposed convolution's slow CPU backward and the big layout copies.

With a mask prompt (iterative refinement) every prompt has its own dense embedding, so the image side is
per prompt from the start; the rest applies. Models this module does not recognise (another upscaling
layer) go through ``SamModel`` itself: :func:`supports`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def supports(sam) -> bool:
    """True when ``sam`` (a ``SamModel``, possibly peft-wrapped) has the decoder :func:`decode` reproduces."""
    decoder = getattr(sam, "mask_decoder", None)
    if decoder is None or not hasattr(decoder, "transformer") or not hasattr(sam, "prompt_encoder"):
        return False
    return all(_is_2x2_upscale(conv) for conv in (decoder.upscale_conv1, decoder.upscale_conv2))


def _is_2x2_upscale(conv) -> bool:
    return (type(conv) is nn.ConvTranspose2d and conv.kernel_size == (2, 2) and conv.stride == (2, 2)
            and conv.padding == (0, 0) and conv.output_padding == (0, 0) and conv.dilation == (1, 1)
            and conv.groups == 1)


def decode(
    sam,
    image_embeddings: torch.Tensor,
    *,
    input_points: torch.Tensor | None = None,
    input_labels: torch.Tensor | None = None,
    input_boxes: torch.Tensor | None = None,
    input_masks: torch.Tensor | None = None,
    multimask_output: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt encoder + mask decoder for ``n`` prompts per image, as ``SamModel(image_embeddings=...)``.

    Args:
        sam: a ``SamModel`` (plain, peft-wrapped, with adapters) for which :func:`supports` holds.
        image_embeddings: ``(B, C, h, w)``.
        input_points: ``(B, n, k, 2)`` (x, y) model-input px, with ``input_labels`` ``(B, n, k)``
            (``None``: all positive).
        input_boxes: ``(B, n, 4)`` XYXY model-input px.
        input_masks: ``(B, n, 1, 4h, 4w)`` low-res mask logits, one per prompt, or ``None``.
        multimask_output: SAM's 3 candidates per prompt instead of 1.

    Returns:
        ``masks`` ``(B, n, m, 4h, 4w)`` low-res logits and ``iou`` ``(B, n, m)``, ``m`` = 3 or 1.
    """
    if input_points is not None and input_labels is None:
        input_labels = torch.ones_like(input_points[..., 0], dtype=torch.int)
    sparse, _ = sam.prompt_encoder(input_points=input_points, input_labels=input_labels,
                                   input_boxes=input_boxes, input_masks=None)
    dense = None
    if input_masks is not None:
        batch, n = input_masks.shape[:2]
        dense = sam.prompt_encoder.mask_embed(input_masks.reshape(batch * n, *input_masks.shape[2:]))
        dense = dense.reshape(batch, n, *dense.shape[1:])
    return decode_tokens(sam, image_embeddings, sparse, dense, multimask_output=multimask_output)


def decode_tokens(
    sam,
    image_embeddings: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor | None = None,
    *,
    multimask_output: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``SamMaskDecoder`` on prompt embeddings, image-side work shared by the prompts of an image.

    Args:
        sam: as :func:`decode`.
        image_embeddings: ``(B, C, h, w)``.
        sparse: ``(B, n, T, C)`` sparse prompt embeddings (prompt encoder output, or learned tokens).
        dense: ``(B, n, C, h, w)`` per-prompt dense (mask) embeddings, or ``None`` for the no-mask embedding.
        multimask_output: as :func:`decode`.

    Returns:
        As :func:`decode`.
    """
    decoder = sam.mask_decoder
    transformer = decoder.transformer
    batch, channels, height, width = image_embeddings.shape
    n = sparse.shape[1]
    dtype = decoder.iou_token.weight.dtype
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    point_embeddings = torch.cat([output_tokens.expand(batch, n, -1, -1), sparse], dim=2).to(dtype)

    # (hw, C): one positional encoding for every image and prompt (broadcast, never repeated)
    positional = sam.get_image_wide_positional_embeddings()[0].to(image_embeddings.dtype)
    positional = positional.flatten(1).transpose(0, 1)
    tokens = image_embeddings.flatten(2).transpose(1, 2)  # (B, hw, C)
    if dense is None:  # the no-mask embedding, once per image: keys (B, 1, hw, C) shared by the n prompts
        no_mask = sam.prompt_encoder.no_mask_embed.weight.reshape(-1).to(tokens.dtype)
        keys = (tokens + no_mask)[:, None]
    else:  # a mask prompt each: keys (B, n, hw, C)
        keys = tokens[:, None] + dense.flatten(3).transpose(2, 3).to(tokens.dtype)

    queries = point_embeddings
    for layer in transformer.layers:
        queries, keys = _two_way_block(layer, queries, keys, point_embeddings, positional)
    attn_out = _token_to_image(transformer.final_attn_token_to_image, queries + point_embeddings,
                               keys + positional, keys)
    queries = transformer.layer_norm_final_attn(queries + attn_out)
    if keys.shape[1] != n:  # no layer: the image side was never updated per prompt
        keys = keys.expand(-1, n, -1, -1)

    mask_slice = slice(1, None) if multimask_output else slice(0, 1)
    iou = decoder.iou_prediction_head(queries[:, :, 0, :])[:, :, mask_slice]
    mask_tokens = queries[:, :, 1:1 + decoder.num_mask_tokens, :]
    hyper = torch.stack([mlp(mask_tokens[:, :, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)],
                        dim=2)[:, :, mask_slice]  # (B, n, m, C/8); unused candidates get zero gradients
    masks = _upscale_and_predict(decoder, keys, hyper)  # (B, n, hw * 16, m)
    m = masks.shape[-1]
    masks = masks.reshape(batch, n, height, width, 2, 2, 2, 2, m)  # (i, j, a1, b1, a2, b2)
    masks = masks.permute(0, 1, 8, 2, 4, 6, 3, 5, 7).reshape(batch, n, m, 4 * height, 4 * width)
    return masks, iou


def _two_way_block(layer, queries, keys, point_embeddings, positional):
    """``SamTwoWayAttentionBlock.forward`` with ``keys`` ``(B, 1 or n, hw, C)``."""
    if layer.skip_first_layer_pe:
        queries = _self_attention(layer.self_attn, queries, queries, queries)
    else:
        query = queries + point_embeddings
        queries = queries + _self_attention(layer.self_attn, query, query, queries)
    queries = layer.layer_norm1(queries)

    keys_pe = keys + positional  # used by both cross attentions (formed twice in SamModel)
    queries = layer.layer_norm2(queries + _token_to_image(layer.cross_attn_token_to_image,
                                                          queries + point_embeddings, keys_pe, keys))
    queries = layer.layer_norm3(queries + layer.mlp(queries))
    attn_out = _image_to_token(layer.cross_attn_image_to_token, keys_pe, queries + point_embeddings, queries)
    keys = layer.layer_norm4(keys + attn_out)  # (B, n, hw, C) from here on
    return queries, keys


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(..., L, H d)`` -> ``(..., H, L, d)``."""
    return x.unflatten(-1, (heads, -1)).transpose(-3, -2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """``(..., H, L, d)`` -> ``(..., L, H d)``."""
    return x.transpose(-3, -2).flatten(-2)


def _softmax(scores: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return scores.softmax(dim=-1, dtype=torch.float32).to(dtype)


def _self_attention(attn, query, key, value) -> torch.Tensor:
    """``SamAttention`` among the ``T`` prompt tokens: ``(B, n, T, C)`` in and out."""
    heads = attn.num_attention_heads
    q = _heads(attn.q_proj(query), heads) * attn.scaling
    k, v = _heads(attn.k_proj(key), heads), _heads(attn.v_proj(value), heads)
    out = _softmax(q @ k.transpose(-1, -2), q.dtype) @ v
    return attn.out_proj(_merge(out))


def _token_to_image(attn, query, key, value) -> torch.Tensor:
    """Prompt tokens ``(B, n, T, C)`` attend to image tokens ``(B, K, hw, C)``, ``K`` = 1 (shared) or ``n``.

    With ``K = 1`` the key and value projections run once per image and the ``n T`` queries of an image
    attend in one product.
    """
    heads = attn.num_attention_heads
    batch, n, tokens, _ = query.shape
    q = _heads(attn.q_proj(query), heads) * attn.scaling  # (B, n, H, T, d)
    k, v = _heads(attn.k_proj(key), heads), _heads(attn.v_proj(value), heads)  # (B, K, H, hw, d)
    if key.shape[1] == 1 and n > 1:
        q = q.transpose(1, 2).reshape(batch, 1, heads, n * tokens, -1)  # (B, 1, H, n T, d)
        out = _softmax(q @ k.transpose(-1, -2), q.dtype) @ v
        out = out.reshape(batch, heads, n, tokens, -1).transpose(1, 2)  # (B, n, H, T, d)
    else:
        out = _softmax(q @ k.transpose(-1, -2), q.dtype) @ v
    return attn.out_proj(_merge(out))


def _image_to_token(attn, query, key, value) -> torch.Tensor:
    """Image tokens ``(B, K, hw, C)`` attend to the prompt tokens ``(B, n, T, C)``: ``(B, n, hw, C)`` out.

    With ``K = 1`` the query projection runs once per image; the image's queries meet the ``n`` prompts'
    keys in one product, and the softmax runs per prompt.
    """
    heads = attn.num_attention_heads
    batch, n, tokens, _ = key.shape
    q = _heads(attn.q_proj(query), heads) * attn.scaling  # (B, K, H, hw, d)
    k, v = _heads(attn.k_proj(key), heads), _heads(attn.v_proj(value), heads)  # (B, n, H, T, d)
    if query.shape[1] == 1 and n > 1:
        keys_all = k.permute(0, 2, 4, 1, 3).reshape(batch, heads, -1, n * tokens)  # (B, H, d, n T)
        scores = (q[:, 0] @ keys_all).unflatten(-1, (n, tokens))  # (B, H, hw, n, T)
        probs = _softmax(scores, q.dtype).permute(0, 3, 1, 2, 4)  # (B, n, H, hw, T)
        out = probs @ v
    else:
        out = _softmax(q @ k.transpose(-1, -2), q.dtype) @ v
    return attn.out_proj(_merge(out))


def _upscale_and_predict(decoder, keys: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
    """The two 2 x 2 transposed convolutions, LayerNorm, GELU and the hypernetwork product, per token.

    Args:
        keys: ``(B, n, hw, C)`` image tokens after the transformer.
        hyper: ``(B, n, m, C/8)`` the mask tokens' hypernetwork outputs.

    Returns:
        ``(B, n, hw * 16, m)`` mask logits, pixel ``(i, j, a1, b1, a2, b2)`` at row ``4 i + 2 a1 + a2``,
        column ``4 j + 2 b1 + b2``.
    """
    conv1, conv2, norm = decoder.upscale_conv1, decoder.upscale_conv2, decoder.upscale_layer_norm
    up = _conv_transpose_2x2(conv1, keys)  # (B, n, hw * 4, C/4)
    up = decoder.activation(F.layer_norm(up, norm.normalized_shape, norm.weight, norm.bias, norm.eps))
    up = decoder.activation(_conv_transpose_2x2(conv2, up))  # (B, n, hw * 16, C/8)
    return up @ hyper.transpose(-1, -2)


def _conv_transpose_2x2(conv: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """A kernel-2, stride-2 transposed convolution on tokens: ``(..., L, C)`` -> ``(..., 4 L, C')``.

    Each input token writes its own 2 x 2 output block, so the layer is one ``(C, 4 C')`` matrix; output
    token ``4 l + 2 a + b`` is sub-pixel ``(a, b)`` of token ``l``.
    """
    weight = conv.weight.permute(0, 2, 3, 1).flatten(1)  # (C, 2 * 2 * C')
    bias = None if conv.bias is None else conv.bias.repeat(4)
    out = F.linear(x, weight.t(), bias)
    return out.unflatten(-1, (4, -1)).flatten(-3, -2)
