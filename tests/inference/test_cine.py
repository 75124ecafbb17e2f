"""Cine loops: ED / ES from the area curve or the R-waves, EF from the loops, prompts over frames."""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.data.sample import structure_mask
from medsam_echo.data.synthetic import make_cine, random_heart
from medsam_echo.inference import EchoPredictor
from medsam_echo.inference.cine import (
    AREA_LENGTH,
    BIPLANE,
    CinePrompts,
    area_curve,
    exam_volumes,
    find_phases,
    segment_cine,
)
from medsam_echo.prompts.boxes import box_from_mask

SIZE = (96, 80)


@pytest.fixture(scope="module")
def loops():
    """One heart, both views, 30 frames: two beats (ED at 3 and 17, ES at 8 and 22), 60 ms per frame."""
    rng = np.random.default_rng(3)
    heart = random_heart(rng)
    spacing = {"2CH": (1.3, 1.8), "4CH": (1.25, 1.75)}
    return {v: make_cine(heart, v, spacing=spacing[v], size=SIZE, frames=30, rng=rng) for v in ("2CH", "4CH")}


def test_ed_es_from_the_area_curve_within_one_frame(loops):
    for cine in loops.values():
        area, unit = area_curve(cine.labels, cine.spacing)
        phases = find_phases(area, np.arange(30) * cine.frame_time_ms)
        assert unit == "mm2" and phases.source == "area curve"
        assert abs(phases.ed - cine.ed_frames[0]) <= 1 and abs(phases.es - cine.es_frames[0]) <= 1
        found = [(ed, es) for ed, es in phases.beats if es is not None]
        assert len(found) == 2
        for (ed, es), ed_true, es_true in zip(found, cine.ed_frames, cine.es_frames, strict=True):
            assert abs(ed - ed_true) <= 1 and abs(es - es_true) <= 1


def test_r_waves_fix_ed_and_es_is_the_smallest_cavity_of_the_beat(loops):
    cine = loops["4CH"]
    area, _ = area_curve(cine.labels, cine.spacing)
    r_waves = np.asarray(cine.ed_frames, float) * cine.frame_time_ms + 10.0  # R-wave 10 ms after a frame
    phases = find_phases(area, np.arange(30) * cine.frame_time_ms, r_waves)
    assert phases.source == "ECG R-waves" and [ed for ed, _ in phases.beats] == list(cine.ed_frames)
    assert (phases.ed, phases.es) == (cine.ed_frames[0], cine.es_frames[0])


def test_a_loop_without_a_complete_beat_falls_back_to_the_extremes():
    phases = find_phases(np.array([5.0, 4.0, 3.0, 2.0, 1.5]))
    assert (phases.ed, phases.es) == (0, 4) and "no complete beat" in phases.source


def test_biplane_ef_of_the_reference_masks_matches_the_generator(loops):
    found = {}
    for view, cine in loops.items():
        area, _ = area_curve(cine.labels, cine.spacing)
        found[view] = (cine.labels, cine.spacing, find_phases(area, np.arange(30) * cine.frame_time_ms))
    result = exam_volumes(found)
    heart = loops["2CH"].heart
    assert result["method"] == BIPLANE and result["units"] == "mL"
    assert abs(result["ef"] - heart.ef) < 2.0
    assert result["edv_ml"] == pytest.approx(heart.volume_ml(0.0), rel=0.1)


def test_one_view_gives_a_labelled_area_length_ef_and_no_spacing_is_said(loops):
    cine = loops["4CH"]
    area, _ = area_curve(cine.labels, cine.spacing)
    phases = find_phases(area, np.arange(30) * cine.frame_time_ms)
    single = exam_volumes({"4CH": (cine.labels, cine.spacing, phases)})
    assert single["method"] == AREA_LENGTH and abs(single["ef"] - cine.heart.ef) < 5.0
    area_px, unit = area_curve(cine.labels, None)
    assert unit == "px2" and area_px[0] == (cine.labels[0] == 1).sum()
    no_spacing = exam_volumes({"4CH": (cine.labels, None, phases)})
    assert no_spacing["units"].startswith("px^3") and np.isfinite(no_spacing["ef"])


def test_key_frame_boxes_are_interpolated_and_points_come_from_the_nearest_key():
    prompts = CinePrompts({
        0: [{"structure": "lv_endo", "box": [0, 0, 10, 10], "points": [[5, 5]]}],
        10: [{"structure": "lv_endo", "box": [10, 20, 30, 40], "points": [[7, 7]]}],
    })  # fmt: skip
    mid = prompts.for_frame(4)[0]
    assert mid["box"] == pytest.approx([4, 8, 18, 22]) and mid["points"] == [[5, 5]]
    assert prompts.for_frame(7)[0]["points"] == [[7, 7]]
    assert prompts.for_frame(25)[0]["box"] == [10, 20, 30, 40]


def test_segment_cine_prompts_each_frame_and_keeps_outside_the_crop_empty(loops):
    cine = loops["2CH"]
    predictor = EchoPredictor.from_source("baseline:ellipse")
    keys = {t: [{"structure": s, "box": box_from_mask(structure_mask(cine.labels[t], s)).tolist()}
                for s in ("lv_endo", "lv_epi", "la")] for t in range(6)}  # fmt: skip
    frames = np.pad(cine.images[:6], ((0, 0), (4, 0), (3, 3)))  # a canvas around the sector
    keys = {
        t: [{**e, "box": (np.asarray(e["box"]) + [3, 4, 3, 4]).tolist()} for e in v] for t, v in keys.items()
    }
    labels, scores = segment_cine(predictor, frames, CinePrompts(keys), crop=(3, 4, 3 + SIZE[1] - 1, 4 + SIZE[0] - 1),
                                  batch_size=4)  # fmt: skip
    assert labels.shape == frames.shape and scores.tolist() == [1.0] * 6
    assert not labels[:, :4].any() and not labels[:, :, :3].any() and not labels[:, :, -3:].any()
    inside = labels[:, 4:, 3:-3]
    for t in range(6):
        truth = cine.labels[t] == 1
        dice = 2 * (truth & (inside[t] == 1)).sum() / (truth.sum() + (inside[t] == 1).sum())
        assert dice > 0.8


def test_batched_frames_encode_like_single_frames(tiny_dir, loops):
    predictor = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    frames = loops["4CH"].images[:3]
    seen = []
    for t in predictor.iterate_frames(frames, (1.0, 1.0), batch_size=2):
        batched = predictor._encoded.embeddings.clone()
        seen.append(t)
        single = predictor.engine.encode(frames[t]).embeddings
        assert batched.shape == single.shape and np.allclose(batched.numpy(), single.numpy(), atol=1e-4)
    assert seen == [0, 1, 2] and predictor.spacing == (1.0, 1.0)


def test_frames_outside_the_key_frames_are_tracked_from_their_neighbour():
    from medsam_echo.inference.cine import _frame_order, _tracked

    prompts = CinePrompts({3: [{"structure": "lv_endo", "box": [10, 10, 30, 40]}],
                           6: [{"structure": "lv_endo", "box": [12, 12, 28, 36]}]})  # fmt: skip
    assert _frame_order(9, prompts) == [[3, 4, 5, 6, 7, 8], [2, 1, 0]]
    previous = np.zeros((50, 50), np.uint8)
    previous[15:30, 14:26] = 1  # the cavity found on the neighbouring frame
    entry = _tracked(prompts.for_frame(8), previous, prompts.envelope())[0]
    assert entry == {"structure": "lv_endo", "box": [13.0, 14.0, 26.0, 30.0]}  # its box + 1 px (2 % of 50)
    previous[0:49, 0:49] = 1  # a runaway mask: the box stays within the key boxes' envelope
    box = _tracked(prompts.for_frame(8), previous, prompts.envelope())[0]["box"]
    assert box == pytest.approx([8.0, 7.0, 32.0, 43.0])
    assert _tracked(prompts.for_frame(8), np.zeros((50, 50), np.uint8), {})[0]["box"] == [12, 12, 28, 36]


def test_a_prompting_session_on_ed_and_es_prompts_the_whole_loop(loops):
    from medsam_echo.data.dicom import DicomCine
    from medsam_echo.inference.cine_session import key_frame_samples, prompts_from_session, segment_loops
    from medsam_echo.inference.interactive import PromptSession

    cines = {v: DicomCine(f"{v}.dcm", c.images, c.spacing, "test", frame_times_ms=np.arange(30) * 60.0, view=v)
             for v, c in loops.items()}  # fmt: skip
    keys = {v: (c.ed_frames[0], c.es_frames[0]) for v, c in loops.items()}
    session = PromptSession(EchoPredictor.from_source("baseline:ellipse"), key_frame_samples(cines, keys))
    for frame in session.frames.values():
        session.select_frame(frame.case_id)
        for structure in session.structures:
            session.select_structure(structure)
            session.add_box(
                box_from_mask(structure_mask(loops[frame.view].labels[frame.meta["frame"]], structure))
            )
        session.add_click(40, 40, positive=True)  # a click after the box: kept with it
    prompts = prompts_from_session(session)
    assert sorted(prompts) == ["2CH", "4CH"] and sorted(prompts["2CH"].keys) == [3, 8]
    last = prompts["2CH"].keys[3][-1]
    assert "box" in last and last["points"] == [[40.0, 40.0]] and last["labels"] == [1]
    result = segment_loops(session.predictor, cines, prompts)
    assert result["exam"]["method"] == BIPLANE and np.isfinite(result["exam"]["ef"])
    assert result["loops"]["4CH"]["labels"].shape == loops["4CH"].labels.shape


def test_a_wobble_at_the_end_of_the_loop_is_not_a_beat():
    area = np.array([6, 7, 10, 8, 6, 3, 4, 6, 8, 6.5, 6, 6.2])
    phases = find_phases(area, np.arange(12) * 60.0)
    assert (phases.ed, phases.es) == (2, 5)
    assert all(es is None for _, es in phases.beats[1:])
