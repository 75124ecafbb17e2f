"""The view prior: automatic box prompts for a model trained without learned prompts.

A :class:`ViewPrior` holds, per view (2CH / 4CH) and structure, the mean box normalised by the image
size, learned from a training split and saved with the model (``view_prior.json``). The automatic mode
(``inference.automatic``) decodes its boxes once and then prompts with the boxes of the answers, so the
prior only has to land roughly on the structure::

    prior = ViewPrior.load(model_dir)
    first = prior.prompts("4CH", ["lv_endo", "myo", "la"], image.shape)   # Prompts with (3, 4) boxes

Models trained with ``auto.mode: tokens`` start from their learned prompts instead (``prompts/learned.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsam_echo.data.sample import STRUCTURES, EchoSample, structure_mask
from medsam_echo.prompts.boxes import box_from_mask, clip_box
from medsam_echo.prompts.prompt_set import Prompts

VIEW_PRIOR_FILENAME = "view_prior.json"
_FORMAT = "medsam-echo view prior v1"


def normalise_box(box: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Inclusive px box ``(4,)`` -> ``(4,)`` fractions of the image: pixel edges ``x0/W, y0/H, (x1+1)/W, (y1+1)/H``."""
    h, w = image_shape
    return (np.asarray(box, np.float64) + [0, 0, 1, 1]) / [w, h, w, h]


def denormalise_box(fractions: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`normalise_box` on an ``(H, W)`` image: int64 inclusive XYXY px, clipped to it."""
    h, w = image_shape
    edges = np.asarray(fractions, np.float64) * [w, h, w, h]
    return clip_box(np.rint(edges - [0, 0, 1, 1]), image_shape)


@dataclass
class ViewPrior:
    """Mean normalised boxes per view and structure.

    Attributes:
        boxes: ``{view: {structure: [x0, y0, x1, y1]}}`` fractions of the image width / height.
        counts: ``{view: number of labelled images averaged}``.
    """

    boxes: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, samples: Iterable[EchoSample], structures: Sequence[str] = tuple(STRUCTURES)) -> ViewPrior:
        """Average the normalised boxes of ``structures`` over labelled ``samples`` (a training split).

        Raises:
            ValueError: a sample has no label map or no view, or a structure is absent from one.
        """
        sums: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        for sample in samples:
            if sample.label is None or not sample.view:
                raise ValueError(f"{sample.case_id}: the view prior needs labelled samples with a view")
            rows = []
            for name in structures:
                mask = structure_mask(sample.label, name)
                if not mask.any():
                    raise ValueError(f"{sample.case_id}: structure {name!r} is absent")
                rows.append(normalise_box(box_from_mask(mask), mask.shape))
            sums[sample.view] = sums.get(sample.view, 0) + np.stack(rows)
            counts[sample.view] = counts.get(sample.view, 0) + 1
        if not counts:
            raise ValueError("no samples to fit the view prior on")
        boxes = {
            view: {
                name: (sums[view][i] / counts[view]).round(6).tolist() for i, name in enumerate(structures)
            }
            for view in sums
        }
        return cls(boxes, counts)

    def prompts(self, view: str, structures: Sequence[str], image_shape: tuple[int, int]) -> Prompts:
        """Box prompts ``(n, 4)`` int64 px on an ``(H, W)`` image of ``view``."""
        if view not in self.boxes:
            raise KeyError(f"view prior has no view {view!r}; it knows {sorted(self.boxes)}")
        missing = [s for s in structures if s not in self.boxes[view]]
        if missing:
            raise KeyError(f"view prior for {view!r} has no structures {missing}")
        boxes = np.stack([denormalise_box(self.boxes[view][s], image_shape) for s in structures])
        return Prompts(tuple(structures), boxes=boxes)

    def save(self, path: str | Path) -> Path:
        """Write JSON to ``path`` (a directory gets ``view_prior.json``); returns the file path."""
        path = Path(path)
        path = path / VIEW_PRIOR_FILENAME if path.is_dir() else path
        path.write_text(
            json.dumps({"format": _FORMAT, "boxes": self.boxes, "counts": self.counts}, indent=2) + "\n"
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ViewPrior:
        """Read a prior written by :meth:`save` (a file or a model directory holding one)."""
        path = Path(path)
        path = path / VIEW_PRIOR_FILENAME if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"no view prior at {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if (
            not isinstance(data, dict)
            or data.get("format") != _FORMAT
            or not isinstance(data.get("boxes"), dict)
        ):
            raise ValueError(f"{path}: not a view prior (expected format {_FORMAT!r} with 'boxes')")
        for view, per in data["boxes"].items():
            for name, box in per.items():
                ok = name in STRUCTURES and isinstance(box, list) and len(box) == 4
                ok = ok and box[0] <= box[2] and box[1] <= box[3]
                if not ok or not all(0.0 <= v <= 1.0 for v in box):
                    raise ValueError(f"{path}: bad box for view {view!r}, structure {name!r}: {box}")
        return cls(data["boxes"], {k: int(v) for k, v in data.get("counts", {}).items()})


def fit_view_prior(root, split: str = "train", structures: Sequence[str] = tuple(STRUCTURES)) -> ViewPrior:
    """Fit a :class:`ViewPrior` on the ``split`` of the dataset at ``root`` (any layout ``open_dataset`` reads).

    Raises:
        ValueError: the split is empty, or a sample has no label, no view or lacks a structure.
    """
    from medsam_echo.data.open import open_dataset

    samples = open_dataset(root, split)
    if len(samples) == 0:
        raise ValueError(f"{root}: no {split} cases to fit the view prior on")
    return ViewPrior.fit(samples, structures)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two inclusive XYXY px boxes ``(4,)`` (areas count whole pixels)."""
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]) + 1, 0, None).prod()
    area_a, area_b = ((box[2:] - box[:2] + 1).prod() for box in (a, b))
    return float(inter / (area_a + area_b - inter))


def prior_box_iou(prior: ViewPrior, samples, structures: list[str]) -> dict[str, float]:
    """Mean IoU per structure between the prior's boxes and the true boxes of labelled ``samples``."""
    scores: dict[str, list[float]] = {name: [] for name in structures}
    for sample in samples:
        for name in structures:
            true = box_from_mask(structure_mask(sample.label, name))
            guess = denormalise_box(prior.boxes[sample.view][name], sample.label.shape)
            scores[name].append(box_iou(guess, true))
    return {name: float(np.mean(values)) for name, values in scores.items()}
