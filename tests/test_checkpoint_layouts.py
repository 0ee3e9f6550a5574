"""The full profile's checkpoints in their real layouts, on random-weight stand-ins (no hub, no GPU).

E2E-FT saves its models as a ``StableDiffusionPipeline`` folder with an 8-channel UNet and a trailing
``DDPMScheduler`` (E2E-FT ``training/train.py``); its README loads them with ``custom_pipeline=``, its evaluation
part by part (``Marigold/infer.py``). ``load_marigold`` must turn either layout into diffusers' core Marigold pipeline.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from genpercept_lessons.profiles import FULL_CHECKPOINTS, get_profile


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _e2e_ft_layout(folder, in_channels=8):
    """A random-weight checkpoint saved as E2E-FT's trainer saves one (StableDiffusionPipeline, DDPM, trailing)."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    from genpercept_lessons.mini.components import (
        make_scheduler,
        make_text_encoder,
        make_tokenizer,
        make_unet,
        make_vae,
    )

    torch.manual_seed(1)
    unet = make_unet((32, 32), cross_attention_dim=32, sample_size=8, norm_num_groups=8, in_channels=in_channels)
    scheduler = DDPMScheduler.from_config(make_scheduler().config, timestep_spacing="trailing")
    pipe = StableDiffusionPipeline(vae=make_vae((32, 32), sample_size=16), text_encoder=make_text_encoder(32),
                                   tokenizer=make_tokenizer(folder.parent / f"_tok_{folder.name}"), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory):
    return _e2e_ft_layout(tmp_path_factory.mktemp("e2e") / "marigold-e2e-ft-depth")


def test_full_profile_checkpoint_generations(monkeypatch):
    assert get_profile("full").depth_model == "prs-eth/marigold-depth-v1-0"
    v11 = get_profile("full", checkpoints="v1-1")
    assert (v11.depth_model, v11.normals_model) == ("prs-eth/marigold-depth-v1-1", "prs-eth/marigold-normals-v1-1")
    assert "Marigold v1-1" in v11.describe()
    monkeypatch.setenv("GENPERCEPT_CHECKPOINTS", "e2e-ft")
    assert get_profile("full").normals_model == FULL_CHECKPOINTS["e2e-ft"]["normals"]
    assert get_profile("mini").checkpoints is None  # the mini profile trains its own
    with pytest.raises(ValueError, match=r"`checkpoints` \(or GENPERCEPT_CHECKPOINTS\) must be one of .*got 'v2'"):
        get_profile("full", checkpoints="v2")
    with pytest.raises(TypeError, match="only applies to the full profile"):
        get_profile("mini", checkpoints="v1-1")


def test_an_e2e_ft_folder_loads_as_the_core_marigold_pipeline(e2e_dir):
    from diffusers import AutoencoderKL, DDIMScheduler, MarigoldDepthPipeline, UNet2DConditionModel

    from genpercept_lessons.inference import predict
    from genpercept_lessons.models import load_marigold

    pipe = load_marigold(get_profile("full", device="cpu"), "depth", model=e2e_dir)
    assert type(pipe) is MarigoldDepthPipeline and type(pipe.scheduler) is DDIMScheduler
    assert pipe.scheduler.config.timestep_spacing == "trailing"  # as E2E-FT saved it
    assert pipe.config.prediction_type == "depth" and pipe.scale_invariant and pipe.shift_invariant
    assert (pipe.default_denoising_steps, pipe.default_processing_resolution) == (1, 0)  # E2E-FT's evaluation settings
    # the saved weights, not fresh ones
    unet = UNet2DConditionModel.from_pretrained(e2e_dir, subfolder="unet")
    for k, v in unet.state_dict().items():
        assert torch.equal(v, pipe.unet.state_dict()[k]), k
    # and the course's loop runs on it as on any Marigold pipeline: E2E-FT inference = 1 trailing step from zeros
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    depth = predict(pipe, images, steps=1, spacing="trailing", noise="zeros")
    assert depth.shape == (2, 16, 16) and np.isfinite(depth).all()
    by_hand = MarigoldDepthPipeline(unet=unet, vae=AutoencoderKL.from_pretrained(e2e_dir, subfolder="vae"),
                                    scheduler=DDIMScheduler.from_pretrained(e2e_dir, subfolder="scheduler"),
                                    text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, prediction_type="depth",
                                    scale_invariant=True, shift_invariant=True)
    np.testing.assert_allclose(predict(by_hand, images, noise="zeros", processing_resolution=0), depth, atol=1e-6)


def test_marigold_repo_layout_and_wrong_models_are_explained(e2e_dir, tmp_path):
    from diffusers import MarigoldNormalsPipeline

    from genpercept_lessons.models import load_marigold

    full = get_profile("full", device="cpu")
    # the Marigold repository's own class name (prs-eth/Marigold ``marigold/marigold_pipeline.py``): loaded part by part
    legacy = tmp_path / "legacy"
    shutil.copytree(e2e_dir, legacy)
    index = json.loads((legacy / "model_index.json").read_text())
    (legacy / "model_index.json").write_text(json.dumps({**index, "_class_name": "MarigoldPipeline"}))
    assert type(load_marigold(full, "normals", model=legacy)) is MarigoldNormalsPipeline
    # a text-to-image checkpoint is not an estimator
    sd = _e2e_ft_layout(tmp_path / "sd", in_channels=4)
    with pytest.raises(ValueError, match="4-channel UNet: a text-to-image model.*load_text_to_image"):
        load_marigold(full, "depth", model=sd)


def _as_hub_cache(cache, repo_id, folder):
    """Lay ``folder`` out in a Hugging Face hub cache as the snapshot of ``repo_id`` (what `hf download` leaves)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def test_hub_ids_load_offline_from_the_cache_with_their_normals_frame(e2e_dir, tmp_path):
    """By hub id, as the full profile names them: resolved offline from a hub cache holding stand-ins."""
    cache = tmp_path / "hub"
    _as_hub_cache(cache, "GonzaloMG/marigold-e2e-ft-normals", e2e_dir)
    script = textwrap.dedent("""
        from genpercept_lessons.models import load_marigold
        from genpercept_lessons.normals_convention import normals_convention
        from genpercept_lessons.profiles import get_profile
        pipe = load_marigold(get_profile("full", device="cpu", checkpoints="e2e-ft"), "normals")
        print(type(pipe).__name__, pipe.scheduler.config.timestep_spacing, normals_convention(pipe))
        try:
            load_marigold(get_profile("full", device="cpu", checkpoints="e2e-ft"), "depth")
        except RuntimeError as err:
            print("DEPTH:", str(err).splitlines()[0])
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home"),
           "OMP_NUM_THREADS": "1", "GENPERCEPT_CHECKPOINTS": ""}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "MarigoldNormalsPipeline trailing x-left"  # E2E-FT's normals are x-left (normals_convention)
    assert lines[1].startswith("DEPTH: Could not load 'GonzaloMG/marigold-e2e-ft-depth'")  # not in the cache: the hub message
