"""Image embeddings computed once, stored on disk (fp16), read by every epoch of a frozen-encoder run.

When the image encoder is frozen and carries no adapter or LoRA, its output for an image never changes,
yet MedSAM-style loops recompute it every step: ~1 TFLOP per 1024 px image for ViT-B. Here each
embedding is computed once, split across processes, and stored under

    CACHE_DIR/<model key>/<image key>.safetensors

with ``model key`` = hash of the image-encoder weights + preprocessing profile, and ``image key`` = hash
of the image's source files (or pixels) + profile. A changed checkpoint, profile or image thus misses.
Each entry also holds the image's label map and unpadded size at the model input, so that an epoch
from the cache reads one small file per image and never decodes, hashes or normalises the image again.

Augmentations change the pixels and so the embeddings: the cache refuses datasets with augmentation
(``train.embedding_cache=auto`` turns itself off when ``data.augment.enabled`` is true).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from medsam_echo.atomic import atomic_write
from medsam_echo.data.cache import content_key
from medsam_echo.models.profile import PreprocessProfile

FORMAT = "embedding-fp16+labels/2"  # part of the model key: entries of an older layout miss


def model_key(vision_encoder: torch.nn.Module, profile: PreprocessProfile) -> str:
    """Hash of the encoder's weights (names, dtypes, bytes) and the profile."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(FORMAT.encode())
    digest.update(json.dumps(profile.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(vision_encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().to("cpu").reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
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

    def save(self, key: str, embedding: torch.Tensor, labels: torch.Tensor, valid_size: torch.Tensor) -> None:
        """Store, atomically, ``(C, h, w)`` as fp16 with the ``(S, S)`` label map and ``(2,)`` unpadded ``(h, w)``."""
        tensors = {"embedding": embedding.detach().to("cpu", torch.float16).contiguous(),
                   "labels": labels.to("cpu").contiguous(), "valid_size": valid_size.to("cpu", torch.int64)}
        atomic_write(self.path(key), lambda tmp: save_file(tensors, str(tmp)))

    def load(self, key: str) -> dict[str, torch.Tensor]:
        """``{"image_embeddings": (C, h, w) float32, "labels": (S, S), "valid_size": (2,) int64}``."""
        stored = load_file(str(self.path(key)))
        return {"image_embeddings": stored["embedding"].float(), "labels": stored["labels"],
                "valid_size": stored["valid_size"]}

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
            items = [preprocessed_set[i] for i in chunk]
            pixels = torch.stack([item["pixel_values"] for item in items]).to(device)
            for i, item, embedding in zip(chunk, items, encode(pixels), strict=True):
                self.save(keys[i], embedding, item["labels"], item["valid_size"])
        return len(todo)


class EmbeddedSet(Dataset):
    """Items of a preprocessed set with ``image_embeddings`` instead of ``pixel_values``, all from the cache.

    For training, ``preprocessed_set`` itself is not read per item (only its epoch is forwarded): the cache
    entry has everything a frozen-encoder step needs. With ``full_items=True`` (validation) the base item
    is read for its case id, original label and geometry, and only its ``pixel_values`` are replaced.
    """

    def __init__(self, preprocessed_set, cache: EmbeddingCache, keys: list[str], *, full_items: bool = False) -> None:
        self.base = preprocessed_set
        self.cache = cache
        self.keys = keys
        self.full_items = full_items

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        """``{"index", "labels" (S, S), "valid_size" (2,), "image_embeddings" (C, h, w)}`` (+ the base
        item's other fields with ``full_items``)."""
        cached = {"index": index, **self.cache.load(self.keys[index])}
        if not self.full_items:
            return cached
        item = {k: v for k, v in self.base[index].items() if k != "pixel_values"}
        return {**item, **cached}
