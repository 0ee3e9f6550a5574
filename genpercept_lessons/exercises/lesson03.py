"""Lesson 03 exercises: trailing timesteps from the formula, and the δ1 accuracy."""
from __future__ import annotations

import numpy as np

from . import FunctionExercise
from ._fixtures import ddim_scheduler, rng_arrays

__all__ = ["q1", "q2"]


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
    cases=lambda: [((n,), f"num_steps={n}") for n in (1, 2, 4, 10, 50)], rtol=0, atol=0)

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
