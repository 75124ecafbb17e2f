"""Named SAM architectures and known checkpoints.

``ARCHITECTURES`` holds the released image-encoder sizes (ViT-B / L / H at 1024 px, as in
segment-anything's ``build_sam.py``) and ``tiny``, a randomly initialised model small enough to train on a
2-core CPU in minutes (quickstart, tests). ``build_sam("vit_b", device="meta")`` gives the exact
ViT-B layout without allocating 375 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import SamConfig, SamModel

from medsam_echo.models.tinyvit import ENCODER_TYPE, TinyViTSpec, model_class

# segment-anything's two-way blocks use nn.LayerNorm's default eps; transformers' SamMaskDecoderConfig
# defaults to 1e-6, which shifts the logits of real SAM / LiteMedSAM weights by about 0.01.
DECODER_LAYER_NORM_EPS = 1e-5

@dataclass(frozen=True)
class VitArchitecture:
    """A ViT image encoder and its decoder (segment-anything's ``build_sam.py`` arguments).

    Attributes:
        width, depth, heads: image-encoder width, blocks and attention heads.
        global_attn: blocks with global attention (the others attend in windows).
        image_size, patch, window: input side, patch side and window side in px / tokens.
        decoder_width: prompt-encoder and mask-decoder width.
        neck: image-embedding channels.
    """

    width: int
    depth: int
    heads: int
    global_attn: tuple[int, ...]
    image_size: int
    patch: int
    window: int
    decoder_width: int
    neck: int


ARCHITECTURES: dict[str, VitArchitecture] = {
    "vit_b": VitArchitecture(768, 12, 12, (2, 5, 8, 11), 1024, 16, 14, 256, 256),
    "vit_l": VitArchitecture(1024, 24, 16, (5, 11, 17, 23), 1024, 16, 14, 256, 256),
    "vit_h": VitArchitecture(1280, 32, 16, (7, 15, 23, 31), 1024, 16, 14, 256, 256),
    "tiny": VitArchitecture(64, 4, 4, (1, 3), 128, 8, 4, 64, 64),
    "small": VitArchitecture(256, 6, 8, (2, 5), 256, 8, 8, 256, 256),  # CPU benchmarks: 32 x 32 tokens
}

# TinyViT image encoders (SAM's prompt encoder and decoder): LiteMedSAM and MobileSAM as released, and a
# tiny one for tests (64 px input, 16 x 16 embeddings, decoder width 32).
@dataclass(frozen=True)
class TinyViTArchitecture:
    """A TinyViT image encoder and the width of SAM's prompt encoder and decoder behind it."""

    encoder: TinyViTSpec
    decoder_width: int = 256


TINY_VIT_ARCHITECTURES: dict[str, TinyViTArchitecture] = {
    "litemedsam": TinyViTArchitecture(TinyViTSpec()),
    "mobilesam": TinyViTArchitecture(TinyViTSpec(patch_kernel=3, image_size=1024)),
    "tinyvit_tiny": TinyViTArchitecture(
        TinyViTSpec(embed_dims=(16, 32, 40, 64), depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4),
                    window_sizes=(4, 4, 4, 4), image_size=64), decoder_width=32,
    ),
}

# Hub ids users pass, and the preprocessing their weights expect.
KNOWN_HUB_MODELS: dict[str, str] = {
    "facebook/sam-vit-base": "sam",
    "facebook/sam-vit-large": "sam",
    "facebook/sam-vit-huge": "sam",
    "wanglab/medsam-vit-base": "medsam",
}


def sam_config(name: str) -> SamConfig:
    """The ``SamConfig`` of a named architecture (see ``ARCHITECTURES`` and ``TINY_VIT_ARCHITECTURES``)."""
    if name in TINY_VIT_ARCHITECTURES:
        arch = TINY_VIT_ARCHITECTURES[name]
        return tiny_vit_sam_config(arch.encoder, neck=arch.decoder_width)
    if name not in ARCHITECTURES:
        known = sorted(ARCHITECTURES) + sorted(TINY_VIT_ARCHITECTURES)
        raise KeyError(f"unknown architecture {name!r}; choose from {known}")
    a = ARCHITECTURES[name]
    dec = a.decoder_width
    vision = dict(
        hidden_size=a.width, num_hidden_layers=a.depth, num_attention_heads=a.heads,
        global_attn_indexes=list(a.global_attn), image_size=a.image_size, patch_size=a.patch,
        window_size=a.window, output_channels=a.neck, num_pos_feats=dec // 2, mlp_dim=4 * a.width,
    )
    prompt = dict(hidden_size=dec, image_size=a.image_size, patch_size=a.patch)
    decoder = dict(hidden_size=dec, mlp_dim=8 * dec, iou_head_hidden_dim=dec, layer_norm_eps=DECODER_LAYER_NORM_EPS)
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def tiny_vit_sam_config(
    spec: TinyViTSpec, *, decoder: dict | None = None, prompt: dict | None = None, neck: int = 256
) -> SamConfig:
    """The ``SamConfig`` of a TinyViT SAM; ``decoder`` / ``prompt`` override fields (default SAM's)."""
    dec = {"hidden_size": neck, "mlp_dim": 8 * neck, "iou_head_hidden_dim": neck, "layer_norm_eps": DECODER_LAYER_NORM_EPS, **(decoder or {})}
    patch = spec.downsampling
    vision = dict(
        hidden_size=spec.embed_dims[-1], image_size=spec.image_size, patch_size=patch, output_channels=neck,
        num_pos_feats=dec["hidden_size"] // 2, num_hidden_layers=sum(spec.depths), use_abs_pos=False,
        use_rel_pos=False, encoder_type=ENCODER_TYPE, tiny_vit=spec.to_dict(),
    )
    prompt = {"hidden_size": dec["hidden_size"], **(prompt or {}), "image_size": spec.image_size, "patch_size": patch}
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=dec)


def input_size(name: str) -> int:
    """Input side in px of a named architecture or shipped model (``"litemedsam"``: 256)."""
    if name in TINY_VIT_ARCHITECTURES:
        return TINY_VIT_ARCHITECTURES[name].encoder.image_size
    if name in ARCHITECTURES:
        return ARCHITECTURES[name].image_size
    raise KeyError(f"unknown architecture {name!r}; choose from {sorted(ARCHITECTURES) + sorted(TINY_VIT_ARCHITECTURES)}")


def model_source(name: str) -> str:
    """The model source of a bench or test model name: shipped weights (``litemedsam``) load as they are,
    other names are built with random weights (``scratch:<name>``)."""
    from medsam_echo.models.assets import SHIPPED

    return name if name in SHIPPED else f"scratch:{name}"


def build_sam(
    name: str, *, seed: int = 0, device: str | torch.device = "cpu", attn_implementation: str = "sdpa"
) -> SamModel:
    """A randomly initialised ``SamModel`` of a named architecture (``device="meta"``: shapes only).

    ``attn_implementation`` (``"sdpa"`` or ``"eager"``) is set before construction: ``SamModel`` picks its
    image-encoder attention class when it is built.
    """
    config = sam_config(name)
    config._attn_implementation = attn_implementation
    cls = model_class(config)
    if str(device) == "meta":
        with torch.device("meta"):
            return cls(config)
    torch.manual_seed(seed)
    model = cls(config)
    _init_like_segment_anything(model)
    return model.to(device)


def _init_like_segment_anything(model: SamModel) -> None:
    """PyTorch's default initialisation for every layer, as segment-anything trains from.

    transformers' own initialisation is meant to be overwritten by pretrained weights: a model trained
    from scratch (the quickstart) would start with a dead image encoder (embeddings ~1e-20) and
    prompt positions encoded at useless frequencies.
    """
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Embedding,
                               torch.nn.LayerNorm)):
            module.reset_parameters()
    # segment-anything's PositionEmbeddingRandom draws its Fourier matrix with scale 1; transformers uses
    # std = hidden_size / 2 (384 for ViT-B), frequencies so high that prompt coordinates become noise.
    with torch.no_grad():
        model.shared_image_embedding.positional_embedding.normal_(0.0, 1.0)
