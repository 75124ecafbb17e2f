"""The automatic mode's confidence on disk, and the cases a clinician should check.

``confidence.csv`` (one row per case and label-map structure ``lv_endo`` / ``myo`` / ``la``)::

    case,structure,confidence,stability,agreement,predicted_iou,method

(the parts: :mod:`medsam_echo.inference.automatic`). ``review.csv`` lists, weakest first, the cases whose
lowest structure confidence is below the ``--review-below`` threshold: ``case,confidence,structure``.
``medsam-echo evaluate`` reads ``confidence.csv`` back and reports how well it ranks the real errors.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from medsam_echo.atomic import atomic_write_text
from medsam_echo.evaluation.confidence import CONFIDENCE_FILE
from medsam_echo.inference.automatic import CONFIDENCE_PARTS, label_confidence

REVIEW_FILE = "review.csv"
LABEL_STRUCTURES = ("lv_endo", "myo", "la")  # the label map's structures, as evaluate scores them
COLUMNS = ("case", "structure", *CONFIDENCE_PARTS, "method")


def confidence_rows(case: str, segmentation) -> list[dict]:
    """Rows of one case from a :class:`~medsam_echo.inference.predictor.Segmentation`, per label structure
    (``myo`` of an ``lv_epi`` model: the weaker of ``lv_epi`` and ``lv_endo``)."""
    rows = []
    for name in LABEL_STRUCTURES:
        try:
            values = {part: label_confidence(name, segmentation.parts[part]) for part in CONFIDENCE_PARTS}
        except KeyError:
            continue  # a structure the model does not segment
        rows.append({"case": case, "structure": name, **{k: round(v, 6) for k, v in values.items()},
                     "method": segmentation.method})
    return rows


def label_scores(rows: list[dict]) -> dict[str, float]:
    """``{structure: confidence}`` of one case's rows (the COCO ``score`` of each label)."""
    return {row["structure"]: float(row["confidence"]) for row in rows}


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> Path:
    """Write ``rows`` as CSV with ``columns`` (atomically); returns the path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return path


def review_cases(rows: list[dict], threshold: float) -> list[dict]:
    """The cases whose lowest structure confidence is below ``threshold``, weakest first:
    ``[{"case", "confidence", "structure"}]`` (``structure``: the weakest one)."""
    weakest: dict[str, dict] = {}
    for row in rows:
        if row["case"] not in weakest or row["confidence"] < weakest[row["case"]]["confidence"]:
            weakest[row["case"]] = {"case": row["case"], "confidence": row["confidence"], "structure": row["structure"]}
    flagged = [row for row in weakest.values() if row["confidence"] < threshold]
    return sorted(flagged, key=lambda row: row["confidence"])


def write_confidence(out: Path, rows: list[dict], review_below: float | None) -> list[dict] | None:
    """``out/confidence.csv``, and with ``review_below`` ``out/review.csv``; returns the review list."""
    write_csv(out / CONFIDENCE_FILE, rows, COLUMNS)
    if review_below is None:
        return None
    flagged = review_cases(rows, review_below)
    write_csv(out / REVIEW_FILE, flagged, ("case", "confidence", "structure"))
    return flagged


def print_review(flagged: list[dict] | None, n_cases: int, threshold: float | None) -> None:
    """The review list on stdout (nothing without ``--review-below``)."""
    if flagged is None:
        return
    print(f"{len(flagged)} of {n_cases} cases to review (confidence below {threshold}), weakest first:")
    for row in flagged:
        print(f"  {row['case']}  {row['confidence']:.3f}  ({row['structure']})")
