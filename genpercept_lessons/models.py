"""Loading Marigold for a profile: the mini pipelines from the asset cache, or released checkpoints by hub id."""
from __future__ import annotations

from pathlib import Path

from .profiles import Profile, get_profile

__all__ = ["TASKS", "load_marigold"]

TASKS = ("depth", "normals")


def _hub_error(location: str, err: Exception) -> RuntimeError:
    return RuntimeError(
        f"Could not load '{location}': it is not a local folder and the Hugging Face Hub could not provide it "
        f"({type(err).__name__}: {str(err).splitlines()[0][:200]}).\n"
        "What to do: (1) on a machine with internet, run `hf download "
        f"{location}` once (or unset HF_HUB_OFFLINE); (2) or point the profile at a local copy: "
        "get_profile('full', depth_model='/path/to/folder'); (3) or use the offline mini profile: "
        "get_profile('mini') / GENPERCEPT_PROFILE=mini."
    )


def load_marigold(profile: Profile | str | None = None, task: str = "depth", progress_bar: bool = False):
    """The diffusers ``MarigoldDepthPipeline`` / ``MarigoldNormalsPipeline`` of ``profile`` on its device. Introduced in notebook 01.

    Mini profile: the pipeline folder in the asset cache (built on first use, ~15 min; or run `make assets`).
    Full profile: a hub id such as ``prs-eth/marigold-depth-v1-0`` or a local folder in the same layout.
    """
    import torch
    from diffusers import MarigoldDepthPipeline, MarigoldNormalsPipeline

    if profile is None or isinstance(profile, str):
        profile = get_profile(profile)
    if not isinstance(profile, Profile):
        raise TypeError(f"load_marigold: `profile` must be a Profile, a profile name or None, got {type(profile).__name__}")
    if task not in TASKS:
        raise ValueError(f"load_marigold: `task` must be one of {TASKS}, got {task!r}")
    location = profile.depth_model if task == "depth" else profile.normals_model
    cls = MarigoldDepthPipeline if task == "depth" else MarigoldNormalsPipeline
    if profile.is_mini:
        from .assets import is_complete

        if not is_complete(location, check_hashes=False):
            from .build import build_mini_assets

            print("The mini-Marigold models are not built yet: building them now (about 15 minutes on 2 CPU cores; "
                  "`make assets` does the same from a terminal).")
            build_mini_assets()
    dtype = getattr(torch, profile.dtype)
    if Path(location).is_dir():
        pipe = cls.from_pretrained(location, dtype=dtype)
    else:
        if location.startswith(("/", ".", "~")) or location.count("/") != 1:
            raise FileNotFoundError(f"load_marigold: model folder '{location}' does not exist (and it is not a hub id "
                                    "of the form 'owner/name')")
        try:
            pipe = cls.from_pretrained(location, dtype=dtype)
        except (OSError, ValueError) as err:  # offline, unknown id, gated repo, network down
            raise _hub_error(location, err) from None
    pipe = pipe.to(profile.device)
    pipe.set_progress_bar_config(disable=not progress_bar)
    return pipe
