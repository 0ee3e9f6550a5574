# %% [markdown]
# # 00 · Setup check
#
# **What you will learn**
# - which *profile* you are on (`mini`: CPU, offline; `full`: the released Marigold checkpoints on a GPU) and how to switch;
# - whether your Python packages, device, memory and the course's generated assets are ready, and what to do if not;
# - what a *MiniScenes* sample holds (RGB, planar depth, camera-space normals, a validity mask, labels) and the normal
#   convention the whole course uses;
# - that the depth model answers: one tiny prediction, checked against ground truth.
#
# **What you need**: nothing but `make lab`. Mini profile: about 1 minute on a laptop CPU once the assets exist.
# The first `make lab` opens JupyterLab at once and builds them in the background (55–65 minutes on 2 cores, once;
# an instructor can hand the room a ready build instead: `make lab IMPORT=genpercept-build.tar.gz`). Until then,
# a cell that needs a model waits for it with a progress bar. Full profile: a CUDA GPU and access to the Hugging Face Hub.
#
# **Time**: teaching ~20 min · run time in the mini profile on a 2-core CPU (measured by `make spread`, 2026-12-04):
# 0.2 min · on a GPU: not measured yet.
#
# Every check below prints **✓** or **✗ → what to do**.

# %%
from genpercept_lessons import get_profile, load_marigold, load_miniscenes
from genpercept_lessons.runtime import set_seed

PROFILE = None  # None: $GENPERCEPT_PROFILE, else "mini". Write "full" here to use the released checkpoints on a GPU.
profile = get_profile(PROFILE)
print(profile.describe())
set_seed(0)

# %% [markdown]
# ## 1. Versions, device, memory, assets
# `check_environment` looks at what the lessons import, the device the profile asks for, free RAM, and (mini profile)
# the six generated assets: the MiniScenes data, mini-SD's captioned views, the mini VAE, mini-SD (the text-to-image
# model) and the two mini-Marigold pipelines fine-tuned from it.

# %%
from genpercept_lessons.setup_check import check_environment, format_checks

checks = check_environment(profile)
print(format_checks(checks))

# %% [markdown]
# In the mini profile the models are trained on your machine, once. `build_report` says whether that build is done,
# still running in the background (how far, and the log file to read), or stopped (then any lesson that needs a model
# starts it again, and it resumes where it stopped). Re-run the cell to see it move.

# %%
if profile.is_mini:
    from genpercept_lessons.mini.background import build_report

    print(build_report(profile.build_seed, profile.build_precision))

# %%
by_name = {c.name: c for c in checks}
essential = ["python", "torch", "diffusers", "transformers", "datasets", "device"]
missing = [name for name in essential if not by_name[name].ok]
assert not missing, f"fix these first (see the → lines above): {missing}"
print("✓ the essentials are in place")

# %% [markdown]
# ## 2. The data: MiniScenes
# Procedurally ray-cast rooms (floor, walls, ceiling, spheres, boxes; plain, checker and noise textures; Lambertian shading
# with shadows from a random light; a random camera). Because they are rendered, depth and normals are *exact*:
# no sensor holes except where a ray leaves the room through a window (`mask` is False there).

# %%
scenes = load_miniscenes("test")
print(scenes)
row = scenes[0]
for key, value in row.items():
    print(f"{key:8s} {str(value.dtype):8s} {value.shape}")

# %%
from genpercept_lessons.viz import scene_figure

fig = scene_figure(row, title="MiniScenes test scene 0")

# %% [markdown]
# ### The normal convention
# Normals are unit vectors in the camera frame that Marigold and diffusers' `visualize_normals` assume:
# **x right, y up, z toward the viewer** (diffusers' Marigold docs, `api/pipelines/marigold`: "a camera-facing normal
# [0,0,1] maps to RGB [128,128,255]").
# So the floor, which faces up, should have a large positive y, and `visualize_normals` should paint it green.

# %%
import numpy as np

from genpercept_lessons.viz import colorize_normals

floor = (row["label"] == 0) & row["mask"]
mean_floor = row["normals"][floor].mean(axis=0)
print("mean floor normal (x, y, z):", np.round(mean_floor, 3))
head_on = colorize_normals(np.tile([0.0, 0.0, 1.0], (1, 1, 1)).astype(np.float32))[0, 0]
print("visualize_normals of (0, 0, 1):", head_on)
assert mean_floor[1] > 0.5, "the floor should face up (+y)"
assert abs(int(head_on[0]) - 128) <= 1 and abs(int(head_on[1]) - 128) <= 1 and head_on[2] == 255

# %% [markdown]
# ## 3. A widget
# If you see a slider and a picture below, interactive widgets work in your JupyterLab. Later lessons use explorers built
# the same way. (In a static viewer you see only the text of the widget.)

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

out = widgets.Output()


def show(index: int) -> None:
    with out:
        out.clear_output(wait=True)
        fig = scene_figure(scenes[index], title=f"test scene {index}")
        plt.show(fig)


slider = widgets.IntSlider(value=1, min=0, max=len(scenes) - 1, description="scene")
slider.observe(lambda change: show(change["new"]), names="value")
display(slider, out)
show(slider.value)

# %% [markdown]
# ## 4. A tiny prediction
# Load the profile's depth model with diffusers' own `MarigoldDepthPipeline` (if the background build has not finished
# yet, `load_marigold` waits for it here with a progress bar) and predict four test scenes with **one**
# denoising step. We switch the scheduler's `timestep_spacing` to `"trailing"`; lesson 02 shows why the checkpoint's own
# `"leading"` setting breaks single-step inference, and lesson 03 why trailing fixes it.
# Depth from Marigold is *affine-invariant* (unknown scale and shift), so we align it to the ground truth by least squares
# before measuring the mean absolute relative error (AbsRel).

# %%
import torch
from diffusers import DDIMScheduler

from genpercept_lessons.images import images_to_tensor
from genpercept_lessons.metrics import depth_metrics

pipe = load_marigold(profile, "depth")
pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
batch = scenes[:4]
images = images_to_tensor(batch["image"])  # uint8 [N,H,W,3] -> float [N,3,H,W] in [0,1], what the pipeline takes
prediction = pipe(images, num_inference_steps=1, processing_resolution=profile.resolution,
                  generator=torch.Generator().manual_seed(0), output_type="np").prediction[..., 0]  # [N,H,W] in [0,1]
metrics = depth_metrics(prediction, batch["depth"], batch["mask"])
print({k: round(v, 4) for k, v in metrics.items()})

# %%
from genpercept_lessons.viz import colorize_depth

fig, axes = plt.subplots(2, 4, figsize=(9, 4.6))
for i in range(4):
    axes[0, i].imshow(colorize_depth(batch["depth"][i], batch["mask"][i]))
    axes[1, i].imshow(colorize_depth(prediction[i]))
    axes[0, i].axis("off")
    axes[1, i].axis("off")
axes[0, 0].set_title("ground truth", loc="left", fontsize=9)
axes[1, 0].set_title("1-step prediction (trailing)", loc="left", fontsize=9)
fig.tight_layout()

# %% [markdown]
# **Your numbers will differ a little from a classmate's.** In the mini profile your machine trained its own
# mini-Marigold (`make assets`), and no two machines train exactly the same weights: CPU kernels, bf16 where the CPU has
# bf16 instructions and fp32 elsewhere, and the order of floating-point sums all differ. The first line printed above
# says which build you have (`mini build: seed …, bf16|fp32`). The lessons therefore assert only what held on every
# build we measured, with room to spare; `docs/robustness.md` lists each number across builds. To see the spread
# yourself, build another variant: `GENPERCEPT_MINI_SEED=1 GENPERCEPT_MINI_PRECISION=fp32 make assets` (it lives beside
# the first one in the cache) and start JupyterLab with the same variables.

# %%
if profile.is_mini:
    assert metrics["abs_rel"] < 0.2, f"mini-Marigold should be within 20% AbsRel after alignment, got {metrics['abs_rel']:.3f}"
    print("✓ the mini depth model works")
else:
    print("full profile: AbsRel on these synthetic rooms is shown above; lesson 08 evaluates on NYUv2")

# %% [markdown]
# ## Key points
# - One switch, `get_profile(...)` or `GENPERCEPT_PROFILE`, picks the mini world or the real models; the functions are the same.
# - MiniScenes gives exact planar depth (metres), unit normals (x right, y up, z toward you), a validity mask and labels.
# - The models are diffusers' own `MarigoldDepthPipeline` / `MarigoldNormalsPipeline`, loaded from a folder in the layout of
#   `prs-eth/marigold-depth-v1-0`.
#
# ## Exercises
# 1. Move the slider: find a scene with a window. What do `mask`, `depth` and `label` hold there?
# 2. Render a scene of your own at another size: `from genpercept_lessons.mini.scenes import render_scene;
#    render_scene(seed=1, index=0, height=96, width=128)`,
#    and show it with `scene_figure(vars(...))`.
# 3. Predict the same four scenes with `num_inference_steps=10` (still trailing). Does AbsRel change much?
#
# ## Further reading
# - Marigold: Ke et al., *Repurposing Diffusion-Based Image Generators for Monocular Depth Estimation*, CVPR 2024 (`prs-eth/Marigold`).
# - diffusers' Marigold pipelines and `visualize_depth` / `visualize_normals` (docs: `api/pipelines/marigold`).
# - E2E-FT: Garcia et al., *Fine-Tuning Image-Conditional Diffusion Models is Easier than You Think*, arXiv 2409.11355.
