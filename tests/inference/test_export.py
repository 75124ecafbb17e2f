"""COCO export of label maps: scores of labels made from other prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsam_echo.data.sample import LABELS
from medsam_echo.inference.export import CocoWriter, label_score


def test_a_myocardium_derived_from_lv_epi_is_scored_with_lv_epi(tmp_path):
    label = np.zeros((12, 10), np.uint8)
    label[1:8, 1:9] = LABELS["myo"]
    label[3:8, 3:7] = LABELS["lv_endo"]
    label[8:11, 2:8] = LABELS["la"]
    writer = CocoWriter()
    writer.add("a.png", label, {"lv_endo": 0.9, "lv_epi": 0.7, "la": 0.8})
    saved = json.loads(writer.write(tmp_path / "coco.json").read_text())
    scores = {ann["category_id"]: ann["score"] for ann in saved["annotations"]}
    assert scores == {LABELS["lv_endo"]: 0.9, LABELS["myo"]: 0.7, LABELS["la"]: 0.8}
    assert {ann["category_id"]: ann["area"] for ann in saved["annotations"]}[LABELS["myo"]] == (
        label == 2
    ).sum()


def test_a_label_without_any_score_is_named():
    assert label_score("lv_endo", {"lv_epi": 0.6, "myo": 0.5}) == 0.6  # cavity = lv_epi minus myo
    with pytest.raises(KeyError, match="no score for 'myo'"):
        label_score("myo", {"lv_endo": 0.9, "la": 0.8})
