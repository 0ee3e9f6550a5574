"""genpercept_lessons: the helper library of the GenPercept Lessons course.

The three entry points the notebooks start from are importable from the package itself:
``get_profile``, ``load_miniscenes`` and ``load_marigold``. Importing has no side effects.
"""
from __future__ import annotations

from genpercept_lessons.profiles import Profile, get_profile

__all__ = ["Profile", "get_profile", "load_miniscenes", "load_marigold", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # heavy entry points (datasets, torch, diffusers) are imported on first use, keeping `import` fast
    if name == "load_miniscenes":
        from genpercept_lessons.mini.miniscenes import load_miniscenes

        return load_miniscenes
    if name == "load_marigold":
        from genpercept_lessons.models import load_marigold

        return load_marigold
    raise AttributeError(f"module 'genpercept_lessons' has no attribute {name!r}")
