# %% [markdown]
# # 02 · The leading-timestep bug
#
# **What you will learn**
# - which timesteps diffusers' DDIM scheduler feeds the UNet for 1, 2, 4, 10 and 50 steps under each `timestep_spacing`;
# - why one "leading" step is a contradiction: the input is pure noise but the UNet is told it is at t = 1, a nearly clean
#   latent (ᾱ₁ ≈ 0.998);
# - that the model then hands the noise back almost unchanged, and what that does to depth metrics.
#
# **What you need**: lesson 01. Mini profile: ~40 s on a laptop CPU. Full profile: a GPU.
#
# **Time**: teaching ~30 min · exercises ~20 min · run time in the mini profile on a 2-core CPU (measured by `make
# course`): 0.3 min · on a GPU: not measured yet.
#
# This is the bug found by Garcia et al. (E2E-FT, arXiv 2409.11355, §3.2) and earlier in CompVis/depth-fm#3: Marigold
# checkpoints looked useless at one step only because of how the timesteps were spaced.

# %%
import torch

from genpercept_lessons import get_profile, load_marigold, load_miniscenes
from genpercept_lessons.runtime import set_seed

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

# %% [markdown]
# …while what it actually receives is the starting latent, *pure* Gaussian noise (std 1). The DDIM update for a
# v-prediction model is x̂₀ = √ᾱ_t · x_t − √(1−ᾱ_t) · v̂. At t = 1 that is 0.99915 · x_t − 0.0413 · v̂: whatever the UNet
# says, the "prediction" is essentially the input noise.

# %% [markdown]
# ## 3. See it: one leading step returns its input
# We run the loop with the library (`keep_intermediates=True` keeps the start latent and each step's x̂₀) and correlate the
# final latent with the starting noise.

# %%
from genpercept_lessons.inference import predict_detailed

scenes = load_miniscenes("test")
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

# %%
from genpercept_lessons.viz import prediction_grid

fig = prediction_grid(batch["image"], {"ground truth": batch["depth"], "leading, 1 step": runs["leading"].prediction,
                                        "trailing, 1 step": runs["trailing"].prediction})

# %% [markdown]
# ## 4. The metric collapse
# On held-out scenes, with Marigold's protocol (least-squares scale and shift per image, then AbsRel and δ1):

# %%
from genpercept_lessons.evaluation import evaluate

N = 100 if profile.is_mini else 20
results = {s: evaluate(pipe, scenes, n=N, steps=1, spacing=s)["metrics"] for s in ("leading", "trailing")}
for s, m in results.items():
    print(f"{s:8s} 1 step: AbsRel {m['abs_rel']:.3f}, δ1 {m['delta1']:.3f}")
assert results["leading"]["abs_rel"] >= 2 * results["trailing"]["abs_rel"]
assert results["leading"]["delta1"] < results["trailing"]["delta1"]

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
# ## Further reading
# - Garcia et al., *Fine-Tuning Image-Conditional Diffusion Models is Easier than You Think*, arXiv 2409.11355, §3.2 and
#   Table A-1.
# - Lin et al., *Common Diffusion Noise Schedules and Sample Steps are Flawed*, WACV 2024 (trailing spacing, zero SNR).
# - CompVis/depth-fm issue #3; diffusers `scheduling_ddim.py::set_timesteps`.
