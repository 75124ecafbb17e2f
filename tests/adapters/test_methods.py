"""One table of fine-tuning methods through the same checks (peft's test style).

For every method and both image-encoder families (ViT, TinyViT as in LiteMedSAM): exactly the intended
parameters train; one optimizer step changes only them (and no BatchNorm statistic); bypassing the added
layers gives the base output; save -> load gives the same outputs; and for LoRA, merged equals unmerged.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import pytest
import torch

from medsam_echo.adapters.bottleneck import bottleneck_adapters
from medsam_echo.adapters.freezing import component_of, is_added, parameter_summary
from medsam_echo.adapters.methods import METHODS, MethodConfig, apply_method
from medsam_echo.adapters.persist import load_trained, merge_lora, save_trained
from medsam_echo.models.convert import save_sam
from medsam_echo.models.profile import get_profile
from medsam_echo.models.registry import build_sam

CASES = {
    "decoder_only": MethodConfig(name="decoder_only"),
    "medsam_full": MethodConfig(name="medsam_full"),
    "lora_encoder": MethodConfig(name="lora_encoder", lora_rank=2, lora_alpha=4.0),
    "lora_encoder_dora": MethodConfig(name="lora_encoder", lora_rank=2, use_dora=True, lora_targets=["qkv", "lin1"]),
    "lora_encoder_decoder": MethodConfig(name="lora_encoder_decoder", lora_rank=2),
    "adapter_encoder": MethodConfig(name="adapter_encoder", adapter_ratio=0.25),
    "decoder_only+prompt": MethodConfig(name="decoder_only", train_prompt_encoder=True),
}
# case -> (components whose base weights train, whether added layers exist)
EXPECTED = {
    "decoder_only": ({"mask_decoder"}, False),
    "medsam_full": ({"image_encoder", "mask_decoder"}, False),
    "lora_encoder": ({"mask_decoder"}, True),
    "lora_encoder_dora": ({"mask_decoder"}, True),
    "lora_encoder_decoder": (set(), True),
    "adapter_encoder": ({"mask_decoder"}, True),
    "decoder_only+prompt": ({"prompt_encoder", "mask_decoder"}, False),
}
# architecture -> (input px, profile): a ViT and a TinyViT (LiteMedSAM's encoder family), both tiny.
ARCHS = {"tiny": (128, "sam"), "tinyvit_tiny": (64, "litemedsam")}
BOX = torch.tensor([[[10.0, 12.0, 100.0, 110.0]]]) / 128


def _inputs(size: int) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def _forward(model) -> tuple[torch.Tensor, torch.Tensor]:
    size = model.config.vision_config.image_size
    out = model(pixel_values=_inputs(size), input_boxes=(BOX * size).expand(2, 1, 4), multimask_output=True)
    return out.pred_masks, out.iou_scores


def _train_step(model) -> None:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    masks, iou = _forward(model)
    (masks.sigmoid().mean() + iou.mean()).backward()
    optimizer.step()


@pytest.fixture(params=sorted(ARCHS))
def arch(request):
    return request.param


@pytest.fixture(params=sorted(CASES))
def case(request, arch):
    model = apply_method(build_sam(arch, seed=0).eval(), CASES[request.param])
    return request.param, model


def test_exactly_the_intended_parameters_train(case):
    name, model = case
    components, has_added = EXPECTED[name]
    for pname, param in model.named_parameters():
        want = is_added(pname) or component_of(pname) in components
        assert param.requires_grad == want, pname
    summary = parameter_summary(model)
    assert (summary["adapters"]["total"] > 0) == has_added
    assert summary["total"]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_one_step_changes_only_trainable_parameters(case):
    _, model = case
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    _train_step(model)
    assert all(torch.equal(buffers[n], b) for n, b in model.named_buffers())  # BatchNorm statistics stay
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with_gradient = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert changed <= trainable  # frozen weights never move
    assert with_gradient <= changed  # every trainable weight that got a gradient moved
    assert with_gradient  # and something did



@contextmanager
def _bypassed(model):
    """Inside the block, LoRA (peft's ``disable_adapter``) and bottleneck adapters (``enabled``) are off."""
    from peft import PeftModel

    adapters = bottleneck_adapters(model)
    with model.disable_adapter() if isinstance(model, PeftModel) else nullcontext():
        for adapter in adapters:
            adapter.enabled = False
        try:
            yield
        finally:
            for adapter in adapters:
                adapter.enabled = True


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if EXPECTED[n][1]])
def test_bypassing_added_layers_gives_the_base_output(name, arch):
    """Only the added layers train here (base weights frozen by override), so after a step the tuned
    output differs from the base model and the bypassed output equals it."""
    from dataclasses import replace

    method = replace(CASES[name], train_image_encoder=False, train_prompt_encoder=False, train_mask_decoder=False)
    model = apply_method(build_sam(arch, seed=0).eval(), method)
    with torch.no_grad():
        expected = _forward(build_sam(arch, seed=0).eval())
    _train_step(model)
    model.eval()
    with torch.no_grad():
        tuned = _forward(model)
        with _bypassed(model):
            bypassed = _forward(model)
        after = _forward(model)
    assert (tuned[0] - expected[0]).abs().max() > 1e-6
    torch.testing.assert_close(bypassed, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(after, tuned, rtol=0, atol=0)  # the bypass is undone on exit


def test_save_load_gives_the_same_outputs(case, arch, tmp_path):
    name, model = case
    size, profile_name = ARCHS[arch]
    profile = get_profile(profile_name, size)
    base_dir = save_sam(build_sam(arch, seed=0), profile, tmp_path / "base")
    _train_step(model)
    model.eval()
    save_trained(model, CASES[name], tmp_path / "trained", base=str(base_dir), profile=profile)
    reloaded, loaded = load_trained(tmp_path / "trained")
    assert loaded.profile == profile
    assert type(reloaded.get_base_model() if hasattr(reloaded, "get_base_model") else reloaded) is type(
        model.get_base_model() if hasattr(model, "get_base_model") else model
    )
    with torch.no_grad():
        torch.testing.assert_close(_forward(reloaded), _forward(model), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if "lora" in n])
def test_merged_lora_equals_unmerged(name, arch):
    model = apply_method(build_sam(arch, seed=0).eval(), CASES[name])
    _train_step(model)
    model.eval()
    with torch.no_grad():
        unmerged = _forward(model)
        merged_model = merge_lora(model)
        merged = _forward(merged_model)
    assert type(merged_model) is type(build_sam(arch, device="meta"))
    assert not any(is_added(n) for n, _ in merged_model.named_parameters())
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)


def test_adapters_cannot_be_merged():
    model = apply_method(build_sam("tiny").eval(), CASES["adapter_encoder"])
    with pytest.raises(ValueError, match="cannot be merged"):
        merge_lora(model)


def test_unknown_method_and_keys_are_named():
    with pytest.raises(ValueError, match="unknown method 'lora'"):
        MethodConfig(name="lora")
    with pytest.raises(ValueError, match="lora_targets"):
        MethodConfig(name="lora_encoder", lora_targets=["q"])
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['method.rank'\]"):
        MethodConfig.from_dict({"name": "lora_encoder", "rank": 8})


@pytest.mark.parametrize("targets", [["qkv"], ["qkv", "proj", "lin1", "lin2"]])
def test_lora_reaches_every_tinyvit_attention_block(targets):
    """LoRA on TinyViT wraps the chosen linear layers of each attention block (none in the MBConv stage)."""
    model = apply_method(build_sam("tinyvit_tiny").eval(), MethodConfig(name="lora_encoder", lora_targets=targets))
    wrapped = {n.split("base_model.model.")[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")}
    blocks = [n for n, m in build_sam("tinyvit_tiny", device="meta").named_modules() if type(m).__name__ == "TinyViTBlock"]
    layers = {"qkv": "attn.qkv", "proj": "attn.proj", "lin1": "mlp.fc1", "lin2": "mlp.fc2"}
    assert wrapped == {f"{b}.{layers[t]}" for b in blocks for t in targets}
    assert len(blocks) == 4 and not any(n.startswith("vision_encoder.layers.0.") for n in wrapped)


def test_every_registered_method_is_covered():
    assert {c.name for c in CASES.values()} == set(METHODS)
