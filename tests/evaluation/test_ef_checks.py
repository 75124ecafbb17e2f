"""Cross-checks on the biplane EF: crafted implausible pairs are flagged, a plausible patient is not."""

import numpy as np

from medsam_echo.evaluation.clinical import biplane_ef, ef_checks, format_ef


def _view(length: int, width: int, size: int = 128) -> np.ndarray:
    """An apical view: an elliptic LV cavity of ``length`` x ``width`` px (apex at the top), LA below it."""
    labels = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    base = 20 + length
    cavity = ((xx - 64) / (width / 2)) ** 2 + ((yy - base) / length) ** 2 <= 1
    labels[cavity & (yy <= base)] = 1
    labels[(yy > base) & (yy <= base + 12) & (np.abs(xx - 64) < width / 2)] = 3
    return labels


def _patient(ed=(60, 40), es=(52, 30), es_4ch=None, ed_4ch=None):
    sp = (1.0, 1.0)
    return {("2CH", "ED"): (_view(*ed), sp), ("2CH", "ES"): (_view(*es), sp),
            ("4CH", "ED"): (_view(*(ed_4ch or ed)), sp), ("4CH", "ES"): (_view(*(es_4ch or es)), sp)}


def test_a_plausible_patient_passes():
    frames = _patient()
    result = biplane_ef(frames)
    assert 20 < result["ef"] < 80 and ef_checks(frames, result) == []
    assert format_ef(result["ef"], []) == f"{result['ef']:.1f} %"


def test_esv_above_edv_is_flagged_and_never_a_plain_number():
    frames = _patient(ed=(52, 30), es=(60, 40))  # the phases swapped: ESV > EDV, EF < 0
    flags = ef_checks(frames)
    assert {"esv_not_below_edv", "ef_out_of_range", "axis_es_vs_ed"} <= set(flags)
    assert "unreliable" in format_ef(biplane_ef(frames)["ef"], flags)


def test_lengths_that_disagree_between_views_are_flagged():
    frames = _patient(ed_4ch=(30, 40), es_4ch=(26, 30))  # 4CH foreshortened to half the 2CH length
    assert "axis_2ch_vs_4ch" in ef_checks(frames)


def test_a_missing_cavity_is_flagged():
    frames = _patient()
    frames[("4CH", "ES")] = (np.zeros((128, 128), np.uint8), (1.0, 1.0))
    assert ef_checks(frames) == ["volume_missing"]
    assert format_ef(float("nan"), ["volume_missing"]).startswith("n/a")
