"""The built mini assets (``make test`` builds them first): diffusers loads them, and they reach the issue's numbers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genpercept_lessons import get_profile, load_marigold, load_miniscenes
from genpercept_lessons.assets import METADATA_FILE, read_metadata
from genpercept_lessons.mini.build import mini_assets_ready
from genpercept_lessons.mini.components import MARIGOLD_V1_0_SCHEDULER

pytestmark = pytest.mark.skipif(not all(mini_assets_ready().values()),
                                reason="mini assets not built: run `make assets` (make test does it first)")


@pytest.fixture(scope="module")
def profile():
    return get_profile("mini")


@pytest.mark.parametrize("task", ["depth", "normals"])
def test_saved_folder_is_marigold_layout_and_runs(profile, task):
    from diffusers import MarigoldDepthPipeline, MarigoldNormalsPipeline

    folder = Path(getattr(profile, f"{task}_model"))
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ("MarigoldDepthPipeline" if task == "depth" else "MarigoldNormalsPipeline")
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert {k: sched[k] for k in MARIGOLD_V1_0_SCHEDULER if not k.startswith("_")} == \
        {k: v for k, v in MARIGOLD_V1_0_SCHEDULER.items() if not k.startswith("_")}
    cls = MarigoldDepthPipeline if task == "depth" else MarigoldNormalsPipeline
    pipe = cls.from_pretrained(folder)  # plain diffusers, no course code involved
    assert pipe.unet.config.in_channels == 8 and pipe.vae.config.scaling_factor != 0.18215
    rows = load_miniscenes("test")[:2]
    images = torch.from_numpy(rows["image"]).permute(0, 3, 1, 2).float() / 255
    pred = pipe(images, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np").prediction
    assert pred.shape[:3] == (2, 64, 64) and np.isfinite(pred).all()
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["report"]["empty_embedding_shape"][:2] == [1, 2]


def test_load_marigold_returns_the_mini_pipelines(profile):
    assert type(load_marigold(profile, "depth")).__name__ == "MarigoldDepthPipeline"
    assert type(load_marigold(profile, "normals")).__name__ == "MarigoldNormalsPipeline"


# The build's quality gates, on the 200 held-out scenes it evaluated. Every learner trains their own build, so each
# threshold leaves room beyond the worst of the builds measured (docs/robustness.md: seeds 0 and 1 of this recipe,
# bf16 and fp32; docs/recipe-history.md: the earlier recipes, seeds 0-3).
def test_depth_model_shows_the_bug_and_beats_the_baseline(profile):
    q = read_metadata(profile.depth_model)["held_out"]
    trailing, leading = q["trailing_1step"]["abs_rel"], q["leading_1step"]["abs_rel"]
    assert trailing <= 0.13, q
    assert leading >= 3 * trailing, q
    assert trailing <= 0.5 * q["constant_mean_map"]["abs_rel"], q
    # zeros vs a Gaussian start: a few % apart, better on some builds and worse on others (lesson 04), so only "close"
    assert abs(q["trailing_1step_zero_noise"]["abs_rel"] / trailing - 1) <= 0.1, q


def test_normals_model_shows_the_bug_and_beats_the_baseline(profile):
    q = read_metadata(profile.normals_model)["held_out"]
    trailing, leading = q["trailing_1step"]["mean"], q["leading_1step"]["mean"]
    assert trailing <= 16.0, q  # mean angular error in degrees
    assert trailing <= 0.5 * q["constant_mean_map"]["mean"], q
    assert leading >= 3 * trailing, q
    assert abs(q["trailing_1step_zero_noise"]["mean"] / trailing - 1) <= 0.1, q


def test_vae_metadata_records_scaling_factor(profile):
    from genpercept_lessons.mini.build import mini_asset_paths

    meta = read_metadata(mini_asset_paths()["vae"])
    folder = Path(profile.depth_model) / "vae" / "config.json"
    assert json.loads(folder.read_text())["scaling_factor"] == pytest.approx(meta["report"]["scaling_factor"])


def test_mini_sd_reads_its_captions_and_marigold_carries_its_text_encoder(profile):
    """The build's held-out check: a view's own caption explains it better than another view's; the fine-tunes keep
    mini-SD's (trained) text encoder, as Marigold keeps SD's."""
    from safetensors.torch import load_file

    from genpercept_lessons.mini.build import mini_asset_paths

    paths = mini_asset_paths()
    loss = read_metadata(paths["sd"])["report"]["held_out_v_loss"]
    assert loss["own caption"] < loss["another view's caption"]
    sd_text = load_file(next((paths["sd"] / "text_encoder").glob("*.safetensors")))
    for task in ("depth", "normals"):
        text = load_file(next((paths[task] / "text_encoder").glob("*.safetensors")))
        assert text.keys() == sd_text.keys() and all(torch.equal(text[k], sd_text[k]) for k in text)
