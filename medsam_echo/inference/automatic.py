"""The automatic mode's cascade and confidence: masks from the image alone, and how far to trust them.

A start gives one rough mask per structure, with no input but the image:

- ``tokens``: the model's learned prompts (``prompts/learned.py``, runs trained with ``auto.mode: tokens``);
- ``view-prior``: the view prior's mean box of each structure, decoded once (``prompts/auto.py``).

:func:`cascade` then prompts the decoder with the box of each start mask and again with the box of its
answer (``n_iter`` passes), so the final masks come from the box-prompted decoder, the model's strongest
mode. :func:`confidence` scores each structure from the agreement of masks that should agree when the
model is right (each a Dice in [0, 1]):

- ``stability``: the final mask vs the masks of :data:`N_PERTURBED` boxes moved by
  :data:`PERTURB_FRACTION` of the box size (grown, shrunk, shifted), mean Dice;
- ``agreement``: the final mask vs the start mask (two different prompts, one answer);
- ``predicted_iou``: the decoder's own IoU head on the final mask.

``confidence`` = the lowest of the three: a structure is trusted only when the decoder rates its mask
well and the mask holds under other prompts. (Chosen on the camus224 validation subgroup among the mean,
the product and the minimum of the parts: case-level Spearman with the real Dice 0.50 for the minimum,
0.41 for the mean of stability and agreement; see the README's automatic-mode section.)

Boxes are taken from each mask's main region (:func:`main_region`): a stray blob far from the structure
would otherwise stretch the box, and the box-prompted pass would follow it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medsam_echo.prompts.boxes import boxes_of, clip_box, main_region  # noqa: F401 (re-exported)

PERTURB_FRACTION = 0.05  # of the box's width / height, at least 1 px
N_PERTURBED = 4
CONFIDENCE_PARTS = ("confidence", "stability", "agreement", "predicted_iou")

# decode(boxes (n, 4) XYXY px of the image) -> (masks (n, H, W) bool, predicted IoU (n,))
DecodeBoxes = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class Cascade:
    """What :func:`cascade` returns.

    Attributes:
        masks: ``(n, H, W)`` bool final masks.
        scores: ``(n,)`` predicted IoU of the final masks.
        boxes: ``(n, 4)`` XYXY px boxes that produced them.
    """

    masks: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray


def mask_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two bool masks ``(H, W)``; 1.0 when both are empty."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def middle_box(image_size: tuple[int, int]) -> np.ndarray:
    """The middle half of an ``(H, W)`` image, XYXY px: the box a structure gets when its start is empty."""
    h, w = image_size
    return np.array([w // 4, h // 4, (3 * w) // 4, (3 * h) // 4], np.int64)


def cascade(decode: DecodeBoxes, start: np.ndarray, fallback: np.ndarray, n_iter: int = 2) -> Cascade:
    """Box prompts from the ``start`` masks ``(n, H, W)``, then from the answer, ``n_iter`` decoder passes.

    Stops early when the boxes no longer change; ``fallback`` ``(n, 4)`` boxes stand in for empty masks.
    """
    boxes = boxes_of(start, fallback)
    masks, scores = decode(boxes)
    for _ in range(max(0, n_iter - 1)):
        new = boxes_of(masks, boxes)
        if np.array_equal(new, boxes):
            break
        boxes = new
        masks, scores = decode(boxes)
    return Cascade(masks, scores, boxes)


def perturbed_boxes(boxes: np.ndarray, image_size: tuple[int, int], fraction: float = PERTURB_FRACTION) -> np.ndarray:
    """``(N_PERTURBED, n, 4)``: each box grown, shrunk, shifted up-left and down-right by ``fraction``.

    Args:
        boxes: ``(n, 4)`` XYXY inclusive px.
        image_size: ``(H, W)``; the boxes stay inside it.
    """
    boxes = np.asarray(boxes, np.float64)
    d = np.maximum(1.0, fraction * (boxes[:, 2:] - boxes[:, :2] + 1))  # (n, 2): dx, dy
    grow = np.concatenate([-d, d], axis=1)
    shift = np.concatenate([d, d], axis=1)
    moved = [boxes + grow, boxes - grow, boxes - shift, boxes + shift]
    out = []
    for candidate in moved:
        fixed = np.where(candidate[:, 2:] < candidate[:, :2], boxes[:, 2:], candidate[:, 2:])  # never inverted
        out.append(np.stack([clip_box(np.rint(np.concatenate([c[:2], f])), image_size)
                             for c, f in zip(candidate, fixed, strict=True)]))
    return np.stack(out)


def confidence(decode: DecodeBoxes, final: Cascade, start: np.ndarray, image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per structure, the scores of the module docstring: ``{part: (n,) float}`` for :data:`CONFIDENCE_PARTS`.

    Args:
        decode: the box decoder the cascade used.
        final: the cascade's result.
        start: ``(n, H, W)`` the start masks.
        image_size: ``(H, W)``.
    """
    n = len(final.masks)
    stability = np.zeros(n)
    for boxes in perturbed_boxes(final.boxes, image_size):
        masks, _ = decode(boxes)
        stability += [mask_dice(final.masks[i], masks[i]) for i in range(n)]
    stability /= N_PERTURBED
    agreement = np.array([mask_dice(final.masks[i], start[i]) for i in range(n)])
    predicted_iou = np.clip(np.asarray(final.scores, np.float64), 0.0, 1.0)
    return {
        "confidence": np.minimum(np.minimum(stability, agreement), predicted_iou),
        "stability": stability,
        "agreement": agreement,
        "predicted_iou": predicted_iou,
    }


def label_confidence(name: str, per_structure: dict[str, float]) -> float:
    """The confidence of label ``name`` (``lv_endo``, ``myo``, ``la``) from per-structure values.

    A structure decoded directly gives its own; ``myo`` of an ``lv_epi`` model (epicardium minus cavity)
    and ``lv_endo`` of a ``myo`` + ``lv_epi`` one take the lower of the two they are made from.

    Raises:
        KeyError: nothing the label is made from was scored.
    """
    if name in per_structure:
        return float(per_structure[name])
    parts = [per_structure[s] for s in ("lv_epi", "lv_endo", "myo") if s in per_structure and s != name]
    if "lv_epi" not in per_structure or not parts:
        raise KeyError(f"no confidence for {name!r}: scored {sorted(per_structure)}")
    return float(min(parts))
