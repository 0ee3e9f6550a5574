"""Peak memory of one E2E-FT optimiser step, phase by phase, beside the arithmetic of what must be held.

``python -m genpercept_lessons bench --e2e-memory`` runs it on a stand-in with Marigold v1-0's real architecture
(``full_standins``: SD2's UNet with the 8-channel conv_in, SD's VAE, SD2's text encoder; random weights) at one
Hypersim-sized image under the ``24gb`` preset (batch 1, gradient checkpointing, bf16 autocast). The step is the
trainer's own (``finetuning._micro_batch_loss``, AdamW, gradient clipping). Figures, not a test.
"""
from __future__ import annotations

import time

__all__ = ["current_memory_mb", "e2e_step_memory", "format_memory_report"]


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
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def e2e_step_memory(pipe, height: int = 480, width: int = 640, config=None, progress=None) -> dict:
    """Run one E2E-FT optimiser step on ``pipe`` (trained in place) at one ``height``×``width`` MiniScenes view.

    ``config`` defaults to ``finetuning.GPU_24GB`` with one micro-batch (accumulating 32 of them adds no memory: the
    gradients are summed in place). Returns {"phases": [{"phase", "peak_mb", "now_mb", "seconds"}], "memory_kind",
    "parameters": {...}, "arithmetic_mb": {...}, "config": ..., "size": (h, w)}.
    """
    import dataclasses

    import torch

    from genpercept_lessons.cli.bench import _reset_peak, _Rows, _sync, peak_memory_mb
    from genpercept_lessons.finetuning import (
        GPU_24GB,
        _autocast,
        _micro_batch_loss,
        _optimizer,
        training_batch,
    )
    from genpercept_lessons.full_standins import parameter_counts
    from genpercept_lessons.inference import empty_text_embedding
    from genpercept_lessons.mini.scenes import render_scene
    from genpercept_lessons.normals_convention import COURSE_CONVENTION, normals_convention
    from genpercept_lessons.tasks import pipeline_task

    task = pipeline_task(pipe)
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
    opt, _ = _optimizer(unet, config)
    timestep = pipe.scheduler.config.num_train_timesteps - 1
    alpha_bar = float(pipe.scheduler.alphas_cumprod[timestep])
    frame = normals_convention(pipe) if task == "normals" else COURSE_CONVENTION
    gen = torch.Generator().manual_seed(0)
    batch = training_batch([rows], [1.0], config.batch_size, gen, config.hflip)
    kind = mark("models loaded, batch ready")
    with _autocast(device, config):
        loss = _micro_batch_loss(unet, vae, batch, text, alpha_bar, timestep, task, config, frame, gen)
    mark("forward: encode, UNet, decode with gradients, loss")
    loss.backward()
    mark("backward")
    torch.nn.utils.clip_grad_norm_(unet.parameters(), config.max_grad_norm)
    opt.step()
    mark("AdamW step (allocates its two moments)")
    opt.zero_grad(set_to_none=True)
    counts = parameter_counts(pipe)
    mib = 2 ** 20
    arithmetic = {"UNet weights, fp32": counts["unet"] * 4 / mib, "UNet gradients, fp32": counts["unet"] * 4 / mib,
                  "AdamW moments, 2 x fp32": counts["unet"] * 8 / mib, "VAE weights, fp32": counts["vae"] * 4 / mib,
                  "text encoder weights, fp32": counts["text_encoder"] * 4 / mib}
    return {"phases": phases, "memory_kind": kind, "parameters": counts, "arithmetic_mb": arithmetic,
            "config": config, "size": (height, width), "loss": float(loss.detach())}


def format_memory_report(result: dict) -> str:
    """``e2e_step_memory``'s result as text: the phases (peak so far, in use now, seconds), then the arithmetic."""
    if not isinstance(result, dict) or "phases" not in result:
        raise ValueError("format_memory_report: `result` must be what e2e_step_memory returned")
    c, (h, w) = result["config"], result["size"]
    lines = [f"one E2E-FT optimiser step, batch {c.batch_size} of {h}x{w}, gradient checkpointing "
             f"{'on' if c.gradient_checkpointing else 'off'}, mixed precision {c.mixed_precision}; "
             f"memory = {result['memory_kind']} (peak so far, MiB)",
             f"{'phase':<52} {'peak':>9} {'in use':>9} {'s':>7}"]
    for p in result["phases"]:
        now = "" if p["now_mb"] is None else f"{p['now_mb']:,.0f}"
        lines.append(f"{p['phase']:<52} {p['peak_mb']:>9,.0f} {now:>9} {p['seconds']:>7.1f}")
    counts = result["parameters"]
    lines.append("parameters: " + ", ".join(f"{k} {v / 1e6:,.1f} M" for k, v in counts.items()))
    total = sum(result["arithmetic_mb"].values())
    lines.append("what must be held whatever the activations (MiB): " + ", ".join(
        f"{k} {v:,.0f}" for k, v in result["arithmetic_mb"].items()) + f"; total {total:,.0f}")
    lines.append(f"peak above that: {result['phases'][-1]['peak_mb'] - total:,.0f} MiB (activations, bf16 weight copies, "
                 "the interpreter and libraries)")
    return "\n".join(lines)
