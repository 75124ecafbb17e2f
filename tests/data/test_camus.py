"""CAMUS loader on synthetic releases in both layouts: counts, conventions, splits, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import medsam_echo.data.camus as camus
from medsam_echo.data.camus import CamusDataset, detect_layout, info_ef, parse_info
from medsam_echo.data.io import DataError, write_image
from medsam_echo.data.sample import structure_mask
from medsam_echo.data.splits import ef_quality_stratum, stratified_kfold


def test_nifti_layout_uses_the_subgroup_files(nifti_root):
    data = CamusDataset(nifti_root)
    assert data.layout == "camus-nifti" and len(data) == 40 and len(data.patients) == 10
    assert data.splits() == {"train": 32, "val": 4, "test": 4}
    assert len(CamusDataset(nifti_root, "val")) == 4
    assert data.cases[:2] == ["patient0001_2CH_ED", "patient0001_2CH_ES"]


def test_sample_follows_the_array_conventions(nifti_root):
    sample = CamusDataset(nifti_root).sample("patient0003_4CH_ES")
    info = parse_info(nifti_root / "database_nifti/patient0003/Info_4CH.cfg")
    assert (sample.patient, sample.view, sample.phase, sample.split) == ("patient0003", "4CH", "ES", "train")
    assert sample.image.shape == sample.label.shape == (96, 80) and sample.label.dtype == np.uint8
    assert sample.spacing[0] != pytest.approx(sample.spacing[1])  # anisotropic header spacing is kept
    assert sample.meta["info"] == info and sample.meta["ef"] == info["EF"]
    lv_row = np.nonzero(structure_mask(sample.label, "lv_endo"))[0].mean()
    la_row = np.nonzero(structure_mask(sample.label, "la"))[0].mean()
    assert lv_row < la_row  # apex up: the ventricle is above the atrium


def test_views_and_phases_filter_cases(nifti_root):
    data = CamusDataset(nifti_root, "train", views=("4CH",), phases=("ES",))
    assert len(data) == 8 and all(c.endswith("_4CH_ES") for c in data.cases)
    with pytest.raises(ValueError, match="views must be a subset"):
        CamusDataset(nifti_root, views=("3CH",))


def test_decoding_is_lazy(nifti_root, monkeypatch):
    calls = []
    original = camus.read_image
    monkeypatch.setattr(camus, "read_image", lambda *a, **k: calls.append(a) or original(*a, **k))
    data = CamusDataset(nifti_root)
    assert calls == []
    data[5]
    assert len(calls) == 2  # image + label of that one case


def test_half_sequences_are_frame_stacks_from_ed_to_es(nifti_root):
    data = CamusDataset(nifti_root)
    seq = data.sequence("patient0002", "2CH")
    assert seq.frames.shape == seq.labels.shape == (3, 96, 80)
    np.testing.assert_array_equal(seq.frames[0], data.sample("patient0002_2CH_ED").image)
    np.testing.assert_array_equal(seq.labels[-1], data.sample("patient0002_2CH_ES").label)
    assert seq.meta["info"]["NbFrame"] == 3
    last = seq.frame(2)
    assert (last.case_id, last.phase) == ("patient0002_2CH_f003", "f003")
    np.testing.assert_array_equal(last.label, seq.labels[2])


def test_small_mhd_release_gets_one_fold_per_patient(tmp_path):
    from medsam_echo.data.synthetic import make_camus

    root = make_camus(tmp_path / "small", patients=5, fmt="mhd", size=(64, 48), frames=0)
    data = CamusDataset(root)
    assert data.splits() == {"train": 12, "val": 4, "test": 4}  # 4 training patients -> 4 folds


def test_mhd_layout_gets_saved_stratified_folds(mhd_copy):
    data = CamusDataset(mhd_copy)
    assert data.layout == "camus-mhd" and len(data.patients) == 20
    counts = data.splits()
    assert counts["test"] == 8 and counts["train"] + counts["val"] == 72
    test = CamusDataset(mhd_copy, "test")
    assert all(s.label is None for s in test)  # the 2019 testing/ folder has no labels
    folds = json.loads((mhd_copy / "splits_final.json").read_text())
    assert len(folds) == 10
    vals = [p for fold in folds for p in fold["val"]]
    assert len(vals) == len(set(vals)) == 18  # each training patient validates exactly once
    for fold in folds:
        assert not set(fold["train"]) & set(fold["val"])
    assert {p for p in CamusDataset(mhd_copy, "val", fold=3).patients} == set(folds[3]["val"])


def test_mhd_folds_are_reused_not_redrawn(mhd_copy):
    first = CamusDataset(mhd_copy, "val", fold=0).patients
    again = CamusDataset(mhd_copy, "val", fold=0, seed=123).patients  # the saved file wins over the seed
    assert first == again
    (mhd_copy / "splits_final.json").unlink()
    redrawn = CamusDataset(mhd_copy, fold=0, seed=123, save_splits=False)
    assert not (mhd_copy / "splits_final.json").exists() and len(redrawn) == 80


def test_stale_fold_file_is_an_error(mhd_copy):
    CamusDataset(mhd_copy)
    folds = json.loads((mhd_copy / "splits_final.json").read_text())
    folds[1]["val"].append(folds[0]["val"][0])
    folds[1]["train"].remove(folds[0]["val"][0])
    (mhd_copy / "splits_final.json").write_text(json.dumps(folds))
    with pytest.raises(DataError, match="splits_final.json: patient .* is in the val set of folds 0 and 1"):
        CamusDataset(mhd_copy)


def test_detect_layout_names_the_folder(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}: not a CAMUS root"):
        detect_layout(tmp_path)


def test_missing_ground_truth_raises_or_is_skipped_and_counted(nifti_copy):
    gt = nifti_copy / "database_nifti/patient0004/patient0004_2CH_ES_gt.nii.gz"
    gt.unlink()
    with pytest.raises(DataError, match="patient0004_2CH_ES_gt.nii.gz: ground-truth file not found"):
        CamusDataset(nifti_copy)
    data = CamusDataset(nifti_copy, on_missing="skip")
    assert len(data) == 39 and "patient0004_2CH_ES" not in data.cases
    assert len(data.skipped) == 1 and "patient0004_2CH_ES_gt" in data.skipped[0]


def test_truncated_file_raises_on_access_and_check_lists_it(nifti_copy):
    path = nifti_copy / "database_nifti/patient0002/patient0002_4CH_ED.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    data = CamusDataset(nifti_copy)
    with pytest.raises(DataError, match="patient0002_4CH_ED.nii.gz"):
        data.sample("patient0002_4CH_ED")
    problems = data.check()
    assert len(problems) == 1 and "patient0002_4CH_ED.nii.gz" in problems[0]


def test_label_outside_the_label_map_is_an_error(nifti_copy):
    path = nifti_copy / "database_nifti/patient0001/patient0001_2CH_ED_gt.nii.gz"
    label = np.zeros((96, 80), np.uint8)
    label[0, 0] = 7
    write_image(path, label)
    with pytest.raises(DataError, match=r"patient0001_2CH_ED_gt.nii.gz: label values \[7\]"):
        CamusDataset(nifti_copy).sample("patient0001_2CH_ED")


def test_image_label_size_mismatch_is_an_error(nifti_copy):
    write_image(
        nifti_copy / "database_nifti/patient0001/patient0001_2CH_ED_gt.nii.gz", np.zeros((90, 80), np.uint8)
    )
    with pytest.raises(DataError, match=r"_2CH_ED_gt.nii.gz: label shape \(90, 80\) differs"):
        CamusDataset(nifti_copy)[0]


def test_patient_in_two_split_files_is_an_error(nifti_copy):
    val = nifti_copy / "database_split/subgroup_validation.txt"
    val.write_text(val.read_text() + "patient0001\n")
    with pytest.raises(DataError, match="patient patient0001 is listed in both train and val"):
        CamusDataset(nifti_copy)


def test_split_file_naming_an_absent_patient_is_an_error(nifti_copy):
    test = nifti_copy / "database_split/subgroup_testing.txt"
    test.write_text(test.read_text() + "patient0999\n")
    with pytest.raises(DataError, match="subgroup_testing.txt: lists patient0999"):
        CamusDataset(nifti_copy)


def test_info_files_are_optional_and_malformed_ones_are_named(nifti_copy):
    info = nifti_copy / "database_nifti/patient0001/Info_2CH.cfg"
    info.unlink()
    assert CamusDataset(nifti_copy).sample("patient0001_2CH_ED").meta["info"] == {}
    info.write_text("ED: 1\nthis line has no colon\n")
    with pytest.raises(DataError, match="Info_2CH.cfg:2: expected 'key: value'"):
        parse_info(info)


def test_mhd_folds_are_stratified_by_info_ef_and_worst_image_quality(mhd_copy):
    data = CamusDataset(mhd_copy)
    training = [p for p in data.patients if data.patient_split[p] != "test"]
    order = ["Good", "Medium", "Poor"]
    strata = {}
    for patient in training:
        infos = [data.info(patient, view) for view in ("2CH", "4CH")]
        worst = max((i["ImageQuality"] for i in infos), key=order.index)
        strata[patient] = ef_quality_stratum(infos[0]["EF"], worst)
    expected = stratified_kfold(training, strata, n_folds=10, seed=0)
    assert json.loads((mhd_copy / "splits_final.json").read_text()) == expected


def test_2019_info_key_lvef_is_read_as_ef():
    assert info_ef({"LVef": 61.5}) == 61.5 and info_ef({"EF": 40}) == 40.0 and info_ef({}) is None
