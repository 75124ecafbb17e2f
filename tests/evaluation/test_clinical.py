"""Biplane Simpson volumes and EF on analytic half-ellipsoids, and the agreement statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medsam_echo.evaluation.clinical import agreement, biplane_volume, ejection_fraction, long_axis

SPACING_2CH, SPACING_4CH = (0.3, 0.4), (0.35, 0.3)  # (sx, sy) mm, anisotropic on purpose


def _true_volume_ml(half_width_2ch: float, half_width_4ch: float, length: float) -> float:
    return 2.0 / 3.0 * math.pi * half_width_2ch * half_width_4ch * length / 1000.0


def _volume(lv_view, half_width_2ch, half_width_4ch, length, tilt_2ch=0.0, tilt_4ch=0.0, **kw) -> float:
    view_2ch = lv_view((420, 420), SPACING_2CH, (210, 330), half_width_2ch, length, tilt_2ch, **kw)
    view_4ch = lv_view((420, 420), SPACING_4CH, (210, 390), half_width_4ch, length, tilt_4ch, **kw)
    return biplane_volume(view_2ch, SPACING_2CH, view_4ch, SPACING_4CH)


@pytest.mark.parametrize("tilt_2ch, tilt_4ch", [(0.0, 0.0), (15.0, -10.0), (-35.0, 25.0)])
def test_half_ellipsoid_volumes_and_ef(lv_view, tilt_2ch: float, tilt_4ch: float) -> None:
    edv = _volume(lv_view, 22.0, 25.0, 90.0, tilt_2ch, tilt_4ch)
    esv = _volume(lv_view, 16.0, 18.0, 80.0, tilt_2ch, tilt_4ch)
    true_edv, true_esv = _true_volume_ml(22.0, 25.0, 90.0), _true_volume_ml(16.0, 18.0, 80.0)
    assert edv == pytest.approx(true_edv, rel=0.02)
    assert esv == pytest.approx(true_esv, rel=0.02)
    assert ejection_fraction(edv, esv) == pytest.approx(ejection_fraction(true_edv, true_esv), abs=1.0)


def test_volume_uses_the_longer_axis(lv_view) -> None:
    view_2ch = lv_view((420, 420), SPACING_2CH, (210, 330), 20.0, 90.0)
    view_4ch = lv_view((420, 420), SPACING_4CH, (210, 390), 20.0, 72.0)
    # disks of the longer (2CH) axis; the 4CH diameters are sampled at the same fractions of its own axis
    expected = (
        math.pi / 4 * 1e-3 * sum((2 * 20.0) ** 2 * (1 - ((i + 0.5) / 20) ** 2) * 90.0 / 20 for i in range(20))
    )
    assert biplane_volume(view_2ch, SPACING_2CH, view_4ch, SPACING_4CH) == pytest.approx(expected, rel=0.02)


def _erode_each_label(labels: np.ndarray) -> np.ndarray:
    """Every label eroded by 2 px: a background gap now surrounds the cavity on all sides."""
    out = np.zeros_like(labels)
    for value in (1, 2, 3):
        out[ndimage.binary_erosion(labels == value, iterations=2)] = value
    return out


@pytest.mark.parametrize("erode", [False, True])
def test_long_axis_finds_annulus_midpoint_and_apex(lv_view, erode: bool) -> None:
    labels = lv_view((420, 420), SPACING_2CH, (210, 330), 22.0, 90.0, tilt_deg=25.0)
    if erode:
        labels = _erode_each_label(labels)
    base, apex = long_axis(labels, SPACING_2CH)
    length_px = np.array(
        [np.sin(np.deg2rad(25.0)) * 90.0 / SPACING_2CH[0], -np.cos(np.deg2rad(25.0)) * 90.0 / SPACING_2CH[1]]
    )
    assert base == pytest.approx([210, 330], abs=3.0)
    assert apex == pytest.approx(np.array([210, 330]) + length_px, abs=3.0)


def _drop_la(labels: np.ndarray) -> None:
    labels[labels == 3] = 0


def _cavity_alone(labels: np.ndarray) -> None:
    labels[labels != 1] = 0


def _la_behind_gap(labels: np.ndarray) -> None:
    near_lv = ndimage.binary_dilation(np.isin(labels, (1, 2)), iterations=5)
    labels[(labels == 3) & near_lv] = 0


@pytest.mark.parametrize(
    "corrupt, tilt",
    [(_drop_la, 20.0), (_la_behind_gap, -20.0), (_cavity_alone, 0.0)],  # bottom row: only apex-up views
)
def test_annulus_rules_without_touching_la(lv_view, corrupt, tilt: float) -> None:
    def view(spacing, base_y):
        labels = lv_view((420, 420), spacing, (210, base_y), 22.0, 90.0, tilt)
        corrupt(labels)
        return labels

    volume = biplane_volume(view(SPACING_2CH, 330), SPACING_2CH, view(SPACING_4CH, 390), SPACING_4CH)
    assert volume == pytest.approx(_true_volume_ml(22.0, 22.0, 90.0), rel=0.02)


def test_missing_cavity_gives_nan_volume_and_ef(lv_view) -> None:
    labels = lv_view((420, 420), SPACING_2CH, (210, 330), 22.0, 90.0)
    empty = np.zeros_like(labels)
    assert math.isnan(biplane_volume(labels, SPACING_2CH, empty, SPACING_4CH))
    assert math.isnan(ejection_fraction(float("nan"), 40.0))
    assert ejection_fraction(100.0, 40.0) == pytest.approx(60.0)
    with pytest.raises(ValueError, match="no LV cavity"):
        long_axis(empty, SPACING_2CH)


def test_agreement_known_values() -> None:
    stats = agreement([2.0, 2.0, 5.0, 4.0, float("nan")], [1.0, 2.0, 3.0, 4.0, 9.0])
    assert (stats["n"], stats["n_missing"]) == (4, 1)
    assert stats["bias"] == pytest.approx(0.75)
    assert stats["std"] == pytest.approx(math.sqrt(2.75 / 3))
    assert stats["loa_high"] == pytest.approx(0.75 + 1.96 * math.sqrt(2.75 / 3))
    assert stats["mae"] == pytest.approx(0.75)
    assert stats["corr"] == pytest.approx(4.5 / math.sqrt(6.75 * 5.0))


def test_agreement_of_identical_values_is_exact() -> None:
    stats = agreement([55.0, 60.0, 48.0], [55.0, 60.0, 48.0])
    assert stats["bias"] == 0.0 and stats["std"] == 0.0 and stats["mae"] == 0.0
    assert stats["corr"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal length"):
        agreement([1.0, 2.0], [1.0])


def test_synthetic_phantoms_match_their_true_volumes(synthetic_root) -> None:
    """Cross-check on the data stage's phantoms (independent geometry, LA meeting the cavity in a point)."""
    from medsam_echo.data.camus import CamusDataset

    dataset = CamusDataset(synthetic_root)
    for patient in dataset.patients:
        volumes = {}
        for phase in ("ED", "ES"):
            two, four = (dataset.sample(f"{patient}_{view}_{phase}") for view in ("2CH", "4CH"))
            volumes[phase] = biplane_volume(two.label, two.spacing, four.label, four.spacing)
        info = dataset.info(patient, "2CH")
        assert volumes["ED"] == pytest.approx(info["LVedv"], rel=0.02)
        assert volumes["ES"] == pytest.approx(info["LVesv"], rel=0.02)
        assert ejection_fraction(volumes["ED"], volumes["ES"]) == pytest.approx(info["EF"], abs=1.0)
