"""The prompt kinds a model was trained with, saved with it, and the click behaviour they call for.

A model answers well only to the prompts it was trained on. LiteMedSAM and MedSAM were trained with boxes
alone (MedSAM's tracker: "It was not trained with point prompts"); feeding them a click and their previous
logits as a mask prompt uses paths that never learned anything, and a negative click turns a cavity into
horizontal stripes. So a model folder records what it was trained with (``prompt_kinds.json``, written by
``RunFolder.save_model``), and the predictor picks the click behaviour from it:

- :data:`MASK_FEEDBACK` (points and mask trained, e.g. ``iterative`` or ``click_rounds > 0``): add the
  click to the prompts and feed the previous low-res logits back as the mask prompt, as SAM does;
- :data:`POINT_PROMPTS` (points trained, mask not): decode the box and every click, without the mask prompt;
- :data:`BOX_EDIT` (box only): a negative click moves the nearest box side in to just past the click, a
  positive click outside the box grows it to hold the click, and the box alone is decoded again
  (``prompts.clicks.edit_box``). Chosen over the other two by measurement on camus224 validation
  (``benchmarks/box_only_clicks.py``, table in ``benchmarks/README.md``): with zero-shot LiteMedSAM from a
  loose box it is the only one whose mean Dice never falls with another click.

Where the kinds of a source come from (``inference.sources``): a run's ``prompt_kinds.json``, else its
``config.yaml`` (older runs, :func:`kinds_from_config`); a checkpoint by its preprocessing profile
(``litemedsam`` and ``medsam``: box only; SAM's own: box, points, mask); ``baseline:ellipse``: box.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medsam_echo.atomic import atomic_write_text

BOX, POINTS, MASK, LEARNED = "box", "points", "mask", "learned"
KINDS = (BOX, POINTS, MASK, LEARNED)  # in this order in files and messages
PROMPT_KINDS_FILE = "prompt_kinds.json"

MASK_FEEDBACK, POINT_PROMPTS, BOX_EDIT = "mask-feedback", "point-prompts", "box-edit"
CLICK_BEHAVIOURS = (MASK_FEEDBACK, POINT_PROMPTS, BOX_EDIT)
BEHAVIOUR_NOTES = {
    MASK_FEEDBACK: "a click is added to the prompts and the previous mask is fed back (click-trained model)",
    POINT_PROMPTS: "the box and every click are decoded again, without the previous mask",
    BOX_EDIT: "box-only model: a negative click moves the nearest box side in, a positive click outside "
    "the box grows it; use the brush for the rest",
}

# preprocessing profile of a checkpoint -> what its weights were trained with
PROFILE_KINDS = {"litemedsam": (BOX,), "medsam": (BOX,), "sam": (BOX, POINTS, MASK)}
_POLICY_KINDS = {"box": (BOX,), "points": (POINTS,), "box_points": (BOX, POINTS), "robust": (BOX,)}


def ordered(kinds: Iterable[str]) -> tuple[str, ...]:
    """``kinds`` without repeats, in :data:`KINDS` order; an unknown name is an error."""
    kinds = set(kinds)
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise ValueError(f"unknown prompt kinds {unknown}; choose from {KINDS}")
    return tuple(k for k in KINDS if k in kinds)


@dataclass(frozen=True)
class PromptKinds:
    """What a model was trained to take, and where that was read.

    Attributes:
        kinds: a subset of :data:`KINDS`, in that order.
        origin: where it came from, for messages (``"prompt_kinds.json"``, ``"config.yaml (policy box)"``,
            ``"litemedsam weights (trained with boxes only)"`` ...).
        detail: what the file adds (the policy, its click rounds, ...).
    """

    kinds: tuple[str, ...]
    origin: str = ""
    detail: dict | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", ordered(self.kinds))
        if not self.kinds:
            raise ValueError("a model takes at least one prompt kind")

    def __contains__(self, kind: object) -> bool:
        return kind in self.kinds

    @property
    def click_behaviour(self) -> str:
        """The click behaviour these kinds call for (module docstring)."""
        return click_behaviour_for(self.kinds)

    def to_dict(self) -> dict:
        return {"kinds": list(self.kinds), **(self.detail or {})}

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/prompt_kinds.json``, atomically."""
        return atomic_write_text(Path(directory) / PROMPT_KINDS_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> PromptKinds | None:
        """``directory/prompt_kinds.json``, or ``None`` when there is none; a bad file is a ValueError naming it."""
        path = Path(directory) / PROMPT_KINDS_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            kinds = data["kinds"]
            if not isinstance(kinds, list):
                raise TypeError("kinds must be a list")
            detail = {k: v for k, v in data.items() if k != "kinds"}
            return cls(tuple(kinds), origin=str(path), detail=detail)
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a prompt-kinds file ({err})") from None


def click_behaviour_for(kinds: Iterable[str]) -> str:
    """:data:`MASK_FEEDBACK` with points and mask, :data:`POINT_PROMPTS` with points alone, else :data:`BOX_EDIT`."""
    kinds = set(kinds)
    if {POINTS, MASK} <= kinds:
        return MASK_FEEDBACK
    return POINT_PROMPTS if POINTS in kinds else BOX_EDIT


def _policy_kinds(prompts, policy: str) -> tuple[str, ...]:
    """The first-round kinds of ``policy`` (``mix``: the kinds with weight > 0)."""
    if policy == "mix":
        mix = getattr(prompts, "mix", {}) or {}
        return tuple(k for name, weight in mix.items() if weight > 0 for k in _POLICY_KINDS.get(name, ()))
    return _POLICY_KINDS.get(policy, ())


def kinds_from_config(cfg) -> PromptKinds:
    """The prompt kinds a run trained with, from its config (``cfg.prompts``: a ``PromptPolicyConfig``).

    box -> box; points -> points; box_points -> box + points; mix -> the kinds of weight > 0; iterative ->
    its start's kinds, + points + mask when ``iterative_rounds > 0``; robust -> box; any policy with
    ``click_rounds > 0`` -> + points + mask (error-region clicks with the previous logits fed back);
    ``auto.mode: tokens`` -> + learned.
    """
    prompts = cfg.prompts
    policy = prompts.policy
    click_rounds = int(getattr(prompts, "click_rounds", 0) or 0)
    if policy == "iterative":
        kinds = list(_policy_kinds(prompts, prompts.iterative_start))
        if prompts.iterative_rounds > 0:
            kinds += [POINTS, MASK]
    else:
        kinds = list(_policy_kinds(prompts, policy))
    if click_rounds > 0:
        kinds += [POINTS, MASK]
    auto_mode = getattr(getattr(cfg, "auto", None), "mode", "none")
    if auto_mode == "tokens":
        kinds.append(LEARNED)
    if not kinds:
        raise ValueError(f"prompt policy {policy!r}: no prompt kinds known for it")
    detail = {"policy": policy, "click_rounds": click_rounds, "auto_mode": auto_mode}
    if policy == "iterative":
        detail |= {"iterative_start": prompts.iterative_start, "iterative_rounds": prompts.iterative_rounds}
    if policy == "mix" or (policy == "iterative" and prompts.iterative_start == "mix"):
        detail["mix"] = dict(prompts.mix)
    return PromptKinds(tuple(kinds), origin=f"config (policy {policy})", detail=detail)


def kinds_for_profile(profile_name: str, what: str = "checkpoint") -> PromptKinds:
    """The kinds of pretrained weights by their preprocessing profile: ``litemedsam`` / ``medsam`` box only,
    SAM's own (``sam``) box + points + mask."""
    kinds = PROFILE_KINDS.get(profile_name, (BOX, POINTS, MASK))
    how = "boxes only" if kinds == (BOX,) else "boxes, points and masks"
    return PromptKinds(kinds, origin=f"{what} with the {profile_name} profile (trained with {how})")
