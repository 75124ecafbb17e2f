"""Benchmark presets: which model, methods, batch sizes and variants one ``medsam-echo bench`` run measures.

Every (method, batch size) pair is measured as a group of *variants* built on the same synthetic images and
the same initial weights, and timed in interleaved rounds, so that their ratios hold on a shared machine:

| variant          | what it is                                                                          |
|------------------|-------------------------------------------------------------------------------------|
| ``baseline``     | MedSAM-style loop (:mod:`medsam_echo.bench.baseline`): fp32, eager attention, prompts made in the Dataset, default AdamW |
| ``ours``         | the training engine with the preset's precision and SDPA attention                   |
| ``ours_fp32``    | ``ours`` in fp32 (separates the precision's share of the speed-up from the rest)    |
| ``ours_bf16``    | ``ours`` in bf16 autocast (where the preset's own precision is fp32)                 |
| ``ours_grad_ckpt`` | ``ours`` with gradient checkpointing in the image encoder (memory vs time)        |
| ``ours_compile`` | ``ours`` with ``torch.compile`` on the image encoder; its first step includes compiling |

``ours_grad_ckpt`` is skipped for methods whose encoder gets no gradient (``decoder_only``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

VARIANTS = ("baseline", "ours", "ours_fp32", "ours_bf16", "ours_grad_ckpt", "ours_compile")


@dataclass(frozen=True)
class BenchPreset:
    """One benchmark configuration.

    Attributes:
        architecture: a name in ``medsam_echo.models.registry.ARCHITECTURES`` (built with random weights).
        methods: fine-tuning methods to time (``medsam_echo.adapters.methods.METHODS``).
        batch_sizes: training batch sizes to time for every method.
        variants: which of ``VARIANTS`` to build for every (method, batch size).
        mixed_precision: the engine's ``train.mixed_precision`` for ``ours`` (``no`` / ``bf16``).
        num_workers: the engine's ``data.num_workers`` (the baseline loads in the main process, as MedSAM).
        warmup: untimed steps per variant (allocator, oneDNN / cuDNN autotuning).
        rounds: interleaved timing rounds; each times ``steps`` steps of every variant.
        steps: timed steps per variant and round.
        cache_images: images in the frozen-encoder epoch that compares recomputing with the cache.
        cache_batch: batch size of that epoch.
        inference_repeats: timed encoder / decoder calls (batch 1) for the latency figures.
        synthetic_size: ``(H, W)`` px of the synthetic echo images (resized to the model input).
        headline: ``(method, batch size)`` reported as the top-level ``train_img_s``.
    """

    architecture: str
    methods: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    variants: tuple[str, ...] = ("baseline", "ours", "ours_fp32", "ours_grad_ckpt")
    mixed_precision: str = "bf16"
    num_workers: int = 0
    warmup: int = 2
    rounds: int = 3
    steps: int = 3
    cache_images: int = 32
    cache_batch: int = 4
    inference_repeats: int = 10
    synthetic_size: tuple[int, int] = (192, 160)
    headline: tuple[str, int] = ("medsam_full", 4)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
        if "baseline" not in self.variants or "ours" not in self.variants:
            raise ValueError("a preset must measure both 'baseline' and 'ours' (every figure is a ratio)")
        if self.headline[0] not in self.methods or self.headline[1] not in self.batch_sizes:
            raise ValueError(f"headline {self.headline} is not among the measured methods and batch sizes")
        if min(self.warmup, self.rounds, self.steps) < 1:
            raise ValueError("warmup, rounds and steps must be >= 1 (the first step is never timed)")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision {self.mixed_precision!r}: choose 'no' or 'bf16'")

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, BenchPreset] = {
    # Seconds-long smoke run (tests): every code path once, figures meaningless.
    "micro": BenchPreset(
        architecture="tiny", methods=("medsam_full",), batch_sizes=(2,), variants=("baseline", "ours"),
        warmup=1, rounds=1, steps=1, cache_images=4, cache_batch=2, inference_repeats=1,
        synthetic_size=(80, 64), headline=("medsam_full", 2),
    ),
    # The quickstart model (0.5 M parameters, 128 px): loop overheads dominate.
    # At width 64, bf16 autocast costs more in casts than it saves, so ``ours`` is fp32 here.
    "cpu-tiny": BenchPreset(
        architecture="tiny", methods=("medsam_full", "lora_encoder", "decoder_only"), batch_sizes=(4, 8),
        variants=("baseline", "ours", "ours_bf16", "ours_grad_ckpt"), mixed_precision="no", warmup=2, rounds=3, steps=3, cache_images=32, cache_batch=4, headline=("medsam_full", 8),
    ),
    # A ViT of width 256 and depth 6 at 256 px (32 x 32 tokens) with ViT-B's 256-wide decoder.
    "cpu-small": BenchPreset(
        architecture="small", methods=("medsam_full", "decoder_only"), batch_sizes=(4,),
        warmup=1, rounds=2, steps=2, cache_images=16, cache_batch=4, inference_repeats=5,
        headline=("medsam_full", 4),
    ),
    # ViT-B at 1024 px, bf16 (needs a CUDA GPU; an out-of-memory configuration is recorded, not fatal).
    "gpu-vitb": BenchPreset(
        architecture="vit_b", methods=("medsam_full", "lora_encoder", "decoder_only"), batch_sizes=(1, 4, 8, 16),
        variants=("baseline", "ours", "ours_fp32", "ours_grad_ckpt", "ours_compile"), num_workers=6, warmup=3, rounds=3, steps=5, cache_images=64, cache_batch=8, inference_repeats=20,
        synthetic_size=(384, 320), headline=("medsam_full", 4),
    ),
}


def get_preset(name: str) -> BenchPreset:
    """The preset called ``name``; a ``KeyError`` lists the known ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown bench preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]
