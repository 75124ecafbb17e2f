"""Synthetic CAMUS releases shared by the data-layer tests (small images so the suite stays fast)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medsam_echo.data.synthetic import make_camus

SIZE = (96, 80)  # (H, W) px


@pytest.fixture(scope="session")
def nifti_root(tmp_path_factory) -> Path:
    """A 2023-layout release with 10 patients (8 / 1 / 1 in the subgroup files), read-only by convention."""
    return make_camus(tmp_path_factory.mktemp("nifti") / "camus", patients=10, seed=0, size=SIZE, frames=3)


@pytest.fixture(scope="session")
def mhd_root(tmp_path_factory) -> Path:
    """A 2019-layout release: 20 patients, 18 in training/ with labels, 2 in testing/ without."""
    return make_camus(
        tmp_path_factory.mktemp("mhd") / "camus", patients=20, seed=1, fmt="mhd", size=SIZE, frames=3
    )


@pytest.fixture
def nifti_copy(nifti_root, tmp_path) -> Path:
    """A private copy of ``nifti_root`` that a test may damage."""
    return Path(shutil.copytree(nifti_root, tmp_path / "camus"))


@pytest.fixture
def mhd_copy(mhd_root, tmp_path) -> Path:
    """A private copy of ``mhd_root`` (without saved folds) that a test may damage."""
    copy = Path(shutil.copytree(mhd_root, tmp_path / "camus"))
    (copy / "splits_final.json").unlink(missing_ok=True)
    return copy
