"""TinyViT image encoder (LiteMedSAM, MobileSAM) behind ``SamModel``'s vision-encoder interface.

``TinyViTSamModel`` is a transformers ``SamModel`` whose ``vision_encoder`` is :class:`TinyViTEncoder`:
the prompt encoder, mask decoder, ``get_image_embeddings`` and ``forward`` are SAM's, so training, the
embedding cache, the predictor and the bench use it exactly as a ViT model.

Module and parameter names follow the original TinyViT code (``patch_embed.seq.N``, ``layers.S.blocks.B``,
``attn.qkv``, ``mlp.fc1``, ``local_conv``, conv + BatchNorm pairs as ``.c`` / ``.bn``), so the key table
to the original layout is a prefix swap; the neck is SAM's (``neck.conv1`` ... ``neck.layer_norm2``).

Differences from the reference implementation (outputs agree to float tolerance; see the parity tests):
- tokens travel as ``(B, H, W, C)`` rather than ``(B, H*W, C)`` with a hard-coded 64 x 64 grid, so the
  grid follows the input size;
- the attention offset index is built once per block and the biases gathered at every call (no cached
  ``ab`` buffer to go stale after a training step);
- BatchNorm statistics are frozen: the encoder's BatchNorm layers stay in eval mode when the model
  trains, so a frozen (LoRA / adapter / decoder-only) encoder never drifts, and a full fine-tune with
  batches of 4-8 images does not replace the pretrained statistics with noisy ones. Their affine
  weights still train with the encoder.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SamConfig, SamModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.models.sam.modeling_sam import (
    SamMaskDecoder,
    SamPositionalEmbedding,
    SamPreTrainedModel,
    SamPromptEncoder,
    SamVisionEncoderOutput,
    SamVisionNeck,
)

from medsam_echo.schema import build_dataclass

ENCODER_TYPE = "tiny_vit"
# The grid of image embeddings both reference implementations hard-code (x.view(B, 64, 64, C)).
EMBEDDING_GRID = 64


@dataclass(frozen=True)
class TinyViTSpec:
    """Shape of a TinyViT image encoder (stored in ``config.vision_config.tiny_vit``).

    Attributes:
        embed_dims: channel width of each of the four stages.
        depths: blocks per stage (stage 0: MBConv blocks; the others: attention blocks).
        num_heads: attention heads per stage (stage 0 unused).
        window_sizes: attention window side in tokens per stage (stage 0 unused).
        mlp_ratio: MLP width / stage width.
        mbconv_expand_ratio: MBConv hidden width / stage width.
        local_conv_size: kernel of the depthwise convolution between attention and MLP.
        patch_kernel: 1 = two 1x1 convolutions with stride 1 (LiteMedSAM); 3 = two 3x3 stride-2
            convolutions (MobileSAM, TinyViT).
        merge_strides: stride of the patch merging after stages 0, 1, 2.
        image_size: input side in px.
    """

    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    patch_kernel: int = 1
    merge_strides: tuple[int, ...] = (2, 2, 1)
    image_size: int = 256

    def __post_init__(self) -> None:
        n = len(self.embed_dims)
        if n < 2 or not (len(self.depths) == len(self.num_heads) == len(self.window_sizes) == n):
            raise ValueError(f"TinyViT: embed_dims, depths, num_heads, window_sizes must have one entry per stage: {self}")
        if len(self.merge_strides) != n - 1:
            raise ValueError(f"TinyViT: merge_strides needs {n - 1} entries, got {self.merge_strides}")
        if self.patch_kernel not in (1, 3):
            raise ValueError(f"TinyViT: patch_kernel must be 1 (LiteMedSAM) or 3 (MobileSAM), got {self.patch_kernel}")
        for dim, heads in zip(self.embed_dims[1:], self.num_heads[1:], strict=True):
            if dim % heads:
                raise ValueError(f"TinyViT: width {dim} is not divisible by {heads} heads")
        if self.image_size % self.downsampling:
            raise ValueError(f"TinyViT: image_size {self.image_size} is not a multiple of {self.downsampling}")

    @property
    def patch_stride(self) -> int:
        """Total stride of the patch embedding (1 or 4)."""
        return 1 if self.patch_kernel == 1 else 4

    @property
    def downsampling(self) -> int:
        """Input px per embedding cell."""
        total = self.patch_stride
        for stride in self.merge_strides:
            total *= stride
        return total

    @property
    def grid(self) -> int:
        """Side of the image-embedding grid (64 for LiteMedSAM and MobileSAM)."""
        return self.image_size // self.downsampling

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> TinyViTSpec:
        """Validate ``config.vision_config.tiny_vit`` (lists from JSON become tuples)."""
        return build_dataclass(cls, data, "vision_config.tiny_vit")


class ConvBN(nn.Sequential):
    """Convolution without bias followed by BatchNorm, stored as ``c`` and ``bn``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))


class PatchEmbed(nn.Module):
    """``(B, 3, H, W)`` -> ``(B, C0, H/s, W/s)`` with ``s`` = 1 (1x1 kernels) or 4 (3x3, stride 2 twice)."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        stride = 1 if kernel == 1 else 2
        self.seq = nn.Sequential(ConvBN(3, dim // 2, kernel, stride), nn.GELU(), ConvBN(dim // 2, dim, kernel, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block on ``(B, C, H, W)``: 1x1 expand, 3x3 depthwise, 1x1 project, skip."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1, self.act1 = ConvBN(dim, hidden), nn.GELU()
        self.conv2, self.act2 = ConvBN(hidden, hidden, 3, groups=hidden), nn.GELU()
        self.conv3, self.act3 = ConvBN(hidden, dim), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.act3(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """``(B, C, H, W)`` -> ``(B, C', H/s, W/s)``: 1x1, depthwise 3x3 with stride ``s``, 1x1."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.act = nn.GELU()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


class ConvStage(nn.Module):
    """Stage 0: MBConv blocks then patch merging; ``(B, C, H, W)`` in, ``(B, H', W', C')`` out."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, out_dim: int, stride: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = PatchMerging(dim, out_dim, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x).permute(0, 2, 3, 1)


class Mlp(nn.Module):
    """Pre-norm MLP on ``(..., C)``: LayerNorm, ``fc1``, GELU, ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


def _bias_index(window: int) -> tuple[torch.Tensor, int]:
    """``(N, N)`` index of each token pair's ``(|dy|, |dx|)`` offset in a ``window x window`` window."""
    points = list(itertools.product(range(window), range(window)))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(offset, len(offsets)))
    return torch.tensor(idxs, dtype=torch.long).view(len(points), len(points)), len(offsets)


class Attention(nn.Module):
    """Window self-attention with a learned bias per head and token offset (LeViT style).

    Input and output ``(B', N, C)`` with ``N = window**2`` tokens per window.
    """

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.window = window
        index, n_offsets = _bias_index(window)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, n_offsets))
        self.register_buffer("attention_bias_idxs", index, persistent=False)

    def rebuild_buffers(self) -> None:
        """Recompute the (non-persistent) offset index, e.g. after loading a model built on ``meta``."""
        index, _ = _bias_index(self.window)
        self.attention_bias_idxs = index.to(self.attention_biases.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        # Explicit softmax attention: on CPUs, scaled_dot_product_attention with an additive mask takes
        # a slower fallback path (about 30 % slower at these 49- and 196-token windows).
        scores = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
        scores = scores + self.attention_biases[:, self.attention_bias_idxs].to(q.dtype)
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class TinyViTBlock(GradientCheckpointingLayer):
    """Window attention, depthwise conv, MLP; ``(B, H, W, C)`` in and out."""

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float, local_conv_size: int) -> None:
        super().__init__()
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, local_conv_size, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._windowed_attention(x)
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)

    def _windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws = self.window
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        if pad_b or pad_r:  # zero tokens at the bottom / right, as the reference does
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        windows = x.view(b, ph // ws, ws, pw // ws, ws, c).transpose(2, 3).reshape(-1, ws * ws, c)
        out = self.attn(windows).view(b, ph // ws, pw // ws, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
        return out[:, :h, :w]


class AttentionStage(nn.Module):
    """Stages 1-3: TinyViT blocks, then (except the last) patch merging; ``(B, H, W, C)`` in and out."""

    def __init__(self, dim: int, spec: TinyViTSpec, stage: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, spec.num_heads[stage], spec.window_sizes[stage], spec.mlp_ratio, spec.local_conv_size)
            for _ in range(spec.depths[stage])
        )
        last = stage == len(spec.embed_dims) - 1
        self.downsample = None if last else PatchMerging(dim, spec.embed_dims[stage + 1], spec.merge_strides[stage])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        if self.downsample is not None:
            x = self.downsample(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x


class TinyViTEncoder(nn.Module):
    """``pixel_values (B, 3, S, S)`` -> image embeddings ``(B, 256, S/d, S/d)`` (``d`` = 4 for LiteMedSAM).

    Args:
        config: the ``SamVisionConfig`` of a TinyViT model (``encoder_type == "tiny_vit"``); its
            ``hidden_size`` is the last stage width and ``output_channels`` the neck width.
    """

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        spec = TinyViTSpec.from_dict(config.tiny_vit)
        self.spec = spec
        dims = spec.embed_dims
        self.patch_embed = PatchEmbed(dims[0], spec.patch_kernel)
        stages: list[nn.Module] = [
            ConvStage(dims[0], spec.depths[0], spec.mbconv_expand_ratio, dims[1], spec.merge_strides[0])
        ]
        stages += [AttentionStage(dims[i], spec, i) for i in range(1, len(dims))]
        self.layers = nn.ModuleList(stages)
        self.neck = SamVisionNeck(config)

    def get_input_embeddings(self) -> nn.Module:
        return self.patch_embed

    def train(self, mode: bool = True) -> TinyViTEncoder:
        """Set train / eval mode; BatchNorm layers stay in eval mode (frozen statistics, see module doc)."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> SamVisionEncoderOutput:
        """``(B, 3, S, S)`` -> ``SamVisionEncoderOutput(last_hidden_state=(B, C_out, S/d, S/d))``."""
        x = self.patch_embed(pixel_values)
        for stage in self.layers:
            x = stage(x)
        return SamVisionEncoderOutput(last_hidden_state=self.neck(x))


class TinyViTSamModel(SamModel):
    """``SamModel`` with a :class:`TinyViTEncoder` as ``vision_encoder`` (LiteMedSAM, MobileSAM).

    Built from a ``SamConfig`` whose ``vision_config`` has ``encoder_type = "tiny_vit"`` and a
    ``tiny_vit`` dict (:class:`TinyViTSpec`). Everything but the image encoder is ``SamModel``'s own code.
    """

    def __init__(self, config: SamConfig) -> None:
        SamPreTrainedModel.__init__(self, config)  # SamModel.__init__ would build a ViT encoder
        self.shared_image_embedding = SamPositionalEmbedding(config.vision_config)
        self.vision_encoder = TinyViTEncoder(config.vision_config)
        self.prompt_encoder = SamPromptEncoder(config)
        config.mask_decoder_config._attn_implementation = config._attn_implementation
        self.mask_decoder = SamMaskDecoder(config.mask_decoder_config)
        self.post_init()


def is_tiny_vit(config: SamConfig) -> bool:
    """True when ``config`` describes a TinyViT image encoder."""
    return getattr(config.vision_config, "encoder_type", "vit") == ENCODER_TYPE


def model_class(config: SamConfig) -> type[SamModel]:
    """``TinyViTSamModel`` for TinyViT configs, else ``SamModel``."""
    return TinyViTSamModel if is_tiny_vit(config) else SamModel
