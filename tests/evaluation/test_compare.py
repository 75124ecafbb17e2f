"""Comparing evaluate outputs: paired differences on the cases both runs scored (checked against a hand
computation), per-phase tables, the written report and its figures, and clear errors."""

from __future__ import annotations

import math

import pytest

from medsam_echo.evaluation.compare import (
    CI_METHOD,
    EvaluatedRun,
    load_run,
    paired_differences,
    paired_table,
    t_interval,
    write_comparison,
)

T_975_DF2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (from tables)


def _run(name: str, dice_by_case: dict[str, float], phase: str = "ED", clinical=()) -> EvaluatedRun:
    rows = [
        {"case": case, "phase": phase, "structure": "lv_endo", "dice": value, "hd95_mm": 1.0, "mad_mm": 0.5}
        for case, value in dice_by_case.items()
    ]
    agree = {"n": 0, "corr": None, "bias": None, "std": None, "loa_low": None, "loa_high": None, "mae": None}
    summary = {"split": "test", "n_cases": len(rows), "n_patients": len(rows),
               "structures": {"lv_endo": {"dice": 0.0, "hd95_mm": 1.0, "mad_mm": 0.5, "n": len(rows)}},
               "phases": {phase: {"lv_endo": {"dice": 0.0, "n": len(rows)}}},
               "ef": agree, "edv_ml": agree, "esv_ml": agree}
    return EvaluatedRun(name, summary, rows, list(clinical))


def test_paired_differences_use_only_shared_cases_with_a_t_interval_checked_by_hand():
    a = _run("a", {"c1": 0.80, "c2": 0.90, "c3": 0.70, "only_a": 0.10})
    b = _run("b", {"c1": 0.85, "c2": 0.90, "c3": 0.80, "only_b": 0.99})
    # by hand: differences 0.05, 0.00, 0.10 -> mean 0.05, SD 0.05, half width t * 0.05 / sqrt(3)
    half = T_975_DF2 * 0.05 / math.sqrt(3)  # = 0.124207
    result = paired_differences(a, b)["lv_endo"]
    assert result["n"] == 3 and result["mean"] == pytest.approx(0.05) and result["sd"] == pytest.approx(0.05)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((0.05 - half, 0.05 + half))
    assert "| lv_endo | all | 3 | +0.050 | [-0.074, +0.174] |" in paired_table(a, b)
    assert "t-interval" in CI_METHOD


def test_t_interval_needs_two_values_and_nan_pairs_are_left_out():
    one = t_interval([0.3])
    assert one["n"] == 1 and one["mean"] == pytest.approx(0.3) and math.isnan(one["ci_low"])
    a = _run("a", {"c1": 0.5, "c2": 0.6})
    b = _run("b", {"c1": 0.7, "c2": float("nan")})
    assert paired_differences(a, b)["lv_endo"]["n"] == 1


def test_a_phase_restricts_the_pairs_to_that_phase():
    a = EvaluatedRun("a", {}, _run("a", {"c1": 0.5}, "ED").metrics + _run("a", {"c2": 0.5}, "ES").metrics, [])
    b = EvaluatedRun("b", {}, _run("b", {"c1": 0.9}, "ED").metrics + _run("b", {"c2": 0.6}, "ES").metrics, [])
    assert paired_differences(a, b, phase="ES")["lv_endo"]["mean"] == pytest.approx(0.1)
    assert paired_differences(a, b, phase="ED")["lv_endo"]["mean"] == pytest.approx(0.4)
    assert paired_differences(a, b)["lv_endo"]["n"] == 2


def test_write_comparison_writes_the_report_and_linked_bland_altman_pngs(tmp_path):
    clinical = [{"patient": f"p{i}", "ef": 50.0 + i, "ef_gt": 52.0, "edv_ml": 100.0 + i, "edv_ml_gt": 98.0,
                 "esv_ml": 50.0, "esv_ml_gt": 49.0 + i} for i in range(4)]
    a = _run("SAM", {"c1": 0.8, "c2": 0.9, "c3": 0.7}, clinical=clinical)
    b = _run("nnU-Net", {"c1": 0.85, "c2": 0.9, "c3": 0.8}, clinical=clinical)
    (tmp_path / "ef_bland_altman.png").write_bytes(b"evaluate's own plot")  # must survive
    report = write_comparison([a, b], tmp_path / "compare.md")
    text = (tmp_path / "compare.md").read_text()
    assert text == report.markdown and "![" not in report.tables
    assert [p.name for p in report.figures] == ["compare_ef_bland_altman.png", "compare_volumes_bland_altman.png"]
    for path in report.figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({path.name})" in text
    assert (tmp_path / "ef_bland_altman.png").read_bytes() == b"evaluate's own plot"
    assert "| lv_endo | SAM |" in text and "| lv_endo | nnU-Net |" in text and "### Phase: ED" in text
    assert "| lv_endo | ED | 3 | +0.050 | [-0.074, +0.174] |" in text and CI_METHOD in text
    assert "| EF (%) | SAM |" in text and "limits of agreement" in text


def test_loading_a_folder_that_is_not_an_evaluation_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        load_run(tmp_path)
