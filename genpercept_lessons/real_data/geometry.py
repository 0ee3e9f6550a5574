"""Pinhole geometry for real datasets: ray distance → planar depth, normals from depth, intrinsics under resize/crop.

Conventions are those of ``genpercept_lessons/mini/scenes.py``: ``K`` is OpenCV's pinhole matrix with pixel centres at integer + 0.5
(pixel (row i, column j) sees the ray ``K^-1 [j + 0.5, i + 0.5, 1]``), depth is planar (the OpenCV z of the
point), and normals are unit vectors in diffusers' frame: x right, y up, z toward the viewer.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "distance_to_planar_depth",
    "planar_depth_to_distance",
    "normals_from_depth",
    "resize_intrinsics",
    "crop_intrinsics",
]

# A pixel is "at a depth discontinuity" when a 4-neighbour's depth differs from its own by more than this
# fraction of its own depth. 0.1 keeps planes seen at grazing angles (a floor's depth changes by 1/(rows below
# the horizon) per row) valid from ~10 rows below the horizon on, and cuts every object/background edge.
DEFAULT_MAX_REL_JUMP = 0.1


def _check_focal(fn: str, focal_px) -> float:
    if not isinstance(focal_px, (int, float, np.integer, np.floating)) or not np.isfinite(focal_px) or focal_px <= 0:
        raise ValueError(f"{fn}: `focal_px` must be a positive finite number of pixels, got {focal_px!r}")
    return float(focal_px)


def _ray_norm(height: int, width: int, focal_px: float) -> np.ndarray:
    """‖(x, y, f)‖ / f on the pixel-centred grid x ∈ [−W/2+0.5, W/2−0.5], y ∈ [−H/2+0.5, H/2−0.5]: [H,W] float64."""
    x = np.arange(width, dtype=np.float64) - width / 2 + 0.5
    y = np.arange(height, dtype=np.float64) - height / 2 + 0.5
    return np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + focal_px ** 2) / focal_px


def _check_map(fn: str, name: str, arr) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim < 2 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{fn}: `{name}` must be a numeric [H,W] (or [...,H,W]) array, got {arr.dtype} {arr.shape}")
    return arr


def distance_to_planar_depth(distance, focal_px: float) -> np.ndarray:
    """Euclidean ray distance [...,H,W] (m) → planar depth [...,H,W] float32 (m), principal point at the image centre.

    depth = distance · f / ‖(x, y, f)‖ with x ∈ [−W/2+0.5, W/2−0.5] and y likewise (Marigold
    ``hypersim_util.dist_2_depth``; ml-hypersim issue #9: Hypersim's ``depth_meters`` is a distance). NaN/inf
    pass through. Introduced in notebook 08.
    """
    distance = _check_map("distance_to_planar_depth", "distance", distance)
    f = _check_focal("distance_to_planar_depth", focal_px)
    h, w = distance.shape[-2:]
    return (distance.astype(np.float64) / _ray_norm(h, w, f)).astype(np.float32)


def planar_depth_to_distance(depth, focal_px: float) -> np.ndarray:
    """Planar depth [...,H,W] (m) → Euclidean ray distance [...,H,W] float32 (m). Introduced in notebook 08.

    The inverse of ``distance_to_planar_depth``.
    """
    depth = _check_map("planar_depth_to_distance", "depth", depth)
    f = _check_focal("planar_depth_to_distance", focal_px)
    h, w = depth.shape[-2:]
    return (depth.astype(np.float64) * _ray_norm(h, w, f)).astype(np.float32)


def _check_K(fn: str, K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{fn}: `K` must be a finite 3x3 pinhole matrix with fx, fy > 0, got {np.asarray(K).tolist()!r}")
    return K


def normals_from_depth(depth, K, mask, max_rel_jump: float = DEFAULT_MAX_REL_JUMP) -> tuple[np.ndarray, np.ndarray]:
    """Surface normals from planar depth by back-projection and the cross product of central differences.

    depth float [H,W] metres, K [3,3] (OpenCV, pixel centres at +0.5), mask bool [H,W] -> (normals float32 [H,W,3]
    unit, x right / y up / z toward the viewer, facing the camera, zero where invalid; valid bool [H,W]). A pixel is
    invalid on the border, where it or a 4-neighbour is masked out / non-finite / ≤ 0, or where a 4-neighbour's
    depth differs by more than ``max_rel_jump`` × its own (a depth discontinuity). Introduced in notebook 08.
    """
    fn = "normals_from_depth"
    depth = np.asarray(depth)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
        raise ValueError(f"{fn}: `depth` must be a numeric [H,W] array, got {depth.dtype} {depth.shape}")
    mask = np.asarray(mask)
    if mask.shape != depth.shape:
        raise ValueError(f"{fn}: `mask` must have the shape of `depth` {depth.shape}, got {mask.shape}")
    K = _check_K(fn, K)
    if not isinstance(max_rel_jump, (int, float)) or not max_rel_jump > 0:
        raise ValueError(f"{fn}: `max_rel_jump` must be a positive number, got {max_rel_jump!r}")
    h, w = depth.shape
    d = depth.astype(np.float64)
    ok = mask.astype(bool) & np.isfinite(d) & (d > 0)
    d = np.where(ok, d, 0.0)

    # back-project into OpenCV camera space, then flip y and z: x right, y up, z toward the viewer
    u = np.arange(w, dtype=np.float64) + 0.5
    v = np.arange(h, dtype=np.float64) + 0.5
    x = (u[None, :] - K[0, 2]) / K[0, 0] * d
    y = (v[:, None] - K[1, 2]) / K[1, 1] * d
    P = np.stack([x, -y, -d], axis=-1)

    valid = np.zeros((h, w), dtype=bool)
    inner = (slice(1, -1), slice(1, -1))
    c = d[inner]
    neighbours = {"left": (slice(1, -1), slice(0, -2)), "right": (slice(1, -1), slice(2, None)),
                  "up": (slice(0, -2), slice(1, -1)), "down": (slice(2, None), slice(1, -1))}
    valid[inner] = ok[inner]
    with np.errstate(divide="ignore", invalid="ignore"):
        for sl in neighbours.values():
            valid[inner] &= ok[sl] & (np.abs(d[sl] - c) <= max_rel_jump * c)

    normals = np.zeros((h, w, 3), dtype=np.float64)
    du = P[neighbours["right"]] - P[neighbours["left"]]  # along image columns (rightwards)
    dv = P[neighbours["down"]] - P[neighbours["up"]]  # along image rows (downwards)
    n = np.cross(dv, du)  # a fronto-parallel wall gives +z, i.e. toward the viewer
    length = np.linalg.norm(n, axis=-1)
    normals[inner] = n / np.maximum(length, 1e-300)[..., None]
    valid[inner] &= length > 0
    # orient toward the camera: the camera sits at the origin, so a facing normal has n · P < 0
    flip = (normals * P).sum(-1) > 0
    normals[flip] *= -1
    normals[~valid] = 0.0
    return normals.astype(np.float32), valid


def resize_intrinsics(K, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """K [3,3] of an image of ``from_size`` (H, W) resized to ``to_size`` (H, W). Introduced in notebook 08.

    Rows 0 and 1 scale by W'/W and H'/H (pixel centres at +0.5).
    """
    K = _check_K("resize_intrinsics", K)
    for name, size in (("from_size", from_size), ("to_size", to_size)):
        if len(tuple(size)) != 2 or min(size) < 1:
            raise ValueError(f"resize_intrinsics: `{name}` must be (height, width) of positive ints, got {size!r}")
    (h0, w0), (h1, w1) = from_size, to_size
    out = K.copy()
    out[0] *= w1 / w0
    out[1] *= h1 / h0
    return out.astype(np.float32)


def crop_intrinsics(K, top: int, left: int) -> np.ndarray:
    """K [3,3] of an image cropped at (``top``, ``left``): the principal point moves by (−left, −top). Introduced in notebook 08."""
    K = _check_K("crop_intrinsics", K)
    for name, value in (("top", top), ("left", left)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"crop_intrinsics: `{name}` must be a non-negative int, got {value!r}")
    out = K.copy()
    out[0, 2] -= left
    out[1, 2] -= top
    return out.astype(np.float32)
