"""How depth and normals become 3-channel "images" in [-1, 1] that Stable Diffusion's VAE can encode (Marigold's recipe)."""
from __future__ import annotations

import numpy as np

__all__ = ["normalize_depth", "depth_to_image", "normals_to_image", "image_to_depth", "image_to_normals"]


def _check(name: str, arr, ndim: int, last: int | None = None) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != ndim or (last is not None and arr.shape[-1] != last):
        want = f"{ndim}-D" + (f" with last axis {last}" if last else "")
        raise ValueError(f"`{name}` must be {want}, got shape {arr.shape}")
    return arr


def normalize_depth(depth, mask, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Marigold's per-image normalisation: clamp to the valid pixels' [2%, 98%] percentiles, map to [-1, 1]; invalid -> +1 (far).

    depth float [H,W] metres, mask bool [H,W] -> float32 [H,W] in [-1,1]. (Marigold paper eq. 3; E2E-FT ``training/dataloaders/load.py``.)
    Introduced in notebook 01.
    """
    depth = _check("depth", depth, 2)
    mask = _check("mask", mask, 2).astype(bool)
    if depth.shape != mask.shape:
        raise ValueError(f"`depth` and `mask` must have the same shape, got {depth.shape} and {mask.shape}")
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    if not mask.any():
        return np.ones_like(depth, dtype=np.float32)
    q_lo, q_hi = np.percentile(depth[mask], [low, high])
    if q_hi - q_lo < 1e-6:  # a flat image has no relative depth: put everything in the middle
        out = np.zeros_like(depth, dtype=np.float32)
    else:
        out = (np.clip(depth, q_lo, q_hi) - q_lo) / (q_hi - q_lo) * 2.0 - 1.0
    out = np.where(mask, out, 1.0)
    return out.astype(np.float32)


def depth_to_image(depth, mask) -> np.ndarray:
    """Normalised depth replicated to 3 channels: float [H,W] metres -> float32 [3,H,W] in [-1,1]. Introduced in notebook 01."""
    d = normalize_depth(depth, mask)
    return np.repeat(d[None], 3, axis=0)


def normals_to_image(normals, mask) -> np.ndarray:
    """Unit normals as 3 channels: float [H,W,3] -> float32 [3,H,W] in [-1,1] (invalid pixels 0). Introduced in notebook 06."""
    n = _check("normals", normals, 3, 3)
    mask = _check("mask", mask, 2).astype(bool)
    if n.shape[:2] != mask.shape:
        raise ValueError(f"`normals` {n.shape} and `mask` {mask.shape} must share H and W")
    return np.where(mask[..., None], n, 0.0).transpose(2, 0, 1).astype(np.float32)


def image_to_depth(image) -> np.ndarray:
    """Decoded 3-channel image [...,3,H,W] -> depth [...,H,W] in [0,1]. Introduced in notebook 01.

    The mean of the channels, clipped to [-1,1], then (d+1)/2.
    """
    image = np.asarray(image)
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"`image` must be [..., 3, H, W], got shape {image.shape}")
    return (np.clip(image.mean(axis=-3), -1.0, 1.0) + 1.0) / 2.0


def image_to_normals(image, eps: float = 1e-6) -> np.ndarray:
    """Decoded 3-channel image -> unit normals: [...,3,H,W] -> [...,H,W,3] (clip to [-1,1], L2-normalise). Introduced in notebook 06."""
    image = np.asarray(image)
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"`image` must be [..., 3, H, W], got shape {image.shape}")
    n = np.moveaxis(np.clip(image, -1.0, 1.0), -3, -1)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), eps)
