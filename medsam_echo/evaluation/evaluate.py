"""Evaluate a folder of predicted label maps against CAMUS ground truth (`medsam-echo evaluate`).

Prediction contract (nnU-Net's output convention): one label map per case, named ``<case>.nii.gz`` or
``<case>.png`` with ``<case>`` a CAMUS case id such as ``patient0001_2CH_ED``, on the ground truth's pixel
grid (same ``(H, W)``; a NIfTI prediction must also carry the ground truth's spacing), with CAMUS values
0 background, 1 LV cavity, 2 myocardium, 3 LA. Distances and volumes use the ground truth's spacing.

A case of the split without a prediction file is an error listing the missing cases, unless
``--allow-missing``: then those cases are left out of every metric, patients lacking one of their four
cases are left out of the clinical indices, and both are listed in ``summary.json`` and ``report.md``.

Beside the label maps ``predict`` leaves ``predict.json`` (how they were made: model, prompts) and, in the
automatic mode, ``confidence.csv``; both are read when present: the summary then says how the predictions
were made, and how well the confidence ranks the real Dice (``evaluation/confidence.py``).

Outputs in ``--out``: ``metrics.csv``, ``plausibility.csv``, ``clinical.csv``, ``summary.json``,
``report.md`` and the plots ``{ef,edv,esv}_{bland_altman,scatter}.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsam_echo.data.io import read_image
from medsam_echo.data.sample import LABELS, EchoSample
from medsam_echo.evaluation.clinical import BIPLANE_FRAMES, biplane_ef, ef_checks
from medsam_echo.evaluation.metrics import METRICS, case_metrics
from medsam_echo.evaluation.plausibility import check_plausibility

PRED_SUFFIXES = (".nii.gz", ".png")
PROTOCOL_FILE = "predict.json"  # predict's dataset mode: how the predictions were made
_VALID = np.array(sorted(LABELS.values()))


class EvaluationError(ValueError):
    """Predictions that cannot be evaluated (missing, ambiguous or mismatched files); names the files."""


@dataclass
class Evaluation:
    """Per-case and per-patient results; each list holds the rows of the CSV file of the same name."""

    metrics: list[dict] = field(default_factory=list)
    plausibility: list[dict] = field(default_factory=list)
    clinical: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    incomplete_patients: list[str] = field(default_factory=list)


def read_prediction_notes(pred_dir: str | Path) -> tuple[dict | None, dict[tuple[str, str], float] | None]:
    """What ``predict`` wrote beside its label maps: ``predict.json`` (how they were made) and the automatic
    mode's ``confidence.csv``; ``None`` for each that is absent.

    Raises:
        EvaluationError: a file is there but unreadable (the message names it).
    """
    from medsam_echo.evaluation.confidence import CONFIDENCE_FILE, read_confidence

    pred_dir = Path(pred_dir)
    protocol = confidence = None
    try:
        if (pred_dir / PROTOCOL_FILE).is_file():
            protocol = json.loads((pred_dir / PROTOCOL_FILE).read_text())
        if (pred_dir / CONFIDENCE_FILE).is_file():
            confidence = read_confidence(pred_dir / CONFIDENCE_FILE)
    except (OSError, ValueError) as err:
        raise EvaluationError(f"{pred_dir}: {err}") from err
    return protocol, confidence


def find_predictions(pred_dir: str | Path, cases: Sequence[str]) -> tuple[dict[str, Path], list[str]]:
    """Locate ``<case>.nii.gz`` / ``<case>.png`` in ``pred_dir``.

    Returns:
        ``({case: path}, missing)`` with ``missing`` the cases without a file, in ``cases`` order.

    Raises:
        EvaluationError: ``pred_dir`` is not a folder, or a case has both a ``.nii.gz`` and a ``.png``.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise EvaluationError(f"{pred_dir}: prediction folder not found")
    found, missing = {}, []
    for case in cases:
        paths = [p for p in (pred_dir / f"{case}{suffix}" for suffix in PRED_SUFFIXES) if p.is_file()]
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise EvaluationError(f"{pred_dir}: {case} has several predictions ({names})")
        if paths:
            found[case] = paths[0]
        else:
            missing.append(case)
    return found, missing


def load_prediction(path: Path, sample: EchoSample) -> np.ndarray:
    """Read a predicted label map and check it against the sample's ground truth; ``(H, W)`` uint8."""
    labels, spacing = read_image(path)
    if labels.shape != sample.label.shape:
        raise EvaluationError(
            f"{path}: prediction shape {labels.shape} differs from the ground truth's {sample.label.shape}; "
            "predictions must be label maps on the ground truth's pixel grid"
        )
    if path.name.endswith(".nii.gz") and not np.allclose(spacing, sample.spacing, rtol=1e-3):
        raise EvaluationError(
            f"{path}: spacing {spacing} differs from the ground truth's {sample.spacing} (sx, sy)"
        )
    if not np.isin(labels, _VALID).all():
        bad = np.setdiff1d(np.unique(labels), _VALID)[:5].tolist()
        raise EvaluationError(f"{path}: label values {bad} are not CAMUS labels {LABELS}")
    return labels.astype(np.uint8)


def evaluate(
    dataset: Sequence[EchoSample], pred_dir: str | Path, *, allow_missing: bool = False
) -> Evaluation:
    """Score every case of ``dataset`` that has a prediction in ``pred_dir``.

    Args:
        dataset: labelled samples; ``dataset.cases`` lists their case ids in index order
            (as :class:`medsam_echo.data.camus.CamusDataset` does).
        pred_dir: folder of predictions (module docstring).
        allow_missing: leave cases without a prediction out instead of raising.

    Returns:
        An :class:`Evaluation`.
    """
    cases = list(dataset.cases)
    found, missing = find_predictions(pred_dir, cases)
    if missing and not allow_missing:
        shown = ", ".join(missing[:10]) + (f" ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise EvaluationError(f"{pred_dir}: no prediction for {shown} (pass --allow-missing to skip them)")
    result, pending = Evaluation(missing=missing), {}
    for index, case in enumerate(cases):
        if case not in found:
            continue
        sample = dataset[index]
        if sample.label is None:
            raise EvaluationError(f"{case}: the dataset has no ground truth for this case")
        pred = load_prediction(found[case], sample)
        ident = {"case": case, "patient": sample.patient, "view": sample.view, "phase": sample.phase}
        for structure, values in case_metrics(pred, sample.label, sample.spacing).items():
            result.metrics.append({**ident, "structure": structure, **{m: values[m] for m in METRICS}})
        result.plausibility.append({"case": case, **check_plausibility(pred)})
        views = pending.setdefault(sample.patient, {})
        views[(sample.view, sample.phase)] = (pred, sample.label, sample.spacing)
        if set(views) == set(BIPLANE_FRAMES):
            result.clinical.append(_clinical_row(sample.patient, pending.pop(sample.patient)))
    result.incomplete_patients = sorted(pending)
    return result


def _clinical_row(patient: str, views: dict) -> dict:
    """EDV, ESV (mL) and EF (%) of one patient from its ``{(view, phase): (pred, gt, spacing)}``, and the
    cross-checks the predicted EF fails (``flags``, ``;``-joined :data:`~medsam_echo.evaluation.clinical.EF_CHECKS`
    names, empty when the EF can be trusted)."""
    row: dict = {"patient": patient}
    for which, suffix in ((0, ""), (1, "_gt")):  # 0: prediction, 1: ground truth
        frames = {key: (frame[which], frame[2]) for key, frame in views.items()}
        result = biplane_ef(frames)
        row.update({f"{k}{suffix}": v for k, v in result.items()})
        if which == 0:
            row["flags"] = ";".join(ef_checks(frames, result))
    return row
