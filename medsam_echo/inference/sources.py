"""Where a predictor comes from: a training run, a trained-weights dir, any checkpoint, or a baseline.

Accepted ``source`` values, tried in this order:

1. a baseline name from ``engines.BASELINES`` (``baseline:ellipse``, alias ``box-ellipse``);
2. a training output dir ``RUN`` (holding ``RUN/model/trained.safetensors``) or ``RUN/model`` itself
   (``adapters.persist.save_trained``): base + method + trained weights, LoRA merged for speed;
3. anything :func:`medsam_echo.models.loader.load_sam` reads (``.pth``, ``.safetensors``, HF dir, hub id).

The automatic mode starts from the run's learned prompts (``learned_prompts.safetensors`` beside the
weights, written by a run with ``auto.mode: tokens``) when it has them. Otherwise it needs a
:class:`~medsam_echo.prompts.auto.ViewPrior`; so that a clinician gets one without hand-work, the first
of these is used:

- ``view_prior=`` given (a path or a ViewPrior);
- ``view_prior.json`` in ``RUN/model``, then in ``RUN``;
- the training split of the run's own data (``data.root`` of ``RUN/config.yaml``), fitted on first use
  of the automatic mode and saved as ``RUN/view_prior.json`` for next time.

Otherwise the automatic mode raises an error that says how to provide one. A run's label-map
structures come from ``data.structures`` of ``RUN/config.yaml``. The run folder is read only through
:mod:`medsam_echo.training.run_folder`.

The prompt kinds a source was trained with (:mod:`medsam_echo.prompts.kinds`; they set the predictor's
click behaviour): a run's ``prompt_kinds.json``, else derived from its ``config.yaml``; a checkpoint by its
preprocessing profile (the shipped ``litemedsam`` and MedSAM weights: box only; SAM's own: box, points,
mask), or a ``prompt_kinds.json`` in its transformers directory; ``baseline:ellipse``: box.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from medsam_echo.data.sample import DEFAULT_STRUCTURES, STRUCTURES
from medsam_echo.inference.engines import BASELINES, ENGINES, SamEngine
from medsam_echo.models.assets import SHIPPED
from medsam_echo.prompts.auto import VIEW_PRIOR_FILENAME, ViewPrior, fit_view_prior
from medsam_echo.prompts.kinds import BOX, PromptKinds, kinds_for_profile
from medsam_echo.prompts.learned import load_learned_prompts
from medsam_echo.training.run_folder import FoundRun, find_run

log = logging.getLogger(__name__)
BASELINE_STRUCTURES = ("lv_endo", "lv_epi", "la")  # an ellipse per box: the epicardium is one, not the ring


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LoadedSource:
    """What a predictor is built from: an engine, its label-map structures, its view prior and the prompt
    kinds it was trained with."""

    engine: object
    structures: tuple[str, ...]
    view_prior: ViewPrior | Callable[[], ViewPrior] | None
    name: str
    prompt_kinds: PromptKinds | None = None


def load_source(
    source: str | Path,
    *,
    device: str | torch.device | None = None,
    view_prior: str | Path | ViewPrior | None = None,
    structures: tuple[str, ...] | None = None,
    decoder_precision: str = "fp32",
    compile_decoder: bool = False,
    engine: str = "torch",
) -> LoadedSource:
    """The engine, structures and view prior for ``source`` (module docstring for what is accepted).

    Args:
        source: run dir, ``RUN/model``, checkpoint, hub id or baseline name.
        device: where the model runs; default CUDA when available.
        view_prior: a ``view_prior.json`` path or a :class:`ViewPrior`, overriding the run's.
        structures: label-map structures, overriding the run's ``data.structures``.
        decoder_precision: ``"fp32"`` or ``"bf16"``; compile_decoder: ``torch.compile`` the mask decoder
            (both: see :class:`~medsam_echo.inference.engines.SamEngine`).
        engine: ``"torch"`` or ``"onnx"`` (onnxruntime, CPU: :mod:`medsam_echo.inference.onnx_engine`; an
            ONNX export folder from ``medsam-echo export-onnx`` always runs there, other sources are exported
            to a temporary folder first).
    """
    options = {"decoder_precision": decoder_precision, "compile_decoder": compile_decoder}
    from medsam_echo.models.onnx_export import is_onnx_dir

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "onnx" or is_onnx_dir(source):
        from medsam_echo.inference.onnx_engine import load_onnx_source

        return load_onnx_source(source, device=device, view_prior=view_prior, structures=structures, **options)
    name = str(source)
    prior = ViewPrior.load(view_prior) if isinstance(view_prior, (str, Path)) else view_prior
    if name in BASELINES:
        kinds = PromptKinds((BOX,), origin=f"{name} (a box only)")
        return LoadedSource(BASELINES[name](), tuple(structures or BASELINE_STRUCTURES), prior, name, kinds)
    device = torch.device(device) if device is not None else default_device()
    found = find_run(source)
    if found is None:
        from medsam_echo.models.loader import load_sam

        loaded = load_sam(source, device=device)
        engine = SamEngine(loaded.model, loaded.profile, **options)
        kinds = source_prompt_kinds(source, profile=loaded.profile.name)
        return LoadedSource(engine, tuple(structures or DEFAULT_STRUCTURES), prior, name, kinds)
    learned = load_learned_prompts(found.trained_dir)  # the prompt-free mode, when the run trained one
    engine = SamEngine(*_load_trained(found.trained_dir, device), learned=learned, **options)
    run_structures = found.structures() or DEFAULT_STRUCTURES
    prior = prior or _run_prior(found)
    return LoadedSource(engine, tuple(structures or run_structures), prior, name, found.prompt_kinds())


def source_prompt_kinds(source: str | Path, *, profile: str | None = None) -> PromptKinds:
    """The prompt kinds ``source`` was trained with (module docstring), without loading a model.

    Args:
        source: a baseline name, a run (``RUN``, ``RUN/model``, ``RUN/best``) or a checkpoint.
        profile: a checkpoint's preprocessing profile name (``LoadedSam.profile.name``); needed for
            checkpoints, which say nothing themselves (``"sam"`` assumed without it).
    """
    name = str(source)
    if name in BASELINES:
        return PromptKinds((BOX,), origin=f"{name} (a box only)")
    found = find_run(source)
    if found is not None:
        return found.prompt_kinds()
    path = Path(source)
    saved = PromptKinds.load(path) if path.is_dir() else None
    if saved is not None:
        return saved
    what = f"the shipped {name} weights" if name in SHIPPED else f"checkpoint {name}"
    return kinds_for_profile(profile or "sam", what)


def _load_trained(trained: Path, device: torch.device):
    """Base + method + trained weights on ``device``; LoRA folded into the weights when possible."""
    from medsam_echo.adapters.bottleneck import bottleneck_adapters
    from medsam_echo.adapters.persist import load_trained, merge_lora

    model, loaded = load_trained(trained, device=device)
    if not bottleneck_adapters(model):  # bottleneck adapters are non-linear: they stay modules
        model = merge_lora(model)
    return model.to(device).eval(), loaded.profile


def _run_prior(found: FoundRun):
    """The saved view prior of a run, or a callable fitting it from the run's training data, or ``None``."""
    saved = found.view_prior_path()
    if saved is not None:
        return ViewPrior.load(saved)
    root = found.data_root()
    if root is None:
        return None
    return lambda: fit_prior(root, save_to=found.trained_dir.parent / VIEW_PRIOR_FILENAME)


def fit_prior(root: str | Path, *, save_to: Path | None = None) -> ViewPrior:
    """Fit a :class:`ViewPrior` of every structure on the ``train`` split of a dataset (any layout).

    Args:
        root: the dataset root.
        save_to: also write it there (a read-only place only logs a warning; the prior is returned).
    """
    prior = fit_view_prior(root, "train", tuple(STRUCTURES))
    if save_to is not None:
        try:
            prior.save(save_to)
            log.warning("fitted the automatic-prompt view prior on %s (train); saved to %s", root, save_to)
        except OSError as err:  # a read-only run dir: keep the prior in memory
            log.warning("could not save the view prior to %s: %s", save_to, err)
    return prior
