"""A model's preprocessing applied to an image, its label map and its prompts together.

:func:`preprocess` follows a :class:`~medsam_echo.models.profile.PreprocessProfile` and returns a
:class:`Geometry` that maps prompts into the model input and predictions back onto the original grid.

Coordinate convention (the one SAM's prompt encoder uses, which adds 0.5 to every coordinate): pixel
``i`` covers the continuous interval ``[i, i + 1)``, so a point at pixel index ``x`` sits at ``x + 0.5``.
With a scale ``s`` (model px per original px) a point maps to ``(x + 0.5) * s - 0.5`` and an inclusive
box ``[x0, x1]`` (its pixels cover ``[x0, x1 + 1)``) maps to ``[x0 * s, (x1 + 1) * s - 1]``. Both maps are
exact inverses of their ``*_to_original`` counterparts.

Label maps are resized by nearest neighbour at pixel centres, so when the model input is at least as
large as the image, ``geometry.to_original(preprocessed.label)`` gives back the original label map
exactly, for both profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from medsam_echo.models.profile import PreprocessProfile


@dataclass(frozen=True)
class Geometry:
    """Where an original ``(H, W)`` image lies inside the square ``(S, S)`` model input.

    Attributes:
        original_size: ``(H, W)`` of the original image in px.
        input_size: ``S``, the side of the model input in px.
        valid_size: ``(h, w)`` of the resized, unpadded image inside the model input (top-left aligned).
    """

    original_size: tuple[int, int]
    input_size: int
    valid_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """``(scale_x, scale_y)``: model-input px per original px along x and y."""
        return self.valid_size[1] / self.original_size[1], self.valid_size[0] / self.original_size[0]

    @property
    def valid_box(self) -> np.ndarray:
        """The unpadded region as an inclusive XYXY box ``(4,)`` in model-input px."""
        return np.array([0, 0, self.valid_size[1] - 1, self.valid_size[0] - 1], dtype=np.float64)

    def points_to_input(self, points: np.ndarray) -> np.ndarray:
        """Map points ``(N, 2)`` ``(x, y)`` from original px to model-input px (float64)."""
        return (np.asarray(points, dtype=np.float64) + 0.5) * self.scale - 0.5

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        """Map points ``(N, 2)`` ``(x, y)`` from model-input px back to original px (float64)."""
        return (np.asarray(points, dtype=np.float64) + 0.5) / self.scale - 0.5

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Map inclusive XYXY boxes ``(N, 4)`` from original px to model-input px (float64)."""
        scale = np.tile(self.scale, 2)
        offset = np.array([0.0, 0.0, 1.0, 1.0])
        return (np.asarray(boxes, dtype=np.float64) + offset) * scale - offset

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map inclusive XYXY boxes ``(N, 4)`` from model-input px back to original px (float64)."""
        scale = np.tile(self.scale, 2)
        offset = np.array([0.0, 0.0, 1.0, 1.0])
        return (np.asarray(boxes, dtype=np.float64) + offset) / scale - offset

    def to_original(self, array, *, mode: str | None = None):
        """Map a model-resolution prediction onto the original ``(H, W)`` grid.

        Args:
            array: numpy array or torch tensor ``(..., R, R)``. Label maps / masks (integer or bool)
                must have ``R == S``; logits / probabilities (float) may be at any ``R`` (e.g. SAM's
                256 px low-res masks) and are first resized to ``S``, as SAM's postprocessing does.
            mode: ``"nearest"`` (sample at original pixel centres) or ``"bilinear"``; by default
                nearest for integer / bool input and bilinear for float input.

        Returns:
            The same type as ``array``, shape ``(..., H, W)``. Torch input stays differentiable, so
            losses can be computed at the original resolution.
        """
        is_torch = type(array).__module__.startswith("torch")
        is_float = array.is_floating_point() if is_torch else np.issubdtype(array.dtype, np.floating)
        mode = mode or ("bilinear" if is_float else "nearest")
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"unknown mode {mode!r}; choose 'nearest' or 'bilinear'")
        side = array.shape[-1]
        if array.shape[-2] != side or (mode == "nearest" and side != self.input_size):
            raise ValueError(
                f"expected a prediction (..., {self.input_size}, {self.input_size}), "
                f"got shape {tuple(array.shape)}"
            )
        if mode == "nearest":
            rows, cols = _center_indices(self.original_size, self.scale)
            if is_torch:
                import torch

                rows, cols = torch.from_numpy(rows).to(array.device), torch.from_numpy(cols).to(array.device)
            return array[..., rows[:, None], cols[None, :]]
        return _bilinear_to_original(array, self, is_torch)


def _center_indices(size: tuple[int, int], scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Indices in the other grid of the pixels whose centres hold this grid's pixel centres."""
    rows = np.floor((np.arange(size[0]) + 0.5) * scale[1]).astype(np.int64)
    cols = np.floor((np.arange(size[1]) + 0.5) * scale[0]).astype(np.int64)
    return rows, cols


def _bilinear_to_original(array, geometry: Geometry, is_torch: bool):
    import torch
    import torch.nn.functional as F

    tensor = array if is_torch else torch.from_numpy(np.ascontiguousarray(array))
    lead = tensor.shape[:-2]
    flat = tensor.reshape(-1, 1, *tensor.shape[-2:])
    size = geometry.input_size
    if flat.shape[-1] != size:
        flat = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
    h, w = geometry.valid_size
    flat = F.interpolate(flat[..., :h, :w], size=geometry.original_size, mode="bilinear", align_corners=False)
    out = flat.reshape(*lead, *geometry.original_size)
    return out if is_torch else out.numpy()


@dataclass
class Preprocessed:
    """One image ready for the model.

    Attributes:
        pixel_values: ``(3, S, S)`` float32, normalised as the profile says; padding is 0.
        label: ``(S, S)`` uint8 label map (nearest neighbour, padding 0) or ``None``.
        geometry: maps prompts and predictions between the original image and the model input.
    """

    pixel_values: np.ndarray
    label: np.ndarray | None
    geometry: Geometry


def make_geometry(original_size: tuple[int, int], profile: PreprocessProfile) -> Geometry:
    """The :class:`Geometry` of an ``(H, W)`` image under ``profile``."""
    h, w = (int(v) for v in original_size)
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {(h, w)}")
    size = profile.image_size
    if profile.resize == "stretch":
        return Geometry((h, w), size, (size, size))
    scale = size / max(h, w)  # segment-anything's ResizeLongestSide.get_preprocess_shape
    return Geometry((h, w), size, (int(h * scale + 0.5), int(w * scale + 0.5)))


def preprocess(
    image: np.ndarray, profile: PreprocessProfile, label: np.ndarray | None = None
) -> Preprocessed:
    """Resize, normalise and pad an image (and its label map) for a model with ``profile``.

    Args:
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; uint8, uint16 or float. For the ``imagenet``
            normalisation uint8 is used as 0-255 intensities and other dtypes are min-max rescaled to
            0-255 per image first; ``minmax`` rescales every image to [0, 1].
        profile: the model's preprocessing profile.
        label: ``(H, W)`` integer label map, or ``None``.

    Returns:
        :class:`Preprocessed` with ``pixel_values`` ``(3, S, S)`` float32 and ``label`` ``(S, S)`` uint8.
    """
    resized, geometry = resize_image(image, profile)
    label = None if label is None else preprocess_label(label, geometry)
    return Preprocessed(normalize_and_pad(resized, profile), label, geometry)


def resize_image(image: np.ndarray, profile: PreprocessProfile) -> tuple[np.ndarray, Geometry]:
    """First half of :func:`preprocess`: intensities as float32 and the resize, before normalising.

    Returns:
        ``(resized, geometry)``: ``resized`` is float32 ``(h, w)`` for grayscale input or ``(h, w, 3)``,
        with ``(h, w) = geometry.valid_size``; 0-255 intensities for the ``imagenet`` normalisation.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"expected an image (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
    geometry = make_geometry(image.shape[:2], profile)
    h, w = geometry.valid_size
    shrinking = h < image.shape[0] or w < image.shape[1]
    interp = cv2.INTER_AREA if shrinking or profile.interpolation == "area" else cv2.INTER_LINEAR
    return cv2.resize(_to_float(image, profile), (w, h), interpolation=interp), geometry


def normalize_and_pad(resized: np.ndarray, profile: PreprocessProfile) -> np.ndarray:
    """Second half of :func:`preprocess`: ``(h, w)`` or ``(h, w, 3)`` float32 -> ``(3, S, S)`` float32.

    Grayscale is replicated to 3 channels, the profile's normalisation applied, and the image placed
    top-left in a zero-padded ``S x S`` canvas.
    """
    rgb = np.repeat(resized[:, :, None], 3, axis=2) if resized.ndim == 2 else resized
    if profile.normalize == "minmax":
        low, high = rgb.min(), rgb.max()
        rgb = (rgb - low) / max(float(high - low), 1e-8)
    else:
        rgb = (rgb - np.float32(profile.pixel_mean)) / np.float32(profile.pixel_std)
    h, w = rgb.shape[:2]
    pixel_values = np.zeros((3, profile.image_size, profile.image_size), dtype=np.float32)
    pixel_values[:, :h, :w] = rgb.transpose(2, 0, 1)
    return pixel_values


def _to_float(image: np.ndarray, profile: PreprocessProfile) -> np.ndarray:
    """float32 copy, same shape; 0-255 intensities for ``imagenet`` (min-max rescaled unless uint8)."""
    rescale = profile.normalize == "imagenet" and image.dtype != np.uint8
    image = image.astype(np.float32)
    if rescale:
        low, high = float(image.min()), float(image.max())
        image = (image - low) * (255.0 / max(high - low, 1e-8))
    return image


def preprocess_label(label: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Resize an ``(H, W)`` label map to ``(S, S)`` uint8: nearest at pixel centres, padding 0."""
    label = np.asarray(label)
    if label.shape != geometry.original_size:
        raise ValueError(f"label shape {label.shape} differs from image shape {geometry.original_size}")
    if not (np.issubdtype(label.dtype, np.integer) or label.dtype == bool):
        raise ValueError(f"label map must be integer or bool, got {label.dtype}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"label values must lie in 0..255, got {label.min()}..{label.max()}")
    h, w = geometry.valid_size
    inverse = (geometry.original_size[1] / w, geometry.original_size[0] / h)
    rows, cols = _center_indices((h, w), inverse)
    out = np.zeros((geometry.input_size, geometry.input_size), dtype=np.uint8)
    out[:h, :w] = label[rows[:, None], cols[None, :]]
    return out
