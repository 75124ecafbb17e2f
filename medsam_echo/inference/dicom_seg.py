"""Label maps of a cine loop as a DICOM Segmentation object (highdicom) that references the source frames.

One segment per CAMUS structure (1 LV cavity, 2 LV myocardium, 3 left atrium; SNOMED CT codes), BINARY
type. Each SEG frame holds one segment of one loop frame and references it (Derivation Image Sequence:
the loop's SOP Instance UID and Referenced Frame Number ``t + 1``); the dimensions are the segment number
and the Temporal Position Index ``t + 1``. Empty frames of a segment are left out, as DICOM allows;
:func:`read_dicom_seg` fills them back with zeros.

Ultrasound loops carry no Frame of Reference, and highdicom (0.28) builds SEGs of such sources for one
frame only. So highdicom writes the SEG of the first frame (every module, the segment descriptions, the
references), and :func:`_expand_frames` repeats its per-frame item for every (frame, segment) pair and
packs all frames' bits -- the one part done by hand.

Sources of a single-frame class (US Image Storage, also when a scanner put several frames in one) are
referenced without a Referenced Frame Number, which DICOM forbids there; the Temporal Position Index
still says which frame each SEG frame belongs to.

The source's patient and study attributes are copied as far as they are valid (:func:`source_template`):
a legacy ``1994.11.05`` date or ``11:20:00`` time is rewritten in the standard form, a time with more
than 6 fractional digits is cut to 6, a value that cannot be made valid is left empty (Type 2) or out
(Type 3), and a missing Type 2 attribute (Patient ID ...) is written empty. Each such repair is a line of
the notes :func:`check_dicom_seg` and :func:`write_dicom_seg` return. The SEG says SEMIAUTOMATIC for
results of a user's prompts, AUTOMATIC for the automatic mode. Every SEG passes dciodvfy without error.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from medsam_echo.data.dicom import EXTRA_HINT, DicomCine

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage (single frame)
SINGLE_FRAME_CLASSES = {US_IMAGE, "1.2.840.10008.5.1.4.1.1.6"}  # ... and its retired variant
ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")
TYPE2 = {  # Patient and General Study attributes every SEG carries (Type 2: present, maybe empty)
    "PatientName": "PN", "PatientID": "LO", "PatientBirthDate": "DA", "PatientSex": "CS",
    "StudyDate": "DA", "StudyTime": "TM", "AccessionNumber": "SH", "ReferringPhysicianName": "PN",
    "StudyID": "SH",
}  # fmt: skip
SEGMENTS = (  # (label value, label, SNOMED CT keyword of pydicom's codes.SCT)
    (1, "LV cavity", "LeftVentricle"),
    (2, "LV myocardium", "LeftVentricleMyocardium"),
    (3, "Left atrium", "LeftAtrium"),
)


def highdicom_module():
    """``highdicom``, or an ImportError naming the extra that installs it."""
    try:
        import highdicom
    except ImportError as err:
        raise ImportError(f"writing DICOM SEG needs highdicom: {EXTRA_HINT}") from err
    return highdicom


def write_dicom_seg(
    path: str | Path,
    cine: DicomCine,
    labels: np.ndarray,
    *,
    software: str = "medsam-echo",
    algorithm_type: str = "SEMIAUTOMATIC",
) -> Path:
    """Write ``labels`` ``(T, H, W)`` (CAMUS values, the loop's full frames) as a DICOM SEG of ``cine``.

    Args:
        algorithm_type: ``"SEMIAUTOMATIC"`` (a user's prompts) or ``"AUTOMATIC"`` (the automatic mode).

    The repairs made to the source's patient / study attributes (module docstring) are those
    :func:`check_dicom_seg` returns.

    The caller makes the write atomic (the file appears complete or not at all); see
    :func:`medsam_echo.inference.cine_outputs.write_outputs`.
    """
    labels = np.asarray(labels, np.uint8)
    if labels.shape != cine.frames.shape:
        raise ValueError(
            f"{cine.path}: label maps {labels.shape} do not match the loop's frames {cine.frames.shape}"
        )
    seg, _ = build_dicom_seg(cine, labels, software=software, algorithm_type=algorithm_type)
    seg.save_as(Path(path))
    return Path(path)


def check_dicom_seg(cine: DicomCine, *, algorithm_type: str = "SEMIAUTOMATIC") -> list[str]:
    """Build and encode (in memory) the SEG of an empty segmentation of ``cine``: what would stop the SEG
    after the frames were segmented stops here, before. Returns the repairs (:func:`write_dicom_seg`).

    Raises:
        ValueError: the SEG cannot be written for this file (the message names the file).
    """
    import io

    seg, notes = build_dicom_seg(cine, np.zeros(cine.frames.shape, np.uint8), algorithm_type=algorithm_type)
    seg.save_as(io.BytesIO())
    return notes


def build_dicom_seg(cine: DicomCine, labels: np.ndarray, *, software: str = "medsam-echo",
                    algorithm_type: str = "SEMIAUTOMATIC"):  # fmt: skip
    """``(highdicom Segmentation, repairs)`` of ``labels`` over ``cine`` (see :func:`write_dicom_seg`)."""
    hd = highdicom_module()
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if algorithm_type not in ALGORITHM_TYPES:
        raise ValueError(f"algorithm_type must be one of {ALGORITHM_TYPES}, got {algorithm_type!r}")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=software, version=_version(), family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=value,
            segment_label=name,
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=getattr(codes.SCT, keyword),
            algorithm_type=getattr(hd.seg.SegmentAlgorithmTypeValues, algorithm_type),
            algorithm_identification=algorithm,
        )
        for value, name, keyword in SEGMENTS
    ]
    template, notes = source_template(cine)
    try:
        seg = hd.seg.Segmentation(
            source_images=[template],
            pixel_array=_template_frame(labels),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=generate_uid(),
            series_number=900,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer=software,
            manufacturer_model_name=software,
            software_versions=_version(),
            device_serial_number="0",
            series_description="medsam-echo LV / myocardium / LA",
        )
    except (ValueError, TypeError, AttributeError, KeyError) as err:
        raise ValueError(f"{cine.path}: the DICOM SEG cannot be built from this file's attributes "
                         f"({type(err).__name__}: {err})") from err  # fmt: skip
    seg.PatientOrientation = template.get("PatientOrientation", "")  # General Image, Type 2C
    multi_frame = str(cine.dataset.SOPClassUID) not in SINGLE_FRAME_CLASSES
    _expand_frames(seg, labels, multi_frame)
    _restore_class(seg, str(cine.dataset.SOPClassUID))
    return seg, notes


def source_template(cine: DicomCine):
    """``(dataset, repairs)``: the loop's header as a single-frame US image with valid patient / study
    attributes, for highdicom (module docstring)."""
    from pydicom.uid import generate_uid

    template = copy.deepcopy(cine.dataset)  # a single-frame US image for highdicom (module docstring)
    template.pop("NumberOfFrames", None)
    template.SOPClassUID = US_IMAGE
    notes: list[str] = []
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID"):
        if not str(template.get(keyword, "") or "").strip():
            raise ValueError(f"{cine.path}: the file has no {keyword}, so a DICOM SEG cannot reference it")
    if not str(template.get("StudyInstanceUID", "") or "").strip():
        template.StudyInstanceUID = generate_uid()
        notes.append("StudyInstanceUID absent in the source: the SEG starts a new study")
    for keyword in _patient_study_keywords():
        if keyword in template and keyword != "StudyInstanceUID":
            _repair(template, keyword, notes)
    for keyword in TYPE2:
        if keyword not in template:
            setattr(template, keyword, "")
            notes.append(f"{keyword} absent in the source: written empty (Type 2)")
    if "PatientOrientation" in template:
        _repair(template, "PatientOrientation", notes)
    if str(template.PatientSex or "") not in ("", "M", "F", "O"):  # the only values DICOM defines
        notes.append(f"PatientSex {str(template.PatientSex)!r} in the source is not M, F or O: written empty")
        template.PatientSex = ""
    return template, notes


def _patient_study_keywords() -> list[str]:
    """Root-level keywords of the Patient and Study modules of the US IODs (highdicom copies these)."""
    from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map

    attributes, modules = get_module_attribute_map(), get_iod_module_map()
    return sorted({str(item["keyword"]) for module in modules["ultrasound-multi-frame-image"]
                   if module["ie"] in ("Patient", "Study") for item in attributes[module["key"]]
                   if not item["path"]})  # fmt: skip


def _repair(ds, keyword: str, notes: list[str]) -> None:
    """Make ``ds.keyword`` valid in place: rewritten, emptied (Type 2) or removed; the change noted."""
    element = ds[keyword]
    if element.VR == "SQ" or element.value in (None, ""):
        return
    raw = element.value
    fixed = _valid_value(element.VR, raw)
    if fixed is raw:
        return
    if fixed is not None:
        ds[keyword].value = fixed
        notes.append(f"{keyword} {str(raw)!r} in the source is not in the standard form: written as {fixed!r}")
    elif keyword in TYPE2 or keyword == "PatientOrientation":
        ds[keyword].value = ""
        notes.append(f"{keyword} {str(raw)!r} in the source is not valid DICOM: written empty")
    else:
        del ds[keyword]
        notes.append(f"{keyword} {str(raw)!r} in the source is not valid DICOM: left out")


def _valid_value(vr: str, value):
    """``value`` itself when valid DICOM of ``vr``, a rewritten value (legacy dates / times), or ``None``
    when it cannot be made valid."""
    import re

    from pydicom import config
    from pydicom.multival import MultiValue
    from pydicom.valuerep import DA, DT, TM, validate_value

    if isinstance(value, (list, tuple, MultiValue)):
        items = [_valid_value(vr, v) for v in value]
        if any(v is None for v in items):
            return None
        return value if all(a is b for a, b in zip(items, value, strict=True)) else [str(v) for v in items]
    text = str(value).strip()
    try:
        if vr == "DA":
            text = re.sub(r"^(\d{4})\.(\d{2})\.(\d{2})$", r"\1\2\3", text)  # ACR-NEMA dates
            valid = re.fullmatch(r"\d{8}", text) and DA(text) is not None
            return None if not valid else value if text == str(value) else text
        if vr == "TM":
            text = re.sub(r"^(\d{2}):(\d{2})(?::(\d{2}))?", lambda m: "".join(g or "" for g in m.groups()), text)
            text = re.sub(r"^(\d{6}\.\d{6})\d+$", r"\1", text)  # at most 6 fractional digits
            valid = re.fullmatch(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", text) and TM(text) is not None
            return None if not valid else value if text == str(value) else text
        if vr == "DT":
            return value if DT(text) is not None else None
        if vr == "CS" and text and not re.fullmatch(r"[A-Z0-9 _]{1,16}", text):
            return None
        numeric = vr in ("US", "UL", "SS", "SL", "FL", "FD", "UV", "SV", "AT")
        validate_value(vr, value if numeric else getattr(value, "original_string", None) or str(value), config.RAISE)
    except (ValueError, TypeError, OverflowError):
        return None
    return value


def _restore_class(seg, sop_class: str) -> None:
    """Every reference to the source names its real SOP class (the template was a single-frame image)."""
    refs = [*seg.SourceImageSequence, *seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
    refs += [
        item.DerivationImageSequence[0].SourceImageSequence[0]
        for item in seg.PerFrameFunctionalGroupsSequence
    ]
    for ref in refs:
        ref.ReferencedSOPClassUID = sop_class


def _template_frame(labels: np.ndarray) -> np.ndarray:
    """``(H, W)``: one pixel of each segment, so highdicom writes a per-frame item to copy."""
    frame = np.zeros(labels.shape[1:], np.uint8)
    frame[0, : len(SEGMENTS)] = [value for value, _, _ in SEGMENTS]
    return frame


def _expand_frames(seg, labels: np.ndarray, multi_frame: bool = True) -> None:
    """Replace the template's frames by one per non-empty (loop frame, segment), in place.

    An all-empty loop keeps one empty frame (segment 1 of frame 1): DICOM needs at least one.
    ``multi_frame``: the source's class is multi-frame, so frames are referenced by number.
    """
    from pydicom.pixels import pack_bits

    template = seg.PerFrameFunctionalGroupsSequence[0]
    pairs = [(t, v) for t, label in enumerate(labels) for v, _, _ in SEGMENTS if (label == v).any()] or [
        (0, 1)
    ]
    seg.PerFrameFunctionalGroupsSequence = [_frame_item(template, t, value, multi_frame) for t, value in pairs]
    seg.DimensionIndexSequence.append(_time_dimension(seg.DimensionIndexSequence[0].DimensionOrganizationUID))
    seg.NumberOfFrames = len(pairs)
    seg.PixelData = pack_bits(np.stack([labels[t] == value for t, value in pairs]))


def _frame_item(template, t: int, value: int, multi_frame: bool = True):
    """The per-frame functional groups of segment ``value`` on loop frame ``t`` (0-based)."""
    item = copy.deepcopy(template)
    source = item.DerivationImageSequence[0].SourceImageSequence[0]
    if multi_frame:
        source.ReferencedFrameNumber = t + 1
    else:
        source.pop("ReferencedFrameNumber", None)
    item.FrameContentSequence[0].DimensionIndexValues = [value, t + 1]
    item.FrameContentSequence[0].TemporalPositionIndex = t + 1
    item.SegmentIdentificationSequence[0].ReferencedSegmentNumber = value
    return item


def _time_dimension(organization_uid: str):
    """The second dimension of the SEG: the Temporal Position Index in the Frame Content Sequence."""
    from pydicom.dataset import Dataset

    index = Dataset()
    index.DimensionOrganizationUID = organization_uid
    index.DimensionIndexPointer = 0x00209128  # Temporal Position Index
    index.FunctionalGroupPointer = 0x00209111  # Frame Content Sequence
    index.DimensionDescriptionLabel = "Temporal Position Index"
    return index


def read_dicom_seg(path: str | Path, source_sop_instance_uid: str, n_frames: int) -> np.ndarray:
    """The ``(T, H, W)`` uint8 CAMUS label maps of a SEG written by :func:`write_dicom_seg`, frame by frame.

    Over a multi-frame source, highdicom reads it by the referenced frame numbers; over a single-frame
    class (no frame numbers) each SEG frame is placed by its Temporal Position Index.
    """
    hd = highdicom_module()
    from medsam_echo.data.dicom import pydicom_module

    ds = pydicom_module().dcmread(path)
    refs = [item.DerivationImageSequence[0].SourceImageSequence[0] for item in ds.PerFrameFunctionalGroupsSequence]
    if all("ReferencedFrameNumber" in ref for ref in refs):
        seg = hd.seg.Segmentation.from_dataset(ds)
        return seg.get_pixels_by_source_frame(
            source_sop_instance_uid,
            source_frame_numbers=list(range(1, n_frames + 1)),
            combine_segments=True,
            assert_missing_frames_are_empty=True,
            ignore_spatial_locations=True,
            dtype=np.uint8,
        )
    if {str(ref.ReferencedSOPInstanceUID) for ref in refs} != {str(source_sop_instance_uid)}:
        raise ValueError(f"{path}: the SEG does not reference {source_sop_instance_uid}")
    bits = ds.pixel_array.reshape(len(refs), ds.Rows, ds.Columns)
    out = np.zeros((n_frames, ds.Rows, ds.Columns), np.uint8)
    for frame, item in zip(bits, ds.PerFrameFunctionalGroupsSequence, strict=True):
        t = int(item.FrameContentSequence[0].TemporalPositionIndex) - 1
        out[t][frame > 0] = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    return out


def _version() -> str:
    from medsam_echo import __version__

    return str(__version__)
