"""nnU-Net v2 export: layout, the toolkit's split as splits_final.json, the test split only in imagesTs,
geometry carried over, refusing to clobber, and nnU-Net's outputs scored by ``evaluate``.

The tests marked ``nnunet`` run the real nnU-Net (skipped without ``nnunetv2``); the ``slow`` one trains it
for a few iterations on CPU, predicts and evaluates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from medsam_echo.data.io import DataError, read_image, write_image
from medsam_echo.data.nnunet import export_nnunet, fold_from_split
from medsam_echo.data.open import open_dataset
from medsam_echo.data.synthetic import make_camus
from medsam_echo.evaluation.evaluate import evaluate

DATASET = "Dataset007_Synth"


@pytest.fixture(scope="module")
def camus(tmp_path_factory) -> Path:
    """10 synthetic patients, CAMUS 2023 layout (8 / 1 / 1 in the subgroup files), 48 x 40 px."""
    return make_camus(tmp_path_factory.mktemp("nn") / "camus", patients=10, seed=0, size=(48, 40), frames=0)


@pytest.fixture(scope="module")
def exported(camus, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("nnunet")
    result = export_nnunet(open_dataset(camus, "all"), out / "raw", dataset_id=7, name="Synth",
                           preprocessed=out / "preprocessed")
    return out, result


def _ids(folder: Path, suffix: str) -> set[str]:
    return {p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix)}


def test_export_writes_nnunet_layout_with_the_toolkits_split(camus, exported):
    out, result = exported
    target = out / "raw" / DATASET
    train, val, test = (open_dataset(camus, s).cases for s in ("train", "val", "test"))
    assert _ids(target / "imagesTr", "_0000.nii.gz") == _ids(target / "labelsTr", ".nii.gz") == {*train, *val}
    assert _ids(target / "imagesTs", "_0000.nii.gz") == set(test) and len(test) == 4
    meta = json.loads((target / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "lv_endo": 1, "myo": 2, "la": 3}
    assert meta["numTraining"] == len(train) + len(val) == 36
    assert meta["file_ending"] == ".nii.gz" and meta["channel_names"] == {"0": "echo"}
    splits = [{"train": sorted(train), "val": sorted(val)}]
    assert json.loads((target / "splits_final.json").read_text()) == splits
    assert json.loads((out / "preprocessed" / DATASET / "splits_final.json").read_text()) == splits
    assert result.foreign_files == [] and result.left_out == []


def test_images_labels_spacing_and_orientation_survive_the_export(camus, exported):
    out, _ = exported
    dataset = open_dataset(camus, "all")
    for case in ("patient0001_2CH_ED", dataset.cases[-1]):
        sample = dataset.sample(case)
        folder = "imagesTs" if sample.split == "test" else "imagesTr"
        image, spacing = read_image(out / "raw" / DATASET / folder / f"{case}_0000.nii.gz")
        np.testing.assert_array_equal(image, sample.image)
        assert spacing == pytest.approx(sample.spacing) and spacing[0] != spacing[1]  # anisotropic (sx, sy)
        source = sitk.ReadImage(str(dataset.source_files(dataset.cases.index(case))[0]))
        written = sitk.ReadImage(str(out / "raw" / DATASET / folder / f"{case}_0000.nii.gz"))
        assert written.GetDirection() == pytest.approx(source.GetDirection())
        assert written.GetOrigin() == pytest.approx(source.GetOrigin())
    label, _ = read_image(out / "raw" / DATASET / "labelsTr" / "patient0001_2CH_ED.nii.gz")
    np.testing.assert_array_equal(label, dataset.sample("patient0001_2CH_ED").label)


def test_2019_release_uses_its_saved_folds_and_sends_unlabelled_testing_to_imagests(tmp_path):
    root = make_camus(tmp_path / "mhd", patients=6, seed=1, fmt="mhd", size=(40, 32), frames=0)
    result = export_nnunet(open_dataset(root, "all"), tmp_path / "raw", dataset_id=8, name="Mhd")
    assert result.train == sorted(open_dataset(root, "train").cases)
    assert result.val == sorted(open_dataset(root, "val").cases) and result.val
    assert result.test == open_dataset(root, "test").cases and result.test  # testing/: no labels
    assert not (tmp_path / "raw" / "Dataset008_Mhd" / "labelsTr" / f"{result.test[0]}.nii.gz").exists()


def test_dataset_without_val_split_gets_a_seeded_patient_level_fold(tmp_path):
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for patient in range(1, 7):
        for view in ("2CH", "4CH"):
            stem = f"p{patient}_{view}_ED"
            write_image(root / "images" / f"{stem}.png", rng.integers(0, 255, (24, 20), dtype=np.uint8))
            write_image(root / "labels" / f"{stem}.png", np.full((24, 20), 255 * (patient % 2), np.uint8))
    (root / "dataset.yaml").write_text("labels: {background: 0, lv_endo: 255}\nspacing: [0.4, 0.3]\n"
                                       "patient_regex: '^(p\\d+)_'\n")
    first = export_nnunet(open_dataset(root, "all"), tmp_path / "a", dataset_id=9, name="F", n_folds=3, seed=5)
    again = export_nnunet(open_dataset(root, "all"), tmp_path / "b", dataset_id=9, name="F", n_folds=3, seed=5)
    assert (first.train, first.val) == (again.train, again.val) and "seed 5" in first.split_source
    patients = lambda cases: {c.split("_")[0] for c in cases}  # noqa: E731
    assert len(patients(first.val)) == 2 and not patients(first.val) & patients(first.train)
    _, spacing = read_image(tmp_path / "a" / "Dataset009_F" / "imagesTr" / "p1_2CH_ED_0000.nii.gz")
    assert spacing == pytest.approx((0.4, 0.3))


def test_fold_from_split_keeps_the_datasets_own_split_and_skips_unsplit_cases():
    cases = [("a1", "a", "train"), ("b1", "b", "val"), ("c1", "c", "")]
    fold, how = fold_from_split(cases)
    assert fold == {"train": ["a1"], "val": ["b1"]} and "own" in how


def test_non_empty_folder_is_refused_and_overwrite_only_replaces_the_exports_files(camus, tmp_path):
    target = tmp_path / "raw" / DATASET
    (target / "imagesTr").mkdir(parents=True)
    mine = target / "imagesTr" / "notes.txt"
    mine.write_text("keep me")
    dataset = open_dataset(camus, "all")
    with pytest.raises(DataError, match=str(target)):
        export_nnunet(dataset, tmp_path / "raw", dataset_id=7, name="Synth")
    result = export_nnunet(dataset, tmp_path / "raw", dataset_id=7, name="Synth", overwrite=True)
    assert mine.read_text() == "keep me" and result.foreign_files == [mine]


def test_other_dataset_with_the_same_id_and_a_different_preprocessed_split_are_refused(camus, tmp_path):
    (tmp_path / "raw" / "Dataset007_Other").mkdir(parents=True)
    dataset = open_dataset(camus, "all")
    with pytest.raises(DataError, match="Dataset007_Other"):
        export_nnunet(dataset, tmp_path / "raw", dataset_id=7, name="Synth")
    stale = tmp_path / "pre" / DATASET / "splits_final.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('[{"train": ["x"], "val": ["y"]}]')
    with pytest.raises(DataError, match=str(stale)):
        export_nnunet(dataset, tmp_path / "raw2", dataset_id=7, name="Synth", preprocessed=tmp_path / "pre")


def test_evaluate_scores_an_nnunet_style_output_folder(camus, exported, tmp_path):
    """What nnU-Net's SimpleITKIO writes: ``<case>.nii.gz`` with the input's spacing, origin and direction,
    plus its own json / npz / pkl files, which evaluate ignores."""
    out, _ = exported
    dataset = open_dataset(camus, "test")
    pred = tmp_path / "nnunet_pred"
    pred.mkdir()
    for name in ("dataset.json", "plans.json", "predict_from_raw_data_args.json"):
        (pred / name).write_text("{}")
    for index, case in enumerate(dataset.cases):
        image = sitk.ReadImage(str(out / "raw" / DATASET / "imagesTs" / f"{case}_0000.nii.gz"))
        seg = sitk.GetImageFromArray(dataset[index].label)
        seg.CopyInformation(image)
        sitk.WriteImage(seg, str(pred / f"{case}.nii.gz"))
        np.savez(pred / f"{case}.npz", probabilities=np.zeros(1))
        (pred / f"{case}.pkl").write_bytes(b"")
    result = evaluate(dataset, pred)
    assert {r["dice"] for r in result.metrics} == {1.0} and not result.missing


# ---- the real nnU-Net ---------------------------------------------------------------------------------


def _nnunet_env(root: Path) -> dict[str, str]:
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
           "nnUNet_results": str(root / "results"), "nnUNet_def_n_proc": "1", "nnUNet_n_proc_DA": "1",
           "nnUNet_compile": "false", "OMP_NUM_THREADS": "1"}
    return env


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.is_file() else (shutil.which(name) or name)


def _run(args: list[str], env: dict[str, str], timeout: int) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _plan(tmp_path: Path, camus: Path) -> tuple[Path, dict[str, str], object]:
    """Export (split written to raw only: nnU-Net copies it) and plan + preprocess 2d with nnU-Net."""
    result = export_nnunet(open_dataset(camus, "all"), tmp_path / "raw", dataset_id=7, name="Synth")
    env = _nnunet_env(tmp_path)
    _run([_tool("nnUNetv2_plan_and_preprocess"), "-d", "7", "-c", "2d", "--verify_dataset_integrity",
          "-np", "1", "-npfp", "1"], env, timeout=300)
    return tmp_path, env, result


@pytest.mark.nnunet
def test_real_nnunet_plans_our_export_and_trains_on_our_split(camus, tmp_path, monkeypatch):
    pytest.importorskip("nnunetv2")
    root, env, result = _plan(tmp_path, camus)
    plans = json.loads((root / "preprocessed" / DATASET / "nnUNetPlans.json").read_text())
    assert set(plans["configurations"]) == {"2d"}  # a 2-D dataset: no 3d configurations
    spacings = [read_image(p)[1] for p in sorted((root / "raw" / DATASET / "imagesTr").iterdir())]
    median_sy_sx = np.median(np.array(spacings)[:, ::-1], axis=0)  # nnU-Net orders axes (y, x)
    assert plans["configurations"]["2d"]["spacing"] == pytest.approx(median_sy_sx.tolist(), rel=1e-5)
    ours = [{"train": result.train, "val": result.val}]
    assert json.loads((root / "preprocessed" / DATASET / "splits_final.json").read_text()) == ours
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, env[key])  # nnU-Net 2.8 reads its paths when used, not when imported
    train, val = _trainer(root, torch.device("cpu")).do_split()  # the split nnU-Net's training uses
    assert {"train": sorted(train), "val": sorted(val)} == ours[0]


def _trainer(root: Path, device):
    """nnU-Net's own trainer for fold 0 of the 2d configuration (constructed as ``run_training`` does)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    pre = root / "preprocessed" / DATASET
    plans = {**json.loads((pre / "nnUNetPlans.json").read_text()), "continue_training": False}
    return nnUNetTrainer(plans, "2d", 0, json.loads((pre / "dataset.json").read_text()), device=device)


_TRAIN = """
import os

os.environ["nnUNet_n_proc_DA"] = "0"  # augment in this process (planning needs >= 1, hence set here)
import torch
from batchgenerators.utilities.file_and_folder_operations import join, load_json
from nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs import (
    nnUNetTrainer_1epoch as Shipped,
)


class nnUNetTrainer_1epoch(Shipped):  # same name and network as nnU-Net's own, so nnUNetv2_predict finds it
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cpu")):
        super().__init__(plans, configuration, fold, dataset_json, device)  # nnU-Net records these names
        self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 2, 1


torch.set_num_threads(1)
pre = join(os.environ["nnUNet_preprocessed"], "Dataset007_Synth")
plans = {**load_json(join(pre, "nnUNetPlans.json")), "continue_training": False}
trainer = nnUNetTrainer_1epoch(plans, "2d", 0, load_json(join(pre, "dataset.json")), device=torch.device("cpu"))
trainer.run_training()
trainer.perform_actual_validation(False)
"""


@pytest.mark.slow
@pytest.mark.nnunet
def test_real_nnunet_trains_briefly_predicts_and_is_evaluated(camus, tmp_path):
    pytest.importorskip("nnunetv2")
    from medsam_echo.cli import main as cli

    root, env, result = _plan(tmp_path, camus)
    _run([sys.executable, "-c", _TRAIN], env, timeout=600)
    fold = root / "results" / DATASET / "nnUNetTrainer_1epoch__nnUNetPlans__2d" / "fold_0"
    validation = fold / "validation"
    assert _ids(validation, ".nii.gz") == set(result.val)
    assert cli(["evaluate", "--pred", str(validation), "--data", str(camus), "--split", "val",
                "--out", str(tmp_path / "eval_val")]) == 0
    pred = tmp_path / "pred_test"
    _run([_tool("nnUNetv2_predict"), "-i", str(root / "raw" / DATASET / "imagesTs"), "-o", str(pred), "-d", "7",
          "-c", "2d", "-f", "0", "-tr", "nnUNetTrainer_1epoch", "-device", "cpu", "-npp", "1", "-nps", "1",
          "--disable_tta"], env, timeout=300)
    assert cli(["evaluate", "--pred", str(pred), "--data", str(camus), "--split", "test",
                "--out", str(tmp_path / "eval_test")]) == 0
    summary = json.loads((tmp_path / "eval_test" / "summary.json").read_text())
    assert summary["n_cases"] == len(result.test) and summary["missing"] == []
