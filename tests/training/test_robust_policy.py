"""The ``robust`` prompt policy: boxes of real use, the automatic start's boxes, correction-click rounds."""

import numpy as np
import pytest
import torch

from medsam_echo.prompts.policies import BOX_KINDS, PromptPolicyConfig, make_prompts, robust_box
from medsam_echo.training.batches import make_robust_plan


def _label(size: int = 64) -> np.ndarray:
    label = np.zeros((size, size), np.uint8)
    label[10:40, 20:44] = 2
    label[14:40, 24:40] = 1
    label[40:56, 24:40] = 3
    return label


@pytest.mark.parametrize("kind", BOX_KINDS)
def test_every_box_kind_stays_a_valid_box_inside_the_image(kind):
    cfg = PromptPolicyConfig(policy="robust")
    tight = np.array([24, 14, 39, 39])
    for seed in range(50):
        box = robust_box(tight, kind, np.random.default_rng(seed), cfg, (64, 64))
        assert box.shape == (4,) and box[0] <= box[2] and box[1] <= box[3]
        assert box.min() >= 0 and box[2] <= 63 and box[3] <= 63


def test_loose_boxes_grow_with_the_box_size_and_shifted_ones_move():
    cfg = PromptPolicyConfig(policy="robust", loose_fraction=0.3, shift_fraction=0.15)
    small, large = np.array([100, 100, 119, 119]), np.array([100, 100, 199, 199])
    grow = [robust_box(b, "loose", np.random.default_rng(s), cfg, (400, 400)) for s in range(40) for b in (small, large)]
    small_growth = np.mean([g[2] - g[0] - 19 for g in grow[0::2]])
    large_growth = np.mean([g[2] - g[0] - 99 for g in grow[1::2]])
    assert large_growth > 3 * small_growth > 0  # relative to the box, not px
    shifted = [robust_box(large, "shifted", np.random.default_rng(s), cfg, (400, 400)) for s in range(40)]
    centres = np.array([(b[0] + b[2]) / 2 for b in shifted])
    assert centres.std() > 5 and any(b[2] - b[0] < 99 for b in shifted)  # moved, and sometimes too small


def test_unknown_box_kinds_and_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="box_mix keys"):
        PromptPolicyConfig(policy="robust", box_mix={"huge": 1.0})
    with pytest.raises(ValueError, match="click_free_rounds needs click_rounds"):
        PromptPolicyConfig(policy="robust", click_free_rounds=2)


def test_the_plan_takes_auto_boxes_from_the_learned_masks_and_clicks_in_the_error_region():
    from types import SimpleNamespace

    cfg = SimpleNamespace(prompts=PromptPolicyConfig(policy="robust", box_mix={"auto": 1.0}, click_rounds=2),
                          train=SimpleNamespace(seed=0), data=SimpleNamespace(structures=["lv_endo", "la"]))
    labels = np.stack([_label(), _label()])
    plan = make_robust_plan(cfg, labels, [0, 1], 0, 0, np.array([[64, 64], [64, 64]]), "cpu")
    assert plan.auto.all() and plan.inputs["input_boxes"].shape == (2, 2, 4)
    learned = torch.full((2, 2, 64, 64), -10.0)
    learned[:, :, 5:20, 5:30] = 10.0  # the learned masks: one rectangle per structure
    inputs = plan.with_auto_boxes(learned)
    assert inputs["input_boxes"][0, 0].tolist() == [5.0, 5.0, 29.0, 19.0]
    clicked = plan.click(learned)
    assert clicked["input_points"].shape == (2, 2, 1, 2) and clicked["input_masks"].shape == (2, 2, 1, 64, 64)
    x, y = clicked["input_points"][0, 0, 0].tolist()
    wrong = (learned[0, 0] > 0).numpy() != (labels[0] == 1)
    assert wrong[int(y), int(x)]  # the click lies in an error region


def test_make_prompts_with_the_robust_policy_draws_one_kind_per_structure():
    cfg = PromptPolicyConfig(policy="robust")
    prompts = make_prompts(_label(), ["lv_endo", "myo", "la"], np.random.default_rng(0), cfg)
    assert prompts.boxes.shape == (3, 4) and prompts.points is None


def test_a_robust_run_trains_clicks_reports_every_prompt_kind_and_saves_its_kinds(camus_root, tmp_path):
    import json
    from pathlib import Path

    from medsam_echo.cli.train import main as train_main
    from tests.training.conftest import tiny_overrides

    config = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart_scratch.yaml")
    out = tmp_path / "run"
    args = ["--config", config, *tiny_overrides(camus_root, out, "train.max_steps=2"), "prompts.policy=robust",
            "prompts.click_rounds=1", "prompts.click_free_rounds=1", "auto.mode=tokens", "train.eval_loose_px=3",
            "train.select_metric=robust"]
    assert train_main(args) == 0
    record = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert {"val_dice", "val_loose_dice", "val_auto_dice", "val_robust_dice"} <= set(record)
    kinds = json.loads((out / "model" / "prompt_kinds.json").read_text())
    assert {"box", "points", "mask"} <= set(kinds["kinds"])
