# %% [markdown]
# # 02 · The leading-timestep bug
#
# **What you will learn**
# - which timesteps diffusers' DDIM scheduler feeds the UNet for 1, 2, 4, 10 and 50 steps under each `timestep_spacing`;
# - why one "leading" step is a contradiction: the input is pure noise but the UNet is told it is at t = 1, a nearly clean
#   latent (ᾱ₁ ≈ 0.998);
# - one DDIM step written out (x̂₀, ε̂, `prev_t = t − T // n`, the final ᾱ) and checked against `scheduler.step`;
# - why Marigold predicts v: how an output error reaches x̂₀ at t = T for ε-, x₀- and v-prediction;
# - that the model then hands the noise back almost unchanged, and what that does to depth metrics.
#
# **What you need**: lesson 01. Mini profile: ~40 s on a laptop CPU. Full profile: a GPU.
#
# **Time**: teaching ~30 min · exercises ~20 min · run time in the mini profile on a 2-core CPU (measured by `make
# spread`, 2026-12-04): 0.3 min · on a GPU: not measured yet.
#
# This is the bug found by Garcia et al. (E2E-FT, arXiv 2409.11355, §3.2) and earlier in CompVis/depth-fm#3: Marigold
# checkpoints looked useless at one step only because of how the timesteps were spaced.

# %%
import torch

from genpercept_lessons import get_profile, load_marigold
from genpercept_lessons.claims import check_claim
from genpercept_lessons.runtime import set_seed
from genpercept_lessons.training_data import load_eval_data

PROFILE = None  # None: $GENPERCEPT_PROFILE, else "mini"
profile = get_profile(PROFILE)
print(profile.describe())
set_seed(0)
pipe = load_marigold(profile, "depth")
scheduler = pipe.scheduler

# %% [markdown]
# ## 1. Which timesteps does the UNet see?
# We ask diffusers itself (`DDIMScheduler.set_timesteps`) for each spacing. Training used t ∈ {0, …, 999}; t = 999 is
# (almost) pure noise, t = 0 is (almost) clean.

# %%
from genpercept_lessons.noise_schedules import timestep_table

table = timestep_table(scheduler, steps=(1, 2, 4, 10, 50))
for row in table:
    ts = row["timesteps"]
    shown = ts if len(ts) <= 6 else ts[:3] + ["…"] + ts[-2:]
    print(f"{row['spacing']:9s} {row['steps']:3d} steps: {shown}")

# %%
first = {(r["spacing"], r["steps"]): r["timesteps"] for r in table}
assert first[("leading", 1)] == [1] and first[("trailing", 1)] == [999]
assert first[("leading", 4)] == [751, 501, 251, 1] and first[("trailing", 4)] == [999, 749, 499, 249]
print("✓ the tables diffusers' DDIMScheduler.set_timesteps gives (also checked against diffusers 0.30.2)")

# %% [markdown]
# ## 2. How noisy is timestep t supposed to be?
# The forward process mixes a clean latent x₀ with noise ε: x_t = √ᾱ_t · x₀ + √(1−ᾱ_t) · ε. The signal-to-noise ratio
# is SNR = ᾱ_t / (1 − ᾱ_t). With one *leading* step the UNet is told "t = 1"…

# %%
from genpercept_lessons.noise_schedules import alpha_bar, snr

for t in (0, 1, 501, 999):
    print(f"t = {t:3d}: ᾱ = {alpha_bar(scheduler, t):.5f}, SNR = {snr(scheduler, t):9.4f}, "
          f"noise std √(1−ᾱ) = {(1 - alpha_bar(scheduler, t)) ** 0.5:.4f}")
assert abs(alpha_bar(scheduler, 1) - 0.99830) < 1e-4 and abs(alpha_bar(scheduler, 999) - 0.00466) < 1e-4

# %%
import matplotlib.pyplot as plt
import numpy as np

log_snr = np.log([snr(scheduler, t) for t in range(1000)])
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(log_snr, color="0.35", lw=1.5, label="Marigold v1-0's schedule (SD2's)")
for spacing, colour in (("leading", "tab:red"), ("trailing", "tab:blue")):
    for n, size in ((4, 30), (1, 110)):
        ts = first[(spacing, n)]
        ax.scatter(ts, log_snr[ts], s=size, color=colour, zorder=3, marker="o" if n == 1 else "s",
                   label=f"{spacing}, {n} step{'s' * (n > 1)}: t = {ts}")
ax.axhline(log_snr[999], color="tab:blue", lw=0.6, ls=":")
ax.set_xlabel("timestep t")
ax.set_ylabel("log SNR = log ᾱ/(1−ᾱ)")
ax.set_title("what the UNet is told about its input's noise level", fontsize=10)
ax.legend(fontsize=7, loc="upper right")
plt.tight_layout()

# %% [markdown]
# …while what it actually receives is the starting latent, *pure* Gaussian noise (std 1). The DDIM update for a
# v-prediction model is x̂₀ = √ᾱ_t · x_t − √(1−ᾱ_t) · v̂. At t = 1 that is 0.99915 · x_t − 0.0413 · v̂: whatever the UNet
# says, the "prediction" is essentially the input noise.

# %% [markdown]
# ## 2b. One DDIM step, written out
# Each step of the loop is one call of `scheduler.step(v̂, t, x_t)`. For a v-prediction model and η = 0 (deterministic
# DDIM; Song et al., arXiv 2010.02502, eq. 12) it computes, in diffusers' `scheduling_ddim.py::DDIMScheduler.step`:
#
# - the clean latent it believes in, x̂₀ = √ᾱ_t · x_t − √(1−ᾱ_t) · v̂, and the noise it believes in, ε̂ = √(1−ᾱ_t) · x_t + √ᾱ_t · v̂;
# - the timestep it steps to, **prev_t = t − T // n** (T = 1000 training steps, n inference steps);
# - the next latent, x_prev = √ᾱ_prev · x̂₀ + √(1−ᾱ_prev) · ε̂, where ᾱ_prev = ᾱ[prev_t], or, after the last step
#   (prev_t < 0), `final_alpha_cumprod`: 1 if the config says `set_alpha_to_one`, else ᾱ₀. Marigold's says false.
#
# Written out, and checked against diffusers for four leading and four trailing steps on real UNet outputs:

# %%
from genpercept_lessons.images import images_to_tensor
from genpercept_lessons.inference import empty_text_embedding, encode_rgb
from genpercept_lessons.noise_schedules import with_spacing

scenes = load_eval_data(profile)  # held-out MiniScenes; in the full profile, NYUv2's 654 test images
rgb_latent = encode_rgb(pipe, images_to_tensor(scenes[:4]["image"], signed=True))  # [-1,1] images -> [4,4,h,w]
text = empty_text_embedding(pipe).expand(len(rgb_latent), -1, -1)      # the empty prompt, once per image


def ddim_step(v, t, x_t, n_steps, scheduler):
    """One DDIM step (η = 0) of a v-prediction model: (x_prev, x̂₀), as diffusers' DDIMScheduler.step computes it."""
    prev_t = t - scheduler.config.num_train_timesteps // n_steps
    a_t = scheduler.alphas_cumprod[t]
    a_prev = scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else scheduler.final_alpha_cumprod
    x0 = a_t.sqrt() * x_t - (1 - a_t).sqrt() * v
    eps = (1 - a_t).sqrt() * x_t + a_t.sqrt() * v
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps, x0


for spacing in ("leading", "trailing"):
    steps4 = with_spacing(scheduler, spacing)
    steps4.set_timesteps(4)
    z = torch.randn(rgb_latent.shape, generator=torch.Generator().manual_seed(0))
    for t in steps4.timesteps:
        with torch.no_grad():
            v = pipe.unet(torch.cat([rgb_latent, z], 1), t, encoder_hidden_states=text).sample
        by_hand, x0_by_hand = ddim_step(v, int(t), z, 4, steps4)
        out = steps4.step(v, t, z)
        assert torch.allclose(by_hand, out.prev_sample, atol=1e-5)
        assert torch.allclose(x0_by_hand, out.pred_original_sample, atol=1e-5)
        z = out.prev_sample
    print(f"✓ {spacing:8s} {[int(t) for t in steps4.timesteps]}: every step equals scheduler.step")

# %% [markdown]
# After the last step prev_t = t − 250 < 0, so the loop returns √ᾱ₀ · x̂₀ + √(1−ᾱ₀) · ε̂ with ᾱ₀ = 0.99915, not x̂₀
# itself. Marigold and diffusers' `MarigoldDepthPipeline` return this `prev_sample`; E2E-FT's copy of the pipeline
# (`Marigold/marigold/marigold_pipeline.py` in VisualComputingInstitute/diffusion-e2e-ft) returns `pred_original_sample`
# at the last step. For an affine-invariant depth map the difference hardly matters:

# %%
final = float(steps4.final_alpha_cumprod)
gap = float((out.prev_sample - out.pred_original_sample).norm() / out.pred_original_sample.norm())
print(f"set_alpha_to_one = {steps4.config.set_alpha_to_one}: final ᾱ = {final:.5f} (= ᾱ₀); "
      f"the last prev_sample differs from x̂₀ by {gap:.1%} of its norm")
assert not steps4.config.set_alpha_to_one and final == float(steps4.alphas_cumprod[0])

# %% [markdown]
# ## 2c. Why Marigold predicts v: x₀, ε and v at t = T
# A UNet can be trained to output the noise ε, the clean latent x₀, or the velocity v = √ᾱ · ε − √(1−ᾱ) · x₀
# (Salimans & Ho, arXiv 2202.00512, §4; SD2's 768-v model, and so Marigold, predict v). All three give an x̂₀, but an
# error δ in the output reaches x̂₀ with a different weight. At t = T = 999 (ᾱ = 0.00466):
# ε-prediction divides by √ᾱ, x̂₀ = (x_t − √(1−ᾱ) · ε̂) / √ᾱ, so δ is multiplied by √(1−ᾱ)/√ᾱ ≈ 14.6; x₀-prediction passes it
# on as it is; v-prediction multiplies it by √(1−ᾱ) ≈ 1. We ask diffusers' scheduler for each:

# %%
from diffusers import DDIMScheduler

x_T = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
delta = 0.01 * torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))  # an error in the UNet's output
gain = {}
for kind in ("epsilon", "sample", "v_prediction"):
    one = DDIMScheduler.from_config(scheduler.config, prediction_type=kind, timestep_spacing="trailing")
    one.set_timesteps(1)
    x0_right = one.step(torch.zeros_like(x_T), 999, x_T).pred_original_sample
    x0_wrong = one.step(delta, 999, x_T).pred_original_sample
    gain[kind] = float((x0_wrong - x0_right).norm() / delta.norm())
    print(f"{kind:12s}: an output error reaches x̂₀ × {gain[kind]:.3f}")
a_T = float(scheduler.alphas_cumprod[999])
assert abs(gain["epsilon"] - ((1 - a_T) / a_T) ** 0.5) < 1e-2 and abs(gain["epsilon"] - 14.6) < 0.1
assert abs(gain["sample"] - 1) < 1e-4 and abs(gain["v_prediction"] - (1 - a_T) ** 0.5) < 1e-4

# %% [markdown]
# So a one-step ε-model would have to be 15 times more accurate than a v-model to give the same x̂₀, and with a schedule
# that reaches zero SNR (ᾱ_T = 0, lesson 03) ε-prediction cannot give x̂₀ at all; this is why Lin et al. (arXiv
# 2305.08891, §3.2) pair zero terminal SNR with v-prediction.

# %% [markdown]
# ## 3. See it: one leading step returns its input
# We run the loop with the library (`keep_intermediates=True` keeps the start latent and each step's x̂₀) and correlate the
# final latent with the starting noise.

# %%
from genpercept_lessons.inference import predict_detailed

batch = scenes[:8]
runs = {}
for spacing in ("leading", "trailing"):
    runs[spacing] = predict_detailed(pipe, batch["image"], steps=1, spacing=spacing,
                                     generator=torch.Generator().manual_seed(0), keep_intermediates=True)


def correlation(a, b):
    a, b = a.flatten().double(), b.flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


for spacing, run in runs.items():
    print(f"{spacing:8s}: timestep {run.timesteps}, corr(x̂₀, start noise) = "
          f"{correlation(run.x0_latents[0], run.start_latents):.4f}")
assert correlation(runs["leading"].x0_latents[0], runs["leading"].start_latents) >= 0.99
assert abs(correlation(runs["trailing"].x0_latents[0], runs["trailing"].start_latents)) < 0.5

# %% [markdown]
# With four steps, what does the model believe the clean depth is after each step (x̂₀, decoded)? Leading spacing starts
# at t = 751 with pure noise, so its first belief is wrong and later steps must repair it; trailing starts at t = 999
# and gets the layout right at once.

# %%
four = {sp: predict_detailed(pipe, batch["image"][:1], steps=4, spacing=sp, generator=torch.Generator().manual_seed(0),
                             keep_intermediates=True) for sp in ("leading", "trailing")}
fig, axes = plt.subplots(2, 5, figsize=(10, 4.3))
for r, (sp, run) in enumerate(four.items()):
    for k, (t, x0) in enumerate(zip(run.timesteps, run.x0_decoded)):
        axes[r, k].imshow(x0[0], cmap="Spectral")
        axes[r, k].set_title(f"{sp}: x̂₀ at t = {t}", fontsize=8)
    axes[r, 4].imshow(batch["depth"][0], cmap="Spectral")
    axes[r, 4].set_title("ground truth (depth)", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout()

# %%
from genpercept_lessons.viz import prediction_grid

fig = prediction_grid(batch["image"], {"ground truth": batch["depth"], "leading, 1 step": runs["leading"].prediction,
                                        "trailing, 1 step": runs["trailing"].prediction})

# %% [markdown]
# ## 4. The metric collapse
# On held-out scenes, with Marigold's protocol (least-squares scale and shift per image, then AbsRel and δ1). In the
# full profile these are NYUv2's 654 test images under its evaluation protocol (Eigen crop, depth in [1e-3, 10] m) at
# the images' own resolution, as Marigold's `script/eval/11_infer_nyu.sh` runs it (`profile.eval_settings`); E2E-FT's
# Fig. 5 plots the result there: one leading step far above one trailing step's 5.7 % (Table 1; Fig. 2c shows its
# output as noise).

# %%
from genpercept_lessons.evaluation import evaluate

N = 100 if profile.is_mini else profile.eval_scenes
results = {s: evaluate(pipe, scenes, n=N, steps=1, spacing=s, **profile.eval_settings)["metrics"]
           for s in ("leading", "trailing")}
for s, m in results.items():
    print(f"{s:8s} 1 step: AbsRel {m['abs_rel']:.3f}, δ1 {m['delta1']:.3f}")
check_claim(profile, results["leading"]["abs_rel"] >= 2 * results["trailing"]["abs_rel"],
            "one leading step has at least twice the AbsRel of one trailing step (E2E-FT Fig. 5)")
check_claim(profile, results["leading"]["delta1"] < results["trailing"]["delta1"],
            "one leading step has a lower δ1 than one trailing step")

# %% [markdown]
# ## 5. Explore
# Pick a spacing, a number of steps and a scene. The printout compares, at every step, the noise level the scheduler
# *assumes* for that timestep, √(1−ᾱ_t), with the noise *actually* in the UNet's input (the RMS distance from the
# correctly scaled clean latent). With leading spacing they disagree most at the first step; with trailing they agree.

# %%
from genpercept_lessons.widgets import noise_levels, timestep_explorer

explorer = timestep_explorer(pipe, scenes)

# %%
row = scenes[0]
lead, _ = noise_levels(pipe, row["image"], row["depth"], row["mask"], "leading", 1)
trail, _ = noise_levels(pipe, row["image"], row["depth"], row["mask"], "trailing", 1)
print("leading :", {k: round(v, 3) for k, v in lead[0].items()})
print("trailing:", {k: round(v, 3) for k, v in trail[0].items()})
assert lead[0]["actual_noise"] > 10 * lead[0]["expected_noise"]          # told "almost clean", given pure noise
assert abs(trail[0]["actual_noise"] - trail[0]["expected_noise"]) < 0.2  # told "pure noise", given pure noise

# %% [markdown]
# ## Key points
# - `timestep_spacing="leading"` with one step feeds t = 1 (ᾱ ≈ 0.998) to a UNet whose input is pure noise; the DDIM
#   update then returns that noise almost unchanged (correlation ≈ 1).
# - Nothing is wrong with the weights: the same checkpoint works when the timesteps match the input's noise level
#   (lesson 03).
# - Always print `scheduler.timesteps` before trusting a few-step result.

# %% [markdown]
# ## Exercises
# Each exercise has a checker. Run a cell as it is and the checker says "not attempted"; replace `____` with your
# code and run it again: ✓ means correct, ✗ says what differs (shape, range or value, yours and the expected one).
# `ex.q1.hint()` gives a hint (call it again for the next), `ex.q1.solution()` shows a solution.

# %%
from genpercept_lessons.exercises import ____, lesson

ex = lesson(2)


# %% [markdown]
# **Exercise 1 (implement it yourself).** Reproduce diffusers' "leading" timesteps from the formula, without a
# scheduler: `leading_timesteps(1)` must be `[1]`, `leading_timesteps(4)` `[751, 501, 251, 1]`.

# %%
def leading_timesteps(num_steps, num_train_timesteps=1000, steps_offset=1):
    """The timesteps 'leading' spacing feeds the UNet, largest first (a list of ints)."""
    return ____  # your code here


ex.q1.check(leading_timesteps)
# ex.q1.hint()

# %% [markdown]
# **Exercise 2.** How much signal does the UNet expect when it is told t = 1? Read ᾱ₁ off the pipeline's scheduler.

# %%
alpha_bar_1 = ____  # your code here

ex.q2.check(alpha_bar_1)
# ex.q2.hint()

# %% [markdown]
# **Exercise 3 (transfer).** Stable Diffusion 1.x predicts the noise ε, not v. Write one DDIM step (η = 0) for such a
# model: from ε̂, t and x_t, return `(x_prev, x0_hat)` exactly as diffusers' `DDIMScheduler.step` would, with
# `alphas_cumprod` ᾱ[0…999] and the config flag `set_alpha_to_one`. The checker tries 1, 3, 4 and 7 steps (1000 is not
# divisible by 3 or 7) and both values of the flag.

# %%
def ddim_step_epsilon(eps, t, x_t, num_steps, alphas_cumprod, set_alpha_to_one):
    """eps, x_t: tensors [B,4,h,w]; t: int; -> (x_prev, x0_hat), both like x_t."""
    return ____  # your code here


ex.q3.check(ddim_step_epsilon)
# ex.q3.hint()

# %% [markdown]
# ## Further reading
# - Garcia et al., *Fine-Tuning Image-Conditional Diffusion Models is Easier than You Think*, arXiv 2409.11355, §3.2 and
#   Table A-1.
# - Lin et al., *Common Diffusion Noise Schedules and Sample Steps are Flawed*, WACV 2024 (trailing spacing, zero SNR).
# - CompVis/depth-fm issue #3; diffusers `scheduling_ddim.py::set_timesteps`.
