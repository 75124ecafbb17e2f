"""The configurations a benchmark times, each behind the same interface: ``step()`` trains on one batch.

``EngineLoop`` is our training engine, assembled from the pieces ``medsam_echo.training.loop.train`` uses
(``build_training_model``, ``build_datasets``, ``maybe_embedding_cache``, ``train_loader``,
``make_optimizer``, ``PromptedSam``, ``train_step``): nothing of the step is re-implemented here. Only
validation, checkpointing and logging are left out, which the benchmark does not time.
``BaselineLoop`` (``medsam_echo.bench.baseline``) gets the same images and the same initial weights.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from medsam_echo.bench.baseline import BaselineLoop, MedSAMStyleSet
from medsam_echo.bench.measure import synchronize
from medsam_echo.data.sample import DEFAULT_STRUCTURES
from medsam_echo.models.registry import model_source
from medsam_echo.training.checkpoint import Progress
from medsam_echo.training.config import ExperimentConfig, config_from_dict
from medsam_echo.training.data import EpochShuffle
from medsam_echo.training.datasets import build_datasets
from medsam_echo.training.loop import make_optimizer, maybe_embedding_cache, train_loader, train_step
from medsam_echo.training.model import PromptedSam, build_training_model
from medsam_echo.training.run_folder import RunFolder

MEDSAM_SHIFT_AT_1024 = 20  # px: MedSAM's largest outward box shift at its 1024 px input


def shift_px(image_size: int) -> int:
    """MedSAM's 20 px box jitter at 1024 px, scaled to an ``image_size`` px input (at least 1 px)."""
    return max(1, round(MEDSAM_SHIFT_AT_1024 * image_size / 1024))


def engine_config(*, architecture: str, image_size: int, method: str, batch_size: int, data_root: Path,
                  output_dir: Path, mixed_precision: str = "no", gradient_checkpointing: bool = False,
                  compile_encoder: bool = False, embedding_cache: bool = False, num_workers: int = 0,
                  max_train_samples: int = 0, structures: tuple[str, ...] = DEFAULT_STRUCTURES) -> ExperimentConfig:
    """The experiment config of one benchmarked engine run: MedSAM's box prompts, losses and optimizer."""
    return config_from_dict({
        "output_dir": str(output_dir),
        "model": {"source": model_source(architecture), "gradient_checkpointing": gradient_checkpointing,
                  "compile_encoder": compile_encoder},
        "method": {"name": method},
        "data": {"root": str(data_root), "structures": list(structures), "max_train_samples": max_train_samples,
                 "num_workers": num_workers},
        "prompts": {"policy": "box", "jitter_mode": "outward", "jitter_amount": float(shift_px(image_size))},
        "loss": {"dice": 1.0, "bce": 1.0, "iou": 1.0},
        "optim": {"lr": 1e-4, "weight_decay": 0.01, "warmup_steps": 0},
        "train": {"batch_size": batch_size, "mixed_precision": mixed_precision,
                  "embedding_cache": embedding_cache},
    })


def fresh_accelerate_state() -> None:
    """Forget Accelerate's process-wide state, so the next ``Accelerator`` may use another precision.

    Loops built earlier keep working: their autocast was fixed when their model was prepared.
    """
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


class EngineLoop:
    """Our engine on ``cfg``, ready to step; ``cache_fill_s`` is the time spent filling the embedding cache.

    ``cfg.output_dir`` becomes the loop's run folder (its ``config.yaml``); give every loop its own.
    """

    def __init__(self, cfg: ExperimentConfig) -> None:
        fresh_accelerate_state()
        self.cfg = cfg
        # Each timed loop is a run folder holding the config it ran (kept with --work-dir: the exact
        # configuration behind a figure, which `medsam-echo train --config` runs again).
        RunFolder(Path(cfg.output_dir)).write_config(cfg)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.train.mixed_precision)
        set_seed(cfg.train.seed)
        built = build_training_model(
            cfg.model.source, cfg.method, profile=cfg.model.profile, seed=cfg.train.seed,
            attn_implementation=cfg.model.attn_implementation, gradient_checkpointing=cfg.model.gradient_checkpointing,
            compile_encoder=cfg.model.compile_encoder,
        )
        train_set, _ = build_datasets(cfg, built.profile, self.accelerator)
        start = time.perf_counter()
        self.train_set = maybe_embedding_cache(cfg, built, train_set, self.accelerator)
        self.cache_fill_s = time.perf_counter() - start
        self.sampler = EpochShuffle(len(self.train_set), cfg.train.seed)
        optimizer = make_optimizer(cfg, built.model)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        self.model, self.optimizer, self.loader = self.accelerator.prepare(
            PromptedSam(built.model), optimizer, train_loader(cfg, self.train_set, self.sampler)
        )
        self.batch_size = cfg.train.batch_size
        self.progress, self.epoch = Progress(), 0
        self._batches = self._cycle()

    def _cycle(self) -> Iterator[tuple[int, dict]]:
        while True:
            self.sampler.set_epoch(self.epoch)
            self.train_set.set_epoch(self.epoch)
            yield from enumerate(self.loader)
            self.epoch += 1

    def _train(self, index: int, batch: dict) -> float:
        loss, _ = train_step(self.cfg, self.accelerator, self.model, self.optimizer, self.scheduler, batch,
                             (self.epoch, index), self.progress)
        return float(loss.detach())

    def step(self) -> float:
        """One optimizer step on the next batch (epochs roll over); returns the loss."""
        return self._train(*next(self._batches))

    def epoch_seconds(self) -> float:
        """Wall-clock seconds of one whole epoch (data loading included)."""
        self.epoch += 1
        self.sampler.set_epoch(self.epoch)
        self.train_set.set_epoch(self.epoch)
        synchronize()
        start = time.perf_counter()
        for index, batch in enumerate(self.loader):
            self._train(index, batch)
        synchronize()
        return time.perf_counter() - start


def baseline_loop(cfg: ExperimentConfig) -> BaselineLoop:
    """The MedSAM-style loop on the data, initial weights and trainable parameters of ``cfg``'s engine."""
    fresh_accelerate_state()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    set_seed(cfg.train.seed)
    built = build_training_model(cfg.model.source, cfg.method, profile=cfg.model.profile, seed=cfg.train.seed,
                                 attn_implementation="eager")
    train_set, _ = build_datasets(cfg, built.profile, Accelerator(cpu=device == "cpu"))
    image_size = built.profile.image_size
    dataset = MedSAMStyleSet(train_set, cfg.data.structures, shift_px=shift_px(image_size), seed=cfg.train.seed)
    return BaselineLoop(built.model, dataset, batch_size=cfg.train.batch_size, device=device)
