"""Print a ``medsam-echo bench`` result as Markdown tables (as pasted into benchmarks/README.md).

python benchmarks/summarize.py benchmarks/results/2026-11-24_cpu-2core_cpu-small.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def summarize(result: dict) -> str:
    """Markdown: headline, one row per (method, batch, variant), the cache epoch and the latencies."""
    hw = result["hardware"]
    lines = [
        f"**{result['preset']}** on {hw['cpu']} ({hw['cpu_cores']} cores, {hw['torch_threads']} torch threads"
        f"{', ' + hw['gpu'] if hw.get('gpu') else ''}), {result['date']}, load average "
        f"{hw['loadavg_start'][0]:.1f} -> {hw['loadavg_end'][0]:.1f}",
        "",
        f"ours {_fmt(result['train_img_s'])} img/s vs baseline {_fmt(result['baseline_train_img_s'])} img/s "
        f"= **{_fmt(result['speedup_vs_baseline'])}x** ({result['headline']['method']}, batch "
        f"{result['headline']['batch_size']}); embedding cache **{_fmt(result['cache_speedup'], '.1f')}x**",
        "",
        "| method | batch | variant | img/s | vs baseline | step ms | first step ms | peak MB | TFLOP/s | MFU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {
        (r["method"], r["batch_size"]): r.get("img_s") for r in result["runs"] if r["variant"] == "baseline"
    }
    for r in result["runs"]:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['batch_size']} | {r['variant']} | {r['error']} |||||||")
            continue
        ref = base.get((r["method"], r["batch_size"]))
        lines.append(
            f"| {r['method']} | {r['batch_size']} | {r['variant']} | {_fmt(r['img_s'])} | "
            f"{_fmt(r['img_s'] / ref if ref else None)} | {_fmt(r['step_ms'], '.0f')} | "
            f"{_fmt(r.get('first_step_ms'), '.0f')} | {_fmt(r['peak_mem_mb'], '.0f')} | "
            f"{_fmt(r['achieved_tflops'], '.3f')} | {_fmt(r['mfu'], '.1%')} |"
        )
    c, inf = result["cache"], result["inference"]
    lines += [
        "",
        f"Frozen-encoder epoch ({c['images_per_epoch']} images, batch {c['batch_size']}): "
        f"{c['epoch_s_recompute']:.2f} s recomputing the encoder, {c['epoch_s_cached']:.2f} s from the cache "
        f"({c['speedup']:.1f}x); filling the cache {c['fill_s']:.2f} s.",
        f"Batch-1 latency: encoder {inf['ours']['encoder_ms']:.1f} ms (baseline {inf['baseline']['encoder_ms']:.1f} "
        f"ms), prompt encoder + decoder {inf['ours']['decoder_ms']:.1f} ms (baseline "
        f"{inf['baseline']['decoder_ms']:.1f} ms).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result", type=Path, help="JSON written by medsam-echo bench")
    print(summarize(json.loads(parser.parse_args().result.read_text())))


if __name__ == "__main__":
    main()
