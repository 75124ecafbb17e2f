"""Validation during training: Dice per structure at the original resolution, deterministic prompts.

Every case is prompted from its ground truth with a generator seeded by its case id (``train.eval_prompt``:
a tight box, points, or both), so every run and every model sees the same prompts. Predictions are mapped
back onto the original pixel grid before scoring, and scores are gathered across processes.
"""

from __future__ import annotations

import numpy as np
import torch

from medsam_echo.data.sample import structure_mask
from medsam_echo.evaluation.metrics import dice as dice_score
from medsam_echo.prompts.eval_prompts import evaluation_prompts
from medsam_echo.prompts.policies import PromptPolicyConfig
from medsam_echo.prompts.prompt_set import to_model_inputs


def eval_policy(kind: str) -> PromptPolicyConfig:
    """The validation prompt protocol: no jitter; points are the most interior positive per structure."""
    return PromptPolicyConfig(policy=kind, jitter_amount=0.0, n_pos=1, n_neg=0)


@torch.no_grad()
def validate(cfg, model, loader, accelerator) -> dict[str, float]:
    """Mean Dice per structure over the validation loader (all processes); ``{structure: dice}``."""
    was_training = model.training
    model.eval()
    policy = eval_policy(cfg.train.eval_prompt)
    structures = cfg.data.structures
    scores = []
    for batch in loader:
        prompts = [
            evaluation_prompts(label, structures, case_id, policy, salt="val").to_input(geometry)
            for label, case_id, geometry in zip(batch["original_label"], batch["case_id"], batch["geometry"], strict=True)
        ]
        inputs = to_model_inputs(prompts, accelerator.device)
        logits, _ = model(inputs, pixel_values=batch["pixel_values"], multimask_output=False)
        rows = []
        for b, (label, geometry) in enumerate(zip(batch["original_label"], batch["geometry"], strict=True)):
            pred = geometry.to_original(logits[b, :, 0].float()) > 0
            rows.append([dice_score(pred[i].cpu().numpy(), structure_mask(label, s)) for i, s in enumerate(structures)])
        scores.append(torch.tensor(rows, device=accelerator.device, dtype=torch.float64))
    gathered = accelerator.gather_for_metrics(torch.cat(scores)).cpu().numpy()
    model.train(was_training)
    return {s: float(np.mean(gathered[:, i])) for i, s in enumerate(structures)}
