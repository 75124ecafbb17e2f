"""Several structures of one image through SamModel's decoder in one call, and back to one label map.

The image encoder runs once per image (``model.get_image_embeddings``); the prompts of all requested
structures then go through the prompt encoder and mask decoder together, as ``SamModel``'s "point batch"
dimension: ``input_boxes`` ``(B, n, 4)`` gives ``pred_masks`` ``(B, n, m, h, w)``. The decoder is
:mod:`medsam_echo.models.fast_decoder`, which computes what ``SamModel``'s does with the work shared by
the prompts of an image done once per image (``decoder="reference"`` calls ``SamModel`` itself).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from medsam_echo.data.sample import LABELS, STRUCTURES
from medsam_echo.models import fast_decoder
from medsam_echo.prompts.prompt_set import Prompts, to_model_inputs

if TYPE_CHECKING:
    from transformers import SamModel

    from medsam_echo.data.transforms import Geometry
    from medsam_echo.models.profile import PreprocessProfile

# predict(image (H, W), prompts in px of image) -> (n, H, W) bool masks, one per prompted structure
PredictFn = Callable[[np.ndarray, Prompts], np.ndarray]


def decode_candidates(
    model,
    image_embeddings: torch.Tensor,
    inputs: dict[str, torch.Tensor],
    *,
    input_masks: torch.Tensor | None = None,
    multimask_output: bool = False,
    decoder: str = "fast",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the ``n`` structure prompts of ``B`` images in one decoder call, all candidates kept.

    Args:
        model: a ``transformers.SamModel`` (or a peft model wrapping one).
        image_embeddings: ``(B, C, h', w')`` from ``model.get_image_embeddings``.
        inputs: ``to_model_inputs`` tensors in model-input px: ``input_boxes`` ``(B, n, 4)`` and / or
            ``input_points`` ``(B, n, k, 2)`` (x, y) with ``input_labels`` ``(B, n, k)``; may also hold
            ``input_masks`` (as :func:`~medsam_echo.prompts.policies.iterative_round` returns them).
        input_masks: ``(B, n, 1, h, w)`` previous low-res logits (iterative prompting), or ``None``.
            ``SamModel`` adds a mask prompt to the image embedding before repeating it per prompt, so
            with masks its ``n`` prompts are folded into the batch instead (still one call).
        multimask_output: SAM's 3 candidate masks per prompt instead of 1.
        decoder: ``"fast"`` (:func:`medsam_echo.models.fast_decoder.decode`, the same outputs within float
            rounding; a model it does not support falls back to ``SamModel``) or ``"reference"``
            (``SamModel``'s own forward).

    Returns:
        ``logits`` ``(B, n, m, h, w)`` (low-res, ``h = 4 h'``, ``m`` = 3 or 1) and ``iou`` ``(B, n, m)``.
    """
    inputs = dict(inputs)
    input_masks = inputs.pop("input_masks", input_masks)
    reference = inputs.get("input_boxes", inputs.get("input_points"))
    if reference is None:
        raise ValueError("inputs need input_boxes or input_points")
    batch, n = reference.shape[:2]
    if input_masks is not None and input_masks.shape[:3] != (batch, n, 1):
        raise ValueError(f"input_masks must be (B={batch}, n={n}, 1, h, w), got {tuple(input_masks.shape)}")
    if decoder not in ("fast", "reference"):
        raise ValueError(f"decoder must be 'fast' or 'reference', got {decoder!r}")
    if decoder == "fast" and fast_decoder.supports(model):
        return fast_decoder.decode(model, image_embeddings, input_masks=input_masks,
                                   multimask_output=multimask_output, **inputs)
    if input_masks is None:
        out = model(image_embeddings=image_embeddings, multimask_output=multimask_output, **inputs)
    else:
        flat = {k: v.reshape(batch * n, 1, *v.shape[2:]) for k, v in inputs.items()}
        out = model(
            image_embeddings=image_embeddings.repeat_interleave(n, dim=0),
            input_masks=input_masks.reshape(batch * n, *input_masks.shape[2:]),
            multimask_output=multimask_output,
            **flat,
        )
    masks = out.pred_masks.reshape(batch, n, *out.pred_masks.shape[2:])
    return masks, out.iou_scores.reshape(batch, n, -1)


def select_best(masks: torch.Tensor, iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per prompt, the candidate with the best predicted IoU: ``(..., m, h, w)``, ``(..., m)`` ->
    ``(..., h, w)``, ``(...)``."""
    best = iou.argmax(dim=-1, keepdim=True)
    logits = torch.take_along_dim(masks, best[..., None, None], dim=-3).squeeze(-3)
    return logits, torch.take_along_dim(iou, best, dim=-1).squeeze(-1)


def combine_structures(logits: np.ndarray | torch.Tensor, structures: Sequence[str]) -> np.ndarray:
    """One CAMUS label map from per-structure logits.

    The rule: a structure claims a pixel where its logit is > 0 (probability > 0.5) and larger than the
    logits of the structures it competes with; otherwise the pixel is background.

    - Without ``lv_epi``: ``lv_endo`` (1), ``myo`` (2) and ``la`` (3) compete directly (argmax against
      background).
    - With ``lv_epi`` (SAM-family models segment filled regions; CAMUS defines the myocardium as the
      epicardium minus the cavity):

      1. The LV is the predicted epicardium grown to contain the predicted cavity (and ring, when
         ``myo`` is prompted): its logit is the largest of ``lv_epi``, ``lv_endo`` and ``myo``. A cavity
         pixel outside ``lv_epi`` therefore stays cavity instead of silently becoming background; on
         CAMUS the myocardium is open at the mitral plane, where cavity and epicardium share a border
         and the two predictions often disagree by a pixel or two.
      2. The LV and ``la`` compete for pixels (argmax against background), so the atrium wins an
         overlap only where its logit is the larger.
      3. The LV pixels are split: cavity (1) where ``lv_endo``'s logit is > 0 (and above ``myo``'s if
         given), myocardium (2) elsewhere; without ``lv_endo``, cavity where ``myo``'s logit is <= 0.

      With ``lv_endo``, ``lv_epi`` and ``la`` prompted (masks ``logit > 0``), wherever ``la`` does not
      win: cavity ``= lv_endo``, myocardium ``= lv_epi & ~lv_endo``; so every pixel some structure
      claims keeps a label. That the cavity is surrounded by myocardium is not enforced (a cavity
      poking out of the epicardium borders the background).

    Args:
        logits: ``(n, H, W)`` logits, row ``i`` for ``structures[i]``.
        structures: unique names from ``STRUCTURES``; ``lv_epi`` needs ``lv_endo`` or ``myo`` with it.

    Returns:
        ``(H, W)`` uint8 label map with ``LABELS`` values.
    """
    scores = (
        logits.detach().float().cpu().numpy()
        if isinstance(logits, torch.Tensor)
        else np.asarray(logits, float)
    )
    if scores.ndim != 3 or scores.shape[0] != len(structures) or len(set(structures)) != len(structures):
        raise ValueError(f"logits {scores.shape} must be (n, H, W) for {len(structures)} unique structures")
    unknown = sorted(set(structures) - set(STRUCTURES))
    if unknown:
        raise KeyError(f"unknown structures {unknown}; choose from {sorted(STRUCTURES)}")
    by_name = dict(zip(structures, scores, strict=True))
    absent = np.full(scores.shape[1:], -np.inf)
    endo, myo, la = (by_name.get(s, absent) for s in ("lv_endo", "myo", "la"))
    if "lv_epi" not in by_name:
        stacked = np.stack([np.zeros_like(endo), endo, myo, la])
        values = np.array([LABELS["background"], LABELS["lv_endo"], LABELS["myo"], LABELS["la"]], np.uint8)
        return values[np.argmax(stacked, axis=0)]
    if "lv_endo" not in by_name and "myo" not in by_name:
        raise ValueError("lv_epi alone cannot be split into cavity and myocardium: add lv_endo or myo")
    lv = np.maximum(by_name["lv_epi"], np.maximum(endo, myo))  # the epicardium grown to hold its parts
    outer = np.argmax(np.stack([np.zeros_like(la), lv, la]), axis=0)
    cavity = (endo > 0) & (endo > myo) if "lv_endo" in by_name else myo <= 0
    out = np.zeros(scores.shape[1:], np.uint8)
    out[outer == 2] = LABELS["la"]
    out[outer == 1] = LABELS["myo"]
    out[(outer == 1) & cavity] = LABELS["lv_endo"]
    return out


class SamForward:
    """The SAM forward path for images: preprocess -> encode -> decode, one place for every caller.

    The predictor's engine, ``make_predict_fn`` (prompt sweeps, automatic prompts) and the notebooks run
    images through it; the training step and validation (``training.model.PromptedSam``) run the same
    decoder call, :func:`decode_candidates`, on batches of preprocessed images or cached embeddings.

    Args:
        model: a ``SamModel`` (ViT or TinyViT; plain, peft-wrapped or with adapters), its device and
            dtype used for every tensor.
        profile: the preprocessing its weights expect.
    """

    def __init__(self, model: SamModel, profile: PreprocessProfile) -> None:
        from medsam_echo.models.fast_encoder import InferenceEncoder

        self.model = model.eval()
        self.profile = profile
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.encoder = InferenceEncoder(model.vision_encoder)  # BatchNorm folded, channels-last

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> tuple[torch.Tensor, Geometry]:
        """``(H, W)`` / ``(H, W, 3)`` image -> ``(1, C, h', w')`` embeddings and the image's geometry."""
        from medsam_echo.data.transforms import preprocess

        ready = preprocess(image, self.profile)
        pixels = torch.from_numpy(ready.pixel_values)[None].to(self.device, self.dtype)
        return self.encoder(pixels).to(self.dtype), ready.geometry

    @torch.inference_mode()
    def decode(self, embeddings: torch.Tensor, geometry: Geometry, prompts: Prompts, *,
               input_masks: torch.Tensor | None = None, multimask: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode ``n`` prompts (px of the original image) in one call.

        Returns:
            low-res logits ``(n, m, h, w)`` and predicted IoU ``(n, m)`` (``m`` = 3 with ``multimask``).
        """
        inputs = to_model_inputs([prompts.to_input(geometry)], self.device)
        low_res, iou = decode_candidates(self.model, embeddings, inputs, input_masks=input_masks,
                                         multimask_output=multimask)
        return low_res[0], iou[0]


def make_predict_fn(
    model: SamModel, profile: PreprocessProfile, *, multimask_output: bool = False
) -> PredictFn:
    """A model-agnostic ``predict(image, prompts) -> masks`` for a ``SamModel`` and its profile.

    The returned function runs :class:`SamForward` and returns ``(n, H, W)`` bool masks on the original
    grid (per prompt the candidate with the best predicted IoU). The image embedding of the last image is
    cached, so repeated prompts on one image (click loops, jitter sweeps) run the encoder once.
    """
    forward = SamForward(model, profile)
    cache: dict[str, tuple] = {}

    def embed(image: np.ndarray):
        key = hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).hexdigest()
        if key not in cache:
            cache.clear()
            cache[key] = forward.encode(image)
        return cache[key]

    def predict(image: np.ndarray, prompts: Prompts) -> np.ndarray:
        embeddings, geometry = embed(np.asarray(image))
        low_res, iou = forward.decode(embeddings, geometry, prompts, multimask=multimask_output)
        best, _ = select_best(low_res, iou)
        return geometry.to_original(best.float()).cpu().numpy() > 0

    return predict
