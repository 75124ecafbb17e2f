"""From an echo dataset to training batches: preprocessing, seeded augmentation, collation.

Each item is one image at the model's input resolution with its label map. Prompts are *not* made
here: the loop makes them for the whole batch (one prompt kind per batch, as ``SamModel`` requires),
from the label maps, with a generator seeded by (seed, epoch, step).

Augmentation draws from ``np.random.default_rng([seed, epoch, index])``, so an item is the same in every
run, in every worker and after a resume, whatever the process count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from medsam_echo.data.augment import AugmentConfig, augment
from medsam_echo.data.cache import PreprocessCache
from medsam_echo.data.transforms import Preprocessed, preprocess
from medsam_echo.models.profile import PreprocessProfile


class PreprocessedSet(Dataset):
    """``dataset[i]`` preprocessed for a model.

    Args:
        dataset: a sequence of ``EchoSample`` (CAMUS, folder, COCO datasets).
        profile: the model's preprocessing profile.
        augment_config: seeded augmentation before preprocessing, or ``None``.
        seed: base seed of the augmentation.
        cache_dir: preprocessed-image cache folder (used only without augmentation), or ``None``.
        keep_original: also return the original label map and geometry (validation at the original grid).
    """

    def __init__(
        self,
        dataset: Sequence,
        profile: PreprocessProfile,
        *,
        augment_config: AugmentConfig | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        keep_original: bool = False,
    ) -> None:
        self.dataset = dataset
        self.profile = profile
        self.augment_config = augment_config
        self.seed = seed
        self.epoch = 0
        self.keep_original = keep_original
        use_cache = cache_dir is not None and augment_config is None and hasattr(dataset, "source_files")
        self.cache = PreprocessCache(cache_dir, profile) if use_cache else None

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def _preprocessed(self, index: int) -> tuple[Preprocessed, object]:
        if self.cache is not None and not self.keep_original:
            cached = self.cache.get(self.dataset, index)
            if cached.label is None:
                files = ", ".join(map(str, self.dataset.source_files(index)))
                raise ValueError(f"{files}: has no label map; training and validation need labels")
            return cached, None
        sample = self.dataset[index]
        if sample.label is None:
            raise ValueError(f"{sample.case_id}: has no label map; training and validation need labels")
        image, label = sample.image, sample.label
        if self.augment_config is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, label = augment(image, label, rng, self.augment_config, sample.spacing)
        return preprocess(image, self.profile, label), sample

    def __getitem__(self, index: int) -> dict:
        pre, sample = self._preprocessed(index)
        item = {
            "index": index,
            "pixel_values": torch.from_numpy(pre.pixel_values),
            "labels": torch.from_numpy(pre.label),
            "valid_size": torch.tensor(pre.geometry.valid_size),
        }
        if self.keep_original:
            item.update(case_id=sample.case_id, original_label=sample.label, geometry=pre.geometry,
                        spacing=sample.spacing)
        return item


class EpochShuffle(torch.utils.data.Sampler):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)`` only.

    Unlike a sampler seeded from the process's RNG, the order does not depend on how many processes
    share it: Accelerate then deals batch ``k`` of this order to process ``k % world``, so two processes
    with batch ``b`` see exactly the images one process with batch ``2 b`` sees.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())


def collate(items: list[dict]) -> dict:
    """Stack tensors of equal shape; keep everything else (ids, original label maps, geometries) as lists."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], int):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


def augment_config_from(section) -> AugmentConfig | None:
    """``AugmentConfig`` from the config's ``data.augment`` group, or ``None`` when disabled."""
    if not section.enabled:
        return None
    return AugmentConfig(
        gamma=tuple(section.gamma), contrast=tuple(section.contrast), speckle=section.speckle,
        rotation_deg=section.rotation_deg, scale=tuple(section.scale), translate=section.translate,
    )
