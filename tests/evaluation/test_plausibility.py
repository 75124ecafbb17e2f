"""Each plausibility check flags exactly the defect it names, and a clean view passes them all."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medsam_echo.evaluation.plausibility import CHECKS, check_plausibility, count_implausible

SPACING = (0.5, 0.5)


@pytest.fixture
def clean(lv_view) -> np.ndarray:
    return lv_view((200, 160), SPACING, (80, 150), 15.0, 60.0, tilt_deg=10.0)


def _hole(labels):
    labels[100, 80] = 0


def _second_la(labels):
    labels[190:196, 5:12] = 3


def _open_cavity(labels):
    rows, cols = np.nonzero(labels == 1)
    left = cols.min()
    labels[(labels == 2) & (np.arange(labels.shape[1]) < left + 2)[None, :]] = 0  # drop the left wall


def _detached_la(labels):
    near_lv = ndimage.binary_dilation(np.isin(labels, (1, 2)), iterations=4)
    labels[(labels == 3) & near_lv] = 0  # a gap between LV and LA, which also opens the cavity's base


def _no_myo(labels):
    labels[labels == 2] = 0


def test_clean_view_passes_every_check(clean: np.ndarray) -> None:
    assert check_plausibility(clean) == dict.fromkeys(CHECKS, False)


@pytest.mark.parametrize(
    "corrupt, flagged",
    [
        (_hole, {"holes"}),
        (_second_la, {"several_components"}),
        (_open_cavity, {"cavity_not_enclosed"}),
        (_detached_la, {"la_not_touching_lv", "cavity_not_enclosed"}),
        (_no_myo, {"missing_structure", "cavity_not_enclosed"}),
    ],
)
def test_each_defect_is_flagged(clean: np.ndarray, corrupt, flagged: set[str]) -> None:
    labels = clean.copy()
    corrupt(labels)
    result = check_plausibility(labels)
    assert {name for name, bad in result.items() if bad} == flagged


def test_counts_over_predictions(clean: np.ndarray) -> None:
    holed = clean.copy()
    _hole(holed)
    counts = count_implausible([check_plausibility(m) for m in (clean, holed, holed)])
    assert counts["holes"] == 2 and counts["any"] == 2 and counts["several_components"] == 0


def test_rejects_non_2d_input() -> None:
    with pytest.raises(ValueError, match="2-D label map"):
        check_plausibility(np.zeros((2, 4, 4), np.uint8))
