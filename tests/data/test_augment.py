"""Augmentations: seeded, label-consistent, dtype-preserving."""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.data.augment import NO_AUGMENT, AugmentConfig, augment, random_affine
from medsam_echo.data.synthetic import Heart, render

HEART = Heart(ef=50.0, a2=22.0, a4=24.0, length=80.0, wall=9.0, apex_depth=10.0, la_width=18.0,
              la_height=20.0, quality="Good")  # fmt: skip
IMAGE, LABEL = render(HEART, "2CH", 0.0, (0.6, 0.9), (192, 160), np.random.default_rng(0))


def test_same_seed_same_result_different_seed_different_result():
    a = augment(IMAGE, LABEL, np.random.default_rng(3))
    b = augment(IMAGE, LABEL, np.random.default_rng(3))
    c = augment(IMAGE, LABEL, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_image_and_label_move_together():
    geometric = AugmentConfig(gamma=(1, 1), contrast=(1, 1), speckle=0.0, rotation_deg=15, translate=0.1)
    for seed in range(5):
        image, label = augment(IMAGE, LABEL, np.random.default_rng(seed), geometric, spacing=(0.6, 0.9))
        assert set(np.unique(label)) <= {0, 1, 2, 3}  # nearest neighbour: no blended label values
        wall, blood = image[label == 2].mean(), image[label == 1].mean()
        assert wall > 3 * blood  # the bright wall is still where the label says myocardium


def test_no_augment_is_identity_and_dtypes_are_kept():
    image, label = augment(IMAGE, LABEL, np.random.default_rng(0), NO_AUGMENT)
    np.testing.assert_array_equal(image, IMAGE)
    np.testing.assert_array_equal(label, LABEL)
    deep, _ = augment(IMAGE.astype(np.uint16) * 200, None, np.random.default_rng(0))
    assert deep.dtype == np.uint16 and deep.max() <= 255 * 200


def test_rotation_is_made_in_mm_on_anisotropic_grids():
    config = AugmentConfig(rotation_deg=30, scale=(1, 1), translate=0.0)
    matrix = random_affine((100, 100), np.random.default_rng(0), config, spacing=(0.5, 1.0))
    linear_mm = np.diag([0.5, 1.0]) @ matrix[:, :2] @ np.linalg.inv(np.diag([0.5, 1.0]))
    np.testing.assert_allclose(linear_mm @ linear_mm.T, np.eye(2), atol=1e-12)  # a pure rotation in mm
    assert not np.allclose(matrix[:, :2] @ matrix[:, :2].T, np.eye(2))  # which is not one in px


def test_intensity_augmentations_change_only_intensities():
    config = AugmentConfig(rotation_deg=0, scale=(1, 1), translate=0.0)
    image, label = augment(IMAGE, LABEL, np.random.default_rng(1), config)
    np.testing.assert_array_equal(label, LABEL)
    assert not np.array_equal(image, IMAGE) and image.dtype == np.uint8


def test_bad_config_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="gamma"):
        AugmentConfig(gamma=(1.5, 0.5))
    with pytest.raises(ValueError, match="label shape"):
        augment(IMAGE, LABEL[:-1], np.random.default_rng(0))
