"""Image embeddings computed once, stored on disk (fp16), read by every epoch of a frozen-encoder run.

When the image encoder is frozen and carries no adapter or LoRA, its output for an image never changes,
yet MedSAM-style loops recompute it every step: ~1 TFLOP per 1024 px image for ViT-B. Here each
embedding is computed once, split across processes, and stored under

    CACHE_DIR/<model key>/<image key>.safetensors

with ``model key`` = hash of the image-encoder weights + preprocessing profile, and ``image key`` = hash
of the image's source files (or pixels) + profile. A changed checkpoint, profile or image thus misses.

Augmentations change the pixels and so the embeddings: the cache refuses datasets with augmentation
(``train.embedding_cache=auto`` turns itself off when ``data.augment.enabled`` is true).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from medsam_echo.data.cache import content_key
from medsam_echo.models.profile import PreprocessProfile


def model_key(vision_encoder: torch.nn.Module, profile: PreprocessProfile) -> str:
    """Hash of the encoder's weights (names, dtypes, bytes) and the profile."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(profile.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(vision_encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def item_key(preprocessed_set, index: int) -> str:
    """Key of one image: its source files when the dataset names them, else its pixels."""
    dataset = preprocessed_set.dataset
    if hasattr(dataset, "source_files"):
        return content_key(dataset.source_files(index), preprocessed_set.profile)
    pixels = preprocessed_set[index]["pixel_values"].numpy()
    return hashlib.blake2b(pixels.tobytes(), digest_size=20).hexdigest()


class EmbeddingCache:
    """A folder of fp16 embeddings for one encoder + profile."""

    def __init__(self, directory: str | Path, key: str) -> None:
        self.directory = Path(directory) / key
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def save(self, key: str, embedding: torch.Tensor) -> None:
        """Store ``(C, h, w)`` as fp16, atomically."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        os.close(fd)
        try:
            save_file({"embedding": embedding.detach().to("cpu", torch.float16).contiguous()}, tmp)
            os.replace(tmp, self.path(key))
        finally:
            Path(tmp).unlink(missing_ok=True)

    def load(self, key: str) -> torch.Tensor:
        """``(C, h, w)`` float32."""
        return load_file(str(self.path(key)))["embedding"].float()

    @torch.no_grad()
    def fill(self, preprocessed_set, keys: list[str], encode, *, rank: int = 0, world: int = 1,
             batch_size: int = 4, device: str | torch.device = "cpu") -> int:
        """Compute the missing embeddings of this process's share (every ``world``-th image).

        Returns:
            How many embeddings this process computed.
        """
        todo = [i for i in range(rank, len(keys), world) if not self.path(keys[i]).is_file()]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            pixels = torch.stack([preprocessed_set[i]["pixel_values"] for i in chunk]).to(device)
            for i, embedding in zip(chunk, encode(pixels), strict=True):
                self.save(keys[i], embedding)
        return len(todo)


class EmbeddedSet(Dataset):
    """Items of a preprocessed set with ``image_embeddings`` (from the cache) instead of ``pixel_values``."""

    def __init__(self, preprocessed_set, cache: EmbeddingCache, keys: list[str]) -> None:
        self.base = preprocessed_set
        self.cache = cache
        self.keys = keys

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.base[index])
        del item["pixel_values"]
        item["image_embeddings"] = self.cache.load(self.keys[index])
        return item
