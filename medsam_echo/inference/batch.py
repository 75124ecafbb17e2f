"""Dataset mode of prediction: a model on every case of a dataset split, as label maps ``evaluate`` reads.

Writes ``OUT/<case>.nii.gz`` label maps (CAMUS values, the ground truth's grid and spacing), ``ef.csv``
(every patient's biplane EF from the predictions alone, with the cross-checks it fails) and ``predict.json``
(model, split, prompt protocol, whether the anatomical guards ran). Prompts are made from the ground truth
with ``prompts.eval_prompts.evaluation_prompts``, seeded per case and protocol, so every model sees the same
prompts. ``auto`` uses no ground truth (``EchoPredictor.segment``: learned prompts when the model has them,
else a view prior, fitted on the ``train`` split of the dataset when the model has none, never on the
evaluated split) and writes the per-structure confidence beside the label maps.

Several protocols (tight boxes, loose boxes, no prompt; with and without guards) can share one pass over
the split (:func:`predict_protocols`): each image is encoded once.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from medsam_echo.atomic import atomic_write_text
from medsam_echo.data.io import DataError, write_image
from medsam_echo.evaluation.evaluate import PROTOCOL_FILE
from medsam_echo.evaluation.guards import apply_guards
from medsam_echo.inference.predictor import EchoPredictor
from medsam_echo.inference.review import confidence_rows, print_review, write_confidence
from medsam_echo.prompts.decode import combine_structures

EF_FILE = "ef.csv"


@dataclass(frozen=True)
class Protocol:
    """One way of prompting a whole split, written to its own folder.

    Attributes:
        prompt: ``box`` / ``points`` / ``box_points`` (drawn from the ground truth) or ``auto`` (none).
        out: folder of the label maps (with the anatomical guards unless ``guards`` is False).
        jitter_px: box sides pushed outward by U{0..this} px of the original image (a loose box).
        n_pos, n_neg: points per structure for the point prompts.
        guards: whether the maps in ``out`` go through ``evaluation.guards.apply_guards``.
        raw_out: when set, the same predictions without the guards are also written there.
    """

    prompt: str
    out: Path
    jitter_px: float = 0.0
    n_pos: int = 1
    n_neg: int = 0
    guards: bool = True
    raw_out: Path | None = None

    @property
    def salt(self) -> str:
        """Seeds the prompts of every case: the same for every model under this protocol."""
        return f"predict/{self.prompt}/{self.jitter_px}/{self.n_pos}+{self.n_neg}"


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
    model's, :attr:`EchoPredictor.automatic_method`). The guards follow ``predictor.guards``.
    """
    protocol = Protocol(prompt, Path(out), float(jitter_px), n_pos, n_neg, guards=bool(predictor.guards))
    return predict_protocols(predictor, root, split, [protocol], auto_method=auto_method,
                             review_below=review_below)  # fmt: skip


def predict_protocols(
    predictor: EchoPredictor,
    root: Path,
    split: str,
    protocols: list[Protocol],
    *,
    auto_method: str | None = None,
    review_below: float | None = None,
) -> int:
    """Every protocol of ``protocols`` over ``split`` in one pass (each image encoded once); returns the
    number of cases. Each protocol's folder gets what :func:`predict_dataset` writes."""
    from medsam_echo.data.open import open_dataset

    dataset = open_dataset(root, split)
    if len(dataset) == 0:
        raise DataError(f"{root}: split {split!r} has no cases")
    auto_method = auto_method or predictor.automatic_method
    if any(p.prompt == "auto" for p in protocols) and auto_method == "view-prior" and predictor.view_prior is None:
        from medsam_echo.inference.sources import fit_prior

        print(f"predict: no view prior with the model; fitting one on the train split of {root}")
        predictor.view_prior = fit_prior(root)
    outputs = [_Output(p) for p in protocols]
    for sample in dataset:
        predictor.set_image(sample.image, sample.spacing)
        for output in outputs:
            output.add(sample, *_predict_case(predictor, sample, output.protocol, auto_method))
    for output in outputs:
        output.finish(predictor, root, split, len(dataset), auto_method, review_below)
    return len(dataset)


def _predict_case(predictor: EchoPredictor, sample, protocol: Protocol, auto_method: str):
    """The raw ``(H, W)`` uint8 label map of one case under ``protocol``, and its confidence rows (auto)."""
    from medsam_echo.prompts.eval_prompts import evaluation_prompts
    from medsam_echo.prompts.policies import PromptPolicyConfig

    if protocol.prompt == "auto":
        segmentation = predictor.segment(view=sample.view or None, method=auto_method)
        prediction = segmentation.prediction
        rows = confidence_rows(sample.case_id, segmentation)
    else:
        if sample.label is None:
            raise DataError(f"{sample.case_id}: --prompt {protocol.prompt} needs ground truth to draw prompts from")
        config = PromptPolicyConfig(policy=protocol.prompt, jitter_amount=protocol.jitter_px, n_pos=protocol.n_pos,
                                    n_neg=protocol.n_neg)  # fmt: skip
        p = evaluation_prompts(sample.label, predictor.structures, sample.case_id, config, spacing=sample.spacing,
                               salt=protocol.salt)  # fmt: skip
        prediction = predictor.predict(p.boxes, p.points, p.labels, p.structures)
        rows = []
    return combine_structures(prediction.logits, prediction.structures), rows


class _Output:
    """What one protocol accumulates over the split: its label maps, confidence rows and EF frames."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.rows: list[dict] = []
        self.frames: dict[Path, dict[str, dict]] = {}  # folder -> patient -> {(view, phase): (labels, spacing)}
        self.folders = {protocol.out: protocol.guards}
        if protocol.raw_out is not None:
            self.folders[protocol.raw_out] = False
        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=True)
            self.frames[folder] = {}

    def add(self, sample, raw, rows: list[dict]) -> None:
        self.rows += rows
        for folder, guards in self.folders.items():
            label = apply_guards(raw) if guards else raw
            write_image(folder / f"{sample.case_id}.nii.gz", label, spacing=sample.spacing)
            if sample.patient and sample.view and sample.phase:
                self.frames[folder].setdefault(sample.patient, {})[(sample.view, sample.phase)] = (label, sample.spacing)

    def finish(self, predictor: EchoPredictor, root: Path, split: str, n: int, auto_method: str,
               review_below: float | None) -> None:  # fmt: skip
        p = self.protocol
        for folder, guards in self.folders.items():
            if p.prompt == "auto":
                review = review_below if folder == p.out else None
                print_review(write_confidence(folder, self.rows, review), n, review)
            write_patient_ef(folder, self.frames[folder])
            protocol = {"model": predictor.source, "data": str(root), "split": split, "prompt": p.prompt,
                        "jitter_px": p.jitter_px, "n_pos": p.n_pos, "n_neg": p.n_neg, "salt": p.salt,
                        "structures": list(predictor.structures), "cases": n,
                        "auto_method": auto_method if p.prompt == "auto" else None, "guards": guards}  # fmt: skip
            atomic_write_text(folder / PROTOCOL_FILE, json.dumps(protocol, indent=2) + "\n")


def write_patient_ef(out: Path, frames: dict[str, dict]) -> list[dict]:
    """``out/ef.csv``: the biplane EF of every patient with all four frames predicted, and the cross-checks it
    fails (``evaluation.clinical.ef_checks``); flagged patients are printed with their reason, never as a
    plain EF. Returns the rows (``patient, edv_ml, esv_ml, ef, flags``)."""
    from medsam_echo.evaluation.clinical import BIPLANE_FRAMES, biplane_ef, ef_checks, format_ef

    rows = []
    for patient, views in sorted(frames.items()):
        if not set(BIPLANE_FRAMES) <= set(views):
            continue
        result = biplane_ef(views)
        rows.append({"patient": patient, **result, "flags": ";".join(ef_checks(views, result))})
    if not rows:
        return rows
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / EF_FILE, buffer.getvalue())
    flagged = [r for r in rows if r["flags"]]
    print(f"{len(rows)} patients' biplane EF in {out / EF_FILE}; {len(flagged)} fail a cross-check")
    for r in flagged:
        print(f"  {r['patient']}: EF {format_ef(r['ef'], r['flags'].split(';'))}")
    return rows
