"""What turns an image and its prompts into mask logits: a SAM model, or the inscribed-ellipse baseline.

An engine has two steps, so that the expensive one runs once per image:

- ``encode(image) -> Encoded``: preprocessing and the image encoder (SAM), or nothing (baseline);
- ``decode(encoded, prompts, ...) -> Decoded``: prompts in px of the original image to logits, both at
  the model's low resolution and on the original ``(H, W)`` grid.

:class:`EchoPredictor <medsam_echo.inference.predictor.EchoPredictor>` validates prompts and keeps the
interactive state; engines trust their input. Adding a baseline is one class and one ``BASELINES`` entry.

:class:`SamEngine` runs the model in torch; :class:`OnnxEngine` runs an ONNX export of it
(:mod:`medsam_echo.models.onnx_export`) on onnxruntime's CPU provider, with the same preprocessing and the
same ``Decoded`` on the original grid. ``ENGINES`` names both (``EchoPredictor.from_source(..., engine=)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medsam_echo.data.transforms import Geometry
from medsam_echo.models.profile import PreprocessProfile
from medsam_echo.prompts.decode import SamForward
from medsam_echo.prompts.learned import LearnedPrompts, decode_learned
from medsam_echo.prompts.prompt_set import Prompts


@dataclass
class Encoded:
    """One image after ``encode``.

    Attributes:
        image_size: ``(H, W)`` of the original image in px.
        embeddings: ``(1, C, h', w')`` image embeddings (SAM) or ``None`` (baseline).
        geometry: maps prompts and predictions between the original image and the model input, or ``None``.
    """

    image_size: tuple[int, int]
    embeddings: torch.Tensor | None = None
    geometry: Geometry | None = None


@dataclass
class Decoded:
    """Logits of ``n`` prompts with ``m`` candidates each (``m`` = 3 with multimask output, else 1).

    Attributes:
        low_res_logits: ``(n, m, h, w)`` float32 tensor on the engine's device: SAM's 256 px masks for
            a 1024 px model; what ``decode(mask_input=...)`` takes back.
        logits: ``(n, m, H, W)`` float32 numpy logits on the original grid (> 0 is foreground).
        scores: ``(n, m)`` float32 predicted IoU.
    """

    low_res_logits: torch.Tensor
    logits: np.ndarray
    scores: np.ndarray


ENGINES = ("torch", "onnx")  # ``engine=`` of inference.sources.load_source; baselines have neither

# decoder_precision -> autocast dtype (None: the model's own dtype)
DECODER_PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


class SamEngine:
    """A ``transformers.SamModel`` (plain, peft-wrapped or with adapters) and its preprocessing profile.

    Args:
        model: the model; its device and dtype are used for every tensor.
        profile: the preprocessing its weights expect.
        decoder_precision: ``"fp32"`` (default) or ``"bf16"``: the prompt encoder and mask decoder run
            under bfloat16 autocast. On CAMUS with a fine-tuned model the logits moved by up to 1.6 %
            of their range and the masks kept Dice >= 0.99 with the fp32 ones. The image encoder keeps
            the model's dtype.
        compile_decoder: ``torch.compile`` the mask decoder (dynamic shapes, in place). The first
            prompt pays a one-off compilation (about 20 s on a 2-core CPU; again for each new number
            of structures decoded together).
        learned: the automatic mode's learned prompts saved with the model (:meth:`decode_learned`).

    Round trip with a ViT-B decoder on a 2-core CPU with AMX (``benchmarks/predictor_latency.py``):
    median 58 ms fp32, 43 ms bf16, 33 ms fp32 compiled, 21 ms bf16 compiled.
    """

    name = "sam"

    def __init__(
        self,
        model: Any,
        profile: PreprocessProfile,
        *,
        decoder_precision: str = "fp32",
        compile_decoder: bool = False,
        learned: LearnedPrompts | None = None,
    ) -> None:
        if decoder_precision not in DECODER_PRECISIONS:
            raise ValueError(
                f"decoder_precision must be one of {sorted(DECODER_PRECISIONS)}, got {decoder_precision!r}"
            )
        self.forward = SamForward(model, profile)
        self.model, self.profile = self.forward.model, profile
        self.device, self.dtype = self.forward.device, self.forward.dtype
        self.autocast = DECODER_PRECISIONS[decoder_precision]
        self.learned = None if learned is None else learned.to(self.device, self.dtype).eval()
        if compile_decoder:
            self.model.mask_decoder.compile(dynamic=True)

    @property
    def encoder(self):
        """The inference copy of the image encoder (BatchNorm folded, channels-last)."""
        return self.forward.encoder

    def encode(self, image: np.ndarray) -> Encoded:
        """Preprocess an ``(H, W)`` / ``(H, W, 3)`` image as the profile says and run the image encoder."""
        embeddings, geometry = self.forward.encode(image)
        return Encoded(geometry.original_size, embeddings, geometry)

    @torch.inference_mode()
    def encode_batch(self, images: Sequence[np.ndarray]) -> list[Encoded]:
        """:meth:`encode` of ``B`` images in one image-encoder call (a cine loop's frames).

        Returns ``B`` :class:`Encoded`, embeddings ``(1, C, h', w')`` each (views of one batch tensor).
        """
        from medsam_echo.data.transforms import preprocess

        ready = [preprocess(image, self.profile) for image in images]
        pixels = torch.from_numpy(np.stack([r.pixel_values for r in ready])).to(self.device, self.dtype)
        embeddings = self.encoder(pixels).to(self.dtype)
        return [
            Encoded(r.geometry.original_size, embeddings[i : i + 1], r.geometry) for i, r in enumerate(ready)
        ]

    @torch.inference_mode()
    def decode(
        self, encoded: Encoded, prompts: Prompts, *, mask_input: torch.Tensor | None, multimask: bool
    ) -> Decoded:
        """Decode ``n`` prompts (px of the original image) in one call.

        Args:
            encoded: from :meth:`encode`.
            prompts: ``n`` structures, boxes and / or points in original px.
            mask_input: ``(n, 1, h, w)`` previous low-res logits, or ``None``.
            multimask: SAM's three candidates per prompt instead of one.
        """
        side = 4 * encoded.embeddings.shape[-1]  # the mask decoder upscales its embeddings 4x
        if mask_input is not None and tuple(mask_input.shape[-2:]) != (side, side):
            raise ValueError(
                f"mask_input must be this model's low-res logits ({side} x {side} px), "
                f"got {tuple(mask_input.shape[-2:])}"
            )
        masks = None if mask_input is None else mask_input[None].to(self.device, self.dtype)
        with torch.autocast(
            self.device.type, dtype=self.autocast or torch.float32, enabled=bool(self.autocast)
        ):
            low_res, iou = self.forward.decode(
                encoded.embeddings, encoded.geometry, prompts, input_masks=masks, multimask=multimask
            )
        return self._decoded(encoded, low_res, iou)

    @torch.inference_mode()
    def decode_learned(self, encoded: Encoded, structures: Sequence[str]) -> Decoded:
        """Masks of ``structures`` from the learned prompts alone (no prompt), ``m`` = 1 candidate each.

        Raises:
            RuntimeError: the model was trained without learned prompts (``auto.mode: tokens``).
        """
        if self.learned is None:
            raise RuntimeError("this model has no learned prompts: train it with auto.mode=tokens")
        with torch.autocast(
            self.device.type, dtype=self.autocast or torch.float32, enabled=bool(self.autocast)
        ):
            low_res, iou = decode_learned(self.model, self.learned, encoded.embeddings, structures)
        return self._decoded(encoded, low_res[0], iou[0])

    @staticmethod
    def _decoded(encoded: Encoded, low_res: torch.Tensor, iou: torch.Tensor) -> Decoded:
        """``(n, m, h, w)`` low-res logits and ``(n, m)`` IoU -> :class:`Decoded` on the original grid."""
        low_res = low_res.float()
        logits = encoded.geometry.to_original(low_res)
        return Decoded(low_res, logits.cpu().numpy(), iou.float().cpu().numpy())


class OnnxEngine:
    """An ONNX export (``medsam-echo export-onnx``) on onnxruntime's CPU provider, fp32.

    The same contract as :class:`SamEngine`: ``encode`` preprocesses with the export's profile and runs
    ``image_encoder.onnx``; ``decode`` maps the prompts into model-input px (``Geometry``), runs
    ``prompt_decoder.onnx`` (all mask tokens at once, sliced for ``multimask``) and resizes the low-res
    logits to the original grid in torch, as :class:`SamEngine` does; ``decode_learned`` runs
    ``learned_decoder.onnx`` when the model has learned prompts.

    Args:
        directory: the export (its manifest and every file's sha256 are checked first).
        threads: onnxruntime intra-op threads (default ``torch.get_num_threads()``, as the torch engine).

    Raises:
        ImportError: onnxruntime is missing (``pip install -e '.[onnx]'``).
        OnnxModelError: a missing or damaged file, or one onnxruntime cannot load (the message names it).
    """

    name = "onnx"

    def __init__(self, directory, *, threads: int | None = None) -> None:
        from pathlib import Path

        from medsam_echo.models.onnx_export import open_session, read_manifest

        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.profile = PreprocessProfile.from_dict(self.manifest["profile"], source=str(self.directory))
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.mask_size = int(self.manifest["mask_size"])
        self.sessions = {kind: open_session(self.directory, self.manifest, kind, threads=threads)
                         for kind in self.manifest["graphs"]}
        learned = self.manifest.get("learned_structures")
        self.learned = LearnedStructures(tuple(learned)) if "learned" in self.sessions and learned else None

    def encode(self, image: np.ndarray) -> Encoded:
        """Preprocess an ``(H, W)`` / ``(H, W, 3)`` image as the profile says and run the image encoder."""
        return self.encode_batch([image])[0]

    def encode_batch(self, images: Sequence[np.ndarray]) -> list[Encoded]:
        """:meth:`encode` of ``B`` images in one encoder run; embeddings ``(1, C, h', w')`` each."""
        from medsam_echo.data.transforms import preprocess

        ready = [preprocess(image, self.profile) for image in images]
        pixels = np.ascontiguousarray(np.stack([r.pixel_values for r in ready]), np.float32)
        (embeddings,) = self._run("encoder", {"pixel_values": pixels})
        embeddings = torch.from_numpy(embeddings)
        return [
            Encoded(r.geometry.original_size, embeddings[i : i + 1], r.geometry) for i, r in enumerate(ready)
        ]

    def decode(
        self, encoded: Encoded, prompts: Prompts, *, mask_input: torch.Tensor | None, multimask: bool
    ) -> Decoded:
        """Decode ``n`` prompts (px of the original image) in one run (see :meth:`SamEngine.decode`)."""
        from medsam_echo.models.onnx_export import prompt_arrays

        side = self.mask_size
        if mask_input is not None and tuple(mask_input.shape[-2:]) != (side, side):
            raise ValueError(
                f"mask_input must be this model's low-res logits ({side} x {side} px), "
                f"got {tuple(mask_input.shape[-2:])}"
            )
        ready = prompts.to_input(encoded.geometry)
        coords, labels = prompt_arrays(ready.boxes, ready.points, ready.labels)
        n = len(prompts.structures)
        masks = (np.zeros((n, 1, side, side), np.float32) if mask_input is None
                 else np.ascontiguousarray(mask_input.detach().float().cpu().numpy().reshape(n, 1, side, side)))
        feed = {"image_embeddings": self._embeddings(encoded), "point_coords": coords, "point_labels": labels,
                "mask_input": masks, "has_mask_input": np.array([0.0 if mask_input is None else 1.0], np.float32)}
        low_res, iou = self._run("decoder", feed)
        picked = slice(1, None) if multimask else slice(0, 1)
        return SamEngine._decoded(encoded, torch.from_numpy(low_res[:, picked]), torch.from_numpy(iou[:, picked]))

    def decode_learned(self, encoded: Encoded, structures: Sequence[str]) -> Decoded:
        """Masks of ``structures`` from the learned prompts alone, ``m`` = 1 candidate each.

        Raises:
            RuntimeError: the export has no learned prompts; KeyError: a structure they were not trained for.
        """
        if self.learned is None:
            raise RuntimeError(f"{self.directory}: this export has no learned prompts (learned_decoder.onnx): "
                               "train with auto.mode=tokens and export again, or use method='view-prior'")
        index = np.array(self.learned.indices(structures), np.int64)
        low_res, iou = self._run("learned", {"image_embeddings": self._embeddings(encoded), "structure_index": index})
        return SamEngine._decoded(encoded, torch.from_numpy(low_res), torch.from_numpy(iou))

    @staticmethod
    def _embeddings(encoded: Encoded) -> np.ndarray:
        return np.ascontiguousarray(encoded.embeddings.detach().float().cpu().numpy())

    def _run(self, kind: str, feed: dict) -> list[np.ndarray]:
        session = self.sessions[kind]
        try:
            return session.run(None, feed)
        except Exception as err:  # onnxruntime's own error types
            raise RuntimeError(f"{session.path}: onnxruntime failed: {err}") from err


@dataclass(frozen=True)
class LearnedStructures:
    """The structures of an export's learned prompts (what ``OnnxEngine.learned`` holds)."""

    structures: tuple[str, ...]

    def indices(self, structures: Sequence[str]) -> list[int]:
        """Rows of ``structures`` in the learned decoder's token table.

        Raises:
            KeyError: a structure these prompts were not trained for.
        """
        missing = [s for s in structures if s not in self.structures]
        if missing:
            raise KeyError(f"no learned prompts for {missing}: the model learned {list(self.structures)}")
        return [self.structures.index(s) for s in structures]


class EllipseEngine:
    """Prompt-only baseline: each structure is the ellipse inscribed in its prompt box.

    It shows what a model adds beyond the box it is given. Points and mask inputs are ignored; a
    prompt without a box is an error. The logit of a pixel is ``(1 - r) * min(a, b)`` with ``r`` the
    pixel's normalised elliptical radius and ``a, b`` the semi-axes in px, so it is > 0 inside, about
    the distance to the ellipse in px near it, and competes fairly between structures in a label map.
    There is no low-res grid: ``low_res_logits`` are the original-resolution logits. Scores are 1.
    """

    name = "baseline:ellipse"

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def encode(self, image: np.ndarray) -> Encoded:
        """Nothing to compute; records the image size."""
        return Encoded(tuple(int(v) for v in np.shape(image)[:2]))

    def encode_batch(self, images: Sequence[np.ndarray]) -> list[Encoded]:
        """:meth:`encode` of each image."""
        return [self.encode(image) for image in images]

    def decode(
        self, encoded: Encoded, prompts: Prompts, *, mask_input: torch.Tensor | None, multimask: bool
    ) -> Decoded:
        """One ellipse per box; with ``multimask`` the same ellipse is repeated as three candidates."""
        if prompts.boxes is None:
            raise ValueError(
                "the baseline:ellipse predictor needs a box for every structure (points are ignored)"
            )
        logits = np.stack([ellipse_logits(box, encoded.image_size) for box in np.asarray(prompts.boxes)])
        m = 3 if multimask else 1
        logits = np.repeat(logits[:, None], m, axis=1)
        scores = np.ones(logits.shape[:2], np.float32)
        return Decoded(torch.from_numpy(logits), logits, scores)


def ellipse_logits(box: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Logits ``(H, W)`` float32 of the ellipse inscribed in an inclusive XYXY px box ``(4,)``.

    The box's pixels cover ``[x0, x1 + 1) x [y0, y1 + 1)``, so the centre is
    ``((x0 + x1) / 2, (y0 + y1) / 2)``
    in pixel indices and the semi-axes are ``(x1 - x0 + 1) / 2`` and ``(y1 - y0 + 1) / 2`` px. A pixel is
    inside (logit > 0) when its centre is strictly inside the ellipse.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    a, b = (x1 - x0 + 1) / 2, (y1 - y0 + 1) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = image_size
    dx = (np.arange(w, dtype=np.float32) - cx) / a
    dy = (np.arange(h, dtype=np.float32) - cy) / b
    radius = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
    return ((1.0 - radius) * min(a, b)).astype(np.float32)


# ``--model`` names of prompt-only baselines (issue 6 calls the ellipse ``box-ellipse``).
BASELINES: dict[str, type] = {"baseline:ellipse": EllipseEngine, "box-ellipse": EllipseEngine}
