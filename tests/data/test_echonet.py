"""Video datasets: EchoNet-Dynamic's release layout (written here, file for file) and CAMUS sequences, read
through ``open_dataset(..., kind="video")`` as VideoSample."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from medsam_echo.data.echonet import EchoNetDataset, polygon_mask, tracing_mask
from medsam_echo.data.io import DataError
from medsam_echo.data.open import detect_format, open_dataset
from medsam_echo.data.sample import EchoSample, VideoSample
from medsam_echo.data.video import MissingVideoError, VideoDataset, VideoError

# name -> (frames, Split, traced rectangles {frame: (x0, x1, y0, y1)} in the order VolumeTracings lists them)
VIDEOS = {
    "0XAAAA": (20, "TRAIN", {12: (45, 67, 35, 75), 3: (40, 72, 30, 80)}),  # ES listed first
    "0XBBBB": (16, "VAL", {2: (38, 70, 28, 84), 9: (44, 66, 36, 76)}),
    "0XCCCC": (14, "TEST", {}),  # a video without tracings, as a few in the release
}
EF = {"0XAAAA": 62.5, "0XBBBB": 41.0, "0XCCCC": 55.25}


def rect_area(x0: int, x1: int, y0: int, y1: int) -> int:
    return (x1 - x0 + 1) * (y1 - y0 + 1)  # px centres on the outline count, as in skimage.draw.polygon


def write_avi(path: Path, frames: int, fps: float = 50.0) -> None:
    """A 112 x 112, 3-channel MJPG AVI, as the release's videos."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (112, 112))
    for t in range(frames):
        frame = np.full((112, 112, 3), 20, np.uint8)
        frame[30 : 80 - t, 40:72] = 200
        writer.write(frame)
    writer.release()


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as file:
        csv.writer(file).writerows([header, *rows])


def tracing_rows(name: str, frame: int, box: tuple[int, int, int, int]) -> list[list]:
    """EchoNet rows of a rectangular cavity: the long axis, then 6 chords with ends off the px grid."""
    x0, x1, y0, y1 = box
    rows = [[name, (x0 + x1) / 2, y0 - 4.2, (x0 + x1) / 2 + 1.3, y1 + 2.7, frame]]
    for y in np.linspace(y0, y1, 6):
        rows.append([name, x0 + 0.3, y + 0.2, x1 - 0.4, y - 0.3, frame])
    return rows


def write_echonet(root: Path, *, suffix: bool, labels: bool = True, tracings: bool = True) -> Path:
    """The release layout: FileList.csv (names with or without ``.avi``), Videos/, VolumeTracings.csv."""
    for name, (frames, _, _) in VIDEOS.items():
        write_avi(root / "Videos" / f"{name}.avi", frames)
    header = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
    rows = [[name + ".avi" * suffix, EF[name], 20.0, 50.0, 112, 112, 50, frames, split]
            for name, (frames, split, _) in VIDEOS.items()]  # fmt: skip
    if not labels:
        header, rows = ["FileName", "Split"], [[row[0], row[-1]] for row in rows]
    write_csv(root / "FileList.csv", header, rows)
    if tracings:  # the release's VolumeTracings names carry the suffix
        traced = [r for name, (_, _, boxes) in VIDEOS.items() for f, b in boxes.items()
                  for r in tracing_rows(f"{name}.avi", f, b)]  # fmt: skip
        write_csv(root / "VolumeTracings.csv", ["FileName", "X1", "Y1", "X2", "Y2", "Frame"], traced)
    return root


@pytest.fixture
def echonet(tmp_path) -> Path:
    return write_echonet(tmp_path / "EchoNet-Dynamic", suffix=False)


@pytest.mark.parametrize("suffix", [False, True])
def test_filelist_names_match_videos_and_tracings_with_or_without_the_suffix(tmp_path, suffix):
    root = write_echonet(tmp_path / "echonet", suffix=suffix)
    data = open_dataset(root, "all", kind="video")
    assert detect_format(root) == "echonet" and isinstance(data, (EchoNetDataset, VideoDataset))
    assert data.cases == list(VIDEOS) and data.patients == sorted(VIDEOS)
    sample = data.sample("0XAAAA")
    assert isinstance(sample, VideoSample)
    assert sample.frames.shape == (20, 112, 112) and sample.frames.dtype == np.uint8 and sample.fps == 50.0
    assert (sample.ef, sample.esv, sample.edv, sample.view, sample.split) == (62.5, 20.0, 50.0, "4CH", "train")
    assert sample.traced is not None and sorted(sample.labels) == [3, 12]
    assert data.source_files(0) == (root / "Videos" / "0XAAAA.avi", root / "VolumeTracings.csv")
    assert data.problems == [f"{root / 'VolumeTracings.csv'}: no tracing for 1 listed videos, e.g. 0XCCCC"]


def test_tracings_become_the_polygon_mask_and_the_larger_cavity_is_ed(echonet):
    sample = open_dataset(echonet, kind="video").sample("0XAAAA")
    ed, es = VIDEOS["0XAAAA"][2][3], VIDEOS["0XAAAA"][2][12]
    assert (sample.traced.ed, sample.traced.es) == (3, 12)  # by area, although VolumeTracings lists 12 first
    assert (sample.traced.ed_area_px, sample.traced.es_area_px) == (rect_area(*ed), rect_area(*es))
    assert sample.traced.source == "VolumeTracings.csv" and sample.structures == ("lv_endo",)
    expected = np.zeros((112, 112), np.uint8)
    expected[ed[2] : ed[3] + 1, ed[0] : ed[1] + 1] = 1  # rows y0..y1, columns x0..x1, outline included
    np.testing.assert_array_equal(sample.labels[3], expected)
    assert sample.labels[12].sum() == rect_area(*es) and sample.labels[12].dtype == np.uint8


def test_tracing_mask_is_echonets_construction():
    skimage_draw = pytest.importorskip("skimage.draw")
    rng = np.random.default_rng(3)
    for _ in range(20):  # irregular tracings, some running off the frame
        n = int(rng.integers(3, 22))
        segments = np.column_stack([rng.uniform(-5, 117, n), rng.uniform(-5, 117, n),
                                    rng.uniform(-5, 117, n), rng.uniform(-5, 117, n)])  # fmt: skip
        # echonet/datasets/echo.py: the first row is the long axis; X1 of the rest, then X2 reversed
        x = np.concatenate((segments[1:, 0], np.flip(segments[1:, 2])))
        y = np.concatenate((segments[1:, 1], np.flip(segments[1:, 3])))
        r, c = skimage_draw.polygon(np.rint(y).astype(int), np.rint(x).astype(int), (112, 100))
        reference = np.zeros((112, 100), bool)
        reference[r, c] = True
        np.testing.assert_array_equal(tracing_mask(segments, (112, 100)), reference)


def test_polygon_mask_counts_the_outline_and_clips_to_the_frame():
    square = polygon_mask(np.array([2, 5, 5, 2]), np.array([1, 1, 4, 4]), (8, 8))
    assert square.sum() == 16 and square[1:5, 2:6].all()
    assert polygon_mask(np.array([-3, 4, 4, -3]), np.array([-3, -3, 2, 2]), (8, 8)).sum() == 15  # 5 x 3 inside
    assert not polygon_mask(np.array([20, 30, 25]), np.array([20, 20, 30]), (8, 8)).any()


def test_splits_come_from_the_split_column(echonet):
    assert open_dataset(echonet, "all", kind="video").splits() == {"train": 1, "val": 1, "test": 1}
    assert open_dataset(echonet, "val", kind="video").cases == ["0XBBBB"]
    assert open_dataset(echonet, "test", kind="auto").cases == ["0XCCCC"]


def test_echonet_opened_as_images_says_how_to_open_it(echonet):
    with pytest.raises(DataError, match="has no image samples.*kind='video'"):
        open_dataset(echonet, "all")


def test_label_free_filelist_without_tracings(tmp_path):
    root = write_echonet(tmp_path / "echonet", suffix=True, labels=False, tracings=False)
    sample = open_dataset(root, "test", kind="video").sample("0XCCCC")
    assert (sample.ef, sample.edv, sample.esv, sample.traced, sample.labels) == (None, None, None, None, {})
    assert sample.fps == 50.0 and sample.frames.shape == (14, 112, 112) and sample.meta["warnings"] == []
    (root / "FileList.csv").write_text("FileName\n0XAAAA\n")  # not even a Split column
    data = open_dataset(root, kind="video")
    assert data.cases == ["0XAAAA"] and data.splits() == {"": 1}
    assert any("no Split column" in p for p in data.problems)


def test_traced_frames_table_gives_ed_es_without_tracings(tmp_path):
    root = write_echonet(tmp_path / "echonet", suffix=False, tracings=False)
    write_csv(root / "TracedFrames.csv", ["FileName", "frame_a", "frame_b", "area_a_px", "area_b_px"],
              [["0XAAAA.avi", 3, 12, 900.0, 1500.0]])  # fmt: skip
    data = open_dataset(root, kind="video")
    traced = data.sample("0XAAAA").traced
    assert (traced.ed, traced.es, traced.ed_area_px, traced.es_area_px) == (12, 3, 1500.0, 900.0)
    assert traced.source == "TracedFrames.csv" and data.sample("0XAAAA").labels == {}
    assert data.sample("0XBBBB").traced is None


def test_filelist_that_disagrees_with_the_video_is_a_warning(echonet):
    rows = (echonet / "FileList.csv").read_text().replace("50,20,TRAIN", "50,25,TRAIN")
    (echonet / "FileList.csv").write_text(rows)
    warnings = open_dataset(echonet, kind="video").sample("0XAAAA").meta["warnings"]
    assert warnings == [f"{echonet / 'FileList.csv'}: NumberOfFrames 25 for 0XAAAA.avi, the video has 20"]


def test_missing_video_is_named_or_skipped_and_listed(echonet):
    (echonet / "Videos" / "0XBBBB.avi").unlink()
    with pytest.raises(MissingVideoError, match=r"FileList\.csv:3: lists '0XBBBB', but .*Videos/0XBBBB\.avi is not"):
        open_dataset(echonet, kind="video")
    data = open_dataset(echonet, kind="video", on_missing="skip")
    assert data.cases == ["0XAAAA", "0XCCCC"] and len(data.skipped) == 1 and "0XBBBB" in data.skipped[0]
    assert open_dataset(echonet, "train", kind="video").cases == ["0XAAAA"]  # only the split's rows are checked


def test_truncated_video_is_named_when_loaded_and_listed_by_check(echonet):
    video = echonet / "Videos" / "0XBBBB.avi"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    data = open_dataset(echonet, kind="video")
    with pytest.raises(VideoError, match=r"0XBBBB\.avi: truncated"):
        data.sample("0XBBBB")
    assert [p.split(":")[0] for p in data.check()] == [str(video)]


def test_bad_filelist_is_named(echonet):
    (echonet / "FileList.csv").write_text("Name,EF\n0XAAAA,60\n")
    with pytest.raises(DataError, match=r"FileList\.csv: this EchoNet FileList lacks the columns \['FileName'\]"):
        open_dataset(echonet, kind="video")
    (echonet / "FileList.csv").write_text("FileName,EF\n0XAAAA,60\n0XBBBB,high\n")
    with pytest.raises(DataError, match=r"FileList\.csv:3: EF 'high' is not a number"):
        open_dataset(echonet, kind="video")
    (echonet / "Videos" / "0XAAAA.avi").rename(echonet / "0XAAAA.avi")
    (echonet / "Videos").rename(echonet / "videos_elsewhere")
    with pytest.raises(DataError, match="Videos: folder not found"):
        open_dataset(echonet, kind="video")


def test_a_frame_of_a_video_is_an_echo_sample(echonet):
    sample = open_dataset(echonet, kind="video").sample("0XAAAA")
    frame = sample.frame(3)
    assert isinstance(frame, EchoSample) and (frame.case_id, frame.phase) == ("0XAAAA_f004", "ED")
    assert frame.label is sample.labels[3] and frame.meta["spacing_unit"] == "px" and frame.meta["ef"] == 62.5
    assert sample.frame(5).label is None and sample.frame(-1).case_id == "0XAAAA_f020"
    np.testing.assert_allclose(sample.frame_times_ms()[:3], [0.0, 20.0, 40.0])


# ---- CAMUS sequences through the same interface -------------------------------------------------------


def write_half_sequence(root: Path, frames: int = 5, spacing: tuple[float, float] = (0.31, 0.45)) -> Path:
    """A one-patient CAMUS 2023 tree: a 4CH half-sequence with its label maps, Info file and split file."""
    import SimpleITK as sitk

    folder = root / "database_nifti" / "patient0001"
    folder.mkdir(parents=True)
    images = np.full((frames, 60, 50), 30, np.uint8)
    labels = np.zeros((frames, 60, 50), np.uint8)
    for t in range(frames):
        labels[t, 10 : 40 - 2 * t, 15:35] = 1  # the cavity shrinks from ED (first) to ES (last)
        labels[t, 45:55, 18:32] = 3
        images[t][labels[t] > 0] = 180
    for suffix, array in (("", images), ("_gt", labels)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((*spacing, 1.0))
        sitk.WriteImage(image, str(folder / f"patient0001_4CH_half_sequence{suffix}.nii.gz"))
    info = f"ED: 1\nES: {frames}\nNbFrame: {frames}\nSex: F\nAge: 61\nImageQuality: Good\nEF: 57.5\nFrameRate: 31\n"
    (folder / "Info_4CH.cfg").write_text(info)
    (root / "database_split").mkdir()
    (root / "database_split" / "subgroup_testing.txt").write_text("patient0001\n")
    return root


def test_camus_half_sequence_is_a_video_sample(tmp_path):
    root = write_half_sequence(tmp_path / "camus")
    data = open_dataset(root, "test", kind="video", views=["4CH"])
    sample = data.sample("patient0001_4CH")
    assert isinstance(sample, VideoSample) and sample.frames.shape == (5, 60, 50)
    assert sample.spacing == pytest.approx((0.31, 0.45)) and sample.fps == 31.0 and sample.ef == 57.5
    assert (sample.traced.ed, sample.traced.es, sample.traced.source) == (0, 4, "Info_4CH.cfg")
    assert (sample.traced.ed_area_px, sample.traced.es_area_px) == (30 * 20, 22 * 20)
    assert sorted(sample.labels) == list(range(5)) and set(np.unique(sample.labels[2])) == {0, 1, 3}
    assert sample.structures == ("lv_endo", "myo", "la") and sample.edv is None
    assert data.source_files(0)[1].name == "patient0001_4CH_half_sequence_gt.nii.gz"


def test_camus_releases_yield_one_video_per_patient_and_view(nifti_root, mhd_root):
    nifti = open_dataset(nifti_root, "all", kind="video")
    assert len(nifti) == 20 and nifti.splits() == {"train": 16, "val": 2, "test": 2}
    assert nifti.sample("patient0002_2CH").frames.shape == (3, 96, 80)
    mhd = open_dataset(mhd_root, "test", kind="video", save_splits=False)  # 2019: *_sequence.mhd, no labels
    sample = mhd[0]
    assert len(mhd) == 4 and sample.labels == {} and sample.frames.shape == (3, 96, 80)
    assert sample.esv is not None and sample.traced.ed_area_px is None


def test_camus_without_sequences_says_so(camus_root):
    with pytest.raises(DataError, match="no \\*_half_sequence.nii.gz files"):
        open_dataset(camus_root, kind="video")
