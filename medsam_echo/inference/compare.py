"""Side by side: two or more ``medsam-echo evaluate`` output folders (a SAM run and nnU-Net, say).

Used by ``notebooks/03_benchmark_vs_nnunet.ipynb``. Reads ``summary.json``, ``metrics.csv`` and
``clinical.csv``; makes markdown tables (per structure, EF agreement, per-case paired differences)
and Bland-Altman figures with one panel per run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsam_echo.evaluation.clinical import agreement

METRIC_COLUMNS = ("dice", "hd95_mm", "mad_mm")


@dataclass
class EvaluatedRun:
    """One evaluate output folder: ``summary`` (summary.json) and the rows of metrics.csv / clinical.csv."""

    name: str
    summary: dict
    metrics: list[dict]
    clinical: list[dict]


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {path.parent} an `medsam-echo evaluate` output folder?")
    with path.open(newline="") as stream:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(stream)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def load_run(directory: str | Path, name: str | None = None) -> EvaluatedRun:
    """Read an evaluate output folder; ``name`` defaults to the folder name."""
    directory = Path(directory)
    summary_path = directory / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path}: missing; run `medsam-echo evaluate ... --out {directory}`")
    return EvaluatedRun(
        name or directory.name,
        json.loads(summary_path.read_text()),
        _read_csv(directory / "metrics.csv"),
        _read_csv(directory / "clinical.csv"),
    )


def _fmt(value) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{value:.3f}"


def structure_table(runs: Sequence[EvaluatedRun], metrics: Sequence[str] = METRIC_COLUMNS) -> str:
    """Markdown: one row per structure and run, the mean of each metric over cases."""
    lines = ["| structure | run | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    names = list(dict.fromkeys(s for run in runs for s in run.summary["structures"]))
    for structure in names:
        for run in runs:
            values = run.summary["structures"].get(structure, {})
            lines.append(
                f"| {structure} | {run.name} | " + " | ".join(_fmt(values.get(m)) for m in metrics) + " |"
            )
    return "\n".join(lines)


def ef_table(runs: Sequence[EvaluatedRun]) -> str:
    """Markdown: EF agreement with the ground truth per run (n, correlation, bias, std, MAE in %)."""
    keys = ("n", "corr", "bias", "std", "mae")
    lines = ["| run | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for run in runs:
        ef = run.summary["ef"]
        lines.append(f"| {run.name} | {ef['n']} | " + " | ".join(_fmt(ef[k]) for k in keys[1:]) + " |")
    return "\n".join(lines)


def paired_differences(a: EvaluatedRun, b: EvaluatedRun, metric: str = "dice") -> dict[str, dict[str, float]]:
    """Per structure, ``b - a`` over the cases both runs scored: mean and 95 % CI (normal approximation)."""

    def values(run: EvaluatedRun) -> dict[tuple[str, str], float]:
        return {(row["case"], row["structure"]): float(row[metric]) for row in run.metrics}

    va, vb = values(a), values(b)
    out: dict[str, dict[str, float]] = {}
    for structure in dict.fromkeys(key[1] for key in va):
        diffs = np.array([vb[k] - va[k] for k in va if k[1] == structure and k in vb])
        diffs = diffs[np.isfinite(diffs)]
        if diffs.size == 0:
            continue
        half = 1.96 * diffs.std(ddof=1) / np.sqrt(diffs.size) if diffs.size > 1 else float("nan")
        out[structure] = {
            "n": int(diffs.size),
            "mean": float(diffs.mean()),
            "ci_low": float(diffs.mean() - half),
            "ci_high": float(diffs.mean() + half),
        }
    return out


def paired_table(a: EvaluatedRun, b: EvaluatedRun, metric: str = "dice") -> str:
    """Markdown of :func:`paired_differences`: per structure, n, mean ``b - a`` and its 95 % CI."""
    lines = [f"| structure | n | mean {metric} ({b.name} - {a.name}) | 95 % CI |", "|---|---|---|---|"]
    for structure, d in paired_differences(a, b, metric).items():
        ci = f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
        lines.append(f"| {structure} | {d['n']} | {d['mean']:+.3f} | {ci} |")
    return "\n".join(lines)


def bland_altman_figure(runs: Sequence[EvaluatedRun], quantity: str = "ef", unit: str = "%"):
    """A matplotlib Figure: one Bland-Altman panel per run for ``ef``, ``edv_ml`` or ``esv_ml``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5 * len(runs), 4.0), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(runs), sharey=True))
    for ax, run in zip(axes, runs, strict=True):
        pred = np.array([row[quantity] for row in run.clinical], float)
        ref = np.array([row[f"{quantity}_gt"] for row in run.clinical], float)
        ok = np.isfinite(pred) & np.isfinite(ref)
        stats = agreement(pred[ok], ref[ok])
        ax.scatter((pred[ok] + ref[ok]) / 2, pred[ok] - ref[ok], s=14, alpha=0.8)
        for value, style in ((stats["bias"], "-"), (stats["loa_low"], "--"), (stats["loa_high"], "--")):
            if np.isfinite(value):
                ax.axhline(value, color="tab:red", linestyle=style, linewidth=1)
        ax.set_title(f"{run.name}: bias {_fmt(stats['bias'])}, n = {stats['n']}")
        ax.set_xlabel(f"mean {quantity} ({unit})")
    axes[0].set_ylabel(f"prediction - reference {quantity} ({unit})")
    return fig
