"""Video files in (AVI, MP4 through OpenCV), and what every video dataset shares.

- :func:`read_video`: a ``.avi`` / ``.mp4`` file as ``(T, H, W)`` uint8 grey frames (colour frames by the
  luma ``0.299 R + 0.587 G + 0.114 B``, as DICOM colour loops) and its frame rate.
- :class:`VideoDataset`: a :class:`~medsam_echo.data.base.CaseDataset` whose items are
  :class:`~medsam_echo.data.sample.VideoSample` (EchoNet-Dynamic, CAMUS sequences); ``Case.image_path`` is
  the video, ``Case.label_path`` its tracings or label file.

Bad files raise errors that name the file: :class:`MissingVideoError` (a listed video is not there) and
:class:`VideoError` (not a video, cut short or undecodable). A file is cut short when its container says
it is longer than it is (an AVI's RIFF chunks, an MP4's top-level boxes), or when fewer frames decode than
its header counts. Damage inside a frame's compressed data is not found: decoders conceal it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from medsam_echo.data.base import Case, CaseDataset
from medsam_echo.data.io import DataError, display_path, is_utf8
from medsam_echo.data.sample import VideoSample

VIDEO_SUFFIXES = (".avi", ".mp4")


class VideoError(DataError):
    """A video file is not a video, is cut short, or cannot be decoded; the message names the file."""


class MissingVideoError(DataError):
    """A video a dataset lists is not on disk; the message names the expected path."""


@dataclass(frozen=True)
class Video:
    """A decoded video file.

    Attributes:
        path: the file. frames: ``(T, H, W)`` uint8 grey, in time order.
        fps: frames per second from the container, or ``None`` when it gives none.
    """

    path: Path
    frames: np.ndarray
    fps: float | None


def is_video_file(path: str | Path) -> bool:
    """Whether ``path`` has a video suffix this reader takes (``.avi``, ``.mp4``; any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_video(path: str | Path) -> Video:
    """Decode every frame of the ``.avi`` / ``.mp4`` file at ``path`` with OpenCV (FFmpeg backend).

    Raises:
        MissingVideoError: no such file.
        VideoError: not a video, cut short (see the module docstring), or no frame decodes.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingVideoError(f"{display_path(path)}: video file not found")
    if not is_utf8(path):
        raise VideoError(f"{display_path(path)}: OpenCV cannot open a file whose name is not UTF-8; rename it")
    check_container(path)
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise VideoError(f"{display_path(path)}: not a video OpenCV can open (corrupt, or an unknown codec)")
        counted = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        frames = _decode(capture)
    finally:
        capture.release()
    if not frames:
        raise VideoError(f"{display_path(path)}: no frame could be decoded (corrupt or empty video)")
    if counted > len(frames):
        raise VideoError(f"{display_path(path)}: truncated or corrupt: its header counts {counted} frames, "
                         f"only {len(frames)} decode")
    return Video(path, np.stack(frames), fps if np.isfinite(fps) and fps > 0 else None)


def _decode(capture: cv2.VideoCapture) -> list[np.ndarray]:
    """Every frame left in ``capture``, grey (OpenCV decodes BGR; its grey is the luma)."""
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)


def check_container(path: Path) -> None:
    """Raise :class:`VideoError` if the AVI's RIFF chunks or the MP4's top-level boxes run past the file's end.

    Only the container's own chunks are followed (AVI: ``RIFF`` and its OpenDML ``RIFF AVIX`` sequels; MP4:
    boxes with a four-letter type); bytes after them are left alone.
    """
    size, suffix = path.stat().st_size, path.suffix.lower()
    with path.open("rb") as file:
        head = file.read(12)
        if suffix == ".avi" and head[:4] == b"RIFF":
            _walk_avi(file, size, path)
        elif suffix == ".mp4" and head[4:8] == b"ftyp":
            _walk_mp4(file, size, path)


def _walk_avi(file, size: int, path: Path) -> None:
    """RIFF chunks: 4-byte id, 4-byte little-endian size, data padded to an even length."""
    offset = 0
    while offset + 8 <= size:
        file.seek(offset)
        head = file.read(8)
        if head[:4] != b"RIFF":
            return
        length = int.from_bytes(head[4:8], "little")
        offset += 8 + length + (length & 1)
        if offset > size + (length & 1):  # the pad byte of the last chunk may be absent
            _cut(path, offset, size)


def _walk_mp4(file, size: int, path: Path) -> None:
    """ISO boxes: 4-byte big-endian size (header included; 1: a 64-bit size follows; 0: to the end), type."""
    offset = 0
    while offset + 8 <= size:
        file.seek(offset)
        head = file.read(16)
        if not head[4:8].isascii() or not head[4:8].decode("ascii").isprintable():
            return
        length = int.from_bytes(head[:4], "big")
        if length == 0:
            return
        if length == 1:
            length = int.from_bytes(head[8:16], "big") if len(head) == 16 else size + 1
        if length < 8:
            raise VideoError(f"{display_path(path)}: corrupt MP4: the box at byte {offset} has size {length}")
        offset += length
        if offset > size:
            _cut(path, offset, size)


def _cut(path: Path, needed: int, size: int) -> None:
    raise VideoError(f"{display_path(path)}: truncated: its container needs {needed} bytes, the file has {size}")


class VideoDataset(CaseDataset):
    """A lazy sequence of :class:`VideoSample`: a :class:`CaseDataset` whose cases are videos.

    Subclasses fill ``self._cases`` (``image_path``: the video, ``label_path``: its tracings / labels or
    ``None``) and implement ``_load``. A listed video that is missing raises :class:`MissingVideoError`, or
    with ``on_missing="skip"`` is left out and recorded in :attr:`skipped`.
    """

    def _missing(self, message: str) -> None:
        if self.on_missing == "raise":
            raise MissingVideoError(message + " (pass on_missing='skip' to leave such videos out)")
        self.skipped.append(message)

    def _load(self, case: Case) -> VideoSample:
        raise NotImplementedError

    def __getitem__(self, index: int) -> VideoSample:
        return super().__getitem__(index)  # type: ignore[return-value]

    def sample(self, case_id: str) -> VideoSample:
        """The video with id ``case_id``."""
        return super().sample(case_id)  # type: ignore[return-value]
