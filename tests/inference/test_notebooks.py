"""Every notebook runs top to bottom on a tiny model and synthetic data, and is committed without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medsam_echo.cli import main as cli

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart_scratch.yaml"


def execute(name: str, cwd: Path, env: dict[str, str], monkeypatch) -> nbformat.NotebookNode:
    """Run a notebook in a fresh kernel with ``env`` set; the kernel's working directory is ``cwd``."""
    for key, value in {**env, "OMP_NUM_THREADS": "1"}.items():  # tiny models: threads only add barriers
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    return client.execute()


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} has outputs"


def test_quickstart_trains_evaluates_and_shows_predictions(tmp_path, monkeypatch):
    env = {
        "MEDSAM_ECHO_WORKDIR": str(tmp_path / "work"),
        "MEDSAM_ECHO_CONFIG": str(QUICKSTART),
        "MEDSAM_ECHO_PATIENTS": "10",
        "MEDSAM_ECHO_IMAGE_SIZE": "80 64",
        "MEDSAM_ECHO_MAX_STEPS": "2",
        "MEDSAM_ECHO_OVERRIDES": "train.batch_size=2 train.eval_batch_size=4 optim.warmup_steps=0",
    }
    notebook = execute("01_quickstart.ipynb", tmp_path, env, monkeypatch)
    work = tmp_path / "work"
    assert (work / "run" / "model" / "trained.safetensors").is_file()
    for name in ("model", "box_ellipse"):
        assert len(list((work / f"pred_{name}").glob("*.nii.gz"))) == 4
        assert (work / f"eval_{name}" / "summary.json").is_file()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the prediction figure was drawn


def test_clinician_prompting_exports_masks_and_ef(tmp_path, monkeypatch, tiny_dir, camus_root):
    export = tmp_path / "export"
    env = {
        "MEDSAM_ECHO_MODEL": str(tiny_dir),
        "MEDSAM_ECHO_DATA": str(camus_root),
        "MEDSAM_ECHO_EXPORT": str(export),
    }
    notebook = execute("02_clinician_prompting.ipynb", tmp_path, env, monkeypatch)
    record = json.loads((export / "from_code" / "session.json").read_text())
    assert len(record["frames"]) == 4 and len(list((export / "from_code").glob("*.nii.gz"))) == 4
    assert set(record["clinical"]) == {"edv_ml", "esv_ml", "ef"}
    first = "".join(o.get("text", "") for o in notebook.cells[2].outputs)
    assert f"{camus_root} (patient0001: 2CH_ED, 2CH_ES, 4CH_ED, 4CH_ES" in first  # the study opened


def test_clinician_prompting_opens_the_bundled_patient_without_settings(tmp_path, monkeypatch, tiny_dir):
    """DATA = None: the synthetic patient that comes with the package, written once to the user's cache."""
    monkeypatch.delenv("MEDSAM_ECHO_DATA", raising=False)
    env = {"MEDSAM_ECHO_MODEL": str(tiny_dir), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    (tmp_path / "notebooks").mkdir()
    notebook = execute("02_clinician_prompting.ipynb", tmp_path / "notebooks", env, monkeypatch)
    first = "".join(o.get("text", "") for o in notebook.cells[2].outputs)
    assert "demo-camus-v1 (patient0001" in first and "true EF" in first
    assert (tmp_path / "cache" / "medsam-echo" / "demo-camus-v1" / "database_nifti").is_dir()
    assert len(list((tmp_path / "runs" / "prompting_export" / "from_code").glob("*.nii.gz"))) == 4


def test_benchmark_notebook_compares_two_evaluated_runs(tmp_path, monkeypatch, tiny_dir, camus_root):
    evaluated = {}
    for name, model in (("a", "baseline:ellipse"), ("b", str(tiny_dir))):
        data = ["--data", str(camus_root), "--split", "test"]
        assert (
            cli(
                [
                    "predict",
                    "--model",
                    model,
                    *data,
                    "--out",
                    str(tmp_path / f"pred_{name}"),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        assert (
            cli(["evaluate", "--pred", str(tmp_path / f"pred_{name}"), *data, "--out", str(tmp_path / name)])
            == 0
        )
        evaluated[name] = tmp_path / name
    env = {"MEDSAM_ECHO_EVAL_A": str(evaluated["a"]), "MEDSAM_ECHO_EVAL_B": str(evaluated["b"])}
    notebook = execute("03_benchmark_vs_nnunet.ipynb", tmp_path, env, monkeypatch)
    text = "".join(
        o.get("data", {}).get("text/markdown", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
    )
    assert "| lv_endo | SAM (fine-tuned) |" in text and "| nnU-Net |" in text
    figures = [
        o
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(figures) == 2  # EF and EDV Bland-Altman
