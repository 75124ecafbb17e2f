"""A tiny synthetic CAMUS release and tiny-model configs for training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsam_echo.data.synthetic import make_camus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def camus_root(tmp_path_factory) -> Path:
    """10 synthetic patients (8 train / 1 val / 1 test), 2023 NIfTI layout, 80 x 64 px."""
    root = tmp_path_factory.mktemp("camus") / "synthetic"
    make_camus(root, patients=10, seed=0, size=(80, 64), frames=0)
    return root


def tiny_overrides(camus_root: Path, out: Path, *extra: str) -> list[str]:
    """Overrides turning the quickstart config into a seconds-long test run."""
    return [
        f"output_dir={out}", f"data.root={camus_root}", "data.synthetic_patients=0",
        "train.batch_size=2", "train.eval_batch_size=4", "train.log_every_steps=1",
        "optim.warmup_steps=0", *extra,
    ]


def reset_accelerate_state() -> None:
    """Forget Accelerate's process-wide singletons (between two in-process runs)."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerate keeps process-wide singletons; reset them around every in-process run."""
    yield
    reset_accelerate_state()


class Killed(BaseException):
    """Stands for kill -9: raised right after a checkpoint, nothing more is written."""


def die_after_checkpoint(monkeypatch, step: int) -> None:
    """Make the training loop raise :class:`Killed` right after it saved the checkpoint of ``step``."""
    from medsam_echo.training import loop

    real = loop.save_checkpoint

    def save_then_die(accelerator, output_dir, progress, **kwargs):
        path = real(accelerator, output_dir, progress, **kwargs)
        if progress.step == step:
            raise Killed
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
