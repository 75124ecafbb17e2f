"""Synthetic apical echo phantoms in the CAMUS layout, with a known ejection fraction.

Each patient has a left ventricle whose cavity is half of a prolate ellipsoid (apex at the top, the
mitral plane at its equator) with half-widths ``a2`` (2CH) and ``a4`` (4CH) and long axis ``L`` in mm, so
its true volume is ``2/3 * pi * a2 * a4 * L`` -- exactly what the biplane method of disks integrates.
From ED to ES the apex stays put, the widths shrink by ``r**0.4`` and the length by ``r**0.2`` with
``r = 1 - EF / 100``; the myocardium thickens and the left atrium grows. Images are drawn inside an
ultrasound sector with depth attenuation and multiplicative Rayleigh speckle, on an anisotropic grid
(``sx != sy`` mm per px). The Info files carry the true EF and volumes.

Command line: ``medsam-echo synth OUT_DIR --patients N --seed S [--format nifti|mhd]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from medsam_echo.data.io import write_image

FORMATS = {"nifti": ".nii.gz", "mhd": ".mhd"}
QUALITIES = ("Good", "Medium", "Poor")
_FOG = {"Good": 0.0, "Medium": 20.0, "Poor": 40.0}  # haze added to blood pools, in 0-255 intensity


@dataclass(frozen=True)
class Heart:
    """One patient's phantom, sizes in mm at ED. ``ef`` in %; ``quality`` one of ``QUALITIES``."""

    ef: float
    a2: float
    a4: float
    length: float
    wall: float
    apex_depth: float
    la_width: float
    la_height: float
    quality: str

    def volume_ml(self, phase_t: float) -> float:
        """LV cavity volume in mL at ``phase_t`` (0 = ED, 1 = ES)."""
        a2, a4, length = self.a2, self.a4, self.length
        k_width, k_length = self._factors(phase_t)
        return 2.0 / 3.0 * np.pi * (a2 * k_width) * (a4 * k_width) * (length * k_length) / 1000.0

    def _factors(self, phase_t: float) -> tuple[float, float]:
        ratio = 1.0 - self.ef / 100.0
        return ratio ** (0.4 * phase_t), ratio ** (0.2 * phase_t)


def random_heart(rng: np.random.Generator) -> Heart:
    """Draw a plausible phantom: EF 25-70 %, LV length 70-90 mm, wall 8-11 mm."""
    a2 = rng.uniform(20, 26)
    return Heart(
        ef=float(rng.uniform(25, 70)),
        a2=a2,
        a4=a2 * rng.uniform(0.9, 1.15),
        length=rng.uniform(70, 90),
        wall=rng.uniform(8, 11),
        apex_depth=rng.uniform(8, 14),
        la_width=rng.uniform(16, 22),
        la_height=rng.uniform(18, 24),
        quality=str(rng.choice(QUALITIES, p=[0.5, 0.35, 0.15])),
    )


def render(
    heart: Heart,
    view: str,
    phase_t: float,
    spacing: tuple[float, float],
    size: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one frame.

    Args:
        heart: the phantom. view: ``"2CH"`` or ``"4CH"`` (picks the half-width ``a2`` or ``a4``).
        phase_t: 0 at ED, 1 at ES. spacing: ``(sx, sy)`` mm per px. size: ``(H, W)`` px.
        rng: source of the speckle.

    Returns:
        ``(image, label)``: ``(H, W)`` uint8 each; labels 0 background, 1 LV cavity, 2 myocardium, 3 LA.
    """
    height, width = size
    sx, sy = spacing
    x = (np.arange(width) - (width - 1) / 2.0) * sx  # mm, 0 on the beam axis
    y = (np.arange(height) + 0.5) * sy  # mm depth from the probe
    xx, yy = np.meshgrid(x, y)
    k_width, k_length = heart._factors(phase_t)
    a = (heart.a2 if view == "2CH" else heart.a4) * k_width
    length, wall = heart.length * k_length, heart.wall * (1.0 + 0.3 * phase_t)
    base = heart.apex_depth + heart.wall + length  # apex stays put; the mitral plane moves up in systole
    above_base = yy <= base
    cavity = above_base & ((xx / a) ** 2 + ((yy - base) / length) ** 2 <= 1.0)
    epi = above_base & ((xx / (a + wall)) ** 2 + ((yy - base) / (length + wall)) ** 2 <= 1.0)
    la_w, la_h = heart.la_width * (1 + 0.15 * phase_t), heart.la_height * (1 + 0.15 * phase_t)
    atrium = (yy > base) & ((xx / la_w) ** 2 + ((yy - base - la_h) / la_h) ** 2 <= 1.0)
    label = np.zeros(size, np.uint8)
    label[epi], label[cavity], label[atrium] = 2, 1, 3
    return _echo_texture(label, xx, yy, heart.quality, rng), label


def _echo_texture(
    label: np.ndarray, xx: np.ndarray, yy: np.ndarray, quality: str, rng: np.random.Generator
) -> np.ndarray:
    """Sector, soft edges, depth attenuation and speckle over a label map; uint8 ``(H, W)``."""
    blood = 12.0 + _FOG[quality]
    mean = np.array([75.0, blood, 175.0, blood], np.float32)[label]
    mean = cv2.GaussianBlur(mean, (0, 0), 1.5)
    radius, angle = np.hypot(xx, yy), np.arctan2(xx, yy)
    sector = (np.abs(angle) <= np.deg2rad(40)) & (radius <= yy.max())
    speckle = rng.rayleigh(scale=np.sqrt(2 / np.pi), size=label.shape).astype(np.float32)  # mean 1
    speckle = cv2.GaussianBlur(speckle, (0, 0), 0.8)
    image = mean * speckle * np.exp(-0.004 * radius)
    return np.where(sector, np.clip(image, 0, 255), 0).astype(np.uint8)


def make_camus(
    out_dir: str | Path,
    *,
    patients: int = 10,
    seed: int = 0,
    fmt: str = "nifti",
    size: tuple[int, int] = (192, 160),
    frames: int = 6,
) -> Path:
    """Write a synthetic CAMUS release.

    Args:
        out_dir: target folder, created; must be new or empty. ``nifti`` writes the 2023 layout (``database_nifti/`` with
            half-sequences, ``database_split/`` 80 / 10 / 10 %); ``mhd`` the 2019 layout (``training/``
            with labels and full sequences, ``testing/`` 10 % of patients without labels).
        patients: number of patients (>= 3). seed: makes the output reproducible.
        fmt: ``"nifti"`` or ``"mhd"``. size: ``(H, W)`` px. frames: frames per (half-)sequence, 0 for none.

    Returns:
        ``out_dir`` as a Path.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {sorted(FORMATS)}")
    if patients < 3:
        raise ValueError(f"need at least 3 patients (one per split), got {patients}")
    if frames == 1 or frames < 0:
        raise ValueError(f"frames must be 0 (no sequences) or >= 2 (ED to ES), got {frames}")
    out, rng = Path(out_dir), np.random.default_rng(seed)
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"{out}: folder is not empty; write synthetic data into a new or empty folder")
    ids = [f"patient{i:04d}" for i in range(1, patients + 1)]
    n_test = max(1, round(0.1 * patients))
    groups = {
        "training": ids[: patients - 2 * n_test],
        "validation": ids[-2 * n_test : -n_test],
        "testing": ids[-n_test:],
    }
    for pid in ids:
        is_test = pid in groups["testing"]
        folder = out / ("database_nifti" if fmt == "nifti" else ("testing" if is_test else "training")) / pid
        heart, labelled = random_heart(rng), fmt == "nifti" or not is_test
        for view in ("2CH", "4CH"):
            # a fixed field of view (95-110 mm wide, 165-180 mm deep) on an anisotropic px grid
            spacing = (float(rng.uniform(95, 110) / size[1]), float(rng.uniform(165, 180) / size[0]))
            _write_view(folder, pid, view, heart, spacing, size, frames, fmt, labels=labelled, rng=rng)
    if fmt == "nifti":
        for name, members in groups.items():
            path = out / "database_split" / f"subgroup_{name}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{p}\n" for p in members))
    return out


def _write_view(
    folder: Path, pid: str, view: str, heart: Heart, spacing: tuple[float, float], size: tuple[int, int],
    frames: int, fmt: str, *, labels: bool, rng: np.random.Generator,
) -> None:  # fmt: skip
    """Write ED / ES images (+ labels), the (half-)sequence and ``Info_{view}.cfg`` of one view."""
    ext, n = FORMATS[fmt], max(frames, 2)
    drawn = [render(heart, view, t, spacing, size, rng) for t in np.linspace(0.0, 1.0, n)]
    for phase, (image, label) in (("ED", drawn[0]), ("ES", drawn[-1])):
        write_image(folder / f"{pid}_{view}_{phase}{ext}", image, spacing)
        if labels:
            write_image(folder / f"{pid}_{view}_{phase}_gt{ext}", label, spacing)
    if frames:
        stem = f"{pid}_{view}_{'half_sequence' if fmt == 'nifti' else 'sequence'}"
        write_image(folder / f"{stem}{ext}", np.stack([d[0] for d in drawn]), spacing)
        if labels and fmt == "nifti":
            write_image(folder / f"{stem}_gt{ext}", np.stack([d[1] for d in drawn]), spacing)
    info = {
        "ED": 1, "ES": n, "NbFrame": n, "Sex": str(rng.choice(["F", "M"])), "Age": int(rng.integers(20, 90)),
        "ImageQuality": heart.quality, "EF": round(heart.ef, 2), "FrameRate": 50,
        "LVedv": round(heart.volume_ml(0.0), 2), "LVesv": round(heart.volume_ml(1.0), 2),
    }  # fmt: skip
    (folder / f"Info_{view}.cfg").write_text("".join(f"{k}: {v}\n" for k, v in info.items()))


@dataclass(frozen=True)
class SyntheticCine:
    """A cine loop of one apical view with its truth (see :func:`make_cine`).

    Attributes:
        images: ``(T, H, W)`` uint8 frames, in time order.
        labels: ``(T, H, W)`` uint8 label maps (0 background, 1 LV cavity, 2 myocardium, 3 LA).
        phase: ``(T,)`` contraction of each frame, 0 at ED and 1 at ES.
        ed_frames, es_frames: indices of the frames drawn exactly at ED / ES, ascending.
        spacing: ``(sx, sy)`` mm per px. frame_time_ms: time between frames in ms.
        heart: the phantom; ``heart.ef`` is the loop's true EF (%).
    """

    images: np.ndarray
    labels: np.ndarray
    phase: np.ndarray
    ed_frames: tuple[int, ...]
    es_frames: tuple[int, ...]
    spacing: tuple[float, float]
    frame_time_ms: float
    heart: Heart


def cine_phase(frames: int, cycle: int, systole: int, start: int) -> np.ndarray:
    """``(frames,)`` contraction per frame: 0 at ED (frame ``start`` + k * ``cycle``), 1 at ES
    (``systole`` frames after each ED), cosine-shaped contraction and relaxation in between."""
    c = (np.arange(frames) - start) % cycle
    rise = (1.0 - np.cos(np.pi * c / systole)) / 2.0
    fall = (1.0 + np.cos(np.pi * (c - systole) / (cycle - systole))) / 2.0
    return np.where(c <= systole, rise, fall)


def make_cine(
    heart: Heart,
    view: str,
    *,
    spacing: tuple[float, float],
    size: tuple[int, int] = (192, 160),
    frames: int = 20,
    cycle: int = 14,
    systole: int = 5,
    start: int = 3,
    frame_time_ms: float = 60.0,
    rng: np.random.Generator | None = None,
) -> SyntheticCine:
    """Draw a cine loop of one view: ``frames`` frames of a heart beating with a period of ``cycle`` frames.

    ED falls exactly on frames ``start + k * cycle`` and ES ``systole`` frames later, so the loop's
    volumes at its ED / ES frames are ``heart.volume_ml(0)`` / ``heart.volume_ml(1)`` and its EF is
    ``heart.ef``. Frames are drawn by :func:`render` (same geometry and texture as :func:`make_camus`).

    Args:
        heart: the phantom (e.g. :func:`random_heart`). view: ``"2CH"`` or ``"4CH"``.
        spacing: ``(sx, sy)`` mm per px. size: ``(H, W)`` px.
        frames, cycle, systole, start: loop length, beat period, ED-to-ES frames, first ED frame.
        frame_time_ms: time between frames (ms); only recorded. rng: speckle; default seeded 0.
    """
    if not 0 < systole < cycle or not 0 <= start < frames:
        raise ValueError(f"need 0 < systole < cycle and 0 <= start < frames, got {systole}, {cycle}, {start}")
    rng = rng if rng is not None else np.random.default_rng(0)
    phase = cine_phase(frames, cycle, systole, start)
    drawn = [render(heart, view, float(t), spacing, size, rng) for t in phase]
    ed = tuple(range(start, frames, cycle))
    es = tuple(i for i in range(start + systole, frames, cycle))
    return SyntheticCine(
        images=np.stack([d[0] for d in drawn]),
        labels=np.stack([d[1] for d in drawn]),
        phase=phase,
        ed_frames=ed,
        es_frames=es,
        spacing=(float(spacing[0]), float(spacing[1])),
        frame_time_ms=float(frame_time_ms),
        heart=heart,
    )
