# %% [markdown]
# # 06 · Surface normals: the same recipe with an angular loss
#
# **What you will learn**
# - how Marigold predicts normals: the 3 components as the 3 "colour" channels of the target image, unit-normalised
#   after decoding, in the camera frame x right · y up · z toward the viewer (diffusers' `visualize_normals`);
# - the angle metrics the papers report (mean, median, % under 11.25° / 22.5° / 30°, pooled over pixels);
# - trailing 1 step against 50 steps, and E2E-FT with the angular loss arccos(p·g), clamped so its gradient stays
#   finite.
#
# **What you need**: lessons 01–05. Mini profile: ~2 min on a 2-core CPU. Full profile: a GPU (normals model
# `GonzaloMG/marigold-normals`) and prepared data.
#
# **Time**: teaching ~30 min · exercises ~20 min · run time in the mini profile on a 2-core CPU (measured by `make
# spread`, 2026-12-04): 1.6 min · on a GPU: not measured yet.
#
# Sources: Garcia et al. (arXiv 2409.11355) eq. 2 and Table 2; DSINE (Bae & Davison, CVPR 2024) for the metrics.

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch

from genpercept_lessons import get_profile, load_marigold, load_miniscenes
from genpercept_lessons.runtime import set_seed
from genpercept_lessons.training_data import load_training_data

PROFILE = None  # None: $GENPERCEPT_PROFILE, else "mini"
profile = get_profile(PROFILE)
print(profile.describe())
set_seed(0)
pipe = load_marigold(profile, "normals")
if profile.is_mini:
    train_data, test = load_miniscenes("train"), load_miniscenes("test")
else:  # NYUv2's labeled set has no normals; hold out Hypersim's val split (the paper evaluates on DSINE's data)
    train_data = [(load_training_data(loc), w) for loc, w in profile.train_data]
    test = load_training_data("$GENPERCEPT_DATA/hypersim_val")

# %% [markdown]
# ## 1. Normals as an image
# A unit normal has components in [−1, 1], exactly the range of a VAE input, so Marigold-normals encodes the normal
# map like an RGB image. A camera-facing wall is (0, 0, 1), the floor seen from above-front points up, (0, 1, ·).
# Check it on a scene: the mean normal over floor pixels should point up, over the back wall toward us.
#
# **Which way is x?** Not every checkpoint agrees. This course, diffusers' `visualize_normals` and Marigold v1-1 use x
# right, y up, z toward the viewer. E2E-FT's normals models (`GonzaloMG/marigold-normals`,
# `GonzaloMG/marigold-e2e-ft-normals`) were trained on normals that point x *left*: its Hypersim loader flips y and z
# and then negates the vector (E2E-FT `training/dataloaders/load.py`), the frame of the DSINE evaluation data. Scored
# against x-right targets such a model would look ~40° worse than it is. `load_marigold` records each model's frame
# (`genpercept_lessons.normals_convention`) and the course's `predict` returns x-right whatever the model, so the
# numbers below compare like with like; fine-tuning converts the targets the other way.

# %%
from genpercept_lessons.mini.scenes import LABELS
from genpercept_lessons.normals_convention import normals_convention
from genpercept_lessons.viz import colorize_normals

scene = test[0]
print("this model predicts in frame:", normals_convention(pipe), "(predict() returns x-right)")
if profile.is_mini:  # MiniScenes label every pixel; the prepared real datasets carry no labels (all 255)
    floor = scene["mask"] & (scene["label"] == LABELS.index("floor"))
    print("labels:", LABELS)
    print("mean floor normal:", scene["normals"][floor].mean(0).round(2))
    assert scene["normals"][floor].mean(0)[1] > 0.9  # y up
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
axes[0].imshow(scene["image"])
axes[0].set_title("RGB")
axes[1].imshow(colorize_normals(scene["normals"], scene["mask"]))
axes[1].set_title("normals")
for ax in axes:
    ax.axis("off")

# %% [markdown]
# ## 2. The angle metrics, by hand
# The error of a pixel is the angle between prediction and truth, arccos(p̂·ĝ). Normal benchmarks pool all valid
# pixels of the dataset (not per image, unlike depth) and report the mean, the median and the share of pixels under
# 11.25°, 22.5° and 30°.

# %%
from genpercept_lessons.evaluation import evaluate
from genpercept_lessons.metrics import normal_metrics

N = 100 if profile.is_mini else min(100, profile.eval_scenes)
one_step = evaluate(pipe, test, n=N, steps=1, spacing="trailing", noise="zeros")
rows = test[:N]
p, g, m = one_step["prediction"], rows["normals"], rows["mask"].astype(bool)
cos = np.clip((p[m] * g[m]).sum(-1) / np.linalg.norm(p[m], axis=-1), -1, 1)
angles = np.degrees(np.arccos(cos))
by_hand = {"mean": angles.mean(), "median": np.median(angles), "a11_25": 100 * (angles < 11.25).mean()}
print({k: round(float(v), 3) for k, v in by_hand.items()})
print({k: round(v, 3) for k, v in one_step["metrics"].items()})
for k, v in by_hand.items():
    assert abs(v - one_step["metrics"][k]) < 1e-3

# %% [markdown]
# ## 3. Trailing 1 step against 50 steps, and a trivial baseline
# The E2E-FT paper (Table 2, NYUv2 mean angle) compares the trailing fix in one step (17.4°) with a Marigold normals model
# (trained by the E2E-FT authors) at Marigold's default, 50 *leading* steps × a 10-member ensemble (18.8°). That is not
# the comparison below: here one trailing step meets 50 *trailing* steps and no ensemble (E2E-FT Fig. 5 shows that kind
# of sweep for depth: with trailing spacing, more steps do not help). A
# constant prediction (the training set's pixel-wise mean normal map) tells how much of the score is free.

# %%
fifty = evaluate(pipe, test, n=N, steps=50, spacing="trailing", seed=0)
if profile.is_mini:  # the training set's pixel-wise mean normal map, the baseline the build reports
    sample = train_data[:500]
    valid = sample["mask"].astype(bool)[..., None]
    mean_map = (sample["normals"] * valid).sum(0) / np.maximum(valid.sum(0), 1)
    mean_map /= np.maximum(np.linalg.norm(mean_map, axis=-1, keepdims=True), 1e-6)
else:
    mean_map = np.broadcast_to(np.array([0.0, 0.0, 1.0]), p.shape[1:])
constant = np.broadcast_to(mean_map, p.shape)
const_metrics = normal_metrics(constant, g, m)
print(f"{'':24s}{'mean°':>8s}{'median°':>9s}{'<11.25°':>9s}{'s/image':>9s}")
for name, met, sec in [("constant mean map", const_metrics, 0.0),
                       ("trailing, 1 step, z=0", one_step["metrics"], one_step["seconds"] / N),
                       ("trailing, 50 steps", fifty["metrics"], fifty["seconds"] / N)]:
    print(f"{name:24s}{met['mean']:8.2f}{met['median']:9.2f}{met['a11_25']:9.1f}{sec:9.4f}")
if profile.is_mini:  # measured on every mini build; for Hypersim's val split the papers give no number
    assert one_step["metrics"]["mean"] < 0.6 * const_metrics["mean"]
paired = one_step["per_image"]["mean"] - fifty["per_image"]["mean"]
print(f"per scene, 1 step − 50 steps: {paired.mean():+.2f}° ± {paired.std(ddof=1):.2f}° "
      f"(1 step better on {(paired < 0).sum()} of {N})")
if profile.is_mini:  # on every build measured, 50 steps are 5-19 % worse (E2E-FT's Fig. 5 finds the same for depth)
    assert one_step["metrics"]["mean"] <= fifty["metrics"]["mean"]

# %% [markdown]
# ## 4. The angular loss and E2E-FT for normals
# E2E-FT's normal loss (paper eq. 2) is the mean over valid pixels of arccos(p̂·g). The derivative of arccos is
# −1/√(1−x²): infinite at x = ±1, i.e. exactly when a pixel is perfect. So the cosine is clamped strictly inside
# (−1, 1); we check the gradient stays finite for a perfect prediction.

# %%
from genpercept_lessons.losses import angular_loss

target = torch.from_numpy(g[:2]).permute(0, 3, 1, 2).float()
mask2 = torch.from_numpy(m[:2])
perfect = target.clone().requires_grad_(True)
angular_loss(perfect, target, mask2).backward()
print(f"loss of a perfect prediction {angular_loss(perfect, target, mask2).item():.2e} rad; "
      f"gradient finite: {torch.isfinite(perfect.grad).all().item()}")
assert torch.isfinite(perfect.grad).all()
by_hand_loss = np.arccos(np.clip(cos, -1 + 1e-6, 1 - 1e-6)).mean()
lib_loss = angular_loss(torch.from_numpy(p).permute(0, 3, 1, 2), torch.from_numpy(g).permute(0, 3, 1, 2),
                        torch.from_numpy(m)).item()
print(f"angular loss of the 1-step prediction: by hand {by_hand_loss:.5f} rad, library {lib_loss:.5f} rad "
      f"(= {np.degrees(lib_loss):.2f}°)")
assert abs(by_hand_loss - lib_loss) < 1e-4

# %%
import shutil
import tempfile

from genpercept_lessons.assets import cache_root
from genpercept_lessons.finetuning import GPU_24GB, E2EConfig, finetune_end_to_end

if profile.is_mini:
    config = E2EConfig(task="normals", steps=profile.e2e_steps, batch_size=profile.e2e_batch_size, lr=profile.e2e_lr,
                       eval_every=50, eval_scenes=N)
else:
    config = profile.rehearsal_sized(dataclasses.replace(GPU_24GB, task="normals", steps=200, warmup=20,
                                                         eval_every=100, eval_scenes=N, eval_protocol="hypersim"))
workdir = tempfile.mkdtemp(prefix="lesson06-") if profile.is_mini else cache_root() / "runs" / "lesson06-full-normals"
run = finetune_end_to_end(pipe, train_data, config, workdir=workdir, eval_data=test)
if profile.is_mini:
    shutil.rmtree(workdir)
after = evaluate(run.pipe, test, n=N, steps=1, spacing="trailing", noise="zeros")
print(f"{len(run.losses)} steps, {run.seconds:.0f} s this session")
print("held-out mean angle during training:", [(s, round(e["mean"], 2)) for s, e in run.evals])
print(f"mean angle: before {one_step['metrics']['mean']:.2f}° → after {after['metrics']['mean']:.2f}° "
      f"(<11.25°: {one_step['metrics']['a11_25']:.1f}% → {after['metrics']['a11_25']:.1f}%)")
if profile.is_mini:  # the full profile's 200 steps are a demonstration, not E2E-FT's 20,000
    assert after["metrics"]["mean"] < one_step["metrics"]["mean"]

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(np.degrees(run.losses), alpha=0.4, label="per step")
if len(run.losses) >= 10:
    ax.plot(np.arange(9, len(run.losses)), np.degrees(np.convolve(run.losses, np.ones(10) / 10, "valid")),
            label="10-step mean")
ax.set(xlabel="step", ylabel="angular loss (degrees)", title="E2E-FT, normals")
ax.legend()

# %%
from genpercept_lessons.viz import prediction_grid

k = min(6, N)
fig = prediction_grid(test[:k]["image"], {"ground truth": g[:k], "trailing 1 step": p[:k],
                                          "50 steps": fifty["prediction"][:k], "after E2E-FT": after["prediction"][:k]},
                      masks=m[:k])

# %% [markdown]
# ## Key points
# - Normals ride the same machinery as depth: 3 components as 3 channels, unit-normalised after decoding.
# - Angle metrics are pooled over pixels; a constant normal map is the baseline to beat.
# - The angular loss needs the cosine clamped inside (−1, 1), or a perfect pixel produces an infinite gradient.
# - E2E-FT with that loss improves the one-step normals model, as in the paper (NYUv2 17.4° → 16.2°).

# %% [markdown]
# ## Exercises
# Each exercise has a checker. Run a cell as it is and the checker says "not attempted"; replace `____` with your
# code and run it again: ✓ means correct, ✗ says what differs (shape, range or value, yours and the expected one).
# `ex.q1.hint()` gives a hint (call it again for the next), `ex.q1.solution()` shows a solution.

# %%
from genpercept_lessons.exercises import ____, lesson

ex = lesson(6)


# %% [markdown]
# **Exercise 1 (implement it yourself).** The angular loss in radians, with the cosine clamped inside (−1, 1) and
# averaged over valid pixels.

# %%
def my_angular_loss(pred, target, mask):
    """pred, target torch [B,3,H,W] (target unit), mask bool [B,H,W] -> scalar tensor (radians)."""
    return ____  # your code here


ex.q1.check(my_angular_loss)
# ex.q1.hint()

# %% [markdown]
# **Exercise 2 (implement it yourself).** The benchmark's mean angular error: degrees, pooled over all valid pixels of
# all images (not per image).

# %%
def pooled_mean_angle(pred, target, mask):
    """pred, target float [N,H,W,3], mask bool [N,H,W] -> mean angle in degrees (float)."""
    return ____  # your code here


ex.q2.check(pooled_mean_angle)
# ex.q2.hint()

# %% [markdown]
# ## Further reading
# - Garcia et al., arXiv 2409.11355, Table 2 and App. B (normals evaluation with the DSINE pipeline).
# - Bae & Davison, "Rethinking Inductive Biases for Surface Normal Estimation" (DSINE, CVPR 2024): metrics and
#   the axis conventions (E2E-FT's loaders flip and negate axes; verify axes before mixing tools).
