"""Lesson 08 exercises: AbsRel of a disparity model, aligned in disparity space, per image."""
from __future__ import annotations

import numpy as np

from . import FunctionExercise
from ._fixtures import rng_arrays

__all__ = ["q1"]


def _disparity_abs_rel_reference(pred_disp, depth, mask):
    from genpercept_lessons.metrics import align_scale_shift, depth_metrics

    fit, _, _ = align_scale_shift(pred_disp, np.where(mask, 1 / np.maximum(depth, 1e-6), 0.0), mask)
    return depth_metrics(1 / np.maximum(fit, 1e-6), depth, mask, align=False)["abs_rel"]


def _disparity_cases():
    depth, noise = rng_arrays(17, (3, 8, 8), (3, 8, 8), low=1.0, high=6.0)
    mask = np.random.default_rng(18).uniform(size=(3, 8, 8)) > 0.2
    mask[2, 2:] = False  # one image with few valid pixels: averaging per image differs from pooling
    scale = np.array([0.5, 2.0, 1.3])[:, None, None]
    pred = scale / depth + 0.1 + 0.02 * (noise - 3.5) / 2.5  # a disparity model: 1/depth up to scale, shift, noise
    return [((pred, depth, mask), "3 disparity maps [3,8,8], each off by its own scale and shift, with some noise")]


q1 = FunctionExercise(
    title="Exercise 1 (transfer): AbsRel of a disparity model, aligned in disparity space (per image, then averaged)",
    hints=["Per image, fit s·pred + t to the ground-truth disparity 1/depth by least squares over the valid pixels.",
           "Invert the fitted disparity (clamp it at 1e-6 first) to get depth, then AbsRel = mean |d̂ − d| / d over the "
           "valid pixels of that image.",
           "Average the per-image AbsRel over the images (not over all pixels pooled)."],
    solution_code="""
        def disparity_abs_rel(pred_disp, depth, mask):
            scores = []
            for p, d, m in zip(pred_disp, depth, mask):
                a = np.stack([p[m], np.ones(int(m.sum()))], 1)
                s, t = np.linalg.lstsq(a, 1 / d[m], rcond=None)[0]
                fit = 1 / np.maximum(s * p[m] + t, 1e-6)
                scores.append(np.mean(np.abs(fit - d[m]) / d[m]))
            return float(np.mean(scores))
    """,
    reference=_disparity_abs_rel_reference, cases=_disparity_cases)
