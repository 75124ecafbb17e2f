"""What every file-backed dataset shares: an index of cases decoded lazily into :class:`EchoSample`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medsam_echo.data.io import DataError
from medsam_echo.data.sample import EchoSample

ON_MISSING = ("raise", "skip")


@dataclass(frozen=True)
class Case:
    """One indexed image: ids, split, and the files it is decoded from (``label_path`` None: unlabelled)."""

    case_id: str
    patient: str
    split: str
    image_path: Path
    label_path: Path | None
    view: str = ""
    phase: str = ""


class CaseDataset(Sequence):
    """A lazy sequence of :class:`EchoSample`; subclasses fill ``self._cases`` and implement ``_load``.

    Missing files found while indexing go through :meth:`_missing`: an error naming the file, or with
    ``on_missing="skip"`` a skip recorded in :attr:`skipped`. :attr:`problems` collects other findings
    that do not stop loading (e.g. patients in no split file).
    """

    def __init__(self, on_missing: str = "raise") -> None:
        if on_missing not in ON_MISSING:
            raise ValueError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
        self.on_missing = on_missing
        self.skipped: list[str] = []
        self.problems: list[str] = []
        self._cases: list[Case] = []
        self._by_id: dict[str, int] = {}

    def _set_cases(self, cases: list[Case]) -> None:
        ids = [c.case_id for c in cases]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DataError(
                f"case id {dup!r} occurs twice: {[str(c.image_path) for c in cases if c.case_id == dup]}"
            )
        self._cases = cases
        self._by_id = {case_id: i for i, case_id in enumerate(ids)}

    def _missing(self, message: str) -> None:
        if self.on_missing == "raise":
            raise DataError(message + " (pass on_missing='skip' to leave such cases out)")
        self.skipped.append(message)

    def _load(self, case: Case) -> EchoSample:
        raise NotImplementedError

    @property
    def cases(self) -> list[str]:
        """Case ids, in index order."""
        return [c.case_id for c in self._cases]

    @property
    def patients(self) -> list[str]:
        """Sorted ids of the patients with at least one case."""
        return sorted({c.patient for c in self._cases})

    def splits(self) -> dict[str, int]:
        """Number of images per split (``""`` counts images in no split)."""
        counts: dict[str, int] = {}
        for case in self._cases:
            counts[case.split] = counts.get(case.split, 0) + 1
        return counts

    def __len__(self) -> int:
        return len(self._cases)

    def __getitem__(self, index: int) -> EchoSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} cases")
        return self._load(self._cases[index])

    def sample(self, case_id: str) -> EchoSample:
        """The sample with id ``case_id``."""
        if case_id not in self._by_id:
            raise KeyError(f"{case_id!r} is not a case of this dataset ({len(self)} cases)")
        return self[self._by_id[case_id]]

    def source_files(self, index: int) -> tuple[Path, ...]:
        """The files case ``index`` is decoded from (image, then label if any), without reading them."""
        case = self._cases[index]
        return (case.image_path,) if case.label_path is None else (case.image_path, case.label_path)

    def check(self) -> list[str]:
        """Decode every case; one message per broken file (nothing is raised)."""
        problems = []
        for case in self._cases:
            try:
                self._load(case)
            except DataError as err:
                problems.append(str(err))
        return problems
