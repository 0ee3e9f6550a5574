"""Lesson 04 exercises: x̂0 from v, and the weight of the input noise at t = 999."""
from __future__ import annotations

from . import FunctionExercise, ValueExercise
from ._fixtures import ddim_scheduler, rng_arrays

__all__ = ["q1", "q2"]


def _x0_reference(z, v, alpha_bar):
    return alpha_bar ** 0.5 * z - (1 - alpha_bar) ** 0.5 * v


def _x0_cases():
    z, v = rng_arrays(5, (2, 4, 4, 4), (2, 4, 4, 4), low=-2, high=2)
    return [((z, v, a), f"random z and v, ᾱ = {a}") for a in (0.0047, 0.5, 0.9983)]


q1 = FunctionExercise(
    title="Exercise 1 (implement it yourself): x̂0 from the UNet's v",
    hints=["v = √ᾱ·ε − √(1−ᾱ)·x0 and z = √ᾱ·x0 + √(1−ᾱ)·ε.",
           "Multiply the first by −√(1−ᾱ), the second by √ᾱ, and add: ε cancels."],
    solution_code="""
        def x0_from_v(z, v, alpha_bar):
            return alpha_bar ** 0.5 * z - (1 - alpha_bar) ** 0.5 * v
    """,
    reference=_x0_reference, cases=_x0_cases)

q2 = ValueExercise(
    title="Exercise 2: the weight √ᾱ_999 of the input latent z in x̂0 at t = 999",
    hints=["It is the coefficient of z in x̂0 = √ᾱ·z − √(1−ᾱ)·v̂.",
           "`float(pipe.scheduler.alphas_cumprod[999]) ** 0.5`"],
    solution_code="""
        weight = float(pipe.scheduler.alphas_cumprod[999]) ** 0.5   # ≈ 0.068: the noise hardly matters
    """,
    expected=lambda: float(ddim_scheduler().alphas_cumprod[999]) ** 0.5, rtol=1e-3)
