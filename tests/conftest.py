"""Shared fixtures: a throwaway asset cache and a tiny Marigold pipeline folder in the real layout."""
from __future__ import annotations

import os

import pytest

# what a notebook kernel started later on the same test worker inherits: a test that changes one of these without
# monkeypatch would make the next lesson run on another build (once, seed 3 fp32, which it then waited to be built)
_COURSE_ENV = ("GENPERCEPT_", "HF_", "OMP_", "CUDA_")


def _course_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_COURSE_ENV)}


@pytest.fixture(autouse=True)
def _environment_left_as_found():
    """Fail a test that leaves the course's environment variables changed (monkeypatch.setenv restores its own)."""
    before = _course_env()
    yield
    after = _course_env()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        os.environ.update(before)
        for k in set(after) - set(before):
            os.environ.pop(k)
        pytest.fail(f"the test left environment variables changed: {changed} (use monkeypatch.setenv)")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """Point GENPERCEPT_CACHE at an empty temporary folder for one test."""
    monkeypatch.setenv("GENPERCEPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _tiny_pipeline(task: str, folder):
    from genpercept_lessons.course.full_standins import tiny_marigold

    tiny_marigold(task, downsample=2, tokenizer_dir=folder / "_tok").save_pretrained(folder / task)
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
