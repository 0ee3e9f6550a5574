"""Loading Marigold pipelines: the real on-disk layout, the full-profile code path, and clear errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from genpercept_lessons import get_profile, load_marigold
from genpercept_lessons.inference import encode_empty_prompt
from genpercept_lessons.mini.components import MARIGOLD_V1_0_SCHEDULER


def test_layout_matches_marigold_v1_0(tiny_pipeline_dirs):
    folder = tiny_pipeline_dirs["depth"]
    for sub in ("unet", "vae", "scheduler", "text_encoder", "tokenizer"):
        assert (folder / sub).is_dir(), sub
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "MarigoldDepthPipeline" and index["prediction_type"] == "depth"
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    for key, value in MARIGOLD_V1_0_SCHEDULER.items():
        if not key.startswith("_"):
            assert sched[key] == value, key
    assert sched.get("timestep_spacing", "leading") == "leading"
    normals_index = json.loads((tiny_pipeline_dirs["normals"] / "model_index.json").read_text())
    assert normals_index["_class_name"] == "MarigoldNormalsPipeline"


def test_full_profile_code_path_on_a_local_folder(tiny_pipeline_dirs):
    """The full profile loads whatever folder or hub id it names with the same function: here a tiny local copy."""
    for task in ("depth", "normals"):
        profile = get_profile("full", device="cpu", **{f"{task}_model": str(tiny_pipeline_dirs[task])})
        pipe = load_marigold(profile, task)
        assert type(pipe).__name__ == ("MarigoldDepthPipeline" if task == "depth" else "MarigoldNormalsPipeline")
        assert pipe.unet.config.in_channels == 8
        image = torch.rand(2, 3, 16, 16)
        out = pipe(image, num_inference_steps=1, processing_resolution=16, generator=torch.Generator().manual_seed(0),
                   output_type="np").prediction
        assert out.shape == ((2, 16, 16, 1) if task == "depth" else (2, 16, 16, 3))
        assert np.isfinite(out).all()
        if task == "normals":
            assert np.allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-4)


def test_empty_prompt_embedding_is_two_tokens(tiny_pipeline_dirs):
    pipe = load_marigold(get_profile("full", device="cpu", depth_model=str(tiny_pipeline_dirs["depth"])), "depth")
    emb = encode_empty_prompt(pipe.tokenizer, pipe.text_encoder)
    assert emb.shape == (1, 2, 32)
    pipe(torch.rand(1, 3, 16, 16), num_inference_steps=1, processing_resolution=16)
    assert torch.allclose(pipe.empty_text_embedding, emb)  # exactly what the pipeline computes at inference


def test_unreachable_hub_gives_actionable_message(tmp_path):
    code = ("from genpercept_lessons import get_profile, load_marigold\n"
            "load_marigold(get_profile('full', device='cpu', depth_model='prs-eth/marigold-depth-v1-0'))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    assert "RuntimeError: Could not load 'prs-eth/marigold-depth-v1-0'" in r.stderr, r.stderr[-2000:]
    assert "What to do" in r.stderr and "get_profile('mini')" in r.stderr
    assert "During handling of the above exception" not in r.stderr  # no deep library traceback chained in


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"task": "segmentation"}, ValueError, "task"),
    ({"profile": 3}, TypeError, "profile"),
    ({"profile": "huge"}, ValueError, "one of"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load_marigold(**kwargs)


def test_missing_local_folder():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_marigold(get_profile("full", device="cpu", depth_model="/nonexistent/marigold"), "depth")


def test_with_scheduler_runs_a_v1_0_checkpoint_with_the_v1_1_schedule(tiny_pipeline_dirs):
    """Marigold v1-1's schedule on any checkpoint: ᾱ_T = 0, trailing, x̂₀ = −v̂; the original pipeline is untouched."""
    from genpercept_lessons.inference import predict_detailed
    from genpercept_lessons.models import with_scheduler
    from genpercept_lessons.noise_schedules import with_zero_terminal_snr

    pipe = load_marigold(get_profile("full", device="cpu", depth_model=str(tiny_pipeline_dirs["depth"])), "depth")
    zero_snr = with_zero_terminal_snr(pipe.scheduler)
    assert float(zero_snr.alphas_cumprod[-1]) == 0.0 and zero_snr.config.timestep_spacing == "trailing"
    v11 = with_scheduler(pipe, zero_snr)
    assert v11.scheduler.config.rescale_betas_zero_snr and not pipe.scheduler.config.get("rescale_betas_zero_snr")
    assert v11.unet is pipe.unet and v11.default_processing_resolution == pipe.default_processing_resolution
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    runs = [predict_detailed(p, images, steps=1, generator=torch.Generator().manual_seed(0), keep_intermediates=True)
            for p in (pipe, v11)]
    assert runs[0].timesteps == runs[1].timesteps == [999] and torch.equal(runs[0].start_latents, runs[1].start_latents)
    # the UNet sees the same input and t in both, so v̂ is the same: x̂₀ = √ᾱ·z − √(1−ᾱ)·v̂ with ᾱ_999 > 0, and −v̂ at zero SNR
    a = pipe.scheduler.alphas_cumprod[999]
    expected = a.sqrt() * runs[0].start_latents + (1 - a).sqrt() * runs[1].x0_latents[0]
    assert torch.allclose(runs[0].x0_latents[0], expected, atol=1e-5)
    with pytest.raises(TypeError, match="scheduler"):
        with_scheduler(pipe, "trailing")
    with pytest.raises(TypeError, match="Marigold"):
        with_scheduler(object(), zero_snr)
