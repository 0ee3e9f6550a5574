"""Lesson 04 exercises: ε̂ from v, the direct weight of the start noise at t = 999, the MSE-optimal guess on an ambiguous pixel."""
from __future__ import annotations

from . import FunctionExercise, ValueExercise
from ._fixtures import ddim_scheduler, rng_arrays

__all__ = ["q1", "q2", "q3"]


def _eps_reference(z, v, alpha_bar):
    return (1 - alpha_bar) ** 0.5 * z + alpha_bar ** 0.5 * v


def _eps_cases():
    z, v = rng_arrays(5, (2, 4, 4, 4), (2, 4, 4, 4), low=-2, high=2)
    return [((z, v, a), f"random z and v, ᾱ = {a}") for a in (0.0047, 0.5, 0.9983)]


q1 = FunctionExercise(
    title="Exercise 1 (implement it yourself): the noise estimate ε̂ from the UNet's v",
    hints=["v = √ᾱ·ε − √(1−ᾱ)·x0 and z = √ᾱ·x0 + √(1−ᾱ)·ε; section 1 eliminated ε to get x̂0, now eliminate x0.",
           "Multiply the first by √ᾱ, the second by √(1−ᾱ), and add: x0 cancels and ᾱ + (1−ᾱ) = 1 is left in front of ε.",
           "DDIM needs both halves: z_prev = √ᾱ_prev·x̂0 + √(1−ᾱ_prev)·ε̂ (lesson 02)."],
    solution_code="""
        def eps_from_v(z, v, alpha_bar):
            return (1 - alpha_bar) ** 0.5 * z + alpha_bar ** 0.5 * v
    """,
    reference=_eps_reference, cases=_eps_cases)

q2 = ValueExercise(
    title="Exercise 2: the weight √ᾱ_999 of the input latent z in x̂0 at t = 999",
    hints=["It is the coefficient of z in x̂0 = √ᾱ·z − √(1−ᾱ)·v̂.",
           "`float(pipe.scheduler.alphas_cumprod[999]) ** 0.5`"],
    solution_code="""
        weight = float(pipe.scheduler.alphas_cumprod[999]) ** 0.5   # ≈ 0.068; z also reaches x̂0 through v̂
    """,
    expected=lambda: float(ddim_scheduler().alphas_cumprod[999]) ** 0.5, rtol=1e-3)


q3 = ValueExercise(
    title="Exercise 3: what an MSE-trained one-step model predicts where the depth is ambiguous",
    hints=["Under a squared error the best single guess is the conditional mean: Σ probability × depth.",
           "0.3 · 2 m + 0.7 · 5 m. Compare it with both possible depths."],
    solution_code="""
        prediction = 0.3 * 2.0 + 0.7 * 5.0   # 4.1 m: a depth at which there is nothing (the median, 5 m, would be L1's)
    """,
    expected=lambda: 0.3 * 2.0 + 0.7 * 5.0, rtol=1e-3)
