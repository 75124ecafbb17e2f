"""Preprocessing profiles: how an image must be prepared for a given checkpoint.

A profile travels with every model the loader returns and is saved beside every model written
(``preprocessing.json``). Feeding MedSAM weights SAM's preprocessing is a silent accuracy bug, so the
profile is chosen from the checkpoint's origin and never guessed later.

- ``sam``: resize so the longest side is ``image_size`` (aspect kept), pad bottom-right with zeros,
  normalise 0-255 intensities with the ImageNet mean / std (in 0-255 units, as segment-anything does).
- ``medsam``: stretch to ``image_size`` x ``image_size`` (aspect not kept), min-max the intensities of
  each image to [0, 1], no mean / std.

- ``litemedsam``: as LiteMedSAM's training and inference scripts: longest side to ``image_size`` (256)
  with area interpolation, per-image min-max to [0, 1], pad bottom-right with zeros.

All replicate grayscale to 3 channels.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medsam_echo.schema import build_dataclass

PROFILE_FILENAME = "preprocessing.json"
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class PreprocessProfile:
    """How to turn an image into the model's ``pixel_values``.

    Attributes:
        name: ``"sam"`` or ``"medsam"``.
        image_size: side of the square model input in px (1024 for released checkpoints).
        resize: ``"longest_side_pad"`` (keep aspect, pad bottom-right) or ``"stretch"``.
        normalize: ``"imagenet"`` (0-255 intensities, then (x - mean) / std per channel) or
            ``"minmax"`` (per-image min-max to [0, 1]).
        pixel_mean: per-channel mean (RGB) in 0-255 units, used by ``"imagenet"``.
        pixel_std: per-channel std (RGB) in 0-255 units, used by ``"imagenet"``.
        interpolation: ``"auto"`` (area when shrinking, bilinear when enlarging) or ``"area"`` (always
            area, as LiteMedSAM's scripts do with ``cv2.INTER_AREA``).
    """

    name: str
    image_size: int = 1024
    resize: str = "longest_side_pad"
    normalize: str = "imagenet"
    pixel_mean: tuple[float, float, float] = field(default=IMAGENET_MEAN_255)
    pixel_std: tuple[float, float, float] = field(default=IMAGENET_STD_255)
    interpolation: str = "auto"

    def __post_init__(self) -> None:
        if self.interpolation not in ("auto", "area"):
            raise ValueError(f"profile {self.name!r}: unknown interpolation {self.interpolation!r}")
        if self.resize not in ("longest_side_pad", "stretch"):
            raise ValueError(f"profile {self.name!r}: unknown resize {self.resize!r}")
        if self.normalize not in ("imagenet", "minmax"):
            raise ValueError(f"profile {self.name!r}: unknown normalize {self.normalize!r}")
        if self.image_size <= 0:
            raise ValueError(f"profile {self.name!r}: image_size must be positive, got {self.image_size}")

    def with_image_size(self, image_size: int) -> PreprocessProfile:
        """The same profile for a model whose input side is ``image_size`` px."""
        data = asdict(self)
        data["image_size"] = int(image_size)
        return PreprocessProfile(**data)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["pixel_mean"] = list(self.pixel_mean)
        data["pixel_std"] = list(self.pixel_std)
        return data

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "profile") -> PreprocessProfile:
        """Validate ``data`` (e.g. ``preprocessing.json``): unknown keys and wrong types name the key."""
        return build_dataclass(cls, data, source)

    def save(self, directory: str | Path) -> Path:
        """Write ``preprocessing.json`` into ``directory``; returns its path."""
        path = Path(directory) / PROFILE_FILENAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> PreprocessProfile | None:
        """Read ``preprocessing.json`` from ``directory``; ``None`` when there is none."""
        path = Path(directory) / PROFILE_FILENAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        return cls.from_dict(data, source=str(path))


PROFILES: dict[str, PreprocessProfile] = {
    "sam": PreprocessProfile(name="sam", resize="longest_side_pad", normalize="imagenet"),
    "medsam": PreprocessProfile(name="medsam", resize="stretch", normalize="minmax"),
    "litemedsam": PreprocessProfile(
        name="litemedsam", image_size=256, resize="longest_side_pad", normalize="minmax", interpolation="area"
    ),
}


def get_profile(name: str, image_size: int = 1024) -> PreprocessProfile:
    """The named profile (``"sam"``, ``"medsam"``, ``"litemedsam"``) for a model with ``image_size`` px inputs."""
    if name not in PROFILES:
        raise ValueError(f"unknown preprocessing profile {name!r}; choose from {sorted(PROFILES)}")
    return PROFILES[name].with_image_size(image_size)
