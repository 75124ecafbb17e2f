"""What the clinician notebook opens: the bundled patient, a CAMUS patient, DICOM loops' key frames."""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.data.io import DataError
from medsam_echo.inference.study import DEMO_NAME, open_study


def test_the_bundled_patient_is_written_once_and_has_four_labelled_frames(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    study = open_study(None)
    assert study.root == tmp_path / "medsam-echo" / DEMO_NAME
    assert [(f.view, f.phase) for f in study.frames] == [("2CH", "ED"), ("2CH", "ES"), ("4CH", "ED"), ("4CH", "ES")]
    assert all(f.label is not None and f.image.shape == (192, 160) for f in study.frames)
    assert "true EF" in study.description and study.loops is None
    written = (study.root / "database_split").stat().st_mtime_ns
    again = open_study(None)  # reused, not written again
    assert (again.root / "database_split").stat().st_mtime_ns == written
    np.testing.assert_array_equal(again.frames[0].image, study.frames[0].image)
    assert [p.name for p in (tmp_path / "medsam-echo").iterdir()] == [DEMO_NAME]  # no partial folder left


def test_a_camus_folder_opens_the_chosen_patient(camus_root):
    study = open_study(camus_root, patient="patient0003")
    assert [f.case_id for f in study.frames] == [f"patient0003_{v}_{p}" for v in ("2CH", "4CH") for p in ("ED", "ES")]
    assert open_study(str(camus_root)).frames[0].patient == "patient0001"  # default: the first
    with pytest.raises(DataError, match="no patient 'patient9999'"):
        open_study(camus_root, patient="patient9999")


def test_a_wrong_path_says_what_data_may_be(tmp_path):
    with pytest.raises(DataError, match="CAMUS folder, a DICOM file or folder"):
        open_study(tmp_path / "nothing")
    with pytest.raises(DataError, match="not a CAMUS root"):
        open_study(tmp_path)  # an empty folder


def test_dicom_loops_open_at_their_ed_and_es_guesses(tmp_path):
    pytest.importorskip("pydicom")
    from medsam_echo.data.dicom_write import make_dicom_exam

    exam = make_dicom_exam(tmp_path / "exam", frames=20, size=(64, 56))  # ED 3, ES 8; R-waves in 2CH only
    study = open_study(tmp_path / "exam")
    assert study.key_frames == {"2CH": (3, 8), "4CH": (0, 7)}  # ECG: the true frames; none: a third of the loop
    assert [f.case_id for f in study.frames] == ["2CH_ED", "2CH_ES", "4CH_ED", "4CH_ES"]
    np.testing.assert_array_equal(study.frames[1].image, study.loops["2CH"].frames[8])
    chosen = open_study(exam.paths["4CH"], key_frames={"4CH": (3, 8)})  # one file, frames set by hand
    assert chosen.key_frames == {"4CH": (3, 8)} and len(chosen.frames) == 2
    with pytest.raises(DataError, match="key frames for"):
        open_study(exam.paths["4CH"], key_frames={"2CH": (3, 8)})
