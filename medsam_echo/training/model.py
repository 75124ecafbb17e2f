"""The model being trained: base checkpoint + method, wrapped so one ``forward`` does a whole step.

``PromptedSam.forward`` runs the image encoder once (or takes cached embeddings), then the decoder for
every refinement round, so Accelerate / DDP see a single forward per step whatever the prompt policy. The
decoder call is the one every stage makes (``prompts.decode.decode_candidates``); images are
preprocessed by the same ``data.transforms.preprocess`` as ``prompts.decode.SamForward`` uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from medsam_echo.adapters.freezing import format_summary, parameter_summary
from medsam_echo.adapters.methods import MethodConfig, apply_method
from medsam_echo.models.loader import load_sam
from medsam_echo.models.profile import PreprocessProfile, get_profile
from medsam_echo.models.registry import build_sam
from medsam_echo.prompts.auto import ViewPrior
from medsam_echo.prompts.decode import decode_candidates
from medsam_echo.prompts.learned import LearnedPrompts, decode_learned

SCRATCH = "scratch:"


@dataclass
class BuiltModel:
    """The prepared model and where its base weights came from."""

    model: nn.Module
    profile: PreprocessProfile
    base_model: nn.Module
    from_scratch: bool
    view_prior: ViewPrior | None = None
    learned: LearnedPrompts | None = None


def build_training_model(source: str, method: MethodConfig, *, profile: str | None, seed: int,
                         attn_implementation: str = "sdpa", gradient_checkpointing: bool = False,
                         compile_encoder: bool = False) -> BuiltModel:
    """Load ``source`` (or build ``scratch:<architecture>``) and apply ``method``.

    ``compile_encoder`` compiles the image encoder in place (``nn.Module.compile``), so parameter names,
    checkpoints and peft wrapping are unchanged.
    """
    if source.startswith(SCRATCH):
        base = build_sam(source[len(SCRATCH):], seed=seed, attn_implementation=attn_implementation)
        chosen = get_profile(profile or "sam", base.config.vision_config.image_size)
        scratch = True
    else:
        loaded = load_sam(source, profile=profile, attn_implementation=attn_implementation)
        base, chosen, scratch = loaded.model, loaded.profile, False
    base.train()
    if gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = apply_method(base, method)
    if compile_encoder:
        base.vision_encoder.compile()
    return BuiltModel(model, chosen, base, scratch)


def make_learned_prompts(auto, structures: Sequence[str], built: BuiltModel, image_shape: tuple[int, int],
                         seed: int = 0) -> LearnedPrompts | None:
    """The automatic mode's learned prompts for ``auto.mode: tokens`` (``None`` otherwise).

    Each structure starts from the embedding of its mean training box (the view prior's boxes averaged over
    the views), placed on an image of ``image_shape`` ``(H, W)`` px as the profile resizes it; without a
    prior (images with no view) from the middle half of the image.
    """
    if auto.mode != "tokens":
        return None
    sam = built.base_model
    learned = LearnedPrompts(structures, auto.n_tokens, sam.config.mask_decoder_config.hidden_size)
    prior = built.view_prior.boxes if built.view_prior is not None else {}
    height, width = image_shape
    side = built.profile.image_size
    if built.profile.resize == "stretch":
        size = np.array([side, side, side, side], np.float64)
    else:
        scale = side / max(height, width)
        size = np.array([width, height, width, height], np.float64) * scale
    boxes = []
    for name in structures:
        known = [per[name] for per in prior.values() if name in per]
        fractions = np.mean(known, axis=0) if known else np.array([0.25, 0.25, 0.75, 0.75])
        boxes.append(fractions * size)
    learned.init_from_boxes(sam, torch.tensor(np.stack(boxes), dtype=torch.float32), seed=seed)
    return learned


def set_attention(model: nn.Module, implementation: str) -> None:
    """Switch an already built ``SamModel`` to ``"sdpa"`` or ``"eager"`` attention, in place (the
    benchmark compares both on one model; new models get it at construction, see ``build_sam``).

    ``SamModel`` picks its image-encoder attention class from the config when it is constructed, so
    changing the config afterwards leaves the encoder as it was; the two classes share their parameters
    and differ only in ``forward``, so the modules are re-classed. The mask decoder reads the config at
    every call.
    """
    from transformers.models.sam.modeling_sam import SAM_VISION_ATTENTION_CLASSES

    if implementation not in SAM_VISION_ATTENTION_CLASSES:
        raise ValueError(f"model.attn_implementation: {implementation!r} is not one of "
                         f"{sorted(SAM_VISION_ATTENTION_CLASSES)}")
    model.config._attn_implementation = implementation
    if getattr(model.config.vision_config, "encoder_type", "vit") != "vit":
        return  # TinyViT's window attention is our own module, with one implementation
    for layer in model.vision_encoder.layers:
        layer.attn.__class__ = SAM_VISION_ATTENTION_CLASSES[implementation]


def encoder_is_cacheable(method: MethodConfig) -> bool:
    """True when image embeddings never change during training (frozen encoder, no adapter or LoRA in it)."""
    return not method.changes_encoder()


def describe(model: nn.Module) -> str:
    """The parameter table printed at the start of a run."""
    return format_summary(parameter_summary(model))


class PromptedSam(nn.Module):
    """``SamModel`` (possibly peft-wrapped) with the training step's forward.

    Args:
        model: the prepared model from :func:`build_training_model`.
        learned: the automatic mode's learned prompts (``auto.mode: tokens``), trained with the decoder.
    """

    def __init__(self, model: nn.Module, learned: LearnedPrompts | None = None) -> None:
        super().__init__()
        self.model = model
        self.learned = learned

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B, C, S/16, S/16)`` image embeddings (with gradients when they train)."""
        return self.model.vision_encoder(pixel_values)[0]

    def forward(
        self,
        prompts: dict[str, torch.Tensor],
        *,
        pixel_values: torch.Tensor | None = None,
        image_embeddings: torch.Tensor | None = None,
        multimask_output: bool = False,
        refine: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None,
        rounds: int = 0,
        learned_structures: Sequence[str] = (),
        plan=None,
    ) -> tuple[torch.Tensor, ...] | dict[str, list]:
        """One training forward.

        Args:
            prompts: ``SamModel`` prompt tensors in model-input px (``input_boxes`` ``(B, n, 4)``, ...).
            pixel_values: ``(B, 3, S, S)``, or ``None`` with ``image_embeddings`` given.
            image_embeddings: ``(B, C, h, w)`` cached embeddings.
            multimask_output: 3 candidates per prompt instead of 1 (final round).
            refine: maps the previous round's low-res logits ``(B, n, h, w)`` to the next prompts
                (with ``input_masks``); used for ``rounds`` extra rounds, run without gradients.
            rounds: number of refinement rounds before the supervised one.
            learned_structures: also decode these structures from the learned prompts alone (no prompt).
            plan: a ``training.batches.RobustPlan`` (the ``robust`` policy); ``prompts`` is then unused.

        Returns:
            ``(logits (B, n, m, h, w), iou (B, n, m))`` of the final round, followed with
            ``learned_structures`` by the learned-prompt ``(logits (B, n', 1, h, w), iou (B, n', 1))``.
            With ``plan``: :meth:`robust_forward`'s dict.
        """
        if image_embeddings is None:
            image_embeddings = self.encode(pixel_values)
        if plan is not None:
            return self.robust_forward(image_embeddings, plan, learned_structures)
        for _ in range(rounds):
            with torch.no_grad():
                logits, _ = decode_candidates(self.model, image_embeddings.detach(), prompts, multimask_output=False)
            prompts = refine(logits[:, :, 0])
        out = decode_candidates(self.model, image_embeddings, prompts, multimask_output=multimask_output)
        if not learned_structures:
            return out
        if self.learned is None:
            raise RuntimeError("this model has no learned prompts (auto.mode: tokens)")
        return (*out, *decode_learned(self.model, self.learned, image_embeddings, learned_structures))

    def robust_forward(self, image_embeddings: torch.Tensor, plan, learned_structures: Sequence[str]) -> dict[str, list]:
        """The ``robust`` policy's step on ``(B, C, h', w')`` embeddings.

        Returns:
            ``{"learned": [(logits, iou)] or [], "box": [(logits, iou)], "clicks": [(logits, iou), ...]}``,
            each ``logits`` ``(B, n, 1, h, w)`` and ``iou`` ``(B, n, 1)``: the learned-prompt masks (their
            detached boxes replace the ``auto`` structures' boxes), the box pass, then one entry per
            supervised click round (after ``plan.free_rounds`` unsupervised ones).
        """
        out: dict[str, list] = {"learned": [], "box": [], "clicks": []}
        if learned_structures:
            if self.learned is None:
                raise RuntimeError("this model has no learned prompts (auto.mode: tokens)")
            out["learned"].append(decode_learned(self.model, self.learned, image_embeddings, learned_structures))
            inputs = plan.with_auto_boxes(out["learned"][0][0][:, :, 0])
        else:
            inputs = plan.inputs
        logits, iou = decode_candidates(self.model, image_embeddings, inputs, multimask_output=False)
        out["box"].append((logits, iou))
        if plan.click_rounds == 0:
            return out
        for _ in range(plan.free_rounds):
            with torch.no_grad():
                logits, iou = decode_candidates(self.model, image_embeddings.detach(), plan.click(logits[:, :, 0]))
        for _ in range(plan.click_rounds):
            logits, iou = decode_candidates(self.model, image_embeddings, plan.click(logits[:, :, 0]))
            out["clicks"].append((logits, iou))
        return out
