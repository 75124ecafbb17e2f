"""How well the automatic mode's confidence ranks the real errors (``evaluate`` with a ``confidence.csv``).

Given the Dice of each case and structure and the confidence predicted for it (``inference/review.py``):

- per structure: the Spearman rank correlation of confidence and Dice, and the mean Dice of the
  :data:`FLAG_FRACTION` least confident cases (flagged) vs the others;
- per case (confidence = its lowest structure's, Dice = the mean over its structures): the same, and the
  share of the :data:`FLAG_FRACTION` truly worst cases that the flag catches (``recall_of_worst``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

CONFIDENCE_FILE = "confidence.csv"  # written by predict's automatic mode (inference/review.py)
FLAG_FRACTION = 0.10
STRUCTURES = ("lv_endo", "myo", "la")


def read_confidence(path: str | Path) -> dict[tuple[str, str], float]:
    """``{(case, structure): confidence}`` from a ``confidence.csv``.

    Raises:
        ValueError: the file lacks the columns or holds a non-number (the message names the file).
    """
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"case", "structure", "confidence"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: not a confidence file (needs columns case, structure, confidence)")
        try:
            return {(row["case"], row["structure"]): float(row["confidence"]) for row in reader}
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err


def _ranking(confidence: Sequence[float], dice: Sequence[float], flag_fraction: float) -> dict:
    """``{"n", "spearman", "n_flagged", "dice_flagged", "dice_rest", "recall_of_worst"}`` of paired values."""
    conf, dice = np.asarray(confidence, np.float64), np.asarray(dice, np.float64)
    n = len(conf)
    if n < 3:
        return {"n": n, "spearman": math.nan, "n_flagged": 0, "dice_flagged": math.nan, "dice_rest": math.nan,
                "recall_of_worst": math.nan}
    k = max(1, round(flag_fraction * n))
    flagged = np.argsort(conf, kind="stable")[:k]
    worst = np.argsort(dice, kind="stable")[:k]
    rest = np.setdiff1d(np.arange(n), flagged)
    rho = stats.spearmanr(conf, dice).statistic if np.ptp(conf) > 0 and np.ptp(dice) > 0 else math.nan
    return {"n": n, "spearman": float(rho), "n_flagged": k, "dice_flagged": float(dice[flagged].mean()),
            "dice_rest": float(dice[rest].mean()), "recall_of_worst": len(set(flagged) & set(worst)) / k}


def confidence_ranking(
    metrics: Sequence[Mapping], confidence: Mapping[tuple[str, str], float], flag_fraction: float = FLAG_FRACTION
) -> dict:
    """The ranking report of the module docstring.

    Args:
        metrics: ``evaluate``'s rows (``case``, ``structure``, ``dice``).
        confidence: ``{(case, structure): confidence}`` (``review.read_confidence``).
        flag_fraction: the share of cases flagged for review.

    Returns:
        ``{"flag_fraction", "structures": {name: ranking}, "cases": ranking, "n_without_confidence"}``.
    """
    pairs: dict[str, list[tuple[float, float]]] = {name: [] for name in STRUCTURES}
    per_case: dict[str, list[tuple[float, float]]] = {}
    missing = 0
    for row in metrics:
        key = (row["case"], row["structure"])
        if row["structure"] not in pairs or not math.isfinite(row["dice"]):
            continue
        if key not in confidence:
            missing += 1
            continue
        pair = (confidence[key], row["dice"])
        pairs[row["structure"]].append(pair)
        per_case.setdefault(row["case"], []).append(pair)
    cases = [(min(c for c, _ in v), float(np.mean([d for _, d in v]))) for v in per_case.values()]
    return {
        "flag_fraction": flag_fraction,
        "structures": {name: _ranking(*_unzip(v), flag_fraction) for name, v in pairs.items() if v},
        "cases": _ranking(*_unzip(cases), flag_fraction),
        "n_without_confidence": missing,
    }


def _unzip(pairs: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [a for a, _ in pairs], [b for _, b in pairs]


def render_ranking(report: dict) -> list[str]:
    """Markdown lines of a :func:`confidence_ranking` report."""
    pct = round(100 * report["flag_fraction"])
    lines = ["## Confidence of the automatic mode vs the real Dice", "",
             f"Flagged: the {pct} % least confident. A case's confidence is its lowest structure's, its Dice the "
             "mean over its structures.", "",
             "| rows | n | Spearman | Dice flagged | Dice not flagged | worst caught |", "|---|---|---|---|---|---|"]
    rows = [*report["structures"].items(), ("cases", report["cases"])]
    for name, r in rows:
        lines.append(f"| {name} | {r['n']} | {_num(r['spearman'])} | {_num(r['dice_flagged'])} ({r['n_flagged']}) "
                     f"| {_num(r['dice_rest'])} | {_num(r['recall_of_worst'], '.0%')} |")
    return lines


def _num(value, spec: str = ".3f") -> str:
    """A number for the report; ``n/a`` for ``None`` / NaN (too few cases)."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)
