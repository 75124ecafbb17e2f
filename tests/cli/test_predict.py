"""``medsam-echo predict``: dataset mode feeds ``evaluate``; file mode writes label maps, overlays, COCO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medsam_echo.cli import main as cli
from medsam_echo.data.camus import CamusDataset
from medsam_echo.data.coco import export_coco
from medsam_echo.data.io import read_image
from medsam_echo.data.sample import structure_mask
from medsam_echo.inference import EchoPredictor
from medsam_echo.inference.batch import predict_dataset
from medsam_echo.inference.export import results_against
from medsam_echo.inference.files import view_from_name
from medsam_echo.prompts.boxes import box_from_mask


def test_dataset_mode_writes_what_evaluate_reads(tmp_path, camus_root, capsys):
    pred = tmp_path / "pred"
    args = ["--data", str(camus_root), "--split", "test", "--out"]
    assert cli(["predict", "--model", "baseline:ellipse", "--prompt", "box", *args, str(pred)]) == 0
    test_set = CamusDataset(camus_root, split="test")
    assert sorted(p.name for p in pred.iterdir()) == sorted(
        [*(f"{c}.nii.gz" for c in test_set.cases), "ef.csv", "predict.json"]
    )  # ef.csv: each patient's EF with its cross-checks (evaluation.clinical.ef_checks)
    assert json.loads((pred / "predict.json").read_text())["prompt"] == "box"
    for sample in test_set:
        labels, spacing = read_image(pred / f"{sample.case_id}.nii.gz")
        assert labels.shape == sample.label.shape and np.allclose(spacing, sample.spacing)
    assert cli(["evaluate", "--pred", str(pred), *args, str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["structures"]["lv_epi"]["dice"] > 0.85  # tight boxes on ellipsoidal phantoms


def test_structures_lv_epi_give_label_maps_that_evaluate_scores_per_structure(tmp_path, camus_root, tiny_dir):
    """``--structures lv_endo lv_epi la`` on a SAM model: CAMUS label maps; evaluate scores myo too."""
    pred, args = tmp_path / "pred", ["--data", str(camus_root), "--split", "test"]
    argv = ["predict", "--model", str(tiny_dir), "--device", "cpu", "--structures", "lv_endo", "lv_epi", "la"]
    assert cli([*argv, *args, "--out", str(pred)]) == 0
    assert json.loads((pred / "predict.json").read_text())["structures"] == ["lv_endo", "lv_epi", "la"]
    for path in pred.glob("*.nii.gz"):
        assert set(np.unique(read_image(path)[0])) <= {0, 1, 2, 3}
    assert cli(["evaluate", "--pred", str(pred), *args, "--out", str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert set(summary["structures"]) == {"lv_endo", "myo", "lv_epi", "la"}


def test_dataset_prompts_are_deterministic_per_case(tmp_path, camus_root, tiny_dir):
    predictor = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    outs = []
    for run in ("a", "b"):
        predict_dataset(predictor, camus_root, "val", "points", tmp_path / run, n_pos=2, n_neg=1)
        outs.append({p.name: read_image(p)[0] for p in sorted((tmp_path / run).glob("*.nii.gz"))})
    assert outs[0].keys() == outs[1].keys() and len(outs[0]) == 4
    assert all(np.array_equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_dataset_auto_mode_fits_the_prior_on_the_train_split(tmp_path, camus_root, capsys):
    out = tmp_path / "auto"
    argv = [
        "predict",
        "--model",
        "baseline:ellipse",
        "--data",
        str(camus_root),
        "--split",
        "test",
        "--prompt",
        "auto",
        "--out",
        str(out),
    ]
    assert cli(argv) == 0
    assert "fitting one on the train split" in capsys.readouterr().out
    assert len(list(out.glob("*.nii.gz"))) == 4


@pytest.fixture
def coco_gt(tmp_path, camus_root) -> Path:
    """The test split exported as COCO: images/<case>.png + annotations.json."""
    return export_coco(CamusDataset(camus_root, split="test"), tmp_path / "gt")


def _tight_box_prompts(camus_root: Path, structures=("lv_endo", "lv_epi", "la")) -> dict:
    return {
        f"{s.case_id}.png": [
            {"structure": name, "box": box_from_mask(structure_mask(s.label, name)).tolist()}
            for name in structures
        ]
        for s in CamusDataset(camus_root, split="test")
    }


def _ellipse_file_mode(coco_gt, prompts, out) -> list[str]:
    """``predict`` argv: the ellipse baseline on the exported ground-truth images, in file mode."""
    images = coco_gt.parent / "images"
    return ["predict", "--model", "baseline:ellipse", "--input", str(images), "--prompts", str(prompts), "--out", str(out)]


def test_file_mode_coco_output_evaluates_with_cocoeval(tmp_path, camus_root, coco_gt):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(_tight_box_prompts(camus_root)))
    out = tmp_path / "out"
    assert cli(_ellipse_file_mode(coco_gt, prompts, out)) == 0
    stems = [p.name[: -len(".png")] for p in sorted((coco_gt.parent / "images").iterdir())]
    for stem in stems:
        labels, _ = read_image(out / f"{stem}.png")
        picture, _ = read_image(out / f"{stem}_overlay.png")
        assert set(np.unique(labels)) == {0, 1, 2, 3} and picture.shape == (*labels.shape, 3)
    predicted = COCO(str(out / "coco.json"))
    assert sorted(c["name"] for c in predicted.loadCats(predicted.getCatIds())) == ["la", "lv_endo", "myo"]
    assert len(predicted.getImgIds()) == len(stems) and len(predicted.getAnnIds()) == 3 * len(stems)
    gt = COCO(str(coco_gt))
    results = gt.loadRes(results_against(out / "coco.json", coco_gt))
    evaluation = COCOeval(gt, results, iouType="segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[1] > 0.5  # AP at IoU 0.5: tight-box ellipses overlap their structures well


def test_file_mode_on_nifti_keeps_spacing_and_auto_prompts_use_a_prior_file(tmp_path, camus_root, tiny_dir):
    sample = CamusDataset(camus_root, split="test")[0]
    source = Path(sample.meta["image_path"]) if "image_path" in sample.meta else None
    source = source or next(camus_root.glob(f"database_nifti/*/{sample.case_id}.nii.gz"))
    prior = tmp_path / "prior.json"
    assert cli(["fit-view-prior", "--data", str(camus_root), "--out", str(prior)]) == 0
    out = tmp_path / "out"
    argv = [
        "predict",
        "--model",
        str(tiny_dir),
        "--input",
        str(source),
        "--prompts",
        "auto",
        "--view-prior",
        str(prior),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert cli(argv) == 0
    labels, spacing = read_image(out / f"{sample.case_id}.nii.gz")
    assert labels.shape == sample.image.shape and np.allclose(spacing, sample.spacing)
    assert (out / f"{sample.case_id}_overlay.png").is_file()
    assert json.loads((out / "coco.json").read_text())["images"][0]["file_name"] == source.name


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: {**p, "ghost.png": p[next(iter(p))]}, "ghost.png"),
        (lambda p: dict(list(p.items())[1:]), "no prompts for input"),
        (
            lambda p: {k: [{"structure": "heart", "box": [1, 1, 5, 5]}] for k in p},
            "'structure' must be one of",
        ),
        (lambda p: {k: [{"structure": "la", "box": [9, 1, 5, 5]}] for k in p}, "x1 < x0"),
        (lambda p: {k: [{"structure": "la", "bbox": [1, 1, 5, 5]}] for k in p}, "keys from"),
    ],
)
def test_file_mode_bad_prompts_name_the_file(tmp_path, camus_root, coco_gt, capsys, edit, message):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(edit(_tight_box_prompts(camus_root))))
    assert cli(_ellipse_file_mode(coco_gt, prompts, tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert message in err and str(prompts) in err


def test_file_mode_needs_prompts(tmp_path, coco_gt, capsys):
    argv = ["predict", "--model", "baseline:ellipse", "--input", str(coco_gt.parent), "--out", str(tmp_path)]
    assert cli(argv) == 2
    assert "--prompts" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "view"),
    [("patient0001_2CH_ED.png", "2CH"), ("a_4ch.nii.gz", "4CH"), ("x14CH.png", None), ("frame.png", None)],
)
def test_the_view_is_read_from_camus_style_file_names(name, view):
    assert view_from_name(name) == view


def test_inputs_whose_outputs_would_collide_are_refused(tmp_path, capsys):
    from medsam_echo.data.io import write_image

    for name in ("a.png", "a.jpg"):
        write_image(tmp_path / "in" / name, np.zeros((20, 20), np.uint8))
    argv = ["predict", "--model", "baseline:ellipse", "--input", str(tmp_path / "in"), "--prompts", "auto"]
    assert cli([*argv, "--out", str(tmp_path / "out")]) == 1
    assert "output stem 'a'" in capsys.readouterr().err


def test_auto_prompts_without_a_prior_say_how_to_make_one(tmp_path, coco_gt, capsys):
    argv = ["predict", "--model", "baseline:ellipse", "--input", str(coco_gt.parent / "images"), "--prompts"]
    assert cli([*argv, "auto", "--out", str(tmp_path / "out")]) == 1
    assert "medsam-echo fit-view-prior" in capsys.readouterr().err


def test_file_mode_prompts_not_utf8_name_the_file(tmp_path, camus_root, coco_gt, capsys):
    prompts = tmp_path / "prompts.json"
    text = json.dumps(_tight_box_prompts(camus_root), ensure_ascii=False).replace("}", ', "note": "r\u00e9sum\u00e9"}', 1)
    prompts.write_bytes(text.encode("latin-1"))
    assert cli(_ellipse_file_mode(coco_gt, prompts, tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert "not UTF-8" in err and str(prompts) in err and "Traceback" not in err


def test_file_mode_a_one_pixel_image_is_named(tmp_path, tiny_dir, capsys):
    from PIL import Image

    image = tmp_path / "in" / "dot_4CH_ED.png"
    image.parent.mkdir()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(image)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({image.name: [{"structure": "lv_endo", "box": [0, 0, 0, 0]}]}))
    argv = ["predict", "--model", str(tiny_dir), "--input", str(image.parent), "--prompts", str(prompts),
            "--out", str(tmp_path / "out")]
    assert cli(argv) == 1
    err = capsys.readouterr().err
    assert str(image) in err and "Traceback" not in err
