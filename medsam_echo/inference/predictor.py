"""The predictor that notebooks and ``medsam-echo predict`` use: encode an image once, answer prompts fast.

    predictor = EchoPredictor.from_source("runs/camus_lora")     # run dir, checkpoint or baseline:ellipse
    predictor.set_image(image, spacing=(0.3, 0.15))              # (H, W) or (H, W, 3), any size and dtype
    out = predictor.predict(boxes=[x0, y0, x1, y1], structure="lv_endo")
    out.masks[0]                                                  # (H, W) bool on the original grid
    out = predictor.refine(points=[[x, y]], point_labels=[0])     # a negative click, by predictor.click_behaviour
    auto = predictor.segment()                                    # no prompt at all: a CAMUS label map
    auto.label_map, auto.confidence                               # (H, W) uint8, {structure: 0..1}

Coordinates are px of the image given to ``set_image``, ``(x, y)`` order; boxes XYXY with inclusive max
indices. See :mod:`medsam_echo.inference.inputs` for what counts as a bad prompt and what is clipped.

What a click does depends on what the model was trained with (``predictor.prompt_kinds``, saved with the
model; :mod:`medsam_echo.prompts.kinds`): ``predictor.click_behaviour`` is ``"mask-feedback"`` for a
click-trained model (the click joins the prompts, the previous logits are fed back as the mask prompt),
``"point-prompts"`` for a model trained with points but no mask prompt, and ``"box-edit"`` for a model
trained with boxes only, such as the shipped LiteMedSAM (a negative click moves the nearest box side in to
just past it, a positive click outside the box grows it, and the box alone is decoded again). It may be set
by hand to compare behaviours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from medsam_echo.data.sample import DEFAULT_STRUCTURES
from medsam_echo.evaluation.guards import apply_guards
from medsam_echo.inference.automatic import cascade, confidence, middle_box
from medsam_echo.inference.engines import Decoded, Encoded
from medsam_echo.inference.inputs import check_image, check_points, make_prompts
from medsam_echo.inference.sources import load_source
from medsam_echo.prompts.auto import ViewPrior
from medsam_echo.prompts.clicks import BOX_EDIT_BUDGET, box_edit_candidates, honours
from medsam_echo.prompts.decode import combine_structures
from medsam_echo.prompts.kinds import (
    BOX,
    BOX_EDIT,
    CLICK_BEHAVIOURS,
    MASK_FEEDBACK,
    POINT_PROMPTS,
    PromptKinds,
    kinds_for_profile,
)
from medsam_echo.prompts.prompt_set import Prompts


@dataclass
class Prediction:
    """Masks of ``n`` prompted structures (``m`` = 3 candidates with ``multimask``, else 1).

    Attributes:
        structures: the ``n`` names, in row order.
        masks: ``(n, H, W)`` bool on the original grid, or ``(n, 3, H, W)`` with multimask.
        scores: ``(n,)`` predicted IoU, or ``(n, 3)``.
        low_res_logits: ``(n, h, w)`` float32 model-resolution logits (256 px for a 1024 px SAM),
            or ``(n, 3, h, w)``.
        best: ``(n,)`` index of the highest-scoring candidate of each structure.
        logits: ``(n, H, W)`` float32 original-grid logits of the best candidates.
        prompts: the validated prompts, in px of the original image (with the box-edit behaviour: the
            edited boxes and every click; ``None`` for a mask painted from nothing in a prompting session).
        note: what a refinement could not do, for the user (empty when all went as asked).
        guards: whether :meth:`label_map` applies the anatomical guards (``evaluation.guards``).
    """

    structures: tuple[str, ...]
    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray
    best: np.ndarray
    logits: np.ndarray
    prompts: Prompts
    note: str = ""
    guards: bool = True

    def label_map(self) -> np.ndarray:
        """``(H, W)`` uint8 CAMUS label map (``prompts.decode.combine_structures``) of named structures,
        repaired by the anatomical guards (``evaluation.guards.apply_guards``) unless :attr:`guards` is off."""
        labels = combine_structures(self.logits, self.structures)
        return apply_guards(labels) if self.guards else labels


AUTO_METHODS = ("tokens", "view-prior")


@dataclass
class Segmentation:
    """Result of the automatic mode.

    Attributes:
        label_map: ``(H, W)`` uint8 CAMUS label map.
        view: the view prior's view used (``""`` for learned prompts, which need none).
        prediction: the box-prompted prediction behind the label map.
        method: ``"tokens"`` or ``"view-prior"``.
        confidence: ``{structure: confidence in [0, 1]}`` (``inference.automatic.confidence``).
        parts: ``{part: {structure: value}}`` for every part of ``automatic.CONFIDENCE_PARTS``.
    """

    label_map: np.ndarray
    view: str
    prediction: Prediction
    method: str = "view-prior"
    confidence: dict[str, float] = field(default_factory=dict)
    parts: dict[str, dict[str, float]] = field(default_factory=dict)


class EchoPredictor:
    """Interactive and automatic segmentation with one engine (a SAM model or a baseline).

    Args:
        engine: a :mod:`~medsam_echo.inference.engines` engine.
        structures: what a label map is made of (``segment``, ``predict`` CLI); a run's training structures.
        view_prior: boxes for the automatic mode, or a zero-argument callable that makes them on first use.
        source: where the model came from, for messages.
        prompt_kinds: what the model was trained with (:class:`~medsam_echo.prompts.kinds.PromptKinds` or
            names); default from the engine (a SAM engine by its preprocessing profile, a baseline: box).
            It sets :attr:`click_behaviour`.
    """

    def __init__(
        self,
        engine,
        *,
        structures: Sequence[str] = DEFAULT_STRUCTURES,
        view_prior: ViewPrior | Callable[[], ViewPrior] | None = None,
        source: str = "",
        prompt_kinds: PromptKinds | Sequence[str] | None = None,
    ) -> None:
        self.engine = engine
        self.structures = tuple(structures)
        self.source = source
        self.guards = True  # anatomical guards on every label map (evaluation.guards); False turns them off
        if prompt_kinds is None:
            prompt_kinds = _engine_kinds(engine)
        elif not isinstance(prompt_kinds, PromptKinds):
            prompt_kinds = PromptKinds(tuple(prompt_kinds), origin="given")
        self.prompt_kinds: PromptKinds = prompt_kinds
        self.click_behaviour = prompt_kinds.click_behaviour
        self._view_prior = view_prior
        self._encoded: Encoded | None = None
        self._image: np.ndarray | None = None
        self.spacing: tuple[float, float] | None = None
        self.last: Prediction | None = None

    @classmethod
    def from_source(cls, source: str, device: str | torch.device | None = None, **kwargs) -> EchoPredictor:
        """A predictor for a model source (see :mod:`medsam_echo.inference.sources`).

        Args:
            source: a training run dir, its ``RUN/model``, any checkpoint ``load_sam`` reads (``.pth``,
                ``.safetensors``, HF dir, hub id), or a baseline name (``baseline:ellipse``).
            device: default CUDA when available, else the CPU.
            **kwargs: ``view_prior`` (path or :class:`ViewPrior`) and ``structures``, overriding what the
                run saved; ``decoder_precision`` (``"fp32"`` or ``"bf16"``) and ``compile_decoder``.
        """
        loaded = load_source(source, device=device, **kwargs)
        return cls(loaded.engine, structures=loaded.structures, view_prior=loaded.view_prior, source=loaded.name,
                   prompt_kinds=loaded.prompt_kinds)

    @property
    def click_behaviour(self) -> str:
        """What :meth:`refine` does with a click: ``"mask-feedback"``, ``"point-prompts"`` or ``"box-edit"``
        (module docstring); set from :attr:`prompt_kinds`, may be set by hand."""
        return self._click_behaviour

    @click_behaviour.setter
    def click_behaviour(self, behaviour: str) -> None:
        if behaviour not in CLICK_BEHAVIOURS:
            raise ValueError(f"click_behaviour must be one of {CLICK_BEHAVIOURS}, got {behaviour!r}")
        self._click_behaviour = behaviour

    @property
    def view_prior(self) -> ViewPrior | None:
        """The automatic mode's view prior (fitted on first use when the run only says where its data is)."""
        if callable(self._view_prior):
            self._view_prior = self._view_prior()
        return self._view_prior

    @view_prior.setter
    def view_prior(self, prior: ViewPrior | Callable[[], ViewPrior] | None) -> None:
        self._view_prior = prior

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the current image."""
        return self._require_image().image_size

    def set_image(
        self, image: np.ndarray, spacing: tuple[float, float] | None = None, *, encoded: Encoded | None = None
    ) -> None:
        """Run the image encoder once on ``image`` ``(H, W)`` / ``(H, W, 3)``; spacing ``(sx, sy)`` mm/px.

        ``encoded``: the engine's encoding of this very image, computed already (see :meth:`iterate_frames`).
        """
        image = check_image(image)
        if spacing is not None and (len(spacing) != 2 or min(spacing) <= 0):
            raise ValueError(f"spacing must be (sx, sy) mm per px, both > 0, got {spacing}")
        self._encoded = encoded if encoded is not None else self.engine.encode(image)
        self._image, self.last = image, None
        self.spacing = None if spacing is None else (float(spacing[0]), float(spacing[1]))

    def iterate_frames(
        self, frames: Sequence[np.ndarray], spacing: tuple[float, float] | None = None, *, batch_size: int = 8
    ) -> Iterator[int]:
        """Make each of ``frames`` (``T`` images ``(H, W)``) the current image in turn, as :meth:`set_image`.

        The image encoder runs on ``batch_size`` frames per call (an engine without ``encode_batch``
        encodes one by one); yields the index of the frame that is current. Spacing ``(sx, sy)`` mm/px.
        """
        frames = [check_image(frame) for frame in frames]
        encode = getattr(self.engine, "encode_batch", None) or (lambda ims: [self.engine.encode(i) for i in ims])
        for start in range(0, len(frames), max(1, batch_size)):
            chunk = frames[start : start + max(1, batch_size)]
            for offset, encoded in enumerate(encode(chunk)):
                self.set_image(chunk[offset], spacing, encoded=encoded)
                yield start + offset

    def _require_image(self) -> Encoded:
        if self._encoded is None:
            raise RuntimeError("no image: call set_image(image) first")
        return self._encoded

    def predict(
        self,
        boxes=None,
        points=None,
        point_labels=None,
        structure: str | Sequence[str] | None = None,
        multimask: bool = False,
        mask_input: np.ndarray | torch.Tensor | None = None,
    ) -> Prediction:
        """Masks for ``n`` prompts, decoded in one batch.

        Args:
            boxes: ``(4,)`` or ``(n, 4)`` XYXY px (inclusive), or ``None``.
            points: ``(k, 2)`` or ``(n, k, 2)`` ``(x, y)`` px, or ``None``.
            point_labels: ``(k,)`` / ``(n, k)``, 1 positive, 0 negative; default all positive.
            structure: a name per prompt (``"lv_endo"`` ...), needed for label maps.
            multimask: three candidates per prompt (SAM's answer to an ambiguous single click).
            mask_input: ``(n, h, w)`` previous low-res logits to refine.

        Returns:
            A :class:`Prediction` at the original resolution; also kept as :attr:`last` for :meth:`refine`.
        """
        encoded = self._require_image()
        prompts = make_prompts(encoded.image_size, boxes, points, point_labels, structure)
        return self._run(prompts, mask_input, multimask)

    def refine(
        self, points, point_labels=None, *, previous: Prediction | None = None, multimask: bool = False
    ) -> Prediction:
        """Correct the previous prediction with clicks, as :attr:`click_behaviour` says.

        - ``"mask-feedback"``: the clicks join the previous prompts, decoded with its logits as mask input.
        - ``"point-prompts"``: the previous prompts and the clicks, decoded without a mask input.
        - ``"box-edit"``: each click edits the previous box, and only boxes are decoded
          (:meth:`_box_edit`): a negative click moves a side in towards just past it, a positive click
          off the mask moves sides out to reach it. The prediction's prompts hold the edited boxes and
          every click; its ``note`` says when a click could not be taken. A prediction without boxes (a
          lone click) is refined as ``"point-prompts"``: there is no box to edit.

        Args:
            points: new clicks, ``(k, 2)`` for a one-structure prediction or ``(n, k, 2)``, ``(x, y)`` px.
            point_labels: ``(k,)`` / ``(n, k)``, 1 positive, 0 negative; default positive.
            previous: the prediction to refine; default :attr:`last`.
            multimask: SAM uses a single mask once a click has disambiguated the prompt.
        """
        previous = previous or self.last
        if previous is None:
            raise RuntimeError("nothing to refine: call predict(...) first")
        old = previous.prompts
        new_xy, new_labels = check_points(points, point_labels, len(old.structures), self.image_size)
        xy, labels = new_xy, new_labels
        if old.points is not None:
            xy = np.concatenate([old.points, xy], axis=1)
            labels = np.concatenate([old.labels, labels], axis=1)
        behaviour = self.click_behaviour
        if behaviour == BOX_EDIT and old.boxes is None:
            behaviour = POINT_PROMPTS
        if behaviour == BOX_EDIT:
            return self._box_edit(previous, xy, labels, new_xy.shape[1])
        prompts = Prompts(old.structures, boxes=old.boxes, points=xy, labels=labels)
        chosen = _take(previous.low_res_logits, previous.best) if behaviour == MASK_FEEDBACK else None
        return self._run(prompts, chosen, multimask)

    def _run(self, prompts: Prompts, mask_input, multimask: bool, *, record: Prompts | None = None) -> Prediction:
        """Decode ``prompts``; the prediction's prompts are ``record`` when given (box-edit), else ``prompts``."""
        encoded = self._require_image()
        if mask_input is not None:
            mask_input = torch.as_tensor(np.asarray(mask_input, np.float32))
            if mask_input.ndim != 3 or mask_input.shape[0] != len(prompts.structures):
                raise ValueError(
                    f"mask_input must be (n={len(prompts.structures)}, h, w), got {tuple(mask_input.shape)}"
                )
            mask_input = mask_input[:, None]
        decoded: Decoded = self.engine.decode(encoded, prompts, mask_input=mask_input, multimask=multimask)
        best = decoded.scores.argmax(axis=1)
        low_res = decoded.low_res_logits.cpu().numpy()
        squeeze = (lambda a: a) if multimask else (lambda a: a[:, 0])
        self.last = Prediction(
            structures=prompts.structures,
            masks=squeeze(decoded.logits > 0),
            scores=squeeze(decoded.scores),
            low_res_logits=squeeze(low_res),
            best=best,
            logits=_take(decoded.logits, best),
            prompts=record or prompts,
            guards=self.guards,
        )
        return self.last

    def _box_edit(self, previous: Prediction, xy: np.ndarray, labels: np.ndarray, new: int) -> Prediction:
        """The ``box-edit`` behaviour for the last ``new`` of the clicks ``xy`` ``(n, k, 2)`` / ``labels``.

        Per click and structure, the candidate boxes of ``prompts.clicks.box_edit_candidates`` are decoded
        in one call (all structures together); the first whose mask honours every click so far (positives
        in, negatives out) is taken if it changes the mask by at most ``BOX_EDIT_BUDGET`` of its area.
        Otherwise that structure keeps its box and mask (a box cannot say what the click says: the brush
        can). Chosen by measurement: ``benchmarks/box_only_clicks.py``.
        """
        old = previous.prompts
        n, size = len(old.structures), self.image_size
        boxes = np.array(old.boxes, dtype=np.float64)
        rows = _single(previous)
        taken = np.zeros(n, bool)
        for k in range(xy.shape[1] - new, xy.shape[1]):
            tries = {}
            for i in range(n):
                mask = rows["logits"][i] > 0
                tries[i] = box_edit_candidates(boxes[i], mask, xy[i, k], labels[i, k], size)
            flat = [(i, box) for i in range(n) for box in tries[i]]
            if not flat:
                continue
            names = tuple(f"candidate_{j}" for j in range(len(flat)))
            decoded: Decoded = self.engine.decode(self._require_image(), Prompts(names, boxes=np.stack([b for _, b in flat])),
                                                  mask_input=None, multimask=False)  # fmt: skip
            for i in range(n):
                mask = rows["logits"][i] > 0
                area = max(int(mask.sum()), 1)
                for j, (owner, box) in enumerate(flat):
                    candidate = decoded.logits[j, 0] > 0
                    if owner != i or not honours(candidate, xy[i, : k + 1], labels[i, : k + 1]):
                        continue
                    if np.count_nonzero(candidate ^ mask) <= BOX_EDIT_BUDGET * area:
                        boxes[i], taken[i] = box, True
                        rows["logits"][i] = decoded.logits[j, 0]
                        rows["low_res_logits"][i] = decoded.low_res_logits[j, 0].cpu().numpy()
                        rows["scores"][i] = decoded.scores[j, 0]
                    break  # the least-moved candidate that honours the clicks, or none
        note = "" if taken.all() else (
            "the box could not take this click on " + ", ".join(s for s, t in zip(old.structures, taken, strict=True) if not t)
            + f" (a box-only model: no box edit honours it within {BOX_EDIT_BUDGET:.0%} of the mask); use the brush"
        )  # fmt: skip
        self.last = Prediction(
            structures=old.structures,
            masks=rows["logits"] > 0,
            scores=rows["scores"],
            low_res_logits=rows["low_res_logits"],
            best=np.zeros(n, np.int64),
            logits=rows["logits"],
            prompts=Prompts(old.structures, boxes=boxes, points=xy, labels=labels),
            note=note,
            guards=self.guards,
        )
        return self.last

    def clicker(self) -> PredictorClicker:
        """This predictor as a ``prompts.sweep.Clicker`` (simulated clicks through :meth:`refine`)."""
        return PredictorClicker(self)

    def predict_fn(self):
        """This predictor as a ``prompts.decode.PredictFn``: ``(image, prompts) -> (n, H, W)`` bool masks, the
        image encoded once while it stays the same."""
        clicker = self.clicker()
        return clicker.start

    def segment(
        self,
        view: str | None = None,
        structures: Sequence[str] | None = None,
        n_iter: int = 2,
        method: str | None = None,
        with_confidence: bool = True,
    ) -> Segmentation:
        """Automatic mode: a label map and a per-structure confidence from the current image alone.

        A start mask per structure (the learned prompts, or the view prior's boxes decoded once), then box
        prompts from those masks through the decoder (:func:`~medsam_echo.inference.automatic.cascade`),
        then the confidence (:func:`~medsam_echo.inference.automatic.confidence`).

        Args:
            view: ``"2CH"`` / ``"4CH"`` for the view prior; ``None`` tries every view of the prior and
                keeps the one with the highest mean confidence. Learned prompts need no view.
            structures: default :attr:`structures`.
            n_iter: box-prompted decoder passes after the start.
            method: ``"tokens"`` (learned prompts; the default when the model has them) or
                ``"view-prior"`` (the default otherwise).
            with_confidence: ``False`` skips the confidence's extra decoder passes (cine loops segment every
                frame and use the predicted IoU only): ``confidence`` is then empty, ``parts`` holds
                ``predicted_iou``, and the view prior's view is chosen by the mean predicted IoU.

        Raises:
            RuntimeError: ``tokens`` for a model without learned prompts, or ``view-prior`` without a prior.
        """
        encoded = self._require_image()
        structures = tuple(structures or self.structures)
        method = method or self.automatic_method
        if method not in AUTO_METHODS:
            raise ValueError(f"method must be one of {AUTO_METHODS}, got {method!r}")
        fallback = np.stack([middle_box(encoded.image_size)] * len(structures))
        starts = self._learned_starts(structures) if method == "tokens" else self._prior_starts(view, structures)
        results = []
        for name, start, first_boxes in starts:
            decoded: dict[str, Prediction] = {}

            def decode(boxes, structures=structures, decoded=decoded):
                decoded["last"] = self._run(Prompts(structures, boxes=np.asarray(boxes)), None, False)
                return decoded["last"].masks, decoded["last"].scores

            final = cascade(decode, start, fallback if first_boxes is None else first_boxes, n_iter)
            prediction = decoded["last"]  # the cascade's last pass, before the perturbed boxes of the confidence
            if with_confidence:
                parts = confidence(decode, final, start, encoded.image_size)
            else:
                parts = {"predicted_iou": np.clip(np.asarray(final.scores, np.float64), 0.0, 1.0)}
            rank = parts["confidence"] if with_confidence else parts["predicted_iou"]
            results.append((float(rank.mean()), name, prediction, parts))
        _, name, prediction, parts = max(results, key=lambda item: item[0])
        self.last = prediction
        scores = {part: dict(zip(structures, values.tolist(), strict=True)) for part, values in parts.items()}
        return Segmentation(prediction.label_map(), name, prediction, method, scores.get("confidence", {}), scores)

    @property
    def automatic_method(self) -> str:
        """``"tokens"`` when the model has learned prompts (trained with ``auto.mode: tokens``), else
        ``"view-prior"``."""
        return "tokens" if getattr(self.engine, "learned", None) is not None else "view-prior"

    def _learned_starts(self, structures: tuple[str, ...]) -> list[tuple[str, np.ndarray, None]]:
        """``[("", start masks (n, H, W), None)]`` from the learned prompts."""
        if getattr(self.engine, "learned", None) is None:
            raise RuntimeError(
                f"{self.source or 'this model'} has no learned prompts (train with auto.mode=tokens); "
                "use method='view-prior'"
            )
        decoded = self.engine.decode_learned(self._require_image(), structures)
        return [("", decoded.logits[:, 0] > 0, None)]

    def _prior_starts(self, view: str | None, structures: tuple[str, ...]) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Per candidate view: ``(view, start masks (n, H, W), prior boxes (n, 4))``, the prior's boxes
        decoded once."""
        prior = self.view_prior
        if prior is None:
            raise RuntimeError(
                f"{self.source or 'this model'} has no view prior for automatic prompts: make one with "
                "`medsam-echo fit-view-prior --data ROOT --out view_prior.json` and pass it "
                "(--view-prior PATH, or view_prior=PATH in Python)"
            )
        starts = []
        for name in [view] if view is not None else sorted(prior.boxes):
            prompts = prior.prompts(name, structures, self.image_size)
            starts.append((name, self._run(prompts, None, False).masks, np.asarray(prompts.boxes)))
        return starts


class PredictorClicker:
    """Simulated clicks through a predictor (``prompts.sweep.Clicker``): :meth:`start` decodes the first
    prompts of an image, :meth:`click` refines the last prediction with one click per structure, by the
    predictor's :attr:`~EchoPredictor.click_behaviour`. An image is encoded once while it stays the same."""

    def __init__(self, predictor: EchoPredictor) -> None:
        self.predictor = predictor
        self._key: str | None = None

    def _set(self, image: np.ndarray) -> None:
        import hashlib

        image = np.ascontiguousarray(image)
        key = hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()
        if key != self._key or self.predictor._image is None:
            self.predictor.set_image(image)
            self._key = key

    def start(self, image: np.ndarray, prompts: Prompts) -> np.ndarray:
        """``(n, H, W)`` bool masks of ``prompts`` (px of ``image``)."""
        self._set(image)
        self._last = self.predictor._run(prompts, None, False)
        return self._last.masks

    def click(self, xy: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``(n, H, W)`` bool masks after one click ``xy`` ``(n, 2)``, ``labels`` ``(n,)`` per structure."""
        xy, labels = np.asarray(xy, np.float64), np.asarray(labels, np.int64)
        self._last = self.predictor.refine(xy[:, None], labels[:, None], previous=self._last)
        return self._last.masks


def _engine_kinds(engine) -> PromptKinds:
    """What an engine's weights take when nobody said: a SAM engine by its profile, anything else a box."""
    profile = getattr(engine, "profile", None)
    if profile is None:
        return PromptKinds((BOX,), origin=f"{getattr(engine, 'name', 'engine')} (boxes only)")
    return kinds_for_profile(profile.name, "model")


def _single(prediction: Prediction) -> dict[str, np.ndarray]:
    """Copies of a prediction's best candidate per structure: ``logits`` ``(n, H, W)``, ``low_res_logits``
    ``(n, h, w)``, ``scores`` ``(n,)``."""
    multimask = prediction.masks.ndim == 4
    low_res = _take(prediction.low_res_logits, prediction.best) if multimask else prediction.low_res_logits
    scores = np.asarray(prediction.scores)
    scores = scores[np.arange(len(prediction.best)), prediction.best] if multimask else scores
    return {"logits": np.array(prediction.logits, np.float32, copy=True),
            "low_res_logits": np.array(low_res, np.float32, copy=True), "scores": np.array(scores, np.float32, copy=True)}  # fmt: skip


def _take(candidates, best: np.ndarray):
    """``(n, m, ...)`` -> ``(n, ...)``: candidate ``best[i]`` of row ``i`` (no-op for ``(n, ...)`` input)."""
    if candidates.ndim == 3:  # already one mask per structure
        return candidates
    return candidates[np.arange(len(best)), best]
