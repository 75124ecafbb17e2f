"""Clinical indices: LV volumes by the biplane Simpson's method of disks, ejection fraction, agreement.

How the long axis of one apical view is found from its label map (CAMUS values, apex at the top):

1. Base contact: the surface pixels of the LV cavity (label 1) whose distance (mm) to the left atrium
   (label 3) is within ``BASE_TOLERANCE_PX`` pixels of the smallest such distance: the pixels that touch
   the LA, or face it across a gap when a prediction leaves one. Without LA, the surface pixels farthest
   from the myocardium (label 2, same tolerance), i.e. the middle of the open base of the cavity; with
   neither, the bottom row (largest y) of the cavity.
2. Mitral annulus: the two base-contact pixels farthest apart in mm; its midpoint is the base of the axis.
3. Apex: the cavity pixel farthest (mm) from that midpoint.

The axis from the midpoint to the apex (length ``L`` mm) is cut into 20 slabs of equal height; a pixel
belongs to the slab that holds its centre, and pixels below the annulus line are left out. The disk
diameter of a slab is its cavity area divided by its height (the mean chord perpendicular to the axis),
which uses every pixel instead of one sampled chord. The biplane volume is

    V = pi / 4 * sum_i a_i * b_i * L / 20,

with ``a_i`` from the 2CH and ``b_i`` from the 4CH view and ``L`` the longer of the two axes. Volumes are
in mL (1 mL = 1000 mm^3) from the spacing ``(sx, sy)`` mm of each view; EF = 100 * (EDV - ESV) / EDV.
A view without LV cavity gives a NaN volume (and EF), which agreement statistics leave out and count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
from scipy import ndimage

from medsam_echo.data.sample import LABELS

N_DISKS = 20
BASE_TOLERANCE_PX = 2.0  # slack of the base-contact rule, in pixels of the coarser spacing
_CROSS = ndimage.generate_binary_structure(2, 1)


def _base_contact(labels: np.ndarray, cavity: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Cavity surface pixels on the base side, by the rules of the module docstring; ``(H, W)`` bool."""
    sx, sy = spacing
    surface = cavity & ~ndimage.binary_erosion(cavity, structure=_CROSS)
    tolerance = BASE_TOLERANCE_PX * max(sx, sy)
    contact = np.zeros_like(cavity)
    for value, nearest in ((LABELS["la"], True), (LABELS["myo"], False)):
        other = labels == value
        if other.any():
            dist = ndimage.distance_transform_edt(~other, sampling=(sy, sx))[surface]
            near = dist <= dist.min() + tolerance if nearest else dist >= dist.max() - tolerance
            contact[surface] = near
            return contact
    bottom = np.nonzero(cavity.any(axis=1))[0].max()
    contact[bottom] = cavity[bottom]
    return contact


def _farthest_pair(points_xy: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two points (x, y) px of ``points_xy`` ``(N, 2)`` farthest apart in mm (``scale`` = (sx, sy))."""
    hull = cv2.convexHull(points_xy.astype(np.int32)).reshape(-1, 2).astype(float)  # affine-invariant
    mm = hull * scale
    dist = ((mm[:, None, :] - mm[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmax(dist), dist.shape)
    return hull[i], hull[j]


def long_axis(labels: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Annulus midpoint and apex of the LV cavity of one apical view.

    Args:
        labels: ``(H, W)`` CAMUS label map, apex at the top; must contain LV cavity (label 1).
        spacing: ``(sx, sy)`` mm per pixel.

    Returns:
        ``(base, apex)``: two float arrays ``(x, y)`` in px; ``base`` is the annulus midpoint.
    """
    cavity = labels == LABELS["lv_endo"]
    if not cavity.any():
        raise ValueError("label map has no LV cavity (label 1)")
    scale = np.asarray(spacing, dtype=float)
    ys, xs = np.nonzero(_base_contact(labels, cavity, spacing))
    end_a, end_b = _farthest_pair(np.stack([xs, ys], axis=1), scale)
    base = (end_a + end_b) / 2.0
    ys, xs = np.nonzero(cavity)
    cavity_xy = np.stack([xs, ys], axis=1).astype(float)
    apex = cavity_xy[np.argmax((((cavity_xy - base) * scale) ** 2).sum(axis=1))]
    return base, apex


def disk_diameters(
    labels: np.ndarray, spacing: tuple[float, float], n_disks: int = N_DISKS
) -> tuple[np.ndarray, float]:
    """Disk diameters of the LV cavity of one view along its long axis.

    Args:
        labels: ``(H, W)`` CAMUS label map, apex at the top.
        spacing: ``(sx, sy)`` mm per pixel.
        n_disks: number of slabs from the annulus midpoint (disk 0) to the apex.

    Returns:
        ``(diameters, length)``: ``(n_disks,)`` diameters in mm and the long-axis length in mm.
    """
    scale = np.asarray(spacing, dtype=float)
    base, apex = long_axis(labels, spacing)
    axis = (apex - base) * scale
    length = float(np.hypot(*axis))
    if length == 0.0:
        return np.zeros(n_disks), 0.0
    height = length / n_disks
    ys, xs = np.nonzero(labels == LABELS["lv_endo"])
    along = ((np.stack([xs, ys], axis=1) - base) * scale) @ (axis / length)  # mm from base to apex
    slab = np.floor(along / height + 1e-6).astype(int)
    inside = (slab >= 0) & (along <= length + 1e-6)
    counts = np.bincount(np.minimum(slab[inside], n_disks - 1), minlength=n_disks)
    return counts * scale.prod() / height, length


def biplane_volume(
    labels_2ch: np.ndarray,
    spacing_2ch: tuple[float, float],
    labels_4ch: np.ndarray,
    spacing_4ch: tuple[float, float],
    n_disks: int = N_DISKS,
) -> float:
    """LV volume in mL by the biplane method of disks (module docstring); NaN if a view has no cavity.

    Args:
        labels_2ch: ``(H, W)`` label map of the apical 2-chamber view at one phase.
        spacing_2ch: its ``(sx, sy)`` mm per pixel.
        labels_4ch: ``(H', W')`` label map of the apical 4-chamber view at the same phase.
        spacing_4ch: its ``(sx, sy)`` mm per pixel.
        n_disks: number of disks (20 in the guidelines and CAMUS).
    """
    views = ((labels_2ch, spacing_2ch), (labels_4ch, spacing_4ch))
    if any(not np.any(labels == LABELS["lv_endo"]) for labels, _ in views):
        return float("nan")
    (diam_a, len_a), (diam_b, len_b) = (disk_diameters(lab, sp, n_disks) for lab, sp in views)
    volume_mm3 = np.pi / 4.0 * float(np.sum(diam_a * diam_b)) * max(len_a, len_b) / n_disks
    return volume_mm3 / 1000.0


def ejection_fraction(edv_ml: float, esv_ml: float) -> float:
    """EF in % from end-diastolic and end-systolic volumes (mL); NaN when EDV is not positive or NaN."""
    if not np.isfinite(edv_ml) or not np.isfinite(esv_ml) or edv_ml <= 0:
        return float("nan")
    return 100.0 * (edv_ml - esv_ml) / edv_ml


BIPLANE_FRAMES = (("2CH", "ED"), ("2CH", "ES"), ("4CH", "ED"), ("4CH", "ES"))


def biplane_ef(frames: Mapping[tuple[str, str], tuple[np.ndarray, tuple[float, float]]]) -> dict[str, float]:
    """EDV, ESV (mL) and EF (%) of one patient by the biplane method of disks.

    Args:
        frames: ``{(view, phase): (label map (H, W), (sx, sy) mm)}`` for the four ``BIPLANE_FRAMES``.

    Returns:
        ``{"edv_ml", "esv_ml", "ef"}`` (NaN where a view has no cavity).

    Raises:
        ValueError: a frame is missing (named).
    """
    missing = [f"{v}_{p}" for v, p in BIPLANE_FRAMES if (v, p) not in frames]
    if missing:
        raise ValueError(f"the biplane EF needs 2CH and 4CH frames at ED and ES; missing {missing}")
    edv, esv = (biplane_volume(*frames[("2CH", phase)], *frames[("4CH", phase)]) for phase in ("ED", "ES"))
    return {"edv_ml": edv, "esv_ml": esv, "ef": ejection_fraction(edv, esv)}


# Cross-checks on a biplane EF (:func:`ef_checks`). Tolerances, checked on the expert contours of the camus224
# training subgroup (400 patients): the LV long axis at ES over that at ED spans 0.62-1.00 per view (systolic
# long-axis shortening; an ES axis longer than the ED one is a segmentation error), and the 2CH axis over the
# 4CH one spans 0.68-1.50 at one phase (that copy lost each image's aspect ratio in its resize to 224 px, so
# its px lengths differ between views more than true mm lengths do; on data with true spacing the two
# apical lengths agree within about 10-20 % when neither view is foreshortened).
AXIS_ES_ED_RANGE = (0.6, 1.05)  # L_ES / L_ED per view: no expert pair of camus224's training subgroup outside
AXIS_VIEW_TOLERANCE = 0.35  # |L_2CH - L_4CH| / min(L_2CH, L_4CH) at one phase: 1.5 % of expert pairs beyond
EF_CHECKS: tuple[str, ...] = (
    "volume_missing",  # a view without LV cavity: no volume
    "ef_out_of_range",  # EF not within [0, 100] %
    "esv_not_below_edv",  # ESV >= EDV
    "axis_es_vs_ed",  # L_ES / L_ED outside AXIS_ES_ED_RANGE in a view
    "axis_2ch_vs_4ch",  # the two views' long axes differ by more than AXIS_VIEW_TOLERANCE at a phase
)


def ef_checks(
    frames: Mapping[tuple[str, str], tuple[np.ndarray, tuple[float, float]]], result: Mapping[str, float] | None = None
) -> list[str]:
    """The :data:`EF_CHECKS` a patient's biplane EF fails; ``[]`` when its EF can be trusted as a number.

    Args:
        frames: ``{(view, phase): (label map (H, W), (sx, sy) mm)}`` for the four ``BIPLANE_FRAMES``.
        result: :func:`biplane_ef` of ``frames`` (computed when ``None``).

    Returns:
        The failed checks' names, in :data:`EF_CHECKS` order.
    """
    result = result if result is not None else biplane_ef(frames)
    edv, esv, ef = (result[k] for k in ("edv_ml", "esv_ml", "ef"))
    if not (np.isfinite(edv) and np.isfinite(esv)):
        return ["volume_missing"]
    failed = []
    if not (np.isfinite(ef) and 0.0 <= ef <= 100.0):
        failed.append("ef_out_of_range")
    if esv >= edv:
        failed.append("esv_not_below_edv")
    lengths = {key: disk_diameters(*frames[key])[1] for key in BIPLANE_FRAMES}
    low, high = AXIS_ES_ED_RANGE
    ratios = [lengths[(v, "ES")] / lengths[(v, "ED")] if lengths[(v, "ED")] > 0 else np.inf for v in ("2CH", "4CH")]
    if any(not low <= r <= high for r in ratios):
        failed.append("axis_es_vs_ed")
    for phase in ("ED", "ES"):
        a, b = lengths[("2CH", phase)], lengths[("4CH", phase)]
        if min(a, b) <= 0 or abs(a - b) / min(a, b) > AXIS_VIEW_TOLERANCE:
            failed.append("axis_2ch_vs_4ch")
            break
    return failed


def format_ef(ef: float, flags: Sequence[str]) -> str:
    """An EF for people: ``"57.3 %"``, or with failed checks ``"57.3 % (unreliable: esv_not_below_edv)"``;
    ``"n/a (volume_missing)"`` without a value. A flagged EF is never shown as a plain number."""
    if not np.isfinite(ef):
        return f"n/a ({', '.join(flags) or 'no volume'})"
    return f"{ef:.1f} %" + (f" (unreliable: {', '.join(flags)})" if flags else "")


def agreement(pred: Sequence[float], ref: Sequence[float]) -> dict[str, float]:
    """Agreement of paired measurements (e.g. EF of prediction vs ground truth, per patient).

    Pairs where either value is NaN are left out and counted in ``n_missing``.

    Returns:
        ``{"n", "n_missing", "corr", "bias", "std", "loa_low", "loa_high", "mae"}``: Pearson correlation,
        mean of ``pred - ref``, its sample standard deviation, limits of agreement ``bias +- 1.96 std`` and
        mean absolute difference, in the unit of the inputs. NaN where undefined (too few pairs, or no
        variance for the correlation).
    """
    pred_a, ref_a = np.asarray(pred, dtype=float), np.asarray(ref, dtype=float)
    if pred_a.shape != ref_a.shape or pred_a.ndim != 1:
        raise ValueError(
            f"agreement needs two 1-D sequences of equal length, got {pred_a.shape}, {ref_a.shape}"
        )
    ok = np.isfinite(pred_a) & np.isfinite(ref_a)
    p, r = pred_a[ok], ref_a[ok]
    diff = p - r
    n = int(ok.sum())
    nan = float("nan")
    bias = float(diff.mean()) if n else nan
    std = float(diff.std(ddof=1)) if n > 1 else nan
    corr = float(np.corrcoef(p, r)[0, 1]) if n > 1 and p.std() > 0 and r.std() > 0 else nan
    return {
        "n": n,
        "n_missing": int((~ok).sum()),
        "corr": corr,
        "bias": bias,
        "std": std,
        "loa_low": bias - 1.96 * std,
        "loa_high": bias + 1.96 * std,
        "mae": float(np.abs(diff).mean()) if n else nan,
    }
