"""Timestep schedules (from diffusers), the written-out inference loop, evaluation and the explorer's numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genpercept_lessons import get_profile, load_marigold
from genpercept_lessons.evaluation import evaluate
from genpercept_lessons.inference import predict, predict_detailed
from genpercept_lessons.mini.components import make_scheduler
from genpercept_lessons.noise_schedules import alpha_bar, snr, timestep_table, timesteps, with_spacing


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


def test_every_training_timestep_and_the_table(sched):
    assert timesteps(sched, "trailing", 1000) == list(range(999, -1, -1))  # 1000 steps: each timestep once
    rows = {(r["spacing"], r["steps"]): r for r in timestep_table(sched, steps=(1, 2))}
    assert rows["trailing", 2]["timesteps"] == [999, 499] and rows["trailing", 2]["first_t"] == 999
    assert rows["leading", 2]["first_t"] == 501 and rows["linspace", 1]["first_t"] == 0
    r = rows["trailing", 1]
    assert r["alpha_bar_first"] == alpha_bar(sched, 999) and r["snr_first"] == snr(sched, 999)
    assert alpha_bar(sched, 0) == pytest.approx(0.99915, abs=1e-5)


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
    from genpercept_lessons.noise_schedules import with_spacing as ws

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
    from genpercept_lessons.mini.miniscenes import load_miniscenes

    scenes = load_miniscenes("test", settings={"version": 1, "seed": 1, "n_train": 1, "n_test": 3, "height": 16,
                                               "width": 16})
    r = evaluate(tiny_depth, scenes, n=2, steps=1, spacing="trailing", noise="zeros")
    assert set(r) == {"metrics", "per_image", "seconds", "prediction"} and r["prediction"].shape == (2, 16, 16)
    assert all(len(v) == 2 for v in r["per_image"].values())
    assert r["metrics"] == pytest.approx({k: float(np.mean(v)) for k, v in r["per_image"].items()})
    assert 0 <= r["metrics"]["abs_rel"] and r["seconds"] > 0
    with pytest.raises(ValueError, match="`n`"):
        evaluate(tiny_depth, scenes, n=5)


def _pipeline_prediction(pipe, images, **kwargs):
    """diffusers' own ``MarigoldDepthPipeline`` / ``MarigoldNormalsPipeline.__call__`` as the reference."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    out = pipe(x, processing_resolution=16, output_type="np", **kwargs).prediction
    return out[..., 0] if out.shape[-1] == 1 else out


def test_depth_ensemble_is_the_pipelines_aligned_median(tiny_depth):
    """Two images × 3 members from the same start latents: our ensemble equals diffusers' (aligned median)."""
    tiny_depth.scheduler = with_spacing(tiny_depth.scheduler, "trailing")
    latents = torch.randn(6, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    ours = predict(tiny_depth, IMAGES[:2], spacing="trailing", ensemble=3, latents=latents)
    ref = _pipeline_prediction(tiny_depth, IMAGES[:2], num_inference_steps=1, ensemble_size=3, latents=latents,
                               batch_size=6)
    assert ours.shape == (2, 16, 16)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # the mean of the members (a plausible slip) is clearly another answer, so the check above can fail
    mean = _pipeline_prediction(tiny_depth, IMAGES[:2], num_inference_steps=1, ensemble_size=3, latents=latents,
                                batch_size=6, ensembling_kwargs={"reduction": "mean"})
    assert np.abs(mean - ref).max() > 1e-3
    # the same from the members one by one: diffusers' ensemble_depth (align, then median) of each image's three
    members = predict(tiny_depth, IMAGES[[0, 0, 0, 1, 1, 1]], spacing="trailing", latents=latents).reshape(2, 3, 16, 16)
    for j in range(2):
        m = torch.from_numpy(members[j])[:, None]
        aligned_median = tiny_depth.ensemble_depth(m, True, True, reduction="median")[0][0, 0].numpy()
        np.testing.assert_allclose(ours[j], aligned_median, atol=1e-5)
        assert np.abs(np.median(members[j], 0) - ours[j]).max() > 1e-3  # the unaligned median is another answer


def test_normals_ensemble_is_the_pipelines_closest_member_on_a_wide_image(tiny_normals):
    wide = np.random.default_rng(1).integers(0, 256, (2, 12, 20, 3), dtype=np.uint8)  # H != W
    tiny_normals.scheduler = with_spacing(tiny_normals.scheduler, "trailing")
    ours = predict(tiny_normals, wide, spacing="trailing", ensemble=3, generator=torch.Generator().manual_seed(2))
    ref = _pipeline_prediction(tiny_normals, wide, num_inference_steps=1, ensemble_size=3, batch_size=6,
                               generator=torch.Generator().manual_seed(2))
    assert ours.shape == ref.shape == (2, 12, 20, 3)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    mean = _pipeline_prediction(tiny_normals, wide, num_inference_steps=1, ensemble_size=3, batch_size=6,
                                generator=torch.Generator().manual_seed(2), ensembling_kwargs={"reduction": "mean"})
    assert np.abs(mean - ref).max() > 1e-3  # the averaged normal is another answer


def test_predict_uses_its_spacing_not_the_pipelines(tiny_depth):
    tiny_depth.scheduler = with_spacing(tiny_depth.scheduler, "leading")
    out = predict_detailed(tiny_depth, IMAGES, steps=2, spacing="trailing", noise="zeros")
    assert out.timesteps == [999, 499]
    assert tiny_depth.scheduler.config.timestep_spacing == "leading"  # the pipeline is not changed
    tiny_depth.scheduler = with_spacing(tiny_depth.scheduler, "trailing")
    ref = _pipeline_prediction(tiny_depth, IMAGES, num_inference_steps=2, latents=torch.zeros(3, 4, 8, 8),
                               batch_size=3)
    np.testing.assert_allclose(out.prediction, ref, atol=1e-5)


def test_intermediates_are_each_steps_x0(tiny_depth):
    """DDIM with v-prediction: from z_t and x̂0 follow v̂, ε̂ and z_prev; that must be the next step's input."""
    out = predict_detailed(tiny_depth, IMAGES[:2], steps=3, spacing="trailing",
                           generator=torch.Generator().manual_seed(4), keep_intermediates=True)
    assert out.timesteps == [999, 666, 332]
    ab = with_spacing(tiny_depth.scheduler, "trailing").alphas_cumprod.double()
    for k in range(2):
        z, x0 = out.step_inputs[k].double(), out.x0_latents[k].double()
        # diffusers' DDIM steps to t − T/steps (333 after 666), even where the next timestep fed is 332
        a, a_prev = ab[out.timesteps[k]], ab[out.timesteps[k] - 1000 // 3]
        v = (a.sqrt() * z - x0) / (1 - a).sqrt()
        eps = a.sqrt() * v + (1 - a).sqrt() * z
        z_prev = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        torch.testing.assert_close(z_prev, out.step_inputs[k + 1].double(), rtol=1e-4, atol=1e-4)
    for lat, dec in zip(out.x0_latents, out.x0_decoded):
        with torch.no_grad():
            want = tiny_depth.decode_prediction(lat)[:, 0].numpy()
        np.testing.assert_allclose(dec, want, atol=1e-6)
