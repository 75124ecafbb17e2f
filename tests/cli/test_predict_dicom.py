"""``medsam-echo predict --input EXAM`` on DICOM cine loops: label maps, area curves, EF, GIF, DICOM SEG."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")

from medsam_echo.cli import main as cli  # noqa: E402
from medsam_echo.data.dicom_write import make_dicom_exam, write_us_cine  # noqa: E402
from medsam_echo.data.io import read_image  # noqa: E402
from medsam_echo.data.sample import structure_mask  # noqa: E402
from medsam_echo.inference.cine import AREA_LENGTH, BIPLANE  # noqa: E402
from medsam_echo.inference.dicom_seg import read_dicom_seg  # noqa: E402
from medsam_echo.prompts.boxes import box_from_mask  # noqa: E402

FRAMES, SIZE = 10, (64, 56)


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    """2CH with an R Wave Time Vector, 4CH with an ECG waveform."""
    return make_dicom_exam(tmp_path_factory.mktemp("exam") / "exam", frames=FRAMES, size=SIZE, ecg=("4CH",))


def _prompts(exam, path):
    """Boxes a clinician would draw on ED and ES of each view (from the reference masks), keyed by view."""
    spec = {}
    for view, cine in exam.cines.items():
        spec[view] = {str(t): [{"structure": s, "box": box_from_mask(structure_mask(exam.labels[view][t], s)).tolist()}
                               for s in ("lv_endo", "lv_epi", "la")]
                      for t in (cine.ed_frames[0], cine.es_frames[0])}  # fmt: skip
    path.write_text(json.dumps(spec))
    return path


def test_tiny_model_on_a_two_view_exam_writes_every_output(tmp_path, exam, tiny_dir, capsys):
    out = tmp_path / "out"
    argv = [
        "predict",
        "--model",
        str(tiny_dir),
        "--device",
        "cpu",
        "--input",
        str(exam.paths["2CH"].parent),
        "--prompts",
        str(_prompts(exam, tmp_path / "prompts.json")),
        "--out",
        str(out),
        "--batch-size",
        "4",
    ]
    assert cli(argv) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["views"]) == {"2CH", "4CH"} and summary["complete"] is True
    assert set(summary["exam"]) >= {"edv_ml", "esv_ml", "ef"}
    # a random model's cavities need not contract: an EF only from views with a complete beat, else the reason
    complete = [v for v, row in summary["views"].items() if "ef_reason" not in row]
    assert summary["exam"]["method"] == (BIPLANE if len(complete) == 2 else None if not complete else AREA_LENGTH)
    for row in summary["views"].values():
        assert "ef_reason" not in row or row["ef_reason"].startswith("no complete beat")
    for view, row in summary["views"].items():
        assert row["frames"] == FRAMES and row["file"] == str(exam.paths[view])
        assert row["spacing_mm"] == pytest.approx(exam.cines[view].spacing, rel=1e-12)
        assert "Ultrasound Regions" in row["spacing_source"] and 0 <= row["es_frame"] < FRAMES
        labels, spacing = read_image(out / f"{view}_labels.nii.gz", allow_stack=True)
        assert labels.shape == (FRAMES, SIZE[0] + 16, SIZE[1] + 12)
        lines = (out / f"{view}_area.csv").read_text().splitlines()
        assert lines[0] == "frame,time_ms,area_mm2,phase" and len(lines) == FRAMES + 1
        assert (out / f"{view}_area.png").read_bytes()[:4] == b"\x89PNG"
        from PIL import Image

        with Image.open(out / f"{view}_overlay.gif") as gif:
            assert gif.n_frames == FRAMES
        source = pydicom.dcmread(exam.paths[view], stop_before_pixels=True)
        seg = read_dicom_seg(out / f"{view}_seg.dcm", source.SOPInstanceUID, FRAMES)
        assert np.array_equal(seg, labels)
    # a random model's cavities need not contract: the beat may be incomplete, its start is the R-wave
    assert summary["views"]["2CH"]["phase_source"].startswith("ECG R-waves (R Wave Time Vector)")
    assert summary["views"]["4CH"]["phase_source"].startswith("ECG R-waves (ECG waveform, R peaks detected)")
    assert summary["views"]["2CH"]["ed_frame"] == summary["views"]["4CH"]["ed_frame"] == 3
    assert sorted(summary["outputs"]) == sorted(p.name for p in out.iterdir())
    argv[argv.index("--model") + 1] = "baseline:ellipse"  # (faster)
    assert cli(argv) == 0  # a second run into the same folder replaces its own outputs
    # an exam folder holding an earlier run's SEGs: they are skipped (and said so), not read as loops
    pred = tmp_path / "copy" / "pred"
    shutil.copytree(exam.paths["2CH"].parent, tmp_path / "copy", ignore=shutil.ignore_patterns("pred"))
    shutil.copytree(out, pred)
    argv[argv.index("--input") + 1] = str(tmp_path / "copy")
    argv[argv.index("--out") + 1] = str(tmp_path / "out2")
    assert cli(argv) == 0
    summary = json.loads((tmp_path / "out2" / "summary.json").read_text())
    assert sorted(Path(line.split(":")[0]).name for line in summary["skipped"]) == [
        "2CH_seg.dcm",
        "4CH_seg.dcm",
    ]
    assert "skipped" in capsys.readouterr().err
    argv[argv.index("--out") + 1] = str(tmp_path / "copy" / "pred2")  # outputs inside the input folder: refused
    assert cli(argv) == 1 and "inside the input folder" in capsys.readouterr().err
    assert not (tmp_path / "copy" / "pred2").exists()


def test_outputs_the_command_did_not_write_are_never_replaced(tmp_path, exam):
    out = tmp_path / "out"
    out.mkdir()
    (out / "2CH_area.csv").write_text("mine\n")
    argv = ["predict", "--model", "baseline:ellipse", "--input", str(exam.paths["2CH"].parent),
            "--prompts", str(_prompts(exam, tmp_path / "p.json")), "--out", str(out)]  # fmt: skip
    assert cli(argv) == 1
    assert (out / "2CH_area.csv").read_text() == "mine\n" and sorted(p.name for p in out.iterdir()) == [
        "2CH_area.csv"
    ]


def test_views_given_on_the_command_line_and_no_spacing_said_everywhere(tmp_path, exam, capsys):
    folder = tmp_path / "loops"
    for name, view in (("a.dcm", "2CH"), ("b.dcm", "4CH")):
        write_us_cine(folder / name, exam.cines[view].images, frame_time_ms=60.0, spacing=None)
    boxes = {name: {str(t): [{"structure": "lv_endo", "box": box_from_mask(exam.cines[view].labels[t] == 1).tolist()}]
                    for t in (exam.cines[view].ed_frames[0], exam.cines[view].es_frames[0])}
             for name, view in (("a.dcm", "2CH"), ("b.dcm", "4CH"))}  # ED and ES: the ellipse contracts  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps(boxes))
    argv = [
        "predict",
        "--model",
        "baseline:ellipse",
        "--input",
        str(folder),
        "--prompts",
        str(tmp_path / "p.json"),
    ]
    assert cli([*argv, "--out", str(tmp_path / "x")]) == 1
    assert "cannot tell the view" in capsys.readouterr().err
    assert cli([*argv, "--out", str(tmp_path / "out"), "--views", "2CH=a.dcm,4CH=b.dcm"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (
        summary["views"]["2CH"]["file"].endswith("a.dcm")
        and summary["views"]["2CH"]["view_source"] == "--views"
    )
    assert summary["views"]["4CH"]["spacing_mm"] is None and summary["views"]["4CH"]["area_unit"] == "px2"
    assert (
        "no spacing" in summary["views"]["4CH"]["spacing_source"]
        or "px" in summary["views"]["4CH"]["spacing_source"]
    )
    assert summary["exam"]["units"].startswith("px^3")
    assert "area_px2" in (tmp_path / "out" / "2CH_area.csv").read_text()


def test_automatic_prompts_use_the_view_of_each_loop(tmp_path, exam, camus_root):
    from medsam_echo.inference.sources import fit_prior

    prior = tmp_path / "view_prior.json"
    fit_prior(camus_root, save_to=prior)
    out = tmp_path / "out"
    argv = ["predict", "--model", "baseline:ellipse", "--input", *map(str, exam.paths.values()), "--prompts", "auto",
            "--view-prior", str(prior), "--out", str(out)]  # fmt: skip
    assert cli(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    labels, _ = read_image(out / "4CH_labels.nii.gz", allow_stack=True)
    assert (labels == 1).any(axis=(1, 2)).all()  # a cavity on every frame
    # the view prior's boxes are the same on every frame, so the ellipse never contracts: no beat, no EF
    assert summary["prompts"] == "auto" and summary["exam"]["method"] is None and summary["exam"]["ef"] is None
    assert all(row["ef_reason"].startswith("no complete beat") for row in summary["views"].values())
    seg = pydicom.dcmread(out / "2CH_seg.dcm")
    assert {item.SegmentAlgorithmType for item in seg.SegmentSequence} == {"AUTOMATIC"}
