"""Anatomical guards: each repairs the plausibility check it is named after, and leaves a good map alone."""

import numpy as np
import pytest

from medsam_echo.evaluation.guards import GUARDS, apply_guards, guard_report
from medsam_echo.evaluation.plausibility import check_plausibility


def _heart() -> np.ndarray:
    """A plausible 96 x 96 map: cavity inside a myocardium open at the base, LA below it (apex at the top)."""
    labels = np.zeros((96, 96), np.uint8)
    labels[10:61, 28:69] = 2  # epicardium
    labels[16:61, 34:63] = 1  # cavity, open at the base (row 60)
    labels[61:81, 34:63] = 3  # atrium against the base
    return labels


def test_a_plausible_map_is_left_unchanged():
    labels = _heart()
    assert not any(check_plausibility(labels).values())
    repaired, changed = guard_report(labels)
    assert np.array_equal(repaired, labels) and set(changed) == set(GUARDS) and sum(changed.values()) == 0


def test_a_second_component_is_removed():
    labels = _heart()
    labels[5:9, 5:9] = 3  # a stray LA blob
    assert check_plausibility(labels)["several_components"]
    repaired, changed = guard_report(labels)
    assert not check_plausibility(repaired)["several_components"] and changed["one_component"] == 16
    assert (repaired[5:9, 5:9] == 0).all()


def test_holes_are_filled():
    labels = _heart()
    labels[40:44, 46:50] = 0  # a hole in the cavity
    assert check_plausibility(labels)["holes"]
    repaired = apply_guards(labels)
    assert not check_plausibility(repaired)["holes"] and (repaired[40:44, 46:50] == 1).all()


def test_a_cavity_outside_the_epicardium_is_enclosed():
    labels = _heart()
    labels[30:50, 28:34] = 1  # the cavity breaks through the lateral wall
    assert check_plausibility(labels)["cavity_not_enclosed"]
    repaired = apply_guards(labels)
    assert not check_plausibility(repaired)["cavity_not_enclosed"]
    assert (repaired == 1).sum() > 0.9 * (labels == 1).sum()  # a one-pixel layer moves, nothing more


def test_a_detached_atrium_is_bridged_and_a_far_one_is_left_flagged():
    labels = _heart()
    near = labels.copy()
    near[(near == 3)] = 0
    near[66:86, 34:63] = 3  # LA 5 px below the LV base
    assert check_plausibility(near)["la_not_touching_lv"]
    repaired = apply_guards(near)
    assert not check_plausibility(repaired)["la_not_touching_lv"]
    assert (repaired == 3).sum() - (near == 3).sum() < 40  # a narrow bridge, not a grown atrium
    far = labels.copy()
    far[far == 3] = 0
    far[88:95, 44:52] = 3  # 27 px below the base: farther than a guard may bridge
    assert check_plausibility(apply_guards(far))["la_not_touching_lv"]


def test_bad_maps_are_refused_by_name():
    with pytest.raises(ValueError, match="2-D"):
        apply_guards(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(ValueError, match="CAMUS label values"):
        apply_guards(np.full((4, 4), 7, np.uint8))


def test_a_cavity_without_myocardium_keeps_its_area():
    """A cavity-only map (a model that segments the LV cavity only) must not lose its border: that biases EF."""
    labels = np.zeros((96, 96), np.uint8)
    labels[16:61, 34:63] = 1
    assert np.array_equal(apply_guards(labels), labels)


def test_no_guard_empties_a_structure():
    """A thin cavity wholly along the background keeps its pixels: a guard repairs, it never deletes."""
    labels = _heart()
    labels[labels == 1] = 2
    labels[30:34, 28:31] = 1  # a sliver of cavity in the lateral wall, touching the background
    repaired = apply_guards(labels)
    assert (repaired == 1).sum() == (labels == 1).sum()
