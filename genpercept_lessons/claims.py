"""Claims that need the real weights: asserted in the mini and full profiles, reported (not asserted) in the rehearsal.

A lesson asserts what it teaches: ``check_claim(profile, err_leading > 3 * err_trailing, "one leading step is 3x
worse")``. In the mini and full profiles that is an assert: a claim that does not hold raises ``AssertionError``
naming it. In the full profile's CPU rehearsal (``profile.rehearsal``: random-weight stand-ins of the real
checkpoints, see ``course/rehearsal.py``) random weights can neither confirm nor refute it, so every such claim is
printed and appended to ``$GENPERCEPT_REHEARSAL_LOG`` with whether it happened to hold: the rehearsal's report lists
all of them, never silently passing one. Asserts about the code itself (the open loop equals the library's, shapes,
conventions) stay plain asserts: the rehearsal checks them for real.
"""
from __future__ import annotations

import json
import os

__all__ = ["REHEARSAL_LOG_ENV", "check_claim"]

REHEARSAL_LOG_ENV = "GENPERCEPT_REHEARSAL_LOG"


def check_claim(profile, held, claim: str) -> None:
    """Assert ``held`` (a bool, numpy or 0-d torch bool) naming ``claim``; under ``profile.rehearsal`` report it instead.

    Introduced in notebook 01."""
    from genpercept_lessons.profiles import Profile

    if not isinstance(profile, Profile):
        raise TypeError(f"check_claim: `profile` must be a Profile, got {type(profile).__name__}")
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError(f"check_claim: `claim` must be a non-empty sentence naming what is asserted, got {claim!r}")
    try:
        held = bool(held)
    except (TypeError, ValueError, RuntimeError) as err:  # e.g. a tensor or array of several elements
        raise TypeError(f"check_claim: `held` must be one truth value (a comparison's result), got "
                        f"{type(held).__name__}: {err}") from None
    if not profile.rehearsal:
        if not held:
            raise AssertionError(f"the lesson's claim did not hold: {claim}")
        return
    outcome = "held" if held else "did not hold"
    print(f"rehearsal (random-weight stand-ins), not asserted: {claim} [{outcome}]", flush=True)
    log = os.environ.get(REHEARSAL_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"claim": claim, "held": held}) + "\n")
