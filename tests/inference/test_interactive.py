"""The clinician prompting session and its widget, driven from code (no browser)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from medsam_echo.data.camus import CamusDataset
from medsam_echo.data.io import read_image
from medsam_echo.data.sample import structure_mask
from medsam_echo.evaluation.clinical import biplane_volume, ejection_fraction
from medsam_echo.evaluation.metrics import dice
from medsam_echo.inference import EchoPredictor
from medsam_echo.inference.interactive import PromptSession
from medsam_echo.prompts.boxes import box_from_mask


@pytest.fixture
def patient(camus_root):
    """The four CAMUS frames (2CH / 4CH at ED / ES) of the first training patient."""
    samples = CamusDataset(camus_root, split="train")
    return [s for s in samples if s.patient == samples[0].patient]


@pytest.fixture
def tiny_session(tiny_dir, patient) -> PromptSession:
    return PromptSession(EchoPredictor.from_source(str(tiny_dir), device="cpu"), patient)


def test_clicks_refine_and_undo_restores_the_previous_mask(tiny_session):
    session = tiny_session
    box_mask = session.add_box([10, 10, 40, 50])
    clicked = session.add_click(25, 30, positive=False)
    assert len(session.history) == 2
    assert session.history[-1][1].prompts.points.tolist() == [[[25, 30]]]
    assert not np.array_equal(session.history[-1][1].logits, session.history[0][1].logits)
    assert session.undo()
    np.testing.assert_array_equal(session.masks()["lv_endo"], box_mask)
    assert session.undo() and not session.undo()  # nothing left
    assert session.masks() == {} and clicked.shape == box_mask.shape


def test_structures_and_frames_keep_separate_histories(tiny_session, patient):
    session = tiny_session
    session.add_box([10, 10, 40, 50])
    session.select_structure("la")
    assert session.history == []
    session.add_click(30, 60)
    session.select_frame(patient[1].case_id)
    assert session.history == [] and session.label_map().max() == 0
    session.select_frame(patient[0].case_id)
    assert sorted(session.masks()) == ["la", "lv_endo"]
    with pytest.raises(KeyError, match="not offered"):
        session.select_structure("lv_epi")
    with pytest.raises(KeyError, match="no frame"):
        session.select_frame("nobody")


def test_a_prompt_off_the_image_leaves_the_session_unchanged(tiny_session):
    tiny_session.add_box([10, 10, 40, 50])
    with pytest.raises(ValueError, match="outside"):
        tiny_session.add_click(500, 10)
    assert len(tiny_session.history) == 1


def test_export_writes_label_maps_and_the_biplane_ef(tmp_path, patient):
    """With the ellipse baseline and tight boxes the EF is the one of the label maps exported."""
    session = PromptSession(EchoPredictor.from_source("baseline:ellipse"), patient)
    for frame in patient:
        session.select_frame(frame.case_id)
        for name in session.structures:
            session.select_structure(name)
            session.add_box(box_from_mask(structure_mask(frame.label, name)))
    record = session.export(tmp_path)
    maps = {f.case_id: read_image(tmp_path / f"{f.case_id}.nii.gz") for f in patient}
    by = {(f.view, f.phase): f for f in patient}
    volumes = [
        biplane_volume(
            maps[by[("2CH", p)].case_id][0],
            by[("2CH", p)].spacing,
            maps[by[("4CH", p)].case_id][0],
            by[("4CH", p)].spacing,
        )
        for p in ("ED", "ES")
    ]
    assert record["clinical"]["ef"] == pytest.approx(ejection_fraction(*volumes))
    assert 20 < record["clinical"]["ef"] < 80  # the phantoms' EFs lie in a physiological range
    saved = json.loads((tmp_path / "session.json").read_text())
    assert saved["frames"][patient[0].case_id]["la"][0][0] == "box"


def test_ef_needs_all_four_frames(tiny_dir, patient):
    session = PromptSession(EchoPredictor.from_source(str(tiny_dir), device="cpu"), patient[:2])
    with pytest.raises(ValueError, match="missing"):
        session.ejection_fraction()


def test_each_frame_is_encoded_once_and_shared_predictors_stay_on_their_frame(tiny_dir, patient):
    predictor = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    calls = []
    encode = predictor.engine.encode
    predictor.engine.encode = lambda image: calls.append(image.shape) or encode(image)
    session = PromptSession(predictor, patient)
    first = session.add_box([10, 10, 40, 50])
    for case_id in (patient[1].case_id, patient[0].case_id, patient[1].case_id, patient[0].case_id):
        session.select_frame(case_id)
    assert len(calls) == 2 and session.encoded_frames == [patient[0].case_id, patient[1].case_id]
    other = PromptSession(predictor, patient[2:])  # moves the shared predictor to another frame
    assert len(calls) == 3
    np.testing.assert_array_equal(session.add_box([10, 10, 40, 50]), first)  # decoded on its own frame
    assert len(calls) == 3 and other.frame == patient[2].case_id


def test_a_prompt_is_decoded_on_the_sessions_threads_and_torchs_setting_comes_back(tiny_dir, patient):
    import torch

    predictor = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    seen = []
    decode = predictor.engine.decode
    predictor.engine.decode = lambda *a, **k: seen.append(torch.get_num_threads()) or decode(*a, **k)
    before = torch.get_num_threads()
    session = PromptSession(predictor, patient, decoder_threads=before + 1)
    session.add_box([10, 10, 40, 50])
    session.add_click(20, 30, positive=False)
    assert seen == [before + 1, before + 1] and torch.get_num_threads() == before


def _mouse(widget, kind: str, x: float, y: float, button: int = 1) -> None:
    """A matplotlib mouse event at image px ``(x, y)``, as a browser's would arrive in the kernel."""
    from matplotlib.backend_bases import MouseEvent

    dx, dy = widget.axes.transData.transform((x, y))
    MouseEvent(kind, widget.figure.canvas, dx, dy, button)._process()


def test_the_widget_forwards_boxes_clicks_and_undo(tmp_path, tiny_session):
    pytest.importorskip("ipywidgets")
    from medsam_echo.inference.widget import PromptWidget

    widget = PromptWidget(tiny_session, export_dir=tmp_path / "export", live=False)
    widget.handle_box(40, 50, 10, 10)  # dragged from the bottom-right corner
    assert tiny_session.history[-1][0] == ("box", (10.0, 10.0, 40.0, 50.0))
    widget.mode.value = "negative click"
    widget.handle_click(20.4, 30.6)
    assert tiny_session.history[-1][0] == ("click", (20.0, 31.0), 0)
    widget.handle_click(900, 900)
    assert "not applied" in widget.status.value and len(tiny_session.history) == 2
    widget.undo_button.click()
    assert len(tiny_session.history) == 1
    widget.structure.value = "myo"
    assert tiny_session.structure == "myo"
    widget.export_button.click()
    assert (tmp_path / "export" / "session.json").is_file()
    assert "exported" in widget.status.value and "no EF yet" in widget.status.value  # one frame prompted
    saved = json.loads((tmp_path / "export" / "widget_timings.json").read_text())
    assert [t["gesture"] for t in saved] == ["box", "negative click", "undo", "structure"]


def test_a_mouse_drag_is_a_box_and_a_release_is_timed_until_the_figure_is_drawn(tmp_path, tiny_session):
    pytest.importorskip("ipywidgets")
    from medsam_echo.inference.widget import PromptWidget

    widget = PromptWidget(tiny_session, export_dir=tmp_path, live=False)
    _mouse(widget, "button_press_event", 40, 50)
    _mouse(widget, "motion_notify_event", 25, 30)
    _mouse(widget, "button_release_event", 10.2, 9.8)
    assert tiny_session.history[-1][0] == ("box", (10.0, 10.0, 40.0, 50.0))
    timing = widget.timings[-1]
    assert timing["gesture"] == "box" and 0 < timing["model_ms"] <= timing["drawn_ms"]
    assert f"drawn {timing['drawn_ms']:.0f} ms after the release" in widget.status.value
    _mouse(widget, "button_press_event", 20, 20)
    _mouse(widget, "button_release_event", 20.4, 20.3)  # a click in box mode: not a box
    assert len(tiny_session.history) == 1 and "drag" in widget.status.value
    widget.mode.value = "positive click"
    _mouse(widget, "button_press_event", 25, 30, button=3)  # not the left button
    _mouse(widget, "button_release_event", 25, 30, button=3)
    assert len(tiny_session.history) == 1
    _mouse(widget, "button_press_event", 25, 30)
    _mouse(widget, "button_release_event", 25, 30)
    assert tiny_session.history[-1][0] == ("click", (25.0, 30.0), 1) and len(widget.timings) == 2


def test_without_ipympl_the_figure_is_a_still_picture_with_the_install_command(tiny_session, monkeypatch):
    pytest.importorskip("ipywidgets")
    from medsam_echo.inference.widget import PromptWidget

    monkeypatch.setitem(sys.modules, "ipympl", None)  # import ipympl fails
    widget = PromptWidget(tiny_session)
    assert not widget.live and 'pip install -e ".[notebooks]"' in widget.status.value
    with pytest.raises(ImportError, match="notebooks"):
        PromptWidget(tiny_session, live=True)


def test_a_live_widget_leaves_the_notebooks_matplotlib_backend_as_it_was():
    pytest.importorskip("ipympl")
    code = (
        "import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot\n"
        "from medsam_echo.inference.widget import _ipympl\n"
        "_ipympl(); print(matplotlib.get_backend())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "svg"


def test_an_epicardium_is_split_by_its_cavity_and_shown_as_myocardium_before(tmp_path, patient):
    """Structures (lv_endo, lv_epi, la): lv_epi alone draws as myo; the cavity box then carves the cavity."""
    session = PromptSession(EchoPredictor.from_source("baseline:ellipse"), patient)
    frame = patient[0]
    session.select_structure("lv_epi")
    epi = session.add_box(box_from_mask(structure_mask(frame.label, "lv_epi")))
    np.testing.assert_array_equal(session.label_map(), np.where(epi, 2, 0))
    session.export(tmp_path)  # a half-prompted frame still exports
    session.select_structure("lv_endo")
    cavity = session.add_box(box_from_mask(structure_mask(frame.label, "lv_endo")))
    labels = session.label_map()
    np.testing.assert_array_equal(labels == 1, cavity)
    np.testing.assert_array_equal(labels == 2, epi & ~cavity)
    assert dice(labels == 2, structure_mask(frame.label, "myo")) > 0.5
