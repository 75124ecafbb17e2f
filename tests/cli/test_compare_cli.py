"""``medsam-echo compare``: two real evaluate folders side by side; the report's paired Dice difference
and 95 % t-interval match a computation by hand from the two metrics.csv files."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats

from medsam_echo.cli import main as cli
from medsam_echo.data.io import write_image
from medsam_echo.data.open import open_dataset
from medsam_echo.data.synthetic import make_camus


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Two evaluate folders on 3 synthetic patients: perfect predictions, and predictions whose LV cavity
    loses its top rows (a lower Dice)."""
    work = tmp_path_factory.mktemp("cmp")
    root = make_camus(work / "camus", patients=3, seed=3, size=(64, 52), frames=0)
    dataset = open_dataset(root, "all")
    for name, shrink in (("perfect", 0), ("shrunk", 3)):
        for sample in dataset:
            label = sample.label.copy()
            rows = np.flatnonzero((label == 1).any(axis=1))[:shrink]
            label[rows] = np.where(label[rows] == 1, 2, label[rows])
            write_image(work / f"pred_{name}" / f"{sample.case_id}.nii.gz", label, sample.spacing)
        assert cli(["evaluate", "--pred", str(work / f"pred_{name}"), "--data", str(root), "--split", "all",
                    "--out", str(work / f"eval_{name}")]) == 0
    return work


def _dice(path) -> dict[str, float]:
    with path.open() as stream:
        return {r["case"]: float(r["dice"]) for r in csv.DictReader(stream) if r["structure"] == "lv_endo"}


def test_compare_writes_report_with_hand_checked_paired_difference(evaluated, capsys):
    a, b = evaluated / "eval_perfect", evaluated / "eval_shrunk"
    out = evaluated / "report" / "compare.md"
    assert cli(["compare", str(a), str(b), "--names", "A", "B", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    da, db = _dice(a / "metrics.csv"), _dice(b / "metrics.csv")
    diffs = np.array([db[c] - da[c] for c in da])
    mean, sd, n = diffs.mean(), diffs.std(ddof=1), len(diffs)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    text = out.read_text()
    assert n == 12 and mean < 0
    assert f"| lv_endo | all | {n} | {mean:+.3f} | [{mean - half:+.3f}, {mean + half:+.3f}] |" in text
    assert "| lv_endo | A |" in text and "| EF (%) | B |" in text
    assert (out.parent / "compare_ef_bland_altman.png").is_file()
    assert "](compare_volumes_bland_altman.png)" in text


def test_compare_errors_name_the_folder_and_check_names(evaluated, tmp_path, capsys):
    a = evaluated / "eval_perfect"
    assert cli(["compare", str(a), str(tmp_path), "--out", str(tmp_path / "r.md")]) == 1
    assert str(tmp_path / "summary.json") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["compare", str(a), str(a), "--names", "only-one", "--out", str(tmp_path / "r.md")])


def test_compare_never_replaces_a_file_it_did_not_write(evaluated, capsys):
    """``--out`` on evaluate's own report.md: refused, nothing written; its own report is replaced."""
    a, b = evaluated / "eval_perfect", evaluated / "eval_shrunk"
    before = (a / "report.md").read_bytes()
    assert cli(["compare", str(a), str(b), "--out", str(a / "report.md")]) == 1
    assert "was not written by medsam-echo compare" in capsys.readouterr().err
    assert (a / "report.md").read_bytes() == before and not list(a.glob("report_*.png"))
    out = evaluated / "mine" / "r.md"
    assert cli(["compare", str(a), str(b), "--out", str(out)]) == 0
    assert cli(["compare", str(a), str(b), "--out", str(out)]) == 0  # an earlier comparison: replaced


def test_compare_out_a_folder_writes_inside_it_and_nothing_in_the_working_folder(evaluated, tmp_path, monkeypatch, capsys):
    a, b = evaluated / "eval_perfect", evaluated / "eval_shrunk"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    assert cli(["compare", str(a), str(b), "--out", "reports"]) == 0
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "comparison.md", "comparison_ef_bland_altman.png", "comparison_volumes_bland_altman.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]
    assert cli(["compare", str(a), str(b), "--out", "new/"]) == 0 and (tmp_path / "new" / "comparison.md").is_file()


def test_compare_says_when_runs_share_no_case_and_names_a_folder_that_is_no_evaluation(evaluated, tmp_path, capsys):
    import shutil

    a, b = evaluated / "eval_perfect", tmp_path / "other"
    shutil.copytree(evaluated / "eval_shrunk", b)
    for name in ("metrics.csv",):
        text = (b / name).read_text().replace("patient", "other")
        (b / name).write_text(text)
    assert cli(["compare", str(a), str(b), "--out", str(tmp_path / "r.md")]) == 0
    err = capsys.readouterr().err
    assert "have no case in common" in err and "no case in common" in (tmp_path / "r.md").read_text()
    (tmp_path / "not_eval").mkdir()
    (tmp_path / "not_eval" / "summary.json").write_text('{"complete": true}')
    assert cli(["compare", str(a), str(tmp_path / "not_eval"), "--out", str(tmp_path / "s.md")]) == 1
    err = capsys.readouterr().err
    assert "not the summary of `medsam-echo evaluate`" in err and "'structures'" not in err.split("(")[0]
