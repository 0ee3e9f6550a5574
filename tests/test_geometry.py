"""geometry: ray distance ↔ planar depth, normals from depth against the MiniScenes renderer, intrinsics."""
from __future__ import annotations

import numpy as np
import pytest

from genpercept_lessons.mini.scenes import render_scene
from genpercept_lessons.real_data.geometry import (
    crop_intrinsics,
    distance_to_planar_depth,
    normals_from_depth,
    planar_depth_to_distance,
    resize_intrinsics,
)


def _same_label_3x3(label: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pixels whose whole 3x3 neighbourhood is valid and has their label (borders excluded)."""
    h, w = label.shape
    out = np.zeros((h, w), dtype=bool)
    c = label[1:-1, 1:-1]
    out[1:-1, 1:-1] = True
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            sl = (slice(1 + di, h - 1 + di), slice(1 + dj, w - 1 + dj))
            out[1:-1, 1:-1] &= (label[sl] == c) & mask[sl]
    return out


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_normals_from_depth_match_renderer_on_planar_regions(index):
    s = render_scene(0, index, 64, 64)
    normals, valid = normals_from_depth(s.depth, s.K, s.mask)
    assert normals.shape == (64, 64, 3) and normals.dtype == np.float32 and valid.dtype == bool
    sel = _same_label_3x3(s.label, s.mask) & valid
    assert sel.sum() > 0.6 * s.mask.sum()  # the discontinuity test keeps most of a plane-rich scene
    cos = np.clip((normals[sel] * s.normals[sel]).sum(-1), -1, 1)
    angles = np.degrees(np.arccos(cos))
    assert np.median(angles) < 2.0
    assert np.mean(angles < 10) > 0.9
    np.testing.assert_allclose(np.linalg.norm(normals[valid], axis=-1), 1.0, atol=1e-5)
    assert (normals[~valid] == 0).all() and not valid[0].any() and not valid[:, -1].any()
    assert not (valid & ~s.mask).any()


def test_normals_face_the_camera_and_flag_discontinuities():
    # a fronto-parallel wall at 4 m with a box face at 2 m in the middle: normals (0, 0, 1) in the x right / y up /
    # z toward the viewer frame, and the box outline is invalid
    K = np.array([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]])
    depth = np.full((32, 32), 4.0)
    depth[10:20, 10:20] = 2.0
    normals, valid = normals_from_depth(depth, K, np.ones((32, 32), bool))
    np.testing.assert_allclose(normals[valid], np.tile([0, 0, 1.0], (valid.sum(), 1)), atol=1e-6)
    assert not valid[10:20, 9].any() and not valid[10, 10:20].any() and not valid[20, 10:20].any()  # box edges
    assert valid[15, 15] and valid[5, 5]
    # a floor below the camera (OpenCV y = +1.5 m): its normal points up (+y)
    v = np.arange(32) + 0.5
    with np.errstate(divide="ignore"):
        floor = np.where(v > 20, 1.5 * 40.0 / (v - 16.0), 0.0)[:, None].repeat(32, axis=1)
    n2, ok2 = normals_from_depth(floor, K, floor > 0)
    assert ok2.sum() > 100
    np.testing.assert_allclose(n2[ok2], np.tile([0, 1.0, 0], (ok2.sum(), 1)), atol=1e-5)


def test_discontinuities_are_relative_to_the_depth():
    # a 6 cm step at 0.5 m (12 %) is an edge; a 2 m step at 40 m (5 %) is not (max_rel_jump 0.1)
    K = np.array([[40.0, 0, 8], [0, 40.0, 8], [0, 0, 1]])
    near = np.full((16, 16), 0.5)
    near[:, 8:] = 0.44
    _, valid = normals_from_depth(near, K, np.ones((16, 16), bool))
    assert not valid[5:10, 7:9].any() and valid[5:10, 3:6].all() and valid[5:10, 10:13].all()
    far = np.full((16, 16), 40.0)
    far[:, 8:] = 38.0
    _, valid = normals_from_depth(far, K, np.ones((16, 16), bool))
    assert valid[1:-1, 1:-1].all()


def test_masked_neighbours_are_invalid():
    K = np.array([[40.0, 0, 8], [0, 40.0, 8], [0, 0, 1]])
    mask = np.ones((16, 16), bool)
    mask[8, 8] = False
    _, valid = normals_from_depth(np.full((16, 16), 3.0), K, mask)
    assert not valid[8, 8] and not valid[7, 8] and not valid[9, 8] and not valid[8, 7] and not valid[8, 9]
    assert valid[6, 8] and valid[7, 7]


def test_distance_to_depth_inverts_the_ray_length_exactly():
    rng = np.random.default_rng(0)
    h, w, f = 6, 8, 5.0
    depth = rng.uniform(1, 10, (h, w))
    # ray length of pixel (i, j) through the centred grid x = j - W/2 + 0.5, y = i - H/2 + 0.5
    x = np.arange(w) - w / 2 + 0.5
    y = np.arange(h) - h / 2 + 0.5
    distance = depth * np.sqrt(x[None] ** 2 + y[:, None] ** 2 + f ** 2) / f
    np.testing.assert_allclose(distance_to_planar_depth(distance, f), depth, rtol=1e-6)
    np.testing.assert_allclose(planar_depth_to_distance(depth, f), distance, rtol=1e-6)
    assert x[0] == -w / 2 + 0.5 and x[-1] == w / 2 - 0.5
    # the centre pixels of an even grid are off-axis by half a pixel, so depth < distance everywhere
    assert (distance_to_planar_depth(distance, f) < distance).all()


def test_distance_to_depth_matches_the_renderer():
    s = render_scene(0, 5, 48, 64)  # K has cx = W/2, cy = H/2 and fx = fy
    f = float(s.K[0, 0])
    u, v = np.meshgrid((np.arange(64) + 0.5 - 32) / f, (np.arange(48) + 0.5 - 24) / f)
    cam = np.stack([u, v, np.ones_like(u)], -1)
    distance = s.depth * np.linalg.norm(cam, axis=-1)  # what a distance sensor (Hypersim) would store
    np.testing.assert_allclose(distance_to_planar_depth(distance, f), s.depth, rtol=1e-5, atol=1e-6)


def test_nan_passes_through_and_batches_work():
    d = np.full((2, 4, 4), 2.0)
    d[0, 1, 1] = np.nan
    out = distance_to_planar_depth(d, 3.0)
    assert out.shape == (2, 4, 4) and np.isnan(out[0, 1, 1]) and np.isfinite(out[1]).all()


def test_intrinsics_under_resize_and_crop():
    K = np.array([[886.81, 0, 512], [0, 886.81, 384], [0, 0, 1]])
    K2 = resize_intrinsics(K, (768, 1024), (480, 640))
    np.testing.assert_allclose(K2, [[554.25625, 0, 320], [0, 554.25625, 240], [0, 0, 1]], rtol=1e-6)
    # height and width scale separately: H 96 -> 48 (x0.5), W 128 -> 32 (x0.25)
    K4 = resize_intrinsics(np.array([[100.0, 0, 64], [0, 90.0, 48], [0, 0, 1]]), (96, 128), (48, 32))
    np.testing.assert_allclose(K4, [[25, 0, 16], [0, 45, 24], [0, 0, 1]], rtol=1e-6)
    K3 = crop_intrinsics(np.array([[725.0087, 0, 621], [0, 725.0087, 187.5], [0, 0, 1]]), 23, 13)
    np.testing.assert_allclose(K3[:2, 2], [608, 164.5])


@pytest.mark.parametrize("call, match", [
    (lambda: distance_to_planar_depth(np.ones((4, 4)), 0.0), "focal_px"),
    (lambda: distance_to_planar_depth(np.ones(4), 1.0), "distance"),
    (lambda: planar_depth_to_distance(np.ones((4, 4)), -2), "focal_px"),
    (lambda: normals_from_depth(np.ones((4, 4)), np.eye(3), np.ones((4, 5), bool)), "mask"),
    (lambda: normals_from_depth(np.ones((4, 4, 1)), np.eye(3), np.ones((4, 4), bool)), "depth"),
    (lambda: normals_from_depth(np.ones((4, 4)), np.eye(2), np.ones((4, 4), bool)), "K"),
    (lambda: normals_from_depth(np.ones((4, 4)), np.eye(3), np.ones((4, 4), bool), max_rel_jump=0), "max_rel_jump"),
    (lambda: resize_intrinsics(np.eye(3), (0, 4), (4, 4)), "from_size"),
    (lambda: crop_intrinsics(np.eye(3), -1, 0), "top"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
