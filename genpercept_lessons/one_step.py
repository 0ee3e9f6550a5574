"""GenPercept's deterministic one-step paradigm (Xu et al., ICLR 2025; GenPercept, arXiv 2403.06090): β = 1, so ᾱ ≡ 0 and x̂0 = −v̂.

The "noisy" input is the RGB latent itself (a 4-channel UNet, no concatenation); one UNet pass; the output is
decoded either by the frozen VAE (with gradients, as in E2E-FT) or by a small DPT-style head on UNet decoder
features, and trained with a task loss (affine-invariant L1 for depth, cross-entropy for segmentation).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from genpercept_lessons.images import images_to_tensor

__all__ = ["DECODERS", "ONE_STEP_TASKS", "beta_one_scheduler", "rgb_only_unet", "OneStepModel", "train_one_step",
           "predict_one_step"]

DECODERS = ("vae", "head")
ONE_STEP_TASKS = {"depth": 1, "segmentation": 5}  # output channels of the head


def beta_one_scheduler(num_train_timesteps: int = 1000):
    """A DDIM scheduler whose betas are all 1: ᾱ_t = 0 for every t (the UNet's time embedding still differs). Introduced in notebook 07."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=num_train_timesteps, trained_betas=np.ones(num_train_timesteps),
                         prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False)


def rgb_only_unet(unet):
    """A 4-input-channel copy of an 8-channel Marigold UNet: same weights, ``conv_in`` keeps its RGB-latent half. Introduced in notebook 07."""
    from diffusers import UNet2DConditionModel

    if unet.config.in_channels != 8:
        raise ValueError(f"rgb_only_unet: expected an 8-channel Marigold UNet, got in_channels={unet.config.in_channels}")
    new = UNet2DConditionModel.from_config({**unet.config, "in_channels": 4})
    state = {k: v.clone() for k, v in unet.state_dict().items()}
    state["conv_in.weight"] = state["conv_in.weight"][:, :4]
    new.load_state_dict(state)
    return new.to(next(unet.parameters()).device)


@dataclass
class OneStepModel:
    """A one-step perception model: 4-channel UNet + frozen VAE + (for ``decoder="head"``) a DPT-style head."""

    unet: object
    vae: object
    text: object  # the empty-prompt embedding [1, S, C]
    task: str
    decoder: str
    head: object = None
    losses: list = field(default_factory=list)
    seconds: float = 0.0

    def forward(self, rgb):
        """rgb [B,3,H,W] in [-1,1] -> depth [B,H,W] (affine-invariant) or class logits [B,5,H,W]."""
        import torch

        from genpercept_lessons.heads import UNetFeatures

        with torch.no_grad():
            latent = self.vae.encode(rgb).latent_dist.mode() * self.vae.config.scaling_factor
        text = self.text.expand(len(rgb), -1, -1)
        with UNetFeatures(self.unet) as feats:
            # with β = 1 every t has ᾱ = 0, but the UNet's time embedding still sees t: train and predict at one t
            v = self.unet(latent, 999, encoder_hidden_states=text).sample
        if self.decoder == "vae":
            image = self.vae.decode(-v / self.vae.config.scaling_factor).sample  # x̂0 = −v̂, decoded with gradients
            return image.mean(1)
        out = self.head(feats.maps)
        return out[:, 0] if self.task == "depth" else out


def _trainable(model: OneStepModel):
    params = list(model.unet.parameters())
    if model.head is not None:
        params += list(model.head.parameters())
    return params


def train_one_step(pipe, train_data, task: str = "depth", decoder: str = "vae", steps: int = 60,
                   batch_size: int = 16, lr: float = 3e-4, seed: int = 0, progress: bool = True) -> OneStepModel:
    """Fine-tune a one-step model from ``pipe``'s (Marigold) UNet on ``train_data`` (course schema). Introduced in notebook 07.

    depth: affine-invariant L1 on the decoded map; segmentation (decoder "head" only): cross-entropy over
    floor/wall/ceiling/sphere/box with label 255 ignored. AdamW, warm-up + exponential decay, grad-norm clip 1.
    """
    import torch
    from tqdm.auto import tqdm

    from genpercept_lessons.finetuning import training_batch
    from genpercept_lessons.heads import DPTHead
    from genpercept_lessons.inference import empty_text_embedding
    from genpercept_lessons.losses import affine_invariant_l1
    from genpercept_lessons.lr_schedules import iter_exponential
    from genpercept_lessons.mini.scenes import IGNORE_LABEL
    from genpercept_lessons.runtime import step_generator

    if task not in ONE_STEP_TASKS:
        raise ValueError(f"train_one_step: `task` must be one of {tuple(ONE_STEP_TASKS)}, got {task!r}")
    if decoder not in DECODERS:
        raise ValueError(f"train_one_step: `decoder` must be one of {DECODERS}, got {decoder!r}")
    if task == "segmentation" and decoder == "vae":
        raise ValueError("train_one_step: segmentation needs decoder='head' (the VAE decodes images, not class scores)")
    if not isinstance(steps, int) or steps < 2 or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"train_one_step: need steps >= 2 and batch_size >= 1, got {steps!r}, {batch_size!r}")
    torch.manual_seed(seed)
    unet = rgb_only_unet(pipe.unet).train()
    head = None
    if decoder == "head":  # up-block outputs carry the block widths in reverse; the head upsamples by the VAE factor
        head = DPTHead(list(reversed(unet.config.block_out_channels)), ONE_STEP_TASKS[task],
                       upsample=2 ** (len(pipe.vae.config.block_out_channels) - 1))
    model = OneStepModel(unet, pipe.vae.requires_grad_(False), empty_text_embedding(pipe), task, decoder, head)
    opt = torch.optim.AdamW(_trainable(model), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: iter_exponential(s, steps, max(1, steps // 10), 0.05))
    t0 = time.time()
    for step in tqdm(range(steps), desc=f"one-step {task} ({decoder})", disable=not progress):
        batch = training_batch([train_data], [1.0], batch_size, step_generator(seed, 0, step))
        out = model.forward(batch["rgb"])
        if task == "depth":
            loss = affine_invariant_l1(out, batch["depth"], batch["depth_mask"])
        else:
            loss = torch.nn.functional.cross_entropy(out, batch["label"].long(), ignore_index=IGNORE_LABEL)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(_trainable(model), 1.0)
        opt.step()
        sched.step()
        model.losses.append(loss.item())
    model.seconds = time.time() - t0
    unet.eval().requires_grad_(False)
    if head is not None:
        head.eval().requires_grad_(False)
    return model


def predict_one_step(model: OneStepModel, images, batch_size: int = 50) -> np.ndarray:
    """images uint8 [N,H,W,3] -> depth [N,H,W] (affine-invariant) or labels uint8 [N,H,W]. Introduced in notebook 07."""
    import torch

    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"predict_one_step: `images` must be uint8 [N,H,W,3], got {arr.dtype} {arr.shape}")
    outs = []
    with torch.no_grad():
        for i in range(0, len(arr), batch_size):
            rgb = images_to_tensor(arr[i:i + batch_size], signed=True)
            out = model.forward(rgb)
            outs.append(out.argmax(1).to(torch.uint8) if model.task == "segmentation" else out)
    return torch.cat(outs).numpy()
