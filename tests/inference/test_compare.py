"""Comparing evaluate outputs: paired differences on the cases both runs scored, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.inference.compare import EvaluatedRun, load_run, paired_differences, paired_table


def _run(name: str, dice_by_case: dict[str, float]) -> EvaluatedRun:
    rows = [{"case": case, "structure": "lv_endo", "dice": value} for case, value in dice_by_case.items()]
    return EvaluatedRun(name, {}, rows, [])


def test_paired_differences_use_only_shared_cases_and_give_a_95_percent_ci():
    a = _run("a", {"c1": 0.80, "c2": 0.90, "c3": 0.70, "only_a": 0.10})
    b = _run("b", {"c1": 0.85, "c2": 0.90, "c3": 0.80, "only_b": 0.99})
    diffs = np.array([0.05, 0.0, 0.10])
    result = paired_differences(a, b)["lv_endo"]
    half = 1.96 * diffs.std(ddof=1) / np.sqrt(3)
    assert result["n"] == 3
    assert result["mean"] == pytest.approx(diffs.mean())
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    assert "| lv_endo | 3 | +0.050 |" in paired_table(a, b)


def test_loading_a_folder_that_is_not_an_evaluation_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        load_run(tmp_path)
