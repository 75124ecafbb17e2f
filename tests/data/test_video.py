"""Video files through OpenCV: EchoNet-style MJPG AVI and MP4 in, grey frames and frame rate out; broken
files raise errors that name them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from medsam_echo.data.io import DataError
from medsam_echo.data.video import MissingVideoError, VideoError, is_video_file, read_video


def moving_square(frames: int = 12, size: int = 112) -> np.ndarray:
    """``(T, H, W)`` uint8: a bright square sliding right over a dark ramp (frames tell apart)."""
    video = np.tile(np.linspace(10, 60, size, dtype=np.uint8), (frames, size, 1))
    for t in range(frames):
        video[t, 30:70, 20 + 3 * t : 60 + 3 * t] = 220
    return video


def write_video(path: Path, grey: np.ndarray, fps: float = 50.0, fourcc: str = "MJPG") -> Path:
    """Write ``grey`` ``(T, H, W)`` as a 3-channel video (EchoNet's AVIs are 3-channel MJPG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, grey.shape[2:0:-1])
    assert writer.isOpened()
    for frame in grey:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.mark.parametrize(("name", "fourcc", "fps"), [("loop.avi", "MJPG", 50.0), ("loop.mp4", "mp4v", 30.0)])
def test_video_files_decode_to_grey_frames_with_their_frame_rate(tmp_path, name, fourcc, fps):
    truth = moving_square()
    video = read_video(write_video(tmp_path / name, truth, fps, fourcc))
    assert video.frames.shape == truth.shape and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(fps)
    assert np.abs(video.frames.astype(float) - truth).mean() < 4  # lossy codecs
    square_x = [np.nonzero(frame[50] > 140)[0].mean() for frame in video.frames]
    np.testing.assert_allclose(square_x, 39.5 + 3 * np.arange(len(truth)), atol=1)  # every frame in its place


def test_is_video_file_takes_avi_and_mp4_in_any_case():
    assert is_video_file("a.AVI") and is_video_file(Path("b.mp4")) and not is_video_file("c.dcm")


def test_missing_video_is_named(tmp_path):
    with pytest.raises(MissingVideoError, match="nothere.avi: video file not found"):
        read_video(tmp_path / "nothere.avi")


@pytest.mark.parametrize("keep", [0.5, 0.97, "one byte short"])
def test_truncated_avi_is_named(tmp_path, keep):
    data = write_video(tmp_path / "full.avi", moving_square()).read_bytes()
    cut = len(data) - 1 if keep == "one byte short" else int(len(data) * keep)
    (tmp_path / "cut.avi").write_bytes(data[:cut])  # one byte short: only the frame index is lost
    with pytest.raises(VideoError, match=r"cut\.avi: truncated"):
        read_video(tmp_path / "cut.avi")


def test_truncated_mp4_is_named(tmp_path):
    data = write_video(tmp_path / "full.mp4", moving_square(), 30.0, "mp4v").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) - 100])
    with pytest.raises(VideoError, match=r"cut\.mp4: truncated"):
        read_video(tmp_path / "cut.mp4")


@pytest.mark.parametrize("content", [b"", b"not a video at all " * 50, b"RIFF\x10\x00\x00\x00AVI LIST"])
def test_corrupt_video_is_named(tmp_path, content):
    (tmp_path / "bad.avi").write_bytes(content)
    with pytest.raises(VideoError, match=r"bad\.avi: ") as caught:
        read_video(tmp_path / "bad.avi")
    assert isinstance(caught.value, DataError)  # one error family: the CLI maps DataError to its exit code


def test_trailing_bytes_after_the_container_are_not_truncation(tmp_path):
    path = write_video(tmp_path / "padded.avi", moving_square())
    path.write_bytes(path.read_bytes() + b"\x00" * 5)
    assert read_video(path).frames.shape[0] == 12


def test_undecodable_frame_inside_an_intact_container_is_named(tmp_path):
    data = bytearray(write_video(tmp_path / "full.avi", moving_square()).read_bytes())
    chunk = data.find(b"00dc", data.find(b"00dc", data.find(b"movi")) + 8)  # the second frame's chunk
    size = int.from_bytes(data[chunk + 4 : chunk + 8], "little")
    data[chunk + 8 : chunk + 8 + size] = bytes(size)  # its JPEG data zeroed, every size field intact
    (tmp_path / "zeroed.avi").write_bytes(bytes(data))
    with pytest.raises(VideoError, match=r"zeroed\.avi: truncated or corrupt: its header counts 12 frames"):
        read_video(tmp_path / "zeroed.avi")
