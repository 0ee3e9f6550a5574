"""Shared fixtures: a throwaway asset cache and a tiny Marigold pipeline folder in the real layout."""
from __future__ import annotations

import pytest


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """Point GENPERCEPT_CACHE at an empty temporary folder for one test."""
    monkeypatch.setenv("GENPERCEPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _tiny_pipeline(task: str, folder):
    import torch

    from genpercept_lessons.mini.components import make_text_encoder, make_tokenizer, make_unet, make_vae
    from genpercept_lessons.mini.marigold_training import make_pipeline

    torch.manual_seed(0)
    vae = make_vae((32, 32), sample_size=16)
    unet = make_unet((32, 32), cross_attention_dim=32, sample_size=8)
    tok = make_tokenizer(folder / "_tok")
    pipe = make_pipeline(task, unet, vae, make_text_encoder(32), tok, 16)
    pipe.save_pretrained(folder / task)
    return folder / task


@pytest.fixture(scope="session")
def tiny_pipeline_dirs(tmp_path_factory):
    """A random-weight depth and normals pipeline (×2 VAE, 16 px) saved in Marigold's on-disk layout."""
    root = tmp_path_factory.mktemp("tiny_marigold")
    return {task: _tiny_pipeline(task, root) for task in ("depth", "normals")}


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    """A random-weight text-to-image pipeline (mini-SD's parts, 16 px) saved as a StableDiffusionPipeline folder."""
    import torch

    from genpercept_lessons.mini.components import make_text_encoder, make_tokenizer, make_unet, make_vae
    from genpercept_lessons.mini.marigold_training import make_text_to_image_pipeline

    root = tmp_path_factory.mktemp("tiny_sd")
    torch.manual_seed(0)
    unet = make_unet((32, 32), cross_attention_dim=32, sample_size=8, norm_num_groups=8, in_channels=4)
    pipe = make_text_to_image_pipeline(unet, make_vae((32, 32), sample_size=16), make_text_encoder(32),
                                       make_tokenizer(root / "_tok"))
    pipe.save_pretrained(root / "sd")
    return root / "sd"
