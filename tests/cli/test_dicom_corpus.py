"""``predict --input`` on the DICOM variants of real scanners' files (tests/dicom_corpus.py, issue 29).

Every variant the reader decodes goes through to complete outputs; what is doubtful is a warning on the
console and in summary.json, never a silent guess; what cannot work stops before the frames are segmented,
naming the file and the step.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")

from medsam_echo.cli import main as cli  # noqa: E402
from medsam_echo.data.io import read_image  # noqa: E402
from medsam_echo.inference.cine import AREA_LENGTH, BIPLANE  # noqa: E402
from medsam_echo.inference.cine_outputs import NO_SPACING_NOTE  # noqa: E402
from medsam_echo.inference.dicom_seg import read_dicom_seg  # noqa: E402
from tests import dicom_corpus as corpus  # noqa: E402


def _predict(tmp_path, files, prompts, *extra, out="out"):
    argv = ["predict", "--model", "baseline:ellipse", "--input", *map(str, files), "--prompts", str(prompts),
            "--out", str(tmp_path / out), *extra]  # fmt: skip
    return cli(argv)


def _summary(tmp_path, out="out"):
    return json.loads((tmp_path / out / "summary.json").read_text())


def _complete(tmp_path, path, key, capsys, *, plain=False, out="out"):
    """Predict one loop with boxes keyed by ``key``; return (summary, stderr) after checking completeness."""
    prompts = corpus.prompts_file(tmp_path / f"{out}.json", key, plain=plain)
    code = _predict(tmp_path, [path], prompts, out=out)
    err = capsys.readouterr().err
    assert code == 0, err
    summary = _summary(tmp_path, out)
    assert summary["complete"] is True and "Traceback" not in err
    assert sorted(summary["outputs"]) == sorted(p.name for p in (tmp_path / out).iterdir())
    return summary, err


@pytest.mark.parametrize("compression", ["none", "rle", "jpeg"])
def test_single_frame_us_image_gives_every_output_and_a_seg_without_frame_numbers(tmp_path, capsys, compression):
    path = corpus.single_frame(tmp_path / "one.dcm", compression)
    assert pydicom.dcmread(path).SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1"
    summary, err = _complete(tmp_path, path, "4CH", capsys, plain=True)
    row = summary["views"]["4CH"]
    assert row["frames"] == 1 and row["ef_reason"] == "a single frame: no ED / ES"
    assert summary["exam"]["ef"] is None and "no EF" in err
    seg = pydicom.dcmread(tmp_path / "out" / "4CH_seg.dcm")
    refs = [i.DerivationImageSequence[0].SourceImageSequence[0] for i in seg.PerFrameFunctionalGroupsSequence]
    assert refs and all("ReferencedFrameNumber" not in r for r in refs)  # forbidden over a single-frame class
    assert {i.SegmentAlgorithmType for i in seg.SegmentSequence} == {"SEMIAUTOMATIC"}  # a user's boxes
    assert seg.PatientOrientation == ""  # General Image, Type 2C
    labels, _ = read_image(tmp_path / "out" / "4CH_labels.nii.gz")
    back = read_dicom_seg(tmp_path / "out" / "4CH_seg.dcm", pydicom.dcmread(path).SOPInstanceUID, 1)
    assert np.array_equal(back[0], labels) and (labels == 1).any()


def test_missing_and_non_conformant_patient_study_attributes_are_repaired_not_fatal(tmp_path, capsys):
    path = corpus.bad_patient_study(tmp_path / "medistim.dcm")
    summary, _ = _complete(tmp_path, path, "4CH", capsys)
    seg = pydicom.dcmread(tmp_path / "out" / "4CH_seg.dcm")
    assert seg.PatientID == "" and seg.PatientSex == "" and seg.StudyID == "" and seg.AccessionNumber == ""
    assert seg.StudyDate == "19941105" and seg.StudyTime == "113933.123456"  # kept, in the standard form
    assert str(seg.PatientName) == "Anonymized" and "PatientAge" not in seg  # 'forty' is no Age String
    assert seg.StudyInstanceUID == pydicom.dcmread(path).StudyInstanceUID
    repairs = " | ".join(summary["views"]["4CH"]["seg_metadata_repairs"])
    assert "PatientID absent" in repairs and "StudyTime '113933.1234567'" in repairs and "PatientAge" in repairs


@pytest.mark.parametrize("variant", ["palette8", "palette16", "sixteen_bit", "sixteen_bit_big_endian", "big_endian"])
def test_palette_16_bit_and_big_endian_loops_complete_with_their_spacing(tmp_path, capsys, variant):
    write = {"palette8": corpus.palette, "palette16": lambda p: corpus.palette(p, 16),
             "sixteen_bit": corpus.sixteen_bit, "sixteen_bit_big_endian": lambda p: corpus.sixteen_bit(p, True),
             "big_endian": corpus.big_endian}[variant]  # fmt: skip
    summary, _ = _complete(tmp_path, write(tmp_path / f"{variant}.dcm"), "4CH", capsys)
    row = summary["views"]["4CH"]
    assert row["spacing_mm"] == pytest.approx(corpus.SPACING) and row["frames"] == corpus.FRAMES
    assert summary["exam"]["method"] == AREA_LENGTH and math.isfinite(summary["exam"]["ef"])


def test_a_region_that_does_not_fit_the_image_is_a_warning_and_the_spacing_is_unknown(tmp_path, capsys):
    path = corpus.region_outside(tmp_path / "small.dcm")
    prompts = corpus.prompts_file(tmp_path / "p.json", "4CH", entries=[{"structure": "lv_endo", "box": [8, 7, 20, 25]}])
    assert _predict(tmp_path, [path], prompts) == 0
    err = capsys.readouterr().err
    summary = _summary(tmp_path)
    assert "does not fit the 28 x 32 px frame" in err
    assert any("does not fit" in w for w in summary["warnings"]) and summary["views"]["4CH"]["spacing_mm"] is None
    assert summary["views"]["4CH"]["sector_region_xyxy"] is None  # not cropped to a region that is not there


def test_outputs_without_a_spacing_say_so_in_the_label_header_and_summary(tmp_path, capsys):
    import SimpleITK as sitk

    path = corpus.us_loop(tmp_path / "nospacing.dcm", spacing=None)
    summary, _ = _complete(tmp_path, path, "4CH", capsys)
    image = sitk.ReadImage(str(tmp_path / "out" / "4CH_labels.nii.gz"))
    assert image.GetMetaData("descrip") == NO_SPACING_NOTE
    row = summary["views"]["4CH"]
    assert row["spacing_mm"] is None and row["labels_spacing"].startswith("unknown") and row["area_unit"] == "px2"
    assert summary["exam"]["units"].startswith("px^3")
    assert "area_px2" in (tmp_path / "out" / "4CH_area.csv").read_text()


def test_a_plain_list_of_prompts_applies_to_every_frame(tmp_path, capsys):
    """README: a list of entries is for every frame. The ellipse baseline answers the box alone, so every
    frame's mask is the same; tracking (the old frame-0-only reading) would move and grow it."""
    _complete(tmp_path, corpus.us_loop(tmp_path / "a.dcm"), "4CH", capsys, plain=True)
    labels, _ = read_image(tmp_path / "out" / "4CH_labels.nii.gz", allow_stack=True)
    assert all(np.array_equal(frame, labels[0]) for frame in labels)
    ys, xs = np.nonzero(labels[0] == 1)
    x0, y0, x1, y1 = corpus.BOXES[0]
    assert x0 <= xs.min() and xs.max() <= x1 and y0 <= ys.min() and ys.max() <= y1


def test_key_frame_prompts_give_the_ef_of_a_contracting_loop(tmp_path, capsys):
    summary, _ = _complete(tmp_path, corpus.us_loop(tmp_path / "a.dcm"), "4CH", capsys)
    assert summary["exam"]["method"] == AREA_LENGTH and summary["exam"]["ef"] > 20
    assert "ef_reason" not in summary["views"]["4CH"]


@pytest.mark.parametrize(("variant", "reason"), [("plax", "SeriesDescription 'PLAX' names another view"),
                                                 ("obstetric", "Image Type 'OBSTETRICAL' is not a cardiac exam"),
                                                 ("unnamed", "the series does not name the view")])  # fmt: skip
def test_loops_not_known_to_be_apical_get_no_ef_only_the_reason(tmp_path, capsys, variant, reason):
    path = tmp_path / f"{variant}.dcm"
    {"plax": lambda: corpus.series(path, "PLAX"), "obstetric": lambda: corpus.obstetric(path),
     "unnamed": lambda: corpus.series(path, "")}[variant]()  # fmt: skip
    two = variant == "obstetric"  # 2 frames: one box list for both
    summary, err = _complete(tmp_path, path, variant, capsys, plain=two)
    assert summary["exam"]["ef"] is None and summary["exam"]["method"] is None
    assert reason in summary["views"][variant]["ef_reason"] and reason in err and "--views" in err
    # the user may say it is an apical view: then the view is no reason any more
    prompts = corpus.prompts_file(tmp_path / "v.json", "4CH", plain=two)
    assert _predict(tmp_path, [path], prompts, "--views", f"4CH={path.name}", out="told") == 0
    told = _summary(tmp_path, "told")
    assert "apical" not in told["views"]["4CH"].get("ef_reason", "")
    assert two or told["exam"]["method"] == AREA_LENGTH


def test_a_loop_without_a_complete_beat_gets_no_ef(tmp_path, capsys):
    path = corpus.us_loop(tmp_path / "flat.dcm")
    summary, err = _complete(tmp_path, path, "4CH", capsys, plain=True)  # the same box everywhere: no beat
    assert summary["exam"]["ef"] is None and summary["views"]["4CH"]["ef_reason"].startswith("no complete beat")


@pytest.mark.parametrize(("vector", "problem"), [([0, 60, 60], "has 3 values for 8 frames"),
                                                 ([0] * 8, "zero increments"),
                                                 ([0, -60] + [60] * 6, "negative or non-finite")])  # fmt: skip
def test_a_broken_frame_time_vector_is_a_warning_and_the_timing_unknown(tmp_path, capsys, vector, problem):
    summary, err = _complete(tmp_path, corpus.frame_time_vector(tmp_path / "ftv.dcm", vector), "4CH", capsys)
    assert problem in err and any(problem in w for w in summary["warnings"])
    assert summary["views"]["4CH"]["frame_time_ms"] is None
    assert (tmp_path / "out" / "4CH_area.csv").read_text().splitlines()[1].split(",")[1] == ""  # no time made up


def test_r_waves_outside_the_loop_are_dropped_with_a_warning(tmp_path, capsys):
    summary, err = _complete(tmp_path, corpus.r_waves(tmp_path / "r.dcm", [-500.0, 0.0, 5000.0]), "4CH", capsys)
    assert "R-wave times outside the loop (0-420 ms) dropped: -500, 5000 ms" in err
    assert summary["views"]["4CH"]["phase_source"].startswith("ECG R-waves")


@pytest.mark.parametrize("delta", [0.0, float("nan"), float("inf"), 1e30, 1e-30])
def test_implausible_region_deltas_leave_the_spacing_unknown_with_a_warning(tmp_path, capsys, delta):
    summary, err = _complete(tmp_path, corpus.region_deltas(tmp_path / "d.dcm", delta), "4CH", capsys)
    assert "PhysicalDeltaX/Y give" in err and summary["views"]["4CH"]["spacing_mm"] is None
    exam = summary["exam"]
    assert exam["ef"] is None or (exam["units"].startswith("px^3") and 0 < exam["edv_ml"] < 1e4)


def test_biplane_never_mixes_px_and_mm(tmp_path, capsys):
    a = corpus.us_loop(tmp_path / "in" / "a.dcm", description="Apical 2CH")
    b = corpus.region_deltas(tmp_path / "in" / "b.dcm", 0.0)  # 4CH with no usable spacing
    prompts = tmp_path / "p.json"
    spec = {str(t): [{"structure": "lv_endo", "box": box}] for t, box in corpus.BOXES.items()}
    prompts.write_text(json.dumps({"2CH": spec, "4CH": spec}))
    assert _predict(tmp_path, [a, b], prompts) == 0
    err = capsys.readouterr().err
    exam = _summary(tmp_path)["exam"]
    assert exam["method"] == AREA_LENGTH and exam["views"] == ["2CH"] and exam["units"] == "mL"
    assert "would mix px and mm" in err
    assert exam["method"] != BIPLANE


def test_a_broken_loop_in_an_exam_folder_is_an_error_not_a_single_plane_ef(tmp_path, capsys):
    folder = tmp_path / "exam"
    corpus.us_loop(folder / "2CH.dcm", description="Apical 2CH")
    broken = corpus.us_loop(folder / "4CH.dcm")
    broken.write_bytes(broken.read_bytes()[:100])  # cut inside the header
    prompts = corpus.prompts_file(tmp_path / "p.json", "2CH")
    assert _predict(tmp_path, [folder], prompts) == 1
    err = capsys.readouterr().err
    assert "4CH.dcm" in err and "not a readable DICOM file" in err and not (tmp_path / "out").exists()


def test_a_cut_jpeg_frame_is_refused_naming_the_frame(tmp_path, capsys):
    path = corpus.cut_jpeg(tmp_path / "cut.dcm")
    assert _predict(tmp_path, [path], corpus.prompts_file(tmp_path / "p.json", "4CH")) == 1
    assert "frame 7 of the JPEG Baseline (Process 1) pixel data is cut" in capsys.readouterr().err


def test_one_loop_for_both_views_is_refused(tmp_path, capsys):
    path = corpus.us_loop(tmp_path / "a.dcm")
    code = _predict(tmp_path, [path], corpus.prompts_file(tmp_path / "p.json", "4CH"), "--views", "2CH=a.dcm,4CH=a.dcm")
    assert code == 1 and "one file for 2CH and 4CH" in capsys.readouterr().err


@pytest.mark.parametrize(("box", "message"), [([-900, -900, -800, 20], "lies mostly outside the frame"),
                                              ([True, False, 74, 75], "must be 4 finite numbers"),
                                              ([30, 20, 10, 40], "x1 < x0"),
                                              ([10, 10, 20], "must be 4 finite numbers")])  # fmt: skip
def test_bad_boxes_are_refused_before_segmenting_naming_file_view_and_frame(tmp_path, capsys, box, message):
    path = corpus.us_loop(tmp_path / "a.dcm")
    prompts = corpus.prompts_file(tmp_path / "p.json", "4CH", entries={"3": [{"structure": "lv_endo", "box": box}]})
    assert _predict(tmp_path, [path], prompts) == 1
    err = capsys.readouterr().err
    assert message in err and "a.dcm (view 4CH) frame 3 [0] (lv_endo)" in err and str(prompts) in err
    assert "np.float64" not in err and not (tmp_path / "out").exists()


def test_seg_metadata_problems_stop_the_run_before_segmenting(tmp_path, capsys):
    path = corpus.no_series_uid(tmp_path / "a.dcm")
    assert _predict(tmp_path, [path], corpus.prompts_file(tmp_path / "p.json", "4CH")) == 1
    err = capsys.readouterr().err
    assert "a.dcm" in err and "checking the DICOM SEG metadata before segmenting" in err
    assert not (tmp_path / "out").exists()


def test_a_failure_while_writing_names_the_step_and_leaves_the_summary_incomplete(tmp_path, capsys, monkeypatch):
    from medsam_echo.inference import cine_outputs

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cine_outputs, "write_gif", full_disk)
    path = corpus.us_loop(tmp_path / "a.dcm")
    assert _predict(tmp_path, [path], corpus.prompts_file(tmp_path / "p.json", "4CH")) == 1
    err = capsys.readouterr().err
    summary = _summary(tmp_path)
    assert summary["complete"] is False and "writing the outputs of" in summary["reason"]
    assert "No space left on device" in summary["reason"] and "a.dcm (view 4CH)" in err
