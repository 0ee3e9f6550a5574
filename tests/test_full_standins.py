"""Stand-ins with the full profile's architecture, and the E2E-FT memory measurement that runs on them.

The configurations are checked against the real models' published parameter counts (SD2's UNet 865,910,724 with
4 input channels, + 4 × 320 × 3 × 3 for Marigold's 8; SD's VAE 83,653,863; OpenCLIP ViT-H's 23-layer text tower as
SD2 uses it 340,387,840), built on the meta device so no memory is spent. The memory step runs on the tiny pipeline.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genpercept_lessons.cli.main import main
from genpercept_lessons.course.full_standins import (
    SD2_TEXT_ENCODER_CONFIG,
    SD2_UNET_CONFIG,
    SD_VAE_CONFIG,
    parameter_counts,
    standin_marigold,
    tiny_marigold,
)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_configs_give_the_real_models_parameter_counts():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD2_UNET_CONFIG)
        unet4 = UNet2DConditionModel(**{**SD2_UNET_CONFIG, "in_channels": 4})
        vae = AutoencoderKL(**SD_VAE_CONFIG)
        text = CLIPTextModel(CLIPTextConfig(**SD2_TEXT_ENCODER_CONFIG))
    assert _count(unet4) == 865_910_724
    assert _count(unet) == 865_910_724 + 4 * 320 * 3 * 3  # Marigold's conv_in takes 8 channels
    assert _count(vae) == 83_653_863 and vae.config.scaling_factor == 0.18215
    assert _count(text) == 340_387_840 and text.config.max_position_embeddings == 77


@pytest.mark.parametrize("kwargs, message", [
    (dict(task="height"), "task"),
    (dict(layers=3), r"`layers` must be an int in 1\.\.2, got 3"),
    (dict(text_layers=0), r"`text_layers` must be an int in 1\.\.23, got 0"),
    (dict(layers=1.5), r"`layers` must be an int"),
])
def test_standin_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        standin_marigold(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(task="height"), "task"), (dict(downsample=4), r"`downsample` must be 2 or 8, got 4")])
def test_tiny_marigold_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_marigold(**kwargs)


@pytest.mark.parametrize("downsample, resolution", [(2, 16), (8, 64)])
def test_tiny_marigold_downsamples_as_asked(downsample, resolution, tmp_path):
    pipe = tiny_marigold("normals", downsample=downsample, tokenizer_dir=tmp_path / "tok")
    assert pipe.vae_scale_factor == downsample and pipe.default_processing_resolution == resolution
    with torch.no_grad():
        latent = pipe.vae.encode(torch.zeros(1, 3, resolution, resolution)).latent_dist.mode()
    assert latent.shape == (1, 4, resolution // downsample, resolution // downsample)


def test_parameter_counts_rejects_a_pipeline_without_the_parts():
    with pytest.raises(ValueError, match="lacks unet, vae, text_encoder"):
        parameter_counts(object())


@pytest.fixture
def tiny_depth(tiny_pipeline_dirs):
    from genpercept_lessons import get_profile
    from genpercept_lessons.cli.predict import load_pipeline

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_pipeline(get_profile("mini", depth_model=str(tiny_pipeline_dirs["depth"])), "depth")
    torch.set_num_threads(n)


def test_e2e_step_memory_runs_one_real_step_and_reports_each_phase(tiny_depth):
    from genpercept_lessons.cli.bench import e2e_step_memory, format_memory_report

    before = {k: v.clone() for k, v in tiny_depth.unet.state_dict().items()}
    result = e2e_step_memory(tiny_depth, 16, 24)
    phases = result["phases"]
    assert [p["phase"].split(":")[0].split(" (")[0] for p in phases] == [
        "models loaded", "step 1 forward", "step 1 backward", "step 1 AdamW update", "step 2 forward", "step 2 backward",
        "step 2 AdamW update"]
    peaks = [p["peak_mb"] for p in phases]
    assert all(b >= a for a, b in zip(peaks, peaks[1:])) and peaks[0] > 0  # a peak so far never falls
    assert result["config"].gradient_checkpointing and result["config"].mixed_precision == "bf16"
    assert result["config"].batch_size == 1 and result["config"].grad_accumulation == 1
    changed = [k for k, v in tiny_depth.unet.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the optimiser step changed no UNet weight"
    assert np.isfinite(result["loss"]) and result["loss"] > 0
    n = parameter_counts(tiny_depth)["unet"]
    assert result["arithmetic_mb"]["AdamW moments, 2 x fp32"] == pytest.approx(n * 8 / 2 ** 20)
    held = result["phases"][-1]["peak_mb"] - sum(parameter_counts(tiny_depth).values()) * 4 / 2 ** 20 - n * 8 / 2 ** 20
    assert f"{held:,.0f} MiB of activations" in format_memory_report(result)
    text = format_memory_report(result)
    assert "batch 1 of 16x24" in text and "gradient checkpointing on" in text and text.count("\n") == 11
    with pytest.raises(ValueError, match=r"`steps` must be an int in 1\.\.10, got 0"):
        e2e_step_memory(tiny_depth, 16, 24, steps=0)
    with pytest.raises(ValueError, match=r"`height` must be a positive multiple of 8 .* got 20"):
        e2e_step_memory(tiny_depth, 20, 24)
    with pytest.raises(ValueError, match="what e2e_step_memory returned"):
        format_memory_report({})


def test_bench_e2e_memory_command_on_a_model_folder(tiny_pipeline_dirs, capsys):
    threads = torch.get_num_threads()
    assert main(["bench", "--e2e-memory", "--model", str(tiny_pipeline_dirs["depth"]), "--height", "16",
                 "--width", "16", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    torch.set_num_threads(threads)  # --threads 1 set it for this process
    assert "E2E-FT optimiser steps, batch 1 of 16x16" in out and "step 2 AdamW update" in out
