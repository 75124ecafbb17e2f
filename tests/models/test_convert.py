"""convert-checkpoint: transformers directories that load anywhere, and the original layout back."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from transformers import SamModel

from medsam_echo.cli import main as cli_main
from medsam_echo.models.convert import save_sam
from medsam_echo.models.loader import load_sam
from medsam_echo.models.registry import build_sam


def _outputs(model: SamModel) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    size = model.config.vision_config.image_size
    pixels = torch.randn(1, 3, size, size)
    with torch.no_grad():
        out = model(pixel_values=pixels, input_boxes=torch.tensor([[[4.0, 6.0, 40.0, 30.0]]]))
    return out.pred_masks, out.iou_scores


def test_convert_writes_a_directory_transformers_loads(tmp_path, original_pth):
    out = tmp_path / "hf"
    assert cli_main(["convert-checkpoint", original_pth, str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert json.loads((out / "preprocessing.json").read_text())["name"] == "sam"
    reference = load_sam(original_pth).model
    converted = SamModel.from_pretrained(out).eval()
    for a, b in zip(_outputs(reference), _outputs(converted), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_profile_is_kept_and_can_be_overridden(tmp_path, original_pth, medsam_training_pth):
    assert cli_main(["convert-checkpoint", medsam_training_pth, str(tmp_path / "medsam")]) == 0
    loaded = load_sam(tmp_path / "medsam")
    assert loaded.profile.name == "medsam" and "saved with the model" in loaded.profile_reason
    assert cli_main(["convert-checkpoint", original_pth, str(tmp_path / "forced"), "--profile", "medsam"]) == 0
    assert load_sam(tmp_path / "forced").profile.name == "medsam"
    assert load_sam(tmp_path / "forced", profile="sam").profile.name == "sam"


def test_round_trip_original_hf_original_is_identical(tmp_path, original_sam, original_pth):
    back = tmp_path / "back.pth"
    assert cli_main(["convert-checkpoint", original_pth, str(tmp_path / "hf"), "--to-original", str(back)]) == 0
    source = original_sam.state_dict()
    restored = torch.load(back, weights_only=True)
    assert set(restored) == set(source)
    for key, tensor in source.items():
        assert torch.equal(restored[key], tensor), key


def test_exported_original_loads_in_segment_anything(tmp_path, original_sam, original_pth):
    from tests.models.conftest import build_original_tiny

    back = tmp_path / "back.pth"
    assert cli_main(["convert-checkpoint", original_pth, str(tmp_path / "hf"), "--to-original", str(back)]) == 0
    fresh = build_original_tiny(seed=1)
    fresh.load_state_dict(torch.load(back, weights_only=True), strict=True)
    for (name, a), b in zip(fresh.state_dict().items(), original_sam.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_save_sam_replaces_an_existing_directory_atomically(tmp_path):
    from medsam_echo.models.profile import get_profile

    out = tmp_path / "model"
    save_sam(build_sam("tiny", seed=0), get_profile("sam", 128), out)
    save_sam(build_sam("tiny", seed=1), get_profile("medsam", 128), out)
    assert load_sam(out).profile.name == "medsam"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary leftovers


def test_console_entry_points_list_subcommands():
    result = subprocess.run([sys.executable, "-m", "medsam_echo", "--help"], capture_output=True, text=True, check=True)
    assert "convert-checkpoint" in result.stdout and "inspect" in result.stdout


def test_inspect_reports_architecture_and_profile(capsys, medsam_training_pth):
    assert cli_main(["inspect", medsam_training_pth, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profile"]["name"] == "medsam"
    assert info["image_encoder"]["depth"] == 3 and info["image_encoder"]["global_attn_indexes"] == [1]
    assert info["parameters"]["total"]["total"] > 0


def test_hub_id_resolves_from_the_local_cache_with_its_profile(tmp_path, monkeypatch, medsam_training_pth):
    """`wanglab/medsam-vit-base` as users pass it: read offline from the hub cache, MedSAM profile."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--wanglab--medsam-vit-base" / "snapshots" / ("0" * 40)
    model = load_sam(medsam_training_pth).model
    model.save_pretrained(snapshot, safe_serialization=True)  # no preprocessing.json: as on the hub
    (cache / "models--wanglab--medsam-vit-base" / "refs").mkdir(parents=True)
    (cache / "models--wanglab--medsam-vit-base" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    loaded = load_sam("wanglab/medsam-vit-base")
    assert loaded.profile.name == "medsam" and "known hub model" in loaded.profile_reason
    for a, b in zip(_outputs(model), _outputs(loaded.model), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
