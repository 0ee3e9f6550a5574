"""mini-Marigold training: the recipe's pieces, exact resume after an interruption, and the built assets' quality."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genpercept_lessons.mini import marigold_training
from genpercept_lessons.mini.marigold_training import train_denoiser, train_vae
from genpercept_lessons.profiles import cpu_has_bf16

rng = np.random.default_rng(0)
ARRAYS = {k: rng.uniform(-1, 1, (8, 3, 16, 16)).astype(np.float32) for k in ("rgb", "depth", "normals")}
VAE_SETTINGS = {"block_out_channels": [32, 32], "latent_channels": 4, "steps": 4, "batch_size": 2, "lr": 1e-3,
                "kl_weight": 1e-6, "seed": 0, "checkpoint_every": 1}


def _interrupt_after(monkeypatch, n_saves: int):
    real, calls = marigold_training.atomic_torch_save, []

    def save(obj, path):
        real(obj, path)
        calls.append(path)
        if len(calls) == n_saves:
            raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(marigold_training, "atomic_torch_save", save)


@pytest.mark.parametrize("extra", [{}, pytest.param({"bf16": True}, marks=pytest.mark.skipif(
    not cpu_has_bf16(), reason="this CPU has no bf16 kernels"))])
def test_vae_training_resumes_exactly(tmp_path, monkeypatch, extra):
    settings = VAE_SETTINGS | extra
    straight, _ = train_vae(ARRAYS, settings, tmp_path / "a")
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            train_vae(ARRAYS, settings, tmp_path / "b")
    resumed, report = train_vae(ARRAYS, settings, tmp_path / "b")
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    assert report["scaling_factor"] > 0 and resumed.config.scaling_factor == report["scaling_factor"]
    assert report["precision"] == ("bf16" if extra else "fp32")


def test_vae_data_parallel_is_the_same_optimisation(tmp_path):
    """Two processes, each with half of every batch and averaged gradients, follow one process's run (up to float order)."""
    settings = VAE_SETTINGS | {"batch_size": 4, "checkpoint_every": 2}
    one, report_one = train_vae(ARRAYS, settings, tmp_path / "one")
    two, report_two = train_vae(ARRAYS, settings | {"processes": 2}, tmp_path / "two")
    x = torch.from_numpy(ARRAYS["rgb"])
    with torch.no_grad():  # compare what the VAEs do: Adam turns float-order noise on gradient-free weights (the
        # attention's key bias) into full steps, so raw weights may differ where it does not matter
        rec_one, rec_two = (v.decode(v.encode(x).latent_dist.mean).sample for v in (one, two))
    assert torch.allclose(rec_one, rec_two, atol=1e-4)
    assert report_two["processes"] == 2 and abs(report_one["scaling_factor"] - report_two["scaling_factor"]) < 1e-4
    assert abs(report_one["final_loss"] - report_two["final_loss"]) < 1e-5
    again, _ = train_vae(ARRAYS, settings | {"processes": 2}, tmp_path / "again")
    assert all(torch.equal(a, b) for a, b in zip(two.state_dict().values(), again.state_dict().values()))
    assert not (tmp_path / "two" / "trained_vae").exists()
    with pytest.raises(ValueError, match="processes"):
        train_vae(ARRAYS, settings | {"processes": 3}, tmp_path / "bad")


@pytest.mark.parametrize("pyramid", [None, {"strength": 0.9, "annealed": True}])
def test_denoiser_resumes_exactly_and_uses_the_recipe(tmp_path, monkeypatch, pyramid):
    settings = {"task": "depth", "block_out_channels": [32, 32], "steps": 3, "batch_size": 2, "lr": 1e-3,
                "warmup": 1, "final_lr_ratio": 0.1, "seed": 0, "checkpoint_every": 1, "multi_res_noise": pyramid}
    lat = rng.normal(size=(6, 4, 8, 8)).astype(np.float32)
    mask = np.ones((6, 8, 8), bool)
    empty = torch.randn(1, 2, 32)

    straight, _ = train_denoiser(lat, lat, mask, empty, settings, tmp_path)
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(KeyboardInterrupt):
            train_denoiser(lat, lat, mask, empty, settings, tmp_path / "b")
    resumed, _ = train_denoiser(lat, lat, mask, empty, settings, tmp_path / "b")
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    assert straight.config.in_channels == 8 and straight.config.out_channels == 4


@pytest.mark.parametrize("max_grad_norm", [None, 1.0])
def test_denoiser_clips_the_gradient_norm_when_asked(tmp_path, monkeypatch, max_grad_norm):
    settings = {"task": "normals", "block_out_channels": [32, 32], "steps": 2, "batch_size": 2, "lr": 1e-3,
                "warmup": 1, "final_lr_ratio": 0.1, "seed": 0, "max_grad_norm": max_grad_norm}
    real, seen = torch.nn.utils.clip_grad_norm_, []

    def clip(params, max_norm, *args, **kwargs):
        params = list(params)
        seen.append((max_norm, len(params), all(p.grad is not None for p in params)))
        return real(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    lat = rng.normal(size=(6, 4, 8, 8)).astype(np.float32)
    unet, _ = train_denoiser(lat, lat, np.ones((6, 8, 8), bool), torch.randn(1, 2, 32), settings, tmp_path)
    n_params = len(list(unet.parameters()))
    assert seen == ([] if max_grad_norm is None else [(1.0, n_params, True)] * 2)


def test_with_mirrored_flips_images_and_the_x_of_normals():
    arrays = {k: v[:2] for k, v in ARRAYS.items()} | {"mask": rng.random((2, 16, 16)) > 0.5}
    out = marigold_training.with_mirrored(arrays)
    assert {k: v.shape[0] for k, v in out.items()} == {k: 4 for k in arrays}
    np.testing.assert_array_equal(out["rgb"][2:], arrays["rgb"][..., ::-1])
    np.testing.assert_array_equal(out["mask"][2:], arrays["mask"][..., ::-1])
    np.testing.assert_array_equal(out["normals"][2:, 0], -arrays["normals"][:, 0, :, ::-1])  # x points the other way
    np.testing.assert_array_equal(out["normals"][2:, 1:], arrays["normals"][:, 1:, :, ::-1])
    np.testing.assert_array_equal(out["depth"][:2], arrays["depth"])  # originals first, untouched


def _text_to_image_settings(**kw):
    return {"block_out_channels": [32, 32], "norm_num_groups": 8, "steps": 3, "batch_size": 2, "lr": 1e-3, "warmup": 1,
            "final_lr_ratio": 0.1, "seed": 0, "checkpoint_every": 1} | kw


def test_text_to_image_prior_trains_on_captions_and_drops_them(tmp_path, monkeypatch):
    from genpercept_lessons.mini.marigold_training import train_text_to_image

    lat = rng.normal(size=(6, 4, 8, 8)).astype(np.float32)
    caps = rng.normal(size=(6, 5, 32)).astype(np.float32)
    empty = torch.zeros(1, 5, 32)
    weights = {}
    for name, p_drop, c in (("captions", 0.0, caps), ("dropped", 1.0, caps), ("empty", 0.0, np.zeros_like(caps))):
        unet, report = train_text_to_image(lat, c, empty, _text_to_image_settings(caption_dropout=p_drop), tmp_path / name)
        weights[name] = list(unet.state_dict().values())
    assert unet.config.in_channels == 4 and report["final_loss"] > 0
    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(weights[a], weights[b]))

    assert same("dropped", "empty") and not same("captions", "empty")  # dropout swaps in the empty caption
    with monkeypatch.context() as m:  # and it resumes exactly, like every loop of the build
        _interrupt_after(m, 1)
        with pytest.raises(KeyboardInterrupt):
            train_text_to_image(lat, caps, empty, _text_to_image_settings(caption_dropout=0.0), tmp_path / "b")
    resumed, _ = train_text_to_image(lat, caps, empty, _text_to_image_settings(caption_dropout=0.0), tmp_path / "b")
    assert all(torch.equal(a, b) for a, b in zip(weights["captions"], resumed.state_dict().values()))
    with pytest.raises(ValueError, match="captions"):
        train_text_to_image(lat, caps[:3], empty, _text_to_image_settings(), tmp_path / "bad")
    with pytest.raises(ValueError, match="empty_caption"):
        train_text_to_image(lat, caps, torch.zeros(1, 2, 32), _text_to_image_settings(), tmp_path / "bad")


def test_text_to_image_pipeline_generates_from_captions(tmp_path):
    from diffusers import StableDiffusionPipeline

    from genpercept_lessons.mini.components import make_text_encoder, make_tokenizer, make_unet, make_vae
    from genpercept_lessons.mini.marigold_training import caption_embeddings, make_text_to_image_pipeline

    torch.manual_seed(0)
    text_encoder, tokenizer = make_text_encoder(32), make_tokenizer(tmp_path / "tok")
    emb = caption_embeddings(text_encoder, tokenizer, ["a red ball in a room with grey walls", ""])
    assert emb.shape == (2, 77, 32) and not np.allclose(emb[0], emb[1])
    with pytest.raises(TypeError, match="captions"):
        caption_embeddings(text_encoder, tokenizer, "a red ball")
    unet = make_unet((32, 32), cross_attention_dim=32, sample_size=8, norm_num_groups=8, in_channels=4)
    pipe = make_text_to_image_pipeline(unet, make_vae((32, 32), sample_size=16), text_encoder, tokenizer)
    pipe.save_pretrained(tmp_path / "mini-sd")
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "mini-sd")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(["a blue box"] * 2, height=16, width=16, num_inference_steps=2, guidance_scale=3.0, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (2, 16, 16, 3) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="4-channel"):
        make_text_to_image_pipeline(make_unet((32, 32), cross_attention_dim=32, sample_size=8, norm_num_groups=8),
                                    pipe.vae, text_encoder, tokenizer)
