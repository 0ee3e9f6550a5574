"""GenPercept-style one-step pieces: the β = 1 scheduler, the 4-channel UNet, the DPT-style head, training, mIoU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genpercept_lessons.heads import DPTHead, UNetFeatures
from genpercept_lessons.metrics import mean_iou
from genpercept_lessons.one_step import (
    OneStepModel,
    beta_one_scheduler,
    predict_one_step,
    rgb_only_unet,
    train_one_step,
)


@pytest.fixture(scope="module")
def depth_pipe(tiny_pipeline_dirs):
    from diffusers import MarigoldDepthPipeline

    torch.set_num_threads(1)
    return MarigoldDepthPipeline.from_pretrained(tiny_pipeline_dirs["depth"])


@pytest.fixture(scope="module")
def ds():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from dist_e2e_worker import tiny_dataset

    return tiny_dataset(6, 16, 0)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_beta_one_makes_every_timestep_identical(spacing):
    from diffusers import DDIMScheduler

    s = DDIMScheduler.from_config(beta_one_scheduler().config, timestep_spacing=spacing)
    assert torch.all(s.alphas_cumprod == 0)
    s.set_timesteps(1)
    v, z = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    assert torch.allclose(s.step(v, s.timesteps[0], z).pred_original_sample, -v)


def _untrained(pipe, task="depth", decoder="vae"):
    """A one-step model straight from the (random) tiny Marigold weights, with its own copy of the VAE."""
    import copy

    from genpercept_lessons.inference import empty_text_embedding

    unet = rgb_only_unet(pipe.unet).eval()
    head = None
    if decoder == "head":
        torch.manual_seed(0)
        head = DPTHead(list(reversed(unet.config.block_out_channels)), 5 if task == "segmentation" else 1, upsample=2)
    return OneStepModel(unet, copy.deepcopy(pipe.vae), empty_text_embedding(pipe), task, decoder, head)


def test_vae_forward_is_the_beta_one_step_decoded_as_the_channel_mean(depth_pipe, ds):
    """forward = one UNet call at t = 999 on the scaled RGB latent, x̂0 from the β = 1 scheduler (= −v̂), decoded,
    and the mean of the decoded channels (as Marigold's decoder reads depth)."""
    model = _untrained(depth_pipe)
    vae, sf = model.vae, model.vae.config.scaling_factor
    rgb = torch.from_numpy(ds[:2]["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    seen = {}

    def unet_spy(module, args, kwargs, output):
        seen["x"], seen["t"], seen["v"] = args[0], args[1], output.sample

    real_decode = vae.decode

    def decode_spy(x, *args, **kwargs):
        out = real_decode(x, *args, **kwargs)
        seen["decoded_in"], seen["image"] = x, out.sample
        return out

    vae.decode = decode_spy
    hook = model.unet.register_forward_hook(unet_spy, with_kwargs=True)
    try:
        with torch.no_grad():
            depth = model.forward(rgb)
            latent = vae.encode(rgb).latent_dist.mode() * sf
    finally:
        hook.remove()
    torch.testing.assert_close(seen["x"], latent)
    assert int(seen["t"]) == 999
    s = beta_one_scheduler()
    s.set_timesteps(1)
    x0 = s.step(seen["v"], 999, latent).pred_original_sample  # the scheduler lesson 07 teaches
    torch.testing.assert_close(seen["decoded_in"] * sf, x0)
    assert depth.shape == (2, 16, 16)
    torch.testing.assert_close(depth, seen["image"].mean(1))
    assert (seen["image"][:, 0] - seen["image"].mean(1)).abs().max() > 1e-3  # channel 0 alone would differ


@pytest.mark.parametrize("task, decoder", [("depth", "vae"), ("segmentation", "head")])
def test_predict_one_step_is_forward_on_rgb_in_minus_one_to_one(depth_pipe, ds, task, decoder):
    model = _untrained(depth_pipe, task, decoder)
    images = ds[:3]["image"]
    got = predict_one_step(model, images, batch_size=2)
    rgb = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        want = torch.cat([model.forward(rgb[:2]), model.forward(rgb[2:])])  # the same batches of 2
    if task == "segmentation":
        assert got.dtype == np.uint8 and np.array_equal(got, want.argmax(1).numpy())
    else:
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_rgb_only_unet_keeps_the_rgb_half(depth_pipe):
    u4 = rgb_only_unet(depth_pipe.unet)
    assert u4.config.in_channels == 4
    assert torch.equal(u4.conv_in.weight, depth_pipe.unet.conv_in.weight[:, :4])
    assert torch.equal(u4.conv_out.weight, depth_pipe.unet.conv_out.weight)
    with pytest.raises(ValueError, match="8-channel"):
        rgb_only_unet(u4)


def test_features_and_head_shapes(depth_pipe):
    u4 = rgb_only_unet(depth_pipe.unet)
    with UNetFeatures(u4) as feats, torch.no_grad():
        u4(torch.zeros(2, 4, 8, 8), 999, encoder_hidden_states=torch.zeros(2, 2, u4.config.cross_attention_dim))
    assert [f.shape[1] for f in feats.maps] == list(reversed(u4.config.block_out_channels))
    assert not u4.up_blocks[0]._forward_hooks  # hooks removed on exit
    head = DPTHead([f.shape[1] for f in feats.maps], 5, width=8, upsample=2)
    assert head(feats.maps).shape == (2, 5, 16, 16)
    with pytest.raises(ValueError, match="feature maps"):
        head(feats.maps[:1])
    with pytest.raises(ValueError, match="upsample"):
        DPTHead([4], 1, upsample=3)
    with pytest.raises(ValueError, match="in_channels"):
        DPTHead([], 1)
    with pytest.raises(TypeError, match="UNet2DConditionModel"):
        UNetFeatures(object())


@pytest.mark.parametrize("task, decoder", [("depth", "vae"), ("depth", "head"), ("segmentation", "head")])
def test_training_learns_and_predicts(depth_pipe, ds, task, decoder):
    model = train_one_step(depth_pipe, ds, task, decoder, steps=12, batch_size=2, lr=1e-3, progress=False)
    assert np.mean(model.losses[-3:]) < np.mean(model.losses[:3])
    images = ds[:3]["image"]
    out = predict_one_step(model, images)
    assert out.shape == (3, 16, 16)
    if task == "segmentation":
        assert out.dtype == np.uint8 and out.max() < 5
    assert all(not p.requires_grad for p in model.unet.parameters())
    assert depth_pipe.unet.config.in_channels == 8  # the Marigold UNet itself is not modified


def test_train_one_step_rejects_bad_input(depth_pipe, ds):
    with pytest.raises(ValueError, match="task"):
        train_one_step(depth_pipe, ds, "pose")
    with pytest.raises(ValueError, match="decoder"):
        train_one_step(depth_pipe, ds, "depth", "dpt")
    with pytest.raises(ValueError, match="segmentation needs"):
        train_one_step(depth_pipe, ds, "segmentation", "vae")
    with pytest.raises(ValueError, match="steps"):
        train_one_step(depth_pipe, ds, steps=1)
    with pytest.raises(ValueError, match="uint8"):
        predict_one_step(None, np.zeros((2, 8, 8, 3), np.float32))


def test_mean_iou_against_a_hand_count():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 1]])
    # class 0: tp 1, fp 1 (pred 0 at (1,1)), fn 1 -> 1/3; class 1: tp 3, fp 1, fn 0 -> 3/4; class 2: tp 1, fn 1 -> 1/2
    out = mean_iou(pred, target, 3)
    assert np.allclose(out["iou"], [1 / 3, 3 / 4, 1 / 2]) and np.isclose(out["miou"], (1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert mean_iou(target, target, 3)["miou"] == 1.0
    assert np.isnan(mean_iou(target, target, 4)["iou"][3])  # absent class left out of the mean
    with pytest.raises(ValueError, match="shape"):
        mean_iou(pred[:1], target, 3)
    with pytest.raises(ValueError, match="class ids"):
        mean_iou(pred + 5, target, 3)
    with pytest.raises(ValueError, match="ignore_index"):
        mean_iou(pred, np.full_like(target, 255), 3)
