"""Figures and the timestep explorer's numbers."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from genpercept_lessons import get_profile, load_marigold
from genpercept_lessons.mini.scenes import render_scene
from genpercept_lessons.viz import (
    add_label_legend,
    colorize_depth,
    colorize_labels,
    colorize_normals,
    error_map,
    metric_vs_steps,
    prediction_grid,
    scene_figure,
)
from genpercept_lessons.widgets import noise_levels


def test_colours_follow_diffusers_conventions():
    n = np.zeros((2, 2, 3), np.float32)
    n[..., 2] = 1
    assert tuple(colorize_normals(n)[0, 0]) in {(127, 127, 255), (128, 128, 255)}
    d = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    img = colorize_depth(d)
    assert img.shape == (2, 2, 3) and img[0, 0, 0] > img[0, 0, 2]  # near = red (Spectral)
    assert colorize_labels(np.array([[0, 255]], np.uint8))[0, 1].sum() == 0


def test_figures_build():
    s = render_scene(0, 0, 32, 32)
    assert scene_figure(vars(s)).axes
    depth = np.stack([s.depth, s.depth])
    assert len(prediction_grid(np.stack([s.image, s.image]), {"a": depth}).axes) == 4
    assert metric_vs_steps({"leading": {1: {"abs_rel": 0.4}, 2: {"abs_rel": 0.2}}}).axes
    both = {"trailing": {1: {"abs_rel": 0.1, "delta1": 0.9}, 2: {"abs_rel": 0.12, "delta1": 0.88}}}
    fig = metric_vs_steps(both, ("abs_rel", "delta1"), reference={"ensemble": {"abs_rel": 0.1, "delta1": 0.9}})
    assert [ax.get_ylabel() for ax in fig.axes] == ["abs_rel", "delta1"]
    import matplotlib.pyplot as plt

    legend = add_label_legend(plt.figure()).legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["floor", "wall", "ceiling", "sphere", "box", "invalid"]
    first = legend.legend_handles[0].get_facecolor()[:3]
    assert np.allclose(np.array(first) * 255, colorize_labels(np.zeros((1, 1), np.uint8))[0, 0], atol=1)
    e = error_map(s.depth * 1.1, s.depth, s.mask)
    assert np.allclose(e[s.mask], 0.1, atol=1e-5) and np.isnan(e[~s.mask]).all()


@pytest.mark.parametrize("call, exc", [
    (lambda: colorize_depth(np.zeros((2, 2, 2))), ValueError), (lambda: colorize_normals(np.zeros((2, 2))), ValueError),
    (lambda: prediction_grid(np.zeros((2, 4, 4)), {"a": 1}), ValueError), (lambda: metric_vs_steps({}), ValueError),
    (lambda: metric_vs_steps({"leading": {1: {"abs_rel": 0.4}}}, ("abs_rel", "delta1")), ValueError),
    (lambda: metric_vs_steps({"leading": {1: {"abs_rel": 0.4}}}, "abs_rel", ylabel=("a", "b")), ValueError),
    (lambda: scene_figure({"image": 1}), KeyError), (lambda: add_label_legend("fig"), TypeError),
    (lambda: error_map(np.zeros(3), np.zeros(3), np.zeros(3)), ValueError),
])
def test_viz_bad_input(call, exc):
    with pytest.raises(exc):
        call()


def test_noise_levels_expose_the_mismatch(tiny_pipeline_dirs):
    pipe = load_marigold(get_profile("full", device="cpu", depth_model=str(tiny_pipeline_dirs["depth"])), "depth")
    s = render_scene(0, 1, 16, 16)
    lead, _ = noise_levels(pipe, s.image, s.depth, s.mask, "leading", 1)
    trail, out = noise_levels(pipe, s.image, s.depth, s.mask, "trailing", 2)
    assert lead[0]["t"] == 1 and lead[0]["expected_noise"] < 0.05 and lead[0]["actual_noise"] > 0.5
    assert [r["t"] for r in trail] == [999, 499] and trail[0]["expected_noise"] > 0.99
    assert len(out.x0_decoded) == 2
    with pytest.raises(ValueError, match="uint8"):
        noise_levels(pipe, s.image.astype(float), s.depth, s.mask, "leading", 1)
