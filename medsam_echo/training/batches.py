"""Training prompts and targets for a batch, reproducible under any process count.

Each image's prompts come from ``default_rng([seed, epoch, index])`` (its dataset index), and the prompt
kind of a batch (box / points / both) from ``default_rng([seed, epoch, batch])``, so one image gets the
same prompt whether it is trained on one process or shared across several, and after a resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from medsam_echo.prompts.boxes import boxes_of
from medsam_echo.prompts.policies import (
    choose_kind,
    draw_box_kinds,
    iterative_round,
    make_prompts,
    structure_masks,
)
from medsam_echo.prompts.prompt_set import Prompts, to_model_inputs


def structure_targets(labels: np.ndarray, structures: Sequence[str], device) -> torch.Tensor:
    """``(B, n, S, S)`` bool targets from ``(B, S, S)`` label maps at the model input."""
    return torch.from_numpy(np.stack([structure_masks(label, structures) for label in labels])).to(device)


def make_train_prompts(
    cfg, labels: np.ndarray, indices: list[int], epoch: int, batch: int, device
) -> tuple[list, dict[str, torch.Tensor], bool, Callable | None, int]:
    """Prompts of one training batch.

    Args:
        cfg: the experiment config (``prompts``, ``data.structures``, ``loss.multimask``, ``train.seed``).
        labels: ``(B, S, S)`` label maps at the model input (prompts are made in model-input px).
        indices: dataset index of each image.
        epoch, batch: position in the run (seeds the batch's prompt kind).
        device: where the tensors go.

    Returns:
        ``(prompts, inputs, multimask, refine, rounds)``: the per-image ``Prompts``, the ``SamModel``
        tensors, whether to predict 3 candidates, and for the ``iterative`` policy the refinement
        callback and its number of rounds.
    """
    policy, seed, structures = cfg.prompts, cfg.train.seed, cfg.data.structures
    kind = choose_kind(policy, np.random.default_rng([seed, epoch, batch]))
    prompts = []
    for label, index in zip(labels, indices, strict=True):
        rng = np.random.default_rng([seed, epoch, index])
        try:
            prompts.append(make_prompts(label, structures, rng, policy, kind=kind))
        except ValueError as err:
            raise ValueError(f"training image {index}: {err}") from err
    inputs = to_model_inputs(prompts, device)
    single_point = kind == "points" and policy.n_pos + policy.n_neg == 1
    multimask = {"always": True, "never": False, "auto": single_point}[cfg.loss.multimask]
    if policy.policy != "iterative" or policy.iterative_rounds == 0:
        return prompts, inputs, multimask, None, 0
    targets = np.stack([structure_masks(label, structures) for label in labels])
    click_rng = np.random.default_rng([seed, epoch, batch, 1])
    state = {"prompts": prompts}

    def refine(logits: torch.Tensor) -> dict[str, torch.Tensor]:
        state["prompts"], new_inputs = iterative_round(state["prompts"], logits, targets, click_rng, device=device)
        return new_inputs

    return prompts, inputs, False, refine, policy.iterative_rounds


@dataclass
class RobustPlan:
    """One training step of the ``robust`` prompt policy (``prompts/policies.py``), run by
    ``PromptedSam.forward(plan=...)``: the learned-prompt masks, then the box pass (``auto`` boxes taken
    from those masks), then ``free_rounds`` unsupervised and ``click_rounds`` supervised click rounds.

    Attributes:
        prompts: per image, the drawn boxes in model-input px (``auto`` ones tight until replaced).
        inputs: their ``SamModel`` tensors (``input_boxes`` ``(B, n, 4)``).
        auto: ``(B, n)`` bool, the structures whose box comes from the learned-prompt mask.
        targets: ``(B, n, S, S)`` bool targets (the click rounds' error regions).
        valid_sizes: ``(B, 2)`` unpadded ``(h, w)`` at the model input (masks are cut to it).
        free_rounds, click_rounds: the step's click rounds.
        click_rng: the clicks' generator (uniform in the largest error region, as SAM trains).
    """

    prompts: list[Prompts]
    inputs: dict[str, torch.Tensor]
    auto: np.ndarray
    targets: np.ndarray
    valid_sizes: np.ndarray
    free_rounds: int
    click_rounds: int
    click_rng: np.random.Generator
    device: str | torch.device = "cpu"

    def with_auto_boxes(self, learned_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The box inputs with each ``auto`` structure's box replaced by the box of the main region of its
        learned-prompt mask (``learned_logits`` ``(B, n, h, w)``, detached); an empty mask keeps its box."""
        if not self.auto.any():
            return self.inputs
        size = self.targets.shape[-1]
        logits = learned_logits.detach().float()
        if logits.shape[-2:] != (size, size):
            logits = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
        masks = (logits > 0).cpu().numpy()
        updated = []
        for b, item in enumerate(self.prompts):
            h, w = (int(v) for v in self.valid_sizes[b])
            boxes = np.array(item.boxes, np.float64)
            mine = self.auto[b] & masks[b, :, :h, :w].any(axis=(1, 2))
            if mine.any():
                boxes[mine] = boxes_of(masks[b, mine, :h, :w], boxes[mine])
            updated.append(replace(item, boxes=boxes))
        self.prompts = updated
        self.inputs = to_model_inputs(updated, self.device)
        return self.inputs

    def click(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The next click round's inputs (``iterative_round``) from the previous ``(B, n, h, w)`` logits."""
        self.prompts, inputs = iterative_round(self.prompts, logits, self.targets, self.click_rng, device=self.device)
        return inputs


def make_robust_plan(cfg, labels: np.ndarray, indices: list[int], epoch: int, batch: int, valid_sizes, device) -> RobustPlan:
    """The :class:`RobustPlan` of one batch, seeded like :func:`make_train_prompts` (per image by its dataset
    index, the batch's click rounds by its position), so any process count trains the same prompts.

    Args:
        labels: ``(B, S, S)`` label maps at the model input.
        valid_sizes: ``(B, 2)`` unpadded ``(h, w)`` at the model input.
    """
    policy, seed, structures = cfg.prompts, cfg.train.seed, cfg.data.structures
    prompts, auto = [], []
    for label, index in zip(labels, indices, strict=True):
        rng = np.random.default_rng([seed, epoch, index])
        kinds = draw_box_kinds(policy, rng, len(structures))
        try:
            prompts.append(make_prompts(label, structures, rng, policy, kind="box", box_kinds=kinds))
        except ValueError as err:
            raise ValueError(f"training image {index}: {err}") from err
        auto.append([k == "auto" for k in kinds])
    click_rng = np.random.default_rng([seed, epoch, batch, 2])
    free = int(click_rng.integers(0, policy.click_free_rounds, endpoint=True)) if policy.click_rounds else 0
    targets = np.stack([structure_masks(label, structures) for label in labels])
    return RobustPlan(prompts, to_model_inputs(prompts, device), np.array(auto, bool), targets,
                      np.asarray(valid_sizes), free, policy.click_rounds, click_rng, device)
