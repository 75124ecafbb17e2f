"""Shared fixtures and hypothesis strategies for the prompt-engine tests: random masks, rings,
multi-component masks on non-square images, a CAMUS-like label map and a tiny SamModel."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import strategies as st

from medsam_echo.data.sample import LABELS


@st.composite
def random_masks(draw, min_side: int = 3, max_side: int = 40) -> np.ndarray:
    """Non-empty noisy bool masks ``(H, W)`` with H != W allowed: many small components, holes."""
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.floats(0.02, 0.9))
    mask = np.random.default_rng(seed).random((h, w)) < density
    mask.flat[draw(st.integers(0, h * w - 1))] = True
    return mask


@st.composite
def rings(draw) -> np.ndarray:
    """Annuli (the myocardium's topology), anywhere on a non-square image, possibly cut by the border."""
    h, w = draw(st.integers(20, 50)), draw(st.integers(20, 70))
    cy, cx = draw(st.floats(0, h - 1)), draw(st.floats(0, w - 1))
    inner = draw(st.floats(2.0, 10.0))
    outer = inner + draw(st.floats(1.0, 5.0))
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(xx - cx, yy - cy)
    mask = (r >= inner) & (r <= outer)
    if not mask.any():
        mask[int(cy), int(cx)] = True
    return mask


@st.composite
def multi_component(draw) -> np.ndarray:
    """2-4 disjoint rectangles on a non-square image, far apart (the box must hold all of them)."""
    h, w = draw(st.integers(20, 40)), draw(st.integers(30, 60))
    mask = np.zeros((h, w), bool)
    for i in range(draw(st.integers(2, 4))):
        x0 = i * (w // 4)
        y0 = draw(st.integers(0, h - 3))
        mask[y0 : y0 + draw(st.integers(1, 3)), x0 : x0 + draw(st.integers(1, w // 4 - 1))] = True
    return mask


@pytest.fixture(scope="session")
def masks() -> SimpleNamespace:
    """The mask strategies, for ``data.draw(...)`` inside ``@given(data=st.data())`` tests.

    (Test modules cannot import conftest under ``--import-mode=importlib``; a session fixture is safe
    with hypothesis, which re-runs the test body but not the fixture.)
    """
    return SimpleNamespace(
        random=random_masks(),
        rings=rings(),
        multi=multi_component(),
        any=st.one_of(random_masks(), rings(), multi_component()),
    )


def camus_like(shape: tuple[int, int] = (56, 40), shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A CAMUS-style label map ``(H, W)``: LV cavity (1) in a myocardium shell (2), atrium (3) below.

    ``shift`` = ``(dx, dy)`` px moves the heart; the default image is taller than wide, like an apical view.
    """
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cx, cy = w / 2 + shift[0], 0.45 * h + shift[1]
    r = ((xx - cx) / (0.25 * w)) ** 2 + ((yy - cy) / (0.35 * h)) ** 2
    label = np.zeros(shape, np.uint8)
    label[(r <= 1.6) & (yy <= cy)] = LABELS["myo"]
    label[(r <= 1.0) & (yy <= cy)] = LABELS["lv_endo"]
    atrium = (np.abs(xx - cx) <= 0.2 * w) & (yy > cy) & (yy <= cy + 0.25 * h)
    label[atrium] = LABELS["la"]
    return label


@pytest.fixture
def label_map() -> np.ndarray:
    return camus_like()


@pytest.fixture(scope="session")
def tiny_sam():
    """A randomly initialised tiny ``SamModel`` (128 px input, 16x16 embedding, 64 px low-res masks)."""
    from medsam_echo.models.registry import build_sam

    return build_sam("tiny", seed=0).eval()
