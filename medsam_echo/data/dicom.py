"""Read echocardiography DICOM files: single- and multi-frame ultrasound images as grey cine loops.

Accepted: US Image Storage and US Multi-frame Image Storage (and their retired variants), Modality
``US``; photometric interpretations MONOCHROME1 / MONOCHROME2, RGB, YBR_FULL and YBR_FULL_422
(colour frames become grey by the luma ``0.299 R + 0.587 G + 0.114 B``, i.e. the Y of YBR_FULL) and
PALETTE COLOR; transfer syntaxes uncompressed, RLE Lossless (pydicom itself) and JPEG baseline (needs
``pylibjpeg`` + ``pylibjpeg-libjpeg`` or ``Pillow``: ``pip install 'medsam-echo[dicom]'``).

Pixel spacing ``(sx, sy)`` mm per px, first found of:

1. the Sequence of Ultrasound Regions: among the 2-D regions whose physical units are cm in x and y
   (PhysicalUnitsX/YDirection == 3), the largest one -- the region holding the sector, not an ECG or
   Doppler strip; PhysicalDeltaX/Y (cm per px) times 10;
2. Pixel Spacing (0028,0030), which DICOM orders ``(row spacing, column spacing)``, i.e. ``(sy, sx)``;
3. none: ``spacing`` is ``None`` and ``spacing_source`` says distances are in px. Nothing downstream
   makes up a 1 mm spacing.

Nothing doubtful is used silently; each of these is a line in ``DicomCine.warnings`` and the spacing or
timing concerned is then unknown:

- a sector region that does not fit the frame (beyond the 1 px of an exclusive max corner) -- e.g. an
  image downscaled without its region: its deltas would be wrong by the scale, so the spacing is unknown
  and the frames are not cropped;
- a delta (or Pixel Spacing) that is zero, negative, not finite, or outside 0.005-10 mm per px;
- a Frame Time Vector whose length is not the frame count, or with negative, non-finite or zero
  increments after the first (a valid Frame Time is then used instead); a Frame Time that is not > 0;
- R-wave times outside the loop (half a frame of slack at either end) are dropped; R-waves without frame
  times are not used.

Frame times (ms from the first frame) come from Frame Time or Frame Time Vector, else from Cine Rate /
Recommended Display Frame Rate; ECG R-wave times from R Wave Time Vector, else from the peaks of an ECG
channel of the Waveform Sequence (its first sample at Multiplex Group Time Offset ms from the first frame,
0 when absent). The view (``2CH`` / ``4CH``)
is read from Series Description, View Name, the View Code Sequence, Protocol Name or Image Comments;
``DicomCine.view_problem`` says why a loop is known not to be an apical 2CH / 4CH view (a series text
naming another view such as PLAX, or an Image Type naming a non-cardiac exam such as OBSTETRICAL).

A JPEG-family frame (JPEG, JPEG-LS, JPEG 2000) whose code stream lacks its end marker is cut: decoders
fill the missing part with noise, so such a file is refused naming the frame.

Files that are not ultrasound, have no pixel data, are truncated or cannot be decoded raise
:class:`~medsam_echo.data.io.DataError` naming the file.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsam_echo.data.io import DataError

EXTRA_HINT = "pip install 'medsam-echo[dicom]'"
US_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1": "US Image Storage",
    "1.2.840.10008.5.1.4.1.1.3.1": "US Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.6": "US Image Storage (retired)",
    "1.2.840.10008.5.1.4.1.1.3": "US Multi-frame Image Storage (retired)",
}
CM = 3  # PhysicalUnitsX/YDirection value for cm
NO_SPACING = "none: no ultrasound region in cm and no Pixel Spacing; distances in px"
SPACING_RANGE_MM = (0.005, 10.0)  # plausible mm per px of an ultrasound image (0.5 um to 1 cm)
_OTHER_VIEW = re.compile(
    r"\b(PLAX|PSAX|SAX|LAX|APLAX|A3C|A5C|(THREE|3|FIVE|5)\s?CH(AMBERS?)?|PARASTERNAL|SUBCOSTAL|SUPRASTERNAL|"
    r"SHORT\s?AXIS|LONG\s?AXIS|M\s?MODE|DOPPLER)\b"
)
_NON_CARDIAC = re.compile(
    r"OBSTETR|GYN|ABDOM|SMALL PARTS|VASCULAR|UROLOG|TRANSRECTAL|BREAST|MUSCULO|PELVI|FETAL|THYROID|RENAL"
)
_VIEW_TAGS = ("SeriesDescription", "ViewName", "ProtocolName", "ImageComments")
_VIEW_PATTERNS = {
    "2CH": re.compile(r"\b(A?2\s?CH|A2C|(TWO|2)\s?CHAMBERS?)\b"),
    "4CH": re.compile(r"\b(A?4\s?CH|A4C|(FOUR|4)\s?CHAMBERS?)\b"),
}


@dataclass
class DicomCine:
    """One DICOM ultrasound series as a grey loop.

    Attributes:
        path: the file.
        frames: ``(T, H, W)`` grey frames (uint8 for 8-bit files), in file order; ``T`` = 1 for a
            single-frame image. Indexed ``[t, y, x]``.
        spacing: ``(sx, sy)`` mm per px, or ``None`` when the file gives none (distances in px).
        spacing_source: where the spacing came from, in words (module docstring).
        region: ``(x0, y0, x1, y1)`` inclusive px box of the ultrasound region the spacing came from
            (the sector), or ``None``.
        frame_times_ms: ``(T,)`` ms from the first frame, or ``None``.
        r_waves_ms: ECG R-wave times, ms from the first frame, or ``None`` when the file has none.
        r_wave_source: where they came from (``"R Wave Time Vector"`` or ``"ECG waveform, R peaks detected"``).
        heart_rate: beats per minute (Heart Rate tag), or ``None``.
        view: ``"2CH"`` / ``"4CH"`` when the series says so, else ``None``; view_source: the tag it came from.
        view_problem: why the file says it is not an apical 2CH / 4CH view (``""`` when it does not say).
        dataset: the pydicom dataset without its pixel data (what a DICOM SEG references).
        warnings: what was doubtful in the file and not used (module docstring), one line each.
    """

    path: Path
    frames: np.ndarray
    spacing: tuple[float, float] | None
    spacing_source: str
    region: tuple[int, int, int, int] | None = None
    frame_times_ms: np.ndarray | None = None
    r_waves_ms: np.ndarray | None = None
    r_wave_source: str = ""
    heart_rate: float | None = None
    view: str | None = None
    view_source: str = ""
    view_problem: str = ""
    dataset: object = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.frames.shape[0])


def pydicom_module():
    """``pydicom``, or an ImportError naming the extra that installs it."""
    try:
        import pydicom
    except ImportError as err:
        raise ImportError(f"reading DICOM needs pydicom: {EXTRA_HINT}") from err
    return pydicom


def is_dicom_file(path: str | Path) -> bool:
    """True for a ``.dcm`` / ``.dicom`` file, or any file with the ``DICM`` marker at byte 128."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def ultrasound_problem(path: str | Path) -> str | None:
    """Why ``path`` is not an ultrasound image (header only, pixels not decoded), or ``None`` when it is one."""
    pydicom = pydicom_module()
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as err:  # any unreadable header is a reason, reported with the file
        return f"not a readable DICOM file ({err})"
    modality, sop = str(ds.get("Modality", "")), str(ds.get("SOPClassUID", ""))
    if modality != "US" or sop not in US_SOP_CLASSES:
        name = getattr(ds.get("SOPClassUID"), "name", sop) or "none"
        return f"not an ultrasound image (Modality {modality or 'missing'!r}, SOP class {name})"
    return None


def read_dicom_cine(path: str | Path) -> DicomCine:
    """Read one ultrasound DICOM file (module docstring for what is accepted).

    Returns:
        A :class:`DicomCine`; its frames are ``(T, H, W)``, spacing ``(sx, sy)`` mm or ``None``.

    Raises:
        DataError: not DICOM, not ultrasound, no pixel data, truncated or undecodable (names the file).
    """
    path = Path(path)
    ds = _read_dataset(path)
    _check_ultrasound(ds, path)
    _check_frames_complete(ds, path)
    frames = _grey_frames(ds, path)
    notes: list[str] = []
    spacing, source, region = pixel_spacing(ds, frames.shape[1:], notes)
    view, view_source = view_of(ds)
    times = frame_times(ds, len(frames), notes)
    r_waves, r_source = r_wave_times(ds, path)
    r_waves = _r_waves_in_loop(r_waves, times, notes)
    del ds.PixelData
    return DicomCine(
        path=path,
        frames=frames,
        spacing=spacing,
        spacing_source=source,
        region=region,
        frame_times_ms=times,
        r_waves_ms=r_waves,
        r_wave_source=r_source if r_waves is not None else "",
        heart_rate=_float_or_none(ds.get("HeartRate")),
        view=view,
        view_source=view_source,
        view_problem=view_problem(ds) if view is None else "",
        dataset=ds,
        warnings=notes,
    )


def region_fit(box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """``box`` (x0, y0, x1, y1 inclusive px) when it fits the ``(H, W)`` frame, else ``None``.

    A max corner 1 px past the frame (an exclusive bound, as some scanners write it) is clipped; anything
    more does not fit: the region was made for another image (e.g. before a resize).
    """
    h, w = size
    x0, y0, x1, y1 = box
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return x0, y0, min(x1, w - 1), min(y1, h - 1)


def _read_dataset(path: Path):
    pydicom = pydicom_module()
    from pydicom.errors import InvalidDicomError

    if not path.is_file():
        raise DataError(f"{path}: DICOM file not found")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path)
            ds.get("PixelData")  # pixel data may be read lazily: touch it so a truncation shows here
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as err:
        raise DataError(f"{path}: not a readable DICOM file, or truncated ({err})") from err
    ended = [str(w.message) for w in caught if "end of file" in str(w.message).lower()]
    if ended:  # pydicom reads a cut-off encapsulated pixel data element with only a warning
        raise DataError(f"{path}: truncated DICOM file ({ended[0]})")
    return ds


def _check_ultrasound(ds, path: Path) -> None:
    modality, sop = str(ds.get("Modality", "")), str(ds.get("SOPClassUID", ""))
    if modality != "US" or sop not in US_SOP_CLASSES:
        name = getattr(ds.get("SOPClassUID"), "name", sop) or "none"
        raise DataError(
            f"{path}: not an ultrasound image (Modality {modality or 'missing'!r}, SOP class {name}); "
            f"expected Modality US and one of {sorted(set(US_SOP_CLASSES.values()))}"
        )
    if "PixelData" not in ds:
        raise DataError(f"{path}: the DICOM file has no pixel data")


def _check_frames_complete(ds, path: Path) -> None:
    """Refuse a JPEG-family frame whose code stream has no end marker (FF D9): it was cut."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or not syntax.is_compressed or syntax == "1.2.840.10008.1.2.5":  # RLE has no marker
        return
    from pydicom.encaps import generate_frames

    n = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        frames = list(generate_frames(ds.PixelData, number_of_frames=n))
    except Exception as err:  # a broken Basic Offset Table or fragment items
        raise DataError(f"{path}: the encapsulated pixel data cannot be split into {n} frame(s) ({err})") from err
    for index, frame in enumerate(frames):
        if not frame.rstrip(b"\x00\xff").endswith(b"\xff\xd9"):  # after the pad byte (00 or FF)
            raise DataError(f"{path}: frame {index} of the {getattr(syntax, 'name', syntax)} pixel data is cut "
                            "(no end-of-image marker): the file is damaged")  # fmt: skip


def _grey_frames(ds, path: Path) -> np.ndarray:
    """``(T, H, W)`` grey frames of ``ds``; errors say which decoder to install."""
    pixels = _decode(ds, path)
    n_frames, samples = int(ds.get("NumberOfFrames", 1) or 1), int(ds.get("SamplesPerPixel", 1))
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        pixels, samples = apply_color_lut(pixels, ds), 3
    if n_frames == 1:
        pixels = pixels[None]
    if samples == 3:
        pixels = _luma(pixels)
    elif photometric == "MONOCHROME1":
        pixels = (2 ** int(ds.get("BitsStored", 8)) - 1) - pixels
    if pixels.ndim != 3 or pixels.shape[0] != n_frames:
        raise DataError(f"{path}: expected {n_frames} frame(s) of (rows, columns), got shape {pixels.shape}")
    return np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("="))  # big-endian files: native order


def _decode(ds, path: Path) -> np.ndarray:
    """``ds.pixel_array`` (YBR converted to RGB); a missing decoder or damaged pixel data named."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    try:
        return ds.pixel_array
    except Exception as err:  # pydicom's decoders raise many types; all mean "cannot decode this file"
        missing = isinstance(err, ImportError) or "missing dependencies" in str(err)
        if missing:
            raise DataError(
                f"{path}: cannot decode {getattr(syntax, 'name', syntax)} pixel data: no decoder installed "
                f"({err}); JPEG needs pylibjpeg + pylibjpeg-libjpeg or Pillow: {EXTRA_HINT}"
            ) from err
        raise DataError(f"{path}: pixel data truncated or undecodable ({type(err).__name__}: {err})") from err


def _luma(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB -> ``(...)`` grey, ITU-R BT.601 luma, in the input's integer type."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(grey), 0, np.iinfo(rgb.dtype).max).astype(rgb.dtype)


def pixel_spacing(
    ds, size: tuple[int, int] | None = None, notes: list[str] | None = None
) -> tuple[tuple[float, float] | None, str, tuple[int, int, int, int] | None]:
    """``((sx, sy) mm or None, source in words, sector region (x0, y0, x1, y1) px or None)`` of ``ds``.

    ``size``: the ``(H, W)`` frame the region must fit (default Rows x Columns). What is not used and why
    is appended to ``notes`` (module docstring).
    """
    notes = [] if notes is None else notes
    size = size or (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
    regions = _cm_regions(ds)
    if regions:
        index, box, deltas = max(regions, key=lambda r: (r[1][2] - r[1][0] + 1) * (r[1][3] - r[1][1] + 1))
        what = f"the ultrasound region {index} (x0, y0, x1, y1 = {list(box)} px)"
        fit = region_fit(box, size)
        spacing = tuple(d * 10.0 for d in deltas)
        if fit is None:
            notes.append(f"{what} does not fit the {size[1]} x {size[0]} px frame (resized without its "
                         f"region?): its spacing {_mm(spacing)} is not used, distances are in px, frames not cropped")  # fmt: skip
            return None, "none: the ultrasound region does not fit the image; distances in px", None
        problem = _spacing_problem(spacing)
        if problem:
            notes.append(f"{what}: PhysicalDeltaX/Y give {_mm(spacing)}, {problem}: not used, distances in px")
            return None, "none: the ultrasound region's deltas are not a plausible spacing; distances in px", fit
        return spacing, f"Sequence of Ultrasound Regions, region {index} (PhysicalDeltaX/Y in cm)", fit
    spacing = _float_array(ds.get("PixelSpacing"), strict=False)
    if spacing is not None:
        problem = "is not two values" if len(spacing) != 2 else _spacing_problem((spacing[1], spacing[0]))
        if not problem:
            return (float(spacing[1]), float(spacing[0])), "Pixel Spacing (0028,0030)", None
        notes.append(f"Pixel Spacing {list(spacing)} {problem}: not used, distances in px")
    return None, NO_SPACING, None


def _mm(spacing) -> str:
    return " x ".join(f"{v:.6g}" for v in spacing) + " mm per px"


def _spacing_problem(spacing) -> str:
    """Why ``(sx, sy)`` mm per px is not a plausible ultrasound spacing, or ``""``."""
    lo, hi = SPACING_RANGE_MM
    if not all(np.isfinite(v) for v in spacing):
        return "not finite"
    if min(spacing) <= 0:
        return "not positive"
    if not all(lo <= v <= hi for v in spacing):
        return f"outside the plausible {lo:g}-{hi:g} mm per px"
    return ""


def _cm_regions(ds) -> list[tuple[int, tuple[int, int, int, int], tuple[float, float]]]:
    """``(index, box, |deltas| in cm)`` of the 2-D regions in cm of the Sequence of Ultrasound Regions."""
    found = []
    for index, region in enumerate(ds.get("SequenceOfUltrasoundRegions") or []):
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        if units != (CM, CM) or region.get("RegionSpatialFormat", 1) != 1:
            continue
        try:
            box = tuple(int(region.get(k, 0)) for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                                          "RegionLocationMaxX1", "RegionLocationMaxY1"))  # fmt: skip
            deltas = (abs(float(region.PhysicalDeltaX)), abs(float(region.PhysicalDeltaY)))
        except (AttributeError, TypeError, ValueError, OverflowError):
            continue
        found.append((index, box, deltas))
    return found


def frame_times(ds, n_frames: int, notes: list[str] | None = None) -> np.ndarray | None:
    """``(T,)`` frame times in ms from the first frame, or ``None`` when the file gives no timing.

    A Frame Time Vector or Frame Time that cannot be right (module docstring) is not used; why is appended
    to ``notes``.
    """
    notes = [] if notes is None else notes
    vector = _float_array(ds.get("FrameTimeVector"), strict=False)
    vector_problem = ""
    if vector is not None:
        if len(vector) != n_frames:
            vector_problem = f"has {len(vector)} values for {n_frames} frames"
        elif not np.isfinite(vector).all() or (vector < 0).any():
            vector_problem = "holds negative or non-finite values"
        elif (vector[1:] <= 0).any():
            vector_problem = "holds zero increments after the first frame"
        if not vector_problem:
            times = np.cumsum(vector)
            return times - times[0]
    frame_time = _float_or_none(ds.get("FrameTime"))
    if frame_time is None and str(ds.get("FrameTime", "") or "").strip():
        notes.append(f"the Frame Time {str(ds.get('FrameTime'))!r} ms is not a positive number: not used")
    if frame_time is None:
        rate = _float_or_none(ds.get("CineRate")) or _float_or_none(ds.get("RecommendedDisplayFrameRate"))
        frame_time = 1000.0 / rate if rate else None
    if vector_problem:
        then = "frame times from the frame rate" if frame_time is not None else "frame times unknown"
        notes.append(f"the Frame Time Vector {vector_problem}: not used, {then}")
    return None if frame_time is None else np.arange(n_frames) * frame_time


def _r_waves_in_loop(r_waves: np.ndarray | None, times: np.ndarray | None, notes: list[str]) -> np.ndarray | None:
    """The R-wave times inside the loop (half a frame of slack), sorted; the others noted and dropped."""
    if r_waves is None or not len(r_waves):
        return None
    if times is None or len(times) < 2:
        if times is None:
            notes.append("R-wave times are given but the loop has no frame times: not used")
        return None if times is None else r_waves
    half = float(times[-1] - times[0]) / (len(times) - 1) / 2
    inside = np.isfinite(r_waves) & (r_waves >= times[0] - half) & (r_waves <= times[-1] + half)
    if not inside.all():
        outside = ", ".join(f"{t:g}" for t in r_waves[~inside])
        notes.append(f"R-wave times outside the loop ({times[0]:g}-{times[-1]:g} ms) dropped: {outside} ms")
    kept = np.sort(r_waves[inside])
    return kept if len(kept) else None


def r_wave_times(ds, path: Path) -> tuple[np.ndarray | None, str]:
    """``(R-wave times in ms from the first frame, source)``; ``(None, "")`` when the file has no ECG."""
    vector = _float_array(ds.get("RWaveTimeVector"))
    if vector is not None and len(vector):
        return vector, "R Wave Time Vector"
    for index, group in enumerate(ds.get("WaveformSequence") or []):
        channel = _ecg_channel(group)
        if channel is None:
            continue
        try:
            signal = ds.waveform_array(index)[:, channel].astype(np.float64)
        except (ValueError, AttributeError, IndexError) as err:
            raise DataError(f"{path}: ECG waveform {index} cannot be read ({err})") from err
        rate = float(group.SamplingFrequency)
        offset = float(group.get("MultiplexGroupTimeOffset", 0.0) or 0.0)
        return offset + r_peaks(signal, rate) * 1000.0 / rate, "ECG waveform, R peaks detected"
    return None, ""


def _ecg_channel(group) -> int | None:
    """Index of the first ECG channel of a waveform multiplex group (by its source's meaning), or None."""
    for index, channel in enumerate(group.get("ChannelDefinitionSequence") or []):
        sources = channel.get("ChannelSourceSequence") or []
        meaning = " ".join(str(item.get("CodeMeaning", "")) for item in sources).upper()
        if "ECG" in meaning or "LEAD" in meaning or "ELECTROCARDIO" in meaning:
            return index
    return None


def r_peaks(signal: np.ndarray, rate_hz: float) -> np.ndarray:
    """Sample indices of the R peaks of an ECG ``(N,)``: the tallest peaks, >= 300 ms apart.

    The baseline (a 200 ms moving median) is removed and the polarity with the larger excursion kept,
    so an inverted lead works too; a peak must rise above half of the 99th-percentile excursion.
    """
    from scipy.ndimage import median_filter
    from scipy.signal import find_peaks

    centred = signal - median_filter(signal, size=max(3, int(0.2 * rate_hz) | 1), mode="nearest")
    if abs(np.percentile(centred, 0.5)) > abs(np.percentile(centred, 99.5)):
        centred = -centred
    height = 0.5 * np.percentile(centred, 99.5)
    peaks, _ = find_peaks(centred, height=height, distance=max(1, int(0.3 * rate_hz)))
    return peaks.astype(np.float64)


def view_of(ds) -> tuple[str | None, str]:
    """``("2CH" | "4CH" | None, the tag that said so)`` from the series' descriptive tags."""
    texts = [(tag, str(ds.get(tag, ""))) for tag in _VIEW_TAGS]
    texts += [
        ("ViewCodeSequence", str(item.get("CodeMeaning", ""))) for item in ds.get("ViewCodeSequence") or []
    ]
    for tag, text in texts:
        view = view_from_text(text)
        if view is not None:
            return view, tag
    return None, ""


def view_problem(ds) -> str:
    """Why ``ds`` says it is not an apical 2CH / 4CH view, or ``""`` when it does not say."""
    for tag in _VIEW_TAGS:
        text = re.sub(r"[_\-]+", " ", str(ds.get(tag, "")).upper())
        match = _OTHER_VIEW.search(text)
        if match:
            return f"{tag} {str(ds.get(tag))!r} names another view ({match.group(0)})"
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if len(image_type) > 2 and _NON_CARDIAC.search(image_type[2]):
        return f"Image Type {image_type[2]!r} is not a cardiac exam"
    body = str(ds.get("BodyPartExamined", "")).upper()
    if body and _NON_CARDIAC.search(body):
        return f"Body Part Examined {body!r} is not the heart"
    return ""


def view_from_text(text: str) -> str | None:
    """``"2CH"`` / ``"4CH"`` when ``text`` names exactly one of the two apical views, else ``None``."""
    norm = re.sub(r"[_\-]+", " ", text.upper())
    hits = [view for view, pattern in _VIEW_PATTERNS.items() if pattern.search(norm)]
    return hits[0] if len(hits) == 1 else None


def _float_array(value, strict: bool = True) -> np.ndarray | None:
    """A DICOM number or multi-value as a float64 array, or ``None`` when absent or empty.

    ``strict=False``: values that are not numbers become NaN (the caller says what is wrong).
    """
    if value is None or isinstance(value, bytes) or (isinstance(value, str) and not value.strip()):
        return None
    items = list(value) if hasattr(value, "__iter__") and not isinstance(value, str) else [value]
    out = []
    for v in items:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            if strict:
                return None
            out.append(float("nan"))
    return np.asarray(out, dtype=np.float64) if out else None


def _float_or_none(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None
