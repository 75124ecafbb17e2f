"""The CLI tests drive ``medsam-echo <command>`` in-process on the suite's synthetic data and tiny model."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(single_thread):
    """Every CLI test runs single-threaded (see ``single_thread`` in tests/conftest.py)."""
    yield
