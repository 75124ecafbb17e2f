"""Training prompt policies, chosen by name in a config.

A policy turns a label map and the structures to segment into one prompt per structure:

- ``box``: the structure's box, jittered (MedSAM, the HF notebook).
- ``points``: ``n_pos`` positive and ``n_neg`` negative points (Medical-SAM-Adapter, SAMUS: one click).
- ``box_points``: both.
- ``mix``: one of the above drawn per batch with the ``mix`` weights. Per batch, not per image, because
  ``SamModel`` takes boxes for every image of a batch or for none.
- ``iterative``: SAM / SAM-Med2D training: start with ``iterative_start`` prompts, then run
  ``iterative_rounds`` extra rounds, each adding one click in the error region of the previous
  prediction and feeding that prediction's low-res logits back as the mask prompt
  (:func:`iterative_round`).
- ``robust``: the prompts of real use, drawn per structure (``box_mix`` weights): a ``tight`` box (outward
  U{0..``jitter_amount``} px), a ``loose`` one (each side outward by U[0, ``loose_fraction``] of the box
  size), a ``shifted`` one (moved by up to ``shift_fraction`` of its size, sides also moved in or out by
  up to half that: boxes too small as well as too large), and ``auto``: the box of the model's own
  learned-prompt mask, the automatic mode's start (substituted in the training step, which has that
  mask; :func:`box_of_logits`). With ``click_rounds`` > 0 the step then adds error-region clicks with
  the previous logits fed back (:func:`iterative_round`), after up to ``click_free_rounds`` unsupervised
  ones, so the point and mask paths learn the clinician's correction loop.

Adding a prompt kind is one function and one entry in ``_KINDS``.

A training step with the ``iterative`` policy (``gt`` ``(B, n, S, S)`` from the preprocessed labels)::

    prompts, inputs = make_prompt_batch(labels, structures, rng, cfg, geometries=geometries)
    logits, iou = select_best(*decode_candidates(model, embeddings, inputs))
    loss = criterion(logits, gt)
    for _ in range(cfg.iterative_rounds):
        prompts, inputs = iterative_round(prompts, logits, gt, rng)
        logits, iou = select_best(*decode_candidates(model, embeddings, inputs))  # uses inputs["input_masks"]
        loss = loss + criterion(logits, gt)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from numpy.random import Generator

from medsam_echo.data.sample import STRUCTURES, structure_mask
from medsam_echo.prompts.boxes import JITTER_MODES, box_from_mask, clip_box, jitter_box
from medsam_echo.prompts.clicks import next_click
from medsam_echo.prompts.points import most_interior_point, neighbour_mask, sample_points
from medsam_echo.prompts.prompt_set import Prompts, to_model_inputs

POLICIES = ("box", "points", "box_points", "mix", "iterative", "robust")
BOX_KINDS = ("tight", "loose", "shifted", "auto")  # the ``robust`` policy's boxes (module docstring)
_FIELD_TYPES = {"str": str, "int": int, "float": (int, float), "dict[str, float]": dict}
NEGATIVE_SOURCES = ("neighbours", "background")


@dataclass
class PromptPolicyConfig:
    """How training prompts are simulated (one group of an experiment config).

    Attributes:
        policy: one of ``POLICIES``.
        jitter_mode: ``"outward"``, ``"relative"`` or ``"mm"`` (see ``jitter_box``).
        jitter_amount: px (outward), fraction of the box size (relative) or mm; in px of the label map
            given, so MedSAM's 20 px at 1024 is about 4 px on a 224 px image.
        n_pos: positive points per structure for point policies.
        n_neg: negative points per structure for point policies.
        negatives: ``"neighbours"`` (the other labelled structures; background if there are none) or
            ``"background"`` (anywhere outside the structure).
        margin_px: positives are drawn more than this many px inside the boundary.
        mix: weights of ``box`` / ``points`` / ``box_points`` for the ``mix`` policy.
        iterative_start: the first-round kind for ``iterative`` (``box``, ``points``, ``box_points``, ``mix``).
        iterative_rounds: extra click rounds for ``iterative`` (SAM: 8 in all, SAM-Med2D: 8, MedSAM2: 7).
        box_mix: weights of the ``robust`` policy's box kinds (``BOX_KINDS``), drawn per structure.
        loose_fraction: ``loose`` boxes: each side outward by U[0, this] of the box width / height.
        shift_fraction: ``shifted`` boxes: moved by U[-this, this] of the box size in x and y.
        click_rounds: supervised correction-click rounds per step after the box (``robust``), each a click
            in the largest error region with the previous logits as the mask prompt.
        click_free_rounds: up to this many (U{0..n}) unsupervised click rounds before those, so later
            clicks of a long correction are trained without paying their backward pass.
    """

    policy: str = "box"
    jitter_mode: str = "outward"
    jitter_amount: float = 5.0
    n_pos: int = 1
    n_neg: int = 0
    negatives: str = "neighbours"
    margin_px: float = 0.0
    mix: dict[str, float] = field(default_factory=lambda: {"box": 1.0, "points": 1.0, "box_points": 1.0})
    iterative_start: str = "box"
    iterative_rounds: int = 7
    box_mix: dict[str, float] = field(
        default_factory=lambda: {"tight": 1.0, "loose": 1.0, "shifted": 1.0, "auto": 1.0}
    )
    loose_fraction: float = 0.3
    shift_fraction: float = 0.15
    click_rounds: int = 0
    click_free_rounds: int = 0

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"PromptPolicyConfig: {message}")

        for f in fields(self):
            value, expected = getattr(self, f.name), _FIELD_TYPES[f.type]
            ok = isinstance(value, expected) and not isinstance(value, bool)
            check(ok, f"{f.name} must be {f.type}, got {type(value).__name__} {value!r}")
        check(self.policy in POLICIES, f"policy {self.policy!r} not in {POLICIES}")
        check(self.jitter_mode in JITTER_MODES, f"jitter_mode {self.jitter_mode!r} not in {JITTER_MODES}")
        check(self.jitter_amount >= 0, f"jitter_amount must be >= 0, got {self.jitter_amount}")
        check(
            self.jitter_mode != "relative" or self.jitter_amount < 0.5, "relative jitter_amount must be < 0.5"
        )
        check(
            self.n_pos >= 0 and self.n_neg >= 0, f"n_pos, n_neg must be >= 0, got {self.n_pos}, {self.n_neg}"
        )
        check(self.negatives in NEGATIVE_SOURCES, f"negatives {self.negatives!r} not in {NEGATIVE_SOURCES}")
        check(self.margin_px >= 0, f"margin_px must be >= 0, got {self.margin_px}")
        check(
            set(self.mix) <= set(_KINDS), f"mix keys {sorted(self.mix)} must be a subset of {sorted(_KINDS)}"
        )
        check(
            all(w >= 0 for w in self.mix.values()) and sum(self.mix.values()) > 0,
            "mix weights must be >= 0, sum > 0",
        )
        check(self.iterative_start in (*_KINDS, "mix"), f"iterative_start {self.iterative_start!r} invalid")
        check(self.iterative_rounds >= 0, f"iterative_rounds must be >= 0, got {self.iterative_rounds}")
        check(set(self.box_mix) <= set(BOX_KINDS), f"box_mix keys {sorted(self.box_mix)} must be a subset of {BOX_KINDS}")
        check(
            all(w >= 0 for w in self.box_mix.values()) and sum(self.box_mix.values()) > 0,
            "box_mix weights must be >= 0, sum > 0",
        )
        check(0 <= self.loose_fraction < 1, f"loose_fraction must be in [0, 1), got {self.loose_fraction}")
        check(0 <= self.shift_fraction < 0.5, f"shift_fraction must be in [0, 0.5), got {self.shift_fraction}")
        check(self.click_rounds >= 0, f"click_rounds must be >= 0, got {self.click_rounds}")
        check(self.click_free_rounds >= 0, f"click_free_rounds must be >= 0, got {self.click_free_rounds}")
        check(
            self.click_free_rounds == 0 or self.click_rounds > 0,
            "click_free_rounds needs click_rounds > 0 (the free rounds lead up to a supervised one)",
        )
        starts_with_points = self.policy == "iterative" and self.iterative_start != "box"
        uses_points = self.policy in ("points", "box_points", "mix") or starts_with_points
        check(not uses_points or self.n_pos + self.n_neg > 0, "point policies need n_pos + n_neg > 0")

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "prompts config") -> PromptPolicyConfig:
        """Build from a config mapping; unknown keys are an error naming ``source``."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{source}: unknown prompt-policy keys {unknown}")
        return cls(**data)


Spacing = tuple[float, float] | None
# (box (4,) | None, points (k, 2) | None, labels (k,) | None) for one structure, px of its label map
KindResult = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]


def _box(
    mask: np.ndarray, others: np.ndarray, rng: Generator, cfg: PromptPolicyConfig, spacing: Spacing
) -> KindResult:
    box = box_from_mask(mask)
    mode, amount = cfg.jitter_mode, cfg.jitter_amount
    return jitter_box(box, rng, mode, image_shape=mask.shape, amount=amount, spacing=spacing), None, None


def _points(
    mask: np.ndarray, others: np.ndarray, rng: Generator, cfg: PromptPolicyConfig, _: Spacing
) -> KindResult:
    negatives_from = others if cfg.negatives == "neighbours" and others.any() else None
    xy, labels = sample_points(
        mask, cfg.n_pos, cfg.n_neg, rng, negatives_from=negatives_from, margin_px=cfg.margin_px
    )
    return None, xy, labels


def _box_points(
    mask: np.ndarray, others: np.ndarray, rng: Generator, cfg: PromptPolicyConfig, spacing: Spacing
):
    box = _box(mask, others, rng, cfg, spacing)[0]
    return (box, *_points(mask, others, rng, cfg, spacing)[1:])


def robust_box(box: np.ndarray, kind: str, rng: Generator, cfg: PromptPolicyConfig,
               image_shape: tuple[int, int]) -> np.ndarray:
    """A ``tight`` / ``loose`` / ``shifted`` copy of the tight ``box`` ``(4,)`` XYXY inclusive px (module
    docstring), clipped to ``image_shape`` ``(H, W)``; ``auto`` boxes come from the model
    (:func:`box_of_logits`) and are drawn here as ``tight`` ones, their stand-in when the model's mask is
    empty."""
    box = np.asarray(box, np.float64)
    size = np.tile(box[2:] - box[:2] + 1, 2)  # (w, h, w, h)
    if kind in ("tight", "auto"):
        return jitter_box(box, rng, "outward", image_shape=image_shape, amount=cfg.jitter_amount)
    if kind == "loose":
        moved = box + rng.uniform(0, cfg.loose_fraction, size=4) * size * np.array([-1, -1, 1, 1])
    elif kind == "shifted":
        shift = np.tile(rng.uniform(-cfg.shift_fraction, cfg.shift_fraction, size=2), 2)
        sides = rng.uniform(-cfg.shift_fraction / 2, cfg.shift_fraction / 2, size=4) * np.array([-1, -1, 1, 1])
        moved = box + (shift + sides) * size
    else:
        raise ValueError(f"unknown box kind {kind!r}; choose from {BOX_KINDS}")
    moved = np.rint(moved)
    for lo, hi in ((0, 2), (1, 3)):  # never inverted: a collapsed side pair keeps one pixel
        if moved[hi] < moved[lo]:
            moved[lo] = moved[hi] = np.floor((moved[lo] + moved[hi]) / 2)
    return clip_box(moved, image_shape)


def draw_box_kinds(config: PromptPolicyConfig, rng: Generator, n: int) -> list[str]:
    """``n`` box kinds drawn from ``config.box_mix`` (one per structure of one image)."""
    kinds = sorted(config.box_mix)
    weights = np.array([config.box_mix[k] for k in kinds], dtype=np.float64)
    return [kinds[i] for i in rng.choice(len(kinds), size=n, p=weights / weights.sum())]


def _robust(mask: np.ndarray, others: np.ndarray, rng: Generator, cfg: PromptPolicyConfig, spacing: Spacing,
            box_kind: str = "tight") -> KindResult:
    return robust_box(box_from_mask(mask), box_kind, rng, cfg, mask.shape), None, None


# kind -> (mask (H, W), neighbours (H, W), rng, config, spacing) -> KindResult
_KINDS: dict[str, Callable[..., KindResult]] = {"box": _box, "points": _points, "box_points": _box_points}


def choose_kind(config: PromptPolicyConfig, rng: np.random.Generator) -> str:
    """The prompt kind of one batch: fixed by the policy, or drawn from ``config.mix``."""
    name = config.iterative_start if config.policy == "iterative" else config.policy
    if name == "robust":
        return "box"
    if name != "mix":
        return name
    kinds = sorted(config.mix)
    weights = np.array([config.mix[k] for k in kinds], dtype=np.float64)
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


def make_prompts(
    label_map: np.ndarray,
    structures: Sequence[str],
    rng: np.random.Generator,
    config: PromptPolicyConfig,
    *,
    kind: str | None = None,
    spacing: tuple[float, float] | None = None,
    box_kinds: Sequence[str] | None = None,
) -> Prompts:
    """Prompts for the ``structures`` of one label map, in px of that label map.

    Args:
        label_map: ``(H, W)`` CAMUS label map.
        structures: names from ``STRUCTURES``; each must be present in ``label_map``.
        rng: the only source of randomness.
        config: the policy.
        kind: ``"box"``, ``"points"`` or ``"box_points"``; default drawn by :func:`choose_kind`.
        spacing: ``(sx, sy)`` mm per px, needed for ``jitter_mode="mm"``.
        box_kinds: with the ``robust`` policy, one ``BOX_KINDS`` name per structure (default: drawn).
    """
    kind = kind or choose_kind(config, rng)
    if kind not in _KINDS:
        raise ValueError(f"unknown prompt kind {kind!r}; choose from {sorted(_KINDS)}")
    if config.policy == "robust" and box_kinds is None:
        box_kinds = draw_box_kinds(config, rng, len(structures))
    boxes, points, labels = [], [], []
    for i, name in enumerate(structures):
        mask = structure_mask(label_map, name)
        if not mask.any():
            raise ValueError(f"structure {name!r} is absent from the label map: cannot prompt it")
        if box_kinds is not None:
            box, xy, lab = _robust(mask, mask, rng, config, spacing, box_kind=box_kinds[i])
        else:
            box, xy, lab = _KINDS[kind](mask, neighbour_mask(label_map, name), rng, config, spacing)
        boxes.append(box)
        points.append(xy)
        labels.append(lab)
    return Prompts(
        tuple(structures),
        boxes=None if boxes[0] is None else np.stack(boxes),
        points=None if points[0] is None else np.stack(points),
        labels=None if labels[0] is None else np.stack(labels),
    )


def make_prompt_batch(
    label_maps: Sequence[np.ndarray],
    structures: Sequence[str],
    rng: np.random.Generator,
    config: PromptPolicyConfig,
    *,
    geometries: Sequence | None = None,
    spacings: Sequence[tuple[float, float]] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[list[Prompts], dict[str, torch.Tensor]]:
    """Training prompts for a batch of ``B`` images, ready for ``SamModel``.

    Args:
        label_maps: ``B`` label maps ``(H_b, W_b)``; original images with ``geometries``, or already the
            model-input label maps ``(S, S)`` when ``geometries`` is ``None``.
        structures: the ``n`` structures prompted in every image.
        rng: the only source of randomness.
        config: the policy; ``mix`` draws one kind for the whole batch.
        geometries: one ``Geometry`` per image (``data.transforms.preprocess``), or ``None``.
        spacings: one ``(sx, sy)`` mm per image (for ``jitter_mode="mm"``), or ``None``.
        device: where the tensors go.

    Returns:
        The per-image :class:`Prompts` in model-input px (keep them for :func:`iterative_round`) and the
        ``SamModel`` keyword tensors: ``input_boxes`` ``(B, n, 4)``, ``input_points`` ``(B, n, k, 2)``,
        ``input_labels`` ``(B, n, k)``, in model-input px.
    """
    kind = choose_kind(config, rng)
    prompts = []
    for b, label_map in enumerate(label_maps):
        made = make_prompts(
            label_map, structures, rng, config, kind=kind, spacing=spacings[b] if spacings else None
        )
        prompts.append(made.to_input(geometries[b]) if geometries is not None else made)
    return prompts, to_model_inputs(prompts, device)


def structure_masks(label_map: np.ndarray, structures: Sequence[str]) -> np.ndarray:
    """``(n, H, W)`` bool masks of ``structures`` in an ``(H, W)`` label map."""
    unknown = [s for s in structures if s not in STRUCTURES]
    if unknown:
        raise KeyError(f"unknown structures {unknown}; choose from {sorted(STRUCTURES)}")
    return np.stack([structure_mask(label_map, s) for s in structures])


def iterative_round(
    prompts: Sequence[Prompts],
    low_res_logits: torch.Tensor,
    gt_masks: np.ndarray,
    rng: np.random.Generator,
    *,
    device: str | torch.device = "cpu",
) -> tuple[list[Prompts], dict[str, torch.Tensor]]:
    """One SAM-style correction round: a click in each structure's error region, the mask fed back.

    Args:
        prompts: the ``B`` per-image prompts of the previous round, in model-input px.
        low_res_logits: ``(B, n, h, w)`` logits of the previous round (one mask per prompt).
        gt_masks: ``(B, n, S, S)`` bool targets in model-input px (``structure_masks`` of the
            preprocessed label maps).
        rng: picks the click uniformly inside the largest error region (as SAM trains).
        device: where the tensors go.

    Returns:
        The updated prompts and ``SamModel`` keyword tensors, with ``input_masks`` ``(B, n, 1, h, w)``:
        the detached previous logits, for ``decode_candidates(..., input_masks=...)``. A structure whose
        prediction is already perfect gets a positive click at its most interior point, so every
        structure keeps the same number of points.
    """
    gt_masks = np.asarray(gt_masks, dtype=bool)
    batch, n = low_res_logits.shape[:2]
    if gt_masks.shape[:2] != (batch, n) or gt_masks.shape[2] != gt_masks.shape[3]:
        raise ValueError(f"gt_masks must be (B={batch}, n={n}, S, S), got {gt_masks.shape}")
    logits = low_res_logits.detach().float()
    upsampled = F.interpolate(logits, size=gt_masks.shape[2:], mode="bilinear", align_corners=False)
    preds = (upsampled > 0).cpu().numpy()
    updated = []
    for b, item in enumerate(prompts):
        clicks = [next_click(preds[b, i], gt_masks[b, i], rng) for i in range(n)]
        xy = [c[0] if c else most_interior_point(gt_masks[b, i]) for i, c in enumerate(clicks)]
        labels = [c[1] if c else 1 for c in clicks]
        updated.append(item.add_clicks(np.stack(xy).astype(np.float64), np.array(labels)))
    inputs = to_model_inputs(updated, device)
    inputs["input_masks"] = low_res_logits.detach().unsqueeze(2).to(device)  # the model's own dtype
    return updated, inputs
