"""The decoder step, fast (``models/fast_decoder.py``) against transformers' ``SamModel`` call, side by side.

One training step's decoder work for LiteMedSAM: ``B`` images x 3 structures (box prompts), forward and
backward (the mask decoder trained, the image embeddings given as by the embedding cache), and the same
forward alone (prediction). The two paths alternate, ``--repeats`` times each; medians are compared, and
the largest output difference is printed next to them.

    nice -n 0 python benchmarks/decoder_step.py --batch 8 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from medsam_echo.models.loader import load_sam
from medsam_echo.prompts.decode import decode_candidates


def _step(model, embeddings, inputs, decoder: str, backward: bool) -> tuple[float, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    with torch.set_grad_enabled(backward):
        logits, iou = decode_candidates(model, embeddings, inputs, decoder=decoder)
        if backward:
            (logits.sigmoid().mean() + iou.mean()).backward()
    return time.perf_counter() - start, logits.detach()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="images per step")
    parser.add_argument("--structures", type=int, default=3, help="prompts per image")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    model = load_sam("litemedsam", device="cpu").model.train()
    for param in model.parameters():
        param.requires_grad_(False)
    for param in model.mask_decoder.parameters():
        param.requires_grad_(True)
    size = model.config.prompt_encoder_config.image_embedding_size
    channels = model.config.vision_config.output_channels
    gen = torch.Generator().manual_seed(0)
    embeddings = torch.randn(args.batch, channels, size, size, generator=gen)
    xy = torch.rand(args.batch, args.structures, 2, generator=gen) * 128
    inputs = {"input_boxes": torch.cat([xy, xy + 96], dim=-1)}
    print(f"LiteMedSAM decoder, {args.batch} images x {args.structures} box prompts, "
          f"{torch.get_num_threads()} threads, {args.repeats} repeats (medians)")
    for backward in (True, False):
        times = {"fast": [], "reference": []}
        outputs = {}
        _step(model, embeddings, inputs, "fast", backward)  # warm-up
        _step(model, embeddings, inputs, "reference", backward)
        for _ in range(args.repeats):
            for decoder in times:
                seconds, outputs[decoder] = _step(model, embeddings, inputs, decoder, backward)
                times[decoder].append(seconds)
        fast, ref = statistics.median(times["fast"]), statistics.median(times["reference"])
        diff = float((outputs["fast"] - outputs["reference"]).abs().max())
        kind = "forward + backward (training step)" if backward else "forward (prediction)"
        print(f"{kind}: reference {ref:.3f} s, fast {fast:.3f} s, decoder_step_speedup {ref / fast:.2f}x, "
              f"max |logit difference| {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
