"""Any model source to an ONNX export, and an export (or any source) to a predictor on onnxruntime.

    export_source("runs/camus_lora", "exports/camus_lora")   # what `medsam-echo export-onnx` runs
    predictor = EchoPredictor.from_source("exports/camus_lora", engine="onnx")

:func:`export_source` takes every source ``inference.sources`` takes, loaded the same way:

- ``litemedsam`` and other checkpoints (``.pth``, ``.safetensors``, transformers folder, hub id);
- ``scratch:<architecture>``: a randomly initialised model (``models.registry``; seeded, for tests);
- a run (``RUN``, ``RUN/model``, ``RUN/best``): base + method + trained weights, LoRA merged into the
  weights first (bottleneck adapters are exported as the modules they are), with the run's learned prompts
  (``learned_decoder.onnx``, so that ``segment()`` works unchanged), label-map structures, prompt kinds,
  view prior and training-data root.

:func:`load_onnx_source` is what ``load_source(..., engine="onnx")`` calls: an export folder is opened as it
is; any other source is first exported into a temporary folder (a minute for LiteMedSAM on 2 cores; export
once with ``medsam-echo export-onnx`` to skip that).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import torch

from medsam_echo.models.onnx_export import MANIFEST_FILE, export_onnx, is_onnx_dir, read_manifest

log = logging.getLogger(__name__)
SCRATCH = "scratch:"


def export_source(source: str | Path, out_dir: str | Path, *, profile: str | None = None, seed: int = 0,
                  opset: int | None = None, log_fn=None) -> dict:
    """Export ``source`` (module docstring) to ``out_dir`` as :func:`~medsam_echo.models.onnx_export.export_onnx`
    writes it; returns the manifest.

    Args:
        source: checkpoint, hub id, shipped name, ``scratch:<architecture>`` or run folder.
        out_dir: the export folder (replaced when it exists, once the new one is complete).
        profile: the preprocessing profile of a checkpoint or scratch model (default: the loader's choice;
            ``sam`` for scratch models, as training uses); a run keeps its own.
        seed: the initialisation of a scratch model.
        opset: ONNX opset (default: the exporter's).

    Raises:
        ValueError: a baseline name (no model to export), or the source cannot be read.
        ImportError: the ``onnx`` extra is missing.
    """
    from medsam_echo.inference.engines import BASELINES
    from medsam_echo.prompts.auto import VIEW_PRIOR_FILENAME
    from medsam_echo.training.run_folder import find_run

    name = str(source)
    if name in BASELINES:
        raise ValueError(f"{name} is a prompt-only baseline, not a model: there is nothing to export to ONNX")
    if is_onnx_dir(source):
        raise ValueError(f"{source} is an ONNX export already ({MANIFEST_FILE}); export the model it came from")
    common = dict(source=name, opset=opset, log_fn=log_fn)
    if name.startswith(SCRATCH):
        from medsam_echo.models.profile import get_profile
        from medsam_echo.models.registry import build_sam

        model = build_sam(name[len(SCRATCH):], seed=seed)
        chosen = get_profile(profile or "sam", model.config.vision_config.image_size)
        return export_onnx(model, chosen, out_dir, **common)
    found = find_run(source)
    if found is None:
        from medsam_echo.inference.sources import source_prompt_kinds
        from medsam_echo.models.loader import load_sam

        loaded = load_sam(source, profile=profile)
        kinds = source_prompt_kinds(source, profile=loaded.profile.name)
        return export_onnx(loaded.model, loaded.profile, out_dir, prompt_kinds=kinds, **common)
    if profile is not None:
        raise ValueError(f"{source} is a run: it keeps the preprocessing profile it was trained with (no --profile)")
    from medsam_echo.inference.sources import _load_trained
    from medsam_echo.prompts.learned import load_learned_prompts

    model, run_profile = _load_trained(found.trained_dir, torch.device("cpu"))
    learned = load_learned_prompts(found.trained_dir)
    prior = found.view_prior_path()
    copies = [prior] if prior is not None and prior.name == VIEW_PRIOR_FILENAME else []
    root = found.data_root()
    return export_onnx(model, run_profile, out_dir, learned=learned, structures=found.structures(),
                       copy_files=copies, prompt_kinds=found.prompt_kinds(),
                       data_root=str(root.resolve()) if root is not None else None, **common)


def load_onnx_source(source: str | Path, *, device=None, view_prior=None, structures=None,
                     decoder_precision: str = "fp32", compile_decoder: bool = False, threads: int | None = None):
    """A :class:`~medsam_echo.inference.sources.LoadedSource` on the ONNX engine (module docstring).

    Args:
        source: an export folder, or any source :func:`export_source` takes (exported to a temporary folder).
        device: ``None`` or the CPU (onnxruntime's CPU provider is what the engine runs).
        view_prior: a path or :class:`~medsam_echo.prompts.auto.ViewPrior` overriding the saved one.
        structures: label-map structures overriding the saved ones.
        decoder_precision, compile_decoder: torch options; only their defaults are accepted here.
        threads: onnxruntime intra-op threads (default ``torch.get_num_threads()``).
    """
    from medsam_echo.inference.engines import BASELINES

    if str(source) in BASELINES:
        raise ValueError(f"{source} is a prompt-only baseline: it has no ONNX engine (drop engine='onnx')")
    if device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"the onnx engine runs on onnxruntime's CPU provider; device {device!r} is not the CPU")
    if decoder_precision != "fp32" or compile_decoder:
        raise ValueError("decoder_precision and compile_decoder are torch engine options; the onnx engine runs "
                         "its fp32 graphs as exported")
    if is_onnx_dir(source):
        return _from_export(Path(source), str(source), view_prior, structures, threads)
    if Path(source).is_dir() and any(Path(source).glob("*.onnx")):
        read_manifest(source)  # graphs without their manifest: the error names the missing onnx_model.json
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medsam-echo-onnx-") as tmp:
        export_source(source, Path(tmp) / "onnx")
        loaded = _from_export(Path(tmp) / "onnx", str(source), view_prior, structures, threads, keep_prior=False)
    if loaded.prompt_kinds is not None:  # read from the temporary folder: say where they came from
        from medsam_echo.prompts.kinds import PromptKinds

        kinds = loaded.prompt_kinds
        loaded.prompt_kinds = PromptKinds(kinds.kinds, origin=f"{source} (exported to ONNX)", detail=kinds.detail)
    log.warning("exported %s to ONNX in a temporary folder (%.0f s); `medsam-echo export-onnx %s OUT_DIR` "
                "keeps it for next time", source, time.perf_counter() - start, source)
    if loaded.view_prior is None and view_prior is None:
        from medsam_echo.inference.sources import _run_prior
        from medsam_echo.training.run_folder import find_run

        found = find_run(source)
        loaded.view_prior = _run_prior(found) if found is not None else None  # fitted and saved in the run
    return loaded


def _from_export(directory: Path, name: str, view_prior, structures, threads, *, keep_prior: bool = True):
    from medsam_echo.data.sample import DEFAULT_STRUCTURES
    from medsam_echo.inference.engines import OnnxEngine
    from medsam_echo.inference.sources import LoadedSource, fit_prior
    from medsam_echo.prompts.auto import VIEW_PRIOR_FILENAME, ViewPrior
    from medsam_echo.prompts.kinds import PromptKinds

    engine = OnnxEngine(directory, threads=threads)
    manifest = read_manifest(directory, check_files=False)
    prior = ViewPrior.load(view_prior) if isinstance(view_prior, (str, Path)) else view_prior
    saved = directory / VIEW_PRIOR_FILENAME
    if prior is None and saved.is_file():
        prior = ViewPrior.load(saved)
    root = manifest.get("data_root")
    if prior is None and keep_prior and root and Path(root).exists():
        prior = lambda: fit_prior(root, save_to=saved)  # noqa: E731  (fitted on first use, as for a run)
    kinds = PromptKinds.load(directory)
    chosen = tuple(structures or manifest.get("structures") or DEFAULT_STRUCTURES)
    return LoadedSource(engine, chosen, prior, name, kinds)
