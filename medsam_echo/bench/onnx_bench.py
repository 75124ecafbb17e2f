"""The ONNX engine in the encoder benchmark: onnxruntime's encoder timed beside ours, and its masks.

``cpu-litemedsam`` exports the model it measures (:func:`~medsam_echo.models.onnx_export.export_onnx`) and
adds the exported encoder as the ``onnx`` variant of :func:`~medsam_echo.bench.encoder.compare_encoders`,
timed in the same interleaved rounds as ``fast+alloc`` (our torch encoder, what the predictor runs), with
as many onnxruntime intra-op threads as torch has. Its masks are measured end to end, as the predictor on
``engine="onnx"`` computes them: onnxruntime's encoder and prompt decoder against our torch encoder and
``SamModel``'s decoder, box prompts, Dice per mask (``onnx_mask_dice_min``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from medsam_echo.bench.encoder import _dice
from medsam_echo.models.fast_encoder import InferenceEncoder
from medsam_echo.models.onnx_export import export_onnx, open_session, prompt_arrays, read_manifest
from medsam_echo.prompts.decode import decode_candidates


def onnx_unavailable() -> str | None:
    """Why the ONNX variant cannot run here (a missing package), or ``None``."""
    import importlib.util

    missing = [m for m in ("onnxruntime", "onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    return f"{', '.join(missing)} not installed (pip install -e '.[onnx]')" if missing else None


class OnnxEncoder:
    """``pixel_values (B, 3, S, S)`` -> embeddings through ``image_encoder.onnx`` (a ``compare_encoders`` variant)."""

    def __init__(self, directory: Path, threads: int | None = None) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.session = open_session(self.directory, self.manifest, "encoder", threads=threads)
        self.decoder = open_session(self.directory, self.manifest, "decoder", threads=threads)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        feed = {"pixel_values": np.ascontiguousarray(pixels.detach().float().cpu().numpy())}
        return torch.from_numpy(self.session.run(None, feed)[0])

    def masks(self, embeddings: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, n, h, w)`` low-res logits and ``(B, n)`` IoU of the box prompts (model-input px), single mask."""
        logits, scores = [], []
        side = int(self.manifest["mask_size"])
        for image, image_boxes in zip(embeddings, boxes, strict=True):
            coords, labels = prompt_arrays(image_boxes.numpy(), None, None)
            n = len(coords)
            feed = {"image_embeddings": np.ascontiguousarray(image[None].float().numpy()), "point_coords": coords,
                    "point_labels": labels, "mask_input": np.zeros((n, 1, side, side), np.float32),
                    "has_mask_input": np.zeros(1, np.float32)}
            masks, iou = self.decoder.run(None, feed)
            logits.append(torch.from_numpy(masks[:, 0]))
            scores.append(torch.from_numpy(iou[:, 0]))
        return torch.stack(logits), torch.stack(scores)


def export_for_bench(model, profile, work_dir: Path, log=print) -> tuple[OnnxEncoder, float]:
    """Export ``model`` into ``work_dir/onnx`` and open it; returns the encoder variant and the export seconds."""
    start = time.perf_counter()
    export_onnx(model, profile, Path(work_dir) / "onnx", source="bench", log_fn=log)
    seconds = time.perf_counter() - start
    return OnnxEncoder(Path(work_dir) / "onnx", threads=torch.get_num_threads()), seconds


@torch.no_grad()
def onnx_mask_agreement(model, onnx: OnnxEncoder, pixels: torch.Tensor, boxes: torch.Tensor) -> dict:
    """The ONNX engine's box-prompted masks against the torch path's (our encoder + ``SamModel``'s decoder).

    Args:
        model: the ``SamModel`` that was exported.
        onnx: its export.
        pixels: ``(B, 3, S, S)``; boxes: ``(B, n, 4)`` model-input px, one per structure.

    Returns:
        ``{"masks", "dice_min", "dice_mean", "max_abs_logit_diff", "max_abs_iou_diff", "max_abs_embedding_diff"}``.
    """
    torch_embeddings = InferenceEncoder(model.vision_encoder)(pixels).float()
    torch_logits, torch_iou = decode_candidates(model, torch_embeddings, {"input_boxes": boxes.float()})
    onnx_embeddings = onnx(pixels)
    onnx_logits, onnx_iou = onnx.masks(onnx_embeddings, boxes.float())
    dice = _dice(onnx_logits > 0, torch_logits[:, :, 0] > 0)
    return {"masks": int(dice.numel()), "dice_min": float(dice.min()), "dice_mean": float(dice.mean()),
            "max_abs_logit_diff": float((onnx_logits - torch_logits[:, :, 0]).abs().max()),
            "max_abs_iou_diff": float((onnx_iou - torch_iou[:, :, 0]).abs().max()),
            "max_abs_embedding_diff": float((onnx_embeddings - torch_embeddings).abs().max())}
