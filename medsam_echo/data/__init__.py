"""Data stage: CAMUS (2023 NIfTI and 2019 MetaImage releases), folder and COCO datasets, EchoNet-Dynamic
videos, synthetic phantoms, the models' preprocessing with exact inverse geometry, augmentations, splits
and a disk cache.

Every image dataset is a lazy sequence of :class:`EchoSample` (arrays ``[y, x]``, spacing ``(sx, sy)`` mm,
points ``(x, y)`` px); every video dataset (EchoNet-Dynamic, CAMUS sequences) one of :class:`VideoSample`
(frames ``[t, y, x]``). Bad files raise :class:`DataError` naming the file.
"""

from medsam_echo.data.augment import AugmentConfig, augment
from medsam_echo.data.cache import PreprocessCache
from medsam_echo.data.camus import CamusDataset, CamusVideoDataset, EchoSequence
from medsam_echo.data.coco import CocoDataset, export_coco
from medsam_echo.data.echonet import EchoNetDataset
from medsam_echo.data.folder import FolderDataset
from medsam_echo.data.io import DataError, read_image, write_image
from medsam_echo.data.sample import LABELS, STRUCTURES, EchoSample, TracedFrames, VideoSample, structure_mask
from medsam_echo.data.synthetic import make_camus
from medsam_echo.data.transforms import Geometry, Preprocessed, preprocess
from medsam_echo.data.video import MissingVideoError, VideoDataset, VideoError, read_video

__all__ = [
    "LABELS",
    "STRUCTURES",
    "AugmentConfig",
    "CamusDataset",
    "CamusVideoDataset",
    "CocoDataset",
    "DataError",
    "EchoNetDataset",
    "EchoSample",
    "EchoSequence",
    "FolderDataset",
    "Geometry",
    "MissingVideoError",
    "PreprocessCache",
    "Preprocessed",
    "TracedFrames",
    "VideoDataset",
    "VideoError",
    "VideoSample",
    "augment",
    "export_coco",
    "make_camus",
    "preprocess",
    "read_video",
    "read_image",
    "structure_mask",
    "write_image",
]
