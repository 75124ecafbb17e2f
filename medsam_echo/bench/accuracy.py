"""``bench --preset camus-accuracy``: the accuracy table of the robust recipe, reproducible in one command.

    medsam-echo bench --preset camus-accuracy --data ROOT [--split val] --minutes 60 --out DIR \
        [--run EXISTING_RUN ...] [--recipe CONFIG.yaml ...]

1. Trains every recipe of the preset (``configs/camus_litemedsam_auto.yaml`` by default) on ROOT's
   ``train`` split for ``--minutes`` of training each (``train.max_minutes``; the embedding cache is filled
   first, outside that budget), all sharing one embedding cache (``DIR/cache``). A run folder that already
   holds a finished model is reused, one with a checkpoint is resumed; ``--run`` adds runs trained
   elsewhere without training anything.
2. Predicts ``--split`` with every model under three prompt protocols in one pass per image
   (:func:`medsam_echo.inference.batch.predict_protocols`): ``tight`` boxes, ``loose`` boxes (every side
   outward by U{0..10} px of the original image, ``predict --jitter-px 10``) and ``auto`` (no prompt), each
   written with and without the anatomical guards.
3. Evaluates each folder as ``medsam-echo evaluate`` does (``DIR/eval/<model>/<protocol>[-noguards]/``) and
   writes ``DIR/accuracy.json`` (one row per model x protocol x guards) and ``DIR/accuracy.md`` (the table:
   Dice and HD95 per structure, EF r, MAE, bias with limits of agreement, EF outliers > 10 and > 20 points
   with how many of them carry no flag, flagged patients, implausible label maps, wall times).

The validation split is the default; the preset refuses nothing, but the project never reports the
``test`` split of camus224 while it tunes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from medsam_echo.atomic import atomic_write_text

STRUCTURES = ("lv_endo", "myo", "la")
PROTOCOLS = {"tight": ("box", 0.0), "loose": ("box", 10.0), "auto": ("auto", 0.0)}  # name -> (prompt, jitter px)
RESULT_FILE = "accuracy.json"
TABLE_FILE = "accuracy.md"


def run_accuracy_preset(
    preset,
    data: Path,
    out: Path,
    *,
    split: str = "val",
    minutes: float | None = None,
    runs: list[Path] = (),
    log: Callable[[str], None] = print,
) -> dict:
    """Train, predict and evaluate as the module docstring says; returns what ``accuracy.json`` holds."""
    if not Path(data).is_dir():
        raise ValueError(f"--data {data}: not a folder (camus-accuracy needs a CAMUS-layout dataset root)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    minutes = preset.minutes if minutes is None else float(minutes)
    models: dict[str, dict] = {}
    for recipe in preset.recipes:
        name = Path(recipe).stem
        models[name] = _train_recipe(Path(recipe), data, out, minutes, log)
    for run in runs:
        models[Path(run).name if Path(run).name not in ("best", "model") else Path(run).parent.name] = {
            "model": str(run), "trained_here": False}  # fmt: skip
    rows = []
    for name, info in models.items():
        rows += _predict_and_evaluate(name, info, data, split, out, preset.loose_px, log)
    result = {"preset": "camus-accuracy", "data": str(data), "split": split, "minutes": minutes,
              "models": models, "rows": rows}  # fmt: skip
    atomic_write_text(out / RESULT_FILE, json.dumps(_clean(result), indent=2) + "\n")
    atomic_write_text(out / TABLE_FILE, render_table(result))
    log(f"wrote {out / RESULT_FILE} and {out / TABLE_FILE}")
    return result


def _train_recipe(recipe: Path, data: Path, out: Path, minutes: float, log) -> dict:
    """Train one recipe (or reuse / resume its run folder); returns ``{"model", "train_seconds", ...}``."""
    from medsam_echo.training.config import load_config
    from medsam_echo.training.loop import train

    run = out / "runs" / recipe.stem
    overrides = [f"data.root={data}", f"output_dir={run}", f"data.cache_dir={out / 'cache' / 'preprocess'}",
                 f"train.embedding_cache_dir={out / 'cache' / 'embeddings'}", f"train.max_minutes={minutes:g}"]  # fmt: skip
    best = run / "best"
    info = {"model": str(best), "recipe": str(recipe), "trained_here": True}
    if (best / "method.json").is_file() or (run / "model" / "method.json").is_file():
        log(f"camus-accuracy: {run} already holds a trained model; reusing it")
        info["train_seconds"] = _recorded_seconds(run)
        return info
    resume = (run / "checkpoints").is_dir()
    log(f"camus-accuracy: {'resuming' if resume else 'training'} {recipe} into {run} ({minutes:g} min budget)")
    start = time.perf_counter()
    train(load_config(recipe, overrides), resume=resume)
    info["train_seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_text(run / "bench_wall_time.json", json.dumps({"seconds": info["train_seconds"]}) + "\n")
    if not best.is_dir():
        info["model"] = str(run / "model")
    return info


def _recorded_seconds(run: Path) -> float | None:
    try:
        return float(json.loads((run / "bench_wall_time.json").read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _predict_and_evaluate(name: str, info: dict, data: Path, split: str, out: Path, loose_px: float, log) -> list[dict]:
    """Every protocol of one model, with and without guards: predictions, evaluations, table rows."""
    from medsam_echo.inference.batch import Protocol, predict_protocols
    from medsam_echo.inference.predictor import EchoPredictor

    predictor = EchoPredictor.from_source(info["model"])
    wanted = {key: (prompt, loose_px if key == "loose" else jitter) for key, (prompt, jitter) in PROTOCOLS.items()}
    if predictor.automatic_method != "tokens":
        wanted.pop("auto")  # a model without learned prompts: its automatic mode is the view prior, not this table's
        log(f"camus-accuracy: {name} has no learned prompts; no automatic rows")
    pred_root = out / "pred" / name
    protocols = [Protocol(prompt, pred_root / key, jitter, raw_out=pred_root / f"{key}-noguards")
                 for key, (prompt, jitter) in wanted.items()]  # fmt: skip
    log(f"camus-accuracy: predicting {split} with {name} ({', '.join(wanted)}; with and without guards)")
    start = time.perf_counter()
    n = predict_protocols(predictor, data, split, protocols)
    seconds = time.perf_counter() - start
    rows = []
    for key in wanted:
        for guards in (True, False):
            folder = pred_root / (key if guards else f"{key}-noguards")
            summary = _evaluate(folder, data, split, out / "eval" / name / folder.name)
            rows.append(table_row(name, key, guards, summary, predict_seconds=seconds / n))
    return rows


def _evaluate(pred: Path, data: Path, split: str, out: Path) -> dict:
    from medsam_echo.data.open import open_dataset
    from medsam_echo.evaluation.evaluate import evaluate, read_prediction_notes
    from medsam_echo.evaluation.report import write_outputs

    result = evaluate(open_dataset(data, split), pred)
    protocol, confidence = read_prediction_notes(pred)
    return write_outputs(result, out, split=split, protocol=protocol, confidence=confidence)


def table_row(model: str, prompts: str, guards: bool, summary: dict, **extra) -> dict:
    """One row of the table from an evaluation's ``summary.json`` content."""
    s, ef, checks = summary["structures"], summary["ef"], summary.get("ef_checks", {})
    row = {"model": model, "prompts": prompts, "guards": guards}
    for name in STRUCTURES:
        row[f"dice_{name}"] = s.get(name, {}).get("dice")
        row[f"hd95_{name}"] = s.get(name, {}).get("hd95_mm")
    row.update({f"ef_{k}": ef.get(k) for k in ("n", "n_missing", "corr", "mae", "bias", "loa_low", "loa_high")})
    for key in ("outliers_10", "outliers_20", "outliers_10_unflagged", "outliers_20_unflagged", "flagged"):
        row[key] = checks.get(key)
    unflagged = summary.get("ef_unflagged", {})
    row.update({"ef_unflagged_n": unflagged.get("n"), "ef_unflagged_corr": unflagged.get("corr"),
                "ef_unflagged_mae": unflagged.get("mae")})  # fmt: skip
    row["implausible"] = summary.get("plausibility", {}).get("any")
    row.update(extra)
    return row


def render_table(result: dict) -> str:
    """``accuracy.md``: the rows of ``result`` as one Markdown table."""

    def f(value, digits=3):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "-"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    head = ("| model | prompts | guards | Dice LV / MYO / LA | HD95 mm LV / MYO / LA | EF r | EF MAE | "
            "EF bias [LoA] | > 10 pts (no flag) | > 20 pts (no flag) | flagged | implausible maps |")  # fmt: skip
    lines = [f"# camus-accuracy on {result['data']} ({result['split']})", "",
             f"Training budget {result['minutes']:g} min per recipe. Loose boxes: every side outward by U{{0..10}} px.",
             "", head, "|" + "---|" * 12]  # fmt: skip
    for r in result["rows"]:
        dice = " / ".join(f(r[f"dice_{n}"]) for n in STRUCTURES)
        hd = " / ".join(f(r[f"hd95_{n}"], 1) for n in STRUCTURES)
        bias = f"{f(r['ef_bias'], 1)} [{f(r['ef_loa_low'], 0)}, {f(r['ef_loa_high'], 0)}]"
        lines.append(f"| {r['model']} | {r['prompts']} | {'on' if r['guards'] else 'off'} | {dice} | {hd} | "
                     f"{f(r['ef_corr'])} | {f(r['ef_mae'], 1)} | {bias} | {r['outliers_10']} ({r['outliers_10_unflagged']}) | "
                     f"{r['outliers_20']} ({r['outliers_20_unflagged']}) | {r['flagged']} | {r['implausible']} |")  # fmt: skip
    trained = {k: v for k, v in result["models"].items() if v.get("train_seconds")}
    if trained:
        lines += ["", "Training wall time (with filling the embedding cache the first time): " + ", ".join(
            f"{k} {v['train_seconds'] / 60:.1f} min" for k, v in trained.items())]  # fmt: skip
    return "\n".join(lines) + "\n"


def _clean(value):
    """NaN / inf as ``null`` (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
