"""E2E-FT's task losses: affine-invariant L1 (depth) and angular loss (normals) against plain numpy references."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genpercept_lessons.losses import affine_invariant_l1, angular_loss, fit_scale_shift

# ---------------------------------------------------------------------------------------------------------------
# numpy references

def _ref_affine_l1(pred, target, mask):
    """Per image lstsq of [p, 1] onto g over valid pixels; mean |s p + t − g| over the valid pixels of usable images."""
    errs, fits = [], []
    for p, g, m in zip(pred.astype(np.float64), target.astype(np.float64), mask):
        pv, gv = p[m], g[m]
        if m.sum() < 2 or np.ptp(pv) == 0:
            fits.append(None)
            continue
        a = np.stack([pv, np.ones_like(pv)], 1)
        (s, t), *_ = np.linalg.lstsq(a, gv, rcond=None)
        fits.append((s, t))
        errs.append(np.abs(s * pv + t - gv))
    return (float(np.concatenate(errs).mean()) if errs else 0.0), fits


def _ref_angular(pred, target, mask, eps=1e-6):
    p = pred.astype(np.float64) / np.linalg.norm(pred.astype(np.float64), axis=1, keepdims=True)
    g = target.astype(np.float64) / np.linalg.norm(target.astype(np.float64), axis=1, keepdims=True)
    cos = np.clip((p * g).sum(1), -1 + eps, 1 - eps)
    return float(np.arccos(cos)[mask].mean())


def _random_depth_batch(rng, b, h=6, w=7, p_valid=0.7):
    pred = rng.uniform(-1, 1, (b, h, w)).astype(np.float32)
    target = rng.uniform(0.5, 8.0, (b, h, w)).astype(np.float32)
    mask = rng.random((b, h, w)) < p_valid
    return pred, target, mask


def _t(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


# ---------------------------------------------------------------------------------------------------------------
# affine-invariant L1

@pytest.mark.parametrize("b", [1, 2, 5, 9])
def test_affine_l1_matches_numpy_lstsq(b):
    rng = np.random.default_rng(b)
    pred, target, mask = _random_depth_batch(rng, b)
    want, fits = _ref_affine_l1(pred, target, mask)
    p, g, m = _t(pred, target, mask)
    got = affine_invariant_l1(p, g, m)
    assert got.dtype == torch.float32 and got.ndim == 0
    assert got.item() == pytest.approx(want, rel=1e-4, abs=1e-6)
    scale, shift, ok = fit_scale_shift(p, g, m)
    assert ok.tolist() == [f is not None for f in fits]
    for i, f in enumerate(fits):
        assert scale[i].item() == pytest.approx(f[0], rel=1e-3, abs=1e-5)
        assert shift[i].item() == pytest.approx(f[1], rel=1e-3, abs=1e-5)


def test_affine_l1_pools_pixels_not_images():
    # two images with very different valid-pixel counts: the mean is over pixels, not a mean of per-image means
    rng = np.random.default_rng(3)
    pred, target, _ = _random_depth_batch(rng, 2, 8, 8)
    mask = np.zeros((2, 8, 8), bool)
    mask[0] = True
    mask[1, :2, :2] = True
    want, _ = _ref_affine_l1(pred, target, mask)
    per_image = np.mean([_ref_affine_l1(pred[i:i + 1], target[i:i + 1], mask[i:i + 1])[0] for i in range(2)])
    assert abs(want - per_image) > 1e-3  # the two conventions differ on this data, so the check below can fail
    assert affine_invariant_l1(*_t(pred, target, mask)).item() == pytest.approx(want, rel=1e-4)


def test_affine_l1_exact_affine_target_is_zero():
    rng = np.random.default_rng(0)
    pred, _, mask = _random_depth_batch(rng, 3)
    target = (np.array([2.5, -0.7, 10.0])[:, None, None] * pred + np.array([3.0, 1.0, -4.0])[:, None, None])
    target[~mask] = 123.0  # garbage outside the mask must not matter
    loss = affine_invariant_l1(*_t(pred, target.astype(np.float32), mask))
    assert loss.item() < 1e-5
    s, t, ok = fit_scale_shift(*_t(pred, target.astype(np.float32), mask))
    assert ok.all()
    np.testing.assert_allclose(s.numpy(), [2.5, -0.7, 10.0], rtol=1e-4)
    np.testing.assert_allclose(t.numpy(), [3.0, 1.0, -4.0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("a, b", [(2.0, 0.3), (-0.5, 0.1), (7.0, -2.0), (-3.0, 0.0)])
def test_affine_l1_is_invariant_to_affine_changes_of_pred(a, b):
    rng = np.random.default_rng(1)
    pred, target, mask = _random_depth_batch(rng, 4)
    base = affine_invariant_l1(*_t(pred, target, mask)).item()
    moved = affine_invariant_l1(*_t((a * pred + b).astype(np.float32), target, mask)).item()
    assert moved == pytest.approx(base, rel=1e-4)
    assert base > 0.1  # random data: far from a perfect fit


def test_affine_l1_excludes_degenerate_images():
    rng = np.random.default_rng(2)
    pred, target, mask = _random_depth_batch(rng, 4, p_valid=0.9)
    pred[1] = 0.37  # constant prediction: no relative depth to fit
    mask[2] = False
    mask[2, 3, 4] = True  # a single valid pixel
    mask[3] = False  # no valid pixel
    p, g, m = _t(pred, target, mask)
    scale, shift, ok = fit_scale_shift(p, g, m)
    assert ok.tolist() == [True, False, False, False]
    assert scale[1:].abs().sum().item() == 0 and shift[1:].abs().sum().item() == 0
    loss = affine_invariant_l1(p, g, m)
    only_first = affine_invariant_l1(p[:1], g[:1], m[:1])
    assert loss.item() == pytest.approx(only_first.item(), rel=1e-6)
    assert loss.item() == pytest.approx(_ref_affine_l1(pred, target, mask)[0], rel=1e-4)


def test_affine_l1_all_masked_is_zero_with_zero_gradient():
    rng = np.random.default_rng(4)
    pred, target, _ = _random_depth_batch(rng, 3)
    p = torch.from_numpy(pred).requires_grad_(True)
    loss = affine_invariant_l1(p, torch.from_numpy(target), torch.zeros(3, 6, 7, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum().item() == 0.0


def test_affine_l1_only_degenerate_images_is_zero_with_finite_gradient():
    p = torch.full((2, 4, 4), 0.5, requires_grad=True)
    loss = affine_invariant_l1(p, torch.rand(2, 4, 4) + 1, torch.ones(2, 4, 4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum().item() == 0.0


def test_affine_l1_masked_pixels_get_no_gradient_and_fd_agrees():
    rng = np.random.default_rng(5)
    pred, target, mask = _random_depth_batch(rng, 2, 4, 5)
    p = torch.from_numpy(pred).requires_grad_(True)
    g, m = torch.from_numpy(target), torch.from_numpy(mask)
    affine_invariant_l1(p, g, m).backward()
    assert torch.isfinite(p.grad).all()
    assert p.grad[m].abs().sum() > 0
    assert p.grad[~m].abs().sum().item() == 0.0
    # central finite differences of the numpy reference on a few valid pixels (the loss is piecewise smooth)
    idx = np.argwhere(mask)[:4]
    for i, y, x in idx:
        h = 1e-3
        up, dn = pred.astype(np.float64).copy(), pred.astype(np.float64).copy()
        up[i, y, x] += h
        dn[i, y, x] -= h
        fd = (_ref_affine_l1(up, target, mask)[0] - _ref_affine_l1(dn, target, mask)[0]) / (2 * h)
        assert p.grad[i, y, x].item() == pytest.approx(fd, rel=2e-2, abs=2e-3)


def test_affine_l1_masked_garbage_does_not_matter():
    rng = np.random.default_rng(6)
    pred, target, mask = _random_depth_batch(rng, 3)
    p2, g2 = pred.copy(), target.copy()
    p2[~mask] = rng.uniform(-1e3, 1e3, (~mask).sum())
    g2[~mask] = rng.uniform(-1e4, 1e4, (~mask).sum())
    a = torch.from_numpy(pred).requires_grad_(True)
    b = torch.from_numpy(p2).requires_grad_(True)
    la, lb = affine_invariant_l1(a, torch.from_numpy(target), torch.from_numpy(mask)), \
        affine_invariant_l1(b, torch.from_numpy(g2), torch.from_numpy(mask))
    assert lb.item() == pytest.approx(la.item(), rel=1e-5)
    la.backward()
    lb.backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)


def test_affine_l1_under_bf16_autocast_returns_fp32():
    rng = np.random.default_rng(7)
    pred, target, mask = _random_depth_batch(rng, 3)
    p = torch.from_numpy(pred).bfloat16().requires_grad_(True)
    g = torch.from_numpy(target).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = affine_invariant_l1(p, g, torch.from_numpy(mask))
    assert loss.dtype == torch.float32
    # the loss is the fp32 loss of the bf16-rounded inputs
    want, _ = _ref_affine_l1(p.detach().float().numpy(), g.float().numpy(), mask)
    assert loss.item() == pytest.approx(want, rel=1e-4)
    loss.backward()
    assert p.grad.dtype == torch.bfloat16 and torch.isfinite(p.grad.float()).all() and p.grad.float().abs().sum() > 0


@pytest.mark.parametrize("call, exc, match", [
    (lambda p, g, m: affine_invariant_l1(p.numpy(), g, m), TypeError, "pred"),
    (lambda p, g, m: affine_invariant_l1(p, g.numpy(), m), TypeError, "target"),
    (lambda p, g, m: affine_invariant_l1(p[None], g, m), ValueError, "pred"),
    (lambda p, g, m: affine_invariant_l1(p, g[:, :-1], m), ValueError, "same shape"),
    (lambda p, g, m: affine_invariant_l1(p, g, m.float()), ValueError, "mask"),
    (lambda p, g, m: affine_invariant_l1(p, g, m[:, :-1]), ValueError, "mask"),
])
def test_affine_l1_bad_input(call, exc, match):
    rng = np.random.default_rng(0)
    with pytest.raises(exc, match=match):
        call(*_t(*_random_depth_batch(rng, 2)))


# ---------------------------------------------------------------------------------------------------------------
# angular loss

def _random_normals_batch(rng, b, h=5, w=6, p_valid=0.7):
    pred = rng.normal(size=(b, 3, h, w)).astype(np.float32)
    target = rng.normal(size=(b, 3, h, w))
    target = (target / np.linalg.norm(target, axis=1, keepdims=True)).astype(np.float32)
    return pred, target, rng.random((b, h, w)) < p_valid


@pytest.mark.parametrize("b", [1, 3, 6])
def test_angular_matches_numpy(b):
    rng = np.random.default_rng(10 + b)
    pred, target, mask = _random_normals_batch(rng, b)
    got = angular_loss(*_t(pred, target, mask))
    assert got.dtype == torch.float32 and got.ndim == 0
    assert got.item() == pytest.approx(_ref_angular(pred, target, mask), rel=1e-5)
    assert 0.5 < got.item() < np.pi  # random directions: about π/2 on average, i.e. in radians, not degrees


def test_angular_ignores_pred_length():
    rng = np.random.default_rng(11)
    pred, target, mask = _random_normals_batch(rng, 2)
    unit = pred / np.linalg.norm(pred, axis=1, keepdims=True)
    lengths = rng.uniform(1e-3, 1e3, (2, 1, 5, 6)).astype(np.float32)
    a = angular_loss(*_t(unit.astype(np.float32), target, mask)).item()
    b = angular_loss(*_t((unit * lengths).astype(np.float32), target, mask)).item()
    assert b == pytest.approx(a, rel=1e-5)


def test_angular_identical_is_zero_with_finite_gradient():
    rng = np.random.default_rng(12)
    _, target, mask = _random_normals_batch(rng, 2)
    p = torch.from_numpy(target.copy()).requires_grad_(True)
    loss = angular_loss(p, torch.from_numpy(target), torch.from_numpy(mask))
    # the cosine is clamped to 1 − eps, so the "zero" loss is arccos(1 − 1e-6) ≈ 1.4e-3 rad
    assert loss.item() == pytest.approx(np.arccos(1 - 1e-6), abs=1e-4) and loss.item() < 2e-3
    loss.backward()
    assert torch.isfinite(p.grad).all()


def test_angular_opposite_is_pi_with_finite_gradient():
    rng = np.random.default_rng(13)
    _, target, mask = _random_normals_batch(rng, 2)
    p = torch.from_numpy(-2.0 * target).requires_grad_(True)
    loss = angular_loss(p, torch.from_numpy(target), torch.from_numpy(mask))
    assert loss.item() == pytest.approx(np.pi, abs=2e-3)
    loss.backward()
    assert torch.isfinite(p.grad).all()


def test_angular_without_clamp_the_gradient_would_not_be_finite():
    # what the clamp is for (d/dx arccos x = −1/√(1−x²)): arccos'(1) is infinite; make sure the check above could fail
    c = torch.ones(1, requires_grad=True)
    torch.arccos(c).sum().backward()
    assert not torch.isfinite(c.grad).all()


def test_angular_gradient_is_finite_and_nonzero():
    rng = np.random.default_rng(14)
    pred, target, mask = _random_normals_batch(rng, 2)
    p = torch.from_numpy(pred).requires_grad_(True)
    angular_loss(p, torch.from_numpy(target), torch.from_numpy(mask)).backward()
    m = torch.from_numpy(mask)[:, None].expand_as(p)
    assert torch.isfinite(p.grad).all() and p.grad[m].abs().sum() > 0
    assert p.grad[~m].abs().sum().item() == 0.0


def test_angular_masked_pixels_do_not_matter():
    rng = np.random.default_rng(15)
    pred, target, mask = _random_normals_batch(rng, 3)
    p2, g2 = pred.copy(), target.copy()
    off = ~mask
    p2.transpose(0, 2, 3, 1)[off] = rng.uniform(-1e3, 1e3, (off.sum(), 3))
    g2.transpose(0, 2, 3, 1)[off] = rng.uniform(-5, 5, (off.sum(), 3))  # not even unit length
    p2.transpose(0, 2, 3, 1)[np.argwhere(off)[0][0], np.argwhere(off)[0][1], np.argwhere(off)[0][2]] = 0.0
    g2.transpose(0, 2, 3, 1)[np.argwhere(off)[1][0], np.argwhere(off)[1][1], np.argwhere(off)[1][2]] = 0.0
    assert not np.array_equal(pred, p2)
    a = torch.from_numpy(pred).requires_grad_(True)
    b = torch.from_numpy(p2).requires_grad_(True)
    la = angular_loss(a, torch.from_numpy(target), torch.from_numpy(mask))
    lb = angular_loss(b, torch.from_numpy(g2), torch.from_numpy(mask))
    assert lb.item() == pytest.approx(la.item(), rel=1e-6)
    la.backward()
    lb.backward()
    assert torch.isfinite(b.grad).all()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


def test_angular_all_masked_is_zero_with_zero_gradient():
    p = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = angular_loss(p, torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum().item() == 0.0


def test_angular_under_bf16_autocast_returns_fp32():
    rng = np.random.default_rng(16)
    pred, target, mask = _random_normals_batch(rng, 2)
    p = torch.from_numpy(pred).bfloat16()
    g = torch.from_numpy(target).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = angular_loss(p, g, torch.from_numpy(mask))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(_ref_angular(p.float().numpy(), g.float().numpy(), mask), rel=1e-4)


@pytest.mark.parametrize("call, exc, match", [
    (lambda p, g, m: angular_loss(p[0], g, m), ValueError, "`pred`"),
    (lambda p, g, m: angular_loss(p, g[0], m), ValueError, "`target`"),
    (lambda p, g, m: angular_loss(p[:, :2], g, m), ValueError, "`pred`"),
    (lambda p, g, m: angular_loss(p, torch.cat([g, g], 1), m), ValueError, "`target`"),
    (lambda p, g, m: angular_loss(p, g[..., :-1], m), ValueError, "`pred` and `target`"),
    (lambda p, g, m: angular_loss(p, g, m.float()), ValueError, "`mask`"),
    (lambda p, g, m: angular_loss(p, g, m.to(torch.uint8)), ValueError, "`mask`"),
    (lambda p, g, m: angular_loss(p, g, m[:, :-1]), ValueError, "`mask`"),
    (lambda p, g, m: angular_loss(p, g, m[:1]), ValueError, "`mask`"),
    (lambda p, g, m: angular_loss(p, g, m[:, None]), ValueError, "`mask`"),
    (lambda p, g, m: angular_loss(p.numpy(), g, m), TypeError, "`pred`"),
    (lambda p, g, m: angular_loss(p, g.numpy(), m), TypeError, "`target`"),
    (lambda p, g, m: angular_loss(p, g, m.numpy()), TypeError, "`mask`"),
    (lambda p, g, m: angular_loss(p, g, m, eps=0.0), ValueError, "`eps`"),
    (lambda p, g, m: angular_loss(p, g, m, eps=-1e-3), ValueError, "`eps`"),
    (lambda p, g, m: angular_loss(p, g, m, eps=0.5), ValueError, "`eps`"),
    (lambda p, g, m: angular_loss(p, g, m, eps=float("nan")), ValueError, "`eps`"),
])
def test_angular_bad_input(call, exc, match):
    rng = np.random.default_rng(0)
    with pytest.raises(exc, match=match):
        call(*_t(*_random_normals_batch(rng, 2)))


def test_masked_inf_and_nan_do_not_leak_into_the_losses():
    gen = torch.Generator().manual_seed(3)
    p, g = torch.rand(2, 6, 6, generator=gen), torch.rand(2, 6, 6, generator=gen) + 1
    m = torch.ones(2, 6, 6, dtype=torch.bool)
    m[:, 0, 0] = False
    clean = affine_invariant_l1(p, g, m)
    g_bad = g.clone()
    g_bad[0, 0, 0], g_bad[1, 0, 0] = float("inf"), float("nan")
    assert torch.isfinite(affine_invariant_l1(p, g_bad, m)) and torch.allclose(affine_invariant_l1(p, g_bad, m), clean)
    n, t = torch.randn(2, 3, 6, 6, generator=gen), torch.randn(2, 3, 6, 6, generator=gen)
    t_bad = t.clone()
    t_bad[:, :, 0, 0] = float("nan")
    assert torch.allclose(angular_loss(n, t_bad, m), angular_loss(n, t, m))


@pytest.mark.parametrize("offset", [10.0, 100.0, 1000.0])
def test_the_fit_stays_exact_far_from_zero(offset):
    x = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    m = torch.ones(1, 16, 16, dtype=torch.bool)
    scale, shift, ok = fit_scale_shift(x + offset, 3 * x + 1, m)
    assert ok.all() and abs(scale.item() - 3) < 1e-3
    assert affine_invariant_l1(x + offset, 3 * x + 1, m).item() < 1e-4 * offset
