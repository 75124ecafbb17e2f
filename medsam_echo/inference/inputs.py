"""Check what a user hands the predictor: images and prompts, with errors that say what is wrong.

Prompt rules (px of the original image, ``(x, y)`` order, boxes XYXY with inclusive max indices):

- An empty prompt list (no box, no point, or zero rows) is an error.
- A box with ``x1 < x0`` or ``y1 < y0`` is an error (a box is never silently re-ordered).
- A box partly outside the image is clipped to it (``[0, W - 1] x [0, H - 1]``), as a user dragging
  past the edge means "up to the edge"; a box wholly outside is an error.
- A point outside ``[0, W - 1] x [0, H - 1]`` is an error: a click off the image has no meaning.
- Point labels are 1 (positive) or 0 (negative); without labels every point is positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medsam_echo.prompts.prompt_set import Prompts

_DTYPES = (np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64)


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a 2-D gray ``(H, W)`` or RGB ``(H, W, 3)`` array; a clear error for anything else.

    Accepts uint8, uint16, int16, int32, float32 and float64 intensities, ``(H, W, 1)`` and RGBA
    ``(H, W, 4)`` (alpha dropped). Float images must be finite.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (1, 4):
        image = image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(
            f"expected an image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}"
        )
    if min(image.shape[:2]) < 2:
        raise ValueError(f"image of shape {image.shape} is too small to segment")
    if image.dtype == bool or image.dtype.type not in _DTYPES:
        raise ValueError(f"unsupported image dtype {image.dtype}; use uint8, uint16 or float")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise ValueError("image has NaN or infinite values")
    return image


def _as_float(values, name: str, trailing: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"empty {name}: give at least one")
    if array.shape[-1] != trailing:
        raise ValueError(f"{name} must end in a dimension of {trailing}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return array


def check_boxes(boxes, image_size: tuple[int, int]) -> np.ndarray:
    """Boxes ``(4,)`` or ``(n, 4)`` XYXY px -> ``(n, 4)`` float64 clipped to the ``(H, W)`` image."""
    boxes = _as_float(boxes, "boxes", 4)
    boxes = boxes.reshape(1, 4) if boxes.ndim == 1 else boxes
    if boxes.ndim != 2:
        raise ValueError(f"boxes must be (4,) or (n, 4), got shape {boxes.shape}")
    h, w = image_size
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        if x1 < x0 or y1 < y0:
            raise ValueError(
                f"box {i} {[x0, y0, x1, y1]} has x1 < x0 or y1 < y0; expected XYXY (x0, y0, x1, y1)"
            )
        if x1 < 0 or y1 < 0 or x0 > w - 1 or y0 > h - 1:
            raise ValueError(f"box {i} {[x0, y0, x1, y1]} lies outside the {w} x {h} (W x H) image")
    return np.clip(boxes, 0, [w - 1, h - 1, w - 1, h - 1])


def check_points(points, labels, n: int | None, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(k, 2)`` or ``(n, k, 2)`` ``(x, y)`` px and labels -> ``(n, k, 2)`` float64, ``(n, k)`` int64.

    Args:
        points: one structure's ``k`` points, or ``k`` points for each of ``n`` structures.
        labels: ``(k,)`` / ``(n, k)`` of 0 / 1, or ``None`` for all positive.
        n: number of structures fixed by the boxes, or ``None``.
        image_size: ``(H, W)``.
    """
    points = _as_float(points, "points", 2)
    points = points[None] if points.ndim == 2 else points
    if points.ndim != 3 or (n is not None and points.shape[0] != n):
        expected = "(k, 2) or (n, k, 2)" if n is None else f"(k, 2) for one box or ({n}, k, 2)"
        raise ValueError(f"points must be {expected} (x, y), got shape {points.shape}")
    labels = np.ones(points.shape[:2], np.int64) if labels is None else np.asarray(labels)
    labels = labels[None] if labels.ndim == 1 and points.shape[0] == 1 else labels
    if labels.shape != points.shape[:2]:
        raise ValueError(
            f"point_labels must match the points: expected {points.shape[:2]}, got {labels.shape}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(
            f"point_labels must be 1 (positive) or 0 (negative), got {np.unique(labels).tolist()}"
        )
    h, w = image_size
    outside = (points < 0).any(axis=-1) | (points[..., 0] > w - 1) | (points[..., 1] > h - 1)
    if outside.any():
        bad = points[outside][0].tolist()
        raise ValueError(f"point (x, y) = {bad} lies outside the {w} x {h} (W x H) image")
    return points, labels.astype(np.int64)


def structure_names(structure: str | Sequence[str] | None, n: int) -> tuple[str, ...]:
    """``n`` unique names: the given ones, or ``object_0 ...`` when ``structure`` is ``None``."""
    if structure is None:
        return ("object",) if n == 1 else tuple(f"object_{i}" for i in range(n))
    names = (structure,) if isinstance(structure, str) else tuple(structure)
    if len(names) != n or len(set(names)) != n:
        raise ValueError(f"structure must name each of the {n} prompts once, got {names}")
    return names


def make_prompts(
    image_size: tuple[int, int],
    boxes=None,
    points=None,
    point_labels=None,
    structure: str | Sequence[str] | None = None,
) -> Prompts:
    """Validated :class:`Prompts` in px of an ``(H, W)`` image (module docstring for the rules)."""
    if boxes is None and points is None:
        raise ValueError("no prompt: give boxes, points or both")
    if point_labels is not None and points is None:
        raise ValueError("point_labels given without points")
    checked_boxes = None if boxes is None else check_boxes(boxes, image_size)
    n = None if checked_boxes is None else len(checked_boxes)
    xy = labels = None
    if points is not None:
        xy, labels = check_points(points, point_labels, n, image_size)
        n = xy.shape[0]
    return Prompts(structure_names(structure, n), boxes=checked_boxes, points=xy, labels=labels)
