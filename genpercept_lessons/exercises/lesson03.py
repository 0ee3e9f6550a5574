"""Lesson 03 exercises: trailing timesteps, δ1, the zero-terminal-SNR rescale, and the scale-only ensembling objective."""
from __future__ import annotations

import numpy as np

from . import FunctionExercise
from ._fixtures import ddim_scheduler, rng_arrays

__all__ = ["q1", "q2", "q3", "q4"]


def _trailing_reference(num_steps):
    from genpercept_lessons.noise_schedules import timesteps

    return timesteps(ddim_scheduler(), "trailing", num_steps)


def _delta1_reference(pred, target, mask):
    out = []
    for p, g, m in zip(pred, target, mask):
        ratio = np.maximum(p[m] / g[m], g[m] / p[m])
        out.append(np.mean(ratio < 1.25))
    return float(np.mean(out))


def _delta1_cases():
    g = np.random.default_rng(3)
    target, noise = rng_arrays(4, (3, 8, 8), (3, 8, 8), low=1, high=5)
    pred = target * np.exp(g.normal(0, 0.2, target.shape))
    mask = g.uniform(size=target.shape) > 0.3
    mask[2, :4] = False  # images with different numbers of valid pixels: per-image means differ from pooling
    return [((pred, target, mask), "3 images of 8×8 with different valid masks")]


q1 = FunctionExercise(
    title="Exercise 1 (implement it yourself): the timesteps of 'trailing' spacing",
    hints=["Trailing counts down from T: step ratio r = T / n (a float), timesteps T, T − r, T − 2r, … rounded.",
           "diffusers: `np.round(np.arange(T, 0, -T / n)).astype(int) - 1`.",
           "For n = 1 you should get [999]."],
    solution_code="""
        def trailing_timesteps(num_steps, num_train_timesteps=1000):
            ratio = num_train_timesteps / num_steps
            return [int(t) - 1 for t in np.round(np.arange(num_train_timesteps, 0, -ratio))]
    """,
    reference=_trailing_reference,
    cases=lambda: [((n,), f"num_steps={n}") for n in (1, 2, 3, 4, 7, 10, 50)], rtol=0, atol=0)

q2 = FunctionExercise(
    title="Exercise 2 (implement it yourself): δ1, per image then averaged",
    hints=["For each valid pixel, r = max(pred/target, target/pred); δ1 is the share of pixels with r < 1.25.",
           "Compute it per image over that image's valid pixels, then average over images (Marigold's protocol)."],
    solution_code="""
        def delta1(pred, target, mask):
            scores = []
            for p, g, m in zip(pred, target, mask):
                ratio = np.maximum(p[m] / g[m], g[m] / p[m])
                scores.append(np.mean(ratio < 1.25))
            return float(np.mean(scores))
    """,
    reference=_delta1_reference, cases=_delta1_cases)


def _rescale_reference(betas):
    from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr

    return rescale_zero_terminal_snr(betas.clone())


def _rescale_cases():
    import torch

    sd = ddim_scheduler().betas.clone().double()  # SD2's scaled_linear schedule, as Marigold uses it
    linear = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)  # DDPM's schedule (Ho et al.)
    return [((sd,), "Stable Diffusion's 1000 scaled_linear betas"), ((linear,), "DDPM's linear betas 1e-4 … 0.02")]


def _rescaled_schedule_is_zero_snr(func):
    """The point of the exercise, checked directly: ᾱ_T = 0 and √ᾱ₀ unchanged."""
    import torch

    from . import NOT_ATTEMPTED, _contains_placeholder

    new = func(ddim_scheduler().betas.clone().double())
    if _contains_placeholder(new):
        return NOT_ATTEMPTED
    a_bar = torch.cumprod(1 - torch.as_tensor(new, dtype=torch.float64), 0)
    if abs(float(a_bar[-1])) > 1e-12:
        return f"the values are close, but ᾱ_T = {float(a_bar[-1]):.3g}: the last ᾱ must be exactly 0"
    return None


q3 = FunctionExercise(
    title="Exercise 3 (implement it yourself): rescale a schedule to zero terminal SNR (Lin et al., Algorithm 1)",
    hints=["Work with √ᾱ_t = sqrt(cumprod(1 − β)). Keep its first value a₀ and its last value a_T.",
           "Shift so the last one is 0 (subtract a_T), then scale so the first is a₀ again (× a₀ / (a₀ − a_T)).",
           "Back to betas: ᾱ = (√ᾱ)², α_t = ᾱ_t / ᾱ_{t−1} with α₀ = ᾱ₀, and β = 1 − α."],
    solution_code="""
        def rescale_zero_terminal_snr(betas):
            root = torch.cumprod(1 - betas, 0).sqrt()
            a0, aT = root[0].clone(), root[-1].clone()
            root = (root - aT) * a0 / (a0 - aT)
            a_bar = root ** 2
            alphas = torch.cat([a_bar[:1], a_bar[1:] / a_bar[:-1]])
            return 1 - alphas
    """,
    reference=_rescale_reference, cases=_rescale_cases, rtol=1e-6, atol=1e-9, also=_rescaled_schedule_is_zero_snr)


def _scale_only_cost_reference(scales, members, lam=0.02):
    """Marigold's eq. 4 for scale-only members (diffusers ``ensemble_depth(scale_invariant=True, shift_invariant=False)``)."""
    aligned = np.asarray(members, dtype=np.float64) * np.asarray(scales, dtype=np.float64)[:, None, None, None]
    e = len(aligned)
    cost = sum(np.sqrt(np.mean((aligned[i] - aligned[j]) ** 2)) for i in range(e) for j in range(i + 1, e))
    m = np.median(aligned, axis=0)
    return float(cost + lam * (abs(m.min()) + abs(1 - m.max())))


def _scale_only_cases():
    (d,) = rng_arrays(19, (5, 1, 8, 8), low=0.1, high=0.9)
    return [((np.ones(5), d), "5 members [5,1,8,8], all scales 1"),
            ((np.array([1.2, 0.8, 1.0, 2.0, 0.5]), d), "the same members with 5 different scales"),
            ((np.array([0.3, 0.3, 0.3, 0.3, 0.3]), d[::-1].copy()), "scales 0.3: the median map far from [0, 1]")]


q4 = FunctionExercise(
    title="Exercise 4 (transfer): the ensembling objective for scale-only predictions (no shift)",
    hints=["Align: member i times its scale sᵢ (no shift term). Broadcast scales[:, None, None, None].",
           "Sum, over all pairs i < j, the RMSE between aligned members i and j (a square root per pair).",
           "Add λ · (|min m| + |1 − max m|) with m the pixel-wise *median* of the aligned members, λ = 0.02."],
    solution_code="""
        def scale_only_cost(scales, members):
            aligned = members * np.asarray(scales)[:, None, None, None]
            e = len(aligned)
            cost = sum(np.sqrt(np.mean((aligned[i] - aligned[j]) ** 2)) for i in range(e) for j in range(i + 1, e))
            m = np.median(aligned, axis=0)
            return float(cost + 0.02 * (abs(m.min()) + abs(1 - m.max())))
    """,
    reference=_scale_only_cost_reference, cases=_scale_only_cases, rtol=1e-6, atol=1e-9)
