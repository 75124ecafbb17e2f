"""Learned prompts: a box's worth of tokens per structure, decoded without any prompt."""

from __future__ import annotations

import pytest
import torch

from medsam_echo.models.registry import build_sam
from medsam_echo.prompts.decode import decode_candidates
from medsam_echo.prompts.learned import (
    LEARNED_PROMPTS_FILE,
    LearnedPrompts,
    decode_learned,
    load_learned_prompts,
)


@pytest.fixture(scope="module")
def sam():
    return build_sam("tiny", seed=0).eval()


def _width(sam) -> int:
    return sam.config.mask_decoder_config.hidden_size  # 64 for the tiny model, 256 for SAM


def _embeddings(sam, batch: int) -> torch.Tensor:
    side = sam.config.prompt_encoder_config.image_embedding_size
    return torch.randn(batch, _width(sam), side, side, generator=torch.Generator().manual_seed(0))


def test_tokens_started_from_a_box_decode_exactly_as_that_box(sam):
    boxes = torch.tensor([[20.0, 16, 80, 70], [30, 60, 90, 120]])
    learned = LearnedPrompts(["lv_endo", "la"], hidden_size=_width(sam))
    learned.init_from_boxes(sam, boxes)
    embeddings = _embeddings(sam, 2)
    with torch.no_grad():
        logits, iou = decode_learned(sam, learned, embeddings, ["lv_endo", "la"])
        expected, expected_iou = decode_candidates(sam, embeddings, {"input_boxes": boxes[None].repeat(2, 1, 1)})
    side = 4 * embeddings.shape[-1]
    assert logits.shape == (2, 2, 1, side, side) and iou.shape == (2, 2, 1)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(iou, expected_iou, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # any order and subset of the learned structures
        only_la, _ = decode_learned(sam, learned, embeddings, ["la"])
    torch.testing.assert_close(only_la[:, 0], logits[:, 1], atol=1e-5, rtol=1e-5)


def test_gradients_reach_the_tokens(sam):
    learned = LearnedPrompts(["lv_endo"], n_tokens=3, hidden_size=_width(sam))
    learned.init_from_boxes(sam, torch.tensor([[10.0, 10, 60, 60]]))
    assert learned.tokens[0, 2].abs().max() < 0.1  # the third token starts as small noise
    logits, _ = decode_learned(sam, learned, _embeddings(sam, 1), ["lv_endo"])
    logits.mean().backward()
    assert learned.tokens.grad is not None and learned.tokens.grad.abs().sum() > 0


def test_save_and_load_round_trip_and_errors_name_the_file(tmp_path):
    learned = LearnedPrompts(["lv_endo", "myo", "la"])
    learned.tokens.data.normal_()
    path = learned.save(tmp_path)
    assert path.name == LEARNED_PROMPTS_FILE
    loaded = load_learned_prompts(tmp_path)
    assert loaded.structures == ("lv_endo", "myo", "la")
    torch.testing.assert_close(loaded.tokens, learned.tokens, rtol=0, atol=0)
    assert load_learned_prompts(tmp_path / "nowhere") is None  # a model without the automatic mode
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=f"{LEARNED_PROMPTS_FILE}: unreadable learned prompts"):
        load_learned_prompts(tmp_path)
    with pytest.raises(KeyError, match="no learned prompts for \\['lv_epi'\\]"):
        learned(["lv_epi"])
    with pytest.raises(ValueError, match="distinct structures"):
        LearnedPrompts(["lv_endo", "lv_endo"])
