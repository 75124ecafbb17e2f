"""The training loop on Accelerate: one function that reads top to bottom.

Runs the same under ``medsam-echo train``, ``accelerate launch -m medsam_echo.train`` and
``torchrun --nproc_per_node N -m medsam_echo.train`` (gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from medsam_echo.models.convert import save_sam
from medsam_echo.models.fast_encoder import InferenceEncoder
from medsam_echo.training.batches import make_robust_plan, make_train_prompts, structure_targets
from medsam_echo.training.checkpoint import (
    Progress,
    install_trained_only_hooks,
    latest_checkpoint,
    save_checkpoint,
)
from medsam_echo.training.config import ConfigError, ExperimentConfig, load_config, to_dict
from medsam_echo.training.data import EpochShuffle, collate
from medsam_echo.training.datasets import build_datasets, check_datasets, fit_run_view_prior
from medsam_echo.training.embedding_cache import EmbeddedSet, EmbeddingCache, item_key, model_key
from medsam_echo.training.losses import sam_loss
from medsam_echo.training.model import (
    PromptedSam,
    build_training_model,
    describe,
    encoder_is_cacheable,
    make_learned_prompts,
)
from medsam_echo.training.run_folder import BASE, BEST, CONFIG_FILE, MODEL, RunFolder
from medsam_echo.training.validate import validate


class TrainingError(RuntimeError):
    """The run cannot go on (non-finite loss, inconsistent resume)."""


@dataclass
class TrainResult:
    """What a run ends with: the last validation record and this process's trained model."""

    record: dict
    model: torch.nn.Module
    step: int


def train(cfg: ExperimentConfig, *, resume: bool = False) -> TrainResult:
    """Train ``cfg``; writes everything under ``cfg.output_dir`` (see the README's run layout).

    Reads top to bottom: the output folder's check (a run is never replaced; ``resume`` needs a checkpoint
    and the same config), the model, the data (every file checked), only then the run's ``config.yaml``
    and base reference, the optimizer and schedule, the resume point, an optional step-0 validation,
    the epochs, the final model.
    """
    out = Path(cfg.output_dir)
    accelerator = _accelerator(cfg, out)
    set_seed(cfg.train.seed)
    run_folder = RunFolder(out)
    checkpoint = check_output_dir(cfg, resume)  # nothing is written before this, the model and the data pass
    accelerator.wait_for_everyone()
    built = build_training_model(
        cfg.model.source, cfg.method, profile=cfg.model.profile, seed=cfg.train.seed,
        attn_implementation=cfg.model.attn_implementation, gradient_checkpointing=cfg.model.gradient_checkpointing,
        compile_encoder=cfg.model.compile_encoder,
    )
    _check_finite_weights(cfg, built.model)
    accelerator.print(f"method {cfg.method.name} on {cfg.model.source} (profile {built.profile.name})\n{describe(built.model)}")
    train_set, val_set, sampler, loader, val_loader = _data(cfg, built, accelerator)
    if accelerator.is_main_process and checkpoint is None:
        out.mkdir(parents=True, exist_ok=True)
        run_folder.write_config(cfg)
    base_ref = _write_base(accelerator, cfg, built, out)
    prompted = PromptedSam(built.model, built.learned)
    optimizer = make_optimizer(cfg, prompted)
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    accelerator.print(f"optimizing {sum(p.numel() for p in trainable):,} parameters in {len(trainable)} tensors")
    total_steps = cfg.train.max_steps or cfg.train.epochs * math.ceil(
        len(loader) / accelerator.num_processes / cfg.optim.grad_accum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(cfg, total_steps))
    # The scheduler is stepped here once per optimizer step, not handed to Accelerate: its prepared
    # scheduler advances num_processes times per step, which would change the schedule with the GPU count.
    model, optimizer, loader, val_loader = accelerator.prepare(prompted, optimizer, loader, val_loader)
    install_trained_only_hooks(accelerator)
    if cfg.train.tensorboard:
        accelerator.init_trackers("tensorboard")
    run = _Run(cfg, accelerator, built, base_ref, model, optimizer, scheduler, train_set, sampler, loader,
               val_loader, total_steps, _resumed(accelerator, scheduler, checkpoint))
    record = run.epochs()
    _save_final(accelerator, cfg, model, built, base_ref, MODEL)
    accelerator.end_training()
    return TrainResult(record, accelerator.unwrap_model(model).model, run.progress.step)


def _accelerator(cfg: ExperimentConfig, out: Path) -> Accelerator:
    return Accelerator(
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=may_leave_parameters_unused(cfg))],
        # Without a GPU, Accelerate only forms a gloo process group (torchrun, accelerate launch) when
        # told to run on the CPU; otherwise every process would train alone.
        cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available()),
        mixed_precision=cfg.train.mixed_precision,
        gradient_accumulation_steps=cfg.optim.grad_accum,
        log_with="tensorboard" if cfg.train.tensorboard else None,
        project_dir=str(out),
    )


def may_leave_parameters_unused(cfg: ExperimentConfig) -> bool:
    """Whether a step may leave trained parameters without a gradient, which DDP must be told about.

    Only the prompt encoder has such parameters: a box prompt uses neither the point-label embeddings
    nor the mask embedding, a point prompt not the box-corner ones, and which are used changes from batch
    to batch (``mix``) and between processes. DDP then searches the autograd graph for unused parameters
    after every forward (within the noise on 2 gloo processes: 40 steps of the tiny model took 9.6-9.9 s
    with the search, 10.2-10.6 s without), and those keep no gradient, exactly as on one process (a
    zero-weight loss term would give them zero gradients, which AdamW's weight decay then moves). Every
    other method uses all of its trained parameters at every step, so DDP runs without the search.
    """
    return cfg.method.trains()["prompt_encoder"]


def _data(cfg: ExperimentConfig, built, accelerator):
    """``(train_set, val_set, sampler, loader, val_loader)``; fits the run's view prior on the way.

    A frozen encoder's embeddings are cached once, and validation reads the same cache.
    """
    train_set, val_set = build_datasets(cfg, built.profile, accelerator)
    check_datasets(cfg, train_set.dataset, val_set.dataset, accelerator)  # every file, before the first step
    built.view_prior = fit_run_view_prior(train_set.dataset, cfg.data.structures, accelerator)
    if cfg.auto.mode != "none":
        first = train_set.dataset[0].image.shape[:2]
        built.learned = make_learned_prompts(cfg.auto, cfg.data.structures, built, first, cfg.train.seed)
    train_set = maybe_embedding_cache(cfg, built, train_set, accelerator)
    if isinstance(train_set, EmbeddedSet):
        val_set = maybe_embedding_cache(cfg, built, val_set, accelerator, full_items=True)
    sampler = EpochShuffle(len(train_set), cfg.train.seed)
    loader = train_loader(cfg, train_set, sampler)
    val_loader = DataLoader(val_set, batch_size=cfg.train.eval_batch_size, collate_fn=collate,
                            num_workers=cfg.data.num_workers)
    if len(loader) == 0:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is larger than the {len(train_set)} training images")
    return train_set, val_set, sampler, loader, val_loader


def _resumed(accelerator, scheduler, checkpoint: Path | None) -> Progress:
    """The progress to start from: ``checkpoint``'s (state restored), else step 0."""
    if checkpoint is None:
        return Progress()
    try:
        accelerator.load_state(str(checkpoint))
        progress = Progress.load(checkpoint)
    except (RuntimeError, OSError, ValueError, KeyError) as err:  # a damaged checkpoint (the data is checked)
        raise TrainingError(f"--resume: {checkpoint} cannot be restored ({str(err).splitlines()[0]}); delete it "
                            "and name the previous step-* folder in checkpoints/latest, or start a new run") from err
    with warnings.catch_warnings():  # stepped without optimizer steps, on purpose
        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
        for _ in range(progress.step):  # the schedule is a function of the step alone
            scheduler.step()
    if accelerator.is_main_process:  # validations after the checkpoint are done again
        RunFolder(Path(accelerator.project_dir)).keep_metrics_up_to(progress.step)
    accelerator.print(f"resumed from {checkpoint} at step {progress.step}")
    return progress


# Keys a resumed run may change: where the run lives, how data is loaded, what is printed and a new
# wall-clock budget, none of which changes a weight.
RESUME_MAY_CHANGE = ("output_dir", "data.num_workers", "data.cache_dir", "train.embedding_cache_dir",
                     "train.max_minutes", "train.log_every_steps", "train.tensorboard")
_CACHES = ("preprocess_cache", "embedding_cache")  # folders a run fills while it checks its data


def check_output_dir(cfg: ExperimentConfig, resume: bool) -> Path | None:
    """Refuse an output folder the run would damage; returns the checkpoint to resume from (or ``None``).

    Without ``resume`` the folder must not exist or hold nothing but caches a run writes (a finished or
    crashed run, or any other file, is never replaced). With ``resume`` it must hold a run with a
    checkpoint and the same config, apart from ``RESUME_MAY_CHANGE``.

    Raises:
        ConfigError: naming the folder and what to do.
    """
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir: {out} is a file, not a folder; choose another output_dir")
    held = sorted(p.name for p in out.iterdir() if p.name not in _CACHES) if out.is_dir() else []
    if not resume:
        if held:
            what = "a training run" if {CONFIG_FILE, "checkpoints", MODEL} & set(held) else "other files"
            raise ConfigError(f"output_dir: {out} already holds {what} ({', '.join(held[:5])}); pass --resume to "
                              "continue that run, or choose a new output_dir (nothing was changed)")
        return None
    saved = RunFolder(out).config_path
    if not saved.is_file():
        raise ConfigError(f"--resume: {out} holds no training run ({CONFIG_FILE} is missing); drop --resume to "
                          "start a new run there")
    try:
        checkpoint = latest_checkpoint(out)
    except FileNotFoundError as err:
        raise ConfigError(f"--resume: {err}") from None
    if checkpoint is None:
        raise ConfigError(f"--resume: {out} has no checkpoint yet (the run stopped before its first one); "
                          "delete the folder and start again without --resume")
    changed = changed_keys(load_config(saved), cfg)
    if changed:
        raise ConfigError(f"--resume: the config differs from the run's {saved} in {', '.join(changed)}; a "
                          "resumed run must use the same settings (start a new output_dir to change them)")
    return checkpoint


def changed_keys(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Dotted keys whose values differ between two configs, apart from ``RESUME_MAY_CHANGE``."""
    def flat(node, prefix=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from flat(value, f"{prefix}{key}.")
        else:
            yield prefix[:-1], node

    a, b = dict(flat(to_dict(old))), dict(flat(to_dict(new)))
    return [f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in RESUME_MAY_CHANGE]


def _check_finite_weights(cfg: ExperimentConfig, model: torch.nn.Module) -> None:
    """A source with NaN / Inf weights would train on garbage; say so before the first step."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p.detach()).all()]
    if bad:
        raise TrainingError(f"model.source: {cfg.model.source} has non-finite (NaN / Inf) weights in {len(bad)} "
                            f"tensor(s), e.g. {bad[0]}; the checkpoint is damaged")


@dataclass
class _Run:
    """The prepared pieces of one run, and its epochs."""

    cfg: ExperimentConfig
    accelerator: Accelerator
    built: object
    base_ref: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_set: object
    sampler: EpochShuffle
    loader: DataLoader
    val_loader: DataLoader
    total_steps: int
    progress: Progress

    def validate(self, epoch: int, losses: list[float]) -> dict:
        return _evaluate_and_log(self.cfg, self.model, self.val_loader, self.accelerator, self.built, self.base_ref,
                                 self.progress, epoch, losses)

    def epochs(self) -> dict:
        """Train until ``total_steps`` or ``train.max_minutes``; returns the last validation record."""
        cfg, accelerator, progress = self.cfg, self.accelerator, self.progress
        record: dict = {}
        if progress.step == 0 and _eval_at_start(cfg, self.built):
            record = self.validate(-1, [])
            accelerator.print(f"before fine-tuning (step 0): validation Dice {_dice_line(record, cfg)}")
        epoch, skip = divmod(progress.step * cfg.optim.grad_accum, len(self.loader))
        clock = _Deadline(cfg.train.max_minutes, accelerator)
        bar = tqdm(total=self.total_steps, initial=progress.step, disable=not accelerator.is_local_main_process)
        while progress.step < self.total_steps and not clock.expired:
            losses = self._epoch(epoch, skip, clock, bar)
            skip = 0
            last = progress.step >= self.total_steps or clock.expired
            if last or (epoch + 1) % cfg.train.eval_every_epochs == 0:
                record = self.validate(epoch, losses)
                save_checkpoint(accelerator, Path(cfg.output_dir), progress)
            epoch += 1
        bar.close()
        return record

    def _epoch(self, epoch: int, skip: int, clock: _Deadline, bar) -> list[float]:
        """One epoch's steps (the first ``skip`` batches already done before a resume); returns the losses."""
        cfg, accelerator, progress = self.cfg, self.accelerator, self.progress
        batches = accelerator.skip_first_batches(self.loader, skip) if skip else self.loader
        # The image order of this epoch, the same for any process count. Accelerate's loader passes its own
        # iteration count to the sampler when iterated; a loader made by skip_first_batches (a resume) or a
        # loader iterated before a resume counts from 0, so its count is set to the epoch here.
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)  # augmentation stream of this epoch
        losses = list(progress.epoch_losses) if skip else []
        progress.epoch_losses = losses  # saved with every checkpoint
        for i, batch in enumerate(batches, start=skip):
            loss, parts = train_step(cfg, accelerator, self.model, self.optimizer, self.scheduler, batch, (epoch, i),
                                     progress)
            losses.append(float(loss.detach()))
            if not accelerator.sync_gradients:
                continue
            progress.step += 1
            bar.update(1)
            if progress.step % cfg.train.log_every_steps == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-cfg.train.log_every_steps:]):.4f}")
                accelerator.log({"train/loss": float(loss.detach()), "train/lr": self.scheduler.get_last_lr()[0],
                                 **{f"train/{k}": v for k, v in parts.items()}}, step=progress.step)
            if (cfg.train.save_every_steps and progress.step % cfg.train.save_every_steps == 0
                    and not self._validates_next(epoch, i)):
                save_checkpoint(accelerator, Path(cfg.output_dir), progress)
            if progress.step >= self.total_steps or clock.check():
                break
        return losses


    def _validates_next(self, epoch: int, index: int) -> bool:
        """Whether validation (and then a checkpoint) follows this step; a checkpoint is only ever taken
        after the step's validation, so a resume from it neither skips nor repeats one."""
        end_of_epoch = index == len(self.loader) - 1
        return self.progress.step >= self.total_steps or (
            end_of_epoch and (epoch + 1) % self.cfg.train.eval_every_epochs == 0)


class _Deadline:
    """``train.max_minutes``: a wall-clock budget all processes agree on (checked once per step)."""

    def __init__(self, minutes: float, accelerator) -> None:
        self.limit = minutes * 60.0
        self.start = time.monotonic()
        self.accelerator = accelerator
        self.expired = False

    def check(self) -> bool:
        if self.limit <= 0:
            return False
        over = torch.tensor([float(time.monotonic() - self.start > self.limit)], device=self.accelerator.device)
        self.expired = bool(self.accelerator.reduce(over, reduction="sum") > 0)
        if self.expired:
            self.accelerator.print(f"train.max_minutes={self.limit / 60:g} reached: evaluating and saving")
        return self.expired


def _write_base(accelerator, cfg: ExperimentConfig, built, out: Path) -> str:
    """A scratch model's initial weights are written to ``OUT/base`` so the run's model can be rebuilt."""
    if not built.from_scratch:
        local = Path(cfg.model.source)
        return str(local.resolve()) if local.exists() else cfg.model.source  # a file, or a hub id
    if accelerator.is_main_process and not RunFolder(out).base_dir.is_dir():  # a resumed run has it already
        save_sam(built.base_model, built.profile, RunFolder(out).base_dir)
    accelerator.wait_for_everyone()
    return f"../{BASE}"  # relative to RUN/model and RUN/best


def _eval_at_start(cfg: ExperimentConfig, built) -> bool:
    return cfg.train.eval_at_start is True or (cfg.train.eval_at_start == "auto" and not built.from_scratch)


def _dice_line(record: dict, cfg: ExperimentConfig) -> str:
    """``0.929 (lv_endo 0.958, myo 0.906, la 0.924)``: the mean and every structure of a record."""
    names = [k[len("val_dice_"):] for k in record if k.startswith("val_dice_")]
    return f"{record['val_dice']:.3f} (" + ", ".join(f"{n} {record['val_dice_' + n]:.3f}" for n in names) + ")"


def maybe_embedding_cache(cfg: ExperimentConfig, built, train_set, accelerator, *, full_items: bool = False):
    """``train_set`` wrapped to serve cached image embeddings when ``train.embedding_cache`` allows it.

    The cache is filled by a folded, channels-last copy of the encoder (``InferenceEncoder``) in
    ``train.encoder_precision``; its key hashes the encoder's own weights and the profile.
    """
    mode = cfg.train.embedding_cache
    cacheable = encoder_is_cacheable(cfg.method)
    if mode is False or (mode == "auto" and (not cacheable or cfg.data.augment.enabled)):
        return train_set
    if not cacheable:
        raise ConfigError(f"train.embedding_cache=true: method {cfg.method.name!r} changes the image encoder; "
                          "its embeddings cannot be cached")
    if cfg.data.augment.enabled:
        raise ConfigError("train.embedding_cache=true with data.augment.enabled=true: augmented images have no "
                          "fixed embedding; disable one of them")
    directory = Path(cfg.train.embedding_cache_dir or Path(cfg.output_dir) / "embedding_cache")
    encoder = built.base_model.vision_encoder.to(accelerator.device).eval()
    key = model_key(encoder, built.profile) + ("" if cfg.train.encoder_precision == "fp32" else "-bf16")
    cache = EmbeddingCache(directory, key)
    keys = [item_key(train_set, i) for i in range(len(train_set))]
    fast = InferenceEncoder(encoder, precision=cfg.train.encoder_precision)
    started = time.perf_counter()
    done = cache.fill(train_set, keys, fast, rank=accelerator.process_index, world=accelerator.num_processes,
                      batch_size=cfg.train.eval_batch_size, device=accelerator.device)
    accelerator.wait_for_everyone()
    rate = f", {done / (time.perf_counter() - started):.2f} images/s" if done else ""
    accelerator.print(f"embedding cache {cache.directory}: {len(keys)} images ({done} computed by process 0{rate})")
    return EmbeddedSet(train_set, cache, keys, full_items=full_items)


def train_loader(cfg: ExperimentConfig, train_set, sampler) -> DataLoader:
    """Training batches; pinned host memory on CUDA so the copy to the GPU can overlap compute.

    Workers are kept from one epoch to the next (no start-up per epoch) unless augmentation is on: its
    stream is selected per epoch by ``set_epoch`` in the main process, which kept workers would not see.
    """
    workers = cfg.data.num_workers
    return DataLoader(train_set, batch_size=cfg.train.batch_size, sampler=sampler, drop_last=True,
                      num_workers=workers, collate_fn=collate, pin_memory=torch.cuda.is_available(),
                      persistent_workers=workers > 0 and not cfg.data.augment.enabled)


def make_optimizer(cfg: ExperimentConfig, model: torch.nn.Module) -> torch.optim.AdamW:
    """AdamW over the parameters that require grad, with the fused kernel where torch has one.

    Fused (one kernel for all tensors) exists for CUDA and the CPU; on the CPU it is 3-5x faster than
    the per-tensor loop torch uses by default there (benchmarks/README.md). MPS keeps torch's default.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    fused = torch.cuda.is_available() or not torch.backends.mps.is_available()
    return torch.optim.AdamW(trainable, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                             betas=tuple(cfg.optim.betas), fused=fused or None)


def train_step(cfg: ExperimentConfig, accelerator, model, optimizer, scheduler, batch: dict,
               position: tuple[int, int], progress: Progress) -> tuple[torch.Tensor, dict[str, float]]:
    """One micro-batch: prompts, forward, loss, backward and (at an accumulation boundary) the update.

    Args:
        position: ``(epoch, batch index)``, which seeds the batch's prompts.

    Returns:
        ``(loss, parts)`` as :func:`~medsam_echo.training.losses.sam_loss`.
    """
    epoch, index = position
    with accelerator.accumulate(model):
        loss, parts = _step_loss(cfg, model, batch, epoch, index, accelerator)
        _check_finite(loss, accelerator, progress, epoch)
        accelerator.backward(loss)
        if accelerator.sync_gradients and cfg.optim.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        if accelerator.sync_gradients:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return loss, parts


def _step_loss(cfg: ExperimentConfig, model, batch: dict, epoch: int, index: int, accelerator):
    """Prompts for the batch, the forward (with refinement rounds) and the loss."""
    if cfg.prompts.policy == "robust":
        return _robust_step_loss(cfg, model, batch, epoch, index, accelerator)
    labels = batch["labels"].cpu().numpy()
    prompts, inputs, multimask, refine, rounds = make_train_prompts(
        cfg, labels, batch["index"].tolist(), epoch, index, accelerator.device
    )
    targets = structure_targets(labels, cfg.data.structures, accelerator.device)
    kwargs = ({"image_embeddings": batch["image_embeddings"]} if "image_embeddings" in batch
              else {"pixel_values": batch["pixel_values"]})
    learned = tuple(cfg.data.structures) if cfg.auto.mode == "tokens" else ()
    out = model(inputs, multimask_output=multimask, refine=refine, rounds=rounds, learned_structures=learned,
                **kwargs)
    w = cfg.loss
    terms = {"dice": w.dice, "bce": w.bce, "focal": w.focal, "focal_gamma": w.focal_gamma, "iou": w.iou}
    loss, parts = sam_loss(out[0], out[1], targets, batch["valid_size"], **terms)
    if learned:  # the automatic mode: the same targets from the learned prompts alone
        auto_loss, auto_parts = sam_loss(out[2], out[3], targets, batch["valid_size"], **terms)
        loss = loss + cfg.auto.weight * auto_loss
        parts.update({f"auto_{k}": v for k, v in auto_parts.items()})
    return loss, parts


def _robust_step_loss(cfg: ExperimentConfig, model, batch: dict, epoch: int, index: int, accelerator):
    """The ``robust`` policy's loss: box pass + ``auto.weight`` x learned-prompt pass + the mean of the
    supervised click rounds, all against the same targets."""
    labels = batch["labels"].cpu().numpy()
    plan = make_robust_plan(cfg, labels, batch["index"].tolist(), epoch, index, batch["valid_size"].cpu().numpy(),
                            accelerator.device)
    targets = structure_targets(labels, cfg.data.structures, accelerator.device)
    kwargs = ({"image_embeddings": batch["image_embeddings"]} if "image_embeddings" in batch
              else {"pixel_values": batch["pixel_values"]})
    learned = tuple(cfg.data.structures) if cfg.auto.mode == "tokens" else ()
    out = model(None, plan=plan, learned_structures=learned, **kwargs)
    w = cfg.loss
    terms = {"dice": w.dice, "bce": w.bce, "focal": w.focal, "focal_gamma": w.focal_gamma, "iou": w.iou}
    loss, parts = sam_loss(*out["box"][0], targets, batch["valid_size"], **terms)
    for name, outputs, weight in (("auto", out["learned"], cfg.auto.weight), ("click", out["clicks"], 1.0)):
        for logits, iou in outputs:
            extra, extra_parts = sam_loss(logits, iou, targets, batch["valid_size"], **terms)
            loss = loss + weight / len(outputs) * extra
            for key, value in extra_parts.items():
                parts[f"{name}_{key}"] = parts.get(f"{name}_{key}", 0.0) + value / len(outputs)
    return loss, parts


def _check_finite(loss: torch.Tensor, accelerator, progress: Progress, epoch: int) -> None:
    finite = torch.isfinite(loss.detach()).float().reshape(1)
    if accelerator.num_processes > 1:
        finite = accelerator.reduce(finite, reduction="sum") / accelerator.num_processes
    if float(finite) < 1.0:
        where = f"non-finite loss at step {progress.step + 1} (epoch {epoch}); stopping."
        checkpoint = latest_checkpoint(Path(accelerator.project_dir))
        if checkpoint is None:
            raise TrainingError(
                f"{where} No checkpoint has been saved yet. At the first steps this usually means NaN / Inf in "
                "the inputs or the model's weights (check model.source and the data), else too high an "
                "optim.lr; fix it and start again in a new output_dir."
            )
        raise TrainingError(
            f"{where} The last good checkpoint is {checkpoint}. Lower optim.lr, raise optim.warmup_steps or use "
            "train.mixed_precision=bf16 instead of fp16, in a new output_dir (--resume keeps the run's config and "
            "would replay the same steps)."
        )


def _warmup_cosine(cfg: ExperimentConfig, total_steps: int):
    warmup, floor = cfg.optim.warmup_steps, cfg.optim.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _evaluate_and_log(cfg, model, val_loader, accelerator, built, base_ref, progress, epoch, losses) -> dict:
    dice = validate(cfg, model, val_loader, accelerator)
    # val_dice (which picks best/) averages the prompted structures; a label-map structure derived from
    # them (myo of an lv_epi run) is reported next to them as val_dice_<name>.
    record = {"step": progress.step, "epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None,
              "val_dice": float(np.mean([dice[s] for s in cfg.data.structures]))}
    record.update({f"val_dice_{name}": value for name, value in dice.items()})
    for prefix in ("auto", "loose"):  # the prompt-free and loose-box masks, reported next to the tight-box ones
        if f"{prefix}_{cfg.data.structures[0]}" in dice:
            record[f"val_{prefix}_dice"] = float(np.mean([dice[f"{prefix}_{s}"] for s in cfg.data.structures]))
    if cfg.train.select_metric == "robust":
        record["val_robust_dice"] = float(np.mean([record[k] for k in ("val_dice", "val_loose_dice", "val_auto_dice")]))
    accelerator.log({f"val/{k}": v for k, v in record.items() if k.startswith("val_")}, step=progress.step)
    accelerator.print(json.dumps(record))
    selected = record["val_robust_dice" if cfg.train.select_metric == "robust" else "val_dice"]
    if selected > progress.best_dice:
        progress.best_dice, progress.best_step = selected, progress.step
        _save_final(accelerator, cfg, model, built, base_ref, BEST)
    if accelerator.is_main_process:
        RunFolder(Path(cfg.output_dir)).append_metrics(record)
    return record


def _save_final(accelerator, cfg, model, built, base_ref: str, which: str) -> None:
    """``RUN/<which>``: trained weights + method + base reference + view prior; loads with ``load_trained``
    and ``medsam-echo predict``."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        prompted = accelerator.unwrap_model(model)
        RunFolder(Path(cfg.output_dir)).save_model(prompted.model, cfg, which, base=base_ref, profile=built.profile,
                                                   view_prior=built.view_prior, learned=prompted.learned)
    accelerator.wait_for_everyone()
