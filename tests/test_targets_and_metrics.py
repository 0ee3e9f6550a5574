"""Depth/normal encodings (Marigold's 2-98% normalisation) and the evaluation metrics."""
from __future__ import annotations

import numpy as np
import pytest

from genpercept_lessons.metrics import (
    align_scale_shift,
    depth_metrics,
    depth_metrics_per_image,
    normal_errors_per_image,
    normal_metrics,
)
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


# ---------------------------------------------------------------------------------------------------------------
# the metrics against a per-image reference, on the cases where the plausible wrong implementations differ

def _ref_depth_metrics(pred, target, mask, min_depth=1e-3, max_depth=None):
    """Marigold's protocol image by image: lstsq fit on the valid pixels only, clip, metrics; then the image mean."""
    rows = []
    for p, g, m in zip(pred, target, mask):
        m = m & (g > min_depth)
        a = np.stack([p[m], np.ones(m.sum())], 1)
        (s, t), *_ = np.linalg.lstsq(a, g[m], rcond=None)
        q = np.clip(s * p[m] + t, min_depth, max_depth)
        ratio = np.maximum(q / g[m], g[m] / q)
        rows.append([np.mean(np.abs(q - g[m]) / g[m]), np.mean(ratio < 1.25), np.mean(ratio < 1.25 ** 2),
                     np.mean(ratio < 1.25 ** 3), np.sqrt(np.mean((q - g[m]) ** 2))])
    return dict(zip(("abs_rel", "delta1", "delta2", "delta3", "rmse"), np.mean(rows, axis=0)))


def _unequal_masks_with_garbage():
    """Two images: a noisy affine prediction on 200 vs 12 valid pixels, wild values outside the masks."""
    r = np.random.default_rng(7)
    target = r.uniform(1, 6, (2, 16, 16))
    pred = (target - 0.5) / 3.0 + r.normal(0, 0.15, target.shape)
    mask = np.zeros((2, 16, 16), bool)
    mask[0].flat[r.choice(256, 200, replace=False)] = True
    mask[1].flat[r.choice(256, 12, replace=False)] = True
    pred[~mask] = r.uniform(-50, 50, (~mask).sum())  # garbage: only the valid pixels may enter the fit
    target[~mask] = r.uniform(0, 100, (~mask).sum())
    return pred, target, mask


def test_depth_metrics_match_a_per_image_reference_on_unequal_masks():
    pred, target, mask = _unequal_masks_with_garbage()
    got = depth_metrics(pred, target, mask)
    want = _ref_depth_metrics(pred, target, mask)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9), k
    # the pixel-pooled average (a plausible slip) differs clearly here, so the check above can fail
    per = depth_metrics_per_image(pred, target, mask)
    pooled = np.average(per["abs_rel"], weights=mask.sum((1, 2)))
    assert abs(pooled - got["abs_rel"]) > 0.1 * got["abs_rel"]
    assert all(np.allclose(np.mean(per[k]), got[k]) for k in got)


def test_alignment_uses_only_the_masked_pixels():
    pred, target, mask = _unequal_masks_with_garbage()
    exact = 2.5 * pred + 0.7
    exact[~mask] = 999.0  # inside the mask an exact affine map of pred; outside, nothing to fit
    aligned, s, t = align_scale_shift(pred, exact, mask)
    np.testing.assert_allclose(s, [2.5, 2.5], rtol=1e-9)
    np.testing.assert_allclose(t, [0.7, 0.7], rtol=1e-9)
    np.testing.assert_allclose(aligned[mask], exact[mask], rtol=1e-9)


def test_aligned_predictions_are_clipped_to_the_depth_range():
    # no alignment, one image: the 15 m and 0.5 m pixels are clipped to the 10 m / 1 m range before scoring
    target = np.array([[[2.0, 4.0, 8.0, 9.0]]])
    pred = np.array([[[0.5, 4.0, 15.0, 9.0]]])
    m = depth_metrics(pred, target, np.ones_like(target, bool), align=False, min_depth=1.0, max_depth=10.0)
    # clipped pred [1, 4, 10, 9]: abs rel (0.5 + 0 + 0.25 + 0) / 4; ratios 2, 1, 1.25, 1
    assert m["abs_rel"] == pytest.approx(0.1875)
    assert m["delta1"] == pytest.approx(0.5) and m["delta2"] == pytest.approx(0.75)
    assert m["rmse"] == pytest.approx(np.sqrt((1 + 0 + 4 + 0) / 4))
    unclipped = depth_metrics(pred, target, np.ones_like(target, bool), align=False, min_depth=1.0)
    assert unclipped["abs_rel"] == pytest.approx((0.5 + 0 + 7 / 8 + 0) / 4)  # max_depth None: no upper clip


def test_depth_metrics_thresholds_rmse_and_the_gt_range_by_hand():
    target = np.array([[[2.0, 2.0, 2.0, 2.0, 0.0]]])  # the last pixel has no ground truth (0 m)
    pred = np.array([[[2.5, 3.5, 4.2, 10.0, 7.0]]])  # ratios 1.25 (not < 1.25), 1.75, 2.1, 5
    m = depth_metrics(pred, target, np.ones_like(target, bool), align=False)
    assert m["delta1"] == 0.0  # δ1 counts ratio < 1.25 strictly
    assert m["delta2"] == pytest.approx(0.25) and m["delta3"] == pytest.approx(0.5)
    assert m["abs_rel"] == pytest.approx((0.25 + 0.75 + 1.1 + 4.0) / 4)
    assert m["rmse"] == pytest.approx(np.sqrt((0.25 + 2.25 + 4.84 + 64.0) / 4))


def test_normal_metrics_median_thresholds_and_renormalisation():
    angles = np.array([5.0, 15.0, 25.0, 40.0])
    g = np.zeros((1, 1, 4, 3))
    g[..., 2] = 1
    p = np.stack([np.sin(np.radians(angles)), np.zeros(4), np.cos(np.radians(angles))], -1)[None, None]
    p *= np.array([1.0, 3.0, 0.2, 7.0])[:, None]  # lengths do not matter: pred is re-normalised
    r = normal_metrics(p, g, np.ones((1, 1, 4), bool))
    assert r["mean"] == pytest.approx(21.25) and r["median"] == pytest.approx(20.0)
    assert (r["a11_25"], r["a22_5"], r["a30"]) == pytest.approx((25.0, 50.0, 75.0))


def test_normal_errors_per_image_are_per_image_means():
    g = np.zeros((2, 1, 3, 3))
    g[..., 2] = 1
    angles = np.radians([[10.0, 20.0, 60.0], [30.0, 30.0, 90.0]])
    p = np.stack([np.sin(angles), np.zeros_like(angles), np.cos(angles)], -1)[:, None]
    mask = np.array([[[True, True, True]], [[True, True, False]]])
    np.testing.assert_allclose(normal_errors_per_image(p, g, mask), [30.0, 30.0])
    assert np.isnan(normal_errors_per_image(p, g, np.zeros_like(mask))).all()
