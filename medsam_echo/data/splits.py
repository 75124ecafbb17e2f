"""Patient-level splits: seeded, stratified k-fold folds saved once as JSON and reused.

The JSON file follows nnU-Net's ``splits_final.json``: a list with one ``{"train": [...], "val": [...]}``
object per fold, patient ids sorted. Splitting is always by patient, so the 2CH / 4CH and ED / ES images of
one patient never end up on both sides.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from medsam_echo.data.io import DataError

# CAMUS paper's EF groups (Leclerc et al. 2019): EF <= 45 %, 45-55 %, >= 55 %.
EF_BINS = (45.0, 55.0)


def ef_quality_stratum(ef: float | None, quality: str | None) -> str:
    """A stratum label such as ``"ef>=55|Good"`` from an EF in % and an image quality; missing -> ``"?"``."""
    if ef is None:
        ef_part = "ef?"
    elif ef <= EF_BINS[0]:
        ef_part = f"ef<={EF_BINS[0]:g}"
    elif ef < EF_BINS[1]:
        ef_part = f"ef{EF_BINS[0]:g}-{EF_BINS[1]:g}"
    else:
        ef_part = f"ef>={EF_BINS[1]:g}"
    return f"{ef_part}|{quality or '?'}"


def stratified_kfold(
    patients: Sequence[str], strata: Mapping[str, Hashable] | None = None, *, n_folds: int = 10, seed: int = 0
) -> list[dict[str, list[str]]]:
    """Split patients into ``n_folds`` folds, each stratum spread evenly over the folds.

    Args:
        patients: unique patient ids.
        strata: patient -> stratum (e.g. :func:`ef_quality_stratum`); ``None`` puts everyone in one.
        n_folds: number of folds (>= 2 and <= number of patients).
        seed: seed of the shuffle inside each stratum; same inputs and seed -> same folds.

    Returns:
        One ``{"train": [...], "val": [...]}`` per fold; every patient is in exactly one ``val``.
    """
    patients = sorted(patients)
    if len(set(patients)) != len(patients):
        raise ValueError("stratified_kfold: patient ids must be unique")
    if not 2 <= n_folds <= len(patients):
        raise ValueError(f"stratified_kfold: need 2 <= n_folds <= {len(patients)} patients, got {n_folds}")
    groups: dict[str, list[str]] = defaultdict(list)
    for patient in patients:
        groups[str(strata.get(patient)) if strata else ""].append(patient)
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    next_fold = 0  # carried across strata so fold sizes differ by at most one
    for key in sorted(groups):
        members = [groups[key][i] for i in rng.permutation(len(groups[key]))]
        for patient in members:
            fold_of[patient] = next_fold
            next_fold = (next_fold + 1) % n_folds
    return [
        {"train": [p for p in patients if fold_of[p] != k], "val": [p for p in patients if fold_of[p] == k]}
        for k in range(n_folds)
    ]


def check_folds(folds: list[dict[str, list[str]]], patients: Iterable[str], *, source: str) -> None:
    """Raise :class:`DataError` unless every patient is in exactly one ``val`` and train/val are disjoint."""
    expected = set(patients)
    seen: dict[str, int] = {}
    for k, fold in enumerate(folds):
        if set(fold) != {"train", "val"}:
            raise DataError(f"{source}: fold {k} must have exactly the keys 'train' and 'val'")
        train, val = set(fold["train"]), set(fold["val"])
        if train & val:
            raise DataError(
                f"{source}: fold {k} has patients in both train and val: {sorted(train & val)[:5]}"
            )
        if train | val != expected:
            diff = sorted((train | val) ^ expected)[:5]
            raise DataError(f"{source}: fold {k} does not cover the dataset's patients (differs on {diff})")
        for patient in val:
            if patient in seen:
                raise DataError(
                    f"{source}: patient {patient} is in the val set of folds {seen[patient]} and {k}"
                )
            seen[patient] = k


def load_or_create_folds(
    path: str | Path,
    patients: Sequence[str],
    strata: Mapping[str, Hashable] | None = None,
    *,
    n_folds: int = 10,
    seed: int = 0,
    save: bool = True,
) -> list[dict[str, list[str]]]:
    """Read the folds from ``path`` if it exists (and check them), else make them and, if ``save``, write
    ``path``, so that later runs reuse the same folds even if the seed or the code changes."""
    path = Path(path)
    if path.is_file():
        try:
            folds = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(folds, list) or not all(isinstance(f, dict) for f in folds):
            raise DataError(f"{path}: expected a list of {{'train': [...], 'val': [...]}} objects")
        check_folds(folds, patients, source=str(path))
        return folds
    folds = stratified_kfold(patients, strata, n_folds=n_folds, seed=seed)
    if not save:
        return folds
    try:
        path.write_text(json.dumps(folds, indent=1) + "\n")
    except OSError as err:
        raise DataError(f"{path}: cannot save the folds ({err}); pass another splits_path") from err
    return folds


def check_disjoint(splits: Mapping[str, Iterable[str]], *, source: str) -> None:
    """Raise :class:`DataError` if a patient is in two of the named splits; ``source`` names their origin."""
    owner: dict[str, str] = {}
    for name, members in splits.items():
        for patient in members:
            if patient in owner and owner[patient] != name:
                raise DataError(f"{source}: patient {patient} is listed in both {owner[patient]} and {name}")
            owner[patient] = name
