# %% [markdown]
# # 07 · GenPercept's one-step paradigm: β = 1, a custom decoder head, and another dense task
#
# **What you will learn**
# - GenPercept's deterministic view: with β = 1 every ᾱ_t is 0, the "noisy" input *is* the RGB latent (4 input
#   channels, no concatenation) and the prediction is x̂₀ = −v̂; why the leading/trailing bug cannot arise there;
# - how this compares with E2E-FT's t = T, zero-noise formulation (lesson 05);
# - decoding with a small DPT-style **head on the UNet's decoder features** instead of the VAE decoder;
# - a task the VAE cannot decode: semantic segmentation of MiniScenes (floor / wall / ceiling / sphere / box), mIoU.
#
# **What you need**: lessons 01–05. Mini profile: ~2 min on a 2-core CPU. Full profile: a GPU (the same code runs on
# a Marigold/SD checkpoint; GenPercept itself starts from SD 2.1).
#
# **Time**: teaching ~30 min · exercises ~15 min · run time in the mini profile on a 2-core CPU (measured by `make
# spread`, 2026-12-04): 1.2 min · on a GPU: not measured yet.
#
# Sources: Xu et al., "What Matters When Repurposing Diffusion Models for General Dense Perception Tasks?"
# (GenPercept, arXiv 2403.06090, ICLR 2025), repo `aim-uofa/GenPercept`.

# %%
import numpy as np
import torch

from genpercept_lessons import get_profile, load_marigold, load_miniscenes
from genpercept_lessons.claims import check_claim
from genpercept_lessons.runtime import set_seed

PROFILE = None  # None: $GENPERCEPT_PROFILE, else "mini"
profile = get_profile(PROFILE)
print(profile.describe())
set_seed(0)
pipe = load_marigold(profile, "depth")
train, test = load_miniscenes("train"), load_miniscenes("test")  # segmentation labels exist only in MiniScenes
N = 100
rows = test[:N]

# %% [markdown]
# ## 1. β = 1: every timestep has the same noise level
# A diffusion schedule mixes x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε. GenPercept sets every β_t = 1, so ᾱ_t = ∏(1−β) = 0 for all t:
# x_t is pure "noise", and GenPercept chooses that noise to be the **RGB latent**. The UNet then sees only the RGB
# latent (4 channels), and with v-prediction x̂₀ = √ᾱ·x_t − √(1−ᾱ)·v̂ = −v̂. We build such a scheduler with diffusers
# and look at what leading and trailing spacing feed it.

# %%
from diffusers import DDIMScheduler

from genpercept_lessons.one_step import beta_one_scheduler

beta_one = beta_one_scheduler()
print("ᾱ_t for t = 0, 1, 500, 999:", [float(beta_one.alphas_cumprod[t]) for t in (0, 1, 500, 999)])
for spacing in ("leading", "trailing"):
    s = DDIMScheduler.from_config(beta_one.config, timestep_spacing=spacing)
    s.set_timesteps(1)
    t = s.timesteps[0]
    v = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    x0 = s.step(v, t, torch.randn(1, 4, 4, 4)).pred_original_sample
    print(f"{spacing:8s}: t = {int(t):3d}, ᾱ_t = {float(s.alphas_cumprod[t]):.1f}, x̂0 == −v̂: {torch.allclose(x0, -v)}")
    assert float(s.alphas_cumprod[t]) == 0.0 and torch.allclose(x0, -v)
marigold_abar = {sp: float(pipe.scheduler.alphas_cumprod[ts]) for sp, ts in (("leading", 1), ("trailing", 999))}
print("Marigold's schedule instead:", {k: round(v, 4) for k, v in marigold_abar.items()})
assert marigold_abar["leading"] > 0.99 and marigold_abar["trailing"] < 0.01  # there, the timestep matters

# %% [markdown]
# Whatever timestep a spacing picks, ᾱ is 0 and x̂₀ = −v̂: as far as the *schedule* goes there is no "wrong" timestep,
# so the bug of lesson 02 cannot arise. The UNet is another matter: its time embedding still sees t, and a UNet gives
# different outputs at t = 1 and t = 999. GenPercept's trainer draws a random t in [0, 1000) per sample unless the
# config fixes one (`model.fix_timesteps`), and its pipeline feeds `scheduler.timesteps`, or that fixed t
# (aim-uofa/GenPercept, `src/trainer/genpercept_trainer.py`, `genpercept/genpercept_pipeline.py`). This course trains
# and predicts at t = 999 only (`one_step.OneStepModel`), so its UNet never meets another t.
#
# E2E-FT reaches almost the same place from the other side: it keeps Marigold's schedule but
# fixes t = 999 and replaces the noise by zeros, so x̂₀ = −√(1−ᾱ₉₉₉)·v̂ = −0.9977·v̂ and the RGB latent enters through
# the concatenated channels. GenPercept feeds the RGB latent *as* the noisy sample (no concatenation, 4 channels).
#
# ## 2. A one-step model from Marigold's UNet
# We keep the mini-Marigold UNet's weights and drop the target half of its 8-channel input convolution
# (`rgb_only_unet`), then fine-tune end to end: RGB latent → UNet (one pass) → x̂₀ = −v̂ → decoder → loss.
# Two decoders for depth:
# - **VAE**: the frozen VAE decoder with gradients (as E2E-FT);
# - **head**: a small DPT-style head that fuses the UNet's up-block outputs (coarse to fine, residual convs) and
#   upsamples to the image (GenPercept's "customized decoder", arXiv 2403.06090).

# %%
from genpercept_lessons.heads import UNetFeatures
from genpercept_lessons.one_step import rgb_only_unet

unet4 = rgb_only_unet(pipe.unet)
print("conv_in:", pipe.unet.conv_in.weight.shape, "->", unet4.conv_in.weight.shape)
with UNetFeatures(unet4) as feats, torch.no_grad():
    unet4(torch.zeros(1, 4, 16, 16), 999, encoder_hidden_states=torch.zeros(1, 2, unet4.config.cross_attention_dim))
print("decoder features (coarse -> fine):", [tuple(f.shape[1:]) for f in feats.maps])
assert unet4.conv_in.weight.shape[1] == 4
with torch.no_grad():  # the schedule ignores t when β = 1; the UNet's time embedding does not
    probe, empty = torch.zeros(1, 4, 16, 16), torch.zeros(1, 2, unet4.config.cross_attention_dim)
    t_gap = (unet4(probe, 1, encoder_hidden_states=empty).sample - unet4(probe, 999, encoder_hidden_states=empty).sample)
print(f"same input, t = 1 vs t = 999: the UNet's outputs differ by {t_gap.abs().mean():.3f} on average")
check_claim(profile, t_gap.abs().mean() > 1e-3, "the UNet's output depends on the timestep it is given")

# %%
from genpercept_lessons.metrics import depth_metrics, mean_iou
from genpercept_lessons.one_step import predict_one_step, train_one_step

STEPS, BATCH = (60, 16) if profile.is_mini else ((2, 1) if profile.rehearsal else (500, 8))  # rehearsal: a CPU run
models, results = {}, {}
for decoder in ("vae", "head"):
    models[decoder] = train_one_step(pipe, train, "depth", decoder, steps=STEPS, batch_size=BATCH)
    pred = predict_one_step(models[decoder], rows["image"])
    results[decoder] = depth_metrics(pred, rows["depth"], rows["mask"])
    print(f"depth, {decoder:4s} decoder: AbsRel {results[decoder]['abs_rel']:.4f}, δ1 {results[decoder]['delta1']:.3f}, "
          f"output {pred.shape[1]}×{pred.shape[2]}, {models[decoder].seconds:.0f} s")
constant = depth_metrics(np.ones_like(rows["depth"]), rows["depth"], rows["mask"])
print(f"constant prediction (after alignment): AbsRel {constant['abs_rel']:.4f}")
for decoder in ("vae", "head"):
    check_claim(profile, results[decoder]["abs_rel"] < 0.6 * constant["abs_rel"],
                f"one-step depth with the {decoder} decoder beats a constant map by 40 %")

# %% [markdown]
# Side by side: both decoders output the image resolution (the head upsamples ×4, the VAE's factor). The VAE decoder
# starts from a network that already knows how to paint depth maps; the head starts from random weights and must
# learn it in the same few steps, which is why at this budget it is usually behind. GenPercept's argument for heads
# is flexibility: any number of output channels, any task.
#
# ## 3. Another dense task: segmentation with a head
# The VAE can only decode images, but a head can output class scores. We train the same one-step model with a
# 5-class head and cross-entropy (pixels without a label, windows, are ignored) and score mean IoU. The trivial
# baseline predicts, at each pixel, the training set's most frequent class there.

# %%
from genpercept_lessons.mini.scenes import IGNORE_LABEL, LABELS

seg = train_one_step(pipe, train, "segmentation", "head", steps=STEPS, batch_size=BATCH)
labels_pred = predict_one_step(seg, rows["image"])
seg_scores = mean_iou(labels_pred, rows["label"], len(LABELS), IGNORE_LABEL)
sample = train[:500]["label"].astype(np.int64)
counts = np.stack([(sample == k).sum(0) for k in range(len(LABELS))])  # [classes, H, W]
majority = np.broadcast_to(counts.argmax(0), rows["label"].shape)
base_scores = mean_iou(majority, rows["label"], len(LABELS), IGNORE_LABEL)
print(f"{'class':10s}{'IoU (head)':>12s}{'IoU (baseline)':>16s}")
for name, a, b in zip(LABELS, seg_scores["iou"], base_scores["iou"]):
    print(f"{name:10s}{a:12.3f}{b:16.3f}")
print(f"{'mIoU':10s}{seg_scores['miou']:12.3f}{base_scores['miou']:16.3f}   ({seg.seconds:.0f} s of training)")
check_claim(profile, seg_scores["miou"] > base_scores["miou"] + 0.1,
            "the segmentation head beats the per-pixel majority label by 0.1 mIoU")

# %%
from genpercept_lessons.viz import add_label_legend, colorize_labels, prediction_grid

k = 6
fig = prediction_grid(rows["image"][:k], {"depth, VAE decoder": predict_one_step(models["vae"], rows["image"][:k]),
                                          "depth, head": predict_one_step(models["head"], rows["image"][:k])})
import matplotlib.pyplot as plt

fig2, axes = plt.subplots(2, k, figsize=(2 * k, 4))
for i in range(k):
    axes[0, i].imshow(colorize_labels(rows["label"][i]))
    axes[1, i].imshow(colorize_labels(labels_pred[i]))
    axes[0, i].axis("off")
    axes[1, i].axis("off")
axes[0, 0].set_title("labels", loc="left")
axes[1, 0].set_title("head prediction", loc="left")
add_label_legend(fig2)

# %% [markdown]
# ## Key points
# - β = 1 makes every ᾱ_t zero: the input is the RGB latent itself and x̂₀ = −v̂, a deterministic one-step model in
#   which the timestep cannot be "wrong"; E2E-FT's t = T with zero noise is the same idea on Marigold's schedule.
# - Once the model is one deterministic pass, the decoder is a design choice: the frozen VAE (images only) or a
#   head on the UNet's multi-level features (any output, e.g. class scores).
# - The same fine-tuning loop serves depth and segmentation; only the head and the loss change.
#
# ## Exercises
# Each exercise has a checker. Run a cell as it is and the checker says "not attempted"; replace `____` with your
# code and run it again: ✓ means correct, ✗ says what differs (shape, range or value, yours and the expected one).
# `ex.q1.hint()` gives a hint (call it again for the next), `ex.q1.solution()` shows a solution.

# %%
from genpercept_lessons.exercises import ____, lesson

ex = lesson(7)


# %% [markdown]
# **Exercise 1 (transfer).** `rgb_only_unet` dropped half of an 8-channel `conv_in`. Marigold went the other way: SD's
# UNet takes 4 channels, Marigold's takes cat(RGB latent, target latent), 8. Build the 8-channel layer from a 4-channel
# one so that, fed cat(x, x), it gives exactly the old layer's output on x (prs-eth/Marigold, `_replace_unet_conv_in`;
# E2E-FT issue #3 asks the same for SD2).

# %%
def widen_conv_in(conv):
    """conv: nn.Conv2d with 4 input channels -> a new nn.Conv2d with 8 (the old layer unchanged)."""
    return ____  # your code here


ex.q1.check(widen_conv_in)
# ex.q1.hint()

# %% [markdown]
# **Open questions.** (1) Train the depth head for 3× more steps: does it catch up with the VAE decoder? (2) Give the head only the
# finest feature map (edit `DPTHead`'s input list): how much does mIoU drop? (3) GenPercept's depth loss mixes
# MSE + 0.5·scale-shift-invariant + 2·gradient matching (GenPercept, arXiv 2403.06090): add a gradient-matching term to the depth head.
#
# ## Further reading
# - Xu et al., GenPercept (arXiv 2403.06090), §3 (one-step deterministic paradigm) and the ablations of the decoder.
# - Ranftl et al., "Vision Transformers for Dense Prediction" (DPT, ICCV 2021): the reassemble-and-fuse head.
# - Garcia et al., E2E-FT (arXiv 2409.11355), addendum comparing with GenPercept.
