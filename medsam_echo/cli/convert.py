"""``medsam-echo convert-checkpoint SRC OUT_DIR [--profile NAME] [--to-original OUT.pth]``.

``OUT_DIR`` loads with ``transformers.SamModel.from_pretrained(OUT_DIR)`` (ViT) or ``load_sam(OUT_DIR)``
(TinyViT) and holds ``preprocessing.json``; ``--to-original`` also writes the original key layout
(segment-anything / MedSAM, or LiteMedSAM / MobileSAM for TinyViT). ``SRC`` may also be a training run
(``RUN`` or ``RUN/model``): its fine-tuned weights are written, LoRA merged.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from transformers import SamModel

from medsam_echo.atomic import OutputExistsError, check_output
from medsam_echo.models.convert import save_original, save_sam
from medsam_echo.models.errors import CheckpointError
from medsam_echo.models.loader import load_sam
from medsam_echo.models.profile import PROFILES, PreprocessProfile
from medsam_echo.prompts.learned import LEARNED_PROMPTS_FILE


def _load_for_conversion(src: str, profile: str | None) -> tuple[SamModel, PreprocessProfile, list[str]]:
    """A checkpoint source, or a fine-tuned run's weights (``RUN`` / ``RUN/model``) with LoRA merged."""
    from medsam_echo.adapters.persist import load_trained, merge_lora
    from medsam_echo.training.run_folder import find_run

    found = find_run(src)
    if found is None:
        loaded = load_sam(src, profile=profile)
        notes = [f"  note: {note}" for note in loaded.notes]
        return loaded.model, loaded.profile, [f"profile {loaded.profile.name}: {loaded.profile_reason}", *notes]
    model, base = load_trained(found.trained_dir)
    try:
        model = merge_lora(model)
    except ValueError as err:
        raise CheckpointError(f"{found.trained_dir}: {err}") from None
    origin = f"fine-tuned weights {found.trained_dir} on {base.source}, profile {base.profile.name}"
    notes = []
    if (found.trained_dir / LEARNED_PROMPTS_FILE).is_file():
        notes.append(f"  note: the run's learned prompts (automatic mode) are not part of a SAM checkpoint; they stay in "
                     f"{found.trained_dir / LEARNED_PROMPTS_FILE}")
    return model, base.profile, [origin, *notes]


_MODEL_FILE = re.compile(r"(config\.json|preprocessing\.json|model(-\d+-of-\d+)?\.safetensors(\.index\.json)?)$")


def is_model_dir(path: Path) -> bool:
    """A folder holding only what ``save_sam`` writes (so ``--overwrite`` may replace it)."""
    names = [p.name for p in path.iterdir()]
    return "config.json" in names and all(p.is_file() and _MODEL_FILE.match(p.name) for p in path.iterdir())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medsam-echo convert-checkpoint", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "src", help="checkpoint (.pth, .safetensors, transformers directory, hub id, litemedsam), or a training "
        "run / RUN/model, whose fine-tuned weights are written with LoRA merged"
    )
    parser.add_argument("out_dir", help="transformers directory to write (model.safetensors, config.json, preprocessing.json)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="override the preprocessing profile")
    parser.add_argument("--to-original", metavar="OUT.pth", help="also write the segment-anything layout here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing OUT_DIR written by convert-checkpoint (other folders never are)")
    args = parser.parse_args(argv)
    local = [args.src] if Path(args.src).exists() else []
    try:  # before anything is loaded: nothing the user has may be replaced
        check_output(args.out_dir, overwrite=args.overwrite, is_dir=True, ours=is_model_dir, inputs=tuple(local))
        if args.to_original:
            check_output(args.to_original, overwrite=args.overwrite, inputs=tuple(local))
    except OutputExistsError as err:
        parser.exit(2, f"medsam-echo convert-checkpoint: error: {err}\n")
    try:
        model, profile, origin = _load_for_conversion(args.src, args.profile)
    except CheckpointError as err:
        parser.exit(1, f"error: {err}\n")
    save_sam(model, profile, args.out_dir)
    print(f"wrote {args.out_dir} ({origin[0]})", *origin[1:], sep="\n")
    if args.to_original:
        save_original(model, args.to_original)
        print(f"wrote {args.to_original} (segment-anything layout)")
    return 0
