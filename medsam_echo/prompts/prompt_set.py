"""The prompts of one image, one prompt per structure, and their conversion to SamModel tensors.

:class:`Prompts` lives in px of the array it was made on (the original image, usually). Map it into the
model input with a :class:`~medsam_echo.data.transforms.Geometry` (``prompts.to_input(geometry)``), then
stack several images with :func:`to_model_inputs`. ``transformers.SamModel``'s prompt encoder takes
coordinates in model-input px: it adds 0.5 (pixel centres) and divides by its own ``image_size``, so no
normalisation happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch


@dataclass(frozen=True)
class Prompts:
    """Prompts for ``n`` structures of one image (row ``i`` prompts ``structures[i]``).

    Attributes:
        structures: ``n`` structure names (keys of ``medsam_echo.data.sample.STRUCTURES``).
        boxes: ``(n, 4)`` XYXY inclusive px, or ``None``.
        points: ``(n, k, 2)`` ``(x, y)`` px, or ``None``; every structure has the same ``k``.
        labels: ``(n, k)`` int64, 1 positive / 0 negative; present exactly when ``points`` is.
    """

    structures: tuple[str, ...]
    boxes: np.ndarray | None = None
    points: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.structures)
        if len(set(self.structures)) != n or n == 0:
            raise ValueError(f"structures must be non-empty and unique, got {self.structures}")
        if self.boxes is None and self.points is None:
            raise ValueError("prompts need boxes, points or both")
        if self.boxes is not None and np.shape(self.boxes) != (n, 4):
            raise ValueError(f"boxes must have shape ({n}, 4), got {np.shape(self.boxes)}")
        if (self.points is None) != (self.labels is None):
            raise ValueError("points and labels go together")
        if self.points is not None:
            shape = np.shape(self.points)
            if len(shape) != 3 or shape[0] != n or shape[2] != 2:
                raise ValueError(f"points must have shape ({n}, k, 2) (x, y), got {shape}")
            if np.shape(self.labels) != shape[:2]:
                raise ValueError(f"labels must have shape {shape[:2]}, got {np.shape(self.labels)}")

    @property
    def kind(self) -> str:
        """``"box"``, ``"points"`` or ``"box_points"``."""
        if self.points is None:
            return "box"
        return "points" if self.boxes is None else "box_points"

    @property
    def n_points(self) -> int:
        """``k``, the number of points per structure (0 without points)."""
        return 0 if self.points is None else int(np.shape(self.points)[1])

    def to_input(self, geometry) -> Prompts:
        """These prompts in model-input px (float64), through a ``Geometry`` from ``data.transforms``."""
        boxes = None if self.boxes is None else geometry.boxes_to_input(self.boxes)
        points = None
        if self.points is not None:
            flat = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
            points = geometry.points_to_input(flat).reshape(np.shape(self.points))
        return replace(self, boxes=boxes, points=points)

    def add_clicks(self, xy: np.ndarray, labels: np.ndarray) -> Prompts:
        """These prompts with one more point per structure: ``xy`` ``(n, 2)`` ``(x, y)``, ``labels`` ``(n,)``."""
        n = len(self.structures)
        xy, labels = np.asarray(xy), np.asarray(labels, dtype=np.int64)
        if xy.shape != (n, 2) or labels.shape != (n,):
            raise ValueError(
                f"expected clicks (n={n}, 2) and labels ({n},), got {xy.shape} and {labels.shape}"
            )
        if self.points is None:
            return replace(self, points=xy[:, None, :], labels=labels[:, None])
        points = np.concatenate([self.points, xy[:, None, :].astype(np.asarray(self.points).dtype)], axis=1)
        return replace(self, points=points, labels=np.concatenate([self.labels, labels[:, None]], axis=1))


def to_model_inputs(
    prompts: Sequence[Prompts], device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Stack the model-input-px prompts of ``B`` images into keyword arguments for ``SamModel``.

    Args:
        prompts: one :class:`Prompts` per image, already in model-input px, all of the same kind with
            the same number of structures and points (``SamModel`` takes boxes for all images or none).
        device: where the tensors go.

    Returns:
        A subset of ``input_boxes`` ``(B, n, 4)`` float32, ``input_points`` ``(B, n, k, 2)`` float32 (x, y)
        and ``input_labels`` ``(B, n, k)`` int64.
    """
    if not prompts:
        raise ValueError("no prompts to stack")
    first = prompts[0]
    for i, item in enumerate(prompts):
        same = (item.kind, len(item.structures), item.n_points) == (
            first.kind,
            len(first.structures),
            first.n_points,
        )
        if not same:
            raise ValueError(
                f"prompts[{i}] is {item.kind} x {len(item.structures)} structures x {item.n_points} points, "
                f"prompts[0] is {first.kind} x {len(first.structures)} x {first.n_points}: cannot batch them"
            )

    def stack(values: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.stack(values), dtype=dtype, device=device)

    inputs: dict[str, torch.Tensor] = {}
    if first.boxes is not None:
        inputs["input_boxes"] = stack([p.boxes for p in prompts], torch.float32)
    if first.points is not None:
        inputs["input_points"] = stack([p.points for p in prompts], torch.float32)
        inputs["input_labels"] = stack([p.labels for p in prompts], torch.int64)
    return inputs
