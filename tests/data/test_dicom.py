"""DICOM reading: multi-frame ultrasound in every supported form, spacing and its source, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from medsam_echo.data.dicom import NO_SPACING, read_dicom_cine, view_from_text  # noqa: E402
from medsam_echo.data.dicom_write import MARGIN, make_dicom_exam, write_us_cine  # noqa: E402
from medsam_echo.data.io import DataError  # noqa: E402

SIZE = (72, 64)  # (H, W) of the sector image


@pytest.fixture(scope="module")
def exams(tmp_path_factory):
    """The same synthetic exam (seed 0) written RLE-compressed and as YBR_FULL_422 JPEG baseline."""
    root = tmp_path_factory.mktemp("dicom")
    return {c: make_dicom_exam(root / c, frames=8, size=SIZE, compression=c) for c in ("rle", "jpeg")}


def _sector(cine, exam, view):
    x0, y0, x1, y1 = exam.region[view]
    return cine.frames[:, y0 : y1 + 1, x0 : x1 + 1]


def test_rle_multiframe_reads_frames_spacing_and_times_exactly(exams):
    exam = exams["rle"]
    for view in ("2CH", "4CH"):
        cine, truth = read_dicom_cine(exam.paths[view]), exam.cines[view]
        assert cine.dataset.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
        assert cine.frames.shape == (8, SIZE[0] + MARGIN[0], SIZE[1] + 2 * MARGIN[1])
        assert np.array_equal(_sector(cine, exam, view), truth.images)  # lossless, same frame order
        assert (
            cine.spacing == pytest.approx(truth.spacing, rel=1e-12) and truth.spacing[0] != truth.spacing[1]
        )
        assert "Ultrasound Regions, region 1" in cine.spacing_source  # the sector, not the ECG strip (0)
        assert cine.region == exam.region[view]
        assert np.array_equal(cine.frame_times_ms, np.arange(8) * 60.0)
        assert cine.view == view and cine.view_source == "SeriesDescription"
    assert read_dicom_cine(exam.paths["2CH"]).r_waves_ms.tolist() == [180.0]
    assert read_dicom_cine(exam.paths["4CH"]).r_waves_ms is None


def test_jpeg_ybr_full_422_becomes_grey_in_frame_order(exams):
    exam = exams["jpeg"]
    cine, truth = read_dicom_cine(exam.paths["4CH"]), exam.cines["4CH"]
    assert cine.dataset.PhotometricInterpretation == "YBR_FULL_422"
    assert cine.dataset.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    frames = _sector(cine, exam, "4CH").astype(float)
    assert frames.shape == truth.images.shape and cine.frames.dtype == np.uint8
    assert np.abs(frames - truth.images).mean() < 2.0  # lossy, grey kept
    dist = np.abs(frames[:, None] - truth.images[None].astype(float)).mean(axis=(2, 3))
    assert dist.argmin(axis=1).tolist() == list(range(8))  # each frame is its own source frame
    assert cine.spacing == pytest.approx(truth.spacing, rel=1e-12)


def test_burned_in_text_lies_outside_the_sector_region(exams):
    cine = read_dicom_cine(exams["rle"].paths["2CH"])
    x0, y0, x1, y1 = cine.region
    text = cine.frames[0] > 100
    assert text[:y0].any()  # the burned-in annotation in the top band
    assert y0 == MARGIN[0] and (x1 - x0 + 1, y1 - y0 + 1) == (SIZE[1], SIZE[0])


def _frames(n=3, h=20, w=24):
    return (np.arange(n * h * w) % 251).reshape(n, h, w).astype(np.uint8)


def test_pixel_spacing_only_is_read_as_row_column(tmp_path):
    path = write_us_cine(tmp_path / "ps.dcm", _frames(), spacing=(0.3, 0.45), spacing_as="pixel_spacing")
    cine = read_dicom_cine(path)
    assert cine.spacing == (0.3, 0.45) and cine.spacing_source.startswith("Pixel Spacing")
    assert cine.region is None and cine.frame_times_ms is None


def test_no_spacing_is_an_explicit_state_not_one_mm(tmp_path):
    cine = read_dicom_cine(write_us_cine(tmp_path / "none.dcm", _frames(), spacing=None))
    assert cine.spacing is None and cine.spacing_source == NO_SPACING and "px" in NO_SPACING


def test_frame_time_vector_gives_uneven_frame_times(tmp_path):
    path = write_us_cine(tmp_path / "ftv.dcm", _frames(4))
    ds = pydicom.dcmread(path)
    ds.FrameTimeVector = [0, 40, 50, 60]
    ds.save_as(path)
    assert read_dicom_cine(path).frame_times_ms.tolist() == [0.0, 40.0, 90.0, 150.0]


def test_single_frame_rgb_becomes_luma(tmp_path):
    path = write_us_cine(tmp_path / "rgb.dcm", _frames(1))
    ds = pydicom.dcmread(path)
    rgb = np.zeros((20, 24, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1" and "NumberOfFrames" not in ds  # US Image
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    cine = read_dicom_cine(path)
    assert cine.frames.shape == (1, 20, 24) and np.all(
        cine.frames == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    )


@pytest.mark.parametrize(
    ("text", "view"),
    [("Apical 4CH", "4CH"), ("A2C", "2CH"), ("apical two-chamber", "2CH"), ("Four Chamber View", "4CH"),
     ("AP_4_CH", "4CH"), ("PLAX", None), ("2CH and 4CH", None), ("", None)],
)  # fmt: skip
def test_view_from_series_text(text, view):
    assert view_from_text(text) == view


def test_non_ultrasound_file_is_refused_naming_it(tmp_path):
    path = write_us_cine(tmp_path / "sc.dcm", _frames(), modality="OT")
    with pytest.raises(DataError, match=r"sc\.dcm: not an ultrasound image \(Modality 'OT'"):
        read_dicom_cine(path)


def test_file_without_pixel_data_is_refused(tmp_path):
    path = write_us_cine(tmp_path / "empty.dcm", _frames())
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(DataError, match=r"empty\.dcm: the DICOM file has no pixel data"):
        read_dicom_cine(path)


@pytest.mark.parametrize("compression", ["none", "rle"])
def test_truncated_file_is_refused_naming_it(tmp_path, compression):
    path = write_us_cine(tmp_path / "cut.dcm", _frames(), compression=compression)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])
    with pytest.raises(DataError, match=r"cut\.dcm: .*truncated"):
        read_dicom_cine(path)


def test_not_dicom_is_refused_naming_it(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("not a DICOM file")
    with pytest.raises(DataError, match=r"notes\.dcm"):
        read_dicom_cine(path)


def test_missing_pydicom_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImportError, match=r"medsam-echo\[dicom\]"):
        read_dicom_cine(tmp_path / "a.dcm")


def test_r_waves_are_detected_on_an_ecg_waveform(tmp_path):
    path = write_us_cine(
        tmp_path / "ecg.dcm", _frames(20), frame_time_ms=60.0, ecg_r_waves_ms=[180.0, 1020.0]
    )
    cine = read_dicom_cine(path)
    assert cine.r_wave_source == "ECG waveform, R peaks detected"
    assert cine.r_waves_ms == pytest.approx([180.0, 1020.0], abs=2.0)  # 500 Hz: one sample is 2 ms
