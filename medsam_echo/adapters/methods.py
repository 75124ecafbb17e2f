"""Fine-tuning methods: which SAM parts train, and which LoRA / adapter layers are added.

| method                 | image encoder            | prompt encoder | mask decoder                      | after      |
|------------------------|--------------------------|----------------|-----------------------------------|------------|
| ``decoder_only``       | frozen                   | frozen         | trained                           | HF notebook|
| ``medsam_full``        | trained                  | frozen         | trained                           | MedSAM     |
| ``lora_encoder``       | frozen + LoRA (qkv)      | frozen         | trained                           | SAMed      |
| ``lora_encoder_decoder``| frozen + LoRA (qkv)     | frozen         | frozen + LoRA on attention q/k/v/out | -       |
| ``adapter_encoder``    | frozen + bottleneck adapters | frozen     | trained                           | Med-SAM-Adapter |

``train_image_encoder`` / ``train_prompt_encoder`` / ``train_mask_decoder`` override a method's choice
for the base weights of each component (adapters always train).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from medsam_echo.adapters.bottleneck import insert_adapters
from medsam_echo.adapters.freezing import set_base_trainable
from medsam_echo.schema import build_dataclass


@dataclass(frozen=True)
class MethodSpec:
    """What a fine-tuning method trains and adds.

    Attributes:
        image_encoder, prompt_encoder, mask_decoder: whether the component's base weights train.
        lora_encoder: LoRA on the image encoder's linear layers (``MethodConfig.lora_targets``).
        lora_decoder: LoRA on the mask decoder's attention projections.
        adapters: bottleneck adapters in the image encoder's attention blocks.
    """

    image_encoder: bool
    prompt_encoder: bool
    mask_decoder: bool
    lora_encoder: bool = False
    lora_decoder: bool = False
    adapters: bool = False


METHODS: dict[str, MethodSpec] = {
    "decoder_only": MethodSpec(image_encoder=False, prompt_encoder=False, mask_decoder=True),
    "medsam_full": MethodSpec(image_encoder=True, prompt_encoder=False, mask_decoder=True),
    "lora_encoder": MethodSpec(image_encoder=False, prompt_encoder=False, mask_decoder=True, lora_encoder=True),
    "lora_encoder_decoder": MethodSpec(image_encoder=False, prompt_encoder=False, mask_decoder=False,
                                       lora_encoder=True, lora_decoder=True),
    "adapter_encoder": MethodSpec(image_encoder=False, prompt_encoder=False, mask_decoder=True, adapters=True),
}
# LoRA target name -> linear layer inside an encoder block, per image-encoder type, and the blocks' path.
ENCODER_LORA_TARGETS: dict[str, dict[str, str]] = {
    "vit": {"qkv": "attn.qkv", "proj": "attn.proj", "lin1": "mlp.lin1", "lin2": "mlp.lin2"},
    "tiny_vit": {"qkv": "attn.qkv", "proj": "attn.proj", "lin1": "mlp.fc1", "lin2": "mlp.fc2"},
}
ENCODER_BLOCKS = {"vit": r"vision_encoder\.layers\.\d+", "tiny_vit": r"vision_encoder\.layers\.\d+\.blocks\.\d+"}
DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
_DECODER_ATTENTION = (
    r"mask_decoder\.transformer\.(layers\.\d+\.(self_attn|cross_attn_token_to_image|cross_attn_image_to_token)"
    r"|final_attn_token_to_image)"
)


@dataclass
class MethodConfig:
    """A fine-tuning method and its hyper-parameters.

    Attributes:
        name: one of ``METHODS``.
        lora_rank: LoRA rank ``r``.
        lora_alpha: LoRA scaling numerator (update scaled by ``alpha / r``).
        lora_dropout: dropout on the LoRA input.
        lora_targets: image-encoder linear layers that get LoRA, from ``qkv``, ``proj``, ``lin1``, ``lin2``
            (the MLP's first and second layers: ``mlp.lin1/lin2`` in ViT, ``mlp.fc1/fc2`` in TinyViT).
        decoder_lora_targets: mask-decoder attention projections that get LoRA (``lora_encoder_decoder``).
        use_dora: weight-decomposed LoRA (DoRA) through peft's flag.
        adapter_ratio: bottleneck width as a fraction of the encoder width (``adapter_encoder``).
        adapter_mlp_scale: scale of the adapter parallel to the MLP.
        train_image_encoder: override whether the base image-encoder weights train (None: the method's).
        train_prompt_encoder: same for the prompt encoder.
        train_mask_decoder: same for the mask decoder.
    """

    name: str = "decoder_only"
    lora_rank: int = 4
    lora_alpha: float = 4.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["qkv"])
    decoder_lora_targets: list[str] = field(default_factory=lambda: list(DECODER_LORA_TARGETS))
    use_dora: bool = False
    adapter_ratio: float = 0.25
    adapter_mlp_scale: float = 0.5
    train_image_encoder: bool | None = None
    train_prompt_encoder: bool | None = None
    train_mask_decoder: bool | None = None

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ValueError(f"method.name: unknown method {self.name!r}; choose from {sorted(METHODS)}")
        unknown = sorted(set(self.lora_targets) - set(ENCODER_LORA_TARGETS["vit"]))
        if unknown:
            raise ValueError(f"method.lora_targets: unknown {unknown}; choose from {sorted(ENCODER_LORA_TARGETS['vit'])}")
        unknown = sorted(set(self.decoder_lora_targets) - set(DECODER_LORA_TARGETS))
        if unknown:
            raise ValueError(f"method.decoder_lora_targets: unknown {unknown}; choose from {list(DECODER_LORA_TARGETS)}")
        if self.lora_rank < 1:
            raise ValueError(f"method.lora_rank must be >= 1, got {self.lora_rank}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"method.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.adapter_ratio <= 0:
            raise ValueError(f"method.adapter_ratio must be > 0, got {self.adapter_ratio}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "method") -> MethodConfig:
        """Validate ``data`` (e.g. a run's ``method.json``): unknown keys and wrong types name the key."""
        return build_dataclass(cls, data, source)

    def trains(self) -> dict[str, bool]:
        """Whether the base weights of each component train, after overrides."""
        spec = METHODS[self.name]
        return {
            "image_encoder": spec.image_encoder if self.train_image_encoder is None else self.train_image_encoder,
            "prompt_encoder": spec.prompt_encoder if self.train_prompt_encoder is None else self.train_prompt_encoder,
            "mask_decoder": spec.mask_decoder if self.train_mask_decoder is None else self.train_mask_decoder,
        }

    def changes_encoder(self) -> bool:
        """True when the image embeddings change during training (after overrides): no embedding cache."""
        spec = METHODS[self.name]
        return self.trains()["image_encoder"] or spec.lora_encoder or spec.adapters

    def lora_target_regex(self, encoder: str = "vit") -> str | None:
        """Full-match regex over module names for peft's ``target_modules`` (None: no LoRA).

        Args:
            encoder: image-encoder type, ``"vit"`` or ``"tiny_vit"`` (its blocks and layer names differ).
        """
        spec = METHODS[self.name]
        parts = []
        if spec.lora_encoder:
            layers = ENCODER_LORA_TARGETS[encoder]
            names = "|".join(layers[t].replace(".", r"\.") for t in self.lora_targets)
            parts.append(rf"{ENCODER_BLOCKS[encoder]}\.({names})")
        if spec.lora_decoder:
            parts.append(rf"{_DECODER_ATTENTION}\.({'|'.join(self.decoder_lora_targets)})")
        return "|".join(f"({p})" for p in parts) or None


def encoder_type(model: nn.Module) -> str:
    """``"tiny_vit"`` or ``"vit"``: the image encoder of a ``SamModel``."""
    return getattr(model.config.vision_config, "encoder_type", "vit")


def apply_method(model: nn.Module, method: MethodConfig) -> nn.Module:
    """Prepare a loaded ``SamModel`` for fine-tuning with ``method``.

    Returns:
        The model to train: a peft ``PeftModel`` for LoRA methods, else ``model`` itself (modified in
        place). Exactly the parameters the method trains have ``requires_grad=True``.
    """
    model.requires_grad_(False)
    if METHODS[method.name].adapters:
        insert_adapters(model, ratio=method.adapter_ratio, mlp_scale=method.adapter_mlp_scale)
    target = method.lora_target_regex(encoder_type(model))
    if target is not None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=method.lora_rank, lora_alpha=method.lora_alpha, lora_dropout=method.lora_dropout,
            target_modules=target, use_dora=method.use_dora, bias="none",
        )
        model = get_peft_model(model, config)
    set_base_trainable(model, **method.trains())
    return model
