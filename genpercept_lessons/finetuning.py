"""End-to-end fine-tuning (E2E-FT, Garcia et al. 2025): t fixed at T, zero noise, one UNet pass, decode with gradients, task loss.

The recipe follows ``VisualComputingInstitute/diffusion-e2e-ft`` ``training/train.py`` and ``training/dataloaders/load.py``: the whole UNet
is trained with AdamW, warm-up then exponential decay, grad-norm clipping at 1, gradient accumulation, batches mixed
per dataset; the VAE and text encoder stay frozen but the prediction is decoded through the VAE *with gradients*.
Runs on one CPU/GPU, or data-parallel under ``torchrun`` / ``accelerate launch`` (🤗 accelerate).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from genpercept_lessons.atomic import atomic_torch_save, replace_folder
from genpercept_lessons.images import images_to_tensor
from genpercept_lessons.lr_schedules import iter_exponential
from genpercept_lessons.normals_convention import (
    COURSE_CONVENTION,
    convert_normals,
    normals_convention,
    write_convention,
)
from genpercept_lessons.runtime import step_generator
from genpercept_lessons.tasks import TASKS, pipeline_task

__all__ = ["E2EConfig", "PAPER_RECIPE", "GPU_24GB", "FinetuneResult", "training_batch", "training_autocast",
           "micro_batch_loss", "e2e_optimizer", "e2e_latent", "e2e_predict",
           "target_latent", "finetune_end_to_end"]

_NOISES = ("zeros", "gaussian")
_LOSSES = ("task", "latent")


@dataclass(frozen=True)
class E2EConfig:
    """Settings of one E2E-FT run; ``validate()`` says what is wrong. Introduced in notebook 05."""

    task: str = "depth"
    steps: int = 300
    batch_size: int = 32
    grad_accumulation: int = 1
    lr: float = 3e-4
    weight_decay: float = 1e-2
    warmup: int = 20
    final_lr_ratio: float = 0.01
    max_grad_norm: float = 1.0
    noise: str = "zeros"
    loss: str = "task"  # "task": on the decoded map (E2E-FT); "latent": MSE to the target's VAE latent, nothing decoded
    hflip: bool = True
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"
    seed: int = 0
    eval_every: int = 0
    eval_scenes: int = 50
    eval_protocol: str = "miniscenes"
    checkpoint_every: int = 50

    def validate(self) -> "E2EConfig":
        """Raise ValueError naming the first bad field; return self."""
        positive = ("steps", "batch_size", "grad_accumulation", "eval_scenes", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"E2EConfig: `{name}` must be a positive int, got {value!r}")
        if self.task not in TASKS:
            raise ValueError(f"E2EConfig: `task` must be 'depth' or 'normals', got {self.task!r}")
        if self.noise not in _NOISES:
            raise ValueError(f"E2EConfig: `noise` must be one of {_NOISES}, got {self.noise!r}")
        if self.loss not in _LOSSES:
            raise ValueError(f"E2EConfig: `loss` must be one of {_LOSSES}, got {self.loss!r}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"E2EConfig: `mixed_precision` must be 'no' or 'bf16', got {self.mixed_precision!r}")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.max_grad_norm > 0):  # also rejects NaN
            raise ValueError(f"E2EConfig: need lr > 0, weight_decay >= 0, max_grad_norm > 0; got {self.lr}, "
                             f"{self.weight_decay}, {self.max_grad_norm}")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"E2EConfig: `warmup` must be in [0, steps={self.steps}), got {self.warmup}")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"E2EConfig: `eval_every` must be an int >= 0 (0 = only at the end), got {self.eval_every!r}")
        from genpercept_lessons.protocols import PROTOCOLS

        if self.eval_protocol not in PROTOCOLS:
            raise ValueError(f"E2EConfig: `eval_protocol` must be one of {sorted(PROTOCOLS)}, got {self.eval_protocol!r}")
        if not 0 < self.final_lr_ratio <= 1:
            raise ValueError(f"E2EConfig: `final_lr_ratio` must be in (0, 1], got {self.final_lr_ratio!r}")
        return self


# The paper's run (E2E-FT ``training/train.py``): 20k iterations, batch 2 × accumulation 16 = 32, lr 3e-5, 100 warm-up steps, decay to 1%.
PAPER_RECIPE = E2EConfig(steps=20_000, batch_size=2, grad_accumulation=16, lr=3e-5, warmup=100, final_lr_ratio=0.01,
                         eval_every=2_000, eval_scenes=100, eval_protocol="nyuv2", checkpoint_every=500)
# What fits a 24 GB GPU (E2E-FT issue #21): same effective batch 32, activations of one image at a time, bf16 autocast
# and gradient checkpointing. Arithmetic for the SD2 UNet (865M parameters, fp32 master weights):
# weights 3.5 GB + gradients 3.5 GB + AdamW moments 6.9 GB = 13.8 GB; frozen VAE 0.3 GB and CLIP text encoder
# 1.4 GB (fp32); activations of one 480×640 image with checkpointing and bf16 a few GB -> about 18-20 GB in all.
# Batch 2 in fp32 without checkpointing needs the 48 GB+ the authors used (A40 48 GB, H100 96 GB).
GPU_24GB = dataclasses.replace(PAPER_RECIPE, batch_size=1, grad_accumulation=32, mixed_precision="bf16",
                               gradient_checkpointing=True)


@dataclass
class FinetuneResult:
    """What ``finetune_end_to_end`` returns: the fine-tuned pipeline (trailing scheduler) and its training record."""

    pipe: object
    losses: list = field(default_factory=list)  # one per optimiser step
    lrs: list = field(default_factory=list)
    evals: list = field(default_factory=list)  # (step, metrics dict) on the held-out scenes
    seconds: float = 0.0
    resumed_from: int = 0


def training_batch(datasets, weights, batch_size: int, generator, hflip: bool = True) -> dict:
    """Draw one batch (from one dataset, chosen by ``weights``) as float tensors: rgb [B,3,H,W] in [-1,1], masks [B,H,W].

    Depth targets follow E2E-FT's data pipeline (E2E-FT ``training/dataloaders/load.py``): metres clamped per image to its valid [2%, 98%]
    percentiles, invalid pixels set to the far value (masked out anyway); normals targets [B,3,H,W] unit; labels
    int64 [B,H,W] (255 = ignore).
    ``hflip`` flips half the samples (normals' x component negated). Introduced in notebook 05.
    """
    import torch

    k = int(torch.multinomial(torch.as_tensor(weights, dtype=torch.float64), 1, generator=generator))
    ds = datasets[k]
    idx = torch.randint(0, len(ds), (batch_size,), generator=generator).tolist()
    rows = ds[idx]
    rgb = images_to_tensor(rows["image"], signed=True)
    mask = torch.from_numpy(np.asarray(rows["mask"]).astype(bool))
    depth = np.asarray(rows["depth"], dtype=np.float32).copy()
    for d, m in zip(depth, np.asarray(rows["mask"]).astype(bool)):
        lo, hi = np.percentile(d[m], [2, 98]) if m.any() else (1.0, 1.0)
        d[:] = np.where(m, np.clip(d, lo, hi), hi)
    normals = torch.from_numpy(np.asarray(rows["normals"], dtype=np.float32)).permute(0, 3, 1, 2)
    out = {"rgb": rgb, "depth": torch.from_numpy(depth), "normals": normals,
           # a flat image has no relative depth; unknown normals are stored as zero vectors (real datasets)
           "depth_mask": mask & torch.from_numpy(np.ptp(depth.reshape(len(depth), -1), axis=1) > 0)[:, None, None],
           "normals_mask": mask & (normals.norm(dim=1) > 0.5)}
    if "label" in rows:
        out["label"] = torch.from_numpy(np.asarray(rows["label"]).astype(np.int64))
    if hflip:
        flip = torch.rand(batch_size, generator=generator) < 0.5
        for key in out:
            out[key][flip] = out[key][flip].flip(-1)
        out["normals"][flip, 0] *= -1
    return out


def e2e_latent(unet, rgb_latent, text_embedding, alpha_bar_T: float, timestep: int, noise=None):
    """E2E-FT's one UNet call at ``timestep``: x̂0 = √ᾱ_T·z − √(1−ᾱ_T)·v̂, the predicted target latent [B,4,h,w] (scaled).

    rgb_latent [B,4,h,w] (scaled), text_embedding [1,S,C], noise z [B,4,h,w] or None (= zeros). Introduced in notebook 05.
    """
    import torch

    z = torch.zeros_like(rgb_latent) if noise is None else noise
    t = torch.full((len(z),), timestep, device=z.device, dtype=torch.long)
    v = unet(torch.cat([rgb_latent, z], dim=1), t, encoder_hidden_states=text_embedding.expand(len(z), -1, -1)).sample
    return alpha_bar_T ** 0.5 * z - (1 - alpha_bar_T) ** 0.5 * v


def e2e_predict(unet, vae, rgb_latent, text_embedding, alpha_bar_T: float, timestep: int, task: str, noise=None):
    """One E2E-FT forward pass: ``e2e_latent``, then decoded WITH gradients.

    Same inputs as ``e2e_latent`` -> depth [B,H,W] in [-1,1] (mean of the 3 channels, clamped) or unit normals
    [B,3,H,W]. Introduced in notebook 05.
    """
    import torch

    x0 = e2e_latent(unet, rgb_latent, text_embedding, alpha_bar_T, timestep, noise)
    image = vae.decode(x0 / vae.config.scaling_factor).sample  # no torch.no_grad() here: the gradient goes through
    if task == "depth":
        return image.mean(1).clamp(-1, 1)
    return torch.nn.functional.normalize(image, dim=1, eps=1e-5).clamp(-1, 1)


def target_latent(vae, batch: dict, task: str, convention: str = COURSE_CONVENTION):
    """The target of a ``training_batch`` as Marigold encodes it: a 3-channel image in [-1,1] -> VAE latent [B,4,h,w] (scaled).

    Depth: each image's (already clamped) depth mapped linearly to [-1,1] over its valid pixels, invalid pixels (and
    flat images, which have no valid pixels here) -> +1, far (as ``targets.normalize_depth``); normals: the unit
    vectors in the model's frame ``convention`` (the batch is x-right), unknown ones 0. No gradients: this is the
    regression target of the latent-only loss (``E2EConfig(loss="latent")``). Introduced in notebook 09.
    """
    import torch

    if task == "depth":
        d, m = batch["depth"], batch["depth_mask"]
        lo = torch.where(m, d, torch.inf).amin(dim=(1, 2), keepdim=True)
        hi = torch.where(m, d, -torch.inf).amax(dim=(1, 2), keepdim=True)
        span = (hi - lo).where(m.flatten(1).any(1)[:, None, None], torch.ones_like(hi))
        image = torch.where(m, (d - lo) / span.clamp_min(1e-6) * 2 - 1, torch.ones_like(d)).clamp(-1, 1)
        image = image[:, None].expand(-1, 3, -1, -1)
    else:
        image = convert_normals(batch["normals"], COURSE_CONVENTION, convention, axis=1) * batch["normals_mask"][:, None]
    device = next(vae.parameters()).device
    with torch.no_grad():
        return vae.encode(image.to(device)).latent_dist.mode() * vae.config.scaling_factor


def _trailing_pipeline(pipe, unet):
    from diffusers import DDIMScheduler

    new = copy.copy(pipe)  # shares the frozen VAE and text encoder
    new.register_modules(unet=unet, scheduler=DDIMScheduler.from_config(pipe.scheduler.config,
                                                                        timestep_spacing="trailing"))
    return new


def _save_pipeline(pipe, folder: Path, record: dict) -> None:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    pipe.save_pretrained(partial)
    if pipeline_task(pipe) == "normals":
        write_convention(partial, normals_convention(pipe))
    (partial / "genpercept_finetune.json").write_text(json.dumps(record, indent=2))
    replace_folder(partial, folder)


def _evaluate(pipe, eval_data, config: E2EConfig) -> dict:
    from genpercept_lessons.evaluation import evaluate

    n = min(config.eval_scenes, len(eval_data))
    return evaluate(pipe, eval_data, n=n, seed=config.seed, protocol=config.eval_protocol, steps=1, spacing="trailing",
                    noise=config.noise)["metrics"]


def _training_sets(train_data) -> tuple[list, list[float]]:
    pairs = [(train_data, 1.0)] if not isinstance(train_data, (list, tuple)) else list(train_data)
    if not pairs or any(len(p) != 2 or len(p[0]) == 0 or not p[1] > 0 for p in pairs):
        raise ValueError("finetune_end_to_end: `train_data` must be a non-empty dataset or a list of "
                         "(dataset, weight > 0) pairs")
    return [p[0] for p in pairs], [float(p[1]) for p in pairs]


def _check_pipeline(pipe, config: E2EConfig) -> str:

    task = pipeline_task(pipe)
    if task != config.task:
        raise ValueError(f"finetune_end_to_end: config.task is {config.task!r} but `pipe` is a {task} pipeline")
    if pipe.scheduler.config.prediction_type != "v_prediction":
        raise ValueError("finetune_end_to_end: the pipeline's scheduler must use prediction_type='v_prediction' "
                         f"(Marigold's), got {pipe.scheduler.config.prediction_type!r}")
    return task


def e2e_optimizer(unet, config: E2EConfig):
    """AdamW and its warm-up + exponential-decay schedule, stepped once per optimiser step."""
    import torch

    opt = torch.optim.AdamW(unet.parameters(), lr=config.lr, betas=(0.9, 0.999), weight_decay=config.weight_decay,
                            eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: iter_exponential(s, config.steps, config.warmup, config.final_lr_ratio))
    return opt, sched


def _resume(ckpt: Path, config: E2EConfig, unet, opt, sched, result: FinetuneResult) -> bool:
    """Load a checkpoint written with the same config into the models and ``result``; False if there is none."""
    import torch

    if not ckpt.is_file():
        return False
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    if state["config"] != dataclasses.asdict(config):
        raise ValueError(f"finetune_end_to_end: {ckpt} was written with different settings; use a fresh `workdir` "
                         f"or the same config.\nsaved: {state['config']}\nnow:   {dataclasses.asdict(config)}")
    unet.load_state_dict(state["unet"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    result.losses, result.lrs, result.evals = state["losses"], state["lrs"], state["evals"]
    result.resumed_from = state["step"]
    return True


def _save_checkpoint(ckpt: Path, config: E2EConfig, unet, opt, sched, result: FinetuneResult, step: int) -> None:
    atomic_torch_save({"unet": unet.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                       "step": step, "losses": result.losses, "lrs": result.lrs, "evals": result.evals,
                       "config": dataclasses.asdict(config)}, ckpt)


def training_autocast(device, config: E2EConfig):
    """bf16 autocast on ``device`` if ``config.mixed_precision`` asks for it (ours, not accelerate's: a notebook may run
    fp32 and bf16 fine-tunes one after the other, and accelerate's setting is fixed per process)."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.mixed_precision == "bf16")


def micro_batch_loss(model, vae, batch: dict, text, alpha_bar: float, timestep: int, task: str, config: E2EConfig,
                     frame: str, generator):
    """The scalar loss of one micro-batch (call inside ``training_autocast``): encode RGB (no grad), one UNet pass at t = T, decode
    with gradients and the task loss (or GenPercept's latent MSE). Noise, if any, is drawn from ``generator``."""
    import torch

    device = text.device
    with torch.no_grad(), torch.autocast(device.type, enabled=False):  # the frozen encoder runs in full precision
        rgb = batch["rgb"].to(device)
        latent = vae.encode(rgb).latent_dist.mode() * vae.config.scaling_factor  # [B,4,h,w]
    noise = None if config.noise == "zeros" else torch.randn(latent.shape, generator=generator).to(device)
    if config.loss == "latent":  # GenPercept's latent-space loss: nothing is decoded
        pred = e2e_latent(model, latent, text, alpha_bar, timestep, noise)
        return torch.nn.functional.mse_loss(pred.float(), target_latent(vae, batch, task, frame))
    pred = e2e_predict(model, vae, latent, text, alpha_bar, timestep, task, noise)
    return _task_loss(task, pred, batch, device, frame)


def finetune_end_to_end(pipe, train_data, config: E2EConfig | None = None, *, workdir: str | os.PathLike,
                        output_dir: str | os.PathLike | None = None, eval_data=None, in_place: bool = False,
                        accelerator=None, callback: Callable[[int, float], None] | None = None,
                        progress: bool = True, **overrides) -> FinetuneResult:
    """Fine-tune ``pipe``'s UNet end to end on ``train_data`` (a dataset in the course schema, or [(dataset, weight), ...]).

    Checkpoints atomically to ``workdir`` every ``config.checkpoint_every`` steps and resumes from there exactly;
    evaluates 1-step trailing inference on ``eval_data`` every ``eval_every`` steps and at the end; saves a Marigold
    pipeline folder with ``timestep_spacing="trailing"`` to ``output_dir``. ``overrides`` replace config fields.
    Returns a ``FinetuneResult``. Introduced in notebook 05.
    """
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from genpercept_lessons.inference import empty_text_embedding

    # 0. Check the inputs before anything is loaded or written
    config = dataclasses.replace(config or E2EConfig(), **overrides).validate()
    task = _check_pipeline(pipe, config)
    datasets, weights = _training_sets(train_data)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # 1. Processes and devices come from accelerate; bf16 autocast is ours (see training_autocast)
    accelerator = accelerator or Accelerator(cpu=pipe.device.type == "cpu")
    device, rank = accelerator.device, accelerator.process_index

    # 2. What trains (the UNet, a copy unless in_place) and what stays frozen (the VAE, the empty-prompt embedding)
    unet = pipe.unet if in_place else copy.deepcopy(pipe.unet)
    unet.to(device).requires_grad_(True).train()
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    vae = pipe.vae.to(device).requires_grad_(False)
    text = empty_text_embedding(pipe).to(device)  # the 2-token embedding inference uses (E2E-FT trains on 77 tokens)
    # 3. E2E-FT's single step: t = T with ᾱ_T of Marigold's schedule
    timestep = pipe.scheduler.config.num_train_timesteps - 1
    frame = normals_convention(pipe) if task == "normals" else COURSE_CONVENTION  # targets meet predictions in x-right
    alpha_bar = float(pipe.scheduler.alphas_cumprod[timestep])
    # 4. Optimiser and LR schedule (stepped by us once per optimiser step: accelerate would step it per process)
    opt, sched = e2e_optimizer(unet, config)
    model = accelerator.prepare(unet)
    # 5. Resume from the workdir's checkpoint if there is one
    result = FinetuneResult(pipe=None)
    ckpt = workdir / "e2e_state.pt"
    if _resume(ckpt, config, unet, opt, sched, result) and accelerator.is_main_process:
        print(f"resuming end-to-end fine-tuning from step {result.resumed_from} ({ckpt})")
    eval_pipe = _trailing_pipeline(pipe, unet)
    t0 = time.time()
    bar = tqdm(range(result.resumed_from, config.steps), initial=result.resumed_from, total=config.steps,
               desc=f"E2E-FT {task}", disable=not (progress and accelerator.is_local_main_process))
    for step in bar:
        # 6. One optimiser step: grad_accumulation micro-batches, each one UNet pass from zeros (or noise) at t = T
        g = step_generator(config.seed, rank, step)
        total = 0.0
        for micro in range(config.grad_accumulation):
            batch = training_batch(datasets, weights, config.batch_size, g, config.hflip)
            sync = micro == config.grad_accumulation - 1
            with (contextlib.nullcontext() if sync else accelerator.no_sync(model)), training_autocast(device, config):
                loss = micro_batch_loss(model, vae, batch, text, alpha_bar, timestep, task, config, frame, g)
                loss = loss / config.grad_accumulation
                accelerator.backward(loss)
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), config.max_grad_norm)
        result.lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        result.losses.append(float(accelerator.reduce(torch.tensor(total, device=device), "mean")))
        bar.set_postfix(loss=f"{np.mean(result.losses[-10:]):.4f}", lr=f"{result.lrs[-1]:.2e}")
        done = step + 1
        # 7. Evaluate on the held-out scenes; checkpoint atomically
        if eval_data is not None and ((config.eval_every and done % config.eval_every == 0) or done == config.steps):
            unet.eval()
            result.evals.append((done, _evaluate(eval_pipe, eval_data, config)))
            unet.train()
        if done % config.checkpoint_every == 0 or done == config.steps:
            if accelerator.is_main_process:
                _save_checkpoint(ckpt, config, unet, opt, sched, result, done)
            accelerator.wait_for_everyone()
        if callback is not None:
            callback(done, result.losses[-1])
    # 8. The fine-tuned pipeline, with trailing spacing, saved as a Marigold folder if asked
    result.seconds = time.time() - t0
    unet.eval().requires_grad_(False)
    result.pipe = eval_pipe
    if output_dir is not None and accelerator.is_main_process:
        record = {"config": dataclasses.asdict(config), "final_loss": result.losses[-1] if result.losses else None,
                  "evals": result.evals, "recipe": "E2E-FT: t=T, zero noise, one UNet pass, decoder with gradients"}
        _save_pipeline(eval_pipe, Path(output_dir), record)
    accelerator.wait_for_everyone()
    return result


def _task_loss(task: str, pred, batch: dict, device, convention: str = COURSE_CONVENTION):
    from genpercept_lessons.losses import affine_invariant_l1, angular_loss

    if task == "depth":
        return affine_invariant_l1(pred, batch["depth"].to(device), batch["depth_mask"].to(device))
    return angular_loss(convert_normals(pred, convention, axis=1), batch["normals"].to(device), batch["normals_mask"].to(device))
