"""Validation during training: Dice per structure at the original resolution, deterministic prompts.

Every case is prompted from its ground truth with a generator seeded by its case id (``train.eval_prompt``:
a tight box, points, or both), so every run and every model sees the same prompts. Predictions are mapped
back onto the original pixel grid before scoring, and scores are gathered across processes.

A prompted structure is scored on its own mask. A run that learns ``lv_epi`` (filled epicardium) with
``lv_endo`` or ``myo`` is also scored on the label-map structure it never prompts: the ``myo`` ring (or the
``lv_endo`` cavity) of the fused label map (``prompts.decode.combine_structures``), the one a clinician uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medsam_echo.data.sample import structure_mask
from medsam_echo.evaluation.metrics import dice as dice_score
from medsam_echo.prompts.decode import combine_structures
from medsam_echo.prompts.eval_prompts import evaluation_prompts
from medsam_echo.prompts.policies import PromptPolicyConfig
from medsam_echo.prompts.prompt_set import to_model_inputs


def eval_policy(kind: str) -> PromptPolicyConfig:
    """The validation prompt protocol: no jitter; points are the most interior positive per structure."""
    return PromptPolicyConfig(policy=kind, jitter_amount=0.0, n_pos=1, n_neg=0)


def derived_structures(structures: Sequence[str]) -> tuple[str, ...]:
    """The label-map structures the fusion makes from ``structures`` without prompting them.

    ``("myo",)`` for ``lv_endo`` + ``lv_epi`` (myocardium = epicardium minus cavity), ``("lv_endo",)``
    for ``lv_epi`` + ``myo``; ``()`` without ``lv_epi`` or when it cannot be split.
    """
    if "lv_epi" not in structures or not {"lv_endo", "myo"} & set(structures):
        return ()
    return tuple(s for s in ("lv_endo", "myo") if s not in structures)


def case_dice(logits: torch.Tensor, label: np.ndarray, structures: Sequence[str]) -> list[float]:
    """Dice of one case: each prompted structure, then each :func:`derived_structures` one.

    Args:
        logits: ``(n, H, W)`` logits on the original grid, row ``i`` for ``structures[i]``.
        label: ``(H, W)`` ground-truth CAMUS label map.
        structures: the ``n`` prompted structures.

    Returns:
        ``n + len(derived_structures(structures))`` Dice values, in that order.
    """
    pred = (logits > 0).cpu().numpy()
    scores = [dice_score(pred[i], structure_mask(label, s)) for i, s in enumerate(structures)]
    derived = derived_structures(structures)
    if derived:
        fused = combine_structures(logits, structures)
        scores += [dice_score(structure_mask(fused, s), structure_mask(label, s)) for s in derived]
    return scores


@torch.no_grad()
def validate(cfg, model, loader, accelerator) -> dict[str, float]:
    """Mean Dice per structure over the validation loader (all processes); ``{structure: dice}``.

    The keys are ``cfg.data.structures`` followed by their :func:`derived_structures`; with the automatic
    mode (``auto.mode: tokens``) the same names prefixed ``auto_`` hold the Dice of the learned-prompt masks,
    and with ``train.eval_loose_px`` > 0 the names prefixed ``loose_`` that of loose boxes.
    """
    was_training = model.training
    model.eval()
    policy = eval_policy(cfg.train.eval_prompt)
    loose = PromptPolicyConfig(policy="box", jitter_amount=float(cfg.train.eval_loose_px))
    structures = cfg.data.structures
    learned = tuple(structures) if cfg.auto.mode == "tokens" else ()
    scores = []
    for batch in loader:
        image = ({"image_embeddings": batch["image_embeddings"]} if "image_embeddings" in batch
                 else {"pixel_values": batch["pixel_values"]})
        out = model(_inputs(batch, structures, policy, "val", accelerator.device), multimask_output=False,
                    learned_structures=learned, **image)
        outputs = list(out[::2])  # the prompted masks, then the learned-prompt masks
        if cfg.train.eval_loose_px > 0:
            outputs += model(_inputs(batch, structures, loose, "val-loose", accelerator.device),
                             multimask_output=False, **image)[:1]
        rows = [
            [score for logits in outputs
             for score in case_dice(geometry.to_original(logits[b, :, 0].float()), label, structures)]
            for b, (label, geometry) in enumerate(zip(batch["original_label"], batch["geometry"], strict=True))
        ]
        scores.append(torch.tensor(rows, device=accelerator.device, dtype=torch.float64))
    gathered = accelerator.gather_for_metrics(torch.cat(scores)).cpu().numpy()
    model.train(was_training)
    base = [*structures, *derived_structures(structures)]
    names = base + ([f"auto_{name}" for name in base] if learned else [])
    names += [f"loose_{name}" for name in base] if cfg.train.eval_loose_px > 0 else []
    return {s: float(np.mean(gathered[:, i])) for i, s in enumerate(names)}


def _inputs(batch: dict, structures: Sequence[str], policy: PromptPolicyConfig, salt: str, device) -> dict:
    """The batch's validation prompts (seeded by case id and ``salt``) as ``SamModel`` tensors."""
    prompts = [
        evaluation_prompts(label, structures, case_id, policy, salt=salt).to_input(geometry)
        for label, case_id, geometry in zip(batch["original_label"], batch["case_id"], batch["geometry"], strict=True)
    ]
    return to_model_inputs(prompts, device)
