"""Resume is exact: a run stopped after any checkpoint and resumed ends with the uninterrupted run's
weights, bit for bit, also when the stop falls on or after an epoch boundary."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from medsam_echo.cli.train import main as train_main
from medsam_echo.training.run_folder import RunFolder
from tests.training.conftest import REPO, Killed, die_after_checkpoint, reset_accelerate_state, tiny_overrides

QUICKSTART = str(REPO / "configs" / "quickstart_scratch.yaml")
# 4 training images in batches of 2: 2 steps an epoch, 5 steps cross two epoch boundaries.
SHORT = ("data.max_train_samples=4", "train.max_steps=5", "train.epochs=100", "train.save_every_steps=1",
         "train.eval_every_epochs=2")


def _args(camus_root, out, *extra):
    return ["--config", QUICKSTART, *tiny_overrides(camus_root, out, *SHORT), *extra]


@pytest.fixture(scope="module")
def straight(camus_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    assert train_main(_args(camus_root, out)) == 0
    reset_accelerate_state()
    return out


@pytest.mark.parametrize("stop_after", [2, 3], ids=["epoch-boundary", "mid-epoch-1"])
def test_resume_after_any_checkpoint_is_bit_identical(straight, camus_root, tmp_path, monkeypatch, stop_after):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        die_after_checkpoint(patch, stop_after)
        with pytest.raises(Killed):
            train_main(_args(camus_root, out))
    assert not (out / "model").exists()
    reset_accelerate_state()
    assert train_main(_args(camus_root, out, "--resume")) == 0
    for which in ("model", "best"):
        expected = load_file(str(straight / which / "trained.safetensors"))
        resumed = load_file(str(out / which / "trained.safetensors"))
        assert resumed.keys() == expected.keys()
        for key in expected:
            torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=0, msg=f"{which}: {key}")
    # one validation record per validated step, as in the uninterrupted run
    assert RunFolder(out).metrics() == RunFolder(straight).metrics()
