"""Depth and normal metrics as the papers compute them: least-squares scale/shift alignment, AbsRel, δ1, angular errors."""
from __future__ import annotations

import numpy as np

__all__ = ["align_scale_shift", "depth_metrics", "depth_metrics_per_image", "normal_metrics",
           "normal_errors_per_image", "mean_iou"]


def _batch(name: str, arr, trailing: int) -> np.ndarray:
    """As an array with a leading batch axis: [H,W(,3)] -> [1,H,W(,3)]."""
    arr = np.asarray(arr)
    if arr.ndim == trailing:
        arr = arr[None]
    if arr.ndim != trailing + 1 or (trailing == 3 and arr.shape[-1] != 3):
        raise ValueError(f"`{name}` must be [H,W{',3' if trailing == 3 else ''}] or [N,H,W{',3' if trailing == 3 else ''}], "
                         f"got shape {arr.shape}")
    return arr


def _check_same(pred, target, mask, trailing):
    pred, target = _batch("pred", pred, trailing), _batch("target", target, trailing)
    mask = _batch("mask", mask, 2).astype(bool)
    if pred.shape != target.shape:
        raise ValueError(f"`pred` and `target` must have the same shape, got {pred.shape} and {target.shape}")
    if mask.shape != pred.shape[:3]:
        raise ValueError(f"`mask` must be {pred.shape[:3]}, got {mask.shape}")
    if not np.isfinite(pred[mask]).all():
        raise ValueError("`pred` has NaN or inf on valid pixels")
    return pred, target, mask


def align_scale_shift(pred, target, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image, the least-squares s, t minimising Σ_mask (s·pred + t − target)² (fp64 solve of the 2×2 normal equations).

    pred/target float [N,H,W] (or [H,W]), mask bool -> (aligned [N,H,W], scale [N], shift [N]). Images with fewer than
    two valid pixels or a constant prediction get s = 0, t = mean target. Introduced in notebook 03.
    """
    pred, target, mask = _check_same(pred, target, mask, 2)
    p, g, m = pred.astype(np.float64), target.astype(np.float64), mask.astype(np.float64)
    a00, a01, a11 = (m * p * p).sum((1, 2)), (m * p).sum((1, 2)), m.sum((1, 2))
    b0, b1 = (m * p * g).sum((1, 2)), (m * g).sum((1, 2))
    det = a00 * a11 - a01 * a01
    ok = (a11 >= 2) & (det > 1e-12 * np.maximum(a00 * a11, 1e-300))
    safe = np.where(ok, det, 1.0)
    scale = np.where(ok, (a11 * b0 - a01 * b1) / safe, 0.0)
    shift = np.where(ok, (a00 * b1 - a01 * b0) / safe, b1 / np.maximum(a11, 1.0))
    aligned = scale[:, None, None] * p + shift[:, None, None]
    return aligned, scale, shift


def depth_metrics_per_image(pred, target, mask, align: bool = True, min_depth: float = 1e-3,
                            max_depth: float | None = None) -> dict[str, np.ndarray]:
    """``depth_metrics`` before the average over images: {"abs_rel": [N], "delta1": [N], …}. Introduced in notebook 03."""
    pred, target, mask = _check_same(pred, target, mask, 2)
    mask = mask & (target > min_depth)
    if not mask.any(axis=(1, 2)).all():
        raise ValueError("every image needs at least one valid pixel with target depth > min_depth")
    if align:
        pred, _, _ = align_scale_shift(pred, target, mask)
    pred = np.clip(pred, min_depth, max_depth)
    rows = []
    for p, g, m in zip(pred, target, mask):
        p, g = p[m].astype(np.float64), g[m].astype(np.float64)
        ratio = np.maximum(p / g, g / p)
        rows.append([np.mean(np.abs(p - g) / g), np.mean(ratio < 1.25), np.mean(ratio < 1.25 ** 2),
                     np.mean(ratio < 1.25 ** 3), np.sqrt(np.mean((p - g) ** 2))])
    return dict(zip(("abs_rel", "delta1", "delta2", "delta3", "rmse"), np.asarray(rows).T))


def depth_metrics(pred, target, mask, align: bool = True, min_depth: float = 1e-3,
                  max_depth: float | None = None) -> dict[str, float]:
    """AbsRel, δ1/δ2/δ3 and RMSE per image, then averaged (Marigold's protocol: align in depth space, clip, evaluate).

    pred [N,H,W] (any affine-invariant depth), target [N,H,W] metres, mask bool. Aligned predictions are clipped to
    [min_depth, max_depth], the dataset's evaluation range (no upper clip when None). Introduced in notebook 03.
    """
    per_image = depth_metrics_per_image(pred, target, mask, align, min_depth, max_depth)
    return {k: float(np.mean(v)) for k, v in per_image.items()}


def _angular_errors(pred, target, mask) -> np.ndarray:
    """Angle in degrees between (re-normalised) pred and target at every valid pixel, in row-major order."""
    p = pred[mask].astype(np.float64)
    g = target[mask].astype(np.float64)
    p /= np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return np.degrees(np.arccos(np.clip((p * g).sum(1), -1.0, 1.0)))


def normal_metrics(pred, target, mask) -> dict[str, float]:
    """Angular error in degrees pooled over all valid pixels: mean, median, and % under 11.25°/22.5°/30°.

    pred/target float [N,H,W,3] (or [H,W,3]) unit normals (pred is re-normalised), mask bool [N,H,W].
    Introduced in notebook 06.
    """
    pred, target, mask = _check_same(pred, target, mask, 3)
    if not mask.any():
        raise ValueError("`mask` has no valid pixel")
    err = _angular_errors(pred, target, mask)
    return {"mean": float(err.mean()), "median": float(np.median(err)), "a11_25": float(100 * np.mean(err < 11.25)),
            "a22_5": float(100 * np.mean(err < 22.5)), "a30": float(100 * np.mean(err < 30.0))}


def normal_errors_per_image(pred, target, mask) -> np.ndarray:
    """Mean angular error in degrees of each image over its valid pixels: [N] (NaN for an image without one)."""
    pred, target, mask = _check_same(pred, target, mask, 3)
    return np.array([_angular_errors(p[None], g[None], m[None]).mean() if m.any() else np.nan
                     for p, g, m in zip(pred, target, mask)])


def mean_iou(pred, target, num_classes: int, ignore_index: int = 255) -> dict:
    """Semantic segmentation: per-class IoU = TP / (TP + FP + FN) pooled over all pixels, and their mean (mIoU).

    pred/target int [N,H,W] (or [H,W]) class ids; pixels whose target is ``ignore_index`` are skipped; classes absent
    from both pred and target are left out of the mean. Returns {"miou": float, "iou": [per class or NaN]}.
    Introduced in notebook 07.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"mean_iou: `pred` and `target` must have the same shape, got {pred.shape} and {target.shape}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"mean_iou: `num_classes` must be a positive int, got {num_classes!r}")
    keep = target != ignore_index
    if not keep.any():
        raise ValueError("mean_iou: every target pixel is `ignore_index`")
    p, t = pred[keep].astype(np.int64), target[keep].astype(np.int64)
    if p.min() < 0 or p.max() >= num_classes or t.max() >= num_classes:
        raise ValueError(f"mean_iou: class ids must be in [0, {num_classes}), got pred in [{p.min()}, {p.max()}], "
                         f"target max {t.max()}")
    confusion = np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {"miou": float(np.nanmean(iou)), "iou": [float(x) for x in iou]}
