"""The inscribed-ellipse baseline: geometry of the ellipse, and use wherever a model is used."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from medsam_echo.data.camus import CamusDataset
from medsam_echo.data.sample import structure_mask
from medsam_echo.evaluation.metrics import dice
from medsam_echo.inference import EchoPredictor
from medsam_echo.inference.engines import ellipse_logits
from medsam_echo.prompts.boxes import box_from_mask


@pytest.mark.parametrize(("center", "axes"), [((40, 30), (25, 12)), ((31, 52), (9, 30)), ((50, 50), (4, 7))])
def test_the_ellipse_fills_its_box_and_matches_a_drawn_ellipse(center, axes):
    truth = np.zeros((100, 90), np.uint8)
    cv2.ellipse(truth, center, axes, 0, 0, 360, 1, thickness=-1)
    truth = truth.astype(bool)
    box = box_from_mask(truth)
    predicted = ellipse_logits(box, truth.shape) > 0
    assert box_from_mask(predicted).tolist() == box.tolist()  # touches all four sides of the box
    assert dice(predicted, truth) > 0.9


def test_the_ellipse_logit_is_about_the_distance_to_the_boundary_in_px():
    logits = ellipse_logits(np.array([10, 10, 49, 49]), (60, 60))  # a circle of radius 20 px centred at 29.5
    assert logits[30, 29] == pytest.approx(20 - np.hypot(0.5, 0.5), abs=1e-4)  # 0.71 px off centre
    assert logits[30, 59] == pytest.approx(20 - np.hypot(29.5, 0.5), abs=1e-4)


def test_baseline_predictor_needs_boxes_and_segments_nested_structures(camus_root):
    sample = CamusDataset(camus_root, split="train")[0]
    predictor = EchoPredictor.from_source("baseline:ellipse")
    assert predictor.structures == ("lv_endo", "lv_epi", "la")
    predictor.set_image(sample.image, sample.spacing)
    with pytest.raises(ValueError, match="needs a box"):
        predictor.predict(points=[[10, 10]])
    boxes = [box_from_mask(structure_mask(sample.label, s)) for s in predictor.structures]
    labels = predictor.predict(boxes=boxes, structure=predictor.structures).label_map()
    for name in ("lv_endo", "lv_epi", "la"):
        assert dice(structure_mask(labels, name), structure_mask(sample.label, name)) > 0.75
    assert np.isin(labels, (0, 1, 2, 3)).all()


def test_the_alias_from_issue_6_is_the_same_baseline():
    assert type(EchoPredictor.from_source("box-ellipse").engine) is type(
        EchoPredictor.from_source("baseline:ellipse").engine
    )
