"""The task losses of end-to-end fine-tuning: affine-invariant L1 for depth, angular error for normals (E2E-FT eq. 1-2).

Both are computed in fp32 with autocast off, over valid pixels only (E2E-FT ``training/util/loss.py``).
"""
from __future__ import annotations

__all__ = ["fit_scale_shift", "affine_invariant_l1", "angular_loss"]


def _check(name: str, x, ndim: int, channels: int | None = None):
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim or (channels is not None and x.shape[1] != channels):
        want = "[B,H,W]" if channels is None else f"[B,{channels},H,W]"
        raise ValueError(f"`{name}` must be {want}, got shape {tuple(x.shape)}")
    return x


def _check_mask(mask, shape):
    import torch

    _check("mask", mask, 3)
    if mask.dtype != torch.bool:
        raise ValueError(f"`mask` must be a bool tensor, got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"`mask` must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    return mask


def fit_scale_shift(pred, target, mask):
    """Per image the least-squares (s, t) minimising Σ_mask (s·pred + t − target)²: the 2×2 normal equations, in fp32.

    pred/target float [B,H,W], mask bool [B,H,W] -> (scale [B], shift [B], ok bool [B]). ``ok`` is False where the
    fit is degenerate (fewer than two valid pixels, or a constant prediction: det ≈ 0); there s = t = 0. The solve
    keeps the graph: s and t are functions of ``pred`` (E2E-FT does not detach them). Solved with centred sums,
    s = cov(p, g)/var(p), t = mean(g) − s·mean(p), which is the normal equations' solution without fp32
    cancellation. Introduced in notebook 05.
    """
    import torch

    _check("pred", pred, 3)
    _check("target", target, 3)
    if pred.shape != target.shape:
        raise ValueError(f"`pred` and `target` must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    _check_mask(mask, pred.shape)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        # masked pixels are replaced (not multiplied) by 0, so that inf/NaN there cannot leak into the sums
        p, g = torch.where(mask, pred.float(), 0.0), torch.where(mask, target.float(), 0.0)
        n = mask.sum((1, 2)).float()
        # the same solution as the 2×2 normal equations, written with centred sums: exact far from zero too
        mean_p = p.sum((1, 2)) / n.clamp_min(1)
        mean_g = g.sum((1, 2)) / n.clamp_min(1)
        pc = torch.where(mask, p - mean_p[:, None, None], 0.0)
        var = (pc * pc).sum((1, 2))
        cov = (pc * (g - mean_g[:, None, None])).sum((1, 2))
        # a constant prediction has var ≈ rounding noise: compare with the scale of the prediction itself
        ok = (n >= 2) & (var > n * (1e-5 * mean_p.detach().abs()) ** 2 + 1e-20)
        scale = torch.where(ok, cov / torch.where(ok, var, torch.ones_like(var)), torch.zeros_like(var))
        shift = torch.where(ok, mean_g - scale * mean_p, torch.zeros_like(var))
    return scale, shift, ok


def affine_invariant_l1(pred, target, mask):
    """Mean |s·pred + t − target| over the valid pixels of all images with a well-posed fit (E2E-FT's depth loss).

    pred [B,H,W] (e.g. the decoded depth in [-1,1]), target [B,H,W] depth in metres, mask bool [B,H,W] -> scalar.
    Images whose fit is degenerate (see ``fit_scale_shift``) are left out of the mean; E2E-FT keeps them with
    s = t = 0, which adds a constant and no gradient. With no usable image the loss is 0 (still attached to the
    graph). Introduced in notebook 05.
    """
    import torch

    scale, shift, ok = fit_scale_shift(pred, target, mask)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        m = mask & ok[:, None, None]
        err = (scale[:, None, None] * pred.float() + shift[:, None, None] - target.float()).abs()
        count = m.sum()
        if count == 0:
            return torch.where(mask, pred.float(), 0.0).sum() * 0.0
        return torch.where(m, err, 0.0).sum() / count


def angular_loss(pred, target, mask, eps: float = 1e-6):
    """Mean angle (radians) between ``pred`` and ``target`` over valid pixels: arccos of the cosine clamped to [−1+eps, 1−eps].

    pred [B,3,H,W] (normalised here, so any length > 0 works), target [B,3,H,W] unit normals, mask bool [B,H,W] ->
    scalar in [0, π]. The clamp keeps arccos's gradient finite (it is infinite at ±1; d/dx arccos x = −1/√(1−x²)).
    Introduced in notebook 06.
    """
    import torch

    _check("pred", pred, 4, 3)
    _check("target", target, 4, 3)
    if pred.shape != target.shape:
        raise ValueError(f"`pred` and `target` must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    _check_mask(mask, (pred.shape[0], *pred.shape[2:]))
    if not 0 < eps < 0.5:
        raise ValueError(f"`eps` must be in (0, 0.5), got {eps}")
    with torch.autocast(device_type=pred.device.type, enabled=False):
        p = torch.nn.functional.normalize(pred.float(), dim=1, eps=1e-12)
        g = torch.nn.functional.normalize(target.float(), dim=1, eps=1e-12)
        cos = (p * g).sum(1).clamp(-1.0 + eps, 1.0 - eps)
        angle = torch.arccos(cos)
        count = mask.sum()
        if count == 0:
            return torch.where(mask[:, None], pred.float(), 0.0).sum() * 0.0
        return torch.where(mask, angle, 0.0).sum() / count
