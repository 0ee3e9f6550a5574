"""Timestep schedules (from diffusers), the written-out inference loop, evaluation and the explorer's numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genpercept_lessons import get_profile, load_marigold
from genpercept_lessons.evaluation import evaluate
from genpercept_lessons.inference import predict, predict_detailed
from genpercept_lessons.mini_components import make_scheduler
from genpercept_lessons.schedules import alpha_bar, snr, timestep_table, timesteps, with_spacing


@pytest.fixture(scope="module")
def sched():
    return make_scheduler()


@pytest.mark.parametrize("spacing, steps, expected", [
    ("leading", 1, [1]), ("trailing", 1, [999]), ("linspace", 1, [0]),
    ("leading", 2, [501, 1]), ("trailing", 2, [999, 499]), ("linspace", 2, [999, 0]),
    ("leading", 4, [751, 501, 251, 1]), ("trailing", 4, [999, 749, 499, 249]), ("linspace", 4, [999, 666, 333, 0]),
])
def test_timesteps_match_facts_table(sched, spacing, steps, expected):
    assert timesteps(sched, spacing, steps) == expected


def test_ten_and_fifty_steps(sched):
    assert timesteps(sched, "leading", 10) == list(range(901, 0, -100))
    assert timesteps(sched, "trailing", 10) == list(range(999, 98, -100))
    assert timesteps(sched, "leading", 50)[:3] == [981, 961, 941] and timesteps(sched, "trailing", 50)[-1] == 19


def test_alpha_bar_and_snr(sched):
    assert alpha_bar(sched, 1) == pytest.approx(0.99830, abs=1e-5)
    assert alpha_bar(sched, 999) == pytest.approx(0.00466, abs=1e-5)
    assert snr(sched, 1) == pytest.approx(586, rel=0.01)
    rows = timestep_table(sched, steps=(1, 4))
    assert len(rows) == 6 and rows[0]["first_t"] == 1


def test_with_spacing_keeps_the_rest_of_the_config(sched):
    s = with_spacing(sched, "trailing")
    assert s.config.timestep_spacing == "trailing" and s.config.prediction_type == "v_prediction"
    assert sched.config.timestep_spacing == "leading"  # the original is untouched


@pytest.mark.parametrize("call, exc, match", [
    (lambda s: timesteps(s, "middle", 1), ValueError, "spacing"),
    (lambda s: timesteps(s, "leading", 0), ValueError, "steps"),
    (lambda s: timesteps(s, "leading", 1001), ValueError, "steps"),
    (lambda s: alpha_bar(s, 1000), ValueError, "timestep"),
    (lambda s: with_spacing("ddim", "leading"), TypeError, "scheduler"),
])
def test_schedule_bad_input(sched, call, exc, match):
    with pytest.raises(exc, match=match):
        call(sched)


@pytest.fixture(scope="module")
def tiny_depth(tiny_pipeline_dirs):
    return load_marigold(get_profile("full", device="cpu", depth_model=str(tiny_pipeline_dirs["depth"])), "depth")


@pytest.fixture(scope="module")
def tiny_normals(tiny_pipeline_dirs):
    return load_marigold(get_profile("full", device="cpu", normals_model=str(tiny_pipeline_dirs["normals"])), "normals")


IMAGES = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize("spacing, steps", [("leading", 1), ("trailing", 3), ("leading", 4)])
def test_loop_matches_the_diffusers_pipeline(tiny_depth, spacing, steps):
    from genpercept_lessons.schedules import with_spacing as ws

    tiny_depth.scheduler = ws(tiny_depth.scheduler, spacing)
    ref = tiny_depth(torch.from_numpy(IMAGES).permute(0, 3, 1, 2).float() / 255, num_inference_steps=steps,
                     processing_resolution=16, generator=torch.Generator().manual_seed(3), output_type="np",
                     batch_size=3).prediction[..., 0]
    ours = predict(tiny_depth, IMAGES, steps=steps, spacing=spacing, generator=torch.Generator().manual_seed(3))
    assert ours.shape == (3, 16, 16)
    assert np.abs(ours - ref).max() <= 1e-5


def test_zero_noise_is_deterministic_and_matches_pipeline_latents(tiny_depth):
    a = predict(tiny_depth, IMAGES, noise="zeros")
    b = predict(tiny_depth, IMAGES, noise="zeros")
    assert np.array_equal(a, b)
    tiny_depth.scheduler = with_spacing(tiny_depth.scheduler, "trailing")
    ref = tiny_depth(torch.from_numpy(IMAGES).permute(0, 3, 1, 2).float() / 255, num_inference_steps=1,
                     processing_resolution=16, latents=torch.zeros(3, 4, 8, 8), output_type="np",
                     batch_size=3).prediction[..., 0]
    assert np.abs(a - ref).max() <= 1e-5


def test_intermediates_and_ensemble(tiny_depth):
    out = predict_detailed(tiny_depth, IMAGES[:1], steps=4, spacing="trailing", ensemble=3,
                           generator=torch.Generator().manual_seed(0), keep_intermediates=True)
    assert out.timesteps == [999, 749, 499, 249]
    assert len(out.x0_latents) == 4 and len(out.step_inputs) == 4 and len(out.x0_decoded) == 4
    assert torch.equal(out.step_inputs[0], out.start_latents)
    assert out.prediction.shape == (1, 16, 16) and 0 <= out.prediction.min() and out.prediction.max() <= 1


def test_normals_prediction_is_unit(tiny_normals):
    n = predict(tiny_normals, IMAGES, noise="zeros")
    assert n.shape == (3, 16, 16, 3) and np.allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-4)
    ens = predict(tiny_normals, IMAGES[:1], ensemble=2, generator=torch.Generator().manual_seed(0))
    assert ens.shape == (1, 16, 16, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"images": np.zeros((2, 16, 16, 3), np.float32)}, "uint8"),
    ({"images": np.zeros((2, 16, 16), np.uint8)}, r"\[N,H,W,3\]"),
    ({"spacing": "middle"}, "spacing"), ({"noise": "uniform"}, "noise"), ({"steps": 0}, "steps"),
    ({"ensemble": 0}, "ensemble"), ({"latents": torch.zeros(1, 4, 8, 8)}, "latents"),
])
def test_predict_bad_input(tiny_depth, kwargs, match):
    args = {"images": IMAGES, **kwargs}
    with pytest.raises(ValueError, match=match):
        predict(tiny_depth, **args)


def test_predict_rejects_other_pipelines():
    with pytest.raises(TypeError, match="MarigoldDepthPipeline"):
        predict(object(), IMAGES)


def test_evaluate_reports_metrics_time_and_prediction(tiny_depth, tmp_cache):
    from genpercept_lessons.data import load_miniscenes

    scenes = load_miniscenes("test", settings={"version": 1, "seed": 1, "n_train": 1, "n_test": 3, "height": 16,
                                               "width": 16})
    r = evaluate(tiny_depth, scenes, n=2, steps=1, spacing="trailing", noise="zeros")
    assert set(r) == {"metrics", "per_image", "seconds", "prediction"} and r["prediction"].shape == (2, 16, 16)
    assert r["metrics"]["abs_rel"] == pytest.approx(float(np.mean(r["per_image"]["abs_rel"])))
    assert 0 <= r["metrics"]["abs_rel"] and r["seconds"] > 0
    with pytest.raises(ValueError, match="`n`"):
        evaluate(tiny_depth, scenes, n=5)
