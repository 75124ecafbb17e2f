"""Validation Dice: prompted structures on their own masks, a derived myocardium on the fused label map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsam_echo.data.sample import LABELS, structure_mask
from medsam_echo.training.validate import case_dice, derived_structures


@pytest.fixture
def label_map() -> np.ndarray:
    """``(20, 16)``: a cavity inside a myocardium (open at the base, as in CAMUS), the atrium below it."""
    label = np.zeros((20, 16), np.uint8)
    label[1:12, 2:14] = LABELS["myo"]
    label[3:12, 5:11] = LABELS["lv_endo"]
    label[12:18, 4:12] = LABELS["la"]
    return label


def _logits(*masks: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.where(m, 5.0, -5.0) for m in masks]))


@pytest.mark.parametrize(
    ("structures", "derived"),
    [
        (["lv_endo", "lv_epi", "la"], ("myo",)),
        (["lv_epi", "myo"], ("lv_endo",)),
        (["lv_endo", "myo", "la"], ()),
        (["lv_epi", "la"], ()),  # nothing to split the epicardium with
    ],
)
def test_derived_structures_are_what_the_fusion_adds(structures, derived):
    assert derived_structures(structures) == derived


def test_lv_epi_runs_are_scored_on_the_myocardium_of_the_fused_label_map(label_map):
    structures = ["lv_endo", "lv_epi", "la"]
    truth = [structure_mask(label_map, s) for s in structures]
    assert case_dice(_logits(*truth), label_map, structures) == pytest.approx([1.0, 1.0, 1.0, 1.0])
    cavity, epi, la = truth
    thin = epi.copy()
    thin[1:3] = False  # the predicted epicardium misses the apical wall: only the myo ring shows it
    scores = case_dice(_logits(cavity, thin, la), label_map, structures)
    myo = structure_mask(label_map, "myo")
    assert scores[:3] == pytest.approx([1.0, 2 * thin.sum() / (epi.sum() + thin.sum()), 1.0])
    assert scores[3] == pytest.approx(2 * (myo & thin).sum() / (myo.sum() + (myo & thin).sum()))
    assert scores[3] < scores[1]  # the ring shows the missed wall more than the filled epicardium


def test_runs_prompting_the_ring_are_scored_on_their_masks_only(label_map):
    structures = ["lv_endo", "myo", "la"]
    truth = [structure_mask(label_map, s) for s in structures]
    assert case_dice(_logits(*truth), label_map, structures) == pytest.approx([1.0, 1.0, 1.0])
