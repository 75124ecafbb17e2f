"""The automatic mode end to end: a run trained with learned prompts, ``predict --prompt auto`` with
confidence and review list, ``evaluate`` with the automatic EF and the confidence ranking."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medsam_echo.cli import main as cli
from medsam_echo.data.camus import CamusDataset
from medsam_echo.inference import EchoPredictor
from tests.training.conftest import REPO, reset_accelerate_state, tiny_overrides

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


@pytest.fixture(scope="module")
def auto_run(camus_root, tmp_path_factory) -> Path:
    """The quickstart (pretrained LiteMedSAM, decoder fine-tuned from cached embeddings) trained a few steps
    with ``auto.mode=tokens`` on the synthetic release: its learned prompts are saved with it."""
    work = tmp_path_factory.mktemp("auto")
    overrides = tiny_overrides(camus_root, work / "run", "train.max_steps=6", "train.batch_size=4", "optim.lr=3e-4",
                               "auto.mode=tokens", "train.eval_at_start=false",
                               f"train.embedding_cache_dir={work / 'embeddings'}")
    assert cli(["train", "--config", QUICKSTART, *overrides]) == 0
    reset_accelerate_state()
    return work / "run"


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_run_saves_its_learned_prompts_and_reports_their_dice(auto_run):
    assert (auto_run / "model" / "learned_prompts.safetensors").is_file()
    record = json.loads((auto_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_auto_dice", "val_dice_auto_lv_endo", "val_dice_auto_myo", "val_dice_auto_la"} <= set(record)
    predictor = EchoPredictor.from_source(str(auto_run), device="cpu")
    assert predictor.automatic_method == "tokens"


def test_dataset_mode_writes_confidence_and_review_list_and_evaluate_ranks_it(auto_run, camus_root, tmp_path,
                                                                              capsys):
    pred, report = tmp_path / "pred", tmp_path / "eval"
    data = ["--data", str(camus_root), "--split", "val"]
    argv = ["predict", "--model", str(auto_run), *data, "--prompt", "auto", "--review-below", "1.0",
            "--out", str(pred), "--device", "cpu"]
    assert cli(argv) == 0
    cases = CamusDataset(camus_root, split="val").cases
    assert "4 of 4 cases to review (confidence below 1.0)" in capsys.readouterr().out
    rows = _rows(pred / "confidence.csv")
    assert [(r["case"], r["structure"]) for r in rows] == [(c, s) for c in cases for s in ("lv_endo", "myo", "la")]
    assert all(r["method"] == "tokens" and 0 <= float(r["confidence"]) <= 1 for r in rows)
    review = _rows(pred / "review.csv")
    lowest = [min(float(r["confidence"]) for r in rows if r["case"] == c) for c in cases]
    assert sorted(r["case"] for r in review) == sorted(cases)
    assert [float(r["confidence"]) for r in review] == pytest.approx(sorted(lowest))
    assert json.loads((pred / "predict.json").read_text())["auto_method"] == "tokens"

    assert cli(["evaluate", "--pred", str(pred), *data, "--out", str(report)]) == 0
    summary = json.loads((report / "summary.json").read_text())
    assert summary["prediction"]["prompt"] == "auto"
    assert summary["ef"]["n"] + summary["ef"]["n_missing"] == 1  # the patient's automatic EF (NaN when a mask is empty)
    ranking = summary["confidence"]
    assert ranking["cases"]["n"] == 4 and ranking["structures"]["lv_endo"]["n"] == 4
    assert ranking["n_without_confidence"] == 0
    assert "Confidence of the automatic mode vs the real Dice" in (report / "report.md").read_text()


def test_file_mode_coco_scores_are_the_confidence(auto_run, camus_root, tmp_path):
    files = sorted(camus_root.glob("database_nifti/*/*_2CH_ED.nii.gz"))[:2]
    out = tmp_path / "out"
    argv = ["predict", "--model", str(auto_run), "--input", *map(str, files), "--prompts", "auto", "--out", str(out),
            "--device", "cpu"]
    assert cli(argv) == 0
    confidence = {(r["case"], r["structure"]): float(r["confidence"]) for r in _rows(out / "confidence.csv")}
    coco = json.loads((out / "coco.json").read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    categories = {c["id"]: c["name"] for c in coco["categories"]}
    assert coco["annotations"]
    for annotation in coco["annotations"]:
        key = (names[annotation["image_id"]], categories[annotation["category_id"]])
        assert annotation["score"] == pytest.approx(confidence[key])


def test_review_below_needs_the_automatic_mode(camus_root, tmp_path, capsys):
    argv = ["predict", "--model", "baseline:ellipse", "--data", str(camus_root), "--prompt", "box",
            "--review-below", "0.8", "--out", str(tmp_path / "p")]
    assert cli(argv) == 2
    assert "--review-below and --auto-method go with the automatic mode" in capsys.readouterr().err


def test_the_view_prior_start_still_works_and_is_chosen_by_name(auto_run, camus_root):
    sample = CamusDataset(camus_root, split="val")[0]
    predictor = EchoPredictor.from_source(str(auto_run), device="cpu")
    predictor.set_image(sample.image, sample.spacing)
    tokens = predictor.segment()
    prior = predictor.segment(method="view-prior", view=sample.view)
    assert (tokens.method, prior.method) == ("tokens", "view-prior") and prior.view == sample.view
    assert tokens.label_map.shape == prior.label_map.shape == sample.image.shape
    assert set(np.unique(tokens.label_map)) <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match="method must be one of"):
        predictor.segment(method="magic")


def _erase(image: np.ndarray, label: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The structures' pixels replaced by pixels drawn from the image's background (label 0)."""
    from medsam_echo.data.sample import structure_mask

    region = np.any([structure_mask(label, n) for n in names], axis=0)
    out = image.copy()
    out[region] = np.random.default_rng(0).choice(image[label == 0], size=int(region.sum()))
    return out


@pytest.mark.slow
def test_confidence_is_higher_on_clean_cases_than_on_erased_structures_or_flipped_images(auto_run, camus_root):
    """On the 8 val + test images: the erased structure's confidence falls (LV: cavity and myocardium erased;
    LA), and so does a case's confidence (its weakest structure's) when the image is upside down."""
    predictor = EchoPredictor.from_source(str(auto_run), device="cpu")
    samples = [*CamusDataset(camus_root, split="val"), *CamusDataset(camus_root, split="test")]
    scores: dict[str, list[dict]] = {"clean": [], "flipped": [], "no_lv": [], "no_la": []}
    for sample in samples:
        variants = {"clean": sample.image, "flipped": np.flipud(sample.image),
                    "no_lv": _erase(sample.image, sample.label, ("lv_endo", "myo")),
                    "no_la": _erase(sample.image, sample.label, ("la",))}
        for kind, image in variants.items():
            predictor.set_image(image, sample.spacing)
            scores[kind].append(predictor.segment().confidence)

    def mean(kind, structure=None):
        return np.mean([c[structure] if structure else min(c.values()) for c in scores[kind]])

    assert mean("no_lv", "lv_endo") < mean("clean", "lv_endo")
    assert mean("no_lv", "myo") < mean("clean", "myo")
    assert mean("no_la", "la") < mean("clean", "la")
    assert mean("flipped") < mean("clean")
