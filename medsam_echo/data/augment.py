"""Seeded training augmentations usual in echo, applied consistently to an image and its label map.

Intensity changes (gamma, contrast, multiplicative speckle) touch the image only; the geometric change
(small rotation about the image centre, isotropic scale in mm, translation) is one affine map applied to
the image (bilinear) and the label map (nearest), so labels stay aligned and keep their values. The
rotation is made in mm, not px, so that on anisotropic grids (``sx != sy``) a rotated heart keeps its shape.

Reproducibility: pass an explicit ``numpy.random.Generator``; e.g. ``np.random.default_rng((seed, epoch,
index))`` gives every sample of every epoch its own, repeatable draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentations; each range is sampled uniformly.

    Attributes:
        gamma: range of the gamma exponent on intensities scaled to [0, 1] (1 = unchanged).
        contrast: range of the contrast factor about the image mean (1 = unchanged).
        speckle: std of the multiplicative noise ``image * (1 + speckle * N(0, 1))`` (0 = none).
        rotation_deg: maximum absolute rotation in degrees.
        scale: range of the zoom factor (1 = unchanged).
        translate: maximum shift as a fraction of the image side, along x and y independently.
    """

    gamma: tuple[float, float] = (0.7, 1.5)
    contrast: tuple[float, float] = (0.8, 1.25)
    speckle: float = 0.1
    rotation_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05

    def __post_init__(self) -> None:
        for name in ("gamma", "contrast", "scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"AugmentConfig.{name} must be a range 0 < low <= high, got {(low, high)}")
        if self.speckle < 0 or self.rotation_deg < 0 or not 0 <= self.translate < 0.5:
            raise ValueError("AugmentConfig: speckle and rotation_deg must be >= 0 and translate in [0, 0.5)")


NO_AUGMENT = AugmentConfig(
    gamma=(1, 1), contrast=(1, 1), speckle=0.0, rotation_deg=0.0, scale=(1, 1), translate=0.0
)


def augment(
    image: np.ndarray,
    label: np.ndarray | None,
    rng: np.random.Generator,
    config: AugmentConfig = AugmentConfig(),
    spacing: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray | None]:
    """Randomly augment one image and its label map.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)``, uint8, uint16 or float.
        label: ``(H, W)`` integer label map or ``None``.
        rng: the random generator; the same generator state gives the same result.
        config: augmentation ranges.
        spacing: ``(sx, sy)`` mm per px, so the rotation is a rotation in mm.

    Returns:
        ``(image, label)`` with the input shapes and dtypes; padding is 0 (background).
    """
    if label is not None and label.shape != image.shape[:2]:
        raise ValueError(f"label shape {label.shape} differs from image shape {image.shape[:2]}")
    matrix = random_affine(image.shape[:2], rng, config, spacing)
    out = _intensity(image.astype(np.float32), rng, config)
    out = _warp(out, matrix, cv2.INTER_LINEAR)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    out = out.astype(image.dtype)
    return out, None if label is None else _warp_label(label, matrix)


def random_affine(
    size: tuple[int, int],
    rng: np.random.Generator,
    config: AugmentConfig,
    spacing: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Draw a ``(2, 3)`` affine map, original ``(x, y)`` px -> augmented px (``cv2.warpAffine``'s form).

    Rotation and zoom are about the image centre and made in mm (through ``spacing``), then the
    translation, up to ``config.translate`` times the width / height, is added.
    """
    height, width = size
    angle = np.deg2rad(rng.uniform(-config.rotation_deg, config.rotation_deg))
    zoom = rng.uniform(*config.scale)
    shift = rng.uniform(-config.translate, config.translate, size=2) * (width, height)
    to_mm = np.diag(spacing)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = np.linalg.inv(to_mm) @ (zoom * rotation) @ to_mm  # rotate and zoom in mm, expressed in px
    center = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    offset = center - linear @ center + shift
    return np.hstack([linear, offset[:, None]])


def _intensity(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Gamma, contrast and speckle on a float image, in its own intensity range (clipped to it)."""
    low, high = float(image.min()), float(image.max())
    span = max(high - low, 1e-8)
    unit = ((image - low) / span) ** rng.uniform(*config.gamma)
    unit = (unit - unit.mean()) * rng.uniform(*config.contrast) + unit.mean()
    if config.speckle > 0:
        noise = 1.0 + config.speckle * rng.standard_normal(unit.shape[:2]).astype(np.float32)
        unit = unit * (noise[..., None] if unit.ndim == 3 else noise)  # same speckle on every channel
    return np.clip(unit, 0.0, 1.0) * span + low


def _warp_label(label: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Nearest-neighbour warp of an integer label map (values 0..255); keeps its dtype."""
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"label values must lie in 0..255, got {label.min()}..{label.max()}")
    return _warp(label.astype(np.uint8), matrix, cv2.INTER_NEAREST).astype(label.dtype)


def _warp(array: np.ndarray, matrix: np.ndarray, interpolation: int) -> np.ndarray:
    height, width = array.shape[:2]
    return cv2.warpAffine(
        array, matrix, (width, height), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
