"""Checkpoints are untrusted input: nothing runs, and every mismatch is reported by name."""

from __future__ import annotations

import pickle
import zipfile

import pytest
import torch

from medsam_echo.models.errors import CheckpointError
from medsam_echo.models.loader import load_sam


class _Payload:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_that_runs_code_when_unpickled_is_refused(tmp_path, original_sam):
    marker = tmp_path / "pwned"
    state = dict(original_sam.state_dict())
    state["evil"] = _Payload(str(marker))
    path = tmp_path / "sam_evil.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_sam(path)
    assert not marker.exists()


def test_plain_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps({"image_encoder.x": _Payload(str(marker))}))
    with pytest.raises(CheckpointError, match=str(path)):
        load_sam(path)
    assert not marker.exists()


def test_truncated_checkpoint_names_the_file(tmp_path, original_pth):
    data = open(original_pth, "rb").read()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_sam(path)
    assert zipfile.is_zipfile(original_pth)


def test_missing_unexpected_and_misshaped_keys_are_all_listed(tmp_path, original_sam):
    state = dict(original_sam.state_dict())
    del state["mask_decoder.iou_token.weight"]
    state["mask_decoder.extra_head.weight"] = torch.zeros(3)
    state["mask_decoder.output_upscaling.0.bias"] = torch.zeros(5)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_sam(path)
    message = str(info.value)
    assert "broken.pth" in message
    assert "1 missing: mask_decoder.iou_token.weight" in message
    assert "1 unexpected: mask_decoder.extra_head.weight" in message
    assert "mask_decoder.upscale_conv1.bias: checkpoint (5,) != model (8,)" in message


def test_not_a_sam_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        load_sam(path)


def test_missing_path_and_unreachable_hub_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(CheckpointError, match="no such file"):
        load_sam(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="wanglab/medsam-vit-base"):
        load_sam("wanglab/medsam-vit-base")
