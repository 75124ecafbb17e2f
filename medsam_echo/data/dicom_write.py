"""Write synthetic ultrasound DICOM cine loops (pydicom): the tests', the notebook's and the README's exams.

:func:`write_us_cine` writes one US Multi-frame Image Storage file from ``(T, H, W)`` grey frames, in any
of the forms :mod:`medsam_echo.data.dicom` reads: uncompressed, RLE Lossless, or JPEG baseline with
YBR_FULL_422 colour (frames encoded by Pillow, 4:2:2 chroma subsampling); the spacing as an ultrasound
region (cm), as Pixel Spacing, or not at all. :func:`make_dicom_exam` writes a 2CH + 4CH exam of one
synthetic heart with a known EF (:func:`medsam_echo.data.synthetic.make_cine`), burned-in text outside the
sector, an ECG strip region and the R-wave times.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from medsam_echo.data.dicom import EXTRA_HINT, pydicom_module
from medsam_echo.data.synthetic import SyntheticCine, make_cine, random_heart

COMPRESSIONS = ("none", "rle", "jpeg")
SPACING_FORMS = ("region", "pixel_spacing", "none")
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"  # single frame
SC_MULTIFRAME_BYTE = "1.2.840.10008.5.1.4.1.1.7.2"  # Multi-frame Grayscale Byte Secondary Capture
FRAME_TIME, FRAME_LABEL_VECTOR = 0x00181063, 0x00182002  # Frame Increment Pointer targets
MARGIN = (16, 6)  # (top, sides) px of the canvas around the sector region: room for burned-in text


def write_us_cine(
    path: str | Path,
    frames: np.ndarray,
    *,
    spacing: tuple[float, float] | None = None,
    spacing_as: str = "region",
    region: tuple[int, int, int, int] | None = None,
    frame_time_ms: float | None = None,
    r_waves_ms: list[float] | None = None,
    ecg_r_waves_ms: list[float] | None = None,
    description: str = "",
    compression: str = "none",
    modality: str = "US",
    study_uid: str | None = None,
) -> Path:
    """Write ``frames`` ``(T, H, W)`` uint8 grey as a US Multi-frame DICOM file (US Image for ``T`` = 1).

    Every file passes dciodvfy (dicom3tools) without error: Type 2 attributes the generator knows nothing
    of (Laterality, Patient Orientation ...) are present and empty, and a loop without a frame time steps
    through its frames by a Frame Label Vector (frame numbers), not by an invented Frame Time.

    Args:
        path: the file to write.
        spacing: ``(sx, sy)`` mm per px. spacing_as: ``"region"`` (Sequence of Ultrasound Regions, cm,
            over ``region`` ``(x0, y0, x1, y1)`` px, default the whole frame, plus an ECG strip region),
            ``"pixel_spacing"`` or ``"none"``.
        frame_time_ms: Frame Time. r_waves_ms: R Wave Time Vector (ms from the first frame).
        ecg_r_waves_ms: instead an ECG lead in the Waveform Sequence (500 Hz, from the first frame to the
            last) with R peaks at these times (ms).
        description: Series Description (e.g. ``"Apical 4CH"``, where readers find the view).
        compression: ``"none"``, ``"rle"`` or ``"jpeg"`` (baseline, YBR_FULL_422 colour).
        modality: ``"US"``; anything else writes a Multi-frame Grayscale Byte Secondary Capture (a
            non-ultrasound file for tests).
        study_uid: Study Instance UID shared by an exam's files; default a new one.
    """
    if compression not in COMPRESSIONS or spacing_as not in SPACING_FORMS:
        raise ValueError(f"compression in {COMPRESSIONS}, spacing_as in {SPACING_FORMS}; got "
                         f"{compression!r}, {spacing_as!r}")  # fmt: skip
    frames = np.asarray(frames, np.uint8)
    if frames.ndim != 3:
        raise ValueError(f"frames must be (T, H, W) uint8, got shape {frames.shape}")
    ds = _base_dataset(frames, modality, description, study_uid)
    if spacing is not None and spacing_as == "region":
        ds.SequenceOfUltrasoundRegions = _regions(
            spacing, region or (0, 0, frames.shape[2] - 1, frames.shape[1] - 1)
        )
    elif spacing is not None and spacing_as == "pixel_spacing":
        ds.PixelSpacing = [f"{spacing[1]:.10g}", f"{spacing[0]:.10g}"]  # (row, column) = (sy, sx)
    if frame_time_ms is not None:
        ds.FrameTime = f"{frame_time_ms:.10g}"
    if "NumberOfFrames" in ds:
        if frame_time_ms is not None:
            ds.FrameIncrementPointer = FRAME_TIME
        else:  # a multi-frame image needs a Frame Increment Pointer; with no timing, the frame numbers
            ds.FrameIncrementPointer = FRAME_LABEL_VECTOR
            ds.FrameLabelVector = [str(t + 1) for t in range(len(frames))]
    if r_waves_ms is not None:
        ds.RWaveTimeVector = [float(t) for t in r_waves_ms]
    if ecg_r_waves_ms is not None:
        duration = (frame_time_ms or 40.0) * len(frames)
        ds.WaveformSequence = [_ecg_group(ecg_r_waves_ms, duration)]
    _set_pixels(ds, frames, compression)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _base_dataset(frames: np.ndarray, modality: str, description: str, study_uid: str | None):
    pydicom_module()  # the error naming the extra when pydicom is missing
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if modality == "US":
        sop_class = US_MULTIFRAME if len(frames) > 1 else US_IMAGE
    else:
        sop_class = SC_MULTIFRAME_BYTE
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    now = datetime(2026, 1, 1, 12, 0, 0)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid or generate_uid(), generate_uid()
    ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = modality, description, 1, 1
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Synthetic^Heart", "SYNTH0001", "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = now.strftime("%Y%m%d"), "120000", "1", ""
    ds.ReferringPhysicianName, ds.Manufacturer = "", "medsam-echo synthetic"
    ds.ContentDate, ds.ContentTime = ds.StudyDate, ds.StudyTime
    ds.Laterality, ds.PatientOrientation = "", ""  # Type 2C: unknown, present and empty
    if modality == "US":
        ds.ImageType = ["DERIVED", "PRIMARY", "CARDIAC"]  # US Image module, Type 2
    else:
        ds.ConversionType, ds.BurnedInAnnotation = "WSD", "NO"  # SC Equipment / SC Multi-frame Image
        ds.PresentationLUTShape, ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "IDENTITY", "0", "1", "US"
    ds.Rows, ds.Columns = frames.shape[1:]
    if sop_class != US_IMAGE:
        ds.NumberOfFrames = len(frames)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    return ds


def _regions(spacing: tuple[float, float], box: tuple[int, int, int, int]):
    """The sector region (2-D tissue, cm) over ``box`` and an ECG strip region (waveform, seconds)."""
    from pydicom.dataset import Dataset

    sector, ecg = Dataset(), Dataset()
    for item, spatial, data_type, units in ((sector, 1, 1, (3, 3)), (ecg, 4, 11, (4, 0))):
        item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = spatial, data_type, 0
        item.PhysicalUnitsXDirection, item.PhysicalUnitsYDirection = units
    x0, y0, x1, y1 = box
    sector.RegionLocationMinX0, sector.RegionLocationMinY0 = x0, y0
    sector.RegionLocationMaxX1, sector.RegionLocationMaxY1 = x1, y1
    sector.PhysicalDeltaX, sector.PhysicalDeltaY = spacing[0] / 10.0, spacing[1] / 10.0  # mm -> cm
    ecg.RegionLocationMinX0, ecg.RegionLocationMinY0, ecg.RegionLocationMaxX1, ecg.RegionLocationMaxY1 = (
        0,
        0,
        x1,
        3,
    )
    ecg.PhysicalDeltaX, ecg.PhysicalDeltaY = 0.01, 1.0
    return [ecg, sector]  # the sector second: readers must pick it by its units, not its position


def _ecg_group(r_waves_ms: list[float], duration_ms: float, rate: float = 500.0):
    """A one-lead ECG multiplex group (16-bit, µV): a flat trace with a QRS spike at each R-wave."""
    from pydicom.dataset import Dataset

    t = np.arange(int(duration_ms * rate / 1000.0)) * 1000.0 / rate  # ms
    trace = 30.0 * np.sin(2 * np.pi * t / 900.0)  # baseline wander
    for r in r_waves_ms:
        trace += 1000.0 * np.exp(-0.5 * ((t - r) / 8.0) ** 2) - 200.0 * np.exp(
            -0.5 * ((t - r - 25.0) / 10.0) ** 2
        )
    source, channel, group = Dataset(), Dataset(), Dataset()
    source.CodeValue, source.CodingSchemeDesignator, source.CodeMeaning = "2:1", "MDC", "Lead II"
    channel.ChannelSourceSequence = [source]
    channel.ChannelSensitivity, channel.ChannelSampleSkew, channel.WaveformBitsStored = "1", "0", 16
    group.WaveformOriginality, group.NumberOfWaveformChannels = "ORIGINAL", 1
    group.NumberOfWaveformSamples, group.SamplingFrequency = len(t), f"{rate:g}"
    group.MultiplexGroupTimeOffset = "0"
    group.ChannelDefinitionSequence = [channel]
    group.WaveformBitsAllocated, group.WaveformSampleInterpretation = 16, "SS"
    group.WaveformData = np.round(trace).astype("<i2").tobytes()
    return group


def _set_pixels(ds, frames: np.ndarray, compression: str) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, RLELossless

    if compression == "rle":
        ds.compress(RLELossless, frames if "NumberOfFrames" in ds else frames[0])
    elif compression == "jpeg":
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
        ds.PixelData = encapsulate([_jpeg(frame) for frame in frames])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
    else:
        ds.PixelData = frames.tobytes()


def _jpeg(frame: np.ndarray) -> bytes:
    """One grey ``(H, W)`` frame as a baseline JPEG of its RGB image (YCbCr, 4:2:2)."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(f"writing JPEG DICOM needs Pillow: {EXTRA_HINT}") from err
    buffer = io.BytesIO()
    Image.fromarray(np.repeat(frame[:, :, None], 3, axis=2), "RGB").save(
        buffer, format="JPEG", quality=95, subsampling=1
    )
    return buffer.getvalue()


@dataclass
class DicomExam:
    """A synthetic exam written by :func:`make_dicom_exam`.

    Attributes:
        paths: ``{view: file}``. cines: ``{view: SyntheticCine}`` (frames and labels before padding).
        labels: ``{view: (T, H, W) uint8}`` reference label maps on the written frames' grid.
        region: ``{view: (x0, y0, x1, y1)}`` px of the sector region in the written frames.
        ef: the true EF (%).
    """

    paths: dict[str, Path]
    cines: dict[str, SyntheticCine]
    labels: dict[str, np.ndarray]
    region: dict[str, tuple[int, int, int, int]]
    ef: float


def make_dicom_exam(
    out_dir: str | Path,
    *,
    seed: int = 0,
    frames: int = 20,
    size: tuple[int, int] = (112, 96),
    compression: str = "rle",
    r_waves: tuple[str, ...] = ("2CH",),
    ecg: tuple[str, ...] = (),
) -> DicomExam:
    """Write ``2CH.dcm`` and ``4CH.dcm``: one synthetic heart (known EF) seen in both apical views.

    Each loop (:func:`make_cine`: a beat of 14 frames at 60 ms, ED at frame 3) sits in a canvas with a
    band on top holding burned-in text (outside the sector); its spacing is written as an ultrasound
    region over the sector. ``r_waves`` names the views whose files carry the R Wave Time Vector.

    Args:
        out_dir: folder (created). seed: the heart and speckle. frames: per loop. size: ``(H, W)`` of the
            sector image in px (the frames are larger by :data:`MARGIN`). compression: see :func:`write_us_cine`.
    """
    out, rng = Path(out_dir), np.random.default_rng(seed)
    heart = random_heart(rng)
    pydicom_module()
    from pydicom.uid import generate_uid

    study = generate_uid()
    exam = DicomExam({}, {}, {}, {}, heart.ef)
    for view in ("2CH", "4CH"):
        spacing = (float(rng.uniform(95, 110) / size[1]), float(rng.uniform(165, 180) / size[0]))
        cine = make_cine(heart, view, spacing=spacing, size=size, frames=frames, rng=rng)
        images, labels, box = _on_canvas(cine.images, view), _on_canvas(cine.labels), _sector_box(size)
        beats = [i * cine.frame_time_ms for i in cine.ed_frames]
        exam.paths[view] = write_us_cine(
            out / f"{view}.dcm", images, spacing=spacing, region=box, frame_time_ms=cine.frame_time_ms,
            r_waves_ms=beats if view in r_waves else None, ecg_r_waves_ms=beats if view in ecg else None,
            description=f"Apical {view}", compression=compression, study_uid=study,
        )  # fmt: skip
        exam.cines[view], exam.labels[view], exam.region[view] = cine, labels, box
    return exam


def _sector_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    top, side = MARGIN
    return side, top, side + size[1] - 1, top + size[0] - 1


def _on_canvas(stack: np.ndarray, text: str | None = None) -> np.ndarray:
    """``(T, H, W)`` -> ``(T, H + top, W + 2 side)`` zero-padded; ``text`` burned into the top band."""
    top, side = MARGIN
    out = np.pad(stack, ((0, 0), (top, 0), (side, side)))
    if text is not None:
        for frame in out:
            cv2.putText(frame, f"{text} 71bpm", (2, top - 4), cv2.FONT_HERSHEY_PLAIN, 0.8, 220, 1)
    return out


def write_exam_extras(
    exam: DicomExam, out_dir: str | Path, structures=("lv_endo", "lv_epi", "la")
) -> list[Path]:
    """Write ``prompts.json`` (reference boxes on each loop's first ED and ES frame, keyed by view, as a
    clinician would draw them; px of the full frame) and ``truth.json`` (EF, ED / ES frames) next to an exam."""
    import json

    from medsam_echo.data.sample import structure_mask
    from medsam_echo.prompts.boxes import box_from_mask

    prompts, truth = {}, {"ef": exam.ef, "views": {}}
    for view, cine in exam.cines.items():
        frames = (cine.ed_frames[0], cine.es_frames[0]) if cine.es_frames else (cine.ed_frames[0],)
        prompts[view] = {
            str(t): [{"structure": s, "box": box_from_mask(structure_mask(exam.labels[view][t], s)).tolist()}
                     for s in structures]
            for t in frames
        }  # fmt: skip
        truth["views"][view] = {"file": exam.paths[view].name, "ed_frames": list(cine.ed_frames),
                                "es_frames": list(cine.es_frames), "spacing_mm": list(cine.spacing)}  # fmt: skip
    out = Path(out_dir)
    (out / "prompts.json").write_text(json.dumps(prompts, indent=1) + "\n")
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return [out / "prompts.json", out / "truth.json"]
