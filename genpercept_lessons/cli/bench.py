"""Speed and memory of inference settings and of E2E-FT training steps, measured here and printed as a table.

A benchmark prints figures; it never asserts a time. ``python -m genpercept_lessons bench`` calls
``run_benchmarks`` on the profile's depth pipeline and prints ``format_table`` of the result; ``bench --e2e-memory``
calls ``e2e_step_memory`` (by default on ``course.full_standins.standin_marigold()``, Marigold v1-0's real
architecture with random weights, under the ``24gb`` preset) and prints ``format_memory_report``.
"""
from __future__ import annotations

import copy
import os
import sys
import time

import numpy as np

__all__ = ["Setting", "SETTINGS", "QUICK_SETTINGS", "TRAIN_LABEL", "bench_images", "peak_memory_mb",
           "run_benchmarks", "format_table", "current_memory_mb", "e2e_step_memory", "format_memory_report"]

# (label, predict keyword arguments): Marigold v1-0's own 50-step default (leading, Gaussian) and its 10-member
# ensemble are the paper baselines; 1 trailing step from zero noise is the course's fast setting (lessons 03-04).
Setting = tuple[str, dict]
SETTINGS: tuple[Setting, ...] = (
    ("1 step, trailing, zero noise", dict(steps=1, spacing="trailing", noise="zeros", ensemble=1)),
    ("4 steps, trailing, gaussian", dict(steps=4, spacing="trailing", noise="gaussian", ensemble=1)),
    ("50 steps, leading, gaussian", dict(steps=50, spacing="leading", noise="gaussian", ensemble=1)),
    ("50 steps x 10 ensemble, leading, gaussian", dict(steps=50, spacing="leading", noise="gaussian", ensemble=10)),
)
QUICK_SETTINGS: tuple[Setting, ...] = (
    SETTINGS[0],
    SETTINGS[1],
    ("10 steps, leading, gaussian", dict(steps=10, spacing="leading", noise="gaussian", ensemble=1)),
    ("10 steps x 2 ensemble, leading, gaussian", dict(steps=10, spacing="leading", noise="gaussian", ensemble=2)),
)
TRAIN_LABEL = "E2E-FT training step"


def bench_images(n: int, resolution: int, seed: int = 12345):
    """``n`` MiniScenes views rendered on the spot (no dataset build): image uint8 [n,H,W,3], depth, mask [n,H,W], normals [n,H,W,3]."""
    from genpercept_lessons.mini.scenes import render_scene

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"bench_images: `n` must be a positive int, got {n!r}")
    scenes = [render_scene(seed, i, resolution, resolution, supersample=1) for i in range(n)]
    return {"image": np.stack([s.image for s in scenes]), "depth": np.stack([s.depth for s in scenes]),
            "mask": np.stack([s.mask for s in scenes]), "normals": np.stack([s.normals for s in scenes])}


def peak_memory_mb(device) -> tuple[float, str]:
    """(peak memory in MiB, what it is): CUDA ``max_memory_allocated`` since the last reset, or the process's peak RSS on CPU."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20, "CUDA max allocated"
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), "process peak RSS"


def _reset_peak(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class _Rows:
    """Rendered scenes looking like a numpy-formatted dataset to ``training_batch`` (``len`` and ``rows[list]``)."""

    def __init__(self, data: dict):
        self.data = data

    def __len__(self) -> int:
        return len(self.data["image"])

    def __getitem__(self, idx):
        return {k: v[idx] for k, v in self.data.items()}


def _train_step_seconds(pipe, data: dict, batch_size: int, lr: float, repeats: int) -> float:
    """Seconds of one E2E-FT optimiser step (batch, forward, decode with gradients, affine-invariant L1, backward, AdamW)."""
    import torch

    from genpercept_lessons.finetuning import e2e_predict, training_batch
    from genpercept_lessons.inference import empty_text_embedding
    from genpercept_lessons.losses import affine_invariant_l1

    device = pipe.device
    unet = copy.deepcopy(pipe.unet).to(device).requires_grad_(True).train()  # the pipeline's own UNet stays untouched
    vae = pipe.vae
    text = empty_text_embedding(pipe).to(device)
    timestep = pipe.scheduler.config.num_train_timesteps - 1
    alpha_bar = float(pipe.scheduler.alphas_cumprod[timestep])
    opt = torch.optim.AdamW(unet.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    rows = _Rows(data)

    def step() -> None:
        batch = training_batch([rows], [1.0], batch_size, gen)
        with torch.no_grad():
            latent = vae.encode(batch["rgb"].to(device, pipe.dtype)).latent_dist.mode() * vae.config.scaling_factor
        pred = e2e_predict(unet, vae, latent, text, alpha_bar, timestep, "depth")
        loss = affine_invariant_l1(pred.float(), batch["depth"].to(device), batch["depth_mask"].to(device))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up (also allocates AdamW's moments, so the timed step is a steady-state one)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def run_benchmarks(pipe_depth, images=None, *, settings=SETTINGS, n_images: int = 4, resolution: int | None = None,
                   train_batch_size: int | None = 16, train_lr: float = 3e-4, repeats: int = 1,
                   progress=None) -> list[dict]:
    """Time ``settings`` of ``inference.predict`` and one E2E-FT training step on ``pipe_depth``. Introduced in notebook 03.

    images uint8 [N,H,W,3] (default: ``n_images`` rendered MiniScenes views at ``resolution``, default the pipeline's
    processing resolution); each setting runs after one warm-up, ``repeats`` times, best time kept. ``train_batch_size``
    None skips the training step. Returns one dict per row: setting, seconds_per_image, relative (to the first row),
    seconds (the whole batch or training step), peak_memory_mb, memory_kind, images, unet_calls_per_image.
    """
    import torch

    from genpercept_lessons.inference import predict
    from genpercept_lessons.tasks import pipeline_task

    if pipeline_task(pipe_depth) != "depth":
        raise ValueError(f"run_benchmarks: `pipe_depth` must be a MarigoldDepthPipeline, got {type(pipe_depth).__name__}")
    if not settings:
        raise ValueError("run_benchmarks: `settings` must name at least one (label, predict kwargs) pair")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"run_benchmarks: `repeats` must be a positive int, got {repeats!r}")
    if train_batch_size is not None and (not isinstance(train_batch_size, int) or train_batch_size < 1):
        raise ValueError(f"run_benchmarks: `train_batch_size` must be a positive int or None, got {train_batch_size!r}")
    res = resolution or pipe_depth.default_processing_resolution or 64
    data = bench_images(max(n_images, train_batch_size or 1), int(res)) if images is None else None
    imgs = data["image"][:n_images] if images is None else np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3 or imgs.dtype != np.uint8:
        raise ValueError(f"run_benchmarks: `images` must be uint8 [N,H,W,3], got {imgs.dtype} {imgs.shape}")
    device = pipe_depth.device
    say = progress or (lambda msg: None)
    rows = []

    def run(kwargs):
        gen = torch.Generator(device=device).manual_seed(0) if kwargs.get("noise") == "gaussian" else None
        return predict(pipe_depth, imgs, generator=gen, **kwargs)

    say("warm-up")
    run(dict(steps=1, spacing="trailing", noise="zeros"))
    for label, kwargs in settings:
        say(label)
        _reset_peak(device)
        times = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            run(kwargs)
            _sync(device)
            times.append(time.perf_counter() - t0)
        mem, kind = peak_memory_mb(device)
        rows.append({"setting": label, "seconds": min(times), "seconds_per_image": min(times) / len(imgs),
                     "peak_memory_mb": mem,
                     "memory_kind": kind, "images": len(imgs),
                     "unet_calls_per_image": kwargs.get("steps", 1) * kwargs.get("ensemble", 1)})
    if train_batch_size is not None:
        label = TRAIN_LABEL
        say(f"{label} (batch {train_batch_size})")
        train_data = data if data is not None else bench_images(train_batch_size, imgs.shape[1])
        _reset_peak(device)
        seconds = _train_step_seconds(pipe_depth, train_data, train_batch_size, train_lr, repeats)
        mem, kind = peak_memory_mb(device)
        rows.append({"setting": label, "seconds": seconds, "seconds_per_image": seconds / train_batch_size,
                     "peak_memory_mb": mem,
                     "memory_kind": kind, "images": train_batch_size, "unet_calls_per_image": 1})
    base = rows[0]["seconds_per_image"]
    for row in rows:
        row["relative"] = row["seconds_per_image"] / base if base > 0 else float("nan")
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows of ``run_benchmarks`` as a text table: setting | images | s per batch/step | s / image | × row 1 | peak memory."""
    if not rows:
        raise ValueError("format_table: `rows` is empty; run run_benchmarks first")
    head = ("setting", "images", "s / batch or step", "s / image", f"relative to {rows[0]['setting'].split(',')[0]}",
            "peak memory (MiB)")
    body = [(r["setting"], str(r["images"]), f"{r['seconds']:.3f}", f"{r['seconds_per_image']:.4f}",
             f"{r['relative']:.1f}x", f"{r['peak_memory_mb']:.0f}") for r in rows]
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]

    def fmt(line):
        return " | ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))

    kinds = sorted({r["memory_kind"] for r in rows})
    note = ("memory: " + ", ".join(kinds) + (" (the whole process so far, so it only grows down the table)"
                                             if "process peak RSS" in kinds else " (reset before each row)"))
    return "\n".join([fmt(head), "-+-".join("-" * w for w in widths), *map(fmt, body), note])


def current_memory_mb(device) -> float | None:
    """Memory in use now, in MiB: CUDA ``memory_allocated``, or the process's resident set (Linux), else None."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.memory_allocated(device) / 2 ** 20
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def e2e_step_memory(pipe, height: int = 480, width: int = 640, config=None, progress=None, steps: int = 2) -> dict:
    """Run ``steps`` E2E-FT optimiser steps on ``pipe`` (trained in place) at one ``height``×``width`` MiniScenes view.

    ``config`` defaults to ``finetuning.GPU_24GB`` with one micro-batch (accumulating 32 of them adds no memory: the
    gradients are summed in place). Step 1 allocates AdamW's moments only at its end, so the steady-state peak (the
    moments held while the next forward pass stores its activations) shows from step 2 on. Returns {"phases": [{"phase",
    "peak_mb", "now_mb", "seconds"}], "memory_kind", "parameters": {...}, "arithmetic_mb": {...}, "config", "size": (h, w)}.
    """
    import dataclasses

    import torch

    from genpercept_lessons.course.full_standins import parameter_counts
    from genpercept_lessons.finetuning import (
        GPU_24GB,
        e2e_optimizer,
        micro_batch_loss,
        training_autocast,
        training_batch,
    )
    from genpercept_lessons.inference import empty_text_embedding
    from genpercept_lessons.mini.scenes import render_scene
    from genpercept_lessons.normals_convention import COURSE_CONVENTION, normals_convention
    from genpercept_lessons.tasks import pipeline_task

    task = pipeline_task(pipe)
    if not isinstance(steps, int) or not 1 <= steps <= 10:
        raise ValueError(f"e2e_step_memory: `steps` must be an int in 1..10, got {steps!r}")
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or value < 8 or value % 8:
            raise ValueError(f"e2e_step_memory: `{name}` must be a positive multiple of 8 (the VAE's factor), got {value!r}")
    config = dataclasses.replace(config or GPU_24GB, grad_accumulation=1).validate()
    say = progress or (lambda msg: None)
    device = pipe.device
    phases = []
    clock = [time.perf_counter()]

    def mark(phase):
        _sync(device)
        peak, kind = peak_memory_mb(device)
        now = time.perf_counter()
        phases.append({"phase": phase, "peak_mb": peak, "now_mb": current_memory_mb(device),
                       "seconds": now - clock[0]})
        clock[0] = now
        say(f"{phase}: peak {peak:,.0f} MiB")
        return kind

    _reset_peak(device)
    scene = render_scene(12345, 0, height, width, supersample=1)
    rows = _Rows({k: getattr(scene, k)[None] for k in ("image", "depth", "mask", "normals")})
    text = empty_text_embedding(pipe).to(device)
    unet, vae = pipe.unet.to(device).requires_grad_(True).train(), pipe.vae.to(device).requires_grad_(False)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    opt, _ = e2e_optimizer(unet, config)
    timestep = pipe.scheduler.config.num_train_timesteps - 1
    alpha_bar = float(pipe.scheduler.alphas_cumprod[timestep])
    frame = normals_convention(pipe) if task == "normals" else COURSE_CONVENTION
    gen = torch.Generator().manual_seed(0)
    kind = mark("models loaded")
    for step in range(1, steps + 1):
        batch = training_batch([rows], [1.0], config.batch_size, gen, config.hflip)
        with training_autocast(device, config):
            loss = micro_batch_loss(unet, vae, batch, text, alpha_bar, timestep, task, config, frame, gen)
        mark(f"step {step} forward: encode, UNet, decode with gradients, loss")
        loss.backward()
        mark(f"step {step} backward")
        torch.nn.utils.clip_grad_norm_(unet.parameters(), config.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        mark(f"step {step} AdamW update" + (" (allocates its two moments)" if step == 1 else ""))
    counts = parameter_counts(pipe)
    mib = 2 ** 20
    arithmetic = {"weights, fp32 (UNet, VAE, text encoder)": sum(counts.values()) * 4 / mib,
                  "AdamW moments, 2 x fp32": counts["unet"] * 8 / mib,
                  "UNet gradients, fp32 (from backward to the update)": counts["unet"] * 4 / mib}
    return {"phases": phases, "memory_kind": kind, "parameters": counts, "arithmetic_mb": arithmetic,
            "config": config, "size": (height, width), "loss": float(loss.detach())}


def format_memory_report(result: dict) -> str:
    """``e2e_step_memory``'s result as text: the phases (peak so far, in use now, seconds), then the arithmetic."""
    if not isinstance(result, dict) or "phases" not in result:
        raise ValueError("format_memory_report: `result` must be what e2e_step_memory returned")
    c, (h, w) = result["config"], result["size"]
    lines = [f"E2E-FT optimiser steps, batch {c.batch_size} of {h}x{w}, gradient checkpointing "
             f"{'on' if c.gradient_checkpointing else 'off'}, mixed precision {c.mixed_precision}; "
             f"memory = {result['memory_kind']} (peak so far, MiB)",
             f"{'phase':<62} {'peak':>9} {'in use':>9} {'s':>7}"]
    for p in result["phases"]:
        now = "" if p["now_mb"] is None else f"{p['now_mb']:,.0f}"
        lines.append(f"{p['phase']:<62} {p['peak_mb']:>9,.0f} {now:>9} {p['seconds']:>7.1f}")
    counts = result["parameters"]
    lines.append("parameters: " + ", ".join(f"{k} {v / 1e6:,.1f} M" for k, v in counts.items()))
    lines.append("arithmetic (MiB): " + ", ".join(f"{k} {v:,.0f}" for k, v in result["arithmetic_mb"].items()))
    held = sum(v for k, v in result["arithmetic_mb"].items() if not k.startswith("UNet gradients"))
    lines.append(f"peak minus what is held throughout (weights and moments, {held:,.0f}): "
                 f"{result['phases'][-1]['peak_mb'] - held:,.0f} MiB of activations, bf16 copies of weights under "
                 "autocast, and the interpreter with its libraries (gradients are freed at each update)")
    return "\n".join(lines)
