"""Build the mini assets: MiniScenes, the mini VAE and the mini-Marigold depth and normals pipelines.

Same as `make assets` or `python -m genpercept_lessons assets`. Assets go to $GENPERCEPT_CACHE
(default ~/.cache/genpercept_lessons); finished assets are reused, interrupted ones resume.
"""
from genpercept_lessons.mini.build import build_mini_assets

if __name__ == "__main__":
    build_mini_assets()
