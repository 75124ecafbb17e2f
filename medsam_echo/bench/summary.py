"""A ``medsam-echo bench`` result as Markdown tables (as pasted into benchmarks/README.md).

    medsam-echo bench --summarize benchmarks/results/2026-11-24_cpu-2core_cpu-small.json
"""

from __future__ import annotations

import json


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def summarize(result: dict) -> str:
    """Markdown of any bench result (training, peer, cache or latency preset)."""
    if "peer_train_img_s" in result:
        return summarize_peer(result)
    if "runs" not in result:
        return _header(result) + "\n\n```json\n" + json.dumps({k: v for k, v in result.items() if k not in (
            "hardware", "versions")}, indent=2) + "\n```"
    return summarize_training(result)


def _header(result: dict) -> str:
    hw = result["hardware"]
    return (f"**{result.get('preset', '?')}** on {hw['cpu']} ({hw['cpu_cores']} cores, {hw['torch_threads']} torch "
            f"threads{', ' + hw['gpu'] if hw.get('gpu') else ''}), {result['date']}, load average "
            f"{hw['loadavg_start'][0]:.1f} -> {hw.get('loadavg_end', [float('nan')])[0]:.1f}")


def summarize_peer(result: dict) -> str:
    """Markdown of a peer preset: the training variants, the encoder variants, the cache epoch."""
    lines = [_header(result), "",
             f"training ours {result['train_img_s']:.3f} img/s vs peer {result['peer_train_img_s']:.3f} img/s = "
             f"**{result['train_speedup_vs_peer']:.2f}x** (same allocator: {result['train_speedup_vs_peer_same_allocator']:.2f}x); "
             f"per label with {len(result['settings']['structures'])} structures per step "
             f"**{result['per_label_speedup_vs_peer']:.2f}x**; encoder **{result['encoder_speedup_vs_peer']:.2f}x** "
             f"(min mask Dice {result['encoder_mask_dice_min']:.4f}); embedding cache **{result['cache_speedup']:.1f}x**",
             "", "| training variant | img/s | labels/s | vs peer (labels/s) | epoch s | peak MB | process |",
             "|---|---|---|---|---|---|---|"]
    peer = result["peer_train_img_s"]
    for name, r in result["training"].items():
        lines.append(f"| {name} | {r['img_s']:.3f} | {r['labels_per_s']:.3f} | {r['labels_per_s'] / peer:.2f} | "
                     f"{r['epoch_s']:.2f} | {r['peak_mem_mb']:.0f} | {r['process']} |")
    enc = result["encoder"]
    ratio = enc.get("speedup_vs_peer") or enc["speedup_vs_eager"]
    lines += ["", f"| encoder variant (batch {enc['batch']}) | img/s | vs peer | mask Dice vs fp32 eager (mean / min) |",
              "|---|---|---|---|"]
    for name, rate in enc["images_per_s"].items():
        lines.append(f"| {name} | {rate:.2f} | {ratio[name]:.2f} | "
                     f"{enc['mask_dice_vs_eager'][name]:.4f} / {enc['mask_dice_min_vs_eager'][name]:.4f} |")
    onnx = enc.get("onnx") or {}
    if result.get("onnx_encoder_speedup") is not None:
        lines += ["", f"ONNX (onnxruntime CPU, {onnx.get('threads')} threads): encoder "
                  f"**{result['onnx_encoder_speedup']:.2f}x** our torch encoder (fast+alloc, same rounds); the "
                  f"ONNX engine's box masks vs the torch path's: Dice min **{result['onnx_mask_dice_min']:.4f}** "
                  f"over {onnx.get('masks')} masks; export {onnx.get('export_s', float('nan')):.0f} s."]
    elif onnx.get("skipped"):
        lines += ["", f"ONNX: not measured ({onnx['skipped']})."]
    c = result["cache"]
    lines += ["", f"Frozen-encoder epoch ({c['images_per_epoch']} images, batch {c['batch_size']}): "
              f"{c['epoch_s_recompute']:.2f} s recomputing the encoder, {c['epoch_s_cached']:.2f} s from the cache "
              f"({c['speedup']:.1f}x); filling the cache {c['fill_s']:.2f} s."]
    return "\n".join(lines)


def summarize_training(result: dict) -> str:
    """Markdown: headline, one row per (method, batch, variant), the cache epoch and the latencies."""
    lines = [
        _header(result),
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
