"""Patient-level k-fold splits: disjoint, complete, stratified, seeded."""

from __future__ import annotations

from collections import Counter

import pytest

from medsam_echo.data.io import DataError
from medsam_echo.data.splits import check_disjoint, ef_quality_stratum, load_or_create_folds, stratified_kfold

PATIENTS = [f"patient{i:04d}" for i in range(1, 101)]
STRATA = {p: ("low" if i < 30 else "high") for i, p in enumerate(PATIENTS)}


def test_every_patient_validates_exactly_once_and_never_trains_in_its_fold():
    folds = stratified_kfold(PATIENTS, STRATA, n_folds=10, seed=0)
    vals = [p for fold in folds for p in fold["val"]]
    assert sorted(vals) == PATIENTS
    for fold in folds:
        assert set(fold["train"]).isdisjoint(fold["val"])
        assert set(fold["train"]) | set(fold["val"]) == set(PATIENTS)


def test_each_stratum_is_spread_evenly_over_the_folds():
    folds = stratified_kfold(PATIENTS, STRATA, n_folds=10, seed=0)
    for fold in folds:
        counts = Counter(STRATA[p] for p in fold["val"])
        assert counts == {"low": 3, "high": 7}


def test_seed_controls_the_assignment():
    same = stratified_kfold(PATIENTS, STRATA, seed=4) == stratified_kfold(PATIENTS, STRATA, seed=4)
    different = stratified_kfold(PATIENTS, STRATA, seed=4) != stratified_kfold(PATIENTS, STRATA, seed=5)
    assert same and different


def test_ef_quality_strata_use_the_camus_ef_groups():
    assert ef_quality_stratum(40.0, "Good") == "ef<=45|Good"
    assert ef_quality_stratum(50.0, "Poor") == "ef45-55|Poor"
    assert ef_quality_stratum(60.0, None) == "ef>=55|?"
    assert ef_quality_stratum(None, "Medium") == "ef?|Medium"


def test_folds_are_saved_then_reused_and_checked(tmp_path):
    path = tmp_path / "splits_final.json"
    first = load_or_create_folds(path, PATIENTS, STRATA, seed=0)
    assert path.is_file()
    assert load_or_create_folds(path, PATIENTS, STRATA, seed=99) == first
    with pytest.raises(DataError, match="does not cover the dataset's patients"):
        load_or_create_folds(path, PATIENTS[:-1], STRATA)


def test_patient_in_two_named_splits_is_an_error():
    with pytest.raises(DataError, match="lists.txt: patient b is listed in both train and test"):
        check_disjoint({"train": ["a", "b"], "test": ["b"]}, source="lists.txt")


def test_impossible_fold_counts_are_rejected():
    with pytest.raises(ValueError, match="n_folds"):
        stratified_kfold(PATIENTS[:3], n_folds=5)
