"""Worse depth labels on purpose: the flaws of real depth sensors, to measure how much label quality matters."""
from __future__ import annotations

import numpy as np

__all__ = ["degrade_depth_map", "degrade_depth"]


def _check_settings(caller: str, noise: float, holes: float, blur: float) -> None:
    if not (noise >= 0 and 0 <= holes < 1 and blur >= 0):  # also rejects NaN
        raise ValueError(f"{caller}: need noise >= 0, 0 <= holes < 1, blur >= 0; got {noise}, {holes}, {blur}")


def degrade_depth_map(depth, mask, rng, noise: float = 0.03, holes: float = 0.1, blur: float = 1.0):
    """One map as a depth sensor might deliver it: blurred edges, relative noise, holes. Introduced in notebook 09.

    depth float [H,W] metres, mask bool [H,W] -> (depth float32 [H,W], mask bool [H,W]). ``blur``: Gaussian σ in pixels,
    which mixes foreground and background at every depth edge (the "flying pixels" of time-of-flight and stereo
    sensors); ``noise``: Gaussian noise with σ = ``noise`` × depth; ``holes``: the fraction of pixels lost in blobs
    of a few pixels (invalid in the returned mask, like a Kinect's dropouts).
    """
    from scipy.ndimage import gaussian_filter, zoom

    depth, mask = np.asarray(depth, dtype=np.float32), np.asarray(mask, dtype=bool)
    if depth.ndim != 2 or depth.shape != mask.shape:
        raise ValueError(f"degrade_depth_map: `depth` and `mask` must be [H,W] of one shape, got {depth.shape} and {mask.shape}")
    _check_settings("degrade_depth_map", noise, holes, blur)
    out = depth
    if blur > 0 and mask.any():  # blur the valid pixels only (normalised convolution), so windows do not leak in
        filled = np.where(mask, depth, 0.0)
        weight = gaussian_filter(mask.astype(np.float32), blur)
        out = np.where(mask, gaussian_filter(filled, blur) / np.maximum(weight, 1e-6), depth)
    out = out * (1.0 + noise * rng.standard_normal(depth.shape)).clip(0.5, 1.5)
    if holes > 0:  # blobs: a coarse random field, upsampled, thresholded at the wanted fraction
        h, w = depth.shape
        coarse = rng.standard_normal((max(1, h // 4), max(1, w // 4)))
        field = zoom(coarse, (h / coarse.shape[0], w / coarse.shape[1]), order=1)[:h, :w]
        mask = mask & (field > np.quantile(field, holes))
    return out.astype(np.float32), mask


def degrade_depth(dataset, noise: float = 0.03, holes: float = 0.1, blur: float = 1.0, seed: int = 0):
    """A copy of a course-schema dataset whose ``depth`` and ``mask`` went through ``degrade_depth_map`` (other columns kept).

    The images are unchanged, so a model trained on it sees the same scenes with worse labels. In memory; the
    source dataset (and its cache files) are untouched. Deterministic in ``seed``. Introduced in notebook 09.
    """
    for column in ("depth", "mask"):
        if column not in getattr(dataset, "column_names", ()):
            raise ValueError(f"degrade_depth: `dataset` must have a {column!r} column (the course's schema), "
                             f"got {getattr(dataset, 'column_names', type(dataset).__name__)}")
    _check_settings("degrade_depth", noise, holes, blur)
    rng = np.random.default_rng(seed)

    def degrade(rows):
        pairs = [degrade_depth_map(d, m, rng, noise, holes, blur) for d, m in zip(rows["depth"], rows["mask"])]
        return {"depth": [p[0] for p in pairs], "mask": [p[1] for p in pairs]}

    return dataset.map(degrade, batched=True, batch_size=256, keep_in_memory=True, load_from_cache_file=False)
