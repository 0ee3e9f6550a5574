"""The MiniScenes renderer: geometry is exact, conventions hold, output is deterministic."""
from __future__ import annotations

import numpy as np
import pytest

from genpercept_lessons.mini.scenes import IGNORE_LABEL, LABELS, render_scene


@pytest.fixture(scope="module")
def scenes():
    return [render_scene(7, i, 48, 64) for i in range(12)]


def test_shapes_and_dtypes(scenes):
    s = scenes[0]
    assert s.image.shape == (48, 64, 3) and s.image.dtype == np.uint8
    assert s.depth.shape == (48, 64) and s.depth.dtype == np.float32
    assert s.normals.shape == (48, 64, 3) and s.normals.dtype == np.float32
    assert s.mask.dtype == bool and s.label.dtype == np.uint8 and s.K.shape == (3, 3)


def test_depth_positive_and_normals_unit_where_valid(scenes):
    for s in scenes:
        assert s.mask.mean() > 0.5
        assert (s.depth[s.mask] > 0.05).all() and (s.depth[s.mask] < 20).all()
        assert np.allclose(np.linalg.norm(s.normals[s.mask], axis=-1), 1.0, atol=1e-5)
        assert (s.depth[~s.mask] == 0).all() and (s.label[~s.mask] == IGNORE_LABEL).all()
        assert set(np.unique(s.label[s.mask])) <= set(range(len(LABELS)))


def test_normals_face_the_camera(scenes):
    """Every visible surface faces the viewer: the normal points against the viewing ray."""
    for s in scenes:
        h, w = s.depth.shape
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        rays_cv = np.stack([(u - s.K[0, 2]) / s.K[0, 0], (v - s.K[1, 2]) / s.K[1, 1], np.ones_like(u)], -1)
        rays_gl = rays_cv * np.array([1, -1, -1])  # same y-up / z-toward-viewer frame as the normals
        assert ((rays_gl * s.normals).sum(-1)[s.mask] < 1e-6).all()


def _normals_from_depth(depth, K):
    """Normals from back-projected depth via finite-difference cross products, in the y-up, z-toward-viewer frame."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    P = np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
    du, dv = P[1:-1, 2:] - P[1:-1, :-2], P[2:, 1:-1] - P[:-2, 1:-1]
    n = np.cross(dv, du)  # OpenCV frame, pointing towards the camera
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
    return n * np.array([1, -1, -1])


def test_normals_agree_with_depth_on_planes(scenes):
    """On planar regions (a 3×3 neighbourhood of one label, away from edges) depth-derived normals match."""
    errors = []
    for s in scenes:
        n_depth = _normals_from_depth(s.depth.astype(np.float64), s.K.astype(np.float64))
        lab = s.label
        same = np.ones_like(lab[1:-1, 1:-1], dtype=bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                same &= lab[1 + dy:lab.shape[0] - 1 + dy, 1 + dx:lab.shape[1] - 1 + dx] == lab[1:-1, 1:-1]
        planar = same & np.isin(lab[1:-1, 1:-1], [0, 1, 2, 4])  # floor, walls, ceiling, box faces
        cos = (n_depth * s.normals[1:-1, 1:-1]).sum(-1)[planar]
        errors.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    err = np.concatenate(errors)
    assert len(err) > 1000
    assert np.median(err) < 0.5 and np.percentile(err, 95) < 3.0


def test_deterministic_per_seed_and_index():
    a, b = render_scene(3, 5, 32, 32), render_scene(3, 5, 32, 32)
    c = render_scene(4, 5, 32, 32)
    for f in ("image", "depth", "normals", "mask", "label", "K"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.image, c.image)


def test_size_is_configurable():
    s = render_scene(0, 0, 40, 96)
    assert s.image.shape == (40, 96, 3)
    assert s.K[0, 2] == 48 and s.K[1, 2] == 20


@pytest.mark.parametrize("kwargs, match", [({"height": 4}, "height"), ({"width": 64.5}, "width"),
                                           ({"supersample": 9}, "supersample")])
def test_bad_sizes_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        render_scene(0, 0, **kwargs)
