"""``bench --preset camus-accuracy``: one command trains the recipe, predicts tight / loose / no prompt with and
without guards in one pass, evaluates each and writes the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medsam_echo.bench.accuracy import render_table, table_row
from medsam_echo.cli import main as cli
from medsam_echo.data.io import read_image
from medsam_echo.evaluation.guards import apply_guards

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_recipe(tmp_path) -> Path:
    """The quickstart recipe (robust prompts, learned tokens) on the tiny random model, two steps."""
    config = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())
    config["model"]["source"] = "scratch:tiny"
    config["data"]["synthetic_patients"] = 0
    config["train"].update({"max_steps": 2, "batch_size": 2, "eval_batch_size": 4, "eval_at_start": False})
    path = tmp_path / "tiny_auto.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_one_command_gives_the_table_of_every_prompt_kind_with_and_without_guards(tiny_recipe, camus_root,
                                                                                    tmp_path, single_thread,
                                                                                    capsys):
    out = tmp_path / "acc"
    argv = ["bench", "--preset", "camus-accuracy", "--data", str(camus_root), "--split", "val",
            "--minutes", "1", "--recipe", str(tiny_recipe), "--out", str(out)]
    assert cli(argv) == 0
    result = json.loads((out / "accuracy.json").read_text())
    rows = {(r["model"], r["prompts"], r["guards"]) for r in result["rows"]}
    assert rows == {("tiny_auto", p, g) for p in ("tight", "loose", "auto") for g in (True, False)}
    for row in result["rows"]:
        assert 0 <= row["dice_lv_endo"] <= 1
        assert row["ef_n"] + row["ef_n_missing"] == 1  # the one validation patient: an EF, or counted as missing
        assert {"outliers_10", "outliers_20", "flagged", "implausible", "hd95_la"} <= set(row)
    # the shared cache and the run live in the output folder; each folder was evaluated as `evaluate` does
    assert (out / "runs" / "tiny_auto" / "best" / "learned_prompts.safetensors").is_file()
    assert json.loads((out / "pred" / "tiny_auto" / "loose" / "predict.json").read_text())["jitter_px"] == 10.0
    assert json.loads((out / "pred" / "tiny_auto" / "auto-noguards" / "predict.json").read_text())["guards"] is False
    assert (out / "eval" / "tiny_auto" / "auto" / "summary.json").is_file()
    for kind in ("tight", "auto"):  # the guarded and raw folders differ only by the guards
        for raw_path in sorted((out / "pred" / "tiny_auto" / f"{kind}-noguards").glob("*.nii.gz")):
            guarded = read_image(out / "pred" / "tiny_auto" / kind / raw_path.name)[0]
            assert (apply_guards(read_image(raw_path)[0]) == guarded).all()
    table = (out / "accuracy.md").read_text()
    assert "| tiny_auto | loose | off |" in table and "EF bias [LoA]" in table
    # a second call reuses the trained model instead of training again
    capsys.readouterr()
    assert cli(argv) == 0
    assert "already holds a trained model; reusing it" in capsys.readouterr().err


def test_the_preset_refuses_missing_data_and_foreign_flags(tmp_path, capsys):
    assert cli(["bench", "--preset", "camus-accuracy", "--out", str(tmp_path / "x")]) == 2
    assert "--data ROOT is required by encoder-agreement and camus-accuracy" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["bench", "--preset", "camus-accuracy", "--data", str(tmp_path)])  # no --out folder
    assert cli(["bench", "--preset", "cpu-tiny", "--minutes", "3", "--out", str(tmp_path / "y.json")]) == 2
    assert "--minutes, --run and --recipe go with --preset camus-accuracy" in capsys.readouterr().err


def test_the_table_shows_missing_values_as_dashes():
    summary = {"structures": {"lv_endo": {"dice": 0.9, "hd95_mm": 4.0}}, "ef": {"n": 0, "corr": float("nan")},
               "ef_checks": {"outliers_10": 0, "outliers_20": 0, "outliers_10_unflagged": 0,
                             "outliers_20_unflagged": 0, "flagged": 0}, "plausibility": {"any": 1}}
    row = table_row("m", "auto", True, summary)
    text = render_table({"data": "d", "split": "val", "minutes": 5.0, "models": {}, "rows": [row]})
    assert "| m | auto | on | 0.900 / - / - | 4.0 / - / - | - |" in text
