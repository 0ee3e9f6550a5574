"""The MiniScenes renderer: geometry is exact, conventions hold, output is deterministic."""
from __future__ import annotations

import numpy as np
import pytest

from genpercept_lessons.mini.scenes import IGNORE_LABEL, LABELS, colour_name, render_scene, scene_caption


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


@pytest.mark.parametrize("rgb, name", [((1, 0, 0), "red"), ((0, 0.8, 0), "green"), ((0, 0, 1), "blue"),
                                       ((1, 0.5, 0), "orange"), ((0.45, 0.25, 0.05), "brown"), ((1, 1, 0), "yellow"),
                                       ((0, 0.9, 0.9), "cyan"), ((0.6, 0.1, 0.9), "purple"), ((1, 0.3, 0.7), "pink"),
                                       ((0.5, 0.5, 0.5), "grey"), ((0.95, 0.95, 0.92), "white"), ((0.1, 0.1, 0.2), "black")])
def test_colour_names(rgb, name):
    assert colour_name(rgb) == name


@pytest.mark.parametrize("bad", [(1, 0), (1.2, 0, 0), (-0.1, 0, 0), (float("nan"), 0, 0)])
def test_colour_name_rejects_what_is_not_an_rgb_triple(bad):
    with pytest.raises(ValueError, match="rgb"):
        colour_name(bad)


def test_captions_describe_the_rendered_view():
    # what a caption names is in the view it captions, and whatever covers much of the view is named
    for index in range(40):
        scene = render_scene(0, index)
        caption = scene_caption(0, index, max_chars=300)
        area = {k: float((scene.label == LABELS.index(k)).mean()) for k in ("sphere", "box")}
        for kind, noun in (("sphere", "ball"), ("box", "box")):
            if noun in caption:
                assert area[kind] > 0, (index, caption)
            if area[kind] > 0.08:
                assert noun in caption, (index, caption, area)
        if "window" in caption:
            assert not scene.mask.all(), (index, caption)
        assert caption.endswith("walls") or caption.endswith("a window"), caption


def test_captions_fit_the_tiny_tokenizer_and_are_deterministic():
    captions = [scene_caption(1, i) for i in range(200)]
    assert max(map(len, captions)) <= 75  # 77 tokens: one per character, plus BOS and EOS
    assert captions[:20] == [scene_caption(1, i) for i in range(20)]
    assert len(set(captions)) > 150  # they tell scenes apart
    assert len(scene_caption(1, 3, max_chars=30)) <= 30


@pytest.mark.parametrize("kwargs, match", [({"max_chars": 5}, "max_chars"), ({"min_area": 1.5}, "min_area"),
                                           ({"height": 4}, "height")])
def test_scene_caption_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scene_caption(0, 0, **kwargs)
