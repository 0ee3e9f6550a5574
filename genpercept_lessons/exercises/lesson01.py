"""Lesson 01 exercises: RGB -> latent, and the decoded 3-channel image -> depth in [0, 1]."""
from __future__ import annotations

from . import FunctionExercise
from ._fixtures import rng_arrays, tiny_vae

__all__ = ["q1", "q2"]


def _encode_cases():
    import torch

    (x,) = rng_arrays(1, (2, 3, 16, 16), low=-1, high=1)
    return [((tiny_vae(), torch.tensor(x, dtype=torch.float32)), "2 random images of 16×16 and a VAE with "
                                                                  "scaling factor 0.5")]


def _encode_reference(vae, x):
    import torch

    with torch.no_grad():
        return vae.encode(x).latent_dist.mode() * vae.config.scaling_factor


def _depth_cases():
    import torch

    (a,) = rng_arrays(2, (3, 3, 8, 8), low=-1.5, high=1.5)  # some values outside [-1, 1]
    return [((torch.tensor(a, dtype=torch.float32),), "3 decoded images [3,3,8,8] with values in [-1.5, 1.5]")]


def _depth_reference(image):
    return (image.mean(1).clamp(-1, 1) + 1) / 2


q1 = FunctionExercise(
    title="Exercise 1 (implement it yourself): RGB image -> scaled latent",
    hints=["The VAE's encoder gives a distribution: `vae.encode(x).latent_dist`. Marigold uses its mean (`.mode()`).",
           "Multiply by `vae.config.scaling_factor` so the latents have unit variance, as the UNet was trained."],
    solution_code="""
        def encode_to_latent(vae, x):
            with torch.no_grad():
                return vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
    """,
    reference=_encode_reference, cases=_encode_cases)

q2 = FunctionExercise(
    title="Exercise 2 (implement it yourself): decoded image -> depth in [0, 1]",
    hints=["The depth VAE decodes a 3-channel image; Marigold averages the channels (dimension 1).",
           "Clip to [-1, 1] before mapping to [0, 1] with (d + 1) / 2."],
    solution_code="""
        def decoded_to_depth(image):
            return (image.mean(dim=1).clamp(-1, 1) + 1) / 2
    """,
    reference=_depth_reference, cases=_depth_cases)
