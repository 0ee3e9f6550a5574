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
