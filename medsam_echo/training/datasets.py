"""Open the train and validation splits a config names (generating synthetic data on first use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Subset

from medsam_echo.data.io import DataError, display_path
from medsam_echo.data.open import open_dataset
from medsam_echo.data.sample import structure_mask
from medsam_echo.data.synthetic import make_camus
from medsam_echo.models.profile import PreprocessProfile
from medsam_echo.prompts.auto import ViewPrior
from medsam_echo.training.config import ConfigError, ExperimentConfig
from medsam_echo.training.data import PreprocessedSet, augment_config_from


def fit_run_view_prior(dataset, structures, accelerator) -> ViewPrior | None:
    """The automatic-prompt prior (mean normalised box per view and structure) of the training split,
    saved with every model the run writes; ``None``, with the reason printed, when images have no view."""
    if not accelerator.is_main_process:
        return None
    try:
        return ViewPrior.fit((dataset[i] for i in range(len(dataset))), structures)
    except DataError:
        raise  # a broken file is an error (check_datasets finds them first), not a missing view
    except ValueError as err:
        accelerator.print(f"no view prior saved with the model ({err}); `predict --prompt auto` will need --view-prior")
        return None


MIN_SIDE_PX = 4  # smaller images have no structure to prompt


def check_datasets(cfg: ExperimentConfig, train, val, accelerator=None) -> None:
    """Decode every training and validation image before the first step; one error lists every bad file.

    A file is bad when it cannot be read, is mis-sized or mislabelled (the readers' :class:`DataError`),
    has no label map, holds NaN / Inf pixels, is smaller than ``MIN_SIDE_PX``, or lacks one of
    ``data.structures`` (it could not be prompted). Under several processes the main process checks and
    the others receive its findings, so each file is decoded once.

    Raises:
        DataError: naming each bad file and what is wrong with it (on every process).
    """
    found = None
    if accelerator is None or accelerator.is_main_process:
        found = [[f"{split}: {p}" for i in range(len(dataset)) for p in _sample_problems(dataset, i, cfg.data.structures)]
                 for split, dataset in ((cfg.data.train_split, train), (cfg.data.val_split, val))]
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        found = broadcast_object_list([found])[0]
    problems = [p for split in found for p in split]
    if problems:
        listing = "\n  - ".join(problems)
        raise DataError(f"{cfg.data.root}: {len(problems)} problem(s) in {len(train) + len(val)} training / "
                        f"validation images; fix or remove these files (nothing was trained or written):\n  - {listing}")


def _sample_problems(dataset, index: int, structures) -> list[str]:
    try:
        sample = dataset[index]
    except DataError as err:
        return [str(err)]
    try:
        files = ", ".join(display_path(p) for p in dataset.source_files(index))
    except (AttributeError, IndexError):
        files = sample.case_id
    image, label = sample.image, sample.label
    if label is None:
        return [f"{files}: has no label map; training and validation need labels"]
    problems = []
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        problems.append(f"{files}: {int((~np.isfinite(image)).sum())} non-finite (NaN / Inf) pixel values")
    if min(image.shape[:2]) < MIN_SIDE_PX:
        problems.append(f"{files}: image of {image.shape[0]} x {image.shape[1]} px is too small "
                        f"(at least {MIN_SIDE_PX} px a side)")
    absent = [s for s in structures if not structure_mask(label, s).any()]
    if absent:
        problems.append(f"{files}: label map has no {', '.join(absent)} (data.structures needs every one)")
    return problems


def ensure_synthetic(cfg: ExperimentConfig, accelerator) -> None:
    """Write the synthetic dataset the config asks for, once, on the main process."""
    root = Path(cfg.data.root)
    if cfg.data.synthetic_patients <= 0 or root.exists():
        return
    if accelerator.is_main_process:
        accelerator.print(f"writing {cfg.data.synthetic_patients} synthetic patients to {root}")
        make_camus(root, patients=cfg.data.synthetic_patients, seed=cfg.train.seed,
                   size=tuple(cfg.data.synthetic_size), frames=0)
    accelerator.wait_for_everyone()


def build_datasets(cfg: ExperimentConfig, profile: PreprocessProfile, accelerator):
    """``(train_set, val_set)`` as :class:`PreprocessedSet`; validation keeps the original label maps."""
    if not cfg.data.root:
        raise ConfigError("data.root: no dataset given")
    data = cfg.data
    if "test" in (data.train_split, data.val_split):
        raise ConfigError("data.train_split / data.val_split: the test split is for final evaluation only")
    ensure_synthetic(cfg, accelerator)
    train = open_dataset(data.root, data.train_split, views=data.views, phases=data.phases)
    val = open_dataset(data.root, data.val_split, views=data.views, phases=data.phases)
    if len(train) == 0 or len(val) == 0:
        raise ConfigError(f"{data.root}: split {data.train_split!r} has {len(train)} images and "
                          f"{data.val_split!r} has {len(val)}; both need at least one")
    if data.max_train_samples:
        train = _head(train, data.max_train_samples)
    if data.max_val_samples:
        val = _head(val, data.max_val_samples)
    cache_dir = Path(data.cache_dir or Path(cfg.output_dir) / "preprocess_cache") if data.preprocess_cache else None
    train_set = PreprocessedSet(train, profile, augment_config=augment_config_from(data.augment),
                                seed=cfg.train.seed, cache_dir=cache_dir)
    val_set = PreprocessedSet(val, profile, keep_original=True)
    return train_set, val_set


class _Head(Subset):
    """The first ``n`` items, keeping ``source_files`` for the caches."""

    def source_files(self, index: int):
        return self.dataset.source_files(self.indices[index])


def _head(dataset, n: int):
    return _Head(dataset, list(range(min(n, len(dataset)))))
