"""Claims that need the real weights, in the full profile's CPU rehearsal: reported as skipped, never silently passed.

A lesson asserts what it teaches: ``assert err_leading > 3 * err_trailing or rehearsal_skip(profile, "...")``. In the
mini and full profiles ``rehearsal_skip`` returns False, so the assert is a plain assert. In the rehearsal
(``profile.rehearsal``: random-weight stand-ins of the real checkpoints, see ``course/rehearsal.py``) a claim that does
not hold is printed as "skipped for rehearsal" and appended to ``$GENPERCEPT_REHEARSAL_LOG``, so the rehearsal's report
lists every claim it could not check. Asserts about the code itself (the open loop equals the library's, shapes,
conventions) stay plain asserts: the rehearsal checks them for real.
"""
from __future__ import annotations

import json
import os

__all__ = ["REHEARSAL_LOG_ENV", "rehearsal_skip"]

REHEARSAL_LOG_ENV = "GENPERCEPT_REHEARSAL_LOG"


def rehearsal_skip(profile, claim: str) -> bool:
    """False unless ``profile.rehearsal``; then print and log ``claim`` as skipped and return True. Introduced in notebook 02."""
    from genpercept_lessons.profiles import Profile

    if not isinstance(profile, Profile):
        raise TypeError(f"rehearsal_skip: `profile` must be a Profile, got {type(profile).__name__}")
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError(f"rehearsal_skip: `claim` must be a non-empty sentence naming what is asserted, got {claim!r}")
    if not profile.rehearsal:
        return False
    print(f"skipped for rehearsal (random-weight stand-ins): {claim}", flush=True)
    log = os.environ.get(REHEARSAL_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"claim": claim}) + "\n")
    return True
