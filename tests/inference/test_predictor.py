"""EchoPredictor: encode once, masks at the original resolution, refine, automatic mode, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsam_echo.inference import EchoPredictor
from medsam_echo.models.loader import load_sam
from medsam_echo.prompts.auto import ViewPrior
from medsam_echo.prompts.decode import make_predict_fn
from medsam_echo.prompts.prompt_set import Prompts


@pytest.fixture(scope="module")
def predictor(tiny_dir) -> EchoPredictor:
    return EchoPredictor.from_source(str(tiny_dir), device="cpu")


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((90, 70), np.uint8),
        np.full((50, 200, 3), 7, np.uint8),  # RGB, wide
        np.arange(300 * 40, dtype=np.uint16).reshape(300, 40),  # tall uint16
        np.linspace(-1, 1, 33 * 47, dtype=np.float32).reshape(33, 47),
        np.zeros((64, 64, 1), np.float64),
    ],
    ids=["gray", "rgb-wide", "uint16-tall", "float32", "hw1"],
)
def test_masks_come_back_at_the_original_resolution(predictor, image):
    predictor.set_image(image)
    h, w = image.shape[:2]
    out = predictor.predict(boxes=[[2, 3, w // 2, h // 2], [1, 1, w - 2, h - 2]], structure=["lv_endo", "la"])
    assert out.masks.shape == (2, h, w) and out.masks.dtype == bool
    assert out.logits.shape == (2, h, w) and out.scores.shape == (2,)
    assert out.low_res_logits.shape == (2, 64, 64)  # 16 x 16 embeddings (128 px / 8 px patches) x 4
    assert np.array_equal(out.masks, out.logits > 0)
    assert out.label_map().shape == (h, w)


def test_predictions_match_the_reference_pipeline(predictor, tiny_dir, echo_image):
    """Same masks as prompts.decode.make_predict_fn (preprocess, prompt mapping, decode, postprocess)."""
    loaded = load_sam(str(tiny_dir))
    reference = make_predict_fn(loaded.model, loaded.profile)
    boxes = np.array([[10, 12, 50, 70], [20, 5, 60, 40]])
    prompts = Prompts(
        ("lv_endo", "la"), boxes=boxes, points=np.array([[[30, 40]], [[40, 20]]]), labels=np.array([[1], [0]])
    )
    predictor.set_image(echo_image)
    out = predictor.predict(
        boxes=boxes, points=prompts.points, point_labels=prompts.labels, structure=prompts.structures
    )
    np.testing.assert_array_equal(out.masks, reference(echo_image, prompts))


def test_the_encoder_runs_once_per_image(tiny_dir, echo_image, monkeypatch):
    predictor = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    calls = []
    predictor.engine.encoder.register_forward_hook(lambda *args: calls.append(1))
    predictor.set_image(echo_image)
    for x0 in (5, 10, 15):
        predictor.predict(boxes=[x0, 10, 50, 60])
    predictor.refine([[30, 30]], [0])
    assert len(calls) == 1


def test_multimask_keeps_three_candidates_and_picks_the_best(predictor, echo_image):
    predictor.set_image(echo_image)
    out = predictor.predict(points=[[35, 40]], structure="lv_endo", multimask=True)
    assert out.masks.shape == (1, 3, 90, 70) and out.scores.shape == (1, 3)
    assert out.best[0] == out.scores[0].argmax()
    np.testing.assert_array_equal(out.logits[0] > 0, out.masks[0, out.best[0]])


def test_refine_adds_clicks_and_feeds_back_the_previous_logits(predictor, echo_image):
    predictor.set_image(echo_image)
    first = predictor.predict(boxes=[10, 12, 50, 70], structure="lv_endo")
    refined = predictor.refine([[30, 40]], [0])
    assert refined.prompts.points.tolist() == [[[30, 40]]] and refined.prompts.labels.tolist() == [[0]]
    np.testing.assert_array_equal(refined.prompts.boxes, first.prompts.boxes)
    with_mask = predictor.predict(
        boxes=[10, 12, 50, 70],
        points=[[30, 40]],
        point_labels=[0],
        structure="lv_endo",
        mask_input=first.low_res_logits,
    )
    without = predictor.predict(
        boxes=[10, 12, 50, 70], points=[[30, 40]], point_labels=[0], structure="lv_endo"
    )
    np.testing.assert_allclose(refined.logits, with_mask.logits, atol=1e-5)
    assert not np.allclose(refined.logits, without.logits, atol=1e-3)
    again = predictor.refine([[20, 20]], [1], previous=refined)
    assert again.prompts.points.shape == (1, 2, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no prompt"),
        ({"boxes": []}, "empty boxes"),
        ({"points": np.zeros((0, 2))}, "empty points"),
        ({"boxes": [50, 10, 20, 60]}, "x1 < x0"),
        ({"boxes": [100, 100, 120, 130]}, "outside"),
        ({"points": [[75, 10]]}, "outside"),
        ({"points": [[10, -1]]}, "outside"),
        ({"points": [[10, 10]], "point_labels": [2]}, r"1 \(positive\) or 0"),
        ({"points": [[10, 10], [20, 20]], "point_labels": [1]}, "must match"),
        ({"boxes": [1, 2, 3, float("nan")]}, "NaN"),
        ({"boxes": [[1, 2, 30, 40]], "structure": ["la", "myo"]}, "name each"),
        ({"boxes": [1, 2, 30, 40], "mask_input": np.zeros((1, 10, 10))}, "low-res logits"),
        ({"boxes": [1, 2, 30, 40], "mask_input": np.zeros((2, 64, 64))}, "mask_input must be"),
    ],
)
def test_bad_prompts_raise_clear_errors(predictor, echo_image, kwargs, message):
    predictor.set_image(echo_image)
    with pytest.raises(ValueError, match=message):
        predictor.predict(**kwargs)


def test_a_box_partly_outside_is_clipped_to_the_image(predictor, echo_image):
    predictor.set_image(echo_image)
    clipped = predictor.predict(boxes=[-20, 5, 200, 60])
    assert clipped.prompts.boxes.tolist() == [[0, 5, 69, 60]]
    np.testing.assert_array_equal(clipped.masks, predictor.predict(boxes=[0, 5, 69, 60]).masks)


def test_bad_images_and_missing_image(tiny_dir):
    predictor = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict(boxes=[0, 0, 5, 5])
    with pytest.raises(RuntimeError, match="predict"):
        predictor.refine([[1, 1]])
    for bad, message in (
        (np.zeros((4, 4, 5)), "shape"),
        (np.zeros((8, 8), bool), "dtype"),
        (np.full((8, 8), np.nan), "NaN"),
    ):
        with pytest.raises(ValueError, match=message):
            predictor.set_image(bad)


def _prior(shape_fractions: dict) -> ViewPrior:
    return ViewPrior({view: dict(boxes) for view, boxes in shape_fractions.items()}, {"2CH": 1, "4CH": 1})


def test_segment_uses_the_view_prior_and_picks_the_best_view(tiny_dir, echo_image):
    boxes = {"lv_endo": [0.2, 0.1, 0.7, 0.6], "myo": [0.1, 0.05, 0.8, 0.65], "la": [0.25, 0.6, 0.75, 0.95]}
    prior = _prior({"2CH": boxes, "4CH": {k: [v[0] / 2, v[1], v[2] / 2, v[3]] for k, v in boxes.items()}})
    predictor = EchoPredictor.from_source(str(tiny_dir), device="cpu", view_prior=prior)
    predictor.set_image(echo_image)
    per_view = {view: predictor.segment(view=view) for view in ("2CH", "4CH")}
    auto = predictor.segment()
    best = max(per_view, key=lambda v: np.mean(list(per_view[v].confidence.values())))
    assert auto.view == best and auto.method == "view-prior"
    assert set(auto.confidence) == {"lv_endo", "myo", "la"} and all(0 <= c <= 1 for c in auto.confidence.values())
    np.testing.assert_array_equal(auto.label_map, per_view[best].label_map)
    assert auto.label_map.shape == (90, 70) and set(np.unique(auto.label_map)) <= {0, 1, 2, 3}
    assert auto.prediction.structures == ("lv_endo", "myo", "la")


def test_segment_without_a_prior_says_how_to_get_one(predictor, echo_image):
    predictor.set_image(echo_image)
    with pytest.raises(RuntimeError, match="view_prior"):
        predictor.segment()


def test_a_training_run_loads_with_its_structures_and_merged_lora(run_dir, tiny_dir, echo_image):
    from medsam_echo.adapters.persist import load_trained

    predictor = EchoPredictor.from_source(str(run_dir), device="cpu")
    assert predictor.structures == ("lv_endo", "myo", "la")
    assert not any("lora" in name for name, _ in predictor.engine.model.named_parameters())
    unmerged, _ = load_trained(run_dir / "model")
    base = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    predictor.set_image(echo_image)
    base.set_image(echo_image)
    merged_logits = predictor.predict(boxes=[10, 12, 50, 70]).logits
    assert not np.allclose(merged_logits, base.predict(boxes=[10, 12, 50, 70]).logits, atol=1e-4)
    with torch.no_grad():
        reference = make_predict_fn(unmerged, predictor.engine.profile)
        ref_mask = reference(echo_image, Prompts(("object",), boxes=np.array([[10, 12, 50, 70]])))
    np.testing.assert_array_equal(merged_logits > 0, ref_mask)


def test_a_run_fits_and_saves_its_view_prior_from_its_training_data(tmp_path, run_dir, echo_image):
    prior_file = run_dir / "view_prior.json"
    prior_file.unlink(missing_ok=True)
    predictor = EchoPredictor.from_source(str(run_dir), device="cpu")
    predictor.set_image(echo_image)
    predictor.segment(view="4CH")
    assert prior_file.is_file()
    assert ViewPrior.load(prior_file).counts == {"2CH": 16, "4CH": 16}  # 8 training patients x ED, ES


def test_a_bf16_decoder_stays_close_to_fp32(tiny_dir, echo_image):
    fast = EchoPredictor.from_source(str(tiny_dir), device="cpu", decoder_precision="bf16")
    exact = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    fast.set_image(echo_image)
    exact.set_image(echo_image)
    a, b = (p.predict(boxes=[10, 12, 50, 70]).logits for p in (fast, exact))
    assert a.dtype == np.float32 and not np.array_equal(a, b)
    assert np.abs(a - b).max() <= 0.05 * np.abs(b).max()
    with pytest.raises(ValueError, match="decoder_precision"):
        EchoPredictor.from_source(str(tiny_dir), device="cpu", decoder_precision="fp8")


def test_a_compiled_decoder_gives_the_same_masks(tiny_dir, echo_image):
    """``compile_decoder`` trades a one-off compilation for speed, never for different masks."""
    compiled = EchoPredictor.from_source(str(tiny_dir), device="cpu", compile_decoder=True)
    exact = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    assert getattr(compiled.engine.model.mask_decoder, "_compiled_call_impl", None) is not None
    for predictor in (compiled, exact):
        predictor.set_image(echo_image)
    a, b = (p.predict(boxes=[10, 12, 50, 70], points=[[30, 40]], point_labels=[0]) for p in (compiled, exact))
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-4)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_lv_epi_predictions_fuse_into_a_camus_label_map(tiny_dir, camus_root):
    """Structures (lv_endo, lv_epi, la): cavity where lv_endo is, myo in the rest of lv_epi, la, background."""
    from medsam_echo.data.camus import CamusDataset
    from medsam_echo.data.sample import structure_mask
    from medsam_echo.evaluation.guards import apply_guards
    from medsam_echo.prompts.boxes import box_from_mask

    structures = ("lv_endo", "lv_epi", "la")
    predictor = EchoPredictor.from_source(str(tiny_dir), device="cpu", structures=structures)
    seen = set()
    for sample in CamusDataset(camus_root, split="val"):
        predictor.set_image(sample.image, sample.spacing)
        boxes = [box_from_mask(structure_mask(sample.label, s)) for s in structures]
        out = predictor.predict(boxes=boxes, structure=predictor.structures)
        guarded = out.label_map()
        out.guards = False  # the fusion itself; the guards are checked against it below
        labels, (endo, epi, la) = out.label_map(), out.masks
        np.testing.assert_array_equal(guarded, apply_guards(labels))
        assert labels.shape == sample.label.shape and labels.dtype == np.uint8
        np.testing.assert_array_equal(labels > 0, endo | epi | la)  # nothing predicted is dropped
        assert la[labels == 3].all() and endo[labels == 1].all()
        np.testing.assert_array_equal((labels == 2)[~la], (epi & ~endo)[~la])
        np.testing.assert_array_equal((labels == 1)[~la], endo[~la])
        seen |= set(np.unique(labels).tolist())
    assert seen == {0, 1, 2, 3}


def test_segment_without_confidence_skips_the_extra_decoder_passes(tiny_dir, echo_image):
    boxes = {"lv_endo": [0.2, 0.1, 0.7, 0.6], "myo": [0.1, 0.05, 0.8, 0.65], "la": [0.25, 0.6, 0.75, 0.95]}
    predictor = EchoPredictor.from_source(str(tiny_dir), device="cpu", view_prior=_prior({"4CH": boxes}))
    predictor.set_image(echo_image)
    calls = []
    run = predictor._run
    predictor._run = lambda *args: calls.append(1) or run(*args)
    full = predictor.segment(view="4CH")
    n_full, calls[:] = len(calls), []
    fast = predictor.segment(view="4CH", with_confidence=False)
    assert len(calls) == n_full - 4  # the four perturbed-box decodes of the confidence
    np.testing.assert_array_equal(fast.label_map, full.label_map)
    assert fast.confidence == {} and set(fast.parts) == {"predicted_iou"}
