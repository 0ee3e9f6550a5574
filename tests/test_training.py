"""End-to-end fine-tuning (E2E-FT) on the tiny 16-px pipelines: the gradient path, the batches, the loop, resume, DDP."""
from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genpercept_lessons.finetuning import (
    E2EConfig,
    e2e_latent,
    e2e_predict,
    finetune_end_to_end,
    target_latent,
    training_batch,
)
from genpercept_lessons.inference import empty_text_embedding
from genpercept_lessons.losses import affine_invariant_l1, angular_loss
from genpercept_lessons.lr_schedules import iter_exponential
from genpercept_lessons.runtime import step_generator

sys.path.insert(0, str(Path(__file__).parent))
from dist_e2e_worker import tiny_dataset  # noqa: E402

FAST = dict(batch_size=2, warmup=0, checkpoint_every=100)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # the 2 cores are shared: with 2 intra-op threads a contended CPU makes these tiny steps ~30x slower
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset(8, 16, seed=0)


@pytest.fixture(scope="module")
def depth_pipe(tiny_pipeline_dirs):
    from diffusers import MarigoldDepthPipeline

    return MarigoldDepthPipeline.from_pretrained(tiny_pipeline_dirs["depth"])


@pytest.fixture(scope="module")
def normals_pipe(tiny_pipeline_dirs):
    from diffusers import MarigoldNormalsPipeline

    return MarigoldNormalsPipeline.from_pretrained(tiny_pipeline_dirs["normals"])


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _inputs(pipe, ds, n=2):
    rows = ds[:n]
    rgb = torch.from_numpy(rows["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        latent = pipe.vae.encode(rgb).latent_dist.mode() * pipe.vae.config.scaling_factor
    t_max = pipe.scheduler.config.num_train_timesteps - 1
    return rows, latent, empty_text_embedding(pipe), t_max, float(pipe.scheduler.alphas_cumprod[t_max])


def _trainable_copies(pipe):
    unet = copy.deepcopy(pipe.unet).train().requires_grad_(True)
    vae = copy.deepcopy(pipe.vae).requires_grad_(False)
    return unet, vae


# ---------------------------------------------------------------------------------------------------------------
# the gradient path and the forward formula

def test_gradient_reaches_the_unet_through_the_frozen_decoder(depth_pipe, ds):
    rows, latent, text, t_max, ab = _inputs(depth_pipe, ds)
    assert t_max == 999
    unet, vae = _trainable_copies(depth_pipe)
    pred = e2e_predict(unet, vae, latent, text, ab, t_max, "depth")
    assert pred.shape == (2, 16, 16) and pred.requires_grad
    loss = affine_invariant_l1(pred, torch.from_numpy(rows["depth"]), torch.from_numpy(rows["mask"]))
    loss.backward()
    g = unet.conv_in.weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    assert unet.conv_out.weight.grad.abs().sum() > 0
    with_grad = [n for n, p in unet.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert len(with_grad) >= 0.9 * len(list(unet.parameters()))  # the whole UNet trains
    assert all(p.grad is None and not p.requires_grad for p in vae.parameters())


def test_no_grad_decode_cuts_the_gradient(depth_pipe, ds, monkeypatch):
    """E2E-FT issue #21: decorating the decode with torch.no_grad() "to save memory" leaves nothing to train."""
    rows, latent, text, t_max, ab = _inputs(depth_pipe, ds)
    unet, vae = _trainable_copies(depth_pipe)
    real_decode = vae.decode

    def decode_without_grad(*args, **kwargs):
        with torch.no_grad():
            return real_decode(*args, **kwargs)

    monkeypatch.setattr(vae, "decode", decode_without_grad)
    pred = e2e_predict(unet, vae, latent, text, ab, t_max, "depth")
    assert not pred.requires_grad
    loss = affine_invariant_l1(pred, torch.from_numpy(rows["depth"]), torch.from_numpy(rows["mask"]))
    assert not loss.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        loss.backward()
    assert all(p.grad is None for p in unet.parameters())


@pytest.mark.parametrize("noise", ["zeros", "gaussian"])
def test_e2e_predict_decodes_the_v_to_x0_formula(depth_pipe, ds, noise):
    rows, latent, text, t_max, ab = _inputs(depth_pipe, ds)
    assert ab == pytest.approx(0.00466, abs=1e-5) and math.sqrt(1 - ab) == pytest.approx(0.99767, abs=1e-5)
    unet, vae = _trainable_copies(depth_pipe)
    z = torch.zeros_like(latent) if noise == "zeros" else torch.randn(latent.shape, generator=torch.Generator().manual_seed(1))
    seen = {}
    real_decode = vae.decode

    def spy(x, *args, **kwargs):
        out = real_decode(x, *args, **kwargs)
        seen["x"], seen["image"] = x.detach().clone(), out.sample.detach().clone()
        return out

    vae.decode = spy
    with torch.no_grad():
        pred = e2e_predict(unet, vae, latent, text, ab, t_max, "depth", None if noise == "zeros" else z)
        v = unet(torch.cat([latent, z], 1), t_max, encoder_hidden_states=text.expand(2, -1, -1)).sample
    x0 = math.sqrt(ab) * z - math.sqrt(1 - ab) * v
    if noise == "zeros":
        torch.testing.assert_close(seen["x"] * vae.config.scaling_factor, -0.99767 * v, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(seen["x"] * vae.config.scaling_factor, x0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pred, seen["image"].mean(1).clamp(-1, 1))
    assert pred.abs().max() <= 1


def test_e2e_predict_normals_are_unit(normals_pipe, ds):
    _, latent, text, t_max, ab = _inputs(normals_pipe, ds, 3)
    with torch.no_grad():
        pred = e2e_predict(normals_pipe.unet, normals_pipe.vae, latent, text, ab, t_max, "normals")
    assert pred.shape == (3, 3, 16, 16)
    torch.testing.assert_close(pred.norm(dim=1), torch.ones(3, 16, 16), rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# training_batch

def _raw(ds):
    rows = ds[:]
    rgb = torch.from_numpy(rows["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return rows, rgb


def _identify(rgb_i, raw_rgb):
    """(row, flipped) of a batch image, found by content, so the test does not depend on the sampler's draw order."""
    hits = [(j, f) for j in range(len(raw_rgb)) for f in (False, True)
            if torch.equal(rgb_i, raw_rgb[j].flip(-1) if f else raw_rgb[j])]
    assert len(hits) == 1, hits
    return hits[0]


def test_training_batch_shapes_dtypes_ranges(ds):
    b = training_batch([ds], [1.0], 4, torch.Generator().manual_seed(0))
    assert b["rgb"].shape == (4, 3, 16, 16) and b["rgb"].dtype == torch.float32
    assert b["rgb"].min() >= -1 and b["rgb"].max() <= 1
    assert b["depth"].shape == (4, 16, 16) and b["depth"].dtype == torch.float32 and (b["depth"] > 0).all()
    assert b["normals"].shape == (4, 3, 16, 16) and b["normals"].dtype == torch.float32
    for key in ("depth_mask", "normals_mask"):
        assert b[key].shape == (4, 16, 16) and b[key].dtype == torch.bool and b[key].any()
    n = b["normals"].norm(dim=1)
    torch.testing.assert_close(n[b["normals_mask"]], torch.ones_like(n[b["normals_mask"]]), rtol=0, atol=1e-4)


def test_training_batch_targets_match_the_raw_rows(ds):
    """Depth clamped to the per-image valid [2%, 98%] percentiles (invalid = far), hflip flips and negates normals' x."""
    rows, raw_rgb = _raw(ds)
    flips, clipped = [], 0
    for seed in range(6):
        b = training_batch([ds], [1.0], 4, torch.Generator().manual_seed(seed))
        for i in range(4):
            j, flipped = _identify(b["rgb"][i], raw_rgb)
            flips.append(flipped)
            d, m = rows["depth"][j].astype(np.float32), rows["mask"][j].astype(bool)
            lo, hi = np.percentile(d[m], [2, 98])
            want_depth = np.where(m, np.clip(d, lo, hi), hi)
            clipped += int((np.clip(d, lo, hi) != d)[m].sum())
            want_normals = torch.from_numpy(rows["normals"][j]).permute(2, 0, 1).clone()
            want_mask = torch.from_numpy(m)
            if flipped:
                want_depth, want_mask = want_depth[:, ::-1], want_mask.flip(-1)
                want_normals = want_normals.flip(-1)
                want_normals[0] *= -1
            np.testing.assert_allclose(b["depth"][i].numpy(), want_depth, rtol=1e-6)
            assert torch.equal(b["normals"][i], want_normals)
            assert torch.equal(b["depth_mask"][i], want_mask)  # these scenes all have depth variation
            assert torch.equal(b["normals_mask"][i], want_mask)  # unit normals wherever the mask is set
            assert b["depth"][i][b["depth_mask"][i]].min().item() == pytest.approx(lo, rel=1e-6)
            assert b["depth"][i].max().item() == pytest.approx(hi, rel=1e-6)
    assert clipped > 0  # the percentile clamp changed something, so the comparison above tests it
    assert any(flips) and not all(flips)


def test_training_batch_flip_of_a_head_on_wall():
    # a normal pointing right (+x) must point left after a horizontal flip; z is unchanged
    from datasets import Dataset

    from genpercept_lessons.mini.miniscenes import miniscenes_features

    img = np.zeros((4, 4, 3), np.uint8)
    img[:, 0] = 255  # asymmetric, so a flip is visible
    normals = np.zeros((4, 4, 3), np.float32)
    normals[..., 0], normals[..., 2] = 0.6, 0.8
    depth = np.tile(np.linspace(1, 2, 4, dtype=np.float32), (4, 1))
    one = Dataset.from_dict({"image": [img], "depth": [depth], "normals": [normals], "mask": [np.ones((4, 4), bool)],
                             "label": [np.zeros((4, 4), np.uint8)], "K": [np.eye(3, dtype=np.float32)]},
                            features=miniscenes_features(4, 4)).with_format("numpy", dtype=None)
    b = training_batch([one], [1.0], 16, torch.Generator().manual_seed(0))
    flipped = b["rgb"][:, 0, :, -1].eq(1).all(-1)
    assert flipped.any() and (~flipped).any()
    torch.testing.assert_close(b["normals"][flipped, 0], torch.full_like(b["normals"][flipped, 0], -0.6))
    torch.testing.assert_close(b["normals"][~flipped, 0], torch.full_like(b["normals"][~flipped, 0], 0.6))
    torch.testing.assert_close(b["normals"][:, 2], torch.full_like(b["normals"][:, 2], 0.8))
    assert (b["depth"][flipped, :, 0] > b["depth"][flipped, :, -1]).all()  # far side now on the left
    assert (b["depth"][~flipped, :, 0] < b["depth"][~flipped, :, -1]).all()


def test_training_batch_without_hflip_never_flips(ds):
    _, raw_rgb = _raw(ds)
    for seed in range(3):
        b = training_batch([ds], [1.0], 4, torch.Generator().manual_seed(seed), hflip=False)
        assert not any(_identify(b["rgb"][i], raw_rgb)[1] for i in range(4))


def test_training_batch_mixing_by_weights(ds):
    small = tiny_dataset(4, 8, seed=1)  # other resolution: a batch's size says which dataset it came from
    g = torch.Generator().manual_seed(0)
    sizes = [training_batch([ds, small], [1e-9, 1.0], 2, g)["rgb"].shape[-1] for _ in range(40)]
    assert set(sizes) == {8}
    g = torch.Generator().manual_seed(0)
    sizes = [training_batch([ds, small], [0.9, 0.1], 2, g)["rgb"].shape[-1] for _ in range(200)]
    assert 160 <= sizes.count(16) <= 196 and sizes.count(8) == 200 - sizes.count(16)


def test_training_batch_is_deterministic_per_seed(ds):
    a = training_batch([ds], [1.0], 4, torch.Generator().manual_seed(7))
    b = training_batch([ds], [1.0], 4, torch.Generator().manual_seed(7))
    c = training_batch([ds], [1.0], 4, torch.Generator().manual_seed(8))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ---------------------------------------------------------------------------------------------------------------
# the loop

@pytest.mark.parametrize("task", ["depth", "normals"])
def test_finetune_learns_and_leaves_the_original_alone(task, depth_pipe, normals_pipe, ds, tmp_path):
    from diffusers import MarigoldDepthPipeline, MarigoldNormalsPipeline

    pipe = depth_pipe if task == "depth" else normals_pipe
    before = _state(pipe.unet)
    steps = 12
    res = finetune_end_to_end(pipe, ds.select([0]), E2EConfig(task=task, steps=steps, lr=1e-3, hflip=False, **FAST),
                              workdir=tmp_path / "w", output_dir=tmp_path / "out", progress=False)
    # one image, no flips: plain optimisation, so the loss must fall clearly
    assert len(res.losses) == steps and all(np.isfinite(res.losses))
    assert np.mean(res.losses[-3:]) < 0.75 * np.mean(res.losses[:3])
    assert res.lrs == pytest.approx([1e-3 * iter_exponential(s, steps, 0, 0.01) for s in range(steps)])
    assert res.resumed_from == 0 and res.seconds > 0
    # a fine-tuned copy; the original UNet untouched, the frozen parts shared
    _assert_same_state(before, _state(pipe.unet))
    assert res.pipe.unet is not pipe.unet and res.pipe.vae is pipe.vae
    after = _state(res.pipe.unet)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not res.pipe.unet.training and not any(p.requires_grad for p in res.pipe.unet.parameters())
    # trailing spacing on the result only
    assert res.pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.scheduler.config.timestep_spacing == "leading"
    assert res.pipe.scheduler.config.prediction_type == pipe.scheduler.config.prediction_type == "v_prediction"
    # the saved folder is a Marigold pipeline with the trailing scheduler and the record
    cls = MarigoldDepthPipeline if task == "depth" else MarigoldNormalsPipeline
    loaded = cls.from_pretrained(tmp_path / "out")
    assert loaded.scheduler.config.timestep_spacing == "trailing"
    _assert_same_state(after, _state(loaded.unet))
    record = json.loads((tmp_path / "out" / "genpercept_finetune.json").read_text())
    assert record["config"]["task"] == task and record["config"]["steps"] == steps
    assert record["final_loss"] == pytest.approx(res.losses[-1])
    assert not (tmp_path / "out.partial").exists()


def test_finetune_in_place_trains_the_given_unet(tiny_pipeline_dirs, ds, tmp_path):
    from diffusers import MarigoldDepthPipeline

    pipe = MarigoldDepthPipeline.from_pretrained(tiny_pipeline_dirs["depth"])
    before = _state(pipe.unet)
    res = finetune_end_to_end(pipe, ds, E2EConfig(steps=2, **FAST), workdir=tmp_path, in_place=True, progress=False)
    assert res.pipe.unet is pipe.unet
    assert any(not torch.equal(before[k], v) for k, v in _state(pipe.unet).items())
    assert pipe.scheduler.config.timestep_spacing == "leading"


def test_finetune_first_loss_is_the_e2e_loss_and_accumulation_averages(depth_pipe, ds, tmp_path, monkeypatch):
    """Step 0 with 2 × 2 accumulation: each micro-batch's loss is the E2E-FT loss at t = T under the initial weights,
    and the step reports their mean. (Each one is compared: the two means at t = 999 and t = 1 agree to 2e-5.)"""
    import genpercept_lessons.finetuning as training

    seen, real_loss = [], training._task_loss

    def loss_spy(*args, **kwargs):
        loss = real_loss(*args, **kwargs)
        seen.append(loss.item())
        return loss

    monkeypatch.setattr(training, "_task_loss", loss_spy)
    config = E2EConfig(steps=2, grad_accumulation=2, **FAST)
    res = finetune_end_to_end(depth_pipe, ds, config, workdir=tmp_path, progress=False)
    assert len(seen) == 4  # 2 steps × 2 micro-batches
    assert len(res.losses) == 2 and all(np.isfinite(res.losses))
    _, _, text, t_max, ab = _inputs(depth_pipe, ds)
    g = step_generator(config.seed, 0, 0)
    losses = []
    for _ in range(2):
        b = training_batch([ds], [1.0], 2, g, config.hflip)
        with torch.no_grad():
            latent = depth_pipe.vae.encode(b["rgb"]).latent_dist.mode() * depth_pipe.vae.config.scaling_factor
            pred = e2e_predict(depth_pipe.unet, depth_pipe.vae, latent, text, ab, t_max, "depth")
            losses.append(affine_invariant_l1(pred, b["depth"], b["depth_mask"]).item())
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)  # two different micro-batches
    assert seen[:2] == pytest.approx(losses, rel=1e-5)
    assert res.losses[0] == pytest.approx(np.mean(losses), rel=1e-5)


def test_target_latent_encodes_marigolds_target_image(depth_pipe, normals_pipe, ds):
    """Depth: each image's clamped depth mapped to [-1, 1] over its valid pixels (as targets.normalize_depth), 3
    channels, encoded; invalid pixels are far (+1). Normals: the vectors themselves, unknown ones 0."""
    from genpercept_lessons.targets import normalize_depth

    g = torch.Generator().manual_seed(0)
    b = training_batch([ds], [1.0], 3, g, hflip=False)
    b["depth_mask"][0, :4] = False  # some invalid pixels
    expected = np.stack([normalize_depth(d, m, 0, 100) for d, m in zip(b["depth"].numpy(), b["depth_mask"].numpy())])
    with torch.no_grad():
        want = depth_pipe.vae.encode(torch.from_numpy(expected)[:, None].expand(-1, 3, -1, -1)).latent_dist.mode()
    got = target_latent(depth_pipe.vae, b, "depth")
    assert got.shape == (3, 4, 8, 8) and not got.requires_grad  # 16 px, the tiny VAE downsamples x2
    torch.testing.assert_close(got, want * depth_pipe.vae.config.scaling_factor, atol=1e-5, rtol=1e-4)
    b["normals_mask"][1] = False
    with torch.no_grad():
        want = normals_pipe.vae.encode(b["normals"] * b["normals_mask"][:, None]).latent_dist.mode()
    torch.testing.assert_close(target_latent(normals_pipe.vae, b, "normals"), want * normals_pipe.vae.config.scaling_factor)


def test_finetune_latent_loss_is_the_mse_to_the_target_latent_and_decodes_nothing(depth_pipe, ds, tmp_path, monkeypatch):
    import genpercept_lessons.finetuning as training

    decoded = []
    monkeypatch.setattr(training, "e2e_predict", lambda *a, **k: decoded.append(1))
    config = E2EConfig(steps=1, loss="latent", **FAST)
    res = finetune_end_to_end(depth_pipe, ds, config, workdir=tmp_path, progress=False)
    assert not decoded  # the latent-only loss never calls the decoder
    _, _, text, t_max, ab = _inputs(depth_pipe, ds)
    b = training_batch([ds], [1.0], 2, step_generator(config.seed, 0, 0), config.hflip)
    with torch.no_grad():
        latent = depth_pipe.vae.encode(b["rgb"]).latent_dist.mode() * depth_pipe.vae.config.scaling_factor
        x0 = e2e_latent(depth_pipe.unet, latent, text, ab, t_max)
        want = torch.nn.functional.mse_loss(x0, target_latent(depth_pipe.vae, b, "depth")).item()
    assert res.losses[0] == pytest.approx(want, rel=1e-5)


def test_finetune_normals_first_loss_is_the_angular_loss(normals_pipe, ds, tmp_path):
    config = E2EConfig(task="normals", steps=1, **FAST)
    res = finetune_end_to_end(normals_pipe, ds, config, workdir=tmp_path, progress=False)
    _, _, text, t_max, ab = _inputs(normals_pipe, ds)
    b = training_batch([ds], [1.0], 2, step_generator(config.seed, 0, 0), config.hflip)
    with torch.no_grad():
        latent = normals_pipe.vae.encode(b["rgb"]).latent_dist.mode() * normals_pipe.vae.config.scaling_factor
        pred = e2e_predict(normals_pipe.unet, normals_pipe.vae, latent, text, ab, t_max, "normals")
    assert res.losses[0] == pytest.approx(angular_loss(pred, b["normals"], b["normals_mask"]).item(), rel=1e-4)


def test_finetune_evaluates_every_eval_every_steps(depth_pipe, ds, tmp_path):
    from genpercept_lessons.evaluation import evaluate

    held_out = tiny_dataset(3, 16, seed=5)
    res = finetune_end_to_end(depth_pipe, ds, E2EConfig(steps=3, eval_every=2, eval_scenes=2, **FAST),
                              workdir=tmp_path / "a", eval_data=held_out, progress=False)
    assert [s for s, _ in res.evals] == [2, 3]
    assert all(np.isfinite(m["abs_rel"]) and 0 <= m["delta1"] <= 1 for _, m in res.evals)
    # the final evaluation is of the returned (fine-tuned, trailing) pipeline on eval_scenes rows
    final = evaluate(res.pipe, held_out, n=2, seed=0, steps=1, spacing="trailing", noise="zeros")["metrics"]
    assert res.evals[-1][1] == pytest.approx(final, rel=1e-5)
    assert res.evals[0][1] != pytest.approx(final, rel=1e-5)
    res = finetune_end_to_end(depth_pipe, ds, E2EConfig(steps=2, **FAST), workdir=tmp_path / "b",
                              eval_data=held_out, progress=False)
    assert [s for s, _ in res.evals] == [2]  # eval_every=0: only at the end
    res = finetune_end_to_end(depth_pipe, ds, E2EConfig(steps=2, eval_every=1, **FAST), workdir=tmp_path / "c",
                              progress=False)
    assert res.evals == []  # no eval_data, no evaluation


def test_finetune_resumes_exactly(depth_pipe, ds, tmp_path):
    config = E2EConfig(steps=4, batch_size=2, warmup=1, lr=1e-3, checkpoint_every=1)
    straight = finetune_end_to_end(depth_pipe, ds, config, workdir=tmp_path / "a", progress=False)
    seen = []

    def interrupt(step, loss):
        seen.append((step, loss))
        if step == 2:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        finetune_end_to_end(depth_pipe, ds, config, workdir=tmp_path / "b", callback=interrupt, progress=False)
    assert [s for s, _ in seen] == [1, 2] and [loss for _, loss in seen] == straight.losses[:2]
    assert (tmp_path / "b" / "e2e_state.pt").is_file()
    resumed = finetune_end_to_end(depth_pipe, ds, config, workdir=tmp_path / "b", progress=False)
    assert straight.resumed_from == 0 and resumed.resumed_from == 2
    assert resumed.losses == straight.losses and resumed.lrs == straight.lrs
    _assert_same_state(_state(straight.pipe.unet), _state(resumed.pipe.unet))
    assert any(not torch.equal(v, _state(depth_pipe.unet)[k]) for k, v in _state(resumed.pipe.unet).items())
    # a finished workdir resumes at the end: no further steps, same weights
    again = finetune_end_to_end(depth_pipe, ds, config, workdir=tmp_path / "a", progress=False)
    assert again.resumed_from == 4 and again.losses == straight.losses
    _assert_same_state(_state(straight.pipe.unet), _state(again.pipe.unet))


def test_finetune_refuses_to_resume_with_other_settings(depth_pipe, ds, tmp_path):
    finetune_end_to_end(depth_pipe, ds, E2EConfig(steps=1, **FAST), workdir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        finetune_end_to_end(depth_pipe, ds, E2EConfig(steps=1, **FAST), workdir=tmp_path, progress=False, lr=1e-4)


def test_finetune_bf16_after_fp32_in_one_process(depth_pipe, ds, tmp_path):
    finetune_end_to_end(depth_pipe, ds, E2EConfig(steps=1, **FAST), workdir=tmp_path / "a", progress=False)
    res = finetune_end_to_end(depth_pipe, ds, E2EConfig(steps=1, mixed_precision="bf16", **FAST),
                              workdir=tmp_path / "b", progress=False)
    assert np.isfinite(res.losses[0])


# ---------------------------------------------------------------------------------------------------------------
# validation

@pytest.mark.parametrize("overrides, field", [
    ({"task": "pose"}, "task"),
    ({"noise": "pyramid"}, "noise"),
    ({"mixed_precision": "fp16"}, "mixed_precision"),
    ({"steps": 0}, "steps"),
    ({"steps": 2.5}, "steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"grad_accumulation": 0}, "grad_accumulation"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"eval_scenes": 0}, "eval_scenes"),
    ({"steps": 5, "warmup": 5}, "warmup"),
    ({"steps": 5, "warmup": 9}, "warmup"),
    ({"warmup": -1}, "warmup"),
    ({"eval_every": -1}, "eval_every"),
    ({"eval_every": 1.5}, "eval_every"),
    ({"lr": 0.0}, "lr"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"max_grad_norm": 0.0}, "max_grad_norm"),
    ({"loss": "pixels"}, "loss"),
])
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        E2EConfig(**overrides).validate()


def test_config_defaults_and_presets_are_valid():
    from genpercept_lessons.finetuning import GPU_24GB, PAPER_RECIPE

    for c in (E2EConfig(), PAPER_RECIPE, GPU_24GB):
        assert c.validate() is c
    assert PAPER_RECIPE.batch_size * PAPER_RECIPE.grad_accumulation == GPU_24GB.batch_size * GPU_24GB.grad_accumulation


def test_finetune_validates_before_touching_anything(depth_pipe, ds, tmp_path):
    for bad in ({"steps": 0}, {"warmup": 300}, {"noise": "pyramid"}, {"eval_every": -2}):
        with pytest.raises(ValueError, match=re.escape(next(iter(bad)))):
            finetune_end_to_end(depth_pipe, ds, E2EConfig(), workdir=tmp_path / "w", progress=False, **bad)
    with pytest.raises(TypeError):
        finetune_end_to_end(depth_pipe, ds, E2EConfig(), workdir=tmp_path / "w", progress=False, stepz=3)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("make", [
    lambda ds: ds.select([]),
    lambda ds: [],
    lambda ds: [(ds, 0.0)],
    lambda ds: [(ds, -1.0)],
    lambda ds: [(ds, float("nan"))],
    lambda ds: [(ds, 1.0), (ds.select([]), 1.0)],
    lambda ds: [(ds,)],
])
def test_finetune_rejects_bad_train_data(make, depth_pipe, ds, tmp_path):
    with pytest.raises(ValueError, match="train_data"):
        finetune_end_to_end(depth_pipe, make(ds), E2EConfig(steps=1, **FAST), workdir=tmp_path, progress=False)


def test_finetune_rejects_a_task_mismatch(depth_pipe, normals_pipe, ds, tmp_path):
    with pytest.raises(ValueError, match="task"):
        finetune_end_to_end(depth_pipe, ds, E2EConfig(task="normals", steps=1, **FAST), workdir=tmp_path,
                            progress=False)
    with pytest.raises(ValueError, match="task"):
        finetune_end_to_end(normals_pipe, ds, E2EConfig(task="depth", steps=1, **FAST), workdir=tmp_path,
                            progress=False)


# ---------------------------------------------------------------------------------------------------------------
# data parallel

def test_finetune_data_parallel_under_torchrun(tiny_pipeline_dirs, tmp_path):
    from diffusers import MarigoldDepthPipeline

    worker = Path(__file__).with_name("dist_e2e_worker.py")
    prefix = tmp_path / "rank"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(tiny_pipeline_dirs["depth"]), str(prefix), str(tmp_path / "work")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}"
    outs = [torch.load(f"{prefix}{r}.pt", weights_only=False) for r in range(2)]
    assert [o["rank"] for o in outs] == [0, 1]
    assert all(o["world_size"] == 2 and o["distributed_type"] == "DistributedType.MULTI_CPU" for o in outs)
    assert not torch.equal(outs[0]["first_rgb"], outs[1]["first_rgb"])  # the ranks trained on different data ...
    _assert_same_state(outs[0]["unet"], outs[1]["unet"])  # ... yet ended with the same weights: gradients synced
    initial = _state(MarigoldDepthPipeline.from_pretrained(tiny_pipeline_dirs["depth"]).unet)
    assert any(not torch.equal(initial[k], v) for k, v in outs[0]["unet"].items())
    assert outs[0]["losses"] == outs[1]["losses"] and len(outs[0]["losses"]) == 3
