"""Tiny models and synthetic data for the inference tests: nothing downloaded, nothing trained for long."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from medsam_echo.adapters.methods import MethodConfig, apply_method
from medsam_echo.adapters.persist import save_trained
from medsam_echo.models.profile import get_profile
from medsam_echo.models.registry import build_sam


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, tiny_dir: Path, camus_root: Path) -> Path:
    """What a LoRA training run leaves: RUN/model (trained weights + method + base) and RUN/config.yaml.

    The LoRA B matrices are set to non-zero values so that merging them changes the model.
    """
    run = tmp_path_factory.mktemp("run") / "lora_run"
    method = MethodConfig(name="lora_encoder")
    model = apply_method(build_sam("tiny", seed=0), method)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    save_trained(model, method, run / "model", base=str(tiny_dir), profile=get_profile("sam", 128))
    config = {"data": {"root": str(camus_root), "structures": ["lv_endo", "myo", "la"]}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


@pytest.fixture
def echo_image() -> np.ndarray:
    """A 90 x 70 (H x W) uint8 frame with a bright ellipse: non-square, like real echo frames."""
    yy, xx = np.mgrid[:90, :70]
    inside = ((xx - 35) / 20.0) ** 2 + ((yy - 40) / 30.0) ** 2 <= 1
    rng = np.random.default_rng(0)
    return np.clip(60 + 120 * inside + rng.normal(0, 10, (90, 70)), 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(single_thread):
    """Every inference test runs single-threaded (see ``single_thread``)."""
    yield
