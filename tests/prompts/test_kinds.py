"""The prompt kinds a model was trained with: derived from a run's config, saved, read, and the click
behaviour they call for."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from medsam_echo.prompts.kinds import (
    BOX_EDIT,
    MASK_FEEDBACK,
    POINT_PROMPTS,
    PROMPT_KINDS_FILE,
    PromptKinds,
    click_behaviour_for,
    kinds_for_profile,
    kinds_from_config,
)
from medsam_echo.prompts.policies import PromptPolicyConfig
from medsam_echo.training.config import load_config


def _cfg(auto: str = "none", **prompts):
    cfg = load_config(None)
    cfg.prompts = PromptPolicyConfig(**prompts)
    cfg.auto.mode = auto
    return cfg


@pytest.mark.parametrize(
    "prompts, kinds",
    [
        ({"policy": "box"}, ("box",)),
        ({"policy": "points"}, ("points",)),
        ({"policy": "box_points"}, ("box", "points")),
        ({"policy": "mix", "mix": {"box": 1.0, "points": 0.0, "box_points": 0.0}}, ("box",)),
        ({"policy": "mix", "mix": {"box": 1.0, "points": 2.0}}, ("box", "points")),
        ({"policy": "iterative", "iterative_start": "box", "iterative_rounds": 7}, ("box", "points", "mask")),
        ({"policy": "iterative", "iterative_start": "box", "iterative_rounds": 0}, ("box",)),
        ({"policy": "iterative", "iterative_start": "points", "iterative_rounds": 2}, ("points", "mask")),
    ],
)
def test_kinds_follow_the_training_policy(prompts, kinds):
    assert kinds_from_config(_cfg(**prompts)).kinds == kinds


def test_learned_prompts_and_click_rounds_are_recorded():
    assert kinds_from_config(_cfg(auto="tokens", policy="box")).kinds == ("box", "learned")
    # the robust policy and click_rounds (a PromptPolicyConfig field to come): read with getattr
    robust = SimpleNamespace(prompts=SimpleNamespace(policy="robust", click_rounds=0), auto=SimpleNamespace(mode="none"))
    assert kinds_from_config(robust).kinds == ("box",)
    robust.prompts.click_rounds = 3
    clicked = kinds_from_config(robust)
    assert clicked.kinds == ("box", "points", "mask") and clicked.click_behaviour == MASK_FEEDBACK
    assert clicked.detail["click_rounds"] == 3
    box = SimpleNamespace(prompts=SimpleNamespace(policy="box", click_rounds=1), auto=SimpleNamespace(mode="tokens"))
    assert kinds_from_config(box).kinds == ("box", "points", "mask", "learned")


def test_the_click_behaviour_needs_both_the_point_and_the_mask_path():
    assert click_behaviour_for(["box"]) == BOX_EDIT
    assert click_behaviour_for(["box", "learned"]) == BOX_EDIT
    assert click_behaviour_for(["box", "points"]) == POINT_PROMPTS
    assert click_behaviour_for(["box", "points", "mask"]) == MASK_FEEDBACK
    assert kinds_for_profile("litemedsam").kinds == ("box",) == kinds_for_profile("medsam").kinds
    assert kinds_for_profile("sam").kinds == ("box", "points", "mask")


def test_a_kinds_file_round_trips_and_a_bad_one_is_named(tmp_path):
    kinds = kinds_from_config(_cfg(policy="iterative", iterative_start="mix", iterative_rounds=3))
    kinds.save(tmp_path)
    again = PromptKinds.load(tmp_path)
    assert again.kinds == kinds.kinds == ("box", "points", "mask")
    assert again.detail["policy"] == "iterative" and again.detail["iterative_rounds"] == 3
    assert PromptKinds.load(tmp_path / "nowhere") is None
    (tmp_path / PROMPT_KINDS_FILE).write_text('{"kinds": ["box", "scribble"]}')
    with pytest.raises(ValueError, match="prompt_kinds.json.*scribble"):
        PromptKinds.load(tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        PromptKinds(())
