"""Deterministic evaluation prompts and the robustness sweeps (jitter, clicks, NoC@90)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from medsam_echo.data.sample import EchoSample, structure_mask
from medsam_echo.prompts.eval_prompts import case_seed, evaluation_prompts
from medsam_echo.prompts.points import most_interior_point
from medsam_echo.prompts.policies import PromptPolicyConfig
from medsam_echo.prompts.prompt_set import Prompts
from medsam_echo.prompts.sweep import click_sweep, jitter_sweep, mean_by, noc, noc_table

STRUCTS = ("lv_endo", "myo", "la")


def test_case_seed_is_stable_across_processes():
    """Python's hash() is salted per process; the case seed must not be."""
    code = "from medsam_echo.prompts.eval_prompts import case_seed; print(case_seed('patient0007_2CH_ED', 'box'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert other.stdout.strip() == str(case_seed("patient0007_2CH_ED", "box"))
    assert case_seed("patient0007_2CH_ED") != case_seed("patient0007_2CH_ES")
    assert case_seed("patient0007_2CH_ED", "a") != case_seed("patient0007_2CH_ED", "b")
    with pytest.raises(ValueError, match="case_id"):
        case_seed("")


def test_two_models_see_the_same_prompts(label_map):
    config = PromptPolicyConfig(
        policy="box_points", jitter_mode="relative", jitter_amount=0.2, n_pos=3, n_neg=2
    )
    first = evaluation_prompts(label_map, STRUCTS, "patient0001_4CH_ES", config)
    again = evaluation_prompts(label_map, STRUCTS, "patient0001_4CH_ES", config)
    other = evaluation_prompts(label_map, STRUCTS, "patient0002_4CH_ES", config)
    assert np.array_equal(first.boxes, again.boxes) and np.array_equal(first.points, again.points)
    assert not (np.array_equal(first.boxes, other.boxes) and np.array_equal(first.points, other.points))


def box_oracle(image: np.ndarray, prompts: Prompts) -> np.ndarray:
    """Predicts the true structure cropped to its box: Dice drops exactly when a box cuts it."""
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    out = []
    for name, (x0, y0, x1, y1) in zip(prompts.structures, prompts.boxes, strict=True):
        out.append(structure_mask(image, name) & (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1))
    return np.stack(out)


def click_oracle(image: np.ndarray, prompts: Prompts) -> np.ndarray:
    """Paints the true structure within 5 px of each positive click, minus 5 px around negatives."""
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    out = []
    for i, name in enumerate(prompts.structures):
        painted = np.zeros(image.shape, bool)
        for (x, y), label in zip(prompts.points[i], prompts.labels[i], strict=True):
            painted |= (np.hypot(xx - x, yy - y) <= 5) & bool(label)
        out.append(structure_mask(image, name) & painted)
    return np.stack(out)


def _samples(label_map: np.ndarray) -> list[EchoSample]:
    return [
        EchoSample(image=label_map, label=label_map, spacing=(0.3, 0.4), case_id=f"case{i}") for i in range(2)
    ]


def test_jitter_sweep_dice_is_perfect_without_jitter_and_falls_with_it(label_map):
    levels = [0.0, 0.1, 0.2, 0.4]
    rows = jitter_sweep(box_oracle, _samples(label_map), STRUCTS, levels, mode="relative", repeats=2)
    assert len(rows) == 2 * 2 * len(levels) * len(STRUCTS)
    curves: dict[tuple, list[float]] = {}
    for row in rows:
        curves.setdefault((row["case_id"], row["structure"], row["repeat"]), []).append(row["dice"])
    for curve in curves.values():
        assert curve[0] == 1.0
        assert all(a >= b for a, b in zip(curve, curve[1:], strict=False))  # common random numbers
    means = mean_by(rows, "level")
    assert means["la", 0.4] < 1.0


def test_click_sweep_starts_at_the_centre_and_counts_clicks_to_90(label_map):
    calls = []

    def recording(image, prompts):
        calls.append(prompts)
        return click_oracle(image, prompts)

    rows = click_sweep(recording, _samples(label_map)[:1], STRUCTS, max_clicks=8)
    assert [r["clicks"] for r in rows if r["structure"] == "la"] == list(range(1, 9))
    for i, name in enumerate(STRUCTS):
        assert calls[0].points[i, 0].tolist() == most_interior_point(structure_mask(label_map, name)).tolist()
    assert calls[-1].points.shape == (3, 8, 2)
    for name in STRUCTS:
        curve = [r["dice"] for r in rows if r["structure"] == name]
        assert all(a <= b for a, b in zip(curve, curve[1:], strict=False))  # the oracle only adds tissue
        table = {r["structure"]: r["noc"] for r in noc_table(rows)}
        assert table[name] == noc(curve, 0.90) < 8  # the oracle reaches Dice 0.90 within the budget


def test_click_sweep_can_start_from_a_box(label_map):
    rows = click_sweep(
        box_oracle_with_clicks, _samples(label_map)[:1], ("lv_endo",), max_clicks=2, start="box"
    )
    assert [r["clicks"] for r in rows] == [0, 1, 2]
    assert rows[0]["dice"] == 1.0
    with pytest.raises(ValueError, match="start"):
        click_sweep(box_oracle, _samples(label_map), STRUCTS, start="scribble")


def box_oracle_with_clicks(image: np.ndarray, prompts: Prompts) -> np.ndarray:
    assert prompts.boxes is not None  # the box stays with every click
    return box_oracle(image, prompts)


def test_click_sweep_from_the_automatic_result_counts_zero_clicks_when_it_is_good_enough(label_map):
    def auto_prompts(image, structures):  # an automatic mode that finds lv_endo and half of la
        boxes = []
        for name in structures:
            ys, xs = np.nonzero(structure_mask(image, name))
            x1 = xs.max() if name == "lv_endo" else (xs.min() + xs.max()) // 2
            boxes.append([xs.min(), ys.min(), x1, ys.max()])
        return Prompts(tuple(structures), boxes=np.array(boxes))

    rows = click_sweep(box_oracle_with_clicks, _samples(label_map)[:1], ("lv_endo", "la"), max_clicks=2,
                       start="auto", auto_prompts=auto_prompts)
    assert [r["clicks"] for r in rows if r["structure"] == "la"] == [0, 1, 2]
    start = {r["structure"]: r["dice"] for r in rows if r["clicks"] == 0}
    assert start["lv_endo"] == 1.0 and start["la"] < 0.9
    table = {r["structure"]: r["noc"] for r in noc_table(rows)}
    assert table["lv_endo"] == 0  # the automatic result needs no correction
    assert table["la"] == 2  # the box oracle ignores clicks: never reaches 0.90, capped at the budget
    with pytest.raises(ValueError, match="needs auto_prompts"):
        click_sweep(box_oracle, _samples(label_map), STRUCTS, start="auto")


def test_noc_is_the_first_click_reaching_the_target_capped():
    assert noc([0.5, 0.91, 0.95], 0.90) == 2
    assert noc([0.95], 0.90) == 1
    assert noc([0.5, 0.6, 0.7], 0.90) == 3
