"""The run folder: what a training run writes and every later stage reads, written and read here only.

    RUN/
      config.yaml       the resolved ExperimentConfig, read back through its typed schema
      metrics.jsonl     one validation record per line (step 0: before fine-tuning)
      base/             a from-scratch run's initial weights (its base checkpoint)
      model/, best/     trained weights, method.json, base.json (adapters.persist), view_prior.json and
                        prompt_kinds.json (the prompt kinds trained with: prompts.kinds)
      checkpoints/      step-N/ and `latest` (training.checkpoint)

Training writes through :class:`RunFolder`; the predictor, ``convert-checkpoint`` and the notebooks find a
run's trained weights, structures and view prior through :func:`find_run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from medsam_echo.adapters.persist import TRAINED_FILE, save_trained
from medsam_echo.atomic import atomic_write_dir, atomic_write_text
from medsam_echo.prompts.auto import VIEW_PRIOR_FILENAME, ViewPrior
from medsam_echo.prompts.kinds import BOX, PromptKinds, kinds_from_config
from medsam_echo.prompts.learned import LearnedPrompts
from medsam_echo.training.config import ExperimentConfig, load_config, to_yaml

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
MODEL, BEST, BASE = "model", "best", "base"


@dataclass(frozen=True)
class RunFolder:
    """Paths and files of one run folder (``root``); nothing is read until asked for."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def base_dir(self) -> Path:
        return self.root / BASE

    def trained_dir(self, which: str = MODEL) -> Path:
        """``RUN/model`` (the last weights) or ``RUN/best`` (the best validation Dice)."""
        return self.root / which

    def write_config(self, cfg: ExperimentConfig) -> Path:
        """Write the resolved config, atomically."""
        return atomic_write_text(self.config_path, to_yaml(cfg))

    def config(self) -> ExperimentConfig | None:
        """The run's config through the typed schema; ``None`` when the folder has none."""
        return load_config(self.config_path) if self.config_path.is_file() else None

    def append_metrics(self, record: dict) -> None:
        """Add one validation record to ``metrics.jsonl``."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.metrics_path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")

    def keep_metrics_up_to(self, step: int) -> None:
        """Drop the records after ``step`` (a resumed run validates those steps again), atomically."""
        records = self.metrics()
        kept = [r for r in records if r.get("step", 0) <= step]
        if len(kept) < len(records):
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def metrics(self) -> list[dict]:
        """Every validation record, in order."""
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def save_model(self, model, cfg: ExperimentConfig, which: str, *, base: str, profile,
                   view_prior: ViewPrior | None, learned: LearnedPrompts | None = None) -> Path:
        """Write ``RUN/<which>``: trained weights, method, base reference, the prompt kinds trained with
        (``prompt_kinds.json``, from ``cfg``), the view prior and the learned prompts of the automatic mode
        if any.

        The folder is filled under a temporary name and renamed, so a crash never leaves weights of one
        step next to the view prior or method of another.
        """
        def fill(tmp: Path) -> None:
            save_trained(model, cfg.method, tmp, base=base, profile=profile)
            kinds_from_config(cfg).save(tmp)  # what the predictor's clicks may rely on
            if view_prior is not None:
                view_prior.save(tmp)  # automatic prompts for `predict --prompt auto`
            if learned is not None:
                learned.save(tmp)  # the prompt-free mode (auto.mode: tokens)

        return atomic_write_dir(self.trained_dir(which), fill)


@dataclass(frozen=True)
class FoundRun:
    """A trained-weights folder and, when it sits in one, its run folder."""

    trained_dir: Path
    run: RunFolder | None

    def structures(self) -> tuple[str, ...] | None:
        """``data.structures`` of the run's config (``None`` without one)."""
        cfg = self.run.config() if self.run is not None else None
        return tuple(cfg.data.structures) if cfg is not None else None

    def data_root(self) -> Path | None:
        """The run's training data, when its config names one that exists here."""
        cfg = self.run.config() if self.run is not None else None
        root = Path(cfg.data.root) if cfg is not None and cfg.data.root else None
        return root if root is not None and root.exists() else None

    def prompt_kinds(self) -> PromptKinds:
        """The prompt kinds the weights were trained with: ``prompt_kinds.json`` beside them, else derived
        from the run's ``config.yaml`` (runs older than the file), else box only (nothing says more)."""
        saved = PromptKinds.load(self.trained_dir)
        if saved is not None:
            return saved
        cfg = self.run.config() if self.run is not None else None
        if cfg is not None:
            derived = kinds_from_config(cfg)
            return PromptKinds(derived.kinds, origin=f"{self.run.config_path} ({derived.origin})", detail=derived.detail)
        return PromptKinds((BOX,), origin=f"{self.trained_dir}: no prompt_kinds.json or config.yaml (box assumed)")

    def view_prior_path(self) -> Path | None:
        """``view_prior.json`` beside the weights, else in the run folder; ``None`` when neither has one."""
        places = [self.trained_dir, *([self.run.root] if self.run is not None else [])]
        return next((d / VIEW_PRIOR_FILENAME for d in places if (d / VIEW_PRIOR_FILENAME).is_file()), None)


def find_run(source: str | Path) -> FoundRun | None:
    """``RUN`` (its ``model/``), ``RUN/model``, ``RUN/best`` or any folder ``save_trained`` wrote; ``None``
    for other sources (checkpoint files, model directories, hub ids)."""
    path = Path(source)
    for candidate in (path, path / MODEL):
        if (candidate / TRAINED_FILE).is_file():
            parent = candidate.parent
            run = RunFolder(parent) if (parent / CONFIG_FILE).is_file() else None
            return FoundRun(candidate, run)
    return None
