"""Write an :class:`~medsam_echo.evaluation.evaluate.Evaluation` to disk: CSV files, summary and report.

``summary.json`` holds means over cases (NaN written as ``null``)::

    {"split", "n_cases", "n_patients", "missing", "incomplete_patients",
     "structures": {name: {"dice", "hd_mm", "hd95_mm", "mad_mm", "<metric>_std", "n", "n_nan"}},
     "phases": {"ED" | "ES": {name: {... as above}}},
     "ef" | "edv_ml" | "esv_ml": {"n", "n_missing", "corr", "bias", "std", "loa_low", "loa_high", "mae"},
     "ef_unflagged": the same agreement over the patients whose EF passed every cross-check,
     "ef_checks": {"flagged": patients, check: patients failing it, "outliers_10" / "outliers_20": patients
                   with |EF error| > 10 / 20 points, "outliers_10_unflagged" / "outliers_20_unflagged":
                   those of them without a flag, "flagged_patients": [...]},
     "plausibility": {check: count, "any": count, "n": predictions checked},
     "prediction": predict.json of the predictions (when there is one),
     "confidence": evaluation.confidence.confidence_ranking (automatic predictions with confidence.csv)}
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from medsam_echo.data.sample import STRUCTURES
from medsam_echo.evaluation.clinical import EF_CHECKS, agreement, format_ef
from medsam_echo.evaluation.confidence import confidence_ranking, render_ranking
from medsam_echo.evaluation.evaluate import Evaluation
from medsam_echo.evaluation.metrics import summarize
from medsam_echo.evaluation.plausibility import CHECKS, count_implausible
from medsam_echo.evaluation.plots import bland_altman_plot, scatter_plot

CLINICAL = {"ef": ("EF", "%"), "edv_ml": ("EDV", "mL"), "esv_ml": ("ESV", "mL")}
_NAMES = {"lv_endo": "LV endo", "lv_epi": "LV epi", "myo": "MYO", "la": "LA"}


def summarize_evaluation(result: Evaluation, *, split: str = "") -> dict:
    """The content of ``summary.json`` (module docstring), NaN kept as float NaN."""
    rows = result.metrics

    def per_structure(phase: str | None) -> dict:
        return {
            name: summarize(r for r in rows if r["structure"] == name and phase in (None, r["phase"]))
            for name in STRUCTURES
        }

    phases = sorted({r["phase"] for r in rows})
    summary = {
        "split": split,
        "n_cases": len(result.plausibility),
        "n_patients": len({r["patient"] for r in rows}),
        "missing": result.missing,
        "incomplete_patients": result.incomplete_patients,
        "structures": per_structure(None),
        "phases": {phase: per_structure(phase) for phase in phases},
    }
    for key in CLINICAL:
        summary[key] = agreement([r[key] for r in result.clinical], [r[f"{key}_gt"] for r in result.clinical])
    trusted = [r for r in result.clinical if not r.get("flags")]
    summary["ef_unflagged"] = agreement([r["ef"] for r in trusted], [r["ef_gt"] for r in trusted])
    summary["ef_checks"] = ef_check_counts(result.clinical)
    summary["plausibility"] = {**count_implausible(result.plausibility), "n": len(result.plausibility)}
    return summary


def ef_check_counts(rows: list[dict]) -> dict:
    """Per-patient EF cross-checks and outliers of ``clinical.csv`` rows (``summary["ef_checks"]``).

    An outlier is a patient whose predicted EF is off the reference by more than 10 (or 20) points, or has
    no value while the reference has one: a missing EF is as wrong as a bad one to the reader.
    """
    flagged = [r for r in rows if r.get("flags")]
    counts: dict = {"n": len(rows), "flagged": len(flagged)}
    counts.update({name: sum(name in r.get("flags", "").split(";") for r in rows) for name in EF_CHECKS})
    for limit in (10, 20):
        off = [r for r in rows if math.isfinite(r["ef_gt"]) and not abs(r["ef"] - r["ef_gt"]) <= limit]
        counts[f"outliers_{limit}"] = len(off)
        counts[f"outliers_{limit}_unflagged"] = sum(not r.get("flags") for r in off)
    counts["flagged_patients"] = [{"patient": r["patient"], "ef": r["ef"], "ef_gt": r["ef_gt"], "flags": r["flags"]}
                                  for r in flagged]
    return counts


def write_outputs(result: Evaluation, out_dir: str | Path, *, split: str = "", protocol: dict | None = None,
                  confidence: dict[tuple[str, str], float] | None = None) -> dict:
    """Write every output file of ``medsam-echo evaluate`` into ``out_dir``; returns the summary.

    Args:
        protocol: the predictions' ``predict.json`` (how they were made), kept as ``summary["prediction"]``.
        confidence: ``{(case, structure): confidence}`` of automatic predictions; ranked against the Dice
            as ``summary["confidence"]`` (:func:`~medsam_echo.evaluation.confidence.confidence_ranking`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "metrics.csv", result.metrics)
    _write_csv(out / "plausibility.csv", result.plausibility)
    _write_csv(out / "clinical.csv", result.clinical)
    summary = summarize_evaluation(result, split=split)
    if protocol is not None:
        summary["prediction"] = protocol
    if confidence is not None:
        summary["confidence"] = confidence_ranking(result.metrics, confidence)
    summary = _nan_to_none(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plots = []
    for key, (quantity, unit) in CLINICAL.items():
        pred, ref = [r[key] for r in result.clinical], [r[f"{key}_gt"] for r in result.clinical]
        stem = key.split("_")[0]
        for kind, plot in (("bland_altman", bland_altman_plot), ("scatter", scatter_plot)):
            plots.append(plot(pred, ref, out / f"{stem}_{kind}.png", quantity=quantity, unit=unit))
    (out / "report.md").write_text(render_report(summary, [p.name for p in plots]))
    return summary


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        if not rows:
            return
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _nan_to_none(value):
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _num(value) -> float:
    """A summary number back to float (``None`` was NaN)."""
    return float("nan") if value is None else float(value)


def _fmt(mean, std=None, digits: int = 2) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def render_report(summary: dict, plots: list[str]) -> str:
    """Markdown report: CAMUS-style tables per structure and phase, clinical agreement, plausibility."""
    lines = [f"# Evaluation ({summary['split'] or 'all'} split)", ""]
    lines.append(f"{summary['n_cases']} cases of {summary['n_patients']} patients; mean ± SD over cases.")
    protocol = summary.get("prediction")
    if protocol:
        how = protocol.get("prompt", "?") + (f" ({protocol['auto_method']})" if protocol.get("auto_method") else "")
        lines.append(f"Predictions: {protocol.get('model', '?')}, prompts {how}.")
    if summary["missing"]:
        missing = summary["missing"]
        lines.append(f"Missing predictions, left out ({len(missing)}): {', '.join(missing)}.")
    lines += ["", "## Segmentation", ""]
    head = "| structure | phase | Dice | MAD (mm) | HD (mm) | HD95 (mm) | n | one mask empty |"
    lines += [head, "|---|---|---|---|---|---|---|---|"]
    for name in STRUCTURES:
        for phase, table in [*summary["phases"].items(), ("all", summary["structures"])]:
            m = table[name]
            cells = [_fmt(m["dice"], m["dice_std"], 3)] + [
                _fmt(m[k], m[f"{k}_std"]) for k in ("mad_mm", "hd_mm", "hd95_mm")
            ]
            lines.append(f"| {_NAMES[name]} | {phase} | {' | '.join(cells)} | {m['n']} | {m['n_nan']} |")
    lines += [
        "",
        "Distances average the cases with both masks non-empty; 'one mask empty' counts the others.",
    ]
    lines += ["", "## Clinical indices (biplane Simpson, 20 disks)", ""]
    lines += ["| index | n | corr | bias | SD | limits of agreement | MAE |", "|---|---|---|---|---|---|---|"]
    for key, (quantity, unit) in CLINICAL.items():
        a = summary[key]
        limits = f"{_fmt(a['loa_low'])} to {_fmt(a['loa_high'])}"
        lines.append(
            f"| {quantity} ({unit}) | {a['n']} | {_fmt(a['corr'], digits=3)} | {_fmt(a['bias'])} "
            f"| {_fmt(a['std'])} | {limits} | {_fmt(a['mae'])} |"
        )
    checks = summary.get("ef_checks")
    if checks:
        a = summary["ef_unflagged"]
        lines += ["", f"EF of the {a['n']} patients that pass every cross-check: corr {_fmt(a['corr'], digits=3)}, "
                  f"bias {_fmt(a['bias'])} [{_fmt(a['loa_low'])} to {_fmt(a['loa_high'])}], MAE {_fmt(a['mae'])}. "
                  f"EF outliers: {checks['outliers_10']} patients off by more than 10 points "
                  f"({checks['outliers_10_unflagged']} without a flag), {checks['outliers_20']} by more than 20 "
                  f"({checks['outliers_20_unflagged']} without a flag)."]
        if checks["flagged_patients"]:
            lines += ["", f"### EF cross-checks failed ({checks['flagged']} patients; the EF is not a plain number)", "",
                      "| patient | EF | reference EF | failed checks |", "|---|---|---|---|"]
            lines += [f"| {r['patient']} | {format_ef(_num(r['ef']), r['flags'].split(';'))} | {_fmt(r['ef_gt'], digits=1)} "
                      f"| {r['flags'].replace(';', ', ')} |" for r in checks["flagged_patients"]]
    if summary["incomplete_patients"]:
        lines += [
            "",
            f"Patients without all four cases, left out: {', '.join(summary['incomplete_patients'])}.",
        ]
    plaus = summary["plausibility"]
    lines += ["", f"## Anatomical plausibility ({plaus['n']} predictions)", ""]
    lines += ["| check | implausible |", "|---|---|"]
    lines += [f"| {name.replace('_', ' ')} | {plaus[name]} |" for name in (*CHECKS, "any")]
    if summary.get("confidence"):
        lines += ["", *render_ranking(summary["confidence"])]
    lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots]
    return "\n".join(lines) + "\n"
