"""A disk cache of decoded, preprocessed images, so epochs do not re-decode NIfTI / MetaImage files.

What is stored is the resized image before normalisation (float32, one channel for grayscale, unpadded)
and the resized label map; normalising and padding on load is cheap and gives exactly what
:func:`~medsam_echo.data.transforms.preprocess` returns, at a third of the size of ``pixel_values``
(about 4 MB per grayscale image at 1024 px, 0.26 MB at 256 px).

An entry is keyed by the bytes of the source files (image, label, and a MetaImage's ``.raw``), the
preprocessing profile and a format version: editing a file or changing the profile misses the cache
instead of serving stale data. Entries are ``.npz`` files written atomically (temporary file, then
rename), so concurrent data-loader workers can share one cache folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medsam_echo.atomic import atomic_write
from medsam_echo.data.io import DataError
from medsam_echo.data.transforms import (
    Geometry,
    Preprocessed,
    normalize_and_pad,
    preprocess_label,
    resize_image,
)
from medsam_echo.models.profile import PreprocessProfile

CACHE_VERSION = 1


def content_key(paths: Sequence[str | Path], profile: PreprocessProfile) -> str:
    """A hex digest of the files' bytes (plus a MetaImage header's data file) and the profile."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(
        json.dumps({"version": CACHE_VERSION, "profile": profile.to_dict()}, sort_keys=True).encode()
    )
    for path in paths:
        for part in _with_data_files(Path(path)):
            if not part.is_file():
                raise DataError(f"{part}: file not found")
            digest.update(part.name.encode())
            digest.update(part.read_bytes())
    return digest.hexdigest()


def _with_data_files(path: Path) -> list[Path]:
    """``path`` and, for a MetaImage header, the ``ElementDataFile`` it points to."""
    if path.suffix.lower() != ".mhd" or not path.is_file():
        return [path]
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "ElementDataFile" and value.strip() != "LOCAL":
            return [path, path.parent / value.strip()]
    return [path]


class PreprocessCache:
    """Preprocessed samples of a dataset, stored under ``directory``.

    Args:
        directory: cache folder (created). Safe to delete at any time.
        profile: the model's preprocessing profile; part of every key.

    Attributes:
        hits, misses: counts since construction.
    """

    def __init__(self, directory: str | Path, profile: PreprocessProfile) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        self.hits = 0
        self.misses = 0

    def get(self, dataset, index: int) -> Preprocessed:
        """``preprocess(sample.image, profile, sample.label)`` of ``dataset[index]``, from disk when cached.

        Args:
            dataset: a dataset of :class:`~medsam_echo.data.sample.EchoSample` with a
                ``source_files(index)`` method (CAMUS and folder datasets have one).
            index: the sample's index.
        """
        path = self.directory / f"{content_key(dataset.source_files(index), self.profile)}.npz"
        if path.is_file():
            try:
                resized, label, geometry = _load(path)
                self.hits += 1
                return Preprocessed(normalize_and_pad(resized, self.profile), label, geometry)
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)  # a damaged entry is recomputed, never served
        self.misses += 1
        sample = dataset[index]
        resized, geometry = resize_image(sample.image, self.profile)
        label = None if sample.label is None else preprocess_label(sample.label, geometry)
        _save(path, resized, label, geometry)
        return Preprocessed(normalize_and_pad(resized, self.profile), label, geometry)


def _save(path: Path, resized: np.ndarray, label: np.ndarray | None, geometry: Geometry) -> None:
    arrays = {
        "resized": resized,
        "geometry": np.array([*geometry.original_size, geometry.input_size, *geometry.valid_size]),
    }
    if label is not None:
        arrays["label"] = label
    def write(tmp: Path) -> None:
        with tmp.open("wb") as stream:
            np.savez(stream, **arrays)

    atomic_write(path, write)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    with np.load(path) as data:
        h, w, size, vh, vw = (int(v) for v in data["geometry"])
        label = data["label"] if "label" in data.files else None
        return data["resized"], label, Geometry((h, w), size, (vh, vw))
