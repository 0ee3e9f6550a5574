"""Depth/normal encodings (Marigold's 2-98% normalisation) and the evaluation metrics."""
from __future__ import annotations

import numpy as np
import pytest

from genpercept_lessons.metrics import align_scale_shift, depth_metrics, normal_metrics
from genpercept_lessons.targets import depth_to_image, image_to_depth, image_to_normals, normalize_depth

rng = np.random.default_rng(0)


def test_normalize_depth_percentiles():
    d = np.linspace(1.0, 5.0, 100).reshape(10, 10)
    m = np.ones_like(d, dtype=bool)
    m[0, 0] = False
    out = normalize_depth(d, m)
    assert out.min() == -1.0 and out.max() == 1.0 and out[0, 0] == 1.0  # invalid -> far
    lo, hi = np.percentile(d[m], [2, 98])
    inside = (d > lo) & (d < hi) & m
    assert np.allclose(out[inside], (d[inside] - lo) / (hi - lo) * 2 - 1, atol=1e-6)
    assert depth_to_image(d, m).shape == (3, 10, 10)


def test_decoding_round_trip():
    d = rng.uniform(-1, 1, (2, 8, 8))
    assert np.allclose(image_to_depth(np.repeat(d[:, None], 3, 1)), (d + 1) / 2)
    n = rng.normal(size=(8, 8, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    assert np.allclose(image_to_normals(n.transpose(2, 0, 1)), n, atol=1e-6)


def test_align_recovers_known_affine():
    target = rng.uniform(1, 5, (3, 16, 16))
    pred = (target - 0.7) / 2.5
    mask = rng.random((3, 16, 16)) > 0.2
    aligned, s, t = align_scale_shift(pred, target, mask)
    assert np.allclose(s, 2.5) and np.allclose(t, 0.7) and np.allclose(aligned[mask], target[mask])
    assert depth_metrics(pred, target, mask)["abs_rel"] < 1e-9


def test_depth_metrics_values():
    target = np.full((1, 4, 4), 2.0)
    pred = target * np.array([1.0, 1.0, 1.5, 1.0]).reshape(1, 1, 4)  # one column 50% too far
    m = depth_metrics(pred, target, np.ones_like(target, bool), align=False)
    assert np.isclose(m["abs_rel"], 0.125) and np.isclose(m["delta1"], 0.75)


def test_constant_prediction_after_alignment():
    target = rng.uniform(1, 5, (2, 8, 8))
    _, s, t = align_scale_shift(np.ones_like(target), target, np.ones_like(target, bool))
    assert np.allclose(s, 0) and np.allclose(t, target.mean((1, 2)))


def test_normal_metrics():
    g = np.zeros((1, 2, 2, 3))
    g[..., 2] = 1
    p = g.copy()
    p[0, 0, 0] = [np.sin(np.radians(20)), 0, np.cos(np.radians(20))]
    r = normal_metrics(p, g, np.ones((1, 2, 2), bool))
    assert np.isclose(r["mean"], 5.0) and np.isclose(r["a11_25"], 75.0) and np.isclose(r["a22_5"], 100.0)


@pytest.mark.parametrize("call, match", [
    (lambda: depth_metrics(np.ones((2, 4, 4)), np.ones((2, 4, 5)), np.ones((2, 4, 4), bool)), "same shape"),
    (lambda: depth_metrics(np.ones((2, 4, 4)), np.ones((2, 4, 4)), np.ones((2, 4), bool)), "mask"),
    (lambda: depth_metrics(np.full((1, 2, 2), np.nan), np.ones((1, 2, 2)), np.ones((1, 2, 2), bool)), "NaN"),
    (lambda: normal_metrics(np.ones((2, 4, 4)), np.ones((2, 4, 4)), np.ones((2, 4), bool)), "pred"),
    (lambda: normalize_depth(np.ones((4, 4)), np.ones((4, 5), bool)), "same shape"),
    (lambda: image_to_depth(np.ones((4, 4))), r"\[\.\.\., 3, H, W\]"),
])
def test_bad_input_messages(call, match):
    with pytest.raises(ValueError, match=match):
        call()
