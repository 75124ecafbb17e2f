"""Interactive prompting on DICOM loops: prompt ED and ES of each loop, segment every frame, get the EF.

The notebook's flow (``notebooks/02_clinician_prompting.ipynb``)::

    loops = assign_views(collect_dicom([EXAM]))                       # {view: DicomCine}
    session = PromptSession(predictor, key_frame_samples(loops, {"2CH": (3, 8), "4CH": (3, 8)}))
    ... boxes / clicks on the four frames (PromptWidget or session.add_box) ...
    result = segment_loops(predictor, loops, prompts_from_session(session))
    result["exam"]["ef"]

Key frames are full frames of the loop; prompts are px of the full frame, ``(x, y)`` order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from medsam_echo.data.dicom import DicomCine
from medsam_echo.data.sample import EchoSample
from medsam_echo.inference.cine import CinePrompts, area_curve, exam_volumes, find_phases, segment_cine
from medsam_echo.inference.interactive import PromptSession
from medsam_echo.inference.predictor import EchoPredictor


def key_frame_samples(loops: Mapping[str, DicomCine], frames: Mapping[str, tuple[int, int]]) -> list[EchoSample]:
    """The ED and ES frames of each loop as session frames ``<view>_ED`` / ``<view>_ES``.

    Args:
        loops: ``{view: DicomCine}``. frames: ``{view: (ed frame, es frame)}``, indices into the loop.

    A loop without spacing gets ``(1, 1)`` (px) so that the session can still show an EF of px volumes.
    """
    samples = []
    for view, (ed, es) in frames.items():
        cine = loops[view]
        for phase, t in (("ED", ed), ("ES", es)):
            samples.append(
                EchoSample(cine.frames[t], None, cine.spacing or (1.0, 1.0), f"{view}_{phase}", view=view,
                           phase=phase, meta={"frame": int(t)})  # fmt: skip
            )
    return samples


def prompts_from_session(session: PromptSession) -> dict[str, CinePrompts]:
    """``{view: CinePrompts}`` from a session's last box and the clicks after it, per frame and structure."""
    keys: dict[str, dict[int, list[dict]]] = {}
    for case_id, frame in session.frames.items():
        entries = [e for e in (_entry(session, case_id, s) for s in session.structures) if e]
        if entries:
            keys.setdefault(frame.view, {})[int(frame.meta["frame"])] = entries
    return {view: CinePrompts(k) for view, k in keys.items()}


def _entry(session: PromptSession, case_id: str, structure: str) -> dict | None:
    actions = [action for action, _ in session._history.get((case_id, structure), [])]
    boxes = [i for i, a in enumerate(actions) if a[0] == "box"]
    start = boxes[-1] if boxes else 0
    entry: dict = {"structure": structure}
    if boxes:
        entry["box"] = list(actions[start][1])
    clicks = [a for a in actions[start:] if a[0] == "click"]
    if clicks:
        entry["points"] = [list(a[1]) for a in clicks]
        entry["labels"] = [int(a[2]) for a in clicks]
    return entry if len(entry) > 1 else None


def segment_loops(
    predictor: EchoPredictor, loops: Mapping[str, DicomCine], prompts: Mapping[str, CinePrompts], batch_size: int = 8
) -> dict:
    """Every frame of every prompted loop segmented; ``{"loops": {view: {...}}, "exam": volumes and EF}``.

    Per loop: ``labels`` ``(T, H, W)``, ``area`` ``(T,)`` with its ``unit``, and ``phases`` (ED / ES found
    from the area curve or the R-waves).
    """
    out: dict = {"loops": {}}
    for view, cine in loops.items():
        if view not in prompts:
            continue
        labels, _ = segment_cine(predictor, cine.frames, prompts[view], spacing=cine.spacing, view=cine.view,
                                 crop=cine.region, batch_size=batch_size)  # fmt: skip
        area, unit = area_curve(labels, cine.spacing)
        phases = find_phases(area, cine.frame_times_ms, cine.r_waves_ms, cine.heart_rate)
        out["loops"][view] = {"labels": labels, "area": area, "unit": unit, "phases": phases}
    volumes = {v: (r["labels"], loops[v].spacing, r["phases"]) for v, r in out["loops"].items()}
    out["exam"] = exam_volumes(volumes) if volumes else {}
    return out


def frame_picture(cine: DicomCine, t: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Frame ``t`` as an RGB ``(H, W, 3)`` picture, with its label map tinted when given."""
    from medsam_echo.inference.export import overlay

    frame = cine.frames[t]
    return overlay(frame, labels[t] if labels is not None else np.zeros(frame.shape, np.uint8))
