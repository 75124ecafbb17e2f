"""Image I/O: every format round-trips array, orientation and spacing; bad files name themselves."""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.data.io import DataError, read_image, write_image

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (30, 47), dtype=np.uint8)  # H != W catches a transposed reader


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mhd", ".png", ".tif"])
def test_lossless_formats_round_trip_array_orientation_and_spacing(tmp_path, suffix):
    path = write_image(tmp_path / f"img{suffix}", GRAY, spacing=(0.25, 0.5))
    array, spacing = read_image(path)
    np.testing.assert_array_equal(array, GRAY)
    expected = (1.0, 1.0) if suffix in (".png", ".tif") else (0.25, 0.5)
    np.testing.assert_allclose(spacing, expected, rtol=1e-6)


def test_jpeg_round_trip_is_close(tmp_path):
    smooth = np.tile(np.linspace(0, 255, 47, dtype=np.uint8), (30, 1))
    array, _ = read_image(write_image(tmp_path / "a.jpg", smooth))
    assert array.shape == smooth.shape and np.abs(array.astype(int) - smooth).mean() < 3


@pytest.mark.parametrize("suffix", [".png", ".nii.gz"])
def test_rgb_is_returned_as_rgb_not_bgr(tmp_path, suffix):
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[..., 0] = 200  # red only
    array, _ = read_image(write_image(tmp_path / f"rgb{suffix}", rgb))
    np.testing.assert_array_equal(array, rgb)


def test_uint16_png_keeps_its_values(tmp_path):
    deep = RNG.integers(0, 65536, (12, 10), dtype=np.uint16)
    array, _ = read_image(write_image(tmp_path / "deep.png", deep))
    assert array.dtype == np.uint16
    np.testing.assert_array_equal(array, deep)


def test_frame_stack_needs_allow_stack(tmp_path):
    stack = RNG.integers(0, 256, (4, 30, 47), dtype=np.uint8)
    path = write_image(tmp_path / "seq.nii.gz", stack, spacing=(0.3, 0.4))
    with pytest.raises(DataError, match="expected a 2-D image"):
        read_image(path)
    frames, spacing = read_image(path, allow_stack=True)
    np.testing.assert_array_equal(frames, stack)
    np.testing.assert_allclose(spacing, (0.3, 0.4), rtol=1e-6)


def test_missing_and_unsupported_files_are_named(tmp_path):
    with pytest.raises(DataError, match="nope.nii.gz: image file not found"):
        read_image(tmp_path / "nope.nii.gz")
    with pytest.raises(DataError, match="img.bmp: unsupported image format"):
        read_image(tmp_path / "img.bmp")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".png", ".jpg"])
def test_truncated_files_raise_naming_the_file(tmp_path, suffix):
    path = write_image(tmp_path / f"img{suffix}", GRAY)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match=f"img{suffix}"):
        read_image(path)


def test_truncated_metaimage_raw_raises_naming_the_header(tmp_path):
    path = write_image(tmp_path / "img.mhd", GRAY)
    raw = tmp_path / "img.raw"
    raw.write_bytes(raw.read_bytes()[:100])
    with pytest.raises(DataError, match="img.mhd: unreadable or truncated"):
        read_image(path)


def test_garbage_bytes_raise(tmp_path):
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="junk.nii.gz"):
        read_image(path)


def test_write_rejects_dtypes_the_format_cannot_hold(tmp_path):
    with pytest.raises(DataError, match="float32"):
        write_image(tmp_path / "f.png", GRAY.astype(np.float32))
    with pytest.raises(DataError, match="uint16"):
        write_image(tmp_path / "d.jpg", GRAY.astype(np.uint16))
