"""Deterministic evaluation prompts: the same case always gets the same prompts, whatever the model.

Each case's generator is seeded from a SHA-256 hash of its id (and an optional salt naming the protocol),
never from Python's ``hash()``, which is salted per process. Two models, two machines or two runs thus see
exactly the same jittered boxes and sampled points.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from medsam_echo.prompts.policies import PromptPolicyConfig, make_prompts
from medsam_echo.prompts.prompt_set import Prompts


def case_seed(case_id: str, salt: str = "") -> int:
    """A stable 64-bit seed for ``case_id`` (SHA-256 of ``"salt/case_id"``)."""
    if not case_id:
        raise ValueError("case_id must be a non-empty string")
    digest = hashlib.sha256(f"{salt}/{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def case_rng(case_id: str, salt: str = "") -> np.random.Generator:
    """A fresh generator seeded with :func:`case_seed`."""
    return np.random.default_rng(case_seed(case_id, salt))


def evaluation_prompts(
    label_map: np.ndarray,
    structures: Sequence[str],
    case_id: str,
    config: PromptPolicyConfig,
    *,
    spacing: tuple[float, float] | None = None,
    salt: str = "",
) -> Prompts:
    """The evaluation prompts of one case, in px of ``label_map``.

    Args:
        label_map: ``(H, W)`` ground-truth label map of the case.
        structures: structures to prompt.
        case_id: e.g. ``patient0001_2CH_ED``; seeds the generator.
        config: the prompt protocol (``box`` with jitter, ``points``, ...); ``iterative`` starts from its
            ``iterative_start`` prompts (the clicks that follow depend on the model, see ``sweep``).
        spacing: ``(sx, sy)`` mm per px, for ``jitter_mode="mm"``.
        salt: names the protocol, so two protocols on one case draw independent prompts.
    """
    return make_prompts(label_map, structures, case_rng(case_id, salt), config, spacing=spacing)
