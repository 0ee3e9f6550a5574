"""Normals conventions: E2E-FT's checkpoints predict x-left, the course works in x-right; one conversion at the boundary."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genpercept_lessons.normals_convention import (
    CONVENTION_FILE,
    checkpoint_convention,
    convert_normals,
    normals_convention,
    set_normals_convention,
    write_convention,
)

sys.path.insert(0, str(Path(__file__).parent))
from dist_e2e_worker import tiny_dataset  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset(4, 16, seed=3)


@pytest.fixture
def normals_pipe(tiny_pipeline_dirs):
    from diffusers import MarigoldNormalsPipeline

    return MarigoldNormalsPipeline.from_pretrained(tiny_pipeline_dirs["normals"])


def _angles(p, g):
    return np.degrees(np.arccos(np.clip((p * g).sum(-1), -1, 1)))


def test_convert_negates_x_only_on_either_layout_and_is_its_own_inverse():
    rng = np.random.default_rng(0)
    n = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    left = convert_normals(n, "x-right", "x-left")
    np.testing.assert_array_equal(left[..., 0], -n[..., 0])
    np.testing.assert_array_equal(left[..., 1:], n[..., 1:])
    np.testing.assert_array_equal(convert_normals(left, "x-left", "x-right"), n)
    assert convert_normals(n, "x-left", "x-left") is n
    t = torch.from_numpy(n).permute(0, 3, 1, 2).requires_grad_(True)  # [N,3,H,W]
    out = convert_normals(t, "x-left", "x-right", axis=1)
    torch.testing.assert_close(out.permute(0, 2, 3, 1).detach(), torch.from_numpy(left))
    out.sum().backward()  # differentiable: the training loss goes through it
    assert torch.equal(t.grad[:, 0], -torch.ones_like(t.grad[:, 0])) and torch.equal(t.grad[:, 1:], torch.ones_like(t.grad[:, 1:]))


def test_convert_rejects_bad_input():
    n = np.zeros((2, 2, 3))
    with pytest.raises(ValueError, match="one of .*'x-right'.*got 'x-up'"):
        convert_normals(n, "x-up")
    with pytest.raises(ValueError, match="3 components along axis 1, got shape"):
        convert_normals(n, "x-left", axis=1)


def test_checkpoint_conventions(tmp_path):
    assert checkpoint_convention("GonzaloMG/marigold-normals") == "x-left"  # E2E-FT's training data
    assert checkpoint_convention("GonzaloMG/marigold-e2e-ft-normals") == "x-left"
    assert checkpoint_convention("prs-eth/marigold-normals-v1-1") == "x-right"
    assert checkpoint_convention("someone/unknown-normals") == "x-right"  # diffusers' documented frame
    assert checkpoint_convention(tmp_path) == "x-right"  # a folder that says nothing
    write_convention(tmp_path, "x-left")
    assert checkpoint_convention(tmp_path) == "x-left"
    (tmp_path / CONVENTION_FILE).write_text(json.dumps({"frame": "x-left"}))
    with pytest.raises(ValueError, match="'convention' key"):
        checkpoint_convention(tmp_path)
    with pytest.raises(ValueError, match="got 'left'"):
        write_convention(tmp_path, "left")


def test_predict_returns_x_right_for_a_model_in_either_convention(normals_pipe, ds):
    from genpercept_lessons.inference import predict, predict_detailed

    images = ds[:2]["image"]
    native = predict(normals_pipe, images, noise="zeros")  # unmarked = x-right: the model's own output
    assert normals_convention(normals_pipe) == "x-right"
    set_normals_convention(normals_pipe, "x-left")
    seen = predict_detailed(normals_pipe, images, noise="zeros", keep_intermediates=True)
    np.testing.assert_allclose(seen.prediction[..., 0], -native[..., 0], atol=1e-6)
    np.testing.assert_allclose(seen.prediction[..., 1:], native[..., 1:], atol=1e-6)
    np.testing.assert_allclose(seen.x0_decoded[-1][..., 0], -predict_detailed(
        set_normals_convention(copy.copy(normals_pipe), "x-right"), images, noise="zeros",
        keep_intermediates=True).x0_decoded[-1][..., 0], atol=1e-6)


def test_stand_in_x_left_predictions_meet_x_right_targets_after_the_boundary(ds):
    """The defect this fixes: E2E-FT-frame predictions against the course's targets, converted and not."""
    from genpercept_lessons.metrics import normal_metrics

    rows = ds[:4]
    g, m = rows["normals"], rows["mask"].astype(bool)
    x_left_prediction = convert_normals(g, "x-right", "x-left")  # a perfect E2E-FT-style model
    raw = normal_metrics(x_left_prediction, g, m)["mean"]
    fixed = normal_metrics(convert_normals(x_left_prediction, "x-left"), g, m)["mean"]
    assert fixed < 1e-3
    assert raw > 5 * max(fixed, 1.0)  # mirrored x costs degrees wherever the normal has an x component
    assert raw == pytest.approx(_angles(x_left_prediction[m], g[m]).mean(), rel=1e-4)


def test_load_marigold_records_the_declared_convention(tiny_pipeline_dirs, tmp_path):
    import shutil

    from diffusers import DDIMScheduler

    from genpercept_lessons.models import load_marigold, with_scheduler
    from genpercept_lessons.profiles import get_profile

    folder = tmp_path / "normals"
    shutil.copytree(tiny_pipeline_dirs["normals"], folder)
    full = get_profile("full", device="cpu", normals_model=str(folder))
    assert normals_convention(load_marigold(full, "normals")) == "x-right"
    declared = get_profile("full", device="cpu", normals_model=str(folder), normals_convention="x-left")
    assert normals_convention(load_marigold(declared, "normals")) == "x-left"
    with pytest.raises(ValueError, match="normals convention must be one of"):
        get_profile("full", normals_convention="left")
    write_convention(folder, "x-left")  # as the course's trainer writes it
    pipe = load_marigold(full, "normals")
    assert normals_convention(pipe) == "x-left"
    assert normals_convention(with_scheduler(pipe, DDIMScheduler.from_config(pipe.scheduler.config))) == "x-left"
    assert normals_convention(load_marigold(get_profile("full", device="cpu"), "normals", model=folder)) == "x-left"


def test_finetune_trains_an_x_left_model_on_x_left_targets_and_saves_its_frame(normals_pipe, ds, tmp_path):
    from genpercept_lessons.finetuning import (
        E2EConfig,
        _task_loss,
        finetune_end_to_end,
        target_latent,
        training_batch,
    )
    from genpercept_lessons.runtime import step_generator

    b = training_batch([ds], [1.0], 2, step_generator(0, 0, 0), False)
    perfect_x_left = convert_normals(b["normals"], "x-right", "x-left", axis=1)
    assert _task_loss("normals", perfect_x_left, b, "cpu", "x-left").item() < 1e-2
    assert _task_loss("normals", perfect_x_left, b, "cpu", "x-right").item() > 0.1
    with torch.no_grad():
        want = normals_pipe.vae.encode(perfect_x_left * b["normals_mask"][:, None]).latent_dist.mode()
    torch.testing.assert_close(target_latent(normals_pipe.vae, b, "normals", "x-left"),
                               want * normals_pipe.vae.config.scaling_factor)
    set_normals_convention(normals_pipe, "x-left")
    res = finetune_end_to_end(normals_pipe, ds, E2EConfig(task="normals", steps=1, batch_size=2, warmup=0),
                              workdir=tmp_path / "w", output_dir=tmp_path / "out", progress=False)
    assert normals_convention(res.pipe) == "x-left"
    assert checkpoint_convention(tmp_path / "out") == "x-left"
