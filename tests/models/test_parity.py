"""The loader's SamModel reproduces segment-anything itself on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsam_echo.data.transforms import preprocess
from medsam_echo.models.loader import load_sam

TOL = 1e-4


@pytest.fixture(scope="module")
def echo_like_image() -> np.ndarray:
    """Non-square uint8 RGB image whose longest side equals the model input (64 px): no resampling, so
    both pipelines see identical pixels and only the padding and normalisation are exercised."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 64, 3), dtype=np.uint8)


PROMPTS = {
    "box": dict(box=np.array([8.0, 5.0, 50.0, 33.0])),
    "points": dict(point_coords=np.array([[30.0, 20.0], [10.0, 35.0], [55.0, 4.0]]), point_labels=np.array([1, 0, 1])),
    "box+point": dict(box=np.array([8.0, 5.0, 50.0, 33.0]), point_coords=np.array([[30.0, 20.0]]), point_labels=np.array([1])),
}


def _ours(model, pre, prompt: dict, multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    kwargs = {}
    if "box" in prompt:
        kwargs["input_boxes"] = torch.tensor(pre.geometry.boxes_to_input(prompt["box"][None]), dtype=torch.float32)[None]
    if "point_coords" in prompt:
        coords = pre.geometry.points_to_input(prompt["point_coords"])
        kwargs["input_points"] = torch.tensor(coords, dtype=torch.float32)[None, None]
        kwargs["input_labels"] = torch.tensor(prompt["point_labels"])[None, None]
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(pre.pixel_values)[None], multimask_output=multimask, **kwargs)
    logits = pre.geometry.to_original(out.pred_masks[0, 0])
    return logits, out.iou_scores[0, 0]


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt_name", sorted(PROMPTS))
def test_original_checkpoint_matches_segment_anything_predictor(
    original_sam, original_pth, echo_like_image, prompt_name, multimask
):
    from segment_anything import SamPredictor

    predictor = SamPredictor(original_sam)
    predictor.set_image(echo_like_image)
    ref_masks, ref_iou, _ = predictor.predict(**PROMPTS[prompt_name], multimask_output=multimask, return_logits=True)

    loaded = load_sam(original_pth)
    assert loaded.profile.name == "sam"
    pre = preprocess(echo_like_image, loaded.profile)
    logits, iou = _ours(loaded.model, pre, PROMPTS[prompt_name], multimask)

    np.testing.assert_allclose(logits.numpy(), ref_masks, atol=TOL, rtol=0)
    np.testing.assert_allclose(iou.numpy(), ref_iou, atol=TOL, rtol=0)
    decided = np.abs(ref_masks) > TOL  # a logit within TOL of 0 may fall either side
    np.testing.assert_array_equal((logits.numpy() > 0)[decided], (ref_masks > 0)[decided])


@pytest.mark.parametrize("prompt_name", sorted(PROMPTS))
def test_medsam_training_checkpoint_matches_segment_anything_modules(
    original_sam, medsam_training_pth, echo_like_image, prompt_name
):
    """MedSAM runs segment-anything's modules on stretched [0, 1] inputs (no mean/std); so do we."""
    loaded = load_sam(medsam_training_pth)
    assert loaded.profile.name == "medsam"
    assert any("module." in note for note in loaded.notes)
    pre = preprocess(echo_like_image, loaded.profile)
    assert pre.pixel_values.min() == 0.0 and pre.pixel_values.max() == 1.0  # stretched, min-max, no padding

    prompt = PROMPTS[prompt_name]
    logits, iou = _ours(loaded.model, pre, prompt, multimask=False)

    pixels = torch.from_numpy(pre.pixel_values)[None]
    points = None
    if "point_coords" in prompt:
        coords = torch.tensor(pre.geometry.points_to_input(prompt["point_coords"]), dtype=torch.float32)
        points = (coords[None], torch.tensor(prompt["point_labels"])[None])
    boxes = None
    if "box" in prompt:
        boxes = torch.tensor(pre.geometry.boxes_to_input(prompt["box"][None]), dtype=torch.float32)
    with torch.no_grad():
        embeddings = original_sam.image_encoder(pixels)
        sparse, dense = original_sam.prompt_encoder(points=points, boxes=boxes, masks=None)
        low_res, ref_iou = original_sam.mask_decoder(
            image_embeddings=embeddings, image_pe=original_sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
        )
    ref_logits = pre.geometry.to_original(low_res[0])
    np.testing.assert_allclose(logits.numpy(), ref_logits.numpy(), atol=TOL, rtol=0)
    np.testing.assert_allclose(iou.numpy(), ref_iou[0].numpy(), atol=TOL, rtol=0)


def test_safetensors_in_original_layout_loads_identically(tmp_path, original_sam, original_pth):
    from safetensors.torch import save_file

    path = tmp_path / "sam_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in original_sam.state_dict().items()}, str(path))
    a, b = load_sam(original_pth).model, load_sam(path).model
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
