"""Metrics in mm: known-answer shapes, anisotropic spacing, a brute-force reference, empty-mask rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medsam_echo.evaluation.metrics import case_metrics, dice, mask_metrics, summarize, surface


def _square(shape: tuple[int, int], x0: int, y0: int, side: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


def _disk(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2


def _reference(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float]) -> dict[str, float]:
    """Straightforward medpy-convention metrics: explicit 4-neighbour surfaces, all pairwise distances."""

    def surf_points(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, 1)
        interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        ys, xs = np.nonzero(mask & ~interior)
        return np.stack([xs * spacing[0], ys * spacing[1]], axis=1)

    p, g = surf_points(pred), surf_points(gt)
    pairwise = np.sqrt(((p[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    a, b = pairwise.min(axis=1), pairwise.min(axis=0)
    return {
        "dice": 2 * (pred & gt).sum() / (pred.sum() + gt.sum()),
        "hd_mm": max(a.max(), b.max()),
        "hd95_mm": np.percentile(np.concatenate([a, b]), 95),
        "mad_mm": (a.mean() + b.mean()) / 2,
    }


@pytest.mark.parametrize("dx, dy", [(3, 0), (0, 3), (2, 5)])
def test_shifted_squares_with_anisotropic_spacing(dx: int, dy: int) -> None:
    spacing = (0.5, 2.0)  # (sx, sy): a shift along x must cost 0.5 mm per pixel, along y 2 mm
    gt = _square((60, 70), 20, 20, 20)
    pred = _square((60, 70), 20 + dx, 20 + dy, 20)
    m = mask_metrics(pred, gt, spacing)
    assert m["dice"] == pytest.approx((20 - dx) * (20 - dy) / 400)
    # the farthest surface pixel is a corner of one square, whose nearest surface pixel is the other's corner
    assert m["hd_mm"] == pytest.approx(math.hypot(dx * spacing[0], dy * spacing[1]))
    assert 0 < m["mad_mm"] <= m["hd95_mm"] <= m["hd_mm"]


def test_concentric_disks_distance_is_radius_difference() -> None:
    gt, pred = _disk((101, 101), 50, 50, 30), _disk((101, 101), 50, 50, 24)
    m = mask_metrics(pred, gt, (0.3, 0.3))
    assert m["hd_mm"] == pytest.approx(6 * 0.3, abs=0.3)
    assert m["mad_mm"] == pytest.approx(6 * 0.3, abs=0.3)
    assert m["dice"] == pytest.approx(2 * 24**2 / (24**2 + 30**2), abs=0.01)


def test_disk_shifted_diagonally_in_mm() -> None:
    spacing = (0.4, 0.8)
    gt, pred = _disk((120, 120), 60, 60, 25), _disk((120, 120), 64, 57, 25)
    expected = math.hypot(4 * spacing[0], 3 * spacing[1])  # the farthest-apart rims move by the shift
    assert mask_metrics(pred, gt, spacing)["hd_mm"] == pytest.approx(expected, rel=0.15)


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_reference_on_random_masks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 48)), int(rng.integers(20, 48)))
    spacing = (float(rng.uniform(0.2, 1.5)), float(rng.uniform(0.2, 1.5)))

    def blob() -> np.ndarray:  # random smooth blobs, often touching the image border
        return ndimage.gaussian_filter(rng.normal(size=shape), 2.0) > 0.05

    pred, gt = blob(), blob()
    got, want = mask_metrics(pred, gt, spacing), _reference(pred, gt, spacing)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9), key


def test_surface_is_mask_minus_cross_erosion() -> None:
    mask = _square((7, 7), 1, 1, 5)
    assert surface(mask).sum() == 16  # the ring of a 5 x 5 square
    mask[0, 3] = True  # a spur on the image border is surface; the pixel below it becomes interior
    surf = surface(mask)
    assert surf[0, 3] and surf[1, 1] and not surf[1, 3] and not surf[3, 3]
    assert surf.sum() == 16


def test_empty_mask_rules() -> None:
    empty, square = np.zeros((10, 10), bool), _square((10, 10), 2, 2, 4)
    assert mask_metrics(empty, empty, (1.0, 1.0)) == dict(dice=1.0, hd_mm=0.0, hd95_mm=0.0, mad_mm=0.0)
    for pred, gt in [(empty, square), (square, empty)]:
        m = mask_metrics(pred, gt, (1.0, 1.0))
        assert m["dice"] == 0.0
        assert all(math.isnan(m[k]) for k in ("hd_mm", "hd95_mm", "mad_mm"))
    assert dice(empty, empty) == 1.0


def test_ground_truth_as_prediction_is_perfect() -> None:
    labels = np.zeros((40, 40), np.uint8)
    labels[5:25, 10:30] = 2
    labels[8:22, 13:27] = 1
    labels[25:35, 12:28] = 3
    result = case_metrics(labels, labels.copy(), (0.7, 0.3))
    assert set(result) == {"lv_endo", "myo", "lv_epi", "la"}
    for m in result.values():
        assert m == {"dice": 1.0, "hd_mm": 0.0, "hd95_mm": 0.0, "mad_mm": 0.0}


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="pixel grid"):
        case_metrics(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        mask_metrics(np.ones((4, 4), bool), np.ones((4, 4), bool), (0.0, 1.0))
    with pytest.raises(ValueError, match="binary mask"):
        mask_metrics(np.full((4, 4), 2, np.uint8), np.ones((4, 4), np.uint8), (1.0, 1.0))
    with pytest.raises(KeyError, match="unknown structure"):
        case_metrics(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), (1.0, 1.0), ["rv"])


def test_summarize_keeps_nan_cases_apart() -> None:
    rows = [
        {"dice": 0.8, "hd_mm": 4.0, "hd95_mm": 3.0, "mad_mm": 1.0},
        {"dice": 0.0, "hd_mm": math.nan, "hd95_mm": math.nan, "mad_mm": math.nan},
        {"dice": 1.0, "hd_mm": 2.0, "hd95_mm": 1.0, "mad_mm": 0.5},
    ]
    s = summarize(rows)
    assert (s["n"], s["n_nan"]) == (3, 1)
    assert s["dice"] == pytest.approx(0.6)
    assert s["hd_mm"] == pytest.approx(3.0) and s["mad_mm"] == pytest.approx(0.75)
    assert s["hd_mm_std"] == pytest.approx(math.sqrt(2.0)) and s["dice_std"] == pytest.approx(math.sqrt(0.28))
