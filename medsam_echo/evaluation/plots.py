"""Bland-Altman and scatter plots of paired clinical measurements, written as PNG.

matplotlib is imported lazily and used through ``matplotlib.figure.Figure`` (the Agg canvas), never
``pyplot``: nothing global such as the interactive backend is touched, and no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medsam_echo.evaluation.clinical import agreement


def _figure(size: tuple[float, float] = (5.0, 4.0)):
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - matplotlib is a core dependency
        raise ImportError("evaluation plots need matplotlib: pip install matplotlib") from err
    return Figure(figsize=size, dpi=120, layout="constrained")


def _finite_pairs(pred: Sequence[float], ref: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred, dtype=float), np.asarray(ref, dtype=float)
    ok = np.isfinite(p) & np.isfinite(r)
    return p[ok], r[ok]


def bland_altman_plot(
    pred: Sequence[float], ref: Sequence[float], path: str | Path, *, quantity: str, unit: str
) -> Path:
    """Bland-Altman plot: difference ``pred - ref`` against the mean of the pair, with bias and limits.

    Args:
        pred: measurements from the predictions, one per patient.
        ref: the same measurements from the ground truth.
        path: the PNG to write (parent folders are created).
        quantity: axis name, e.g. ``"EF"``. unit: e.g. ``"%"`` or ``"mL"``.

    Returns:
        ``path`` as a Path.
    """
    p, r = _finite_pairs(pred, ref)
    stats = agreement(p, r)
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter((p + r) / 2.0, p - r, s=14, alpha=0.8)
    for value, style, label in (
        (stats["bias"], "-", f"bias {stats['bias']:.2f}"),
        (stats["loa_high"], "--", f"+1.96 SD {stats['loa_high']:.2f}"),
        (stats["loa_low"], "--", f"-1.96 SD {stats['loa_low']:.2f}"),
    ):
        if np.isfinite(value):
            ax.axhline(value, color="tab:red", linestyle=style, linewidth=1, label=label)
    ax.set_xlabel(f"mean of prediction and reference {quantity} ({unit})")
    ax.set_ylabel(f"prediction - reference {quantity} ({unit})")
    ax.set_title(f"Bland-Altman, {quantity} (n = {stats['n']})")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def scatter_plot(
    pred: Sequence[float], ref: Sequence[float], path: str | Path, *, quantity: str, unit: str
) -> Path:
    """Scatter of prediction against reference with the identity line and the Pearson correlation.

    Args and Returns as in :func:`bland_altman_plot`.
    """
    p, r = _finite_pairs(pred, ref)
    stats = agreement(p, r)
    fig = _figure((4.5, 4.5))
    ax = fig.add_subplot()
    ax.scatter(r, p, s=14, alpha=0.8)
    if p.size:
        low, high = float(min(p.min(), r.min())), float(max(p.max(), r.max()))
        ax.plot([low, high], [low, high], color="gray", linewidth=1, label="identity")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel(f"reference {quantity} ({unit})")
    ax.set_ylabel(f"predicted {quantity} ({unit})")
    ax.set_title(f"{quantity}: r = {stats['corr']:.3f}, n = {stats['n']}")
    ax.set_aspect("equal", adjustable="datalim")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
