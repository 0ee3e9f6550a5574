"""Evaluate a Marigold pipeline on scenes in the course schema: predict, then score with the papers' metrics."""
from __future__ import annotations

import time

import numpy as np

from genpercept_lessons.inference import predict
from genpercept_lessons.metrics import depth_metrics_per_image, normal_errors_per_image, normal_metrics
from genpercept_lessons.protocols import EvalProtocol, evaluation_mask, get_protocol
from genpercept_lessons.tasks import pipeline_task

__all__ = ["evaluate"]


def evaluate(pipe, scenes, n: int | None = None, seed: int = 0, batch_size: int | None = None,
             protocol: str | EvalProtocol = "miniscenes", **predict_kwargs) -> dict:
    """Metrics of ``predict(pipe, ...)`` on the first ``n`` rows of ``scenes`` plus wall time and the predictions.

    Depth: LS-aligned AbsRel, δ1… per image, averaged; normals: angular errors pooled over pixels. ``predict_kwargs``
    are ``predict``'s (steps, spacing, noise, ensemble, …); Gaussian noise comes from a generator seeded with ``seed``.
    ``protocol`` (a name in ``protocols.PROTOCOLS``) sets the crop, the GT depth range and the clipping range
    (Marigold's per-dataset evaluation, notebook 08); normals are scored inside the crop where the GT normal is known
    (non-zero). Returns {"metrics": {...}, "per_image": {...}, "seconds": float, "prediction": array}, where
    ``per_image`` holds [n] arrays for paired comparisons (depth: every metric; normals: "mean" angle per image).
    Introduced in notebook 02.
    """
    import torch

    n = len(scenes) if n is None else n
    if not isinstance(n, int) or not 1 <= n <= len(scenes):
        raise ValueError(f"evaluate: `n` must be an int in [1, {len(scenes)}], got {n!r}")
    protocol = get_protocol(protocol)
    rows = scenes[:n]
    task = pipeline_task(pipe)
    # masks first, so that an unknown protocol or a crop that does not fit fails before the slow prediction
    if task == "depth":
        mask = evaluation_mask(protocol, rows["mask"], rows["depth"])
    else:
        known = np.abs(np.asarray(rows["normals"])).sum(-1) > 0  # the schema's zero vector = unknown normal
        mask = evaluation_mask(protocol, rows["mask"]) & known
    generator = None if predict_kwargs.get("noise") == "zeros" or "latents" in predict_kwargs \
        else torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    pred = predict(pipe, rows["image"], generator=generator, batch_size=batch_size, **predict_kwargs)
    seconds = time.perf_counter() - t0
    if task == "depth":
        per_image = depth_metrics_per_image(pred, rows["depth"], mask, min_depth=protocol.min_depth,
                                            max_depth=protocol.max_depth)
        metrics = {k: float(np.mean(v)) for k, v in per_image.items()}
    else:
        metrics = normal_metrics(pred, rows["normals"], mask)
        per_image = {"mean": normal_errors_per_image(pred, rows["normals"], mask)}
    return {"metrics": metrics, "per_image": per_image, "seconds": seconds, "prediction": pred}
