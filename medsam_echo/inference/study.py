"""What the clinician notebook opens: the frames of one patient, from a dataset, DICOM loops or a bundled phantom.

    study = open_study(None)                       # the bundled synthetic patient (written once to a cache)
    study = open_study("data/CAMUS_public")        # a CAMUS release: its first patient (or patient="...")
    study = open_study("exam/")                    # DICOM loops: the ED and ES frame of each view
    session = PromptSession(predictor, study.frames)

The bundled patient is the first of a 3-patient synthetic CAMUS release (``make_camus``, seed 0, 192 x 160
px, 2CH / 4CH at ED / ES with reference labels and a known EF), written on first use to
``$XDG_CACHE_HOME/medsam-echo/`` (default ``~/.cache``; a temporary folder where that is read-only) and
read back through :func:`~medsam_echo.data.open.open_dataset` like any CAMUS folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from medsam_echo.data.io import DataError
from medsam_echo.data.sample import EchoSample

DEMO_NAME = "demo-camus-v1"  # a new name when the generator's output changes
DEMO_SIZE = (192, 160)  # (H, W) px


@dataclass
class Study:
    """Frames to prompt and where they came from.

    Attributes:
        frames: 2CH / 4CH at ED / ES where known (``case_id`` unique), images ``(H, W)``.
        description: one line for the user (source, patient, frames, true EF if known).
        root: the dataset folder, DICOM file or folder opened.
        loops: ``{view: DicomCine}`` for DICOM input (``frames`` are their key frames), else ``None``.
        key_frames: ``{view: (ED frame, ES frame)}`` indices into ``loops``, else ``None``.
    """

    frames: list[EchoSample]
    description: str
    root: Path
    loops: dict | None = None
    key_frames: dict[str, tuple[int, int]] | None = None


def open_study(
    data: str | Path | None = None,
    *,
    patient: str | None = None,
    key_frames: dict[str, tuple[int, int]] | None = None,
) -> Study:
    """The frames of one patient.

    Args:
        data: ``None`` (the bundled synthetic patient), a dataset root (CAMUS, ``dataset.yaml`` folder,
            COCO JSON: anything :func:`~medsam_echo.data.open.open_dataset` reads), or a DICOM file or
            folder of loops (needs ``pip install -e ".[dicom]"``).
        patient: datasets only: the patient id (default the first, in sorted order).
        key_frames: DICOM only: ``{view: (ED, ES)}`` frame indices; default guessed per loop (ED at the
            first R-wave of the ECG, else frame 0; ES a third of a beat later).

    Raises:
        DataError: ``data`` is none of these, or the patient is unknown (the message names both).
    """
    if data is None:
        return _dataset_study(demo_root(), patient)
    root = Path(data).expanduser()
    if not root.exists():
        raise DataError(f"{root}: not found (DATA is a CAMUS folder, a DICOM file or folder, or None)")
    if _is_dicom(root):
        return _dicom_study(root, key_frames)
    return _dataset_study(root, patient)


def demo_root() -> Path:
    """The bundled synthetic CAMUS release, written on first call (about 1 MB) and reused after."""
    from medsam_echo.data.synthetic import make_camus

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "medsam-echo"
    for parent in (cache, Path(tempfile.gettempdir()) / "medsam-echo"):
        root = parent / DEMO_NAME
        if (root / "database_split").is_dir():
            return root
        try:
            parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=f".{DEMO_NAME}-", dir=parent))
        except OSError:
            continue
        make_camus(partial, patients=3, seed=0, size=DEMO_SIZE, frames=0)
        try:
            partial.rename(root)  # complete or absent, also with two kernels writing at once
        except OSError:  # another process won the race
            shutil.rmtree(partial, ignore_errors=True)
        return root
    raise DataError(f"cannot write the bundled synthetic study to {cache} or the temporary folder")


def _is_dicom(path: Path) -> bool:
    from medsam_echo.data.dicom import is_dicom_file
    from medsam_echo.data.open import detect_format

    if path.is_file():
        return path.suffix.lower() != ".json" and is_dicom_file(path)
    try:
        detect_format(path)
        return False
    except DataError:
        return any(is_dicom_file(p) for p in path.rglob("*") if p.is_file())


def _dataset_study(root: Path, patient: str | None) -> Study:
    from medsam_echo.data.open import open_dataset

    dataset = open_dataset(root, "all")
    if not dataset.patients:
        raise DataError(f"{root}: no cases")
    patient = patient or dataset.patients[0]
    if patient not in dataset.patients:
        raise DataError(f"{root}: no patient {patient!r}; the first ones are {dataset.patients[:5]}")
    cases = [c for c in dataset.cases if c.startswith(f"{patient}_")] or dataset.cases[:4]
    frames = [dataset.sample(c) for c in cases]
    ef = frames[0].meta.get("ef")
    truth = f", true EF {ef:.1f} %" if isinstance(ef, (int, float)) else ""
    names = ", ".join(f.case_id.removeprefix(f"{patient}_") for f in frames)
    return Study(frames, f"{root} ({patient}: {names}{truth})", root)


def _dicom_study(root: Path, key_frames: dict[str, tuple[int, int]] | None) -> Study:
    from medsam_echo.inference.cine_session import key_frame_samples
    from medsam_echo.inference.exam import assign_views, collect_dicom

    loops = assign_views(collect_dicom([root]))
    chosen = {view: guess_key_frames(cine) for view, cine in loops.items()}
    chosen.update(key_frames or {})
    unknown = sorted(set(chosen) - set(loops))
    if unknown:
        raise DataError(f"{root}: key frames for {unknown}, but the loops are {sorted(loops)}")
    frames = key_frame_samples(loops, chosen)
    names = ", ".join(f"{v} ED {ed} / ES {es} of {loops[v].n_frames}" for v, (ed, es) in chosen.items())
    return Study(frames, f"{root} (DICOM: {names})", root, loops, chosen)


def guess_key_frames(cine) -> tuple[int, int]:
    """``(ED, ES)`` frame indices of a ``DicomCine`` to start prompting from, before any segmentation.

    ED: the frame nearest the first ECG R-wave, else frame 0. ES: a third of a beat after ED (the beat
    from the R-R interval or the heart rate, else the whole loop), within the loop.
    """
    n, times = cine.n_frames, cine.frame_times_ms
    ed, beat_frames = 0, float(n)
    if times is not None and n > 1:
        step = float(times[-1] - times[0]) / (n - 1) or 1.0
        waves = cine.r_waves_ms if cine.r_waves_ms is not None else []
        if len(waves):
            ed = int(abs(times - waves[0]).argmin())
        if len(waves) > 1:
            beat_frames = float(waves[1] - waves[0]) / step
        elif cine.heart_rate:
            beat_frames = 60000.0 / cine.heart_rate / step
    return ed, min(n - 1, ed + max(1, round(beat_frames / 3)))
