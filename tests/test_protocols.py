"""Marigold's evaluation protocols and their use in evaluation.evaluate.

Sources: Marigold's ``src/util/alignment.py``, ``src/util/metric.py``, ``script/depth/eval.py``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from genpercept_lessons import evaluation
from genpercept_lessons.metrics import depth_metrics, normal_metrics
from genpercept_lessons.protocols import PROTOCOLS, EvalProtocol, evaluation_mask, get_protocol


def test_protocol_table():
    assert get_protocol("nyuv2") == EvalProtocol("nyuv2", 1e-3, 10.0, (45, 471, 41, 601), False, (480, 640))
    assert (get_protocol("kitti").min_depth, get_protocol("kitti").max_depth) == (1e-5, 80.0)
    assert get_protocol("miniscenes").crop is None and get_protocol("miniscenes").max_depth is None
    assert {"miniscenes", "nyuv2", "kitti", "kitti_garg"} <= set(PROTOCOLS)
    p = get_protocol("kitti")
    assert get_protocol(p) is p
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.max_depth = 100.0


def test_nyu_eigen_crop():
    m = evaluation_mask("nyuv2", np.ones((2, 480, 640), bool))
    assert m.shape == (2, 480, 640) and m.sum() == 2 * (471 - 45) * (601 - 41)
    assert m[0, 45, 41] and m[0, 470, 600] and not m[0, 44, 41] and not m[0, 471, 100] and not m[0, 100, 601]
    holes = np.ones((480, 640), bool)
    holes[100, 100] = False
    assert not evaluation_mask("nyuv2", holes)[100, 100]  # the input mask is kept


def test_kitti_eigen_and_garg_masks():
    m = evaluation_mask("kitti", np.ones((352, 1216), bool))
    rows, cols = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
    # int(0.3324324*352) = 117, int(0.91351351*352) = 321, int(0.0359477*1216) = 43, int(0.96405229*1216) = 1172
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (117, 321, 43, 1172)
    g = evaluation_mask("kitti_garg", np.ones((352, 1216), bool))
    rows = np.nonzero(g.any(1))[0]
    assert (rows[0], rows[-1] + 1) == (int(0.40810811 * 352), int(0.99189189 * 352))


def test_depth_range_is_applied_when_depth_is_given():
    depth = np.array([[0.0005, 0.5], [9.5, 12.0]])
    m = evaluation_mask("miniscenes", np.ones((2, 2), bool), depth)
    assert m.tolist() == [[False, True], [True, True]]
    crop_free = EvalProtocol("nyu_no_crop", 1e-3, 10.0)
    assert evaluation_mask(crop_free, np.ones((2, 2), bool), depth).tolist() == [[False, True], [True, False]]


def test_depth_range_bounds_are_exclusive():
    # Marigold: valid = (depth > min_depth) & (depth < max_depth); depth exactly at either bound is not scored
    depth = np.array([[1e-3, 10.0, 5.0, 1.0001e-3, 9.9999]])
    m = evaluation_mask(EvalProtocol("nyu_no_crop", 1e-3, 10.0), np.ones((1, 5), bool), depth)
    assert m.tolist() == [[False, False, True, True, True]]


@pytest.mark.parametrize("call, exc, match", [
    (lambda: get_protocol("diode"), ValueError, "one of"),
    (lambda: evaluation_mask("nyuv2", np.ones((64, 64), bool)), ValueError, "480x640"),
    (lambda: evaluation_mask("kitti", np.ones((375, 1242), bool)), ValueError, "352x1216"),
    (lambda: evaluation_mask(EvalProtocol("x", 0.0, None, (0, 100, 0, 10)), np.ones((50, 50), bool)), ValueError,
     "does not fit"),
    (lambda: evaluation_mask("nyuv2", np.ones(640, bool)), ValueError, "mask"),
    (lambda: evaluation_mask("miniscenes", np.ones((4, 4), bool), np.ones((4, 5))), ValueError, "depth"),
])
def test_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


class _FakeDepthPipe:
    pass


class _FakeNormalsPipe:
    pass


_FakeDepthPipe.__name__ = "MarigoldDepthPipeline"
_FakeNormalsPipe.__name__ = "MarigoldNormalsPipeline"


def _rows(h, w, n=2, seed=0):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 14.0, (n, h, w)).astype(np.float32)
    mask = rng.random((n, h, w)) > 0.1
    normals = rng.normal(size=(n, h, w, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return {"image": np.zeros((n, h, w, 3), np.uint8), "depth": depth, "mask": mask, "normals": normals}


class _Rows(dict):
    def __len__(self):
        return len(self["depth"])

    def __getitem__(self, key):
        if isinstance(key, slice):
            return {k: v[key] for k, v in self.items()}
        return dict.__getitem__(self, key)


def test_evaluate_default_protocol_is_unchanged_and_nyuv2_crops(monkeypatch):
    scenes = _Rows(_rows(480, 640))
    rng = np.random.default_rng(1)
    pred = (scenes["depth"] * 0.5 + 0.2 + rng.normal(0, 0.5, scenes["depth"].shape)).astype(np.float32)
    monkeypatch.setattr(evaluation, "predict", lambda pipe, images, **kw: pred)
    default = evaluation.evaluate(_FakeDepthPipe(), scenes)["metrics"]
    assert default == depth_metrics(pred, scenes["depth"], scenes["mask"])  # the pre-protocol behaviour
    nyu = evaluation.evaluate(_FakeDepthPipe(), scenes, protocol="nyuv2")["metrics"]
    eigen = evaluation_mask("nyuv2", scenes["mask"]) & (scenes["depth"] < 10)
    assert nyu == depth_metrics(pred, scenes["depth"], eigen, min_depth=1e-3, max_depth=10.0)
    assert nyu != default


def test_evaluate_normals_use_the_crop_and_skip_unknown_normals(monkeypatch):
    scenes = _Rows(_rows(480, 640, seed=2))
    scenes["normals"][0, :240] = 0  # unknown normals in the schema
    pred = np.roll(scenes["normals"], 1, axis=-1)
    monkeypatch.setattr(evaluation, "predict", lambda pipe, images, **kw: pred)
    out = evaluation.evaluate(_FakeNormalsPipe(), scenes, protocol="nyuv2")["metrics"]
    mask = evaluation_mask("nyuv2", scenes["mask"])
    mask[0, :240] = False
    assert out == normal_metrics(pred, scenes["normals"], mask)


def test_evaluate_refuses_before_predicting(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("predict must not run")

    monkeypatch.setattr(evaluation, "predict", boom)
    scenes = _Rows(_rows(64, 64))
    with pytest.raises(ValueError, match="one of"):
        evaluation.evaluate(_FakeDepthPipe(), scenes, protocol="eth3d")
    with pytest.raises(ValueError, match="480x640"):
        evaluation.evaluate(_FakeDepthPipe(), scenes, protocol="nyuv2")
