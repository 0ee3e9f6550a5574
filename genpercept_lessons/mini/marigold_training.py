"""Training the mini models: mini-Marigold with Marigold's recipe (a VAE for RGB/depth/normals, one 8-channel denoiser per
task), and the parts of mini-SD, a text-to-image prior (captions -> embeddings, its 4-channel UNet, its pipeline).

Recipe (Marigold paper §3-4, ``prs-eth/Marigold``): frozen VAE, latents = posterior mean × scaling factor, UNet input
cat(RGB latent, noisy target latent), DDPM with 1000 steps, scaled_linear 0.00085→0.012, v-prediction,
a random timestep per sample, conditioned on the 2-token empty-prompt embedding; and from Marigold's trainer
(``config/train_marigold.yaml``, ``src/trainer/marigold_trainer.py``): annealed multi-resolution noise
(strength 0.9 × t/T), random left-right flips, MSE on valid latent pixels, IterExponential LR decay.
What differs: the UNet and VAE are small, and the UNet starts from mini-SD (trained here, not Stable Diffusion), so
the LR is 3e-3 rather than 3e-5 (with the gradient norm clipped to 1.0, which Marigold's trainer does not do), training is
2,000 steps rather than ~20k, and the build's normals run decays to 10% rather than 1%
(``profiles.mini_build_settings`` says why).
Each loop checkpoints atomically and resumes exactly (model, optimizer, LR schedule, RNG, step).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from genpercept_lessons.atomic import atomic_torch_save, atomic_write_bytes
from genpercept_lessons.build_lock import report_progress
from genpercept_lessons.images import images_to_tensor
from genpercept_lessons.lr_schedules import iter_exponential
from genpercept_lessons.targets import depth_to_image, normals_to_image
from genpercept_lessons.tasks import TASKS, check_task

__all__ = ["training_arrays", "with_mirrored", "train_vae", "encode_latents", "train_denoiser", "caption_embeddings",
           "caption_token_ids", "train_text_to_image", "make_pipeline", "make_text_to_image_pipeline"]


def training_arrays(ds, task: str | None = None) -> dict[str, np.ndarray]:
    """Stack a MiniScenes split into float32 arrays in [-1,1]: rgb [N,3,H,W], depth/normals targets [N,3,H,W], mask [N,H,W]."""
    cols = ds[:]
    images, masks = cols["image"], cols["mask"].astype(bool)
    out = {"rgb": images_to_tensor(images, signed=True).numpy(), "mask": masks}
    if task in (None, "depth"):
        out["depth"] = np.stack([depth_to_image(d, m) for d, m in zip(cols["depth"], masks)])
    if task in (None, "normals"):
        out["normals"] = np.stack([normals_to_image(n, m) for n, m in zip(cols["normals"], masks)])
    return out


def with_mirrored(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of ``training_arrays`` followed by their left-right mirror images (Marigold's ``lr_flip_p: 0.5``): N -> 2N rows.

    A mirrored normal map also has its x component negated, so the normals still point the right way.
    """
    out = {}
    for key, a in arrays.items():
        flipped = a[..., ::-1].copy()
        if key == "normals":
            flipped[:, 0] *= -1
        out[key] = np.concatenate([a, flipped])
    return out


def _run_resumable(name: str, workdir: Path, steps: int, modules: dict, step_fn: Callable[[int], float],
                   generator, every: int = 100, position: int = 0, main: bool = True) -> list[float]:
    """Run ``step_fn(step)`` for ``steps`` steps with a tqdm bar; checkpoint ``modules`` + RNG every ``every`` steps and resume from it.

    Of several data-parallel processes only the ``main`` one shows a bar and writes checkpoints; all resume from them.
    """
    import torch
    from tqdm.auto import tqdm

    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / f"{name}_state.pt"
    start, losses = 0, []
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        for key, module in modules.items():
            module.load_state_dict(state[key])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start, losses = state["step"], state["losses"]
        print(f"{name}: resuming from step {start}")
    bar = tqdm(range(start, steps), desc=name, initial=start, total=steps, position=position, disable=not main)
    for step in bar:
        loss = step_fn(step)
        losses.append(loss)
        if main:
            report_progress(name, step + 1, steps)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if main and ((step + 1) % every == 0 or step + 1 == steps):
            state = {key: m.state_dict() for key, m in modules.items()}
            state.update(generator=generator.get_state(), torch_rng=torch.get_rng_state(), step=step + 1, losses=losses)
            atomic_torch_save(state, ckpt)
    return losses


def _use_bf16(settings: dict[str, Any]) -> bool:
    """Whether ``settings`` ask for bf16 autocast (weights and loss stay fp32); refuses on a CPU without bf16 kernels."""
    from genpercept_lessons.profiles import cpu_has_bf16

    if not settings.get("bf16"):
        return False
    if not cpu_has_bf16():
        raise RuntimeError("these build settings train in bf16 but this CPU has no bf16 kernels; "
                           "set GENPERCEPT_MINI_PRECISION=fp32 (or auto)")
    return True


def _update(loss, opt, sched, max_grad_norm: float | None = None, average=None) -> float:
    """One optimiser step on ``loss`` (gradient norm clipped to ``max_grad_norm`` if set) and one LR-schedule step; returns the loss.

    ``average(loss, opt)``, if given, first averages the gradients over data-parallel processes and returns their mean loss.
    """
    import torch

    opt.zero_grad(set_to_none=True)
    loss.backward()
    value = average(loss, opt) if average is not None else loss.item()
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_([p for group in opt.param_groups for p in group["params"]], max_grad_norm)
    opt.step()
    sched.step()
    return value


def _average_over_processes(loss, opt) -> float:
    """All-reduce (mean) every gradient of ``opt`` and the loss over the torch.distributed group, in one flat buffer."""
    import torch
    import torch.distributed as dist

    params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in params] + [loss.detach().reshape(1).float()])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
        offset += p.numel()
    return float(flat[-1])


def _spawn_data_parallel(worker, args: tuple, processes: int, threads: int = 1) -> None:
    """Run ``worker(rank, world, *args)`` in ``processes`` spawned processes joined in one torch.distributed (gloo) group."""
    import tempfile

    import torch.multiprocessing as tmp

    rendezvous = Path(tempfile.mkdtemp(prefix="genpercept-dp-")) / "rendezvous"
    try:
        tmp.spawn(_data_parallel_process, args=(processes, worker, args, f"file://{rendezvous}", threads),
                  nprocs=processes, join=True)
    finally:
        shutil.rmtree(rendezvous.parent, ignore_errors=True)


def _data_parallel_process(rank: int, world: int, worker, args: tuple, init_method: str, threads: int) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        worker(rank, world, *args)
    finally:
        dist.destroy_process_group()


def _hand_over(model, report: dict, folder: Path) -> None:
    """Rank 0 of a data-parallel run: write the trained ``model`` and its ``report`` for the parent process."""
    model.save_pretrained(folder)
    atomic_write_bytes(folder / "report.json", json.dumps(report).encode())


def _take_over(model_class, folder: Path):
    """The parent of a data-parallel run: load what ``_hand_over`` wrote (weights owned in memory), then delete it."""
    model = model_class.from_pretrained(folder).eval().requires_grad_(False)
    for p in model.parameters():  # own the weights before the files go
        p.data = p.data.clone()
    report = json.loads((folder / "report.json").read_text())
    shutil.rmtree(folder, ignore_errors=True)
    return model, report


def _check_processes(caller: str, settings: dict[str, Any]) -> int:
    processes = settings.get("processes", 1)
    if not isinstance(processes, int) or processes < 1 or settings["batch_size"] % processes:
        raise ValueError(f"{caller}: settings['processes'] must be a positive int dividing the batch size "
                         f"{settings['batch_size']}, got {processes!r}")
    return processes


def train_vae(arrays: dict[str, np.ndarray], settings: dict[str, Any], workdir: str | os.PathLike):
    """Train the small ``AutoencoderKL`` on the images [N,3,H,W] of ``arrays`` (its "rgb", "depth", "normals", whichever
    ``settings["images"]`` names; default all three); measure its latent scaling factor. Returns (vae, report).

    L1 reconstruction + ``kl_weight``·KL; the scaling factor is 1/std of the latent means over the training images
    (SD measured 0.18215 the same way on RGB). With ``settings["processes"]`` = P > 1 each batch is split over P
    single-threaded processes whose gradients are averaged (torch.distributed, gloo): the same optimisation as one
    process, in less wall time on P cores. Introduced in notebook 01.
    """
    workdir = Path(workdir)
    processes = _check_processes("train_vae", settings)
    kinds = settings.get("images", ["rgb", "depth", "normals"])
    missing = [k for k in kinds if k not in arrays]
    if missing:
        raise KeyError(f"train_vae: settings['images'] names {missing}, which `arrays` lacks (it has {sorted(arrays)})")
    import torch

    t0 = time.time()
    pool = torch.from_numpy(np.concatenate([arrays[k] for k in kinds]))
    if processes == 1:
        vae, report = _train_vae_process(0, 1, pool, settings, workdir)
    else:
        from diffusers import AutoencoderKL

        workdir.mkdir(parents=True, exist_ok=True)
        pool.share_memory_()  # the processes read the images from shared memory instead of copies
        _spawn_data_parallel(_train_vae_process, (pool, settings, workdir), processes, settings.get("threads", 1))
        vae, report = _take_over(AutoencoderKL, workdir / "trained_vae")
    report["train_seconds"] = round(time.time() - t0, 1)
    report["processes"] = processes
    report["images"] = list(kinds)
    return vae, report


def _train_vae_process(rank: int, world: int, pool, settings, workdir: Path):
    """One process of ``train_vae`` on the image pool [M,3,H,W]: rank ``rank`` of ``world`` trains on its share of every batch."""
    import torch

    from genpercept_lessons.mini.components import make_vae

    torch.manual_seed(settings["seed"])  # every process starts from the same weights and draws the same batches
    vae = make_vae(tuple(settings["block_out_channels"]), settings["latent_channels"], pool.shape[-1],
                   settings.get("norm_num_groups", 4))
    opt = torch.optim.AdamW(vae.parameters(), lr=settings["lr"], weight_decay=0.0)
    total = settings["steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: iter_exponential(s, total, total // 20, 0.05))
    g = torch.Generator().manual_seed(settings["seed"])
    bs, crop, sample = settings["batch_size"], settings.get("crop"), settings.get("sample_posterior", True)
    bf16 = _use_bf16(settings)

    def step(_):
        idx = torch.randint(0, len(pool), (bs,), generator=g)
        x = pool[idx]
        if crop:  # the VAE is fully convolutional: random crops train the same weights at a quarter of the cost
            i, j = torch.randint(0, x.shape[-2] - crop + 1, (2,), generator=g).tolist()
            x = x[..., i:i + crop, j:j + crop]
        share = slice(rank * bs // world, (rank + 1) * bs // world)  # this process's part of the batch
        x = x[share]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            post = vae.encode(x).latent_dist
            if sample:  # every process draws the whole batch's noise, so the generators stay in step
                z = post.mean + post.std * torch.randn((bs, *post.mean.shape[1:]), generator=g)[share]
            else:
                z = post.mean
            rec = vae.decode(z).sample
        loss = (rec.float() - x).abs().mean() + settings["kl_weight"] * post.kl().float().mean()
        return _update(loss, opt, sched, average=_average_over_processes if world > 1 else None)

    vae.train()
    losses = _run_resumable("vae", workdir, total, {"vae": vae, "opt": opt, "sched": sched}, step, g,
                            settings.get("checkpoint_every", 100), main=rank == 0)
    if rank:
        return None
    vae.eval().requires_grad_(False)
    with torch.no_grad():  # latent std over an even sample of the training images
        idx = torch.linspace(0, len(pool) - 1, 768).long()
        means = torch.cat([vae.encode(pool[idx[i:i + 128]]).latent_dist.mean for i in range(0, len(idx), 128)])
    scaling = float(1.0 / means.std())
    vae.register_to_config(scaling_factor=scaling)
    report = {"final_loss": float(np.mean(losses[-50:])), "scaling_factor": scaling,
              "precision": "bf16" if bf16 else "fp32"}
    if world > 1:  # hand the weights to the parent process
        _hand_over(vae, report, workdir / "trained_vae")
        return None
    return vae, report


def encode_latents(vae, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Encode [-1,1] images [N,3,H,W] to scaled latents [N,4,h,w]: posterior mean × ``vae.config.scaling_factor``. Introduced in notebook 01."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i:i + batch_size])
            out.append(vae.encode(x).latent_dist.mean * vae.config.scaling_factor)
    return torch.cat(out).numpy()


def _min_snr_weights(alphas_cumprod, t, gamma: float):
    """Min-SNR-γ loss weights [B] for v-prediction at timesteps ``t`` [B]: min(SNR, γ) / (SNR + 1), SNR = ᾱ/(1 − ᾱ)."""
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    return snr.clamp(max=gamma) / (snr + 1)


def _diffusion_training(name: str, unet, targets, condition, settings: dict[str, Any], workdir: Path, position: int = 0,
                        mask=None, rank: int = 0, world: int = 1, text_encoder=None) -> dict[str, Any]:
    """Train ``unet`` on the v-objective (DDPM, 1000 steps, scaled_linear, a random timestep per sample); returns a report.

    ``targets`` [N,4,h,w] are the clean latents; ``condition(idx, generator)`` gives the batch's extra UNet input
    (concatenated before the noisy latent; ``None`` for none) and its text embeddings [B,S,C]; ``mask`` [N,1,h,w]
    weights the loss (default: every latent pixel). Process ``rank`` of ``world`` data-parallel ones (a torch.distributed
    group) trains on its share of each batch; every process draws the whole batch's randomness, so they stay in step.
    With ``settings["ema_decay"]`` the returned weights are an exponential moving average (diffusers' ``EMAModel``).
    ``text_encoder``, if given, is trained with the UNet (in place, at ``settings["text_lr"]``; ``condition`` runs it).
    ``settings["min_snr_gamma"]`` = γ weights each sample's loss by min(SNR, γ)/(SNR + 1), the Min-SNR weighting for
    v-prediction (Hang et al., ICCV 2023, arXiv 2303.09556), which lets a small budget converge faster.
    """
    import torch
    from diffusers import DDPMScheduler

    from genpercept_lessons.mini.components import MARIGOLD_V1_0_SCHEDULER
    from genpercept_lessons.training_noise import multi_resolution_noise

    train_sched = DDPMScheduler(num_train_timesteps=1000, beta_start=MARIGOLD_V1_0_SCHEDULER["beta_start"],
                                beta_end=MARIGOLD_V1_0_SCHEDULER["beta_end"], beta_schedule="scaled_linear",
                                prediction_type="v_prediction", clip_sample=False)
    groups = [{"params": list(unet.parameters())}]
    if text_encoder is not None:
        text_encoder.train().requires_grad_(True)
        groups.append({"params": list(text_encoder.parameters()), "lr": settings["text_lr"]})
    params = [p for group in groups for p in group["params"]]
    opt = torch.optim.AdamW(groups, lr=settings["lr"], weight_decay=1e-2)
    total = settings["steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: iter_exponential(s, total, settings["warmup"], settings["final_lr_ratio"]))
    g = torch.Generator().manual_seed(settings["seed"])
    bs = settings["batch_size"]
    share = slice(rank * bs // world, (rank + 1) * bs // world)  # this process's part of every batch
    everywhere = torch.ones(bs, 1, *targets.shape[2:])
    ema = None
    if settings.get("ema_decay"):
        from diffusers.training_utils import EMAModel

        ema = EMAModel(params, decay=settings["ema_decay"], foreach=True)
    pyramid = settings.get("multi_res_noise")  # Marigold v1-0: {"strength": 0.9, "annealed": True}
    bf16 = _use_bf16(settings)
    n_train = train_sched.config.num_train_timesteps
    gamma = settings.get("min_snr_gamma")

    def step(_):
        idx = torch.randint(0, len(targets), (bs,), generator=g)
        x0, m = targets[idx], (mask[idx] if mask is not None else everywhere)
        extra, text = condition(idx, g)
        t = torch.randint(0, n_train, (bs,), generator=g)
        if pyramid:
            strength = pyramid["strength"] * (t.float() / n_train if pyramid.get("annealed", True) else 1.0)
            noise = multi_resolution_noise(x0.shape, strength, generator=g)
        else:
            noise = torch.randn(x0.shape, generator=g)
        noisy = train_sched.add_noise(x0, noise, t)
        v = train_sched.get_velocity(x0, noise, t)
        if world > 1:
            noisy, v, m, t, text = noisy[share], v[share], m[share], t[share], text[share]
            extra = None if extra is None else extra[share]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = unet(noisy if extra is None else torch.cat([extra, noisy], dim=1), t, encoder_hidden_states=text).sample
        pred = pred.float()
        err = (pred - v) ** 2
        if gamma:  # a weighted mean over the batch: the weights scale the loss, they do not renormalise it
            err = err * _min_snr_weights(train_sched.alphas_cumprod, t, gamma)[:, None, None, None]
        loss = (err * m).sum() / (m.sum() * pred.shape[1]).clamp_min(1.0)
        value = _update(loss, opt, sched, settings.get("max_grad_norm"), _average_over_processes if world > 1 else None)
        if ema is not None:
            ema.step(params)
        return value

    t0 = time.time()
    unet.train()
    modules = {"unet": unet, "opt": opt, "sched": sched, **({"ema": ema} if ema is not None else {}),
               **({"text_encoder": text_encoder} if text_encoder is not None else {})}
    losses = _run_resumable(name, workdir, total, modules, step, g, settings.get("checkpoint_every", 100), position,
                            main=rank == 0)
    if ema is not None:
        ema.copy_to(params)
    for module in (unet, text_encoder):
        if module is not None:
            module.eval().requires_grad_(False)
    return {"train_seconds": round(time.time() - t0, 1), "final_loss": float(np.mean(losses[-50:])),
            "parameters": sum(p.numel() for p in unet.parameters()), "precision": "bf16" if bf16 else "fp32"}


def train_denoiser(rgb_latents: np.ndarray, target_latents: np.ndarray, latent_mask: np.ndarray,
                   empty_embedding, settings: dict[str, Any], workdir: str | os.PathLike, init_unet=None):
    """Train an 8-channel v-prediction UNet with Marigold's diffusion recipe on precomputed latents [N,4,h,w]; returns (unet, report).

    ``init_unet``: start from this 8-channel UNet (Marigold: Stable Diffusion's, ``repurpose.marigold_unet_from``;
    it is trained in place) instead of random weights. The loss is the MSE between predicted and true v on latent
    pixels whose image patch is fully valid (``latent_mask`` [N,h,w]); the noise is Marigold's annealed
    multi-resolution noise when ``settings["multi_res_noise"]`` is set, else white. Introduced in notebook 01.
    """
    import torch

    from genpercept_lessons.mini.components import make_unet

    torch.manual_seed(settings["seed"])
    if init_unet is None:
        unet = make_unet(tuple(settings["block_out_channels"]), empty_embedding.shape[-1], rgb_latents.shape[-1],
                         norm_num_groups=settings.get("norm_num_groups", 32),
                         attention_levels=settings.get("attention_levels", 1))
    elif getattr(getattr(init_unet, "config", None), "in_channels", None) != 8:
        raise ValueError("train_denoiser: `init_unet` must be an 8-channel UNet2DConditionModel "
                         "(repurpose.marigold_unet_from widens a text-to-image one)")
    else:
        unet = init_unet.requires_grad_(True)
    rgb, bs = torch.from_numpy(rgb_latents), settings["batch_size"]
    text = empty_embedding.expand(bs, -1, -1)
    report = _diffusion_training(f"unet-{settings['task']}", unet, torch.from_numpy(target_latents),
                                 lambda idx, g: (rgb[idx], text), settings, Path(workdir), TASKS.index(settings["task"]),
                                 torch.from_numpy(latent_mask.astype(np.float32))[:, None])
    return unet, report


def caption_embeddings(text_encoder, tokenizer, captions: list[str], batch_size: int = 256) -> np.ndarray:
    """Captions -> the text encoder's last hidden states [N,77,C], padded to the tokenizer's 77 tokens as Stable
    Diffusion's pipelines pad them (Marigold's empty prompt is *not* padded: 2 tokens). Introduced in notebook 01."""
    import torch

    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise TypeError("caption_embeddings: `captions` must be a list of strings")
    out = []
    with torch.no_grad():
        for i in range(0, len(captions), batch_size):
            out.append(text_encoder(torch.from_numpy(caption_token_ids(tokenizer, captions[i:i + batch_size])))[0])
    return torch.cat(out).numpy()


def caption_token_ids(tokenizer, captions: list[str]) -> np.ndarray:
    """Captions -> token ids [N,77] (int64), padded to the tokenizer's 77 tokens as Stable Diffusion's pipelines pad them."""
    return tokenizer(list(captions), padding="max_length", truncation=True, max_length=tokenizer.model_max_length,
                     return_tensors="np").input_ids


def train_text_to_image(image_latents: np.ndarray, captions: np.ndarray, empty_caption, settings: dict[str, Any],
                        workdir: str | os.PathLike, text_encoder=None):
    """Train mini-SD's 4-channel v-prediction UNet to generate image latents [N,4,h,w] from captions; returns (unet, report).

    ``captions``: caption embeddings [N,S,C] (a frozen text encoder), or, with ``text_encoder``, token ids [N,S] that
    it encodes and is trained on with the UNet, in place, at ``settings["text_lr"]``. Each caption is swapped for the
    empty one (``empty_caption``: [1,S,C] or [1,S] ids) with probability ``settings["caption_dropout"]``, as
    classifier-free guidance training does (Ho & Salimans, arXiv 2207.12598), so that the empty prompt, the only
    one Marigold ever shows the UNet, means "an image" rather than nothing the UNet has seen. With
    ``settings["processes"]`` = P > 1 each batch is split over P single-threaded processes (as ``train_vae``).
    """
    import torch

    ids = text_encoder is not None
    captions, empty = np.asarray(captions), np.asarray(empty_caption)
    want = "token ids [N, S]" if ids else "caption embeddings [N, S, C]"
    if captions.ndim != (2 if ids else 3) or (ids and not np.issubdtype(captions.dtype, np.integer)):
        raise ValueError(f"train_text_to_image: `captions` must be {want}"
                         f"{' (integers, since a text_encoder is given)' if ids else ''}, got "
                         f"{captions.dtype} of shape {list(captions.shape)}")
    if len(captions) != len(image_latents):
        raise ValueError(f"train_text_to_image: {len(image_latents)} image latents but {len(captions)} captions")
    if empty.shape != (1, *captions.shape[1:]):
        raise ValueError(f"train_text_to_image: `empty_caption` must be shaped {[1, *captions.shape[1:]]} like one "
                         f"caption, got {list(empty.shape)}")
    processes = _check_processes("train_text_to_image", settings)
    workdir = Path(workdir)
    latents, captions, empty = torch.from_numpy(image_latents), torch.from_numpy(captions), torch.from_numpy(empty.copy())
    if processes == 1:
        return _train_text_to_image_process(0, 1, latents, captions, empty, settings, workdir, text_encoder)
    from diffusers import UNet2DConditionModel

    t0 = time.time()
    for tensor in (latents, captions, empty):
        tensor.share_memory_()
    _spawn_data_parallel(_train_text_to_image_process, (latents, captions, empty, settings, workdir, text_encoder),
                         processes, settings.get("threads", 1))
    unet, report = _take_over(UNet2DConditionModel, workdir / "trained_unet")
    if ids:
        trained, _ = _take_over(type(text_encoder), workdir / "trained_text_encoder")
        text_encoder.load_state_dict(trained.state_dict())
        text_encoder.eval().requires_grad_(False)
    report.update(train_seconds=round(time.time() - t0, 1), processes=processes)
    return unet, report


def _train_text_to_image_process(rank: int, world: int, latents, captions, empty, settings, workdir: Path,
                                 text_encoder=None):
    """One process of ``train_text_to_image``; with ``world`` > 1 rank 0 writes the weights to ``workdir``/trained_unet
    (and the text encoder's to ``workdir``/trained_text_encoder)."""
    import torch

    from genpercept_lessons.mini.components import make_unet

    torch.manual_seed(settings["seed"])
    if text_encoder is not None and world > 1:
        # spawn hands every process the parent's module in shared memory: each needs its own copy to train
        text_encoder = copy.deepcopy(text_encoder)
    width = captions.shape[-1] if text_encoder is None else text_encoder.config.hidden_size
    unet = make_unet(tuple(settings["block_out_channels"]), width, latents.shape[-1],
                     norm_num_groups=settings.get("norm_num_groups", 32), in_channels=4,
                     attention_levels=settings.get("attention_levels", 1))
    p_drop = settings.get("caption_dropout", 0.1)
    bf16 = _use_bf16(settings)

    def condition(idx, g):
        drop = torch.rand(len(idx), generator=g) < p_drop
        if text_encoder is None:
            return None, torch.where(drop[:, None, None], empty, captions[idx])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return None, text_encoder(torch.where(drop[:, None], empty, captions[idx]))[0].float()

    report = _diffusion_training("mini-sd", unet, latents, condition, settings, workdir, rank=rank, world=world,
                                 text_encoder=text_encoder)
    if world == 1:
        return unet, report
    if rank == 0:
        _hand_over(unet, report, workdir / "trained_unet")
        if text_encoder is not None:
            _hand_over(text_encoder, {}, workdir / "trained_text_encoder")
    return None


def make_pipeline(task: str, unet, vae, text_encoder, tokenizer, resolution: int):
    """Assemble a diffusers ``MarigoldDepthPipeline``/``MarigoldNormalsPipeline`` with Marigold v1-0's (leading) DDIM scheduler."""
    from diffusers import MarigoldDepthPipeline, MarigoldNormalsPipeline

    from genpercept_lessons.mini.components import make_scheduler

    check_task("make_pipeline", task)
    common = dict(unet=unet, vae=vae, scheduler=make_scheduler(), text_encoder=text_encoder, tokenizer=tokenizer,
                  default_denoising_steps=10, default_processing_resolution=resolution)
    if task == "depth":
        return MarigoldDepthPipeline(prediction_type="depth", scale_invariant=True, shift_invariant=True, **common)
    return MarigoldNormalsPipeline(prediction_type="normals", use_full_z_range=True, **common)


def make_text_to_image_pipeline(unet, vae, text_encoder, tokenizer):
    """Assemble mini-SD as a diffusers ``StableDiffusionPipeline`` (DDIM, v-prediction, trailing spacing; no safety checker)."""
    from diffusers import StableDiffusionPipeline

    from genpercept_lessons.mini.components import make_scheduler
    from genpercept_lessons.noise_schedules import with_spacing

    if unet.config.in_channels != 4:
        raise ValueError(f"make_text_to_image_pipeline: expected a 4-channel UNet, got in_channels={unet.config.in_channels}")
    scheduler = with_spacing(make_scheduler(), "trailing")
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
