"""Build the mini assets: MiniScenes, the mini VAE and the mini-Marigold depth and normals pipelines.

Same as `make assets` or `python -m genpercept_lessons assets`. Assets go to $GENPERCEPT_CACHE
(default ~/.cache/genpercept_lessons); finished assets are reused, interrupted ones resume.
"""
from genpercept_lessons.mini.background import run_build

if __name__ == "__main__":
    run_build()  # holds the cache's build lock (one build at a time; the UNet processes share it)
