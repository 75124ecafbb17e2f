"""Prompt robustness: Dice as a function of box jitter and of the number of correction clicks.

Both sweeps take a ``predict(image, prompts) -> (n, H, W) bool`` callable (see
``decode.make_predict_fn``), so any model can be compared on the same prompts: every random draw comes
from a generator seeded by the case id (``eval_prompts.case_rng``).

NoC@90 (number of clicks to reach Dice 0.90) follows the interactive-segmentation convention: clicks are
simulated by ``next_click`` (most interior point of the largest error region) and a case that never
reaches the target counts as ``max_clicks``. A sweep may start from nothing (the first click is the
first prompt), from a tight box, from a loose box (every side pushed outward by U{0..loose_px} px, seeded
by the case id) or from the automatic mode's result (its boxes, no human input): then the start is click
0, and a start already at Dice 0.90 needs 0 clicks.

How a model answers a click is a :class:`Clicker`'s business: by default every click is added to the
prompts and all of them are decoded again (:class:`PromptsClicker`, over a ``predict`` function);
``EchoPredictor.clicker()`` answers through ``EchoPredictor.refine`` instead, with the model's own click
behaviour (mask feedback for click-trained models, box edits for box-only ones: ``prompts.kinds``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np

from medsam_echo.data.sample import EchoSample
from medsam_echo.evaluation.metrics import dice
from medsam_echo.prompts.boxes import box_from_mask, jitter_box
from medsam_echo.prompts.clicks import n_components, next_click, stripe_score
from medsam_echo.prompts.decode import PredictFn
from medsam_echo.prompts.eval_prompts import case_rng
from medsam_echo.prompts.points import most_interior_point
from medsam_echo.prompts.policies import structure_masks
from medsam_echo.prompts.prompt_set import Prompts


def _labelled(sample: EchoSample) -> np.ndarray:
    if sample.label is None:
        raise ValueError(f"{sample.case_id}: sweeps need labelled samples")
    return sample.label


def jitter_sweep(
    predict: PredictFn,
    samples: Iterable[EchoSample],
    structures: Sequence[str],
    levels: Sequence[float],
    *,
    mode: str = "relative",
    repeats: int = 1,
) -> list[dict]:
    """Dice of box prompts jittered by each of ``levels`` (``jitter_box`` amounts in ``mode``'s unit).

    Repeat ``r`` of a case uses the same generator seed at every level, so in ``relative`` and ``mm``
    mode a larger level moves every side further in the same direction (common random numbers).

    Returns:
        One row per case, repeat, level and structure: ``case_id``, ``structure``, ``level``,
        ``repeat``, ``dice``.
    """
    rows = []
    for sample in samples:
        gt = structure_masks(_labelled(sample), structures)
        tight = [box_from_mask(m) for m in gt]
        for repeat in range(repeats):
            for level in levels:
                rng = case_rng(sample.case_id, f"jitter/{mode}/{repeat}")
                boxes = np.stack(
                    [
                        jitter_box(
                            b, rng, mode, image_shape=gt.shape[1:], amount=level, spacing=sample.spacing
                        )
                        for b in tight
                    ]
                )
                pred = predict(sample.image, Prompts(tuple(structures), boxes=boxes))
                for i, name in enumerate(structures):
                    row = {
                        "case_id": sample.case_id,
                        "structure": name,
                        "level": float(level),
                        "repeat": repeat,
                    }
                    rows.append({**row, "dice": dice(pred[i], gt[i])})
    return rows


def _clicks(pred: np.ndarray, gt: np.ndarray, last: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Next click per structure; a perfect structure repeats its last click (shapes stay equal), or gets a
    positive click at its most interior point before any click."""
    xy, labels = [], []
    for i in range(gt.shape[0]):
        click = next_click(pred[i], gt[i])
        if click is None:
            click = (last[0][i], last[1][i]) if last is not None else (most_interior_point(gt[i]), 1)
        xy.append(click[0])
        labels.append(click[1])
    return np.stack(xy), np.array(labels)


class Clicker(Protocol):
    """A model answering a first prompt and then one correction click per structure at a time."""

    def start(self, image: np.ndarray, prompts: Prompts) -> np.ndarray:
        """``(n, H, W)`` bool masks of the first ``prompts`` on ``image``."""

    def click(self, xy: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``(n, H, W)`` bool masks after one more click per structure (``xy`` ``(n, 2)``, ``labels`` ``(n,)``)."""


class PromptsClicker:
    """Every click added to the prompts, all of them decoded again by ``predict`` (no mask fed back)."""

    def __init__(self, predict: PredictFn) -> None:
        self.predict = predict
        self.image: np.ndarray | None = None
        self.prompts: Prompts | None = None

    def start(self, image: np.ndarray, prompts: Prompts) -> np.ndarray:
        self.image, self.prompts = image, prompts
        return self.predict(image, prompts)

    def click(self, xy: np.ndarray, labels: np.ndarray) -> np.ndarray:
        self.prompts = self.prompts.add_clicks(xy, labels)
        return self.predict(self.image, self.prompts)


SWEEP_STARTS = ("none", "box", "loose", "auto")
LOOSE_PX = 10  # a loose box: every side pushed outward by U{0..10} px (MedSAM's training jitter at 224 px: ~4)

# auto_prompts(image (H, W), structures) -> the automatic mode's box prompts for that image (no ground truth)
AutoPrompts = Callable[[np.ndarray, Sequence[str]], Prompts]


def loose_boxes(gt: np.ndarray, case_id: str, loose_px: float = LOOSE_PX) -> np.ndarray:
    """``(n, 4)`` boxes of the ``(n, H, W)`` masks with every side pushed outward by U{0..loose_px} px, seeded
    by the case id (the same boxes for every model and run)."""
    rng = case_rng(case_id, f"loose/{loose_px:g}")
    return np.stack(
        [jitter_box(box_from_mask(m), rng, "outward", image_shape=gt.shape[1:], amount=loose_px) for m in gt]
    )


def click_sweep(
    predict: PredictFn | None,
    samples: Iterable[EchoSample],
    structures: Sequence[str],
    *,
    max_clicks: int = 10,
    start: str = "none",
    auto_prompts: AutoPrompts | None = None,
    clicker: Clicker | None = None,
    loose_px: float = LOOSE_PX,
    shape_metrics: bool = False,
) -> list[dict]:
    """Dice after each simulated correction click, all structures of an image clicked together.

    Args:
        predict: ``(image, prompts) -> (n, H, W)`` bool masks (with ``clicker=None``).
        samples: labelled samples.
        structures: structures to segment.
        max_clicks: clicks per structure.
        start: ``"none"`` (the first click is the most interior point of the structure), ``"box"``
            (a tight box first, reported as click 0, then clicks on its errors), ``"loose"`` (a box
            pushed outward by U{0..loose_px} px per side, :func:`loose_boxes`) or ``"auto"`` (the
            automatic mode's boxes first, as click 0; needs ``auto_prompts``).
        auto_prompts: the automatic mode's box prompts of an image (``start="auto"``).
        clicker: how the model answers the clicks; default :class:`PromptsClicker` over ``predict``.
        loose_px: the loose box's outward jitter in px.
        shape_metrics: also report each mask's ``stripes`` (``clicks.stripe_score``, 2.0 for a smooth
            region) and ``components`` (8-connected).

    Returns:
        One row per case, structure and click count: ``case_id``, ``structure``, ``clicks``, ``dice``
        (and ``stripes``, ``components`` with ``shape_metrics``).
    """
    if start not in SWEEP_STARTS:
        raise ValueError(f"start must be one of {SWEEP_STARTS}, got {start!r}")
    if start == "auto" and auto_prompts is None:
        raise ValueError("start='auto' needs auto_prompts (the automatic mode's boxes)")
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be >= 1, got {max_clicks}")
    if clicker is None:
        if predict is None:
            raise ValueError("click_sweep needs predict or a clicker")
        clicker = PromptsClicker(predict)
    rows = []
    for sample in samples:
        gt = structure_masks(_labelled(sample), structures)
        prompts, pred = None, np.zeros_like(gt)
        if start == "box":
            prompts = Prompts(tuple(structures), boxes=np.stack([box_from_mask(m) for m in gt]))
        elif start == "loose":
            prompts = Prompts(tuple(structures), boxes=loose_boxes(gt, sample.case_id, loose_px))
        elif start == "auto":
            prompts = auto_prompts(sample.image, tuple(structures))
        if prompts is not None:
            pred = clicker.start(sample.image, prompts)
        last = None
        for clicks in range(0 if prompts is not None else 1, max_clicks + 1):
            if clicks:
                xy, labels = _clicks(pred, gt, last)
                if prompts is None:
                    prompts = Prompts(tuple(structures), points=xy[:, None], labels=labels[:, None])
                    pred = clicker.start(sample.image, prompts)
                else:
                    pred = clicker.click(xy, labels)
                last = (xy, labels)
            for i, name in enumerate(structures):
                row = {"case_id": sample.case_id, "structure": name, "clicks": clicks, "dice": dice(pred[i], gt[i])}
                if shape_metrics:
                    row |= {"stripes": stripe_score(pred[i]), "components": n_components(pred[i])}
                rows.append(row)
    return rows


def noc(dices: Sequence[float], target: float = 0.90) -> int:
    """Clicks needed to reach ``target`` Dice, from the Dice after 1, 2, ... clicks; ``len(dices)`` if never."""
    reached = np.flatnonzero(np.asarray(dices) >= target)
    return int(reached[0]) + 1 if reached.size else len(dices)


def noc_table(rows: Iterable[dict], target: float = 0.90) -> list[dict]:
    """NoC per case and structure from :func:`click_sweep` rows; a start (click 0: a box or the automatic
    result) already at ``target`` needs 0 clicks."""
    curves: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for row in rows:
        curves[row["case_id"], row["structure"]].append((row["clicks"], row["dice"]))
    table = []
    for (case, name), curve in curves.items():
        curve = sorted(curve)
        started = curve[0][0] == 0
        if started and curve[0][1] >= target:
            value = 0
        else:
            value = noc([d for c, d in curve if c > 0], target)
        table.append({"case_id": case, "structure": name, "noc": value})
    return table


def mean_by(rows: Iterable[dict], key: str, value: str = "dice") -> dict[tuple, float]:
    """Mean of ``value`` grouped by ``(structure, row[key])``, e.g. mean Dice per jitter level."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        groups[row["structure"], row[key]].append(row[value])
    return {group: float(np.mean(values)) for group, values in sorted(groups.items())}


NOC_TARGETS = (0.85, 0.90)


def summarize_sweeps(jitter_rows: list[dict], click_rows: list[dict], starts: dict[str, list[dict]] | None = None) -> dict:
    """Mean Dice per structure and jitter level / click count, and mean NoC@85 and NoC@90 per structure.

    ``starts``: click sweeps from other starts (``{"box": rows, "loose": rows, "auto": rows}``), summarised as
    ``dice_by_clicks_from_<start>``, ``noc85_from_<start>`` and ``noc90_from_<start>`` next to the sweep
    from nothing; rows with ``stripes`` (``shape_metrics``) add ``stripes_by_clicks[_from_<start>]``.
    """
    summary = {"dice_by_jitter": {f"{s}@{lvl:g}": v for (s, lvl), v in mean_by(jitter_rows, "level").items()}}
    for start, rows in {"": click_rows, **(starts or {})}.items():
        suffix = f"_from_{start}" if start else ""
        summary[f"dice_by_clicks{suffix}"] = {f"{s}@{c}": v for (s, c), v in mean_by(rows, "clicks").items()}
        if rows and "stripes" in rows[0]:  # shape_metrics: label flips per row, 2.0 for a smooth region
            summary[f"stripes_by_clicks{suffix}"] = {f"{s}@{c}": v for (s, c), v in mean_by(rows, "clicks", "stripes").items()}
        for target in NOC_TARGETS:
            nocs: dict[str, list[int]] = {}
            for row in noc_table(rows, target):
                nocs.setdefault(row["structure"], []).append(row["noc"])
            summary[f"noc{round(100 * target)}{suffix}"] = {s: float(np.mean(v)) for s, v in sorted(nocs.items())}
    return summary
