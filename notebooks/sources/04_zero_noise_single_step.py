# %% [markdown]
# # 04 · Zero-noise single step: from a sampler to a plain feed-forward network
#
# **What you will learn**
# - the v-prediction identity x̂₀ = √ᾱ_t · z − √(1−ᾱ_t) · v̂, checked against diffusers' `scheduler.step`;
# - why one step can work at all: trained with a mean-squared error, the model's best guess from (almost) pure noise is
#   the *mean* depth given the image, and depth given an image has nearly one answer;
# - how the start noise reaches x̂₀ twice (directly, with weight √ᾱ₉₉₉ ≈ 0.068, and through v̂, since the UNet sees
#   it), and how much it changes the prediction here;
# - that zero-noise inference is deterministic and about as good as a random start (which of the two is a little better
#   differs from model to model: an empirical result), and why that makes end-to-end training possible (lesson 05).
#
# **What you need**: lessons 01–03. Mini profile: ~30 s on a laptop CPU. Full profile: a GPU.
#
# **Time**: teaching ~25 min · exercises ~15 min · run time in the mini profile on a 2-core CPU (measured by `make
# spread`, 2026-12-04): 0.4 min · on a GPU: not measured yet.
#
# Source: E2E-FT (Garcia et al., arXiv 2409.11355, §4): "we replace the noise by its mean", one UNet call at t = T.

# %%
import numpy as np
import torch

from genpercept_lessons import get_profile, load_marigold
from genpercept_lessons.runtime import set_seed
from genpercept_lessons.training_data import load_eval_data

PROFILE = None  # None: $GENPERCEPT_PROFILE, else "mini"
profile = get_profile(PROFILE)
print(profile.describe())
set_seed(0)
pipe = load_marigold(profile, "depth")
scenes = load_eval_data(profile)  # held-out MiniScenes; in the full profile NYUv2's test images (lesson 02)

# %% [markdown]
# ## 1. x̂₀ from v, by hand
# With v-prediction the UNet outputs v = √ᾱ_t · ε − √(1−ᾱ_t) · x₀. Since z = x_t = √ᾱ_t · x₀ + √(1−ᾱ_t) · ε, solving
# for x₀ gives **x̂₀ = √ᾱ_t · z − √(1−ᾱ_t) · v̂**. We compute it by hand for one trailing step and compare with what
# diffusers' DDIM scheduler reports as `pred_original_sample`.

# %%
from genpercept_lessons.images import images_to_tensor
from genpercept_lessons.inference import empty_text_embedding, encode_rgb
from genpercept_lessons.noise_schedules import with_spacing

rows = scenes[:8]
x = images_to_tensor(rows["image"], signed=True)  # RGB in [-1, 1], what the VAE encodes
rgb_latent = encode_rgb(pipe, x)
cond = empty_text_embedding(pipe).expand(len(x), -1, -1)
scheduler = with_spacing(pipe.scheduler, "trailing")
scheduler.set_timesteps(1)
T = scheduler.timesteps[0]
a = scheduler.alphas_cumprod[T]
z = torch.randn(rgb_latent.shape, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    v = pipe.unet(torch.cat([rgb_latent, z], 1), T, encoder_hidden_states=cond).sample
x0_by_hand = a.sqrt() * z - (1 - a).sqrt() * v
x0_diffusers = scheduler.step(v, T, z).pred_original_sample
print(f"t = {int(T)}, √ᾱ = {a.sqrt():.4f}, √(1−ᾱ) = {(1 - a).sqrt():.4f}")
assert int(T) == 999 and abs(float(a.sqrt()) - 0.068) < 0.002  # z enters x̂₀ directly with weight ≈ 0.068 ...
print(f"max |by hand − diffusers| = {(x0_by_hand - x0_diffusers).abs().max():.2e}")
assert torch.allclose(x0_by_hand, x0_diffusers, atol=1e-5)

# %% [markdown]
# ... but that is not the whole story: the UNet *sees* z and computes v̂ from it, so z also reaches x̂₀ through
# −√(1−ᾱ) · v̂, with a weight close to 1. How much does x̂₀ change from one start noise to another, term by term?

# %%
direct, through = [], []
for s in range(5):
    zs = torch.randn(rgb_latent.shape, generator=torch.Generator().manual_seed(s))
    with torch.no_grad():
        vs = pipe.unet(torch.cat([rgb_latent, zs], 1), T, encoder_hidden_states=cond).sample
    direct.append(a.sqrt() * zs)          # √ᾱ · z
    through.append(-(1 - a).sqrt() * vs)  # −√(1−ᾱ) · v̂(z)
direct, through = torch.stack(direct), torch.stack(through)  # [5 seeds, 8, 4, h, w]
x0_seeds = direct + through
print(f"std across 5 start noises, per latent value: √ᾱ·z {direct.std(0).mean():.3f}, −√(1−ᾱ)·v̂ "
      f"{through.std(0).mean():.3f}, x̂₀ {x0_seeds.std(0).mean():.3f} (x̂₀ itself varies by {x0_seeds.mean(0).std():.3f} "
      "across pixels)")
if profile.is_mini:  # measured on every mini build; the papers give no number for it
    assert x0_seeds.std(0).mean() < 0.5 * x0_seeds.mean(0).std()  # the noise moves x̂₀ much less than x̂₀ varies

# %% [markdown]
# Read the three numbers: the UNet's answer does depend on the noise it is shown, and part of that dependence cancels
# the direct term. **Why can one step work at all?** Training minimises E‖v̂ − v‖² at every t. At t = T the input is
# (almost) pure noise, and under a squared error the best possible prediction is the *conditional mean*: the average
# depth over everything the image is compatible with (Marigold §3.1 trains exactly this v-objective; E2E-FT §3 reads
# its single step this way). If depth given an image were ambiguous, that average would be a blur; for depth it is
# nearly unimodal, so the average *is* a good depth map, and a different start noise only moves the answer a little.
# Replacing the noise by its mean, zero, then gives one deterministic answer. How good the zero start is compared to
# a random one is not derived here but measured, in section 3, with a picture of how little the start noise moves
# the depth map.

# %% [markdown]
# ## 2. With z = 0
# Feed zeros instead of noise: x̂₀ = −√(1−ᾱ_T) · v̂ = −0.9977 · v̂. One UNet call, no randomness.

# %%
zeros = torch.zeros_like(rgb_latent)
with torch.no_grad():
    v0 = pipe.unet(torch.cat([rgb_latent, zeros], 1), T, encoder_hidden_states=cond).sample
x0_zero = scheduler.step(v0, T, zeros).pred_original_sample
assert torch.allclose(x0_zero, -(1 - a).sqrt() * v0, atol=1e-6)
print(f"x̂₀ = {-(1 - a).sqrt():.5f} · v̂  ✓")

# %% [markdown]
# ## 3. Seeds against zeros
# Five Gaussian starts with different seeds versus the zero start, all one trailing step, on held-out scenes.

# %%
from genpercept_lessons.evaluation import evaluate

N = 100 if profile.is_mini else min(100, profile.eval_scenes)
by_seed = [evaluate(pipe, scenes, n=N, steps=1, spacing="trailing", seed=s, **profile.eval_settings) for s in range(5)]
zero_a = evaluate(pipe, scenes, n=N, steps=1, spacing="trailing", noise="zeros", **profile.eval_settings)
zero_b = evaluate(pipe, scenes, n=N, steps=1, spacing="trailing", noise="zeros", **profile.eval_settings)
seed_abs_rel = np.array([r["metrics"]["abs_rel"] for r in by_seed])
print("Gaussian, per seed:", np.round(seed_abs_rel, 4), f"mean {seed_abs_rel.mean():.4f} ± {seed_abs_rel.std():.4f}")
print(f"zeros: {zero_a['metrics']['abs_rel']:.4f} (run twice: identical = {np.array_equal(zero_a['prediction'], zero_b['prediction'])})")
spread = np.std([r["prediction"] for r in by_seed], axis=0).mean()
print(f"mean per-pixel std of the prediction across seeds: {spread:.4f} (depth in [0, 1])")
rel = zero_a["metrics"]["abs_rel"] / seed_abs_rel.mean()
paired = zero_a["per_image"]["abs_rel"] - by_seed[0]["per_image"]["abs_rel"]
print(f"zeros / mean of the Gaussian starts: {rel:.3f}; per scene, zeros − seed 0: "
      f"{paired.mean():+.4f} ± {paired.std(ddof=1):.4f} (zeros better on {(paired < 0).sum()} of {N} scenes)")
assert np.array_equal(zero_a["prediction"], zero_b["prediction"])  # deterministic
if profile.is_mini:  # every mini build measured: within 6 %. For Marigold v1-0 on NYUv2 the papers report no number
    assert abs(rel - 1) < 0.1  # about as good: within 10 %

# %% [markdown]
# **How much does the start noise move the depth map?** Per pixel, the spread of the five seeds' predictions (each
# aligned to the ground truth in scale and shift, as the metric does) next to the error of their average.

# %%
import matplotlib.pyplot as plt

from genpercept_lessons.metrics import align_scale_shift

rows_n = scenes[:N]
aligned = np.stack([align_scale_shift(r["prediction"], rows_n["depth"], rows_n["mask"])[0] for r in by_seed])  # m
valid = rows_n["mask"].astype(bool)
seed_std = aligned.std(0)                               # [N,H,W]: how much the start noise moves each pixel
error = np.abs(aligned.mean(0) - rows_n["depth"])       # [N,H,W]: how far the average is from the truth
print(f"over {N} scenes: per-pixel spread across seeds {seed_std[valid].mean():.3f} m, error "
      f"{error[valid].mean():.3f} m (ratio {seed_std[valid].mean() / error[valid].mean():.2f})")
if profile.is_mini:  # measured on every mini build, not a paper's number
    assert seed_std[valid].mean() < error[valid].mean()  # the noise moves the map less than the map misses the truth
fig, axes = plt.subplots(3, 4, figsize=(8, 6.2))
for j in range(min(4, N)):
    vmax = float(error[j][valid[j]].max())
    for ax, img, title in zip(axes[:, j], (rows_n["image"][j], seed_std[j] * valid[j], error[j] * valid[j]),
                              ("RGB", "spread across seeds (m)", "error of the mean (m)")):
        ax.imshow(img, **({} if img.ndim == 3 else {"cmap": "magma", "vmin": 0, "vmax": vmax}))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Better or worse?** Neither, reliably. The five seeds agree with one another closely, but zeros land a few percent
# away from all of them: a little better on some builds (as on most that we measured), a little worse on others (one
# learner's build: 0.117 against 0.113 over 200 scenes), and scene by scene the difference is mostly noise
# (`docs/robustness.md`). So the mini world supports "about as good, and deterministic", not "better". E2E-FT's
# comparison of noise types (arXiv 2409.11355, Table 4) is about *training*: fine-tuning with zeros gives NYUv2 AbsRel 5.2
# against 5.3 with Gaussian noise. Lesson 05 repeats that ablation. In the full profile (NYUv2, Marigold v1-0) this
# section measures and prints the same comparison but asserts only that zeros are deterministic: no paper reports a
# number for zero against Gaussian starts at inference, so the mini world's margins are not carried over.

# %%
from genpercept_lessons.viz import prediction_grid

k = min(6, N)
fig = prediction_grid(rows["image"][:k], {"ground truth": rows["depth"][:k], "seed 0": by_seed[0]["prediction"][:k],
                                          "seed 1": by_seed[1]["prediction"][:k], "zeros": zero_a["prediction"][:k]})

# %% [markdown]
# ## 4. Why this matters: a differentiable one-pass predictor
# With z = 0 and t = T fixed, Marigold is the function RGB → encode → UNet(·, T) → x̂₀ → decode → depth: no sampling, no
# loop, deterministic. Every piece is differentiable, so we can put a loss on the *decoded depth* and back-propagate into
# the UNet. That is end-to-end fine-tuning (E2E-FT), lesson 05.
#
# ## Key points
# - DDIM's x̂₀ for v-prediction is √ᾱ_t · z − √(1−ᾱ_t) · v̂: at t = 999 the start noise enters directly with weight
#   √ᾱ ≈ 0.068 and again through v̂, which the UNet computes from it.
# - One step can work because an MSE-trained model predicts the conditional mean from pure noise, and depth given an
#   image is nearly unimodal: the start noise moves the map less than the map misses the truth.
# - Replacing the noise by its mean (zeros) gives a deterministic prediction about as good as a random start.
# - The single zero-noise step turns a sampler into a feed-forward network that can be trained end to end.

# %% [markdown]
# ## Exercises
# Each exercise has a checker. Run a cell as it is and the checker says "not attempted"; replace `____` with your
# code and run it again: ✓ means correct, ✗ says what differs (shape, range or value, yours and the expected one).
# `ex.q1.hint()` gives a hint (call it again for the next), `ex.q1.solution()` shows a solution.

# %%
from genpercept_lessons.exercises import ____, lesson

ex = lesson(4)


# %% [markdown]
# **Exercise 1 (implement it yourself).** Section 1 eliminated ε to get x̂₀ from v. Eliminate x₀ instead: the noise
# estimate ε̂, the other half of every DDIM step (lesson 02: z_prev = √ᾱ_prev · x̂₀ + √(1−ᾱ_prev) · ε̂).

# %%
def eps_from_v(z, v, alpha_bar):
    """z, v arrays of the same shape, alpha_bar a float in (0, 1) -> ε̂."""
    return ____  # your code here


ex.q1.check(eps_from_v)
# ex.q1.hint()

# %% [markdown]
# **Exercise 2.** By how much is the input latent z weighted *directly* in x̂0 at t = 999? (Only part of the story:
# the UNet sees z too, section 1.)

# %%
weight_of_z = ____  # your code here

ex.q2.check(weight_of_z)
# ex.q2.hint()

# %% [markdown]
# **Exercise 3.** Why "nearly unimodal" matters. A pixel shows a mirror: given the image, its depth is 2 m (the mirror's
# surface) with probability 0.3 and 5 m (the room it reflects) with probability 0.7. What does a model trained with a
# squared error predict there from pure noise, in metres? Is any surface at that depth?

# %%
prediction = ____  # your code here

ex.q3.check(prediction)
# ex.q3.hint()

# %% [markdown]
# ## Further reading
# - Garcia et al., arXiv 2409.11355, §4; Lin et al., WACV 2024 (zero terminal SNR makes x̂₀ = −v̂ exactly).
