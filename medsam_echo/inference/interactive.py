"""Clinician-in-the-loop prompting, without any UI: the state behind the notebook widget.

A :class:`PromptSession` holds a few frames (typically a patient's 2CH / 4CH views at ED and ES), and
for each frame and structure the history of the user's actions: a box, clicks (positive / negative) or
brush strokes. Each action is answered at once by the predictor; a click refines the previous mask by the
predictor's click behaviour (``EchoPredictor.click_behaviour``: the previous logits fed back for a
click-trained model, a box edit for a box-only one such as LiteMedSAM). A brush stroke (:meth:`paint`)
paints or erases the current structure's mask by hand, for what no click fixes: it is the last word, kept
on top of the clicks after it (a new box starts over). ``undo`` drops the last action of the current frame
and structure, stroke or prompt, so the previous mask is back exactly. Label maps combine the structures with
``prompts.decode.combine_structures``; :meth:`PromptSession.ejection_fraction` computes the biplane EF
once the four CAMUS frames are segmented; :meth:`PromptSession.export` writes it all.

The image encoder runs once per frame, the first time the frame is selected; its output is kept, so
switching back to a frame and every box or click after it are decoder calls only. Sessions may share a
predictor: each action points it at the session's own current frame first (no encoder call).

The decoder answers each action on one CPU thread (``decoder_threads``): the mask decoder is small, and
with PyTorch's two threads on a 2-core CPU whose other core is busy, LiteMedSAM's decoder took 800 ms per
box instead of 100 ms on one thread (both measured here, load average 4).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from medsam_echo.data.io import write_image
from medsam_echo.data.sample import STRUCTURES, EchoSample
from medsam_echo.inference.engines import Encoded
from medsam_echo.inference.inputs import check_image
from medsam_echo.inference.predictor import EchoPredictor, Prediction
from medsam_echo.prompts.decode import combine_structures

ACTIONS = ("box", "click", "paint")
PAINT_LOGIT = 1000.0  # a painted pixel's logit: above any model's, so it wins the label map (erased: minus it)


class PromptSession:
    """Interactive prompting over frames (``EchoSample``; labels unused) with one predictor.

    Args:
        predictor: any :class:`EchoPredictor` (a model or ``baseline:ellipse``).
        frames: the images, keyed by their ``case_id`` (unique); ``view`` / ``phase`` (``2CH``/``4CH``,
            ``ED``/``ES``) are needed for the EF only.
        structures: the structures offered; default the predictor's.
        decoder_threads: PyTorch CPU threads while a box or click is decoded (restored after);
            ``None`` leaves PyTorch's setting.
    """

    def __init__(
        self,
        predictor: EchoPredictor,
        frames: Sequence[EchoSample],
        structures: Sequence[str] | None = None,
        *,
        decoder_threads: int | None = 1,
    ) -> None:
        if not frames:
            raise ValueError("a prompting session needs at least one frame")
        self.frames = {frame.case_id: frame for frame in frames}
        if len(self.frames) != len(frames):
            raise ValueError(f"frame case_ids must be unique, got {[f.case_id for f in frames]}")
        self.structures = tuple(structures or predictor.structures)
        unknown = sorted(set(self.structures) - set(STRUCTURES))
        if unknown:
            raise KeyError(f"unknown structures {unknown}; choose from {sorted(STRUCTURES)}")
        self.predictor = predictor
        self.decoder_threads = decoder_threads
        # (frame, structure) -> [(action, Prediction)], oldest first
        self._history: dict[tuple[str, str], list[tuple[tuple, Prediction]]] = {}
        self._encoded: dict[str, Encoded] = {}  # case_id -> the image encoder's output, computed once
        self._strokes = 0  # painted logits grow by stroke, so the latest stroke wins between structures
        self.frame = ""
        self.structure = self.structures[0]
        self.select_frame(frames[0].case_id)

    def select_frame(self, case_id: str) -> None:
        """Make ``case_id`` the current frame (runs the image encoder the first time only)."""
        if case_id not in self.frames:
            raise KeyError(f"no frame {case_id!r}; frames are {sorted(self.frames)}")
        self.frame = case_id
        self._activate()

    @property
    def encoded_frames(self) -> list[str]:
        """The case ids whose image embedding is computed (and kept), in the order they were encoded."""
        return list(self._encoded)

    def _activate(self) -> None:
        """Make the current frame the predictor's image, encoding it if it never was."""
        frame = self.frames[self.frame]
        encoded = self._encoded.get(self.frame)
        if encoded is None:
            encoded = self._encoded[self.frame] = self.predictor.engine.encode(check_image(frame.image))
        self.predictor.set_image(frame.image, frame.spacing, encoded=encoded)

    def select_structure(self, structure: str) -> None:
        """Make ``structure`` the one the next actions prompt."""
        if structure not in self.structures:
            raise KeyError(f"structure {structure!r} not offered; choose from {self.structures}")
        self.structure = structure

    @property
    def history(self) -> list[tuple[tuple, Prediction]]:
        """The current frame's and structure's actions with their predictions, oldest first."""
        return self._history.setdefault((self.frame, self.structure), [])

    def add_box(self, box: Sequence[float]) -> np.ndarray:
        """Prompt the current structure with an XYXY px box (starts it over); returns its ``(H, W)`` mask."""
        self._activate()
        with _torch_threads(self.decoder_threads):
            prediction = self.predictor.predict(boxes=box, structure=self.structure)
        self.history.append((("box", tuple(float(v) for v in box)), prediction))
        return prediction.logits[0] > 0

    def add_click(self, x: float, y: float, positive: bool = True) -> np.ndarray:
        """Click at ``(x, y)`` px: refines the current mask, or starts one; returns the ``(H, W)`` mask.

        The model refines its own last prediction (brush strokes aside), then the strokes made since the
        last box are painted on top again.
        """
        label = 1 if positive else 0
        self._activate()
        previous = next((p for a, p in reversed(self.history) if a[0] != "paint"), None)
        with _torch_threads(self.decoder_threads):
            if previous is None:  # a lone click is ambiguous: keep the best of SAM's three candidates
                prediction = self.predictor.predict(
                    points=[[x, y]], point_labels=[label], structure=self.structure, multimask=True
                )
            else:
                prediction = self.predictor.refine([[x, y]], [label], previous=previous)
        for action, _ in self._since_last_box():
            if action[0] == "paint":
                prediction = _painted(prediction, action, self.frames[self.frame].image.shape[:2])
        self.history.append((("click", (float(x), float(y)), label), prediction))
        return prediction.logits[0] > 0

    def paint(self, points: Sequence[Sequence[float]], radius: float, erase: bool = False) -> np.ndarray:
        """Paint (or erase) the current structure's mask along a stroke; returns the ``(H, W)`` mask.

        Args:
            points: the stroke, ``(x, y)`` px, one point for a dab.
            radius: px; every pixel within ``radius`` of the stroke is painted.
            erase: remove the pixels from the mask instead.

        Painted pixels get a logit above any model's (the latest stroke highest), so the label map shows
        them as this structure; erased ones are background for it. The stroke stays on top of later clicks.
        """
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if xy.size == 0 or not np.isfinite(xy).all():
            raise ValueError(f"a stroke needs finite (x, y) points, got {np.asarray(points).tolist()}")
        if not radius > 0:
            raise ValueError(f"the brush radius must be > 0 px, got {radius}")
        h, w = self.frames[self.frame].image.shape[:2]
        if ((xy < -radius) | (xy > np.array([w - 1, h - 1]) + radius)).any(axis=1).all():
            raise ValueError(f"the stroke lies outside the {w} x {h} (W x H) image")
        self._strokes += 1
        action = ("paint", tuple((float(x), float(y)) for x, y in xy), float(radius), 0 if erase else 1, self._strokes)
        previous = self.history[-1][1] if self.history else None
        if previous is None:
            previous = _blank(self.structure, (h, w))
        prediction = _painted(previous, action, (h, w))
        self.history.append((action, prediction))
        return prediction.logits[0] > 0

    def _since_last_box(self) -> list[tuple[tuple, Prediction]]:
        boxes = [i for i, (action, _) in enumerate(self.history) if action[0] == "box"]
        return self.history[boxes[-1] + 1 :] if boxes else list(self.history)

    def undo(self) -> bool:
        """Drop the last action of the current frame and structure; False when there was none."""
        if not self.history:
            return False
        self.history.pop()
        return True

    def clear(self) -> None:
        """Drop every action of the current frame and structure."""
        self.history.clear()

    def logits(self, case_id: str | None = None) -> dict[str, np.ndarray]:
        """``{structure: (H, W) logits}`` of the prompted structures of a frame (default: the current one)."""
        case_id = case_id or self.frame
        return {
            s: self._history[(case_id, s)][-1][1].logits[0]
            for s in self.structures
            if self._history.get((case_id, s))
        }

    def masks(self, case_id: str | None = None) -> dict[str, np.ndarray]:
        """``{structure: (H, W) bool}`` masks of the prompted structures of a frame."""
        return {s: logit > 0 for s, logit in self.logits(case_id).items()}

    def label_map(self, case_id: str | None = None) -> np.ndarray:
        """``(H, W)`` uint8 CAMUS label map of a frame; all background before any prompt.

        Structures are fused by ``prompts.decode.combine_structures`` (with ``lv_epi``: cavity where
        ``lv_endo`` is, myocardium in the rest of the epicardium). An ``lv_epi`` prompted before
        ``lv_endo`` (or ``myo``) has nothing to split it yet: all of it shows as myocardium until the
        cavity is prompted.
        """
        case_id = case_id or self.frame
        logits = self.logits(case_id)
        if not logits:
            return np.zeros(self.frames[case_id].image.shape[:2], np.uint8)
        if "lv_epi" in logits and not {"lv_endo", "myo"} & set(logits):
            logits["lv_endo"] = np.full_like(logits["lv_epi"], -np.inf)  # no cavity prompted yet
        return combine_structures(np.stack(list(logits.values())), list(logits))

    def ejection_fraction(self) -> dict[str, float]:
        """Biplane ``edv_ml``, ``esv_ml`` and ``ef`` (%) from the 2CH / 4CH frames at ED and ES.

        Raises:
            ValueError: one of the four frames is missing (names it).
        """
        from medsam_echo.evaluation.clinical import biplane_ef

        frames = {(f.view, f.phase): (self.label_map(f.case_id), f.spacing) for f in self.frames.values()}
        return biplane_ef(frames)

    def export(self, out_dir: str | Path) -> dict:
        """Write ``<case_id>.nii.gz`` label maps (with spacing) and ``session.json`` (prompts, EF if known).

        Returns:
            The content of ``session.json``.
        """
        out_dir = Path(out_dir)
        record: dict = {"frames": {}, "structures": list(self.structures)}
        for case_id, frame in self.frames.items():
            write_image(out_dir / f"{case_id}.nii.gz", self.label_map(case_id), spacing=frame.spacing)
            record["frames"][case_id] = {
                s: [list(action) for action, _ in self._history.get((case_id, s), [])]
                for s in self.structures
            }
        try:
            record["clinical"] = {
                k: (v if np.isfinite(v) else None) for k, v in self.ejection_fraction().items()
            }
        except ValueError as err:
            record["clinical"] = {"error": str(err)}
        (out_dir / "session.json").write_text(json.dumps(record, indent=2) + "\n")
        return record


def stroke_mask(points: np.ndarray, radius: float, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: the pixels within ``radius`` px of the polyline through ``points`` ``(k, 2)`` ``(x, y)``."""
    h, w = shape
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x0, y0 = np.floor(points.min(axis=0) - radius).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + radius).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
    out = np.zeros((h, w), bool)
    if x1 < x0 or y1 < y0:
        return out
    yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
    near = np.zeros(yy.shape, bool)
    segments = zip(points, points[1:], strict=False) if len(points) > 1 else [(points[0], points[0])]
    for a, b in segments:
        d = b - a
        t = np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / max(float(d @ d), 1e-12), 0.0, 1.0)
        near |= np.hypot(xx - (a[0] + t * d[0]), yy - (a[1] + t * d[1])) <= radius
    out[y0 : y1 + 1, x0 : x1 + 1] = near
    return out


def _painted(prediction: Prediction, action: tuple, shape: tuple[int, int]) -> Prediction:
    """``prediction`` with a ``("paint", points, radius, value, order)`` stroke applied to its logits."""
    _, points, radius, value, order = action
    where = stroke_mask(np.array(points), radius, shape)
    logits = np.array(prediction.logits, dtype=np.float32, copy=True)
    logits[0][where] = PAINT_LOGIT + order if value else -PAINT_LOGIT
    masks = np.array(prediction.masks, copy=True)
    if masks.ndim == 3:  # one mask per structure (a multimask prediction keeps its candidates untouched)
        masks[0] = logits[0] > 0
    return replace(prediction, logits=logits, masks=masks)


def _blank(structure: str, shape: tuple[int, int]) -> Prediction:
    """An empty mask of ``structure`` to paint on (no prompt, nothing the model could refine)."""
    logits = np.full((1, *shape), -PAINT_LOGIT, np.float32)
    return Prediction(structures=(structure,), masks=logits > 0, scores=np.ones(1, np.float32),
                      low_res_logits=logits, best=np.zeros(1, np.int64), logits=logits, prompts=None)  # fmt: skip


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """PyTorch's intra-op CPU threads set to ``threads`` inside the block (``None``: unchanged)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
