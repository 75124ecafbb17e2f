"""dciodvfy (David Clunie's dicom3tools, the standard's IOD checker) finds no error in any DICOM SEG we write
nor in any file ``data/dicom_write`` produces.

``apt-get install dicom3tools`` gives ``dciodvfy``; without it these tests skip, unless
``MEDSAM_ECHO_REQUIRE_DCIODVFY=1`` (CI) makes that a failure. Warnings are allowed (e.g. Laterality present
but empty, which the standard permits when it is unknown); any ``Error`` line fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")
pytest.importorskip("highdicom")

from medsam_echo.cli import main as cli  # noqa: E402
from medsam_echo.data.dicom import read_dicom_cine  # noqa: E402
from medsam_echo.data.dicom_write import COMPRESSIONS, SPACING_FORMS, make_dicom_exam, write_us_cine  # noqa: E402
from medsam_echo.inference.dicom_seg import write_dicom_seg  # noqa: E402
from tests import dicom_corpus as corpus  # noqa: E402

pytestmark = pytest.mark.dciodvfy


@pytest.fixture(scope="module")
def dciodvfy() -> str:
    found = shutil.which("dciodvfy")
    if found is None:
        message = "dciodvfy is not installed (apt-get install dicom3tools)"
        if os.environ.get("MEDSAM_ECHO_REQUIRE_DCIODVFY"):
            pytest.fail(message + "; MEDSAM_ECHO_REQUIRE_DCIODVFY is set")
        pytest.skip(message)
    return found


def errors(dciodvfy: str, path: Path) -> list[str]:
    """dciodvfy's ``Error`` lines for ``path``."""
    result = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def _check(dciodvfy: str, paths: list[Path]) -> None:
    found = {str(p): errors(dciodvfy, p) for p in paths}
    assert {p: e for p, e in found.items() if e} == {}
    assert paths


def test_every_form_dicom_write_produces_passes(tmp_path, dciodvfy):
    frames = corpus.loop()
    paths = []
    for compression in COMPRESSIONS:
        for spacing_as in SPACING_FORMS:
            for n in (1, 3):
                for frame_time in (None, 40.0):
                    name = f"{compression}_{spacing_as}_{n}_{frame_time}.dcm"
                    paths.append(write_us_cine(tmp_path / name, frames[:n], spacing=corpus.SPACING, spacing_as=spacing_as,
                                               frame_time_ms=frame_time, compression=compression))  # fmt: skip
    paths.append(write_us_cine(tmp_path / "rwaves.dcm", frames, frame_time_ms=60.0, r_waves_ms=[120.0]))
    paths.append(write_us_cine(tmp_path / "ecg.dcm", frames, frame_time_ms=60.0, ecg_r_waves_ms=[120.0]))
    paths.append(write_us_cine(tmp_path / "sc.dcm", frames, modality="OT"))
    paths += make_dicom_exam(tmp_path / "exam", frames=6, size=(48, 40), ecg=("4CH",)).paths.values()
    paths += make_dicom_exam(tmp_path / "exam_jpeg", frames=4, size=(48, 40), compression="jpeg").paths.values()
    _check(dciodvfy, paths)


def test_every_seg_predict_writes_passes(tmp_path, dciodvfy, camus_root):
    """SEGs over single-frame classes (no Referenced Frame Number), repaired patient / study attributes,
    palette, 16-bit, big endian, multi-frame exams, and the automatic mode's (AUTOMATIC) SEG."""
    sources = {
        "single": corpus.single_frame(tmp_path / "in" / "single.dcm"),
        "single_jpeg": corpus.single_frame(tmp_path / "in" / "single_jpeg.dcm", "jpeg"),
        "patient": corpus.bad_patient_study(tmp_path / "in" / "patient.dcm"),
        "palette": corpus.palette(tmp_path / "in" / "palette.dcm", 16),
        "big_endian": corpus.sixteen_bit(tmp_path / "in" / "be.dcm", big_endian=True),
        "obstetric": corpus.obstetric(tmp_path / "in" / "ob.dcm"),
        "no_spacing": corpus.us_loop(tmp_path / "in" / "nospacing.dcm", spacing=None, frame_time_ms=None),
    }
    segs = []
    for name, path in sources.items():
        prompts = corpus.prompts_file(tmp_path / f"{name}.json", path.name, plain=True)
        out = tmp_path / "out" / name
        assert cli(["predict", "--model", "baseline:ellipse", "--input", str(path), "--prompts", str(prompts),
                    "--out", str(out)]) == 0  # fmt: skip
        segs += sorted(out.glob("*_seg.dcm"))
    exam = make_dicom_exam(tmp_path / "exam", frames=6, size=(48, 40))
    from medsam_echo.inference.sources import fit_prior

    fit_prior(camus_root, save_to=tmp_path / "prior.json")
    assert cli(["predict", "--model", "baseline:ellipse", "--input", str(tmp_path / "exam"), "--prompts", "auto",
                "--view-prior", str(tmp_path / "prior.json"), "--out", str(tmp_path / "out" / "exam")]) == 0  # fmt: skip
    segs += sorted((tmp_path / "out" / "exam").glob("*_seg.dcm"))
    cine = read_dicom_cine(exam.paths["4CH"])
    segs.append(write_dicom_seg(tmp_path / "empty_seg.dcm", cine, np.zeros(cine.frames.shape, np.uint8)))
    assert len(segs) == 10
    assert json.loads((tmp_path / "out" / "exam" / "summary.json").read_text())["complete"] is True
    _check(dciodvfy, segs)
