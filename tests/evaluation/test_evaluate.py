"""`medsam-echo evaluate` end to end on a synthetic CAMUS tree: files written, exact answers, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medsam_echo.cli import main as cli
from medsam_echo.data.camus import CamusDataset
from medsam_echo.data.io import write_image
from medsam_echo.evaluation.metrics import METRICS

OUTPUTS = {
    "metrics.csv", "plausibility.csv", "clinical.csv", "summary.json", "report.md",
    "ef_bland_altman.png", "ef_scatter.png", "edv_bland_altman.png", "edv_scatter.png",
    "esv_bland_altman.png", "esv_scatter.png",
}  # fmt: skip


def _write_predictions(root: Path, out: Path, transform=lambda labels: labels, suffix=".nii.gz") -> Path:
    for sample in CamusDataset(root):
        write_image(
            out / f"{sample.case_id}{suffix}", transform(sample.label).astype(np.uint8), sample.spacing
        )
    return out


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _run(pred: Path, root: Path, out: Path, *extra: str) -> int:
    return cli(
        ["evaluate", "--pred", str(pred), "--data", str(root), "--split", "all", "--out", str(out), *extra]
    )


def test_ground_truth_as_prediction(synthetic_root: Path, tmp_path: Path) -> None:
    pred = _write_predictions(synthetic_root, tmp_path / "pred")
    assert _run(pred, synthetic_root, tmp_path / "out") == 0
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == OUTPUTS
    assert all((out / name).read_bytes().startswith(b"\x89PNG") for name in OUTPUTS if name.endswith(".png"))
    metrics = _rows(out / "metrics.csv")
    assert list(metrics[0]) == ["case", "patient", "view", "phase", "structure", *METRICS]
    assert len(metrics) == 3 * 4 * 4  # patients x cases x structures
    assert all(float(r["dice"]) == 1.0 and float(r["hd95_mm"]) == float(r["mad_mm"]) == 0.0 for r in metrics)
    clinical = _rows(out / "clinical.csv")
    assert list(clinical[0]) == ["patient", "edv_ml", "esv_ml", "ef", "flags", "edv_ml_gt", "esv_ml_gt", "ef_gt"]
    assert len(clinical) == 3
    assert all(r["ef"] == r["ef_gt"] and r["edv_ml"] == r["edv_ml_gt"] for r in clinical)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["structures"]["lv_endo"]["dice"] == 1.0 and summary["structures"]["la"]["hd95_mm"] == 0.0
    assert summary["ef"]["n"] == 3 and summary["ef"]["bias"] == 0.0 and summary["ef"]["mae"] == 0.0
    assert summary["ef"]["corr"] == pytest.approx(1.0)
    plausibility = _rows(out / "plausibility.csv")
    assert len(plausibility) == 12 and summary["plausibility"]["n"] == 12
    for check in ("missing_structure", "holes", "several_components"):
        assert summary["plausibility"][check] == 0
    # the phantom's LA meets the cavity in about one point: what is flagged must match the CSV
    for check in ("cavity_not_enclosed", "la_not_touching_lv"):
        assert summary["plausibility"][check] == sum(r[check] == "True" for r in plausibility)
    report = (out / "report.md").read_text()
    assert "| LV endo | ED | 1.000" in report and "![ef_bland_altman.png](ef_bland_altman.png)" in report


def test_eroded_png_predictions_score_lower(synthetic_root: Path, tmp_path: Path) -> None:
    def erode(labels: np.ndarray) -> np.ndarray:
        out = np.zeros_like(labels)
        for value in (1, 2, 3):
            out[ndimage.binary_erosion(labels == value, iterations=2)] = value
        return out

    pred = _write_predictions(synthetic_root, tmp_path / "pred", erode, suffix=".png")
    assert _run(pred, synthetic_root, tmp_path / "out") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert 0.7 < summary["structures"]["lv_endo"]["dice"] < 0.99
    assert summary["structures"]["lv_endo"]["mad_mm"] > 0
    assert all(float(r["edv_ml"]) < float(r["edv_ml_gt"]) for r in _rows(tmp_path / "out" / "clinical.csv"))
    assert summary["plausibility"]["la_not_touching_lv"] == 12


def test_missing_predictions_are_listed(synthetic_root: Path, tmp_path: Path, capsys) -> None:
    pred = _write_predictions(synthetic_root, tmp_path / "pred")
    (pred / "patient0002_4CH_ES.nii.gz").unlink()
    assert _run(pred, synthetic_root, tmp_path / "out") == 1
    assert "patient0002_4CH_ES" in capsys.readouterr().err
    assert _run(pred, synthetic_root, tmp_path / "out", "--allow-missing") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["missing"] == ["patient0002_4CH_ES"] and summary["incomplete_patients"] == ["patient0002"]
    assert summary["n_cases"] == 11 and summary["ef"]["n"] == 2
    assert "patient0002_4CH_ES" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda labels: labels[:-1], "differs from the ground truth's"),
        (lambda labels: np.where(labels == 3, 7, labels), "not CAMUS labels"),
    ],
)
def test_bad_prediction_names_the_file(
    synthetic_root: Path, tmp_path: Path, capsys, corrupt, message
) -> None:
    pred = _write_predictions(synthetic_root, tmp_path / "pred")
    case = "patient0001_2CH_ED"
    labels = CamusDataset(synthetic_root).sample(case)
    write_image(pred / f"{case}.nii.gz", corrupt(labels.label).astype(np.uint8), labels.spacing)
    assert _run(pred, synthetic_root, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"{case}.nii.gz" in err and message in err


def test_missing_prediction_folder(synthetic_root: Path, tmp_path: Path, capsys) -> None:
    assert _run(tmp_path / "nowhere", synthetic_root, tmp_path / "out") == 1
    assert "prediction folder not found" in capsys.readouterr().err
