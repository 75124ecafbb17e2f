"""DICOM variants that reproduce what real scanners' files did to ``predict --input`` (issue 29).

Each writer makes one small ultrasound file (a bright LV-like blob in speckle that shrinks and grows, so a
box-prompted ellipse has a beat) with one property of a real file the toolkit once failed on: single-frame
US Image Storage, missing or non-conformant patient / study attributes, PALETTE COLOR, 16-bit, big endian,
a region that does not fit, implausible region deltas, broken Frame Time Vectors, R-waves outside the loop,
a cut JPEG frame, a non-apical or non-cardiac series. No real file is kept in the repository: the real ones
come from the ``dicom-test`` extra (pydicom-data) in ``tests/cli/test_real_dicom.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRBigEndian

from medsam_echo.data.dicom_write import write_us_cine

SIZE = (64, 56)  # (H, W) px
FRAMES = 8
FRAME_MS = 60.0
SPACING = (0.4, 0.5)  # (sx, sy) mm per px
BOXES = {0: [16, 14, 40, 50], 4: [20, 20, 36, 44]}  # ED and ES boxes of the blob (x0, y0, x1, y1)


def loop(frames: int = FRAMES, size: tuple[int, int] = SIZE, seed: int = 0) -> np.ndarray:
    """``(T, H, W)`` uint8: speckle with an ellipse that shrinks to frame 4 and grows back."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    out = []
    for t in range(frames):
        k = 1.0 - 0.3 * np.sin(np.pi * min(t, 8 - t) / 8) if t <= 8 else 1.0
        inside = ((xx - w / 2) / (12 * k)) ** 2 + ((yy - h / 2) / (18 * k)) ** 2 <= 1
        out.append(np.clip(40 + 150 * inside + rng.normal(0, 12, size), 0, 255))
    return np.stack(out).astype(np.uint8)


def us_loop(path: Path, frames: int = FRAMES, **kwargs) -> Path:
    """A good apical 4CH loop (region spacing, Frame Time): the base every variant changes."""
    kwargs = {"spacing": SPACING, "frame_time_ms": FRAME_MS, "description": "Apical 4CH", **kwargs}
    return write_us_cine(path, loop(frames), **kwargs)


def edit(path: Path, change) -> Path:
    """Read ``path``, let ``change(ds)`` alter it, write it back."""
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    return path


def prompts_file(path: Path, key: str, *, plain: bool = False, entries: list | None = None) -> Path:
    """``PROMPTS.json`` for loop ``key``: ED / ES boxes, or (``plain``) one list for every frame."""
    if entries is not None:
        spec = entries
    elif plain:
        spec = [{"structure": "lv_endo", "box": BOXES[0]}]
    else:
        spec = {str(t): [{"structure": "lv_endo", "box": box}] for t, box in BOXES.items()}
    path.write_text(json.dumps({key: spec}))
    return path


# --- the variants -----------------------------------------------------------------------------------------


def single_frame(path: Path, compression: str = "none") -> Path:
    """US Image Storage (the single-frame class), no Number of Frames (16 of the 22 real files)."""
    return write_us_cine(path, loop(1), spacing=SPACING, description="Apical 4CH", compression=compression)


def bad_patient_study(path: Path, frames: int = FRAMES) -> Path:
    """No Patient ID / Sex / Study ID / Accession Number, ACR-NEMA style date, a time with 7 fractional
    digits (Medistim), a Patient Sex that DICOM does not define, and a bad Patient Age."""

    def change(ds):
        for keyword in ("PatientID", "PatientSex", "StudyID", "AccessionNumber", "PatientBirthDate"):
            del ds[keyword]
        ds.StudyDate = "1994.11.05"
        ds.StudyTime = "113933.1234567"
        ds.PatientAge = "forty"
        ds.PatientName = "Anonymized"

    return edit(us_loop(path, frames), change)


def _palette(ds, bits: int) -> None:
    """Replace the grey frames of ``ds`` by PALETTE COLOR indices into a grey-ramp LUT of ``bits`` bits."""
    frames = np.frombuffer(ds.PixelData, np.uint8).reshape(-1, ds.Rows, ds.Columns)
    ramp = np.arange(256) * ((2**bits - 1) // 255)
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = "PALETTE COLOR", 8, 8, 7
    for i in range(3):  # red, green, blue: a grey ramp
        ds.add_new(0x00281101 + i, "US", [256, 0, bits])
        data = ramp.astype("<u2").tobytes() if bits == 16 else ramp.astype(np.uint8).tobytes()
        ds.add_new(0x00281201 + i, "OW", data)
    ds.PixelData = frames.tobytes()


def palette(path: Path, bits: int = 8, frames: int = FRAMES) -> Path:
    """PALETTE COLOR (Philips, Aloka), an 8- or 16-bit LUT."""
    return edit(us_loop(path, frames), lambda ds: _palette(ds, bits))


def sixteen_bit(path: Path, big_endian: bool = False, frames: int = FRAMES) -> Path:
    """MONOCHROME2, 16 bits allocated / 12 stored, little or big endian (Explicit VR Big Endian)."""
    path = us_loop(path, frames)
    ds = pydicom.dcmread(path)
    grey = np.frombuffer(ds.PixelData, np.uint8).reshape(-1, ds.Rows, ds.Columns).astype(np.uint16) * 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelData = grey.astype(">u2" if big_endian else "<u2").tobytes()
    ds["PixelData"].VR = "OW"
    if big_endian:
        _save_big_endian(ds, path)
    else:
        ds.save_as(path)
    return path


def big_endian(path: Path, frames: int = FRAMES) -> Path:
    """8-bit PALETTE COLOR in Explicit VR Big Endian (pydicom's OBXXXX1A_expb)."""
    path = palette(path, 16, frames)
    ds = pydicom.dcmread(path)
    for i in range(3):
        data = np.frombuffer(ds[0x00281201 + i].value, "<u2")
        ds[0x00281201 + i].value = data.astype(">u2").tobytes()
    _save_big_endian(ds, path)
    return path


def _save_big_endian(ds, path: Path) -> None:
    """Write ``ds`` as Explicit VR Big Endian (its OW pixel / LUT bytes must already be big endian)."""
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    pydicom.dcmwrite(path, ds, little_endian=False, implicit_vr=False, force_encoding=True)


def region_outside(path: Path) -> Path:
    """A 2x downscale whose ultrasound region was not rescaled (pydicom's examples_ybr_color.dcm)."""
    small = loop()[:, ::2, ::2]
    return write_us_cine(path, small, spacing=SPACING, region=(0, 0, 2 * small.shape[2] - 1, 2 * small.shape[1] - 1),
                         frame_time_ms=FRAME_MS, description="Apical 4CH")  # fmt: skip


def region_deltas(path: Path, delta: float) -> Path:
    """The sector region's PhysicalDeltaX (cm per px) set to ``delta`` (zero, NaN, inf, huge, tiny)."""

    def change(ds):
        ds.SequenceOfUltrasoundRegions[1].PhysicalDeltaX = delta

    return edit(us_loop(path), change)


def frame_time_vector(path: Path, vector: list[float]) -> Path:
    """A Frame Time Vector (ms increments, first 0) in place of the Frame Time."""

    def change(ds):
        del ds.FrameTime
        ds.FrameTimeVector = vector
        ds.FrameIncrementPointer = 0x00181065

    return edit(us_loop(path), change)


def r_waves(path: Path, times_ms: list[float]) -> Path:
    """An R Wave Time Vector (ms from the first frame)."""
    return us_loop(path, r_waves_ms=times_ms)


def cut_jpeg(path: Path) -> Path:
    """JPEG baseline whose last frame lost its second half (a cut transfer)."""
    path = us_loop(path, compression="jpeg")
    ds = pydicom.dcmread(path)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    frames[-1] = frames[-1][: len(frames[-1]) // 2]
    ds.PixelData = encapsulate(frames)
    ds.save_as(path)
    return path


def series(path: Path, description: str, frames: int = FRAMES, **changes) -> Path:
    """A loop whose Series Description is ``description`` (e.g. ``"PLAX"``), other attributes changed."""

    def change(ds):
        for keyword, value in changes.items():
            setattr(ds, keyword, value)

    return edit(us_loop(path, frames, description=description), change)


def obstetric(path: Path) -> Path:
    """A 2-frame obstetric loop (pydicom-data's OBXXXX1A_2frame): Image Type OBSTETRICAL, no view."""
    return series(path, "", frames=2, ImageType=["ORIGINAL", "PRIMARY", "OBSTETRICAL"])


def no_series_uid(path: Path) -> Path:
    """A loop without a Series Instance UID: its SEG cannot reference it."""

    def change(ds):
        del ds.SeriesInstanceUID

    return edit(us_loop(path), change)
