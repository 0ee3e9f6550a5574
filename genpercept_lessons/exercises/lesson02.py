"""Lesson 02 exercises: leading timesteps from the formula, ᾱ at t = 1, and a DDIM step of an ε-prediction model."""
from __future__ import annotations

from . import FunctionExercise, ValueExercise
from ._fixtures import ddim_scheduler

__all__ = ["q1", "q2", "q3"]


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
    cases=lambda: [((n,), f"num_steps={n}") for n in (1, 2, 3, 4, 7, 10, 50)], rtol=0, atol=0)

q2 = ValueExercise(
    title="Exercise 2: ᾱ at t = 1 (how much signal the UNet expects when told t = 1)",
    hints=["`scheduler.alphas_cumprod` holds ᾱ_t for t = 0 … 999.",
           "Index it at 1 and convert with float(...)."],
    solution_code="""
        alpha_bar_1 = float(pipe.scheduler.alphas_cumprod[1])   # ≈ 0.9983: the UNet expects an almost clean latent
    """,
    expected=lambda: float(ddim_scheduler().alphas_cumprod[1]), rtol=1e-4)


def _epsilon_step_reference(eps, t, x_t, num_steps, alphas_cumprod, set_alpha_to_one):
    import torch
    from diffusers import DDIMScheduler

    s = DDIMScheduler.from_config(ddim_scheduler().config, prediction_type="epsilon", set_alpha_to_one=set_alpha_to_one)
    s.set_timesteps(num_steps)
    out = s.step(torch.as_tensor(eps), t, torch.as_tensor(x_t))
    return out.prev_sample, out.pred_original_sample


def _epsilon_step_cases():
    import torch

    from genpercept_lessons.noise_schedules import timesteps

    g = torch.Generator().manual_seed(3)
    eps, x_t = torch.randn(2, 4, 4, 4, generator=g), torch.randn(2, 4, 4, 4, generator=g)
    cases = []
    for spacing, n, one in (("trailing", 1, False), ("trailing", 4, False), ("trailing", 3, False),
                            ("leading", 7, False), ("trailing", 4, True)):
        ts = timesteps(ddim_scheduler(), spacing, n)
        for t in ts if n in (3, 7) else ts[:1] + ts[-1:] if n > 1 else ts:  # the last one has prev_t < 0
            a = ddim_scheduler().alphas_cumprod
            cases.append(((eps, t, x_t, n, a, one), f"{spacing} {n} steps, t = {t}, set_alpha_to_one={one}"))
    return cases


q3 = FunctionExercise(
    title="Exercise 3 (transfer): one DDIM step of an ε-prediction model (Stable Diffusion 1.x's parameterisation)",
    hints=["x̂₀ = (x_t − √(1−ᾱ_t)·ε̂) / √ᾱ_t: the formula for x_t solved for x₀.",
           "prev_t = t − 1000 // num_steps, exactly as diffusers computes it, even where 1000 is not divisible by "
           "num_steps (then prev_t is not always the next timestep of the schedule).",
           "When prev_t < 0 there is no ᾱ[prev_t]: use 1.0 if set_alpha_to_one, else ᾱ[0].",
           "x_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev)·ε̂; return the tuple (x_prev, x̂₀)."],
    solution_code="""
        def ddim_step_epsilon(eps, t, x_t, num_steps, alphas_cumprod, set_alpha_to_one):
            prev_t = t - 1000 // num_steps
            a_t = alphas_cumprod[t]
            a_prev = alphas_cumprod[prev_t] if prev_t >= 0 else (1.0 if set_alpha_to_one else alphas_cumprod[0])
            x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
            return a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps, x0
    """,
    reference=_epsilon_step_reference, cases=_epsilon_step_cases, rtol=1e-4, atol=1e-5)
