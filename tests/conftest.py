"""Suite-wide settings and shared fixtures.

Tests marked ``gpu`` skip cleanly on machines without CUDA. The synthetic datasets and the tiny model
here are shared by the data, inference and CLI tests (a folder's own conftest may override a name).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from medsam_echo.data.synthetic import make_camus
from medsam_echo.models.convert import save_sam
from medsam_echo.models.profile import get_profile
from medsam_echo.models.registry import build_sam


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none present)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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


@pytest.fixture(scope="session")
def camus_root(tmp_path_factory) -> Path:
    """10 synthetic patients (8 train / 1 val / 1 test), 2023 NIfTI layout, 80 x 64 px, anisotropic."""
    return make_camus(
        tmp_path_factory.mktemp("camus") / "synthetic", patients=10, seed=0, size=(80, 64), frames=0
    )


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny SamModel (128 px input) saved as a transformers directory."""
    out = tmp_path_factory.mktemp("tiny") / "sam_tiny"
    save_sam(build_sam("tiny", seed=0), get_profile("sam", 128), out)
    return out


@pytest.fixture
def single_thread():
    """Tiny models gain nothing from intra-op threads, and their barriers stall on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tree_digest(path: Path) -> dict[str, str]:
    """``{relative path: content hash}`` of everything under ``path`` (a file's own hash for a file, ``{}``
    when absent): a test compares it before and after a command that must change nothing."""
    import hashlib

    path = Path(path)
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    if not path.is_dir():
        return {}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(path.rglob("*"))
    }
