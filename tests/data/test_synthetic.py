"""Synthetic echo generator: reproducible, CAMUS-shaped, and its EF is the EF of its masks."""

from __future__ import annotations

import numpy as np
import pytest

from medsam_echo.cli import main as cli_main
from medsam_echo.data.camus import CamusDataset
from medsam_echo.data.synthetic import Heart, make_camus, render

HEART = Heart(ef=55.0, a2=23.0, a4=25.0, length=80.0, wall=9.0, apex_depth=10.0, la_width=18.0,
              la_height=20.0, quality="Good")  # fmt: skip


def _biplane_volume_ml(lv2: np.ndarray, lv4: np.ndarray, sy: float, sx2: float, sx4: float) -> float:
    """Method of disks over rows: disk diameters from each view's row widths, in mL."""
    d2, d4 = lv2.sum(axis=1) * sx2, lv4.sum(axis=1) * sx4
    return float(np.sum(np.pi / 4 * d2 * d4 * sy) / 1000)


def test_mask_volumes_match_the_true_ef():
    spacing = (0.3, 0.3)  # fine grid so discretisation error stays small
    volumes = []
    for t in (0.0, 1.0):
        _, lab2 = render(HEART, "2CH", t, spacing, (600, 400), np.random.default_rng(0))
        _, lab4 = render(HEART, "4CH", t, spacing, (600, 400), np.random.default_rng(0))
        volumes.append(_biplane_volume_ml(lab2 == 1, lab4 == 1, 0.3, 0.3, 0.3))
    assert volumes[0] == pytest.approx(HEART.volume_ml(0.0), rel=0.02)
    assert 100 * (1 - volumes[1] / volumes[0]) == pytest.approx(HEART.ef, abs=1.0)


def test_structures_contract_from_ed_to_es_and_sit_in_the_sector():
    rng = np.random.default_rng(0)
    image_ed, label_ed = render(HEART, "2CH", 0.0, (0.6, 0.9), (192, 160), rng)
    _, label_es = render(HEART, "2CH", 1.0, (0.6, 0.9), (192, 160), rng)
    assert (label_es == 1).sum() < (label_ed == 1).sum()
    assert (label_es == 3).sum() > (label_ed == 3).sum()  # the atrium fills in systole
    assert set(np.unique(label_ed)) == {0, 1, 2, 3}
    assert image_ed[0, 0] == 0 and image_ed[0, 80] > 0  # outside / at the apex of the sector
    assert image_ed[label_ed == 2].mean() > 3 * image_ed[label_ed == 1].mean()  # bright wall, dark blood


def test_same_seed_same_data(tmp_path):
    a = make_camus(tmp_path / "a", patients=3, seed=7, size=(64, 48), frames=0)
    b = make_camus(tmp_path / "b", patients=3, seed=7, size=(64, 48), frames=0)
    sa, sb = CamusDataset(a)[2], CamusDataset(b)[2]
    np.testing.assert_array_equal(sa.image, sb.image)
    assert sa.spacing == sb.spacing and sa.meta["info"] == sb.meta["info"]
    other = CamusDataset(make_camus(tmp_path / "c", patients=3, seed=8, size=(64, 48), frames=0))[2]
    assert not np.array_equal(sa.image, other.image)


def test_info_files_carry_ef_consistent_with_volumes(nifti_root):
    info = CamusDataset(nifti_root).sample("patient0005_2CH_ED").meta["info"]
    assert info["EF"] == pytest.approx(100 * (1 - info["LVesv"] / info["LVedv"]), abs=0.05)
    assert info["ImageQuality"] in ("Good", "Medium", "Poor") and info["ES"] == info["NbFrame"] == 3


def test_cli_writes_both_layouts(tmp_path, capsys):
    assert (
        cli_main(["synth", str(tmp_path / "n"), "--patients", "4", "--seed", "1", "--size", "64", "48"]) == 0
    )
    assert "wrote 4 synthetic patients" in capsys.readouterr().out
    assert CamusDataset(tmp_path / "n").splits() == {"train": 8, "val": 4, "test": 4}
    assert (
        cli_main(["synth", str(tmp_path / "m"), "--patients", "4", "--format", "mhd", "--frames", "0"]) == 0
    )
    assert (tmp_path / "m/testing/patient0004/patient0004_2CH_ED.mhd").is_file()
    assert not (tmp_path / "m/testing/patient0004/patient0004_2CH_ED_gt.mhd").exists()


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="format"):
        make_camus(tmp_path, fmt="dicom")
    with pytest.raises(ValueError, match="at least 3 patients"):
        make_camus(tmp_path, patients=2)
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="folder is not empty"):
        make_camus(tmp_path)
