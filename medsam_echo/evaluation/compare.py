"""Side by side: two or more ``medsam-echo evaluate`` output folders (a SAM run and nnU-Net, say).

``medsam-echo compare`` and ``notebooks/03_benchmark_vs_nnunet.ipynb`` both call :func:`write_comparison`.
It reads each folder's ``summary.json``, ``metrics.csv`` and ``clinical.csv`` and writes a markdown report:

- mean Dice, HD95 and MAD (mm) per structure, one table per phase (ED, ES, all);
- paired per-case differences ``run - reference`` (the reference is the first run) per structure and phase,
  over the cases both runs scored with a finite value, with a two-sided 95 % Student t-interval
  ``mean +- t(0.975, n - 1) * SD / sqrt(n)`` (:data:`CI_METHOD`);
- agreement of EF, EDV and ESV with the ground truth per run (correlation, bias, SD, limits of agreement
  ``bias +- 1.96 SD``, MAE);
- Bland-Altman figures, one panel per run (EF; EDV and ESV), as PNG files next to the report.

It never replaces a file it did not write: an existing report is replaced only when it is an earlier
comparison (its first line is :data:`MARKER`), and its PNGs only then; ``out`` may be a folder (the report
is then ``comparison.md`` inside it). Everything is checked before anything is written. Two runs with
no case in common give no paired differences, and the report and ``ComparisonReport.warnings`` say so.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsam_echo.atomic import atomic_write, atomic_write_text
from medsam_echo.evaluation.clinical import agreement

METRIC_COLUMNS = ("dice", "hd95_mm", "mad_mm")
METRIC_NAMES = {"dice": "Dice", "hd95_mm": "HD95 (mm)", "mad_mm": "MAD (mm)", "hd_mm": "HD (mm)"}
CLINICAL = {"ef": ("EF", "%"), "edv_ml": ("EDV", "mL"), "esv_ml": ("ESV", "mL")}
FIGURES = {"ef_bland_altman": (("ef", "%"),), "volumes_bland_altman": (("edv_ml", "mL"), ("esv_ml", "mL"))}
MARKER = "<!-- written by medsam-echo compare -->"
REPORT_IN_FOLDER = "comparison.md"
CI_METHOD = (
    "two-sided 95 % Student t-interval on the paired per-case differences, "
    "mean ± t(0.975, n − 1) · SD / √n (SD with n − 1)"
)


@dataclass
class EvaluatedRun:
    """One evaluate output folder: ``summary`` (summary.json) and the rows of metrics.csv / clinical.csv."""

    name: str
    summary: dict
    metrics: list[dict]
    clinical: list[dict]


@dataclass
class ComparisonReport:
    """What :func:`write_comparison` wrote: the report, its text, and the figure files it links."""

    path: Path
    markdown: str
    tables: str  # the report without the figure links (for display where the PNGs are not beside it)
    figures: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {path.parent} an `medsam-echo evaluate` output folder?")
    with path.open(newline="") as stream:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(stream)]


def _number(text: str):
    if text == "":
        return float("nan")
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
    try:
        summary = json.loads(summary_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{summary_path}: not readable JSON ({err}); is {directory} an evaluate output folder?") from err
    if not isinstance(summary, dict) or not isinstance(summary.get("structures"), dict):
        raise ValueError(f"{summary_path}: not the summary of `medsam-echo evaluate` (no 'structures' table); "
                         f"is {directory} an evaluate output folder?")  # fmt: skip
    metrics = _read_csv(directory / "metrics.csv")
    missing = {"case", "structure", *METRIC_COLUMNS} - set(metrics[0] if metrics else {"case", "structure", *METRIC_COLUMNS})
    if missing:
        raise ValueError(f"{directory / 'metrics.csv'}: no column {sorted(missing)[0]!r}; is {directory} an "
                         "evaluate output folder?")  # fmt: skip
    return EvaluatedRun(name or directory.name, summary, metrics, _read_csv(directory / "clinical.csv"))


def _fmt(value, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "nan"
    return f"{value:.{digits}f}"


def _phases(runs: Sequence[EvaluatedRun]) -> list[str]:
    """Phases any run scored (e.g. ED, ES), then ``"all"``."""
    return [*sorted({p for run in runs for p in run.summary.get("phases", {})} - {""}), "all"]


def structure_table(
    runs: Sequence[EvaluatedRun], metrics: Sequence[str] = METRIC_COLUMNS, phase: str = "all"
) -> str:
    """Markdown: one row per structure and run, the mean of each metric over the ``phase``'s cases."""
    head = " | ".join(METRIC_NAMES.get(m, m) for m in metrics)
    lines = [f"| structure | run | {head} | n |", "|---|---|" + "---|" * (len(metrics) + 1)]

    def table(run: EvaluatedRun) -> dict:
        return run.summary["structures"] if phase == "all" else run.summary.get("phases", {}).get(phase, {})

    names = list(dict.fromkeys(s for run in runs for s in run.summary["structures"]))
    for structure in names:
        for run in runs:
            values = table(run).get(structure, {})
            cells = " | ".join(_fmt(values.get(m)) for m in metrics)
            lines.append(f"| {structure} | {run.name} | {cells} | {values.get('n', 0)} |")
    return "\n".join(lines)


def ef_table(runs: Sequence[EvaluatedRun], quantities: Sequence[str] = tuple(CLINICAL)) -> str:
    """Markdown: agreement with the ground truth per run and quantity (EF %, EDV / ESV mL)."""
    lines = ["| quantity | run | n | corr | bias | SD | limits of agreement | MAE |", "|---|---|---|---|---|---|---|---|"]
    for key in quantities:
        label, unit = CLINICAL[key]
        for run in runs:
            a = run.summary.get(key) or {}
            limits = f"{_fmt(a.get('loa_low'), 2)} to {_fmt(a.get('loa_high'), 2)}"
            lines.append(
                f"| {label} ({unit}) | {run.name} | {a.get('n', 0)} | {_fmt(a.get('corr'))} | "
                f"{_fmt(a.get('bias'), 2)} | {_fmt(a.get('std'), 2)} | {limits} | {_fmt(a.get('mae'), 2)} |"
            )
    return "\n".join(lines)


def t_interval(diffs: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean of ``diffs`` and its two-sided Student t confidence interval (:data:`CI_METHOD`).

    Returns:
        ``{"n", "mean", "sd", "ci_low", "ci_high"}``; SD and the interval are NaN below two values.
    """
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    n, nan = int(d.size), float("nan")
    mean = float(d.mean()) if n else nan
    sd = float(d.std(ddof=1)) if n > 1 else nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)) if n > 1 else nan
    return {"n": n, "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half}


def paired_differences(
    a: EvaluatedRun, b: EvaluatedRun, metric: str = "dice", phase: str = "all"
) -> dict[str, dict[str, float]]:
    """Per structure, ``b - a`` over the cases both runs scored with finite values (``phase`` ``"all"``:
    every phase): ``{"n", "mean", "sd", "ci_low", "ci_high"}`` from :func:`t_interval`."""

    def values(run: EvaluatedRun) -> dict[tuple[str, str], float]:
        return {
            (str(row["case"]), str(row["structure"])): float(row[metric])
            for row in run.metrics
            if phase == "all" or str(row.get("phase", "")) == phase
        }

    va, vb = values(a), values(b)
    out: dict[str, dict[str, float]] = {}
    for structure in dict.fromkeys(key[1] for key in va):
        diffs = np.array([vb[k] - va[k] for k in va if k[1] == structure and k in vb], dtype=float)
        diffs = diffs[np.isfinite(diffs)]
        if diffs.size:
            out[structure] = t_interval(diffs)
    return out


def paired_table(a: EvaluatedRun, b: EvaluatedRun, metric: str = "dice", phases: Sequence[str] = ("all",)) -> str:
    """Markdown of :func:`paired_differences`: per structure and phase, n, mean ``b - a`` and its 95 % CI."""
    name = METRIC_NAMES.get(metric, metric)
    lines = [f"| structure | phase | n | mean {name}: {b.name} − {a.name} | 95 % CI |", "|---|---|---|---|---|"]
    by_phase = {phase: paired_differences(a, b, metric, phase) for phase in phases}
    structures = list(dict.fromkeys(s for table in by_phase.values() for s in table))
    for structure in structures:
        for phase, table in by_phase.items():
            if structure in table:
                d = table[structure]
                ci = f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if np.isfinite(d["ci_low"]) else "n/a"
                lines.append(f"| {structure} | {phase} | {d['n']} | {d['mean']:+.3f} | {ci} |")
    return "\n".join(lines)


def bland_altman_figure(runs: Sequence[EvaluatedRun], quantities: Sequence[tuple[str, str]] = (("ef", "%"),)):
    """A matplotlib Figure: a row of Bland-Altman panels (one per run) for each ``(quantity, unit)``,
    quantity one of ``ef``, ``edv_ml``, ``esv_ml``; bias (solid) and limits of agreement (dashed)."""
    from matplotlib.figure import Figure

    rows, cols = len(quantities), len(runs)
    fig = Figure(figsize=(4.5 * cols, 3.8 * rows), dpi=100, layout="constrained")
    axes = np.array(fig.subplots(rows, cols, squeeze=False, sharey="row"))  # runs on one scale per row
    for row, (quantity, unit) in enumerate(quantities):
        label = CLINICAL.get(quantity, (quantity, unit))[0]
        for ax, run in zip(axes[row], runs, strict=True):
            pred = np.array([r[quantity] for r in run.clinical], float)
            ref = np.array([r[f"{quantity}_gt"] for r in run.clinical], float)
            ok = np.isfinite(pred) & np.isfinite(ref)
            stats = agreement(pred[ok], ref[ok])
            ax.scatter((pred[ok] + ref[ok]) / 2, pred[ok] - ref[ok], s=14, alpha=0.8)
            for value, style in ((stats["bias"], "-"), (stats["loa_low"], "--"), (stats["loa_high"], "--")):
                if np.isfinite(value):
                    ax.axhline(value, color="tab:red", linestyle=style, linewidth=1)
            ax.set_title(f"{run.name}: {label} bias {_fmt(stats['bias'], 2)} {unit}, n = {stats['n']}", fontsize=9)
            ax.set_xlabel(f"mean of prediction and reference {label} ({unit})")
        axes[row][0].set_ylabel(f"prediction − reference {label} ({unit})")
    return fig


def render_comparison(runs: Sequence[EvaluatedRun], figures: Sequence[str] = ()) -> str:
    """The markdown report (module docstring); ``figures`` are PNG names to link at the end."""
    if len(runs) < 1:
        raise ValueError("render_comparison needs at least one run")
    phases, ref = _phases(runs), runs[0]
    lines = ["# Comparison of evaluations", ""]
    lines += [f"Runs: {', '.join(f'**{r.name}**' for r in runs)}. Reference for differences: **{ref.name}**.", ""]
    lines += ["| run | split | cases | patients | missing predictions |", "|---|---|---|---|---|"]
    for run in runs:
        s = run.summary
        lines.append(f"| {run.name} | {s.get('split') or 'all'} | {s.get('n_cases', 0)} | "
                     f"{s.get('n_patients', 0)} | {len(s.get('missing') or [])} |")
    lines += ["", "## Segmentation: mean over cases", "",
              "Dice over all cases; distances over cases with both masks non-empty; n counts cases.", ""]
    for phase in phases:
        lines += [f"### Phase: {phase}", "", structure_table(runs, phase=phase), ""]
    if len(runs) > 1:
        lines += ["## Paired per-case differences", "",
                  f"Each run minus {ref.name}, over the cases both scored with a finite value. "
                  f"Confidence interval: {CI_METHOD}.", ""]
        for run in runs[1:]:
            for metric in METRIC_COLUMNS:
                lines += [f"### {METRIC_NAMES[metric]}: {run.name} − {ref.name}", "",
                          paired_table(ref, run, metric, phases), ""]
    lines += ["## Clinical indices: agreement with the ground truth (biplane Simpson)", "",
              "Per patient, prediction − reference; limits of agreement = bias ± 1.96 SD.", "",
              ef_table(runs), ""]
    if figures:
        lines += ["## Bland-Altman plots", ""] + [f"![{name}]({name})" for name in figures] + [""]
    return "\n".join(lines)


def report_path(out: str | Path) -> Path:
    """The report ``out`` names: ``out`` itself, or ``out/comparison.md`` when ``out`` is a folder (an
    existing one, or a name ending in a path separator)."""
    text = str(out)
    out = Path(out)
    return out / REPORT_IN_FOLDER if out.is_dir() or text.endswith(("/", "\\")) else out


def figure_paths(report: Path) -> dict[str, Path]:
    """``{figure name: PNG path}`` beside the report."""
    return {name: report.parent / f"{report.stem}_{name}.png" for name in FIGURES}


def check_report_out(report: Path) -> None:
    """Refuse a report path that would replace something :func:`write_comparison` did not write."""
    if report.suffix.lower() != ".md":
        raise ValueError(f"--out {report}: the report is markdown; name it REPORT.md (or give a folder)")
    if report.is_dir():
        raise ValueError(f"--out {report}: is a folder")
    ours = report.is_file() and _is_ours(report)
    if report.exists() and not ours:
        raise ValueError(f"{report}: exists and was not written by medsam-echo compare; refusing to overwrite "
                         "it (choose another --out)")  # fmt: skip
    for path in figure_paths(report).values():
        if path.exists() and not ours:
            raise ValueError(f"{path}: exists and was not written by a comparison at {report}; refusing to "
                             "overwrite it (choose another --out)")  # fmt: skip


def _is_ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as stream:
            return stream.readline().strip() == MARKER
    except (OSError, UnicodeDecodeError):
        return False


def common_case_warnings(runs: Sequence[EvaluatedRun]) -> list[str]:
    """A line per run that shares no scored case with the reference (no paired difference possible)."""
    ref = {str(row["case"]) for row in runs[0].metrics}
    return [f"{run.name} and {runs[0].name} have no case in common: no paired differences"
            for run in runs[1:] if not ref & {str(row["case"]) for row in run.metrics}]  # fmt: skip


def write_comparison(runs: Sequence[EvaluatedRun], out: str | Path) -> ComparisonReport:
    """Write the report ``out`` (markdown; a folder: ``out/comparison.md``) and its Bland-Altman PNGs
    ``<report stem>_<figure>.png`` beside it.

    Files are written atomically; nothing else in the folder is touched, and nothing the command did not
    write is replaced (module docstring). Returns a :class:`ComparisonReport`.

    Raises:
        ValueError: the report or a PNG path holds a file of someone else (nothing is written then).
    """
    out = report_path(out)
    check_report_out(out)
    warnings = common_case_warnings(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, path in figure_paths(out).items():
        fig = bland_altman_figure(runs, FIGURES[name])
        paths.append(atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png")))
    notes = "".join(f"> **Warning:** {line}.\n\n" for line in warnings)
    body = render_comparison(runs, [p.name for p in paths]).replace("\n\n", "\n\n" + notes, 1) if notes else None
    markdown = f"{MARKER}\n{body or render_comparison(runs, [p.name for p in paths])}"
    atomic_write_text(out, markdown)
    return ComparisonReport(out, markdown, render_comparison(runs), paths, warnings)
