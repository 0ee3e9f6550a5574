"""label_quality: depth labels degraded the way real sensors degrade them (blurred edges, relative noise, holes)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from genpercept_lessons.label_quality import degrade_depth, degrade_depth_map

sys.path.insert(0, str(Path(__file__).parent))
from dist_e2e_worker import tiny_dataset  # noqa: E402


def _step_scene(h=32, w=32):
    """A wall at 4 m with a box at 2 m in the middle; the top rows invalid (a window)."""
    depth = np.full((h, w), 4.0, np.float32)
    depth[8:24, 8:24] = 2.0
    mask = np.ones((h, w), bool)
    mask[:3] = False
    return depth, mask


def test_each_flaw_alone_does_what_it_says():
    depth, mask = _step_scene()
    rng = np.random.default_rng
    same, m = degrade_depth_map(depth, mask, rng(0), noise=0, holes=0, blur=0)
    assert np.array_equal(same, depth) and np.array_equal(m, mask)
    # blur: flat regions keep their depth, the step becomes a ramp (mixed pixels), the invalid rows do not leak in
    blurred, m = degrade_depth_map(depth, mask, rng(0), noise=0, holes=0, blur=1.0)
    assert np.array_equal(m, mask)
    assert blurred[16, 16] == pytest.approx(2.0, abs=1e-4) and blurred[28, 2] == pytest.approx(4.0, abs=1e-4)
    assert 2.2 < blurred[16, 8] < 3.8  # on the edge: between foreground and background
    assert blurred[3, 2] == pytest.approx(4.0, abs=1e-4)  # next to the invalid rows: no pull towards their value
    # noise: relative, zero-mean, σ as asked
    noisy, _ = degrade_depth_map(depth, mask, rng(0), noise=0.05, holes=0, blur=0)
    rel = noisy / depth - 1
    assert abs(rel.mean()) < 0.01 and rel.std() == pytest.approx(0.05, rel=0.15)
    # holes: the wanted fraction of pixels becomes invalid, in blobs (neighbours of a hole are often holes)
    _, holed = degrade_depth_map(depth, np.ones_like(mask), rng(0), noise=0, holes=0.2, blur=0)
    lost = ~holed
    assert lost.mean() == pytest.approx(0.2, abs=0.03)
    assert (lost[:, 1:] & lost[:, :-1]).sum() / lost[:, 1:].sum() > 0.6


def test_degrade_depth_is_deterministic_and_keeps_the_images():
    ds = tiny_dataset(4, 16, seed=0)
    a, b = degrade_depth(ds, seed=3), degrade_depth(ds, seed=3)
    c = degrade_depth(ds, seed=4)
    assert a.column_names == ds.column_names and len(a) == len(ds)
    assert np.array_equal(np.asarray(a["depth"]), np.asarray(b["depth"]))
    assert not np.array_equal(np.asarray(a["depth"]), np.asarray(c["depth"]))
    assert np.array_equal(np.asarray(a["image"]), np.asarray(ds["image"]))
    assert np.array_equal(np.asarray(a["normals"]), np.asarray(ds["normals"]))
    assert not np.array_equal(np.asarray(a["depth"]), np.asarray(ds["depth"]))
    assert np.asarray(a["mask"]).sum() < np.asarray(ds["mask"]).sum()  # holes


@pytest.mark.parametrize("kwargs, word", [({"noise": -0.1}, "noise"), ({"holes": 1.0}, "holes"), ({"blur": -1}, "blur")])
def test_bad_settings_are_named(kwargs, word):
    depth, mask = _step_scene()
    with pytest.raises(ValueError, match=word):
        degrade_depth_map(depth, mask, np.random.default_rng(0), **kwargs)
    with pytest.raises(ValueError, match=word):
        degrade_depth(tiny_dataset(2, 16, seed=0), **kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same shape|one shape"):
        degrade_depth_map(np.ones((4, 4)), np.ones((4, 5), bool), np.random.default_rng(0))
    with pytest.raises(ValueError, match="'depth' column"):
        degrade_depth(tiny_dataset(2, 16, seed=0).remove_columns("depth"))
