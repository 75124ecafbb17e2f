"""Dataset mode of prediction: a model on every case of a dataset split, as label maps ``evaluate`` reads.

Writes ``OUT/<case>.nii.gz`` label maps (CAMUS values, the ground truth's grid and spacing) and
``predict.json`` (model, split, prompt protocol). Prompts are made from the ground truth with
``prompts.eval_prompts.evaluation_prompts``, seeded per case and protocol, so every model sees the same
prompts. ``auto`` uses no ground truth (``EchoPredictor.segment``: learned prompts when the model has
them, else a view prior, fitted on the ``train`` split of the dataset when the model has none, never on
the evaluated split) and writes the per-structure confidence beside the label maps.
"""

from __future__ import annotations

import json
from pathlib import Path

from medsam_echo.atomic import atomic_write_text
from medsam_echo.data.io import DataError, write_image
from medsam_echo.evaluation.evaluate import PROTOCOL_FILE
from medsam_echo.inference.predictor import EchoPredictor
from medsam_echo.inference.review import confidence_rows, print_review, write_confidence


def predict_dataset(
    predictor: EchoPredictor,
    root: Path,
    split: str,
    prompt: str,
    out: Path,
    *,
    jitter_px: float = 0.0,
    n_pos: int = 1,
    n_neg: int = 0,
    auto_method: str | None = None,
    review_below: float | None = None,
) -> int:
    """Write ``out/<case>.nii.gz`` for every case of ``split``; returns the number of cases.

    With ``prompt="auto"`` also ``out/confidence.csv`` and, with ``review_below``, ``out/review.csv``
    (:mod:`medsam_echo.inference.review`); ``auto_method``: ``tokens`` / ``view-prior`` (default: the
    model's, :attr:`EchoPredictor.automatic_method`).
    """
    from medsam_echo.data.open import open_dataset
    from medsam_echo.prompts.eval_prompts import evaluation_prompts
    from medsam_echo.prompts.policies import PromptPolicyConfig

    dataset = open_dataset(root, split)
    if len(dataset) == 0:
        raise DataError(f"{root}: split {split!r} has no cases")
    auto_method = auto_method or predictor.automatic_method
    if prompt == "auto" and auto_method == "view-prior" and predictor.view_prior is None:
        from medsam_echo.inference.sources import fit_prior

        print(f"predict: no view prior with the model; fitting one on the train split of {root}")
        predictor.view_prior = fit_prior(root)
    config = PromptPolicyConfig(
        policy="box" if prompt == "auto" else prompt, jitter_amount=float(jitter_px), n_pos=n_pos, n_neg=n_neg
    )
    salt = f"predict/{prompt}/{jitter_px}/{n_pos}+{n_neg}"
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    frames: dict[str, dict] = {}  # patient -> {(view, phase): (label map, spacing)}
    for sample in dataset:
        predictor.set_image(sample.image, sample.spacing)
        if prompt == "auto":
            segmentation = predictor.segment(view=sample.view or None, method=auto_method)
            label = segmentation.label_map
            rows += confidence_rows(sample.case_id, segmentation)
        else:
            if sample.label is None:
                raise DataError(
                    f"{sample.case_id}: --prompt {prompt} needs ground truth to draw prompts from"
                )
            p = evaluation_prompts(
                sample.label, predictor.structures, sample.case_id, config, spacing=sample.spacing, salt=salt
            )
            label = predictor.predict(p.boxes, p.points, p.labels, p.structures).label_map()
        write_image(out / f"{sample.case_id}.nii.gz", label, spacing=sample.spacing)
        if sample.patient and sample.view and sample.phase:
            frames.setdefault(sample.patient, {})[(sample.view, sample.phase)] = (label, sample.spacing)
    if prompt == "auto":
        print_review(write_confidence(out, rows, review_below), len(dataset), review_below)
    write_patient_ef(out, frames)
    protocol = {"model": predictor.source, "data": str(root), "split": split, "prompt": prompt,
                "jitter_px": jitter_px, "n_pos": n_pos, "n_neg": n_neg, "salt": salt,
                "structures": list(predictor.structures), "cases": len(dataset),
                "auto_method": auto_method if prompt == "auto" else None,
                "guards": bool(getattr(predictor, "guards", True))}  # fmt: skip
    atomic_write_text(out / PROTOCOL_FILE, json.dumps(protocol, indent=2) + "\n")
    return len(dataset)


EF_FILE = "ef.csv"


def write_patient_ef(out: Path, frames: dict[str, dict]) -> list[dict]:
    """``out/ef.csv``: the biplane EF of every patient with all four frames predicted, and the cross-checks it
    fails (``evaluation.clinical.ef_checks``); flagged patients are printed with their reason, never as a
    plain EF. Returns the rows (``patient, edv_ml, esv_ml, ef, flags``)."""
    import csv

    from medsam_echo.evaluation.clinical import BIPLANE_FRAMES, biplane_ef, ef_checks, format_ef

    rows = []
    for patient, views in sorted(frames.items()):
        if not set(BIPLANE_FRAMES) <= set(views):
            continue
        result = biplane_ef(views)
        rows.append({"patient": patient, **result, "flags": ";".join(ef_checks(views, result))})
    if not rows:
        return rows
    with (out / EF_FILE).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    flagged = [r for r in rows if r["flags"]]
    print(f"{len(rows)} patients' biplane EF in {out / EF_FILE}; {len(flagged)} fail a cross-check")
    for r in flagged:
        print(f"  {r['patient']}: EF {format_ef(r['ef'], r['flags'].split(';'))}")
    return rows
