"""Experiment configuration: typed dataclass groups, YAML files, dotted ``key=value`` overrides.

Every key is checked: an unknown key or a value of the wrong type is an error naming the dotted key
(``optim.lr: expected float, got 'fast'``). The resolved config is written next to every run.

    config = load_config("configs/quickstart.yaml", overrides=["optim.lr=3e-4", "train.max_steps=50"])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from medsam_echo.adapters.methods import MethodConfig
from medsam_echo.data.sample import DEFAULT_STRUCTURES, STRUCTURES
from medsam_echo.prompts.policies import PromptPolicyConfig
from medsam_echo.schema import ConfigError, build_dataclass


@dataclass
class ModelConfig:
    """source: checkpoint (.pth / .safetensors / HF dir / hub id) or ``scratch:<architecture>`` (e.g.
    ``scratch:tiny``) to train a randomly initialised model. profile: override the preprocessing profile
    (``sam`` / ``medsam``). gradient_checkpointing: recompute image-encoder activations in backward.
    compile_encoder: ``torch.compile`` the image encoder (pays off on long GPU runs: the first step
    compiles for a minute or more; see benchmarks/README.md)."""

    source: str = "scratch:tiny"
    profile: str | None = None
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    compile_encoder: bool = False


@dataclass
class AugmentSection:
    """Seeded training augmentations (off by default; refused with the embedding cache)."""

    enabled: bool = False
    gamma: list[float] = field(default_factory=lambda: [0.7, 1.5])
    contrast: list[float] = field(default_factory=lambda: [0.8, 1.25])
    speckle: float = 0.1
    rotation_deg: float = 10.0
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    translate: float = 0.05


@dataclass
class DataConfig:
    """root: dataset folder (CAMUS 2019 / 2023 release, folder or COCO dataset). synthetic_patients: when
    > 0 and ``root`` does not exist yet, a synthetic CAMUS dataset of that many patients is written there
    first. structures: what the model learns to segment, one prompt each, from ``STRUCTURES``: the
    ``myo`` ring directly (``[lv_endo, myo, la]``) or the filled ``lv_epi`` with the myocardium derived as
    ``lv_epi`` minus ``lv_endo`` (``[lv_endo, lv_epi, la]``; validation then also reports that ``myo``).
    max_*_samples: 0 = all.
    cache_dir: folder of the decoded-image cache (default ``OUTPUT_DIR/preprocess_cache``); entries are
    keyed by file content and profile, so several runs can share one folder."""

    root: str = ""
    synthetic_patients: int = 0
    synthetic_size: list[int] = field(default_factory=lambda: [192, 160])
    train_split: str = "train"
    val_split: str = "val"
    views: list[str] = field(default_factory=lambda: ["2CH", "4CH"])
    phases: list[str] = field(default_factory=lambda: ["ED", "ES"])
    structures: list[str] = field(default_factory=lambda: list(DEFAULT_STRUCTURES))
    max_train_samples: int = 0
    max_val_samples: int = 0
    num_workers: int = 0
    preprocess_cache: bool = True
    cache_dir: str = ""
    augment: AugmentSection = field(default_factory=AugmentSection)


@dataclass
class LossConfig:
    """Weights of the loss terms. multimask: ``auto`` predicts 3 masks when a prompt is a single point
    (ambiguous) and supervises the best one, else 1; ``always`` / ``never`` force it."""

    dice: float = 1.0
    bce: float = 1.0
    focal: float = 0.0
    focal_gamma: float = 2.0
    iou: float = 1.0
    multimask: str = "auto"


@dataclass
class OptimConfig:
    """AdamW with linear warmup and cosine decay to ``min_lr_ratio * lr``."""

    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    grad_accum: int = 1


@dataclass
class TrainConfig:
    """Loop settings. max_steps: 0 = run ``epochs`` epochs. max_minutes: wall-clock budget (0 = none); when
    spent, the run validates, checkpoints and saves its model. mixed_precision: ``no`` / ``bf16`` / ``fp16``.
    embedding_cache: ``auto`` (on when the image encoder is frozen and unadapted and there is no
    augmentation), ``true`` (required: an error if impossible) or ``false``; validation images are then
    served from the cache too. encoder_precision: how the cache is filled (``fp32``; ``bf16`` or ``auto``
    = bf16 where the CPU or GPU has native bf16). eval_at_start: validate before the first step (step 0 in
    ``metrics.jsonl``, the zero-shot score of a pretrained model); ``auto`` = for pretrained sources.
    eval_loose_px: when > 0, validation also scores loose boxes, every side pushed outward by U{0..this} px
    of the original image (``val_loose_dice``; the protocol of ``predict --jitter-px``). select_metric: what
    picks ``best/``: ``val_dice`` (tight boxes) or ``robust``, the mean of ``val_dice``, ``val_loose_dice``
    and ``val_auto_dice`` (a model for tight boxes, loose boxes and no prompt alike)."""

    seed: int = 0
    epochs: int = 1
    max_steps: int = 0
    max_minutes: float = 0.0
    batch_size: int = 2
    eval_batch_size: int = 4
    mixed_precision: str = "no"
    save_every_steps: int = 0
    eval_every_epochs: int = 1
    log_every_steps: int = 10
    embedding_cache: bool | str = "auto"
    embedding_cache_dir: str = ""
    encoder_precision: str = "fp32"
    eval_at_start: bool | str = "auto"
    tensorboard: bool = False
    eval_prompt: str = "box"
    eval_loose_px: float = 0.0
    select_metric: str = "val_dice"


@dataclass
class AutoSection:
    """The prompt-free automatic mode (``predict --prompt auto``, ``EchoPredictor.segment``).

    mode: ``none`` (automatic prompts then come from the view prior alone) or ``tokens``: learned prompt
    tokens per structure (``prompts/learned.py``), initialised from the mean training box, trained with the
    decoder on every batch next to the box prompts and saved with the model. weight: the learned-prompt
    loss's weight next to the prompted loss. n_tokens: tokens per structure."""

    mode: str = "none"
    weight: float = 1.0
    n_tokens: int = 2


@dataclass
class ExperimentConfig:
    """One experiment: what model, which method, on what data, trained how."""

    output_dir: str = "runs/experiment"
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    prompts: PromptPolicyConfig = field(default_factory=PromptPolicyConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    auto: AutoSection = field(default_factory=AutoSection)

    def __post_init__(self) -> None:
        _choice("loss.multimask", self.loss.multimask, ("auto", "always", "never"))
        _choice("train.mixed_precision", self.train.mixed_precision, ("no", "bf16", "fp16"))
        if self.train.embedding_cache not in (True, False, "auto"):
            raise ConfigError(f"train.embedding_cache: {self.train.embedding_cache!r} is not one of [true, false, 'auto']")
        _choice("train.eval_prompt", self.train.eval_prompt, ("box", "points", "box_points"))
        _choice("train.encoder_precision", self.train.encoder_precision, ("fp32", "bf16", "auto"))
        if self.train.eval_at_start not in (True, False, "auto"):
            raise ConfigError(f"train.eval_at_start: {self.train.eval_at_start!r} is not one of [true, false, 'auto']")
        _choice("auto.mode", self.auto.mode, ("none", "tokens"))
        _choice("train.select_metric", self.train.select_metric, ("val_dice", "robust"))
        if self.train.select_metric == "robust" and (self.auto.mode != "tokens" or self.train.eval_loose_px <= 0):
            raise ConfigError("train.select_metric=robust averages tight-box, loose-box and automatic Dice: it needs "
                              "auto.mode=tokens and train.eval_loose_px > 0")
        if self.train.eval_loose_px < 0:
            raise ConfigError(f"train.eval_loose_px: {self.train.eval_loose_px} must be >= 0")
        _check_structures(self.data.structures)
        _check_ranges(self)


def _check_ranges(cfg: ExperimentConfig) -> None:
    """Every numeric and named value in its valid range, checked at load time (an error names the key)."""
    from medsam_echo.data.camus import PHASES, VIEWS
    from medsam_echo.models.profile import PROFILES
    from medsam_echo.models.registry import ARCHITECTURES, TINY_VIT_ARCHITECTURES

    m, d, a, lo, o, t = cfg.model, cfg.data, cfg.data.augment, cfg.loss, cfg.optim, cfg.train
    if not cfg.output_dir.strip():
        raise ConfigError("output_dir: must name a folder")
    if m.source.startswith("scratch:"):
        known = sorted(ARCHITECTURES) + sorted(TINY_VIT_ARCHITECTURES)
        if m.source[len("scratch:"):] not in known:
            raise ConfigError(f"model.source: {m.source!r} names no architecture; use scratch:<{'|'.join(known)}>")
    if m.profile is not None:
        _choice("model.profile", m.profile, tuple(sorted(PROFILES)))
    _choice("model.attn_implementation", m.attn_implementation, ("sdpa", "eager"))
    for key, values, allowed in (("data.views", d.views, VIEWS), ("data.phases", d.phases, PHASES)):
        if not values or not set(values) <= set(allowed) or len(set(values)) != len(values):
            raise ConfigError(f"{key}: {values} must be distinct names from {list(allowed)}")
    for key in ("data.train_split", "data.val_split"):
        _choice(key, _get(cfg, key), ("train", "val", "test"))
    if d.synthetic_patients and d.synthetic_patients < 3:
        raise ConfigError(f"data.synthetic_patients: {d.synthetic_patients} must be 0 (none) or >= 3")
    if len(d.synthetic_size) != 2 or min(d.synthetic_size) < 16:
        raise ConfigError(f"data.synthetic_size: {d.synthetic_size} must be [H, W], both >= 16 px")
    _pairs(cfg, ("data.augment.gamma", "data.augment.contrast", "data.augment.scale"), positive=True)
    for key in ("data.max_train_samples", "data.max_val_samples", "data.num_workers", "data.synthetic_patients",
                "data.augment.speckle", "data.augment.rotation_deg", "data.augment.translate",
                "loss.dice", "loss.bce", "loss.focal", "loss.focal_gamma", "loss.iou", "optim.weight_decay",
                "optim.warmup_steps", "optim.grad_clip", "optim.min_lr_ratio", "train.seed", "train.max_steps",
                "train.max_minutes", "train.save_every_steps", "auto.weight"):
        _at_least(key, _get(cfg, key), 0)
    for key in ("optim.grad_accum", "train.epochs", "train.batch_size", "train.eval_batch_size",
                "train.eval_every_epochs", "train.log_every_steps", "auto.n_tokens"):
        _at_least(key, _get(cfg, key), 1)
    if lo.dice + lo.bce + lo.focal <= 0:
        raise ConfigError("loss.dice, loss.bce, loss.focal: at least one mask loss weight must be > 0")
    if not (math.isfinite(o.lr) and 0 < o.lr <= 1.0):
        raise ConfigError(f"optim.lr: {o.lr} must be > 0 and <= 1 (AdamW diverges beyond that)")
    if o.min_lr_ratio > 1:
        raise ConfigError(f"optim.min_lr_ratio: {o.min_lr_ratio} must be in [0, 1]")
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise ConfigError(f"optim.betas: {o.betas} must be two values in [0, 1), e.g. [0.9, 0.999]")
    if a.translate >= 1:
        raise ConfigError(f"data.augment.translate: {a.translate} must be a fraction of the image, < 1")
    if t.embedding_cache_dir and not t.embedding_cache_dir.strip():
        raise ConfigError("train.embedding_cache_dir: must name a folder or be empty")


def _get(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _at_least(key: str, value: float, low: float) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value} is not a finite number")
    if value < low:
        raise ConfigError(f"{key}: {value} must be >= {low}")


def _pairs(cfg, keys: tuple[str, ...], *, positive: bool) -> None:
    for key in keys:
        value = _get(cfg, key)
        if len(value) != 2 or value[0] > value[1] or (positive and value[0] <= 0):
            raise ConfigError(f"{key}: {value} must be [low, high] with 0 < low <= high")


def _check_structures(structures: list[str]) -> None:
    """``data.structures``: one or more known, distinct names (a duplicate would be prompted twice)."""
    unknown = [s for s in structures if s not in STRUCTURES]
    if not structures or unknown or len(set(structures)) != len(structures):
        raise ConfigError(f"data.structures: {structures} must be distinct names from {sorted(STRUCTURES)}")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}")


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set dotted ``key=value`` pairs in a nested dict (values parsed as YAML: ``1e-4``, ``true``, ``[1, 2]``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        node = data
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {part!r} is not a group")
        node[leaf] = yaml.safe_load(raw)
    return data


def config_from_dict(data: dict) -> ExperimentConfig:
    """Validate a nested dict into an :class:`ExperimentConfig`."""
    return build_dataclass(ExperimentConfig, data, "")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    try:
        return config_from_dict(apply_overrides(data, list(overrides)))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path else str(err)) from None


def to_dict(config) -> dict:
    """Plain nested dict (for YAML / JSON)."""
    return dataclasses.asdict(config)


def to_yaml(config: ExperimentConfig) -> str:
    """The resolved config as YAML text (what ``config.yaml`` of a run holds)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def save_config(config: ExperimentConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    from medsam_echo.atomic import atomic_write_text

    return atomic_write_text(path, to_yaml(config))
