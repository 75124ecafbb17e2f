"""The view prior: mean normalised boxes per view and structure, saved and loaded with the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsam_echo.data.sample import EchoSample, structure_mask
from medsam_echo.prompts.auto import ViewPrior, denormalise_box, normalise_box
from medsam_echo.prompts.boxes import box_from_mask

STRUCTS = ("lv_endo", "la")


def _camus(shift: tuple[int, int], shape: tuple[int, int] = (56, 40)) -> np.ndarray:
    """The conftest's camus_like map (recomputed here: test modules cannot import conftest)."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cx, cy = w / 2 + shift[0], 0.45 * h + shift[1]
    r = ((xx - cx) / (0.25 * w)) ** 2 + ((yy - cy) / (0.35 * h)) ** 2
    label = np.zeros(shape, np.uint8)
    label[(r <= 1.6) & (yy <= cy)] = 2
    label[(r <= 1.0) & (yy <= cy)] = 1
    label[(np.abs(xx - cx) <= 0.2 * w) & (yy > cy) & (yy <= cy + 0.25 * h)] = 3
    return label


def _samples() -> list[EchoSample]:
    return [
        EchoSample(
            image=_camus((dx, 0)),
            label=_camus((dx, 0)),
            spacing=(1.0, 1.0),
            case_id=f"p{dx}_{view}",
            view=view,
        )
        for view, shifts in (("2CH", (-3, -1)), ("4CH", (2, 4)))
        for dx in shifts
    ]


def test_prior_is_the_mean_normalised_box_per_view(tmp_path):
    prior = ViewPrior.fit(_samples(), STRUCTS)
    assert prior.counts == {"2CH": 2, "4CH": 2}
    expected = np.mean(
        [normalise_box(box_from_mask(structure_mask(_camus((dx, 0)), "la")), (56, 40)) for dx in (2, 4)], 0
    )
    assert np.allclose(prior.boxes["4CH"]["la"], expected, atol=1e-6)
    loaded = ViewPrior.load(prior.save(tmp_path))
    assert (tmp_path / "view_prior.json").is_file()
    assert loaded == prior


def test_normalised_boxes_round_trip_and_scale_with_the_image():
    box = np.array([3, 7, 20, 30])
    assert np.array_equal(denormalise_box(normalise_box(box, (56, 40)), (56, 40)), box)
    assert denormalise_box(normalise_box(box, (56, 40)), (112, 80)).tolist() == [6, 14, 41, 61]


def test_prior_errors_name_the_problem(tmp_path):
    prior = ViewPrior.fit(_samples(), STRUCTS)
    with pytest.raises(KeyError, match="no view 'PLAX'"):
        prior.prompts("PLAX", STRUCTS, (56, 40))
    with pytest.raises(KeyError, match="no structures \\['myo'\\]"):
        prior.prompts("2CH", ("myo",), (56, 40))
    unlabelled = EchoSample(image=np.zeros((4, 4)), label=None, spacing=(1, 1), case_id="x", view="2CH")
    with pytest.raises(ValueError, match="x: the view prior needs labelled"):
        ViewPrior.fit([unlabelled])
    bad = tmp_path / "prior.json"
    bad.write_text(
        json.dumps({"format": "medsam-echo view prior v1", "boxes": {"2CH": {"la": [0.5, 0, 0.2, 1]}}})
    )
    with pytest.raises(ValueError, match="bad box for view '2CH', structure 'la'"):
        ViewPrior.load(bad)
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a view prior"):
        ViewPrior.load(bad)
