"""Disk cache of preprocessed samples: identical results, hits on repeat, misses on any change."""

from __future__ import annotations

import numpy as np

from medsam_echo.data.cache import PreprocessCache
from medsam_echo.data.camus import CamusDataset
from medsam_echo.data.io import write_image
from medsam_echo.data.transforms import preprocess
from medsam_echo.models.profile import get_profile


def test_cached_equals_fresh_and_second_read_hits(nifti_root, tmp_path):
    data = CamusDataset(nifti_root, "val")
    cache = PreprocessCache(tmp_path / "cache", get_profile("sam", 64))
    first = cache.get(data, 1)
    again = cache.get(data, 1)
    sample = data[1]
    fresh = preprocess(sample.image, get_profile("sam", 64), sample.label)
    assert (cache.misses, cache.hits) == (1, 1)
    np.testing.assert_array_equal(again.pixel_values, fresh.pixel_values)
    np.testing.assert_array_equal(again.label, fresh.label)
    assert again.geometry == fresh.geometry == first.geometry


def test_profile_and_file_content_are_part_of_the_key(nifti_copy, tmp_path):
    data = CamusDataset(nifti_copy)
    PreprocessCache(tmp_path / "c", get_profile("sam", 64)).get(data, 0)
    medsam = PreprocessCache(tmp_path / "c", get_profile("medsam", 64))
    medsam.get(data, 0)
    assert medsam.misses == 1
    sample = data[0]
    edited = sample.label.copy()
    edited[edited == 3] = 0
    write_image(sample.meta["label_path"], edited, sample.spacing)
    result = medsam.get(data, 0)
    assert medsam.misses == 2 and not (result.label == 3).any()


def test_metaimage_raw_file_is_part_of_the_key(mhd_copy, tmp_path):
    data = CamusDataset(mhd_copy, "train")
    cache = PreprocessCache(tmp_path / "c", get_profile("sam", 64))
    cache.get(data, 0)
    raw = data.source_files(0)[0].with_suffix(".raw")
    raw.write_bytes(bytes(255 - b for b in raw.read_bytes()))  # same size, new pixels
    inverted = cache.get(data, 0)
    assert cache.misses == 2
    fresh = preprocess(data[0].image, get_profile("sam", 64), data[0].label)
    np.testing.assert_array_equal(inverted.pixel_values, fresh.pixel_values)


def test_damaged_entry_is_recomputed(nifti_root, tmp_path):
    data = CamusDataset(nifti_root, "test")
    cache = PreprocessCache(tmp_path / "c", get_profile("medsam", 64))
    cache.get(data, 0)
    (entry,) = (tmp_path / "c").glob("*.npz")
    entry.write_bytes(b"broken")
    result = cache.get(data, 0)
    assert cache.misses == 2 and result.pixel_values.shape == (3, 64, 64)
