"""What a benchmark measures besides time: memory, FLOPs, and the machine it ran on.

Memory of one configuration is measured while other configurations are alive in the same process (the
runner interleaves them so that every ratio is taken under the same load), so a process-wide peak would
count their weights too. Instead a step's peak is taken as the growth above the memory held just before
the step (activations, gradients, temporaries), and the configuration's own resident state (parameters,
gradients of trainable parameters, optimizer moments) is added to it:

    peak_mem_mb = own state + (peak during the step - held before the step)

On CUDA the peak is ``torch.cuda.max_memory_allocated``; on the CPU it is the process RSS, polled every
millisecond by a thread (after ``malloc_trim`` hands freed heap back to the OS, so that the baseline is
the memory really in use).
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata

import torch

# Dense bf16 tensor-core peak (FLOP/s, no sparsity) by GPU name, from the vendors' datasheets; SXM parts.
PEAK_BF16_FLOPS: dict[str, float] = {
    "H200": 989e12,
    "H100": 989e12,
    "GH200": 989e12,
    "B200": 2250e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
}
MIB = 2**20


def peak_bf16_flops(device_name: str) -> float | None:
    """The datasheet bf16 peak of a GPU named ``device_name`` (longest matching key), or ``None``."""
    matches = [key for key in PEAK_BF16_FLOPS if key.lower() in device_name.lower()]
    return PEAK_BF16_FLOPS[max(matches, key=len)] if matches else None


def synchronize() -> None:
    """Wait for queued CUDA work, so wall-clock times cover the kernels."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the baseline keeps some freed heap
        pass


class _RssPoller:
    """Highest RSS seen by a background thread while the ``with`` block runs."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s, self.peak, self._stop = interval_s, 0, threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> _RssPoller:
        self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def step_memory(step: Callable[[], object]) -> dict[str, float]:
    """Run ``step`` once; ``{"held_mb", "step_peak_mb"}``: memory held before it, and its peak growth (MiB)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        synchronize()
        held = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        _trim_heap()
        held = _rss_bytes()
        with _RssPoller() as poller:
            step()
        peak = poller.peak
    return {"held_mb": held / MIB, "step_peak_mb": max(0, peak - held) / MIB}


def resident_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
    """Parameters and buffers, a gradient per trainable parameter, and the optimizer's state tensors."""
    tensors = [*model.parameters(), *model.buffers()]
    total = sum(t.numel() * t.element_size() for t in tensors)
    total += sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    if optimizer is not None:
        for state in optimizer.state.values():
            total += sum(v.numel() * v.element_size() for v in state.values() if torch.is_tensor(v))
    return total


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of ``step`` (forward and backward), counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def hardware() -> dict:
    """CPU model, core counts, GPU name and load average: the context every figure needs."""
    info = {"cpu": _cpu_model(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "loadavg_start": list(os.getloadavg())}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    gpu_peak_bf16_tflops=(peak_bf16_flops(props.name) or 0) / 1e12 or None)
    else:
        info["gpu"] = None
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries on the timed path."""
    found = {"python": platform.python_version(), "torch_cuda": torch.version.cuda}
    for name in ("medsam-echo", "torch", "transformers", "accelerate", "peft", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def utc_now() -> str:
    """ISO 8601 UTC timestamp, seconds precision."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
