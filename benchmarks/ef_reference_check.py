"""Our biplane Simpson EF against the CAMUS reference logic, on expert label maps.

The reference is the CREATIS CAMUS script (``script_camus_ef.ipynb``, CAMUS challenge site), as reproduced
in MemSAM's ``utils/compute_ef.py`` (github.com/dengxl0520/MemSAM) and in the ``vital`` library. This file
re-implements it in numpy from the facts read there (no code copied); ``docs/ef_reference.md`` lists
them. In short, per view and phase:

1. the binary LV cavity is resampled (nearest) to isotropic pixels of the finer spacing;
2. its contour is the first marching-squares iso-line at 0.5 (``skimage.measure.find_contours``);
3. the base (mitral plane) is the longest chord between two contour points ``j < i`` whose direction from
   ``i`` to ``j`` is within 45 degrees of the +x (column) axis and such that every contour point between
   them lies within 8 px of the chord; the base point is the contour point half-way (in index) between;
4. the apex is the contour point farthest from the base point; ``L`` = that distance;
5. 20 chords perpendicular to the axis, at fractions 0, 1/20, ..., 19/20 from base to apex; each
   half-chord is walked outward from 8 px in 0.5 px steps until a background pixel (or the border);
6. one disk height for both phases: ``max(L)/20`` over the four frames (2CH/4CH x ED/ES);
   ``V = pi/4 * sum(a_i * b_i) * h``, rounded to whole mL; EF = 100 (EDV - ESV) / EDV.

Run from the repository root (GT masks only, no model; about 20 s for 10 patients on 2 shared cores):

    nice -n 19 python benchmarks/ef_reference_check.py --data /work/shared/data/camus224 --patients 10
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from medsam_echo.data.open import open_dataset
from medsam_echo.data.sample import LABELS
from medsam_echo.evaluation.clinical import (
    BIPLANE_FRAMES,
    N_DISKS,
    biplane_ef,
    disk_diameters,
    ejection_fraction,
    long_axis,
)

BASE_LINE_TOL_PX = 8.0  # contour points between the base ends may lie this far (px) from the base chord
BASE_ANGLE_DEG = 45.0  # the base chord's direction from its later to its earlier end, from the +x axis
CHORD_START_PX = 8.0  # each half-chord is walked from this distance (px) off the axis ...
CHORD_STEP_PX = 0.5  # ... outward in steps of this


# ---- the reference logic, re-implemented -------------------------------------------------------------
def isotropic(mask: np.ndarray, spacing_xy: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Nearest-neighbour resampling of ``mask`` to square pixels of the finer spacing (as PIL NEAREST)."""
    sx, sy = spacing_xy
    fine = min(sx, sy)
    height, width = mask.shape
    new_h, new_w = round(height * sy / fine), round(width * sx / fine)
    rows = np.minimum(((np.arange(new_h) + 0.5) * height / new_h).astype(int), height - 1)
    cols = np.minimum(((np.arange(new_w) + 0.5) * width / new_w).astype(int), width - 1)
    return mask[np.ix_(rows, cols)], fine


def base_chord(contour: np.ndarray) -> tuple[int, int]:
    """Indices ``(j, i)``, ``j < i``, of the reference's base chord on ``contour`` ``(N, 2)`` (row, col)."""
    best, best_ji = 0.0, (0, 0)
    for i in range(2, len(contour)):
        prev = contour[:i]
        diff = prev - contour[i]  # (drow, dcol) from point i to each earlier point j
        angle = np.abs(np.degrees(np.arctan2(diff[:, 0], diff[:, 1])))
        norm_all = np.hypot(diff[:, 0], diff[:, 1])
        # only chords longer than the best so far can replace it (the scan keeps the first of equals)
        cand = np.nonzero((angle <= BASE_ANGLE_DEG) & (norm_all > best))[0]
        if cand.size == 0:
            continue
        norm = norm_all[cand]
        # distance of every earlier point k to the line through i and each candidate j
        rel = contour[i] - prev  # (k, 2)
        cross = diff[cand, 0, None] * rel[None, :, 1] - diff[cand, 1, None] * rel[None, :, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.abs(cross) / norm[:, None]
        between = np.arange(i)[None, :] > cand[:, None]  # only the points strictly between j and i
        far = ~(dist <= BASE_LINE_TOL_PX) & between  # NaN (j coincides with i) counts as far
        ok = ~far.any(axis=1)
        if not ok.any():
            continue
        lengths = np.where(ok, norm, -1.0)
        k = int(np.argmax(lengths))  # first of the longest, as a strict-improvement scan would keep
        best, best_ji = float(lengths[k]), (int(cand[k]), i)
    return best_ji


def half_chord(mask: np.ndarray, start: np.ndarray, direction: np.ndarray) -> float:
    """Distance (px) walked from ``start`` along ``direction`` until a background pixel or the border."""
    height, width = mask.shape
    d = CHORD_START_PX
    while True:
        r, c = np.round(start + d * direction).astype(int)
        if not (0 <= r < height and 0 <= c < width) or not mask[r, c]:
            return d
        d += CHORD_STEP_PX


def reference_view(mask: np.ndarray, spacing_xy: tuple[float, float], n_disks: int = N_DISKS) -> dict:
    """Reference chords (mm) and axis length (mm) of one binary LV mask with spacing ``(sx, sy)`` mm."""
    from skimage.measure import find_contours  # what the reference uses for its contour

    iso, mm = isotropic(mask.astype(np.uint8), spacing_xy)
    contour = find_contours(iso, 0.5)[0]
    j, i = base_chord(contour)
    mid = int(j + round((i - j) / 2))  # Python round: half to even
    dist = np.hypot(*(contour - contour[mid]).T)
    apex = int(np.argmax(dist))
    direction = contour[apex] - contour[mid]
    normal = np.array([-direction[1], direction[0]]) / np.hypot(*direction)
    chords = []
    for fraction in np.arange(n_disks) / n_disks:
        point = contour[mid] + direction * fraction
        chords.append((half_chord(iso, point, normal) + half_chord(iso, point, -normal)) * mm)
    return {"diameters": np.array(chords), "length": float(dist[apex]) * mm,
            "base": contour[mid][::-1].copy(), "apex": contour[apex][::-1].copy(), "contour_points": len(contour)}


def reference_ef(frames: dict, *, per_phase_length: bool = False, round_ml: bool = True) -> dict:
    """EDV, ESV (mL) and EF (%) by the reference logic from ``{(view, phase): (labels, (sx, sy))}``.

    ``per_phase_length``: our convention for the disk height (the longer view at each phase) instead of the
    reference's single one (the longest of the four frames); ``round_ml``: the reference's whole-mL volumes.
    """
    views = {key: reference_view(labels == LABELS["lv_endo"], spacing) for key, (labels, spacing) in frames.items()}
    longest = max(v["length"] for v in views.values())
    out = {}
    for phase in ("ED", "ES"):
        a, b = views[("2CH", phase)], views[("4CH", phase)]
        length = max(a["length"], b["length"]) if per_phase_length else longest
        volume = math.pi / 4 * float(np.sum(a["diameters"] * b["diameters"])) * length / N_DISKS / 1000.0
        out[phase] = round(volume) if round_ml else volume
    return {"edv_ml": out["ED"], "esv_ml": out["ES"], "ef": ejection_fraction(out["ED"], out["ES"]),
            "views": views}


def axis_offset(base: np.ndarray, apex: np.ndarray, view: dict, factor: int) -> tuple[float, float]:
    """Distance (px of the original masks) between our base point and the reference's, and the angle (deg)
    between the two long axes; ``view`` from :func:`reference_view` on masks upsampled by ``factor``."""
    ref_base, ref_apex = view["base"] / factor, view["apex"] / factor
    ours_dir, ref_dir = apex - base, ref_apex - ref_base
    angle = np.degrees(np.arctan2(ref_dir[1], ref_dir[0]) - np.arctan2(ours_dir[1], ours_dir[0]))
    return float(np.hypot(*(ref_base - base))), float(abs((angle + 180.0) % 360.0 - 180.0))


# ---- our method with the reference's disk height, to separate the two kinds of difference --------------
def ours_single_height(frames: dict) -> dict:
    """Our disks (slab area / height), with the reference's one disk height ``max(L)/20`` over 4 frames."""
    disks = {key: disk_diameters(labels, spacing) for key, (labels, spacing) in frames.items()}
    longest = max(length for _, length in disks.values())
    vol = {}
    for phase in ("ED", "ES"):
        a, b = disks[("2CH", phase)][0], disks[("4CH", phase)][0]
        vol[phase] = math.pi / 4 * float(np.sum(a * b)) * longest / N_DISKS / 1000.0
    return {"edv_ml": vol["ED"], "esv_ml": vol["ES"], "ef": ejection_fraction(vol["ED"], vol["ES"])}


def upsampled(frames: dict, factor: int) -> dict:
    """The frames at ``factor`` x the resolution (nearest), spacing divided by ``factor``: the same anatomy
    with the reference's pixel constants (8 px) ``factor`` times smaller in mm."""
    return {key: (np.kron(labels, np.ones((factor, factor), dtype=labels.dtype)),
                  (spacing[0] / factor, spacing[1] / factor)) for key, (labels, spacing) in frames.items()}


# ---- a known answer: half prolate spheroids ------------------------------------------------------------
def spheroid_view(radius: float, length: float, size: int = 224, base_row: int = 180) -> np.ndarray:
    """Label map of one apical view of a half spheroid (apex up, flat base on ``base_row``), 1 px = 1 mm:
    cavity (1) where the pixel centre is inside, myocardium (2) a 5 px rim, left atrium (3) below the base."""
    y, x = np.mgrid[0:size, 0:size].astype(float)
    cx = size / 2 - 0.5

    def inside(r: float, ln: float) -> np.ndarray:
        return (y <= base_row) & (((x - cx) / r) ** 2 + ((base_row - y) / ln) ** 2 <= 1.0)

    labels = np.zeros((size, size), np.uint8)
    labels[inside(radius + 5, length + 5)] = LABELS["myo"]
    labels[inside(radius, length)] = LABELS["lv_endo"]
    labels[(y > base_row) & (y <= base_row + 30) & (np.abs(x - cx) <= radius + 3)] = LABELS["la"]
    return labels


SPHEROIDS = {  # (2CH radius, 4CH radius, long axis) in mm at ED and ES
    "shortening": {"ED": (24.0, 22.0, 95.0), "ES": (18.0, 16.0, 80.0)},
    "no shortening": {"ED": (24.0, 22.0, 95.0), "ES": (18.0, 16.0, 95.0)},
}


def known_volume_check() -> None:
    """True EDV / ESV / EF of two half-spheroid hearts against ours and the reference logic."""
    print("\nKnown volumes: half prolate spheroids, V = 2/3 pi r_2CH r_4CH L (224 px, 1 mm px, 20 disks)")
    print(f"  {'case':<15}{'':>12}{'EDV':>8}{'ESV':>8}{'EF':>8}")
    for name, phases in SPHEROIDS.items():
        frames = {(view, ph): (spheroid_view(phases[ph][0 if view == "2CH" else 1], phases[ph][2]), (1.0, 1.0))
                  for view, ph in BIPLANE_FRAMES}
        true = {ph: 2 / 3 * math.pi * r2 * r4 * ln / 1000.0 for ph, (r2, r4, ln) in phases.items()}
        results = {"true": {"edv_ml": true["ED"], "esv_ml": true["ES"], "ef": ejection_fraction(true["ED"], true["ES"])},
                   "ours": biplane_ef(frames), "reference": reference_ef(frames, round_ml=False),
                   "reference x3": reference_ef(upsampled(frames, 3), round_ml=False)}
        for label, res in results.items():
            print(f"  {name:<15}{label:>12}{res['edv_ml']:8.1f}{res['esv_ml']:8.1f}{res['ef']:8.2f}")


# ---- data ---------------------------------------------------------------------------------------------
def training_patients(root: Path, count: int) -> list[str]:
    """The first ``count`` patients of the CAMUS training subgroup, in the file's order."""
    listed = (root / "database_split" / "subgroup_training.txt").read_text().split()
    return listed[:count]


def load_frames(dataset, patient: str) -> dict:
    """``{(view, phase): (GT label map, (sx, sy) mm)}`` of one patient, via the package's dataset API."""
    frames = {}
    for view, phase in BIPLANE_FRAMES:
        sample = dataset.sample(f"{patient}_{view}_{phase}")
        frames[(view, phase)] = (sample.label, tuple(float(s) for s in sample.spacing))
    return frames


def info_values(dataset, patient: str) -> dict:
    """EF / LVedv / LVesv the patient's Info files carry, if any (the 2023 release has EF; camus224 none)."""
    found = {}
    for view in ("2CH", "4CH"):
        info = dataset.info(patient, view)
        for key in ("LVef", "EF", "LVedv", "LVesv"):
            if key in info and key not in found:
                found[key] = info[key]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="CAMUS 2023 NIfTI release root (e.g. camus224)")
    parser.add_argument("--patients", type=int, default=10, help="first N patients of subgroup_training.txt")
    parser.add_argument("--upsample", type=int, default=3,
                        help="also run the reference on masks upsampled by this factor (0: skip)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    dataset = open_dataset(args.data, "train")
    patients = training_patients(args.data, args.patients)
    not_train = [p for p in patients if p not in set(dataset.patients)]
    if not_train:
        raise SystemExit(f"not in the training split: {not_train}")

    rows, info_rows, axis_rows = [], [], []
    axis_offsets: dict[int, list[tuple[float, float]]] = {}
    for patient in patients:
        frames = load_frames(dataset, patient)
        ours = biplane_ef(frames)
        ref = reference_ef(frames)
        ref_raw = reference_ef(frames, round_ml=False)
        ref_phase = reference_ef(frames, per_phase_length=True, round_ml=False)
        ours_h = ours_single_height(frames)
        row = {"patient": patient, "ours": ours, "ref": ref, "ref_raw": ref_raw, "ref_phase": ref_phase,
               "ours_h": ours_h}
        if args.upsample > 1:
            row["ref_up"] = reference_ef(upsampled(frames, args.upsample), round_ml=False)
        rows.append(row)
        for key in BIPLANE_FRAMES:
            diam, length = disk_diameters(*frames[key])
            rv = ref_raw["views"][key]
            axis_rows.append((patient, key, length, rv["length"], float(diam.sum()), float(rv["diameters"].sum())))
            base, apex = long_axis(*frames[key])
            for factor, result in ((1, ref_raw), (args.upsample, row.get("ref_up"))):
                if result is not None:
                    view = result["views"][key]
                    axis_offsets.setdefault(factor, []).append(axis_offset(base, apex, view, factor))
        info = info_values(dataset, patient)
        if info:
            info_rows.append((patient, info, ours, ref))

    spacing = sorted({tuple(f[1]) for f in frames.values()})
    print(f"data {args.data} (training subgroup, first {len(patients)} patients), spacing {spacing} mm")
    print("units: mL from the header spacing (camus224: nominal 1 mm, so px^3 / 1000)\n")
    head = (f"{'patient':<12}{'EDV ours':>9}{'EDV ref':>9}{'ESV ours':>9}{'ESV ref':>9}"
            f"{'EF ours':>9}{'EF ref':>9}{'dEF':>7}  | {'ours,h4':>8}{'ref,hph':>8}{'ref raw':>8}")
    if args.upsample > 1:
        head += f"{'ref x' + str(args.upsample):>8}"
    print(head)
    diffs = {k: [] for k in ("ref", "ref_raw", "ours_h", "ref_phase", "ref_up", "ref_up_vs_raw",
                                 "ref_phase_vs_ours")}
    for r in rows:
        o, f = r["ours"], r["ref"]
        line = (f"{r['patient']:<12}{o['edv_ml']:9.1f}{f['edv_ml']:9.0f}{o['esv_ml']:9.1f}{f['esv_ml']:9.0f}"
                f"{o['ef']:9.2f}{f['ef']:9.2f}{f['ef'] - o['ef']:7.2f}  | {r['ours_h']['ef']:8.2f}"
                f"{r['ref_phase']['ef']:8.2f}{r['ref_raw']['ef']:8.2f}")
        if "ref_up" in r:
            line += f"{r['ref_up']['ef']:8.2f}"
            diffs["ref_up"].append(r["ref_up"]["ef"] - o["ef"])
            diffs["ref_up_vs_raw"].append(r["ref_up"]["ef"] - r["ref_raw"]["ef"])
        print(line)
        for k in ("ref", "ref_raw", "ours_h"):
            diffs[k].append(r[k]["ef"] - o["ef"])
        diffs["ref_phase"].append(r["ref_phase"]["ef"] - r["ref_raw"]["ef"])
        diffs["ref_phase_vs_ours"].append(r["ref_phase"]["ef"] - o["ef"])

    def stats(name: str, values: list[float]) -> None:
        v = np.asarray(values)
        if v.size:
            print(f"  {name:<58} mean {v.mean():+6.2f}  mean|.| {np.abs(v).mean():5.2f}  max|.| {np.abs(v).max():5.2f}")

    print("\nEF differences (percentage points):")
    stats("reference (whole mL) - ours", diffs["ref"])
    stats("reference (unrounded) - ours", diffs["ref_raw"])
    stats("ours with the reference's single disk height - ours", diffs["ours_h"])
    stats("reference with our per-phase height - reference", diffs["ref_phase"])
    stats("reference with our per-phase height - ours", diffs["ref_phase_vs_ours"])
    if args.upsample > 1:
        stats(f"reference on x{args.upsample} upsampled masks - ours", diffs["ref_up"])
        stats(f"reference on x{args.upsample} upsampled masks - reference at native size", diffs["ref_up_vs_raw"])
    for name, key in (("EDV", "edv_ml"), ("ESV", "esv_ml")):
        rel = [100 * (r["ref_raw"][key] - r["ours"][key]) / r["ours"][key] for r in rows]
        print(f"  {name} reference (unrounded) vs ours: mean {np.mean(rel):+.1f} %, range "
              f"{np.min(rel):+.1f} .. {np.max(rel):+.1f} %")

    a = np.array([row[2:] for row in axis_rows])
    print("\nPer frame (4 per patient): long axis L and sum of the 20 diameters, reference / ours")
    print(f"  L ratio: mean {np.mean(a[:, 1] / a[:, 0]):.3f}, range {np.min(a[:, 1] / a[:, 0]):.3f} .. "
          f"{np.max(a[:, 1] / a[:, 0]):.3f};  diameter-sum ratio: mean {np.mean(a[:, 3] / a[:, 2]):.3f}, "
          f"range {np.min(a[:, 3] / a[:, 2]):.3f} .. {np.max(a[:, 3] / a[:, 2]):.3f}")
    es_ed = [r["ref_raw"]["views"][(v, "ES")]["length"] / r["ref_raw"]["views"][(v, "ED")]["length"]
             for r in rows for v in ("2CH", "4CH")]
    print(f"  reference L_ES / L_ED per view: mean {np.mean(es_ed):.3f}, range {min(es_ed):.3f} .. {max(es_ed):.3f}")
    for factor, offsets in axis_offsets.items():
        off = np.array(offsets)
        print(f"  reference axis vs ours, masks x{factor}: base point {np.median(off[:, 0]):.1f} px apart (median; "
              f"> 5 px in {int((off[:, 0] > 5).sum())}, > 10 px in {int((off[:, 0] > 10).sum())} of {len(off)} frames), "
              f"axis direction {np.median(off[:, 1]):.1f} deg apart (median; > 10 deg in {int((off[:, 1] > 10).sum())})")

    known_volume_check()

    print("\nInfo files (the CAMUS release's own EF):")
    if not info_rows:
        print("  none of these patients has Info_2CH.cfg / Info_4CH.cfg with EF / LVef / LVedv / LVesv here")
    for patient, info, ours, ref in info_rows:
        print(f"  {patient}: Info {info}; ours EF {ours['ef']:.2f}, reference EF {ref['ef']:.2f}")
    print(f"\n{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
