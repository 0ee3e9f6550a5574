"""Interactive explorers for the notebooks (ipywidgets); the numbers behind them are plain functions, tested."""
from __future__ import annotations

import numpy as np

from genpercept_lessons.inference import encode_rgb, predict_detailed
from genpercept_lessons.noise_schedules import SPACINGS, alpha_bar
from genpercept_lessons.targets import depth_to_image

__all__ = ["noise_levels", "timestep_explorer"]


def noise_levels(pipe, image, depth, mask, spacing: str, steps: int, seed: int = 0):
    """(rows, prediction): per denoising step, timestep t, the noise level the scheduler assumes (√(1−ᾱ_t)) and the actual one.

    The actual level is the RMS of (UNet input − √ᾱ_t · clean target latent), the clean latent being the VAE encoding
    of the ground-truth depth. image uint8 [H,W,3], depth [H,W] metres, mask bool [H,W]. Introduced in notebook 02.
    """
    import torch

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"noise_levels: `image` must be uint8 [H,W,3], got {image.dtype} {image.shape}")
    target = torch.from_numpy(depth_to_image(depth, mask))[None].to(pipe.device, pipe.dtype)
    clean = encode_rgb(pipe, target)  # the same encoder maps the depth "image" to its latent
    out = predict_detailed(pipe, image[None], steps=steps, spacing=spacing, generator=torch.Generator().manual_seed(seed),
                           processing_resolution=0, keep_intermediates=True)  # native size, like the target latent
    rows = []
    for t, z in zip(out.timesteps, out.step_inputs):
        a = alpha_bar(pipe.scheduler, t)
        actual = float(torch.sqrt(((z - a ** 0.5 * clean) ** 2).mean()))
        rows.append({"t": t, "alpha_bar": a, "expected_noise": (1 - a) ** 0.5, "actual_noise": actual})
    return rows, out


def timestep_explorer(pipe, scenes, max_steps: int = 50):
    """A widget: pick spacing, number of steps and a scene. Introduced in notebook 02.

    It shows the timesteps fed, the expected vs the actual noise, and x̂0 per step.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from genpercept_lessons.viz import colorize_depth

    spacing = widgets.Dropdown(options=list(SPACINGS), value="leading", description="spacing")
    steps = widgets.SelectionSlider(options=[s for s in (1, 2, 4, 10, 25, 50) if s <= max_steps], value=1,
                                    description="steps")
    scene = widgets.IntSlider(value=0, min=0, max=len(scenes) - 1, description="scene")
    out = widgets.Output()

    def render(*_):
        row = scenes[scene.value]
        levels, pred = noise_levels(pipe, row["image"], row["depth"], row["mask"], spacing.value, steps.value)
        shown = np.unique(np.linspace(0, len(levels) - 1, min(len(levels), 5)).round().astype(int))
        with out:
            out.clear_output(wait=True)
            print(f"timesteps fed to the UNet: {pred.timesteps}")
            for r in levels[:10]:
                print(f"  t={r['t']:4d}  ᾱ={r['alpha_bar']:.4f}  scheduler assumes noise {r['expected_noise']:.3f}, "
                      f"input actually has {r['actual_noise']:.3f}")
            fig, axes = plt.subplots(1, len(shown) + 2, figsize=(1.9 * (len(shown) + 2), 2.2))
            axes[0].imshow(row["image"])
            axes[0].set_title("RGB", fontsize=8)
            axes[1].imshow(colorize_depth(row["depth"], row["mask"]))
            axes[1].set_title("ground truth", fontsize=8)
            for ax, k in zip(axes[2:], shown):
                ax.imshow(colorize_depth(pred.x0_decoded[k][0]))
                ax.set_title(f"x̂0 after t={pred.timesteps[k]}", fontsize=8)
            for ax in axes:
                ax.axis("off")
            fig.tight_layout()
            plt.show(fig)

    for w in (spacing, steps, scene):
        w.observe(render, names="value")
    box = widgets.VBox([widgets.HBox([spacing, steps, scene]), out])
    display(box)
    render()
    return box
