"""Which timesteps diffusers' ``DDIMScheduler`` feeds the UNet, and how noisy each one is (ᾱ_t, SNR).

Everything here asks diffusers itself; nothing re-implements DDIM. (diffusers ``DDIMScheduler.set_timesteps``.)
"""
from __future__ import annotations

from typing import Iterable

__all__ = ["SPACINGS", "with_spacing", "with_zero_terminal_snr", "timesteps", "alpha_bar", "snr", "timestep_table"]

SPACINGS = ("leading", "trailing", "linspace")


def _check_spacing(spacing: str) -> None:
    if spacing not in SPACINGS:
        raise ValueError(f"`spacing` must be one of {SPACINGS}, got {spacing!r}")


def _check_steps(steps: int, total: int = 1000) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= total:
        raise ValueError(f"`steps` must be an int in [1, {total}], got {steps!r}")


def with_spacing(scheduler, spacing: str):
    """A fresh ``DDIMScheduler`` with ``scheduler``'s config but ``timestep_spacing=spacing``. Introduced in notebook 02."""
    from diffusers import DDIMScheduler

    _check_spacing(spacing)
    if not hasattr(scheduler, "config"):
        raise TypeError(f"with_spacing: `scheduler` must be a diffusers scheduler, got {type(scheduler).__name__}")
    return DDIMScheduler.from_config(scheduler.config, timestep_spacing=spacing)


def with_zero_terminal_snr(scheduler):
    """A fresh ``DDIMScheduler``: ``scheduler``'s config rescaled to ᾱ_T = 0, trailing spacing (Marigold v1-1's). Introduced in notebook 03.

    The betas are rescaled as in Lin et al., arXiv 2305.08891, Algorithm 1 (diffusers ``rescale_betas_zero_snr=True``),
    exactly as Marigold v1-1's trainer builds its schedulers (prs-eth/Marigold ``src/trainer/marigold_depth_trainer.py``).
    """
    from diffusers import DDIMScheduler

    if not hasattr(scheduler, "config"):
        raise TypeError(f"with_zero_terminal_snr: `scheduler` must be a diffusers scheduler, got {type(scheduler).__name__}")
    return DDIMScheduler.from_config(scheduler.config, rescale_betas_zero_snr=True, timestep_spacing="trailing")


def timesteps(scheduler, spacing: str, steps: int) -> list[int]:
    """The timesteps (high to low) the UNet sees for ``steps`` inference steps with ``spacing``. Introduced in notebook 02."""
    _check_steps(steps, scheduler.config.num_train_timesteps)
    s = with_spacing(scheduler, spacing)
    s.set_timesteps(steps)
    return [int(t) for t in s.timesteps]


def alpha_bar(scheduler, t) -> float:
    """ᾱ_t, the fraction of signal variance left at training timestep ``t`` (0..T-1). Introduced in notebook 02."""
    t = int(t)
    n = len(scheduler.alphas_cumprod)
    if not 0 <= t < n:
        raise ValueError(f"`t` must be a timestep in [0, {n - 1}], got {t}")
    return float(scheduler.alphas_cumprod[t])


def snr(scheduler, t) -> float:
    """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) at timestep ``t``. Introduced in notebook 02."""
    a = alpha_bar(scheduler, t)
    return a / (1.0 - a)


def timestep_table(scheduler, steps: Iterable[int] = (1, 2, 4, 10, 50), spacings: Iterable[str] = SPACINGS) -> list[dict]:
    """One row per (spacing, steps): the timesteps fed to the UNet and ᾱ and SNR of the first one. Introduced in notebook 02."""
    rows = []
    for spacing in spacings:
        for n in steps:
            ts = timesteps(scheduler, spacing, n)
            rows.append({"spacing": spacing, "steps": n, "timesteps": ts, "first_t": ts[0],
                         "alpha_bar_first": alpha_bar(scheduler, ts[0]), "snr_first": snr(scheduler, ts[0])})
    return rows
