"""Lesson 05 exercises: the 2×2 scale/shift solve, the E2E-FT forward pass, and Marigold's latent loss."""
from __future__ import annotations

import numpy as np

from . import FunctionExercise
from ._fixtures import ddim_scheduler, rng_arrays, tiny_unet, tiny_vae

__all__ = ["q1", "q2", "q3"]


def _fit_reference(p, g, m):
    a = np.stack([p[m], np.ones(int(m.sum()))], 1)
    s, t = np.linalg.lstsq(a, g[m], rcond=None)[0]
    return float(s), float(t)


def _fit_cases():
    p, noise = rng_arrays(6, (8, 8), (8, 8))
    g = 2.5 * p - 0.7 + 0.05 * noise
    m = np.random.default_rng(7).uniform(size=(8, 8)) > 0.25
    return [((p, g, m), "one 8×8 image with 3/4 of the pixels valid"), ((p, -g, m), "the same with a negative scale")]


def _e2e_reference(unet, vae, rgb_latent, text, alpha_bar):
    import torch

    from genpercept_lessons.finetuning import e2e_predict

    with torch.no_grad():
        return e2e_predict(unet, vae, rgb_latent, text, alpha_bar, 999, "depth")


def _e2e_cases():
    import torch

    lat, text = rng_arrays(8, (2, 4, 8, 8), (1, 2, 32), low=-1, high=1)
    a = float(ddim_scheduler().alphas_cumprod[999])
    return [((tiny_unet(), tiny_vae(), torch.tensor(lat, dtype=torch.float32), torch.tensor(text, dtype=torch.float32),
              a), "a tiny random UNet and VAE, 2 RGB latents of 8×8")]


def _e2e_keeps_the_graph(func):
    """The loss must reach the UNet: its output needs a gradient path back to the UNet's weights."""
    import copy

    import torch

    (lat, text), a = rng_arrays(8, (2, 4, 8, 8), (1, 2, 32), low=-1, high=1), float(ddim_scheduler().alphas_cumprod[999])
    unet = copy.deepcopy(tiny_unet()).requires_grad_(True)
    out = func(unet, tiny_vae(), torch.tensor(lat, dtype=torch.float32), torch.tensor(text, dtype=torch.float32), a)
    if not getattr(out, "requires_grad", False):
        return ("the values are right, but your output carries no gradient (torch.no_grad() or .detach()?): "
                "E2E-FT trains the UNet through this very pass")
    out.sum().backward()
    if unet.conv_in.weight.grad is None or not torch.isfinite(unet.conv_in.weight.grad).all():
        return "the values are right, but no finite gradient reaches the UNet's first layer"
    return None


q1 = FunctionExercise(
    title="Exercise 1 (implement it yourself): the least-squares scale and shift of one image",
    hints=["Build the sums over valid pixels: Σp², Σp, n, Σp·g, Σg.",
           "Solve [[Σp², Σp], [Σp, n]]·[s, t] = [Σp·g, Σg] (Cramer's rule or np.linalg.solve)."],
    solution_code="""
        def scale_shift(p, g, m):
            p, g = p[m], g[m]
            a = np.array([[np.sum(p * p), np.sum(p)], [np.sum(p), p.size]])
            b = np.array([np.sum(p * g), np.sum(g)])
            s, t = np.linalg.solve(a, b)
            return float(s), float(t)
    """,
    reference=_fit_reference, cases=_fit_cases)

q2 = FunctionExercise(
    title="Exercise 2 (implement it yourself): one E2E-FT forward pass to depth in [-1, 1]",
    hints=["Input: torch.cat([rgb_latent, zeros], dim=1); one UNet call at t = 999 with "
           "encoder_hidden_states=text.expand(len(rgb_latent), -1, -1).",
           "x̂0 = −√(1−ᾱ)·v̂ (the noise is zero); decode x̂0 / vae.config.scaling_factor.",
           "Depth = mean over the 3 decoded channels, clamped to [-1, 1]."],
    solution_code="""
        def e2e_depth(unet, vae, rgb_latent, text, alpha_bar):
            z = torch.zeros_like(rgb_latent)
            v = unet(torch.cat([rgb_latent, z], 1), 999, encoder_hidden_states=text.expand(len(z), -1, -1)).sample
            x0 = -((1 - alpha_bar) ** 0.5) * v
            return vae.decode(x0 / vae.config.scaling_factor).sample.mean(1).clamp(-1, 1)
    """,
    reference=_e2e_reference, cases=_e2e_cases, rtol=1e-4, atol=1e-5, also=_e2e_keeps_the_graph)


def _latent_loss_reference(x0_latent, depth, vae):
    import torch

    with torch.no_grad():
        target = vae.encode(depth[:, None].expand(-1, 3, -1, -1)).latent_dist.mode() * vae.config.scaling_factor
    return torch.nn.functional.mse_loss(x0_latent.detach(), target)


def _latent_loss_cases():
    import torch

    (lat, d) = rng_arrays(20, (2, 4, 8, 8), (2, 16, 16), low=-1, high=1)
    return [((torch.tensor(lat, dtype=torch.float32), torch.tensor(d, dtype=torch.float32), tiny_vae()),
             "x̂₀ latents [2,4,8,8], depth maps [2,16,16] in [-1,1], a VAE with scaling factor 0.5")]


def _latent_loss_reaches_the_prediction(func):
    import torch

    (lat, d) = rng_arrays(21, (2, 4, 8, 8), (2, 16, 16), low=-1, high=1)
    x0 = torch.tensor(lat, dtype=torch.float32, requires_grad=True)
    loss = func(x0, torch.tensor(d, dtype=torch.float32), tiny_vae())
    if not getattr(loss, "requires_grad", False):
        return "the value is right, but the loss carries no gradient back to x̂₀ (it is what trains the UNet)"
    loss.backward()
    if x0.grad is None or not torch.isfinite(x0.grad).all() or float(x0.grad.abs().sum()) == 0:
        return "the value is right, but no gradient reaches x̂₀"
    return None


q3 = FunctionExercise(
    title="Exercise 3 (transfer): Marigold's loss lives in latent space; write it for a one-step x̂₀",
    hints=["The target is the *encoded* depth: replicate the depth map to 3 channels ([B,3,H,W]) as Marigold does, "
           "encode it, take the posterior mean and multiply by vae.config.scaling_factor.",
           "No gradient is needed through the target (Marigold's VAE is frozen): encode under torch.no_grad().",
           "Return the mean squared error between x̂₀ and that target latent."],
    solution_code="""
        def latent_loss(x0_latent, depth, vae):
            with torch.no_grad():
                target = vae.encode(depth[:, None].repeat(1, 3, 1, 1)).latent_dist.mean * vae.config.scaling_factor
            return ((x0_latent - target) ** 2).mean()
    """,
    reference=_latent_loss_reference, cases=_latent_loss_cases, rtol=1e-4, atol=1e-6,
    also=_latent_loss_reaches_the_prediction)
