"""The DICOM SEG of a cine loop references the loop's frames and reads back (highdicom) to the label maps."""

from __future__ import annotations

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")

from medsam_echo.data.dicom import read_dicom_cine  # noqa: E402
from medsam_echo.data.dicom_write import make_dicom_exam  # noqa: E402
from medsam_echo.inference.dicom_seg import read_dicom_seg, write_dicom_seg  # noqa: E402


@pytest.mark.parametrize("compression", ["rle", "jpeg"])
def test_seg_reads_back_frame_by_frame(tmp_path, compression):
    exam = make_dicom_exam(tmp_path / "exam", frames=6, size=(64, 56), compression=compression)
    cine = read_dicom_cine(exam.paths["4CH"])
    labels = exam.labels["4CH"].copy()
    labels[2] = 0  # a frame with nothing segmented
    labels[4][labels[4] == 3] = 0  # a frame without one segment
    path = write_dicom_seg(tmp_path / "seg.dcm", cine, labels)
    back = read_dicom_seg(path, cine.dataset.SOPInstanceUID, cine.n_frames)
    assert back.shape == labels.shape
    for t in range(cine.n_frames):
        assert np.array_equal(back[t], labels[t]), f"frame {t}"
    seg = pydicom.dcmread(path)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY" and len(seg.SegmentSequence) == 3
    assert seg.StudyInstanceUID == cine.dataset.StudyInstanceUID
    refs = [
        item.DerivationImageSequence[0].SourceImageSequence[0]
        for item in seg.PerFrameFunctionalGroupsSequence
    ]
    assert {r.ReferencedSOPInstanceUID for r in refs} == {cine.dataset.SOPInstanceUID}
    assert {r.ReferencedSOPClassUID for r in refs} == {cine.dataset.SOPClassUID}
    assert sorted({r.ReferencedFrameNumber for r in refs}) == [1, 2, 4, 5, 6]


def test_seg_refuses_label_maps_of_another_shape(tmp_path):
    exam = make_dicom_exam(tmp_path / "exam", frames=4, size=(64, 56))
    cine = read_dicom_cine(exam.paths["2CH"])
    with pytest.raises(ValueError, match="do not match"):
        write_dicom_seg(tmp_path / "seg.dcm", cine, exam.labels["2CH"][:3])


def test_an_all_empty_loop_still_gives_a_seg_that_reads_back_empty(tmp_path):
    exam = make_dicom_exam(tmp_path / "exam", frames=4, size=(48, 40))
    cine = read_dicom_cine(exam.paths["4CH"])
    path = write_dicom_seg(tmp_path / "seg.dcm", cine, np.zeros(cine.frames.shape, np.uint8))
    assert pydicom.dcmread(path).NumberOfFrames == 1
    assert not read_dicom_seg(path, cine.dataset.SOPInstanceUID, 4).any()
