"""Lesson 02 exercises: leading timesteps from the formula, and ᾱ at t = 1."""
from __future__ import annotations

from . import FunctionExercise, ValueExercise
from ._fixtures import ddim_scheduler

__all__ = ["q1", "q2"]


def _leading_reference(num_steps):
    from genpercept_lessons.noise_schedules import timesteps

    return timesteps(ddim_scheduler(), "leading", num_steps)


q1 = FunctionExercise(
    title="Exercise 1 (implement it yourself): the timesteps of 'leading' spacing",
    hints=["diffusers' leading spacing: step ratio r = T // n (T = 1000), timesteps 0, r, 2r, … (n of them).",
           "Then reverse them (largest first) and add `steps_offset` = 1 (Marigold v1-0's config).",
           "For n = 1 you should get [1]: the bug of lesson 02."],
    solution_code="""
        def leading_timesteps(num_steps, num_train_timesteps=1000, steps_offset=1):
            ratio = num_train_timesteps // num_steps
            return [i * ratio + steps_offset for i in reversed(range(num_steps))]
    """,
    reference=_leading_reference,
    cases=lambda: [((n,), f"num_steps={n}") for n in (1, 2, 4, 10, 50)], rtol=0, atol=0)

q2 = ValueExercise(
    title="Exercise 2: ᾱ at t = 1 (how much signal the UNet expects when told t = 1)",
    hints=["`scheduler.alphas_cumprod` holds ᾱ_t for t = 0 … 999.",
           "Index it at 1 and convert with float(...)."],
    solution_code="""
        alpha_bar_1 = float(pipe.scheduler.alphas_cumprod[1])   # ≈ 0.9983: the UNet expects an almost clean latent
    """,
    expected=lambda: float(ddim_scheduler().alphas_cumprod[1]), rtol=1e-4)
