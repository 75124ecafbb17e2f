"""Training prompts and targets of a batch when the filled epicardium (lv_epi) is learnt."""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.data.sample import LABELS
from medsam_echo.training.batches import make_train_prompts, structure_targets
from medsam_echo.training.config import config_from_dict

STRUCTURES = ["lv_endo", "lv_epi", "la"]


@pytest.fixture
def labels() -> np.ndarray:
    """``(2, 24, 24)`` model-input label maps: a cavity in an open myocardium, the atrium below."""
    label = np.zeros((24, 24), np.uint8)
    label[2:14, 4:20] = LABELS["myo"]
    label[5:14, 8:16] = LABELS["lv_endo"]  # the ring is open at the base (row 13), as in CAMUS
    label[14:22, 6:18] = LABELS["la"]
    return np.stack([label, np.roll(label, 1, axis=1)])


def _cfg(policy: str, **prompts):
    return config_from_dict(
        {"data": {"structures": STRUCTURES}, "prompts": {"policy": policy, "jitter_amount": 0.0, **prompts}}
    )


def test_lv_epi_targets_are_the_filled_epicardium(labels):
    targets = structure_targets(labels, STRUCTURES, "cpu").numpy()
    assert targets.shape == (2, 3, 24, 24)
    np.testing.assert_array_equal(targets[:, 1], np.isin(labels, (LABELS["lv_endo"], LABELS["myo"])))
    assert targets[:, 1][labels == LABELS["lv_endo"]].all()  # the cavity is inside the target, not a hole


def test_lv_epi_boxes_hold_the_cavity_and_the_myocardium(labels):
    prompts, inputs, *_ = make_train_prompts(_cfg("box"), labels, [0, 1], 0, 0, "cpu")
    assert [p.boxes[1].tolist() for p in prompts] == [[4, 2, 19, 13], [5, 2, 20, 13]]
    assert tuple(inputs["input_boxes"].shape) == (2, 3, 4)


def test_lv_epi_points_fall_in_the_epicardium_and_negatives_only_on_the_atrium(labels):
    prompts, *_ = make_train_prompts(_cfg("points", n_pos=3, n_neg=3), labels, [0, 1], 0, 0, "cpu")
    for label, made in zip(labels, prompts, strict=True):
        xy, kind = made.points[1].astype(int), made.labels[1]
        hit = label[xy[:, 1], xy[:, 0]]  # points are (x, y)
        assert sorted(kind.tolist()) == [0, 0, 0, 1, 1, 1]
        assert np.isin(hit[kind == 1], (LABELS["lv_endo"], LABELS["myo"])).all()
        assert (hit[kind == 0] == LABELS["la"]).all()  # never on the cavity, which lv_epi contains
