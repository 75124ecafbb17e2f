"""EchoNet-Dynamic (Ouyang et al., Nature 2020) in its release layout, as a lazy sequence of VideoSample.

Layout (see ``docs/echonet.md``)::

    root/FileList.csv        FileName[,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames][,Split]
    root/Videos/<name>.avi   (or .mp4)
    root/VolumeTracings.csv  optional: FileName,X1,Y1,X2,Y2,Frame -- one row per traced segment
    root/TracedFrames.csv    optional, used without VolumeTracings: FileName,frame_a,frame_b,area_a_px,area_b_px

Names match with or without the video suffix (the release's FileList has none, its VolumeTracings has
``.avi``). ``Split`` TRAIN / VAL / TEST becomes ``train`` / ``val`` / ``test``. A FileList without EF / EDV /
ESV gives samples whose indices are ``None``. Each traced frame of ``VolumeTracings.csv`` becomes an LV
cavity mask as EchoNet's ``echonet/datasets/echo.py`` builds it: the frame's first row is the long axis; the
other rows' ``(X1, Y1)`` ends, then their ``(X2, Y2)`` ends in reverse order, rounded to whole px, outline
the cavity, filled as ``skimage.draw.polygon`` fills (pixel centres inside or on the outline). ED is the
traced frame with the larger cavity, ES the one with the smaller. Videos carry no spacing: areas are px.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from medsam_echo.data.base import Case
from medsam_echo.data.io import DataError, read_text
from medsam_echo.data.sample import LABELS, TracedFrames, VideoSample
from medsam_echo.data.video import VIDEO_SUFFIXES, VideoDataset, is_video_file, read_video

FILE_LIST, VIDEOS, TRACINGS, TRACED = "FileList.csv", "Videos", "VolumeTracings.csv", "TracedFrames.csv"
SPLITS = {"TRAIN": "train", "VAL": "val", "TEST": "test"}
VIEW = "4CH"  # EchoNet-Dynamic holds apical four-chamber videos
NUMBERS = {"ef": "EF", "edv": "EDV", "esv": "ESV", "fps": "FPS", "n_frames": "NumberOfFrames",
           "height": "FrameHeight", "width": "FrameWidth"}  # fmt: skip
TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")
TRACED_COLUMNS = ("FileName", "frame_a", "frame_b", "area_a_px", "area_b_px")


def video_key(name: str) -> str:
    """A FileName without its video suffix (``0X1A.avi`` and ``0X1A`` are the same video)."""
    name = name.strip()
    return name[: -len(Path(name).suffix)] if is_video_file(name) else name


def read_table(path: Path, what: str, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV file with a header holding ``required``; errors name the file."""
    reader = csv.DictReader(io.StringIO(read_text(path, what).lstrip("\ufeff")))
    reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in required if name not in reader.fieldnames]
    if missing:
        raise DataError(f"{path}: this {what} lacks the columns {missing} (it has {reader.fieldnames})")
    return [(reader.line_num, row) for row in reader]


def _number(row: dict[str, str], column: str, where: str) -> float | None:
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {column} {text!r} is not a number") from None
    return value if math.isfinite(value) else None


def _integer(row: dict[str, str], column: str, where: str) -> int:
    value = _number(row, column, where)
    if value is None or value != int(value) or value < 0:
        raise DataError(f"{where}: {column} {row.get(column)!r} is not a frame index (an integer >= 0)")
    return int(value)


def read_tracings(path: Path) -> dict[str, dict[int, np.ndarray]]:
    """``VolumeTracings.csv`` as ``{video key: {frame: (N, 4) X1, Y1, X2, Y2 px}}``, rows in file order."""
    traces: dict[str, dict[int, list[list[float]]]] = {}
    for line, row in read_table(path, "EchoNet tracings file", TRACING_COLUMNS):
        where = f"{path}:{line}"
        ends = [_number(row, column, where) for column in TRACING_COLUMNS[1:5]]
        if any(v is None for v in ends):
            raise DataError(f"{where}: X1, Y1, X2, Y2 must all be numbers, got {[row[c] for c in TRACING_COLUMNS[1:5]]}")
        frame = _integer(row, "Frame", where)
        traces.setdefault(video_key(row["FileName"]), {}).setdefault(frame, []).append(ends)
    return {key: {f: np.array(rows, float) for f, rows in frames.items()} for key, frames in traces.items()}


def read_traced_frames(path: Path) -> dict[str, TracedFrames]:
    """A ``TracedFrames.csv`` table as ``{video key: TracedFrames}``; the frame with the larger area is ED."""
    table = {}
    for line, row in read_table(path, "traced-frames table", TRACED_COLUMNS):
        where = f"{path}:{line}"
        frames = (_integer(row, "frame_a", where), _integer(row, "frame_b", where))
        areas = (_number(row, "area_a_px", where), _number(row, "area_b_px", where))
        if None in areas:
            raise DataError(f"{where}: area_a_px and area_b_px must be numbers (the larger one tells ED from ES)")
        ed = 0 if areas[0] >= areas[1] else 1
        table[video_key(row["FileName"])] = TracedFrames(frames[ed], frames[1 - ed], areas[ed], areas[1 - ed], TRACED)
    return table


def tracing_mask(segments: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """EchoNet's LV cavity mask ``(H, W)`` bool of one traced frame.

    Args:
        segments: ``(N, 4)`` rows ``X1, Y1, X2, Y2`` px in file order: row 0 is the long axis, rows 1.. the
            chords whose ``(X1, Y1)`` ends, then ``(X2, Y2)`` ends in reverse order, outline the cavity.
        shape: ``(H, W)`` of the frame.
    """
    x = np.concatenate([segments[1:, 0], segments[:0:-1, 2]])
    y = np.concatenate([segments[1:, 1], segments[:0:-1, 3]])
    return polygon_mask(np.rint(x), np.rint(y), shape)


def polygon_mask(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: the pixels whose centre ``(col, row)`` is inside or on the polygon ``(x, y)`` px.

    The rule of ``skimage.draw.polygon`` (O'Rourke's crossing test: inside, on an edge or on a vertex),
    on the polygon's bounding box within the frame.
    """
    mask = np.zeros(shape, bool)
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0:
        return mask
    r0, r1 = max(0, math.floor(y.min())), min(shape[0] - 1, math.ceil(y.max()))
    c0, c1 = max(0, math.floor(x.min())), min(shape[1] - 1, math.ceil(x.max()))
    if r0 > r1 or c0 > c1:
        return mask
    x0 = x - np.arange(c0, c1 + 1, dtype=float)[None, :, None]  # (1, C, N): vertices relative to the pixel
    y0 = y - np.arange(r0, r1 + 1, dtype=float)[:, None, None]  # (R, 1, N)
    x1, y1 = np.roll(x0, 1, axis=-1), np.roll(y0, 1, axis=-1)  # the previous vertex of each edge
    vertex = ((np.abs(x0) < 1e-12) & (np.abs(y0) < 1e-12)).any(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (x0 * y1 - x1 * y0) / (y1 - y0)  # where the edge meets the pixel's row, relative to it
    right = np.count_nonzero(((y0 > 0) != (y1 > 0)) & (cross > 0), axis=-1)
    left = np.count_nonzero(((y0 < 0) != (y1 < 0)) & (cross < 0), axis=-1)
    mask[r0 : r1 + 1, c0 : c1 + 1] = vertex | (right % 2 == 1) | (left % 2 == 1)
    return mask


class EchoNetDataset(VideoDataset):
    """The videos of an EchoNet-Dynamic release (see the module docstring), decoded lazily.

    Args:
        root: the folder holding ``FileList.csv`` and ``Videos/``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` for every video.
        on_missing: ``"raise"``: a FileList row whose video is not in ``Videos/`` raises
            :class:`~medsam_echo.data.video.MissingVideoError`; ``"skip"``: it is left out and listed in
            :attr:`skipped`.
    """

    def __init__(self, root: str | Path, split: str | None = None, *, on_missing: str = "raise") -> None:
        if split not in (None, *SPLITS.values()):
            raise ValueError(f"split must be 'train', 'val', 'test' or None, got {split!r}")
        super().__init__(on_missing)
        self.root = Path(root)
        self.file_list, self.videos = self.root / FILE_LIST, self.root / VIDEOS
        if not self.videos.is_dir():
            raise DataError(f"{self.videos}: folder not found; the EchoNet layout keeps its videos in Videos/")
        self.tracings_path = self.root / TRACINGS if (self.root / TRACINGS).is_file() else None
        self.tracings = read_tracings(self.tracings_path) if self.tracings_path else {}
        self.traced_path = self.root / TRACED if not self.tracings and (self.root / TRACED).is_file() else None
        self.traced = read_traced_frames(self.traced_path) if self.traced_path else {}
        self._rows: dict[str, dict] = {}
        self._set_cases(self._index(split))

    def _index(self, split: str | None) -> list[Case]:
        rows = read_table(self.file_list, "EchoNet FileList", ("FileName",))
        on_disk, unknown, cases = {p.name for p in self.videos.iterdir()}, set(), []
        label_path = self.tracings_path or self.traced_path
        for line, row in rows:
            where, key = f"{self.file_list}:{line}", video_key(row["FileName"])
            if key in self._rows:
                raise DataError(f"{where}: video {key!r} is listed twice")
            self._rows[key] = {**{k: _number(row, column, where) for k, column in NUMBERS.items()}, "row": row}
            value = (row.get("Split") or "").strip().upper()
            unknown |= {value} if value and value not in SPLITS else set()
            if split is not None and SPLITS.get(value) != split:
                continue
            names = [row["FileName"].strip()] if is_video_file(row["FileName"]) else [key + s for s in VIDEO_SUFFIXES]
            name = next((n for n in names if n in on_disk), None)
            if name is None:
                self._missing(f"{where}: lists {row['FileName'].strip()!r}, but {self.videos / names[0]} is not there")
                continue
            has_trace = key in self.tracings or key in self.traced
            cases.append(Case(key, key, SPLITS.get(value, ""), self.videos / name, label_path if has_trace else None, VIEW))
        self._note(rows, unknown, on_disk)
        return cases

    def _note(self, rows: list, unknown: set[str], on_disk: set[str]) -> None:
        """Findings that do not stop loading go to :attr:`problems`."""
        if rows and "Split" not in rows[0][1]:
            self.problems.append(f"{self.file_list}: no Split column; every video has split ''")
        if unknown:
            self.problems.append(f"{self.file_list}: Split values {sorted(unknown)} are none of {list(SPLITS)}; "
                                 "those videos have split ''")
        traced = self.tracings or self.traced
        untraced = sorted(k for k in self._rows if traced and k not in traced)
        if untraced:
            self.problems.append(f"{self.tracings_path or self.traced_path}: no tracing for {len(untraced)} listed "
                                 f"videos, e.g. {untraced[0]}")
        unlisted = sorted(n for n in on_disk if is_video_file(n) and video_key(n) not in self._rows)
        if unlisted:
            self.problems.append(f"{self.videos}: {len(unlisted)} videos not in {FILE_LIST}, e.g. {unlisted[0]}")

    def _load(self, case: Case) -> VideoSample:
        video, info = read_video(case.image_path), self._rows[case.case_id]
        labels, traced, warnings = {}, self.traced.get(case.case_id), self._warnings(video, info)
        if case.case_id in self.tracings:
            labels, traced = self._masks(case, video.frames.shape[1:], warnings)
        used = set(labels) | ({traced.ed, traced.es} if traced else set())
        if used and max(used) >= len(video.frames):
            raise DataError(f"{case.label_path}: traced frames {sorted(used)} of {case.case_id} are not all in its "
                            f"video {case.image_path} ({len(video.frames)} frames)")
        meta = {"layout": "echonet", "video_path": str(case.image_path), "file_list": info["row"],
                "label_path": str(case.label_path) if case.label_path else None,
                "warnings": warnings}  # fmt: skip
        return VideoSample(
            video.frames, video.fps or info["fps"], case.case_id, spacing=None, patient=case.patient,
            view=case.view, split=case.split, ef=info["ef"], edv=info["edv"], esv=info["esv"], traced=traced,
            labels=labels, structures=("lv_endo",) if labels else (), meta=meta,
        )  # fmt: skip

    def _masks(self, case: Case, shape: tuple[int, int], warnings: list[str]) -> tuple[dict, TracedFrames | None]:
        """Label maps (LV cavity = 1) of the traced frames, and ED / ES by their areas."""
        labels, areas = {}, {}
        for frame, segments in sorted(self.tracings[case.case_id].items()):
            mask = tracing_mask(segments, shape)
            labels[frame], areas[frame] = mask.astype(np.uint8) * LABELS["lv_endo"], float(mask.sum())
        if len(areas) < 2:
            warnings.append(f"{self.tracings_path}: {case.case_id} has {len(areas)} traced frame(s); no ED / ES pair")
            return labels, None
        if len(areas) > 2:
            warnings.append(f"{self.tracings_path}: {case.case_id} has {len(areas)} traced frames; ED is the largest "
                            "cavity, ES the smallest")
        ed, es = max(areas, key=areas.get), min(areas, key=areas.get)
        return labels, TracedFrames(ed, es, areas[ed], areas[es], TRACINGS)

    def _warnings(self, video, info: dict) -> list[str]:
        """Where the FileList and the decoded video disagree (frame count, size, frame rate)."""
        found = {"n_frames": len(video.frames), "height": video.frames.shape[1], "width": video.frames.shape[2],
                 "fps": video.fps}  # fmt: skip
        return [
            f"{self.file_list}: {NUMBERS[key]} {info[key]:g} for {video.path.name}, the video has {value:g}"
            for key, value in found.items()
            if info[key] is not None and value is not None and not math.isclose(info[key], value, rel_tol=0.01)
        ]
