"""Lesson 06 exercises: the clamped angular loss, and the pooled mean angular error."""
from __future__ import annotations

import numpy as np

from . import FunctionExercise
from ._fixtures import rng_arrays

__all__ = ["q1", "q2"]


def _normals(seed, shape):
    (n,) = rng_arrays(seed, shape, low=-1, high=1)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _loss_reference(pred, target, mask):
    from genpercept_lessons.losses import angular_loss

    return angular_loss(pred, target, mask)


def _loss_cases():
    import torch

    p, g = _normals(9, (2, 3, 6, 6)), _normals(10, (2, 3, 6, 6))
    g[0, :, 0, 0] = p[0, :, 0, 0]  # a perfect pixel: the clamp matters
    m = np.random.default_rng(11).uniform(size=(2, 6, 6)) > 0.3
    m[0, 0, 0] = True
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    lengths = np.random.default_rng(14).uniform(0.3, 3.0, (2, 1, 6, 6))  # a network's raw output is not unit length
    return [((t(p), t(g), torch.tensor(m)), "2 random unit normal maps [2,3,6,6] with a mask"),
            ((t(p * lengths), t(g), torch.tensor(m)), "the same prediction with random vector lengths in [0.3, 3]")]


def _loss_gradient_is_finite(func):
    """At a pixel where prediction and target agree, arccos has an infinite slope unless the cosine is clamped."""
    import torch

    m = torch.ones(1, 2, 2, dtype=torch.bool)
    g = torch.nn.functional.normalize(torch.tensor([[[[1.0, 0.2], [0.1, 0.0]], [[0.0, 0.5], [0.3, 0.0]],
                                                     [[0.0, 1.0], [1.0, 1.0]]]]), dim=1)
    pred = g.clone().requires_grad_(True)  # a perfect prediction
    loss = func(pred, g, m)
    if not getattr(loss, "requires_grad", False):
        return "the values are right, but your loss carries no gradient (torch.no_grad() or .detach()?)"
    loss.backward()
    if pred.grad is None or not torch.isfinite(pred.grad).all():
        return ("the values are right, but at a perfect pixel the gradient is NaN or inf: clamp the cosine to "
                "[-1 + 1e-6, 1 - 1e-6] before arccos")
    return None


def _pooled_reference(pred, target, mask):
    from genpercept_lessons.metrics import normal_metrics

    return normal_metrics(pred, target, mask)["mean"]


def _pooled_cases():
    p, g = _normals(12, (2, 3, 6, 6)).transpose(0, 2, 3, 1), _normals(13, (2, 3, 6, 6)).transpose(0, 2, 3, 1)
    m = np.ones((2, 6, 6), bool)
    m[1, 1:] = False  # very unequal valid counts: pooling differs from averaging per image
    lengths = np.random.default_rng(15).uniform(0.3, 3.0, (2, 6, 6, 1))
    return [((p, g, m), "2 normal maps [2,6,6,3]; the second has only 6 valid pixels"),
            ((p * lengths, g, m), "the same with predicted vectors of random length (normalise them first)")]


q1 = FunctionExercise(
    title="Exercise 1 (implement it yourself): the angular loss (radians) with the cosine clamped",
    hints=["Normalise pred along the channel dimension (dim=1), then cos = (p·g) summed over dim=1.",
           "Clamp cos to [-1 + 1e-6, 1 - 1e-6] before torch.arccos, then average over the valid pixels only."],
    solution_code="""
        def angular_loss(pred, target, mask):
            p = torch.nn.functional.normalize(pred, dim=1)
            cos = (p * target).sum(1).clamp(-1 + 1e-6, 1 - 1e-6)
            return torch.arccos(cos)[mask].mean()
    """,
    reference=_loss_reference, cases=_loss_cases, rtol=1e-4, atol=1e-5, also=_loss_gradient_is_finite)

q2 = FunctionExercise(
    title="Exercise 2 (implement it yourself): mean angular error in degrees, pooled over all valid pixels",
    hints=["Take pred[mask] and target[mask]: arrays [K, 3] with every valid pixel of every image.",
           "Angle = degrees(arccos(clip(p̂·ĝ, -1, 1))); return its mean over the K pixels (not per image)."],
    solution_code="""
        def pooled_mean_angle(pred, target, mask):
            p, g = pred[mask], target[mask]
            p = p / np.linalg.norm(p, axis=1, keepdims=True)
            g = g / np.linalg.norm(g, axis=1, keepdims=True)
            return float(np.degrees(np.arccos(np.clip((p * g).sum(1), -1, 1))).mean())
    """,
    reference=_pooled_reference, cases=_pooled_cases)
