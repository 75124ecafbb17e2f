"""Synthetic apical views with known geometry, shared by the evaluation tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def make_view(
    shape: tuple[int, int],
    spacing: tuple[float, float],
    base_xy: tuple[float, float],
    half_width_mm: float,
    length_mm: float,
    tilt_deg: float = 0.0,
    myo_mm: float = 4.0,
    la_mm: float = 25.0,
) -> np.ndarray:
    """CAMUS-style label map ``(H, W)`` of an apical view of a half prolate ellipsoid LV.

    The cavity is the half ellipse ``(v / half_width)^2 + (u / length)^2 <= 1, u >= 0`` in mm, with ``u``
    along the long axis from ``base_xy`` (x, y px, the annulus midpoint) towards the apex (up, tilted by
    ``tilt_deg``) and ``v`` across; the myocardium is a ``myo_mm`` shell around it and the LA a box under
    the base, as wide as the cavity.
    """
    theta = np.deg2rad(tilt_deg)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dx, dy = (xx - base_xy[0]) * spacing[0], (yy - base_xy[1]) * spacing[1]
    u = dx * np.sin(theta) - dy * np.cos(theta)
    v = dx * np.cos(theta) + dy * np.sin(theta)

    def half_ellipse(w: float, h: float) -> np.ndarray:
        return (u >= 0) & ((v / w) ** 2 + (u / h) ** 2 <= 1)

    labels = np.zeros(shape, np.uint8)
    labels[half_ellipse(half_width_mm + myo_mm, length_mm + myo_mm)] = 2
    labels[half_ellipse(half_width_mm, length_mm)] = 1
    labels[(u < 0) & (u > -la_mm) & (np.abs(v) <= half_width_mm)] = 3
    return labels


@pytest.fixture
def lv_view() -> Callable[..., np.ndarray]:
    """Factory for synthetic apical label maps (see ``make_view``)."""
    return make_view


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A 3-patient synthetic CAMUS 2023 tree (train / val / test: one patient each), without sequences."""
    from medsam_echo.data.synthetic import make_camus

    return make_camus(tmp_path_factory.mktemp("camus"), patients=3, seed=3, frames=0, size=(160, 128))
