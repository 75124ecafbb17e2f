"""A ``SamModel`` as ONNX graphs for onnxruntime: the image encoder, the prompt decoder, the learned prompts.

:func:`export_onnx` writes a folder that :class:`~medsam_echo.inference.engines.OnnxEngine` runs without
torch models (``medsam-echo export-onnx MODEL OUT_DIR`` exports any source the toolkit loads)::

    OUT_DIR/onnx_model.json      the manifest: format, preprocessing profile, shapes, every file's sha256,
                                 label-map structures, learned structures, exporter, measured agreement
    OUT_DIR/image_encoder.onnx   pixel_values (B, 3, S, S) float32 -> image_embeddings (B, C, h', w')
    OUT_DIR/prompt_decoder.onnx  the prompt encoder and mask decoder (below)
    OUT_DIR/learned_decoder.onnx only for a model with learned prompts (the automatic mode's ``tokens``):
                                 image_embeddings (1, C, h', w'), structure_index (n,) int64
                                 -> low_res_masks (n, 1, h, w), iou_predictions (n, 1)
    OUT_DIR/prompt_kinds.json, view_prior.json   copied from the source when it has them

The prompt decoder follows segment-anything's ``scripts/export_onnx_model.py`` (``SamOnnxModel``), in the
coordinates our :class:`~medsam_echo.data.transforms.Geometry` maps prompts to, the fixed model-input px
(the graph adds SAM's half-pixel shift and divides by ``S`` itself):

- ``image_embeddings`` ``(1, C, h', w')``;
- ``point_coords`` ``(n, k, 2)`` float32 ``(x, y)`` model-input px and ``point_labels`` ``(n, k)`` float32:
  1 positive, 0 negative, a box as its two corners with labels 2 and 3 after the points, and -1 a padding
  point (added when there is no box, as ``SamPromptEncoder`` does): see :func:`prompt_arrays`;
- ``mask_input`` ``(n, 1, h, w)`` previous low-res logits and ``has_mask_input`` ``(1,)`` (1 or 0);
- outputs ``low_res_masks`` ``(n, M, h, w)`` and ``iou_predictions`` ``(n, M)`` for every mask token
  (``M`` = 4 for SAM: candidate 0 is the single-mask answer, 1..3 the multimask ones), so one graph serves
  both ``multimask`` settings. ``h = 4 h'``; the resize to the original image stays in Python
  (``Geometry.to_original``), as in the torch engine.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (the ``torch.export``-based exporter, default since torch
2.9; it needs ``onnxscript``), with the number of images, prompts and points dynamic. Every graph is run by
onnxruntime on export and compared with the torch path (``prompts.decode.decode_candidates`` through
``SamModel`` itself, and ``prompts.learned.decode_learned``); a disagreement beyond ``1e-4`` of the output's
range fails the export, and the measured differences go into the manifest. LoRA must be merged before
(``adapters.persist.merge_lora``); bottleneck adapters are exported as the modules they are.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medsam_echo.atomic import atomic_write_dir
from medsam_echo.models.profile import PreprocessProfile

log = logging.getLogger(__name__)

ONNX_FORMAT = "medsam-echo onnx v1"
MANIFEST_FILE = "onnx_model.json"
ENCODER_FILE = "image_encoder.onnx"
DECODER_FILE = "prompt_decoder.onnx"
LEARNED_FILE = "learned_decoder.onnx"
EXPORTER = "torch.onnx.export(dynamo=True)"
# graph -> (inputs, outputs), as written and as checked on loading
GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "encoder": (("pixel_values",), ("image_embeddings",)),
    "decoder": (("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"),
                ("low_res_masks", "iou_predictions")),
    "learned": (("image_embeddings", "structure_index"), ("low_res_masks", "iou_predictions")),
}
GRAPH_FILES = {"encoder": ENCODER_FILE, "decoder": DECODER_FILE, "learned": LEARNED_FILE}
TOLERANCE = 1e-4  # max |onnxruntime - torch| / max(1, max |torch|) accepted on export
EXTERNAL_DATA_BYTES = 1_500_000_000  # larger graphs keep their weights in a .data file beside them
PADDING_LABEL, BOX_LABELS = -1.0, (2.0, 3.0)
EXTRA = "pip install -e '.[onnx]'"


class OnnxModelError(ValueError):
    """An ONNX export cannot be written, read or trusted: the message names the file."""


def require(*modules: str):
    """Import the optional ONNX modules (``onnxruntime``, ``onnx``, ``onnxscript``); the first is returned.

    Raises:
        ImportError: one is missing; the message says which and how to install the ``onnx`` extra.
    """
    import importlib

    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as err:
            raise ImportError(f"the ONNX engine and export need {name} ({EXTRA}): {err}") from err
    return loaded[0]


def prompt_arrays(boxes, points, labels) -> tuple[np.ndarray, np.ndarray]:
    """Prompts of ``n`` structures in model-input px as the prompt decoder's ``point_coords, point_labels``.

    The tokens are those ``SamPromptEncoder`` makes, in its order: the points, then a box's two corners
    (labels 2, 3); without a box one padding point (label -1) follows the points.

    Args:
        boxes: ``(n, 4)`` XYXY or ``None``; points: ``(n, k, 2)`` ``(x, y)`` or ``None``; labels: ``(n, k)``.

    Returns:
        ``(n, k', 2)`` float32 coordinates and ``(n, k')`` float32 labels.
    """
    coords, codes = [], []
    if points is not None:
        coords.append(np.asarray(points, np.float32).reshape(len(points), -1, 2))
        codes.append(np.asarray(labels, np.float32).reshape(len(points), -1))
    if boxes is not None:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        coords.append(boxes.reshape(-1, 2, 2))
        codes.append(np.tile(np.asarray(BOX_LABELS, np.float32), (len(boxes), 1)))
    elif points is not None:
        n = coords[0].shape[0]
        coords.append(np.zeros((n, 1, 2), np.float32))
        codes.append(np.full((n, 1), PADDING_LABEL, np.float32))
    if not coords:
        raise ValueError("prompts need boxes, points or both")
    return np.ascontiguousarray(np.concatenate(coords, 1)), np.ascontiguousarray(np.concatenate(codes, 1))


# --------------------------------------------------------------------------------------------- graphs


class _DecoderCore(nn.Module):
    """``SamModel``'s mask decoder for ``n`` prompts of one image, every mask token's output kept.

    The glue of ``SamMaskDecoder.forward`` with the prompts as the batch (``SamModel`` puts them in the
    point-batch dimension without a mask prompt and in the batch with one; the arithmetic is the same),
    and without the final multimask slice. The submodules are the model's own (adapters included).
    """

    def __init__(self, sam) -> None:
        super().__init__()
        self.prompt_encoder = sam.prompt_encoder
        self.mask_decoder = sam.mask_decoder
        self.register_buffer("image_pe", sam.get_image_wide_positional_embeddings().detach().clone(),
                             persistent=False)

    def decode(self, image_embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor):
        """``(1, C, h', w')``, ``(n, T, C)``, ``(n or 1, C, h', w')`` -> ``(n, M, h, w)``, ``(n, M)``."""
        decoder = self.mask_decoder
        n = sparse.shape[0]
        weight = decoder.iou_token.weight
        output_tokens = torch.cat([weight, decoder.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens[None].expand(n, -1, -1), sparse.to(weight.dtype)], dim=1)[:, None]
        embeddings = (image_embeddings + dense).expand(n, -1, -1, -1)
        _, channels, height, width = embeddings.shape
        positional = self.image_pe.to(embeddings.dtype).expand(n, -1, -1, -1)
        queries, keys = decoder.transformer(point_embeddings=tokens, image_embeddings=embeddings,
                                            image_positional_embeddings=positional, attention_similarity=None,
                                            target_embedding=None)
        iou_token_out = queries[:, :, 0, :]
        mask_tokens_out = queries[:, :, 1 : 1 + decoder.num_mask_tokens, :]
        keys = keys.transpose(2, 3).reshape(n, channels, height, width)
        upscaled = decoder.upscale_conv1(keys)
        upscaled = decoder.activation(decoder.upscale_layer_norm(upscaled))
        upscaled = decoder.activation(decoder.upscale_conv2(upscaled))
        hyper = torch.stack([mlp(mask_tokens_out[:, :, i, :])
                             for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=2)
        _, c, h, w = upscaled.shape
        masks = (hyper @ upscaled.reshape(n, 1, c, h * w)).reshape(n, -1, h, w)
        iou = decoder.iou_prediction_head(iou_token_out).reshape(n, -1)
        return masks, iou


class PromptDecoderGraph(_DecoderCore):
    """The exported prompt decoder (module docstring); segment-anything's ``SamOnnxModel`` for our models."""

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(n, k, 2)`` model-input px and ``(n, k)`` labels -> ``(n, k, C)``, as ``SamPromptEncoder``'s
        ``_embed_points`` and ``_embed_boxes`` compute them."""
        encoder = self.prompt_encoder
        size = float(encoder.input_image_size)
        embedding = encoder.shared_embedding((coords + 0.5) / size)
        labels = labels[..., None]
        embedding = torch.where(labels == -1, encoder.not_a_point_embed.weight, embedding)
        embedding = torch.where(labels != -10, embedding, torch.zeros_like(embedding))
        for code, point in enumerate(encoder.point_embed):
            embedding = torch.where(labels == code, embedding + point.weight, embedding)
        return embedding

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        sparse = self.embed_points(point_coords, point_labels)
        masked = self.prompt_encoder.mask_embed(mask_input)
        no_mask = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = masked * has_mask_input + no_mask * (1 - has_mask_input)
        return self.decode(image_embeddings, sparse, dense)


class LearnedDecoderGraph(_DecoderCore):
    """The learned prompts' decoder: structure indices -> the single-mask output of their tokens."""

    def __init__(self, sam, learned) -> None:
        super().__init__(sam)
        self.register_buffer("tokens", learned.tokens.detach().float().clone(), persistent=False)

    def forward(self, image_embeddings, structure_index):
        sparse = self.tokens[structure_index].to(image_embeddings.dtype)
        dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        masks, iou = self.decode(image_embeddings, sparse, dense)
        return masks[:, :1], iou[:, :1]


class _EncoderGraph(nn.Module):
    def __init__(self, vision_encoder) -> None:
        super().__init__()
        from medsam_echo.models.fast_encoder import InferenceEncoder

        self.encoder = InferenceEncoder(vision_encoder, channels_last=False).eval()

    def forward(self, pixel_values):
        return self.encoder(pixel_values)


# --------------------------------------------------------------------------------------------- export


def export_onnx(
    model,
    profile: PreprocessProfile,
    out_dir: str | Path,
    *,
    learned=None,
    structures: Sequence[str] | None = None,
    source: str = "",
    copy_files: Sequence[Path] = (),
    prompt_kinds=None,
    data_root: str | None = None,
    opset: int | None = None,
    log_fn: Callable[[str], None] | None = None,
) -> dict:
    """Export ``model`` to ``out_dir`` (module docstring), each graph verified by onnxruntime.

    The folder is filled under a temporary name and renamed, so a failed export leaves nothing behind
    (an existing ``out_dir`` is replaced only once the new one is complete).

    Args:
        model: a ``SamModel`` (LoRA merged; put in eval mode; exported from a CPU float32 copy when it is
            elsewhere).
        profile: its preprocessing profile (saved in the manifest).
        learned: the model's :class:`~medsam_echo.prompts.learned.LearnedPrompts`, or ``None``.
        structures: the label-map structures to record (a run's ``data.structures``), or ``None``.
        source: what was exported, for the manifest.
        copy_files: files copied beside the graphs (``view_prior.json``).
        prompt_kinds: the :class:`~medsam_echo.prompts.kinds.PromptKinds` the model was trained with,
            saved as ``prompt_kinds.json`` (the predictor's click behaviour), or ``None``.
        data_root: the training data of a run, so the automatic mode can fit a view prior later.
        opset: ONNX opset (default: the exporter's).
        log_fn: progress messages (default: the module logger).

    Returns:
        The manifest written to ``out_dir/onnx_model.json``.

    Raises:
        ImportError: onnx, onnxscript or onnxruntime is missing (``pip install -e '.[onnx]'``).
        OnnxModelError: a graph failed to export or disagrees with the torch model.
    """
    ort = require("onnxruntime", "onnx", "onnxscript")
    say = log_fn or log.info
    sam = getattr(model, "get_base_model", lambda: model)()  # a peft wrapper around bottleneck adapters
    weight = next(sam.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        sam = copy.deepcopy(sam).to("cpu", torch.float32)  # the caller's model stays where it is
    sam = sam.eval()
    out_dir = Path(out_dir)
    examples = _examples(sam, profile, learned)
    manifest: dict = {}

    def fill(tmp: Path) -> None:
        verified, files = {}, {}
        with torch.no_grad():
            graphs = {"encoder": _EncoderGraph(sam.vision_encoder), "decoder": PromptDecoderGraph(sam).eval()}
            if learned is not None:
                graphs["learned"] = LearnedDecoderGraph(sam, learned).eval()
            for kind, graph in graphs.items():
                path = tmp / GRAPH_FILES[kind]
                start = time.perf_counter()
                _export_graph(graph, kind, examples[kind], path, opset)
                session = _session(ort, path)
                verified[kind] = _verify(kind, session, sam, learned, examples, path)
                say(f"[export-onnx] {path.name}: exported in {time.perf_counter() - start:.1f} s, "
                    f"onnxruntime vs torch max |diff| {verified[kind]['max_abs_diff']:.2e}")
        for extra in copy_files:
            shutil.copy2(extra, tmp / Path(extra).name)
        if prompt_kinds is not None:
            prompt_kinds.save(tmp)
        for path in sorted(tmp.iterdir()):
            files[path.name] = _sha256(path)
        embeddings = examples["embeddings"]
        manifest.update({
            "format": ONNX_FORMAT,
            "source": str(source),
            "profile": profile.to_dict(),
            "image_size": int(profile.image_size),
            "embedding_shape": list(embeddings.shape[1:]),
            "mask_size": int(4 * embeddings.shape[-1]),
            "mask_outputs": int(sam.mask_decoder.num_mask_tokens),
            "graphs": {kind: GRAPH_FILES[kind] for kind in graphs},
            "io": {kind: {"inputs": list(GRAPH_IO[kind][0]), "outputs": list(GRAPH_IO[kind][1])} for kind in graphs},
            "files": files,
            "structures": list(structures) if structures else None,
            "learned_structures": list(learned.structures) if learned is not None else None,
            "data_root": str(data_root) if data_root else None,
            "exporter": EXPORTER,
            "opset": _opset(tmp / ENCODER_FILE),
            "verified": verified,
            "versions": _versions(),
        })
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")

    atomic_write_dir(out_dir, fill)
    return manifest


def _export_graph(graph: nn.Module, kind: str, example: tuple, path: Path, opset: int | None) -> None:
    from torch.export import Dim

    inputs, outputs = GRAPH_IO[kind]
    if kind == "encoder":
        dynamic = {"pixel_values": {0: Dim("batch", max=4096)}}
    elif kind == "decoder":
        n, k = Dim("prompts", max=4096), Dim("points", max=4096)
        dynamic = {"image_embeddings": None, "point_coords": {0: n, 1: k}, "point_labels": {0: n, 1: k},
                   "mask_input": {0: n}, "has_mask_input": None}
    else:
        dynamic = {"image_embeddings": None, "structure_index": {0: Dim("prompts", max=4096)}}
    weights = sum(t.numel() * t.element_size() for t in list(graph.parameters()) + list(graph.buffers()))
    quiet = {name: logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")}
    levels = {name: logger.level for name, logger in quiet.items()}
    try:
        for logger in quiet.values():
            logger.setLevel(logging.WARNING)  # their passes log every rewrite at INFO
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's own progress and deprecation notes
            torch.onnx.export(graph, example, str(path), dynamo=True, input_names=list(inputs),
                              output_names=list(outputs), dynamic_shapes=dynamic, opset_version=opset,
                              external_data=weights > EXTERNAL_DATA_BYTES, verbose=False)
    except Exception as err:  # the exporter raises its own error types
        raise OnnxModelError(f"{path.name}: torch.onnx.export (dynamo) failed: {str(err).splitlines()[0]}") from err
    finally:
        for name, logger in quiet.items():
            logger.setLevel(levels[name])
    if not path.is_file():
        raise OnnxModelError(f"{path}: the exporter wrote nothing")


def _examples(sam, profile: PreprocessProfile, learned) -> dict:
    """Inputs of every graph for the export and its verification: two synthetic echo frames, prompts of
    every kind (boxes, points, both, a mask prompt) in model-input px."""
    from medsam_echo.data.transforms import preprocess
    from medsam_echo.models.fast_encoder import InferenceEncoder

    size = profile.image_size
    images = []
    for seed, (h, w) in enumerate([(int(size * 0.9), int(size * 0.7)), (int(size * 0.6), size)]):
        yy, xx = np.mgrid[:h, :w]
        inside = ((xx - w / 2) / (w / 4)) ** 2 + ((yy - h / 2) / (h / 3)) ** 2 <= 1
        noise = np.random.default_rng(seed).normal(0, 12, (h, w))
        images.append(np.clip(50 + 130 * inside + noise, 0, 255).astype(np.uint8))
    pixels = torch.from_numpy(np.stack([preprocess(image, profile).pixel_values for image in images]))
    with torch.no_grad():
        embeddings = InferenceEncoder(sam.vision_encoder, channels_last=False)(pixels).float()
    side = 4 * embeddings.shape[-1]
    s = float(size)
    boxes = np.array([[0.2 * s, 0.25 * s, 0.6 * s, 0.8 * s], [0.1 * s, 0.1 * s, 0.45 * s, 0.5 * s]], np.float32)
    points = np.array([[[0.4 * s, 0.5 * s], [0.55 * s, 0.3 * s]], [[0.3 * s, 0.3 * s], [0.05 * s, 0.9 * s]]],
                      np.float32)
    labels = np.array([[1, 0], [1, 1]], np.int64)
    mask = torch.randn(2, 1, side, side, generator=torch.Generator().manual_seed(0)) * 4
    coords, codes = prompt_arrays(boxes, points, labels)
    has = torch.ones(1)
    example_decoder = (embeddings[:1], torch.from_numpy(coords), torch.from_numpy(codes), mask, has)
    out = {"pixels": pixels, "embeddings": embeddings, "encoder": (pixels,), "decoder": example_decoder,
           "prompts": {"boxes": boxes, "points": points, "labels": labels, "mask": mask}}
    if learned is not None:
        index = torch.tensor([0, len(learned.structures) - 1], dtype=torch.int64)
        out["learned"] = (embeddings[:1], index)
    return out


def _verify(kind: str, session, sam, learned, examples: dict, path: Path) -> dict:
    """Run ``session`` by onnxruntime on the examples and compare with the torch path; raise on disagreement."""
    from medsam_echo.prompts.decode import decode_candidates

    diffs: list[tuple[str, np.ndarray, np.ndarray]] = []
    embeddings = examples["embeddings"]
    with torch.no_grad():
        if kind == "encoder":
            pixels = examples["pixels"]
            for batch in (pixels, pixels[:1]):  # the dynamic batch, and batch 1
                got = _run(session, path, {"pixel_values": batch.numpy()})[0]
                diffs.append((f"batch {len(batch)}", got, embeddings[: len(batch)].numpy()))
        elif kind == "decoder":
            p = examples["prompts"]
            cases = {"boxes": (p["boxes"], None, None, None), "points": (None, p["points"], p["labels"], None),
                     "boxes+points": (p["boxes"], p["points"], p["labels"], None),
                     "boxes+points+mask": (p["boxes"], p["points"], p["labels"], p["mask"]),
                     "one point": (None, p["points"][:1, :1], p["labels"][:1, :1], None)}
            for name, (boxes, points, labels, mask) in cases.items():
                coords, codes = prompt_arrays(boxes, points, labels)
                n = len(coords)
                feed = {"image_embeddings": embeddings[:1].numpy(), "point_coords": coords, "point_labels": codes,
                        "mask_input": (mask if mask is not None else torch.zeros(n, *p["mask"].shape[1:])).numpy(),
                        "has_mask_input": np.array([0.0 if mask is None else 1.0], np.float32)}
                masks, iou = _run(session, path, feed)
                inputs = {}
                if boxes is not None:
                    inputs["input_boxes"] = torch.as_tensor(boxes, dtype=torch.float32)[None]
                if points is not None:
                    inputs["input_points"] = torch.as_tensor(points, dtype=torch.float32)[None]
                    inputs["input_labels"] = torch.as_tensor(labels, dtype=torch.int64)[None]
                masks_in = None if mask is None else mask[None]
                for multimask, picked in ((False, slice(0, 1)), (True, slice(1, None))):
                    ref_masks, ref_iou = decode_candidates(sam, embeddings[:1], inputs, input_masks=masks_in,
                                                           multimask_output=multimask)
                    label = f"{name}{' multimask' if multimask else ''}"
                    diffs.append((f"{label} masks", masks[:, picked], ref_masks[0].numpy()))
                    diffs.append((f"{label} iou", iou[:, picked], ref_iou[0].numpy()))
        else:
            from medsam_echo.prompts.learned import decode_learned

            names = [learned.structures[0], learned.structures[-1]]
            index = np.array([learned.structures.index(s) for s in names], np.int64)
            masks, iou = _run(session, path, {"image_embeddings": embeddings[:1].numpy(), "structure_index": index})
            ref_masks, ref_iou = decode_learned(sam, learned, embeddings[:1], names)
            diffs += [("masks", masks, ref_masks[0].numpy()), ("iou", iou, ref_iou[0].numpy())]
    report, worst = {}, 0.0
    for name, got, ref in diffs:
        if got.shape != ref.shape:
            raise OnnxModelError(f"{path.name}: onnxruntime gives {name} of shape {got.shape}, torch {ref.shape}")
        diff = float(np.abs(got - ref).max()) if got.size else 0.0
        scale = max(1.0, float(np.abs(ref).max()) if ref.size else 0.0)
        report[name] = diff
        worst = max(worst, diff / scale)
        if not np.isfinite(got).all() or diff > TOLERANCE * scale:
            raise OnnxModelError(f"{path.name}: onnxruntime disagrees with torch on {name}: max |diff| {diff:.3g} "
                                 f"(tolerance {TOLERANCE * scale:.3g}); the export is not kept")
    return {"max_abs_diff": max(report.values()), "max_rel_diff": worst, "cases": report}


def _run(session, path: Path, feed: dict) -> list[np.ndarray]:
    try:
        return session.run(None, feed)
    except Exception as err:  # onnxruntime's own error types
        raise OnnxModelError(f"{path}: onnxruntime failed to run it: {err}") from err


def _session(ort, path: Path, threads: int | None = None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own error types
        raise OnnxModelError(f"{path}: onnxruntime cannot load it ({str(err).strip().splitlines()[0]})") from err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "onnx", "onnxscript", "onnxruntime"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------------------------- reading


def is_onnx_dir(path: str | Path) -> bool:
    """True when ``path`` is a folder holding an ``onnx_model.json`` (an :func:`export_onnx` output)."""
    try:
        return (Path(path) / MANIFEST_FILE).is_file()
    except (OSError, ValueError):
        return False


def read_manifest(directory: str | Path, *, check_files: bool = True) -> dict:
    """The manifest of an export, checked: its format, and every file it lists present with its sha256.

    Raises:
        OnnxModelError: no or unreadable manifest, or a missing or damaged file (the message names it).
    """
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise OnnxModelError(f"{path}: missing; {directory} is not an ONNX export "
                             "(write one with `medsam-echo export-onnx MODEL OUT_DIR`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OnnxModelError(f"{path}: unreadable ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != ONNX_FORMAT:
        raise OnnxModelError(f"{path}: not a medsam-echo ONNX manifest (expected format {ONNX_FORMAT!r})")
    graphs, files = manifest.get("graphs"), manifest.get("files")
    if not isinstance(graphs, dict) or "encoder" not in graphs or "decoder" not in graphs or not isinstance(files, dict):
        raise OnnxModelError(f"{path}: lists no encoder and decoder graphs with their files")
    for name in graphs.values():
        if name not in files:
            raise OnnxModelError(f"{directory / name}: not listed with a sha256 in {path.name}")
    if check_files:
        for name, digest in files.items():
            file = directory / name
            if not file.is_file():
                raise OnnxModelError(f"{file}: missing (listed in {path.name}); export again with "
                                     "`medsam-echo export-onnx`")
            if _sha256(file) != digest:
                raise OnnxModelError(f"{file}: damaged: its sha256 differs from the one {path.name} recorded "
                                     "at export; export again with `medsam-echo export-onnx`")
    return manifest


def open_session(directory: str | Path, manifest: dict, kind: str, *, threads: int | None = None):
    """An onnxruntime CPU session of graph ``kind`` (``encoder``, ``decoder``, ``learned``), its inputs and
    outputs checked against :data:`GRAPH_IO`."""
    ort = require("onnxruntime")
    path = Path(directory) / manifest["graphs"][kind]
    session = _session(ort, path, threads)
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = tuple(o.name for o in session.get_outputs())
    if (inputs, outputs) != GRAPH_IO[kind]:
        raise OnnxModelError(f"{path}: inputs {list(inputs)} and outputs {list(outputs)} are not a medsam-echo "
                             f"{kind} graph's ({list(GRAPH_IO[kind][0])} -> {list(GRAPH_IO[kind][1])})")
    session.path = path  # for messages
    return session
