"""Build the mini assets (``make assets``), in the papers' order: MiniScenes and mini-SD's captioned views, an RGB-only
VAE, mini-SD (text-to-image), then the mini-Marigold depth and normals pipelines fine-tuned from mini-SD."""
from __future__ import annotations

import json
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from genpercept_lessons.assets import METADATA_FILE, asset_path, build_asset, is_complete
from genpercept_lessons.atomic import atomic_write_bytes
from genpercept_lessons.profiles import mini_build_settings
from genpercept_lessons.tasks import TASKS

__all__ = ["mini_asset_paths", "mini_assets_ready", "build_mini_assets", "evaluate_pipeline"]


def mini_asset_paths(seed: int | None = None, precision: str | None = None) -> dict[str, Path]:
    """Cache folders of every mini asset of one build variant (``profiles.mini_build``); they exist only once built."""
    s = mini_build_settings(seed, precision)
    return {"data": asset_path("miniscenes", s["data"]), "captioned": asset_path("miniscenes-captioned", s["captioned"]),
            "vae": asset_path("mini-vae", s["vae"]), "sd": asset_path("mini-sd", s["sd"]),
            "depth": asset_path("marigold-depth", s["depth"]), "normals": asset_path("marigold-normals", s["normals"])}


def mini_assets_ready(check_hashes: bool = False, seed: int | None = None,
                      precision: str | None = None) -> dict[str, bool]:
    """Which mini assets are built and intact, e.g. {"data": True, "captioned": True, "vae": True, "sd": False, ...}."""
    return {k: is_complete(p, check_hashes=check_hashes) for k, p in mini_asset_paths(seed, precision).items()}


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def _write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, default=float).encode())


def _build_vae(folder: Path, settings: dict[str, Any]) -> None:
    import torch

    from genpercept_lessons.images import images_to_tensor
    from genpercept_lessons.metrics import depth_metrics, normal_metrics
    from genpercept_lessons.mini.marigold_training import train_vae, training_arrays
    from genpercept_lessons.mini.miniscenes import load_captioned_views, load_miniscenes

    if settings.get("images", ["rgb", "depth", "normals"]) == ["rgb"]:  # Stable Diffusion's: RGB only, not the labelled scenes
        arrays = {"rgb": images_to_tensor(load_captioned_views(settings["data"])[:]["image"], signed=True).numpy()}
    else:
        arrays = training_arrays(load_miniscenes("train"))
    vae, report = train_vae(arrays, settings, folder)
    test = load_miniscenes("test")
    t_arrays = training_arrays(test, "depth")
    with torch.no_grad():  # how well a depth map survives encode -> decode (Marigold supp. B.1 checks the same)
        x = torch.from_numpy(t_arrays["depth"])
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample.mean(1).clamp(-1, 1).numpy()
    depth, mask = test[:]["depth"], t_arrays["mask"]
    report["depth_roundtrip_abs_rel"] = depth_metrics(rec, depth, mask)["abs_rel"]
    report["depth_input_abs_rel"] = depth_metrics(t_arrays["depth"][:, 0], depth, mask)["abs_rel"]  # clamp floor
    normals = training_arrays(test, "normals")["normals"]  # the decoded normals are never better than this
    with torch.no_grad():
        rec_n = vae.decode(vae.encode(torch.from_numpy(normals)).latent_dist.mean).sample.numpy().transpose(0, 2, 3, 1)
    report["normals_roundtrip_mean_deg"] = normal_metrics(rec_n, test[:]["normals"], test[:]["mask"].astype(bool))["mean"]
    vae.save_pretrained(folder / "vae")
    _write_json(folder / METADATA_FILE, {"settings": settings, "report": report})
    (folder / "vae_state.pt").unlink(missing_ok=True)
    print(f"VAE: scaling factor {report['scaling_factor']:.4f}, depth round-trip AbsRel "
          f"{report['depth_roundtrip_abs_rel']:.4f} (the 2-98% clamp alone: {report['depth_input_abs_rel']:.4f}), "
          f"normals round trip {report['normals_roundtrip_mean_deg']:.2f}°, {report['train_seconds']:.0f} s")


def _caption_loss_check(unet, latents, captions, empty, seed: int = 0) -> dict[str, float]:
    """Held-out v-loss of mini-SD with each view's own caption, a caption of another view, and the empty prompt."""
    import torch
    from diffusers import DDPMScheduler

    from genpercept_lessons.mini.components import MARIGOLD_V1_0_SCHEDULER

    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=MARIGOLD_V1_0_SCHEDULER["beta_start"],
                          beta_end=MARIGOLD_V1_0_SCHEDULER["beta_end"], beta_schedule="scaled_linear",
                          prediction_type="v_prediction")
    g = torch.Generator().manual_seed(seed)
    x0 = torch.from_numpy(latents)
    t = torch.randint(0, 1000, (len(x0),), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    noisy, v = sched.add_noise(x0, noise, t), sched.get_velocity(x0, noise, t)
    texts = {"own caption": captions, "another view's caption": captions.roll(1, 0), "empty prompt": empty.expand_as(captions)}
    with torch.no_grad():
        return {k: float(((unet(noisy, t, encoder_hidden_states=c).sample - v) ** 2).mean()) for k, c in texts.items()}


def _build_sd(folder: Path, settings: dict[str, Any], vae_folder: Path) -> None:
    import torch
    from diffusers import AutoencoderKL

    from genpercept_lessons.images import images_to_tensor
    from genpercept_lessons.mini.components import make_text_encoder, make_tokenizer
    from genpercept_lessons.mini.marigold_training import (
        caption_embeddings,
        caption_token_ids,
        encode_latents,
        make_text_to_image_pipeline,
        train_text_to_image,
    )
    from genpercept_lessons.mini.miniscenes import load_captioned_views

    t0 = time.time()
    vae = AutoencoderKL.from_pretrained(vae_folder / "vae").eval().requires_grad_(False)
    views = load_captioned_views(settings["data"])[:]
    tokenizer = make_tokenizer(folder / "_tokenizer_src")
    text_encoder = make_text_encoder(settings["text"]["hidden_size"], seed=settings["text"]["seed"])
    latents = encode_latents(vae, images_to_tensor(views["image"], signed=True).numpy())
    texts = [str(c) for c in views["caption"]]
    held = settings["held_out"]  # the last views are kept out of training, for the caption check
    encode_seconds = time.time() - t0
    # the text encoder learns with the UNet: SD's CLIP came pretrained, the mini world has no pretrained text model
    unet, report = train_text_to_image(latents[:-held], caption_token_ids(tokenizer, texts[:-held]),
                                       caption_token_ids(tokenizer, [""]), settings, folder, text_encoder=text_encoder)
    report["encode_seconds"] = round(encode_seconds, 1)
    report["held_out_v_loss"] = _caption_loss_check(
        unet, latents[-held:], torch.from_numpy(caption_embeddings(text_encoder, tokenizer, texts[-held:])),
        torch.from_numpy(caption_embeddings(text_encoder, tokenizer, [""])))
    pipe = make_text_to_image_pipeline(unet, vae, text_encoder, tokenizer)
    pipe.save_pretrained(folder)
    shutil.rmtree(folder / "_tokenizer_src", ignore_errors=True)
    _write_json(folder / METADATA_FILE, {
        "settings": settings, "report": report, "held_out_views": held,
        "recipe": "v-prediction DDPM (1000 steps, scaled_linear 0.00085-0.012) on RGB-only VAE latents of captioned "
        f"views, captions dropped to the empty prompt {settings['caption_dropout']:.0%} of the time, text encoder "
        f"trained with the UNet, Min-SNR-{settings['min_snr_gamma']:g} loss weights, EMA weights",
    })
    (folder / "mini-sd_state.pt").unlink(missing_ok=True)
    loss = report["held_out_v_loss"]
    print("mini-SD: held-out v-loss " + ", ".join(f"{k} {v:.4f}" for k, v in loss.items())
          + f"; UNet {report['train_seconds']:.0f} s")


def evaluate_pipeline(pipe, test, n: int | None = None) -> dict[str, dict[str, float]]:
    """Held-out quality of a mini pipeline: 1-step leading vs trailing (Gaussian start, seed 0) and trailing zero-noise."""
    from genpercept_lessons.evaluation import evaluate

    n = n or len(test)
    runs = {"leading_1step": ("leading", "gaussian"), "trailing_1step": ("trailing", "gaussian"),
            "trailing_1step_zero_noise": ("trailing", "zeros")}
    return {name: evaluate(pipe, test, n=n, seed=0, batch_size=n, steps=1, spacing=spacing, noise=noise)["metrics"]
            for name, (spacing, noise) in runs.items()}


def _constant_baseline(task: str, train_arrays: dict[str, np.ndarray], test) -> dict[str, float]:
    """Metrics of predicting the training set's pixel-wise mean map for every test scene."""
    from genpercept_lessons.metrics import depth_metrics, normal_metrics

    rows = test[:]
    mask, n = rows["mask"].astype(bool), len(rows["mask"])
    if task == "depth":
        mean_map = train_arrays["depth"][:, 0].mean(0)
        return depth_metrics(np.repeat(mean_map[None], n, 0), rows["depth"], mask)
    mean_n = train_arrays["normals"].mean(0).transpose(1, 2, 0)
    return normal_metrics(np.repeat(mean_n[None], n, 0), rows["normals"], mask)


def _encode_training_latents(vae_folder: Path, tasks: list[str], hflip: bool, out_file: Path) -> float:
    """Encode the training scenes (and their mirror images) once for both UNets: rgb/depth/normals latents + latent mask -> .npz."""
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL

    from genpercept_lessons.mini.marigold_training import encode_latents, training_arrays, with_mirrored
    from genpercept_lessons.mini.miniscenes import load_miniscenes

    t0 = time.time()
    vae = AutoencoderKL.from_pretrained(vae_folder / "vae").eval().requires_grad_(False)
    arrays = training_arrays(load_miniscenes("train"))
    seen = with_mirrored(arrays) if hflip else arrays  # every scene and its mirror image
    f = 2 ** (len(vae.config.block_out_channels) - 1)
    invalid = torch.from_numpy(~seen["mask"]).float()[:, None]
    latents = {"mask": (F.max_pool2d(invalid, f) == 0)[:, 0].numpy()}  # a latent pixel counts if its patch is valid
    for key in ["rgb", *tasks]:
        latents[key] = encode_latents(vae, seen[key])
    np.savez(out_file, **latents)
    return time.time() - t0


def _build_pipeline(folder: Path, task: str, settings: dict[str, Any], vae_folder: Path, latents_file: Path,
                    sd_folder: Path) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from genpercept_lessons.inference import encode_empty_prompt
    from genpercept_lessons.mini.marigold_training import make_pipeline, train_denoiser, training_arrays
    from genpercept_lessons.mini.miniscenes import load_miniscenes
    from genpercept_lessons.models import load_marigold
    from genpercept_lessons.repurpose import marigold_unet_from

    vae = AutoencoderKL.from_pretrained(vae_folder / "vae").eval().requires_grad_(False)
    arrays = training_arrays(load_miniscenes("train"), task)  # unmirrored: for the constant baseline
    n = None if settings.get("hflip") else len(arrays["rgb"])  # the file holds the originals first, then the mirrors
    with np.load(latents_file) as latents:
        rgb_lat, tgt_lat, latent_mask = latents["rgb"][:n], latents[task][:n], latents["mask"][:n]
    # Marigold's components are Stable Diffusion's: its text encoder and tokenizer, and its UNet with conv_in widened
    tokenizer = CLIPTokenizer.from_pretrained(sd_folder / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(sd_folder / "text_encoder").eval().requires_grad_(False)
    empty = encode_empty_prompt(tokenizer, text_encoder)
    init = marigold_unet_from(UNet2DConditionModel.from_pretrained(sd_folder / "unet"))
    unet, report = train_denoiser(rgb_lat, tgt_lat, latent_mask, empty, settings, folder, init_unet=init)
    report["empty_embedding_shape"] = list(empty.shape)
    pipe = make_pipeline(task, unet, vae, text_encoder, tokenizer, arrays["rgb"].shape[-1])
    pipe.save_pretrained(folder)
    # evaluate what was saved, loaded back exactly as a learner loads it
    loaded = load_marigold("mini", task, model=str(folder))
    test = load_miniscenes("test")
    quality = evaluate_pipeline(loaded, test)
    quality["constant_mean_map"] = _constant_baseline(task, arrays, test)
    pyramid = settings.get("multi_res_noise")
    noise = (f"annealed multi-resolution noise (strength {pyramid['strength']} x t/T)" if pyramid else "white noise")
    _write_json(folder / METADATA_FILE, {
        "task": task, "settings": settings, "report": report, "held_out": quality,
        "held_out_scenes": len(test),
        "recipe": "Marigold v1-0, fine-tuned from mini-SD (conv_in widened 4 -> 8, weights duplicated and halved): "
        "DDPM 1000 steps, scaled_linear 0.00085-0.012, "
        f"v-prediction, random timestep per sample, {noise}, {'left-right flips, ' if settings.get('hflip') else ''}"
        "2-token empty-prompt embedding, frozen VAE (posterior mean x scaling), "
        f"LR decay to {settings['final_lr_ratio']:.0%}",
    })
    (folder / f"unet-{task}_state.pt").unlink(missing_ok=True)
    key = "abs_rel" if task == "depth" else "mean"
    print(f"{task}: held-out {key}: leading 1-step {quality['leading_1step'][key]:.3f}, trailing 1-step "
          f"{quality['trailing_1step'][key]:.3f}, zero-noise {quality['trailing_1step_zero_noise'][key]:.3f}, "
          f"constant {quality['constant_mean_map'][key]:.3f}; UNet {report['train_seconds']:.0f} s")


def _build_task_in_process(task: str, latents_file: Path, seed: int, precision: str) -> None:
    """Child-process entry: build one pipeline single-threaded (a fixed thread count keeps the weights bit-reproducible)."""
    import torch

    torch.set_num_threads(1)
    s, paths = mini_build_settings(seed, precision), mini_asset_paths(seed, precision)
    build_asset(paths[task], s[task], lambda tmp: _build_pipeline(tmp, task, s[task], paths["vae"], latents_file, paths["sd"]))


def build_mini_assets(seed: int | None = None, precision: str | None = None) -> dict[str, Path]:
    """Build whatever mini asset the cache lacks (data, captioned views, VAE, mini-SD, depth and normals pipelines); print
    times and peak RAM.

    ``seed`` and ``precision`` pick the build variant (``profiles.mini_build``; default: the environment's).

    The two UNets train at the same time in two single-threaded processes (on 2 cores that is ~12% faster than
    one after the other with 2 threads each, and it makes their weights independent of the machine's core count).
    """
    import multiprocessing as mp

    import torch

    from genpercept_lessons.mini.miniscenes import load_captioned_views, load_miniscenes
    from genpercept_lessons.profiles import mini_build

    variant = mini_build(seed, precision)
    seed, precision = variant["seed"], variant["precision"]
    print(f"mini build: seed {seed}, {precision} (asked for: {variant['requested']})")
    s, paths = mini_build_settings(seed, precision), mini_asset_paths(seed, precision)
    times, t_all = {}, time.time()
    t = time.time()
    load_miniscenes("train")
    load_captioned_views(s["captioned"])
    times["data"] = time.time() - t
    t = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(s["vae"]["threads"])  # fixed, for reproducible VAE weights (per process, see train_vae)
    try:
        build_asset(paths["vae"], s["vae"], lambda tmp: _build_vae(tmp, s["vae"]))
    finally:
        torch.set_num_threads(threads)
    times["vae"] = time.time() - t
    t = time.time()
    torch.set_num_threads(s["sd"]["threads"])  # fixed, for reproducible weights
    try:
        build_asset(paths["sd"], s["sd"], lambda tmp: _build_sd(tmp, s["sd"], paths["vae"]))
    finally:
        torch.set_num_threads(threads)
    times["mini-sd"] = time.time() - t
    t = time.time()
    todo = [task for task in TASKS if not is_complete(paths[task])]
    procs = []
    if todo:
        tmp = Path(tempfile.mkdtemp(prefix="training-latents-", dir=paths["vae"].parent))
        latents_file = tmp / "latents.npz"
        hflip = any(s[task].get("hflip") for task in todo)  # a UNet without flips reads the first half only
        try:
            torch.set_num_threads(2)  # fixed, for reproducible latents
            try:
                times["latents"] = _encode_training_latents(paths["vae"], todo, hflip, latents_file)
            finally:
                torch.set_num_threads(threads)
            t = time.time()
            procs = [mp.get_context("spawn").Process(target=_build_task_in_process, name=f"build-{task}",
                                                     args=(task, latents_file, seed, precision)) for task in todo]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"building {failed} failed (see the messages above); run `make assets` again to resume")
    times["unets"] = time.time() - t
    total = time.time() - t_all
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    print("mini assets ready in " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
          + f"; total {total / 60:.1f} min; peak RAM {_peak_rss_gb():.2f} GB (main), {peak_children:.2f} GB (largest child)")
    for k, p in paths.items():
        print(f"  {k:8s} {p}")
    return paths
