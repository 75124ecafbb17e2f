"""The allocator setting the command line applies: on where it can be, off on request."""

from __future__ import annotations

import sys

import pytest

from medsam_echo.runtime import tune_allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tune_allocator_keeps_memory_and_can_be_undone():
    try:
        assert tune_allocator() is True
        assert tune_allocator(keep=False) is False
    finally:
        tune_allocator()


def test_the_environment_can_opt_out(monkeypatch):
    monkeypatch.setenv("MEDSAM_ECHO_MALLOC", "system")
    assert tune_allocator() is False
