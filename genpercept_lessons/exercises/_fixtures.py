"""Small deterministic inputs for the checkers: tiny random networks and arrays (built on demand, cached)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["tiny_vae", "tiny_unet", "rng_arrays", "ddim_scheduler"]


@lru_cache(maxsize=1)
def tiny_vae():
    """A random ×2 AutoencoderKL with scaling factor 0.5 (frozen)."""
    import torch

    from genpercept_lessons.mini.components import make_vae

    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = make_vae((8, 8), sample_size=16)
    vae.register_to_config(scaling_factor=0.5)
    return vae.eval().requires_grad_(False)


@lru_cache(maxsize=1)
def tiny_unet():
    """A random 8-channel UNet (cross-attention width 32)."""
    import torch

    from genpercept_lessons.mini.components import make_unet

    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = make_unet((32, 32), cross_attention_dim=32, sample_size=8)
    return unet.eval().requires_grad_(False)


@lru_cache(maxsize=1)
def ddim_scheduler():
    """Marigold v1-0's DDIM scheduler (leading spacing)."""
    from genpercept_lessons.mini.components import make_scheduler

    return make_scheduler()


def rng_arrays(seed: int, *shapes, low: float = 0.0, high: float = 1.0):
    """Uniform float64 arrays of the given shapes from a seeded generator."""
    g = np.random.default_rng(seed)
    return [g.uniform(low, high, s) for s in shapes]
