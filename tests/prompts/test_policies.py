"""Training prompt policies: config validation, tensor shapes for SamModel, iterative rounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsam_echo.data.sample import structure_mask
from medsam_echo.prompts.decode import decode_candidates, select_best
from medsam_echo.prompts.policies import (
    PromptPolicyConfig,
    iterative_round,
    make_prompt_batch,
    make_prompts,
    structure_masks,
)

STRUCTS = ("lv_endo", "myo", "la")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "lasso"}, "policy"),
        ({"jitter_mode": "gauss"}, "jitter_mode"),
        ({"jitter_mode": "relative", "jitter_amount": 0.7}, "relative"),
        ({"n_pos": -1}, "n_pos"),
        ({"policy": "points", "n_pos": 0, "n_neg": 0}, "n_pos \\+ n_neg"),
        ({"negatives": "everywhere"}, "negatives"),
        ({"mix": {"box": 1.0, "scribble": 1.0}}, "mix keys"),
        ({"mix": {"box": 0.0}}, "sum > 0"),
        ({"policy": "iterative", "iterative_start": "iterative"}, "iterative_start"),
        ({"iterative_rounds": -2}, "iterative_rounds"),
        ({"n_pos": "3"}, "n_pos must be int, got str"),
        ({"jitter_amount": True}, "jitter_amount must be float"),
    ],
)
def test_invalid_config_is_refused_with_the_field_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PromptPolicyConfig(**kwargs)


def test_unknown_config_keys_are_errors():
    with pytest.raises(ValueError, match="experiment.yaml: unknown prompt-policy keys \\['n_points'\\]"):
        PromptPolicyConfig.from_dict({"policy": "box", "n_points": 3}, source="experiment.yaml")
    assert PromptPolicyConfig.from_dict({"policy": "points", "n_pos": 2}).n_pos == 2


@pytest.mark.parametrize(
    ("policy", "keys"),
    [
        ("box", {"input_boxes"}),
        ("points", {"input_points", "input_labels"}),
        ("box_points", {"input_boxes", "input_points", "input_labels"}),
        ("iterative", {"input_boxes"}),
    ],
)
def test_batch_tensors_have_sammodel_shapes(label_map, policy, keys):
    config = PromptPolicyConfig(policy=policy, n_pos=2, n_neg=1)
    prompts, inputs = make_prompt_batch(
        [label_map, label_map[::-1].copy()], STRUCTS, np.random.default_rng(0), config
    )
    assert set(inputs) == keys and len(prompts) == 2
    if "input_boxes" in inputs:
        assert inputs["input_boxes"].shape == (2, 3, 4) and inputs["input_boxes"].dtype == torch.float32
    if "input_points" in inputs:
        assert inputs["input_points"].shape == (2, 3, 3, 2) and inputs["input_labels"].shape == (2, 3, 3)
        assert inputs["input_labels"][0, :, :2].eq(1).all() and inputs["input_labels"][0, :, 2].eq(0).all()


def test_points_land_on_their_structure_and_negatives_on_neighbours(label_map):
    config = PromptPolicyConfig(policy="points", n_pos=4, n_neg=4)
    prompts = make_prompts(label_map, STRUCTS, np.random.default_rng(3), config)
    for i, name in enumerate(STRUCTS):
        xy, labels = prompts.points[i], prompts.labels[i]
        values = label_map[xy[:, 1], xy[:, 0]]
        assert structure_mask(label_map, name)[xy[labels == 1, 1], xy[labels == 1, 0]].all()
        neg = values[labels == 0]
        assert (
            np.all(neg > 0)
            and not structure_mask(label_map, name)[xy[labels == 0, 1], xy[labels == 0, 0]].any()
        )


def test_mix_draws_one_kind_per_batch_and_all_kinds_over_batches(label_map):
    config = PromptPolicyConfig(policy="mix", mix={"box": 1.0, "points": 1.0})
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(20):
        prompts, _ = make_prompt_batch([label_map] * 3, STRUCTS, rng, config)
        assert len({p.kind for p in prompts}) == 1
        kinds.add(prompts[0].kind)
    assert kinds == {"box", "points"}


def test_absent_structure_is_named(label_map):
    no_atrium = np.where(label_map == 3, 0, label_map).astype(np.uint8)
    with pytest.raises(ValueError, match="'la' is absent"):
        make_prompts(no_atrium, STRUCTS, np.random.default_rng(0), PromptPolicyConfig())


def test_iterative_round_adds_error_clicks_and_feeds_back_the_mask(tiny_sam, label_map):
    """Two rounds through a tiny SamModel, labels already at model-input size (128 px)."""
    big = np.kron(label_map[:32, :32], np.ones((4, 4), np.uint8))  # 128 x 128
    config = PromptPolicyConfig(policy="iterative", iterative_start="box")
    rng = np.random.default_rng(0)
    prompts, inputs = make_prompt_batch([big, big], STRUCTS, rng, config)
    gt = np.stack([structure_masks(big, STRUCTS)] * 2)
    with torch.no_grad():
        embeddings = tiny_sam.get_image_embeddings(torch.randn(2, 3, 128, 128))
        logits, _ = select_best(*decode_candidates(tiny_sam, embeddings, inputs))
        for round_ in range(1, 3):
            preds = torch.nn.functional.interpolate(logits, size=(128, 128), mode="bilinear") > 0
            prompts, inputs = iterative_round(prompts, logits, gt, rng)
            assert inputs["input_points"].shape == (2, 3, round_, 2)
            assert inputs["input_masks"].shape == (2, 3, 1, 64, 64)
            for b in range(2):
                for i in range(3):
                    x, y = prompts[b].points[i, -1].astype(int)
                    label = prompts[b].labels[i, -1]
                    error = gt[b, i] & ~preds[b, i].numpy() if label == 1 else preds[b, i].numpy() & ~gt[b, i]
                    assert error[y, x] or np.array_equal(preds[b, i].numpy(), gt[b, i])
            logits, _ = select_best(*decode_candidates(tiny_sam, embeddings, inputs))
            assert logits.shape == (2, 3, 64, 64)


def test_iterative_round_checks_target_shapes(label_map):
    prompts = [make_prompts(label_map, STRUCTS, np.random.default_rng(0), PromptPolicyConfig())]
    with pytest.raises(ValueError, match="gt_masks must be"):
        iterative_round(
            prompts, torch.zeros(1, 3, 16, 16), np.zeros((1, 2, 56, 56), bool), np.random.default_rng(0)
        )
