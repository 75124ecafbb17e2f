"""Training with learned prompts (``auto.mode: tokens``): the tokens train, are checkpointed, resume exactly
and are saved with the model."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from medsam_echo.cli.train import main as train_main
from medsam_echo.prompts.learned import LEARNED_PROMPTS_FILE, load_learned_prompts
from medsam_echo.training.run_folder import RunFolder
from tests.training.conftest import REPO, Killed, die_after_checkpoint, reset_accelerate_state, tiny_overrides

QUICKSTART = str(REPO / "configs" / "quickstart_scratch.yaml")
SHORT = ("data.max_train_samples=4", "train.max_steps=3", "train.epochs=100", "train.save_every_steps=1",
         "auto.mode=tokens")


def _args(camus_root, out, *extra):
    return ["--config", QUICKSTART, *tiny_overrides(camus_root, out, *SHORT), *extra]


def test_learned_prompts_train_resume_exactly_and_are_saved_with_the_model(camus_root, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    assert train_main(_args(camus_root, straight)) == 0
    reset_accelerate_state()
    learned = load_learned_prompts(straight / "model")
    assert learned.structures == ("lv_endo", "myo", "la") and learned.tokens.shape == (3, 2, 64)
    checkpoint = next((straight / "checkpoints").glob("step-*"))
    assert "learned.tokens" in load_file(str(checkpoint / "model.safetensors"))  # resumable
    record = RunFolder(straight).metrics()[-1]
    assert 0 <= record["val_auto_dice"] <= 1

    out = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        die_after_checkpoint(patch, 2)
        with pytest.raises(Killed):
            train_main(_args(camus_root, out))
    reset_accelerate_state()
    assert train_main(_args(camus_root, out, "--resume")) == 0
    resumed = load_file(str(out / "model" / LEARNED_PROMPTS_FILE))
    expected = load_file(str(straight / "model" / LEARNED_PROMPTS_FILE))
    torch.testing.assert_close(resumed["tokens"], expected["tokens"], rtol=0, atol=0)


def test_the_tokens_start_from_the_mean_training_box_and_move(camus_root, tmp_path):
    from medsam_echo.prompts.auto import ViewPrior
    from medsam_echo.training.config import load_config
    from medsam_echo.training.model import build_training_model, make_learned_prompts

    cfg = load_config(QUICKSTART, tiny_overrides(camus_root, tmp_path / "unused", "auto.mode=tokens"))
    built = build_training_model(cfg.model.source, cfg.method, profile=None, seed=0)
    built.view_prior = ViewPrior({"2CH": {"lv_endo": [0.2, 0.1, 0.6, 0.5]}, "4CH": {"lv_endo": [0.4, 0.1, 0.8, 0.5]}})
    start = make_learned_prompts(cfg.auto, ["lv_endo"], built, (64, 128))  # (H, W): resized to 64 x 128 px at 128
    box = torch.tensor([[[0.3 * 128, 0.1 * 64, 0.7 * 128, 0.5 * 64]]])  # the mean box over both views, model px
    sparse, _ = built.base_model.prompt_encoder(input_points=None, input_labels=None, input_boxes=box, input_masks=None)
    torch.testing.assert_close(start.tokens.detach(), sparse[0], rtol=1e-6, atol=1e-6)
    cfg.auto.mode = "none"
    assert make_learned_prompts(cfg.auto, ["lv_endo"], built, (64, 128)) is None
