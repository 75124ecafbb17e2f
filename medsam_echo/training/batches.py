"""Training prompts and targets for a batch, reproducible under any process count.

Each image's prompts come from ``default_rng([seed, epoch, index])`` (its dataset index), and the prompt
kind of a batch (box / points / both) from ``default_rng([seed, epoch, batch])``, so one image gets the
same prompt whether it is trained on one process or shared across several, and after a resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from medsam_echo.prompts.policies import choose_kind, iterative_round, make_prompts, structure_masks
from medsam_echo.prompts.prompt_set import to_model_inputs


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
