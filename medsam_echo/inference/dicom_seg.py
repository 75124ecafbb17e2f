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
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from medsam_echo.data.dicom import EXTRA_HINT, DicomCine

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage (single frame)
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
    path: str | Path, cine: DicomCine, labels: np.ndarray, *, software: str = "medsam-echo"
) -> Path:
    """Write ``labels`` ``(T, H, W)`` (CAMUS values, the loop's full frames) as a DICOM SEG of ``cine``.

    The caller makes the write atomic (the file appears complete or not at all); see
    :func:`medsam_echo.inference.cine_outputs.write_outputs`.
    """
    hd = highdicom_module()
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    labels = np.asarray(labels, np.uint8)
    if labels.shape != cine.frames.shape:
        raise ValueError(
            f"{cine.path}: label maps {labels.shape} do not match the loop's frames {cine.frames.shape}"
        )
    algorithm = hd.AlgorithmIdentificationSequence(
        name=software, version=_version(), family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=value,
            segment_label=name,
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=getattr(codes.SCT, keyword),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for value, name, keyword in SEGMENTS
    ]
    template = copy.deepcopy(cine.dataset)  # a single-frame US image for highdicom (module docstring)
    del template.NumberOfFrames
    template.SOPClassUID = US_IMAGE
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
    _expand_frames(seg, labels)
    _restore_class(seg, str(cine.dataset.SOPClassUID))
    seg.save_as(Path(path))
    return Path(path)


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


def _expand_frames(seg, labels: np.ndarray) -> None:
    """Replace the template's frames by one per non-empty (loop frame, segment), in place.

    An all-empty loop keeps one empty frame (segment 1 of frame 1): DICOM needs at least one.
    """
    from pydicom.pixels import pack_bits

    template = seg.PerFrameFunctionalGroupsSequence[0]
    pairs = [(t, v) for t, label in enumerate(labels) for v, _, _ in SEGMENTS if (label == v).any()] or [
        (0, 1)
    ]
    seg.PerFrameFunctionalGroupsSequence = [_frame_item(template, t, value) for t, value in pairs]
    seg.DimensionIndexSequence.append(_time_dimension(seg.DimensionIndexSequence[0].DimensionOrganizationUID))
    seg.NumberOfFrames = len(pairs)
    seg.PixelData = pack_bits(np.stack([labels[t] == value for t, value in pairs]))


def _frame_item(template, t: int, value: int):
    """The per-frame functional groups of segment ``value`` on loop frame ``t`` (0-based)."""
    item = copy.deepcopy(template)
    item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber = t + 1
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
    """The ``(T, H, W)`` uint8 CAMUS label maps of a SEG written by :func:`write_dicom_seg`, frame by frame."""
    hd = highdicom_module()
    seg = hd.seg.segread(path)
    return seg.get_pixels_by_source_frame(
        source_sop_instance_uid,
        source_frame_numbers=list(range(1, n_frames + 1)),
        combine_segments=True,
        assert_missing_frames_are_empty=True,
        ignore_spatial_locations=True,
        dtype=np.uint8,
    )


def _version() -> str:
    from medsam_echo import __version__

    return str(__version__)
