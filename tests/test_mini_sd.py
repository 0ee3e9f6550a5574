"""mini-SD, the text-to-image prior mini-Marigold is fine-tuned from: its data, its training loop's data-parallel and
EMA parts, the fine-tune's start from it, loading it as Stable Diffusion is loaded, and the built asset."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genpercept_lessons.mini.marigold_training import train_denoiser, train_text_to_image, train_vae

rng = np.random.default_rng(0)
LATENTS = rng.normal(size=(8, 4, 8, 8)).astype(np.float32)
CAPTIONS = rng.normal(size=(8, 5, 32)).astype(np.float32)


def _settings(**kw):
    return {"block_out_channels": [32, 32], "norm_num_groups": 8, "steps": 4, "batch_size": 4, "lr": 1e-3, "warmup": 1,
            "final_lr_ratio": 0.1, "seed": 0, "checkpoint_every": 2, "caption_dropout": 0.25} | kw


def test_captioned_views_are_the_rendered_views_with_their_captions(tmp_cache):
    from genpercept_lessons.mini.miniscenes import load_captioned_views
    from genpercept_lessons.mini.scenes import render_scene, scene_caption

    settings = {"version": 1, "seed": 7, "n": 3, "height": 16, "width": 16}
    ds = load_captioned_views(settings)
    assert len(ds) == 3 and ds[:]["image"].dtype == np.uint8 and ds[:]["image"].shape == (3, 16, 16, 3)
    for i in range(3):
        np.testing.assert_array_equal(ds[i]["image"], render_scene(7, i, 16, 16).image)
        assert ds[i]["caption"] == scene_caption(7, i, 16, 16)
    with pytest.raises(KeyError, match="lacks 'n'"):
        load_captioned_views({"version": 1, "seed": 7, "height": 16, "width": 16})


def test_the_build_trains_the_vae_on_rgb_only():
    from genpercept_lessons.profiles import mini_build_settings

    s = mini_build_settings(0, "fp32")
    assert s["vae"]["images"] == ["rgb"] and s["vae"]["data"] == s["captioned"] == s["sd"]["data"]
    assert s["captioned"]["seed"] != s["data"]["seed"]  # no pretraining view is a fine-tuning scene
    assert s["captioned"]["n"] > s["data"]["n_train"]  # more unlabelled views than labelled scenes
    assert s["depth"]["init"] == s["normals"]["init"] == s["sd"]  # both fine-tunes start from mini-SD
    assert s["sd"]["block_out_channels"] == s["depth"]["block_out_channels"]


def test_vae_pools_only_the_images_it_is_told_to(tmp_path):
    arrays = {k: rng.uniform(-1, 1, (4, 3, 16, 16)).astype(np.float32) for k in ("rgb", "depth")}
    settings = {"block_out_channels": [32, 32], "latent_channels": 4, "steps": 1, "batch_size": 2, "lr": 1e-3,
                "kl_weight": 1e-6, "seed": 0}
    _, report = train_vae(arrays, settings | {"images": ["rgb"]}, tmp_path / "rgb")
    assert report["images"] == ["rgb"]
    with pytest.raises(KeyError, match="normals"):
        train_vae(arrays, settings, tmp_path / "all")  # the default pools all three kinds


def test_text_to_image_data_parallel_is_the_same_optimisation(tmp_path):
    """Two processes, each with half of every batch and averaged gradients, follow one process's run (up to float order)."""
    empty = torch.zeros(1, 5, 32)
    one, report_one = train_text_to_image(LATENTS, CAPTIONS, empty, _settings(), tmp_path / "one")
    two, report_two = train_text_to_image(LATENTS, CAPTIONS, empty, _settings(processes=2), tmp_path / "two")
    x, t, c = torch.from_numpy(LATENTS), torch.full((8,), 500), torch.from_numpy(CAPTIONS)
    with torch.no_grad():
        out_one, out_two = (u(x, t, encoder_hidden_states=c).sample for u in (one, two))
    assert torch.allclose(out_one, out_two, atol=1e-4)
    assert abs(report_one["final_loss"] - report_two["final_loss"]) < 1e-5 and report_two["processes"] == 2
    assert not (tmp_path / "two" / "trained_unet").exists()
    with pytest.raises(ValueError, match="processes"):
        train_text_to_image(LATENTS, CAPTIONS, empty, _settings(processes=3), tmp_path / "bad")


def test_ema_weights_are_returned_and_resume_exactly(tmp_path, monkeypatch):
    from genpercept_lessons.mini import marigold_training

    empty = torch.zeros(1, 5, 32)
    raw, _ = train_text_to_image(LATENTS, CAPTIONS, empty, _settings(), tmp_path / "raw")
    ema, _ = train_text_to_image(LATENTS, CAPTIONS, empty, _settings(ema_decay=0.9), tmp_path / "ema")
    assert not all(torch.equal(a, b) for a, b in zip(raw.state_dict().values(), ema.state_dict().values()))
    real, calls = marigold_training.atomic_torch_save, []

    def save(obj, path):
        real(obj, path)
        calls.append(path)
        raise KeyboardInterrupt("simulated interruption")

    with monkeypatch.context() as m:
        m.setattr(marigold_training, "atomic_torch_save", save)
        with pytest.raises(KeyboardInterrupt):
            train_text_to_image(LATENTS, CAPTIONS, empty, _settings(ema_decay=0.9), tmp_path / "b")
    resumed, _ = train_text_to_image(LATENTS, CAPTIONS, empty, _settings(ema_decay=0.9), tmp_path / "b")
    assert calls and all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), resumed.state_dict().values()))


def test_fine_tune_starts_from_the_given_unet(tmp_path):
    from genpercept_lessons.mini.components import make_unet
    from genpercept_lessons.repurpose import marigold_unet_from

    torch.manual_seed(1)
    prior = make_unet((32, 32), cross_attention_dim=32, sample_size=8, norm_num_groups=8, in_channels=4)
    init = marigold_unet_from(prior).requires_grad_(False)
    before = {k: v.clone() for k, v in init.state_dict().items()}
    settings = {"task": "depth", "block_out_channels": [32, 32], "norm_num_groups": 8, "steps": 1, "batch_size": 2,
                "lr": 0.0, "warmup": 0, "final_lr_ratio": 1.0, "seed": 0}
    mask = np.ones((8, 8, 8), bool)
    unet, _ = train_denoiser(LATENTS, LATENTS, mask, torch.randn(1, 2, 32), settings, tmp_path / "a", init_unet=init)
    assert unet is init and all(torch.equal(before[k], v) for k, v in unet.state_dict().items())  # lr 0: unchanged
    scratch, _ = train_denoiser(LATENTS, LATENTS, mask, torch.randn(1, 2, 32), settings, tmp_path / "b")
    assert not torch.equal(scratch.conv_in.weight, unet.conv_in.weight)
    moved, _ = train_denoiser(LATENTS, LATENTS, mask, torch.randn(1, 2, 32), settings | {"lr": 1e-2}, tmp_path / "c",
                              init_unet=marigold_unet_from(prior))
    assert not torch.equal(moved.conv_in.weight, before["conv_in.weight"])  # it trains (requires_grad back on)
    with pytest.raises(ValueError, match="8-channel"):
        train_denoiser(LATENTS, LATENTS, mask, torch.randn(1, 2, 32), settings, tmp_path / "d", init_unet=prior)


def test_load_text_to_image_loads_a_stable_diffusion_folder(tiny_sd_dir):
    from genpercept_lessons import get_profile
    from genpercept_lessons.models import load_text_to_image

    pipe = load_text_to_image(get_profile("full", device="cpu"), model=str(tiny_sd_dir))
    assert type(pipe).__name__ == "StableDiffusionPipeline" and pipe.unet.config.in_channels == 4
    out = pipe(["a red ball in a room with blue walls"], num_inference_steps=2, height=16, width=16,
               generator=torch.Generator().manual_seed(0), output_type="np").images
    assert out.shape == (1, 16, 16, 3)
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_text_to_image(get_profile("full", device="cpu"), model=str(tiny_sd_dir / "unet"))
    with pytest.raises(FileNotFoundError, match="no folder"):
        load_text_to_image(get_profile("mini"), model="/nonexistent/sd")
    with pytest.raises(TypeError, match="`model`"):
        load_text_to_image(get_profile("mini"), model=3)
    assert get_profile("full").text_to_image_model == "stabilityai/stable-diffusion-2"


def test_unreachable_hub_for_the_text_to_image_model_says_what_to_do(tmp_path):
    import os
    import subprocess
    import sys

    code = ("from genpercept_lessons import get_profile\nfrom genpercept_lessons.models import load_text_to_image\n"
            "load_text_to_image(get_profile('full', device='cpu'))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    assert "RuntimeError: Could not load 'stabilityai/stable-diffusion-2'" in r.stderr, r.stderr[-2000:]
    assert "What to do" in r.stderr and "During handling of the above exception" not in r.stderr


def test_caption_grid_puts_each_caption_under_its_image():
    from genpercept_lessons.viz import caption_grid

    images = rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    fig = caption_grid(images, ["a", "b", "c"], rows={"generated": images})
    assert len(fig.axes) == 6 and [ax.get_xlabel() for ax in fig.axes[3:]] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="one caption per image"):
        caption_grid(images, ["a"])
    with pytest.raises(ValueError, match="row 'generated'"):
        caption_grid(images, ["a", "b", "c"], rows={"generated": images[:, :8]})


def _tiny_text_encoder():
    from genpercept_lessons.mini.components import make_text_encoder

    return make_text_encoder(32, seed=3)


IDS = np.random.default_rng(1).integers(0, 512, size=(8, 6))
EMPTY_IDS = np.array([[512, 513, 513, 513, 513, 513]])


def test_the_text_encoder_learns_with_the_unet_and_resumes_exactly(tmp_path, monkeypatch):
    from genpercept_lessons.mini import marigold_training

    te = _tiny_text_encoder()
    before = {k: v.clone() for k, v in te.state_dict().items()}
    unet, _ = train_text_to_image(LATENTS, IDS, EMPTY_IDS, _settings(text_lr=1e-2), tmp_path / "a", text_encoder=te)
    assert not te.training and not any(p.requires_grad for p in te.parameters())
    moved = [k for k, v in te.state_dict().items() if not torch.equal(before[k], v)]
    assert any(k.endswith("token_embedding.weight") for k in moved)
    assert unet.config.cross_attention_dim == te.config.hidden_size
    frozen = _tiny_text_encoder()
    train_text_to_image(LATENTS, IDS, EMPTY_IDS, _settings(text_lr=0.0), tmp_path / "z", text_encoder=frozen)
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())  # lr 0: only the UNet moves

    real, calls = marigold_training.atomic_torch_save, []

    def save(obj, path):
        real(obj, path)
        calls.append(path)
        raise KeyboardInterrupt("simulated interruption")

    again = _tiny_text_encoder()
    with monkeypatch.context() as m:
        m.setattr(marigold_training, "atomic_torch_save", save)
        with pytest.raises(KeyboardInterrupt):
            train_text_to_image(LATENTS, IDS, EMPTY_IDS, _settings(text_lr=1e-2), tmp_path / "b", text_encoder=again)
    resumed_te = _tiny_text_encoder()  # a fresh process: the text encoder comes back from the checkpoint
    resumed, _ = train_text_to_image(LATENTS, IDS, EMPTY_IDS, _settings(text_lr=1e-2), tmp_path / "b",
                                     text_encoder=resumed_te)
    assert calls and all(torch.equal(a, b) for a, b in zip(te.state_dict().values(), resumed_te.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(unet.state_dict().values(), resumed.state_dict().values()))


def test_text_encoder_training_is_the_same_in_two_processes(tmp_path):
    one_te, two_te = _tiny_text_encoder(), _tiny_text_encoder()
    train_text_to_image(LATENTS, IDS, EMPTY_IDS, _settings(text_lr=1e-2), tmp_path / "one", text_encoder=one_te)
    train_text_to_image(LATENTS, IDS, EMPTY_IDS, _settings(text_lr=1e-2, processes=2), tmp_path / "two",
                        text_encoder=two_te)
    ids = torch.from_numpy(IDS)
    with torch.no_grad():  # outputs, not weights: Adam turns the float noise of a zero gradient (key biases) into steps
        assert torch.allclose(one_te(ids)[0], two_te(ids)[0], atol=1e-4)
        assert not torch.allclose(one_te(ids)[0], _tiny_text_encoder()(ids)[0], atol=1e-2)  # and both trained
    assert not (tmp_path / "two" / "trained_text_encoder").exists()


def test_text_to_image_rejects_captions_of_the_wrong_kind(tmp_path):
    te = _tiny_text_encoder()
    with pytest.raises(ValueError, match="token ids"):
        train_text_to_image(LATENTS, CAPTIONS, EMPTY_IDS, _settings(text_lr=1e-2), tmp_path / "a", text_encoder=te)
    with pytest.raises(ValueError, match="token ids"):
        train_text_to_image(LATENTS, IDS.astype(np.float32), EMPTY_IDS, _settings(text_lr=1e-2), tmp_path / "a",
                            text_encoder=te)
    with pytest.raises(ValueError, match="caption embeddings"):
        train_text_to_image(LATENTS, IDS, EMPTY_IDS, _settings(), tmp_path / "a")
    with pytest.raises(ValueError, match="empty_caption"):
        train_text_to_image(LATENTS, IDS, EMPTY_IDS[:, :3], _settings(text_lr=1e-2), tmp_path / "a", text_encoder=te)


def test_min_snr_weights_follow_the_formula():
    from diffusers import DDPMScheduler

    from genpercept_lessons.mini.marigold_training import _min_snr_weights

    ac = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod
    t = torch.tensor([0, 100, 400, 999])
    snr = ac[t] / (1 - ac[t])
    w = _min_snr_weights(ac, t, 5.0)
    assert snr[0] > 5 > snr[-1]  # both sides of γ are exercised
    torch.testing.assert_close(w[0], 5.0 / (snr[0] + 1))  # clean: capped at γ/(SNR+1)
    torch.testing.assert_close(w[-1], snr[-1] / (snr[-1] + 1))  # noisy: SNR/(SNR+1), the plain v-loss's own weight
    assert torch.all(w > 0) and torch.all(w <= 1)


def test_make_unet_puts_attention_at_the_coarsest_levels():
    from genpercept_lessons.mini.components import make_unet

    unet = make_unet((32, 32, 32), cross_attention_dim=32, sample_size=8, norm_num_groups=8, attention_levels=2)
    assert unet.config.down_block_types == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    assert unet.config.up_block_types == ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    with pytest.raises(ValueError, match="attention_levels"):
        make_unet((32, 32), attention_levels=3)
    s = get_build_settings()
    assert s["depth"]["attention_levels"] == s["normals"]["attention_levels"] == s["sd"]["attention_levels"]


def get_build_settings():
    from genpercept_lessons.profiles import mini_build_settings

    return mini_build_settings(0, "fp32")
