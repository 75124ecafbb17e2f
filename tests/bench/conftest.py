"""Synthetic CAMUS data for the benchmark tests, and a clean Accelerate state around each test."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsam_echo.data.synthetic import make_camus


@pytest.fixture(scope="session")
def bench_camus(tmp_path_factory) -> Path:
    """6 synthetic patients (16 training images), 80 x 64 px."""
    root = tmp_path_factory.mktemp("bench") / "synthetic"
    make_camus(root, patients=6, seed=0, size=(80, 64), frames=0)
    return root


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    from medsam_echo.bench.variants import fresh_accelerate_state

    yield
    fresh_accelerate_state()
