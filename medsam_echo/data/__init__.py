"""Data stage: CAMUS (2023 NIfTI and 2019 MetaImage releases), folder and COCO datasets, synthetic
phantoms, the models' preprocessing with exact inverse geometry, augmentations, splits and a disk cache.

Every dataset is a lazy sequence of :class:`EchoSample` (arrays ``[y, x]``, spacing ``(sx, sy)`` mm,
points ``(x, y)`` px). Bad files raise :class:`DataError` naming the file.
"""

from medsam_echo.data.augment import AugmentConfig, augment
from medsam_echo.data.cache import PreprocessCache
from medsam_echo.data.camus import CamusDataset, EchoSequence
from medsam_echo.data.coco import CocoDataset, export_coco
from medsam_echo.data.folder import FolderDataset
from medsam_echo.data.io import DataError, read_image, write_image
from medsam_echo.data.sample import LABELS, STRUCTURES, EchoSample, structure_mask
from medsam_echo.data.synthetic import make_camus
from medsam_echo.data.transforms import Geometry, Preprocessed, preprocess

__all__ = [
    "LABELS",
    "STRUCTURES",
    "AugmentConfig",
    "CamusDataset",
    "CocoDataset",
    "DataError",
    "EchoSample",
    "EchoSequence",
    "FolderDataset",
    "Geometry",
    "PreprocessCache",
    "Preprocessed",
    "augment",
    "export_coco",
    "make_camus",
    "preprocess",
    "read_image",
    "structure_mask",
    "write_image",
]
