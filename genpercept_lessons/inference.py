"""The Marigold inference loop written out on a pipeline's own parts (VAE, UNet, scheduler, empty-text embedding).

It does what ``MarigoldDepthPipeline.__call__`` does (Marigold paper §3; diffusers `pipeline_marigold_depth.py`), with the knobs the lessons turn:
timestep spacing, number of steps, Gaussian or zero start noise, ensembling, and the per-step x̂0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genpercept_lessons.images import images_to_tensor
from genpercept_lessons.noise_schedules import SPACINGS, with_spacing
from genpercept_lessons.tasks import pipeline_task

__all__ = ["NOISE_TYPES", "Prediction", "encode_empty_prompt", "empty_text_embedding", "encode_rgb", "predict", "predict_detailed"]

NOISE_TYPES = ("gaussian", "zeros")


@dataclass
class Prediction:
    """What ``predict_detailed`` returns: the final prediction and, per step, the timestep and decoded x̂0."""

    prediction: np.ndarray  # depth [N,H,W] in [0,1] or unit normals [N,H,W,3]
    timesteps: list[int] = field(default_factory=list)
    start_latents: object = None  # torch [N*E,4,h,w]: the noise the loop started from
    step_inputs: list = field(default_factory=list)  # per step, torch [N*E,4,h,w]: the latent fed to the UNet
    x0_latents: list = field(default_factory=list)  # per step, torch [N*E,4,h,w]
    x0_decoded: list = field(default_factory=list)  # per step, numpy like `prediction` but per ensemble member


def encode_empty_prompt(tokenizer, text_encoder):
    """The empty-prompt embedding exactly as the Marigold pipeline builds it: ``[1, 2, hidden]``. Introduced in notebook 01.

    Two tokens, BOS and EOS: the pipeline tokenizes "" with ``padding="do_not_pad"``.
    """
    import torch

    ids = tokenizer("", padding="do_not_pad", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        return text_encoder(ids.to(text_encoder.device))[0]


def empty_text_embedding(pipe):
    """The empty-prompt embedding the pipeline conditions on, computed exactly as the pipeline does ([1, 2, hidden]). Introduced in notebook 01."""
    if pipe.empty_text_embedding is None:
        pipe.empty_text_embedding = encode_empty_prompt(pipe.tokenizer, pipe.text_encoder)
    return pipe.empty_text_embedding


def encode_rgb(pipe, image):
    """[-1,1] images [N,3,H,W] -> RGB latents [N,4,h,w]: the VAE posterior mean × scaling factor. Introduced in notebook 01."""
    import torch

    with torch.no_grad():
        return pipe.vae.encode(image).latent_dist.mode() * pipe.vae.config.scaling_factor


def _decode(pipe, latents):
    import torch

    with torch.no_grad():
        return pipe.decode_prediction(latents)  # depth [B,1,H,W] in [0,1] / normals [B,3,H,W] unit


def predict_detailed(pipe, images, steps: int = 1, spacing: str = "trailing", noise: str = "gaussian",
                     ensemble: int = 1, generator=None, latents=None, batch_size: int | None = None,
                     processing_resolution: int | None = None, keep_intermediates: bool = False) -> Prediction:
    """Run Marigold's loop on ``images`` (uint8 [N,H,W,3]); see ``predict``. Introduced in notebook 01.

    With ``keep_intermediates`` the result also holds each step's input latent and x̂0.
    """
    import torch

    task = pipeline_task(pipe)
    if spacing not in SPACINGS:
        raise ValueError(f"predict: `spacing` must be one of {SPACINGS}, got {spacing!r}")
    if noise not in NOISE_TYPES:
        raise ValueError(f"predict: `noise` must be one of {NOISE_TYPES}, got {noise!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"predict: `steps` must be a positive int, got {steps!r}")
    if not isinstance(ensemble, int) or ensemble < 1:
        raise ValueError(f"predict: `ensemble` must be a positive int, got {ensemble!r}")
    if latents is not None and (generator is not None or noise == "zeros"):
        raise ValueError("predict: pass `latents` alone (not with `generator` or noise='zeros')")
    image = images_to_tensor(images).to(pipe.device, pipe.dtype)
    n = image.shape[0]
    res = processing_resolution if processing_resolution is not None else pipe.default_processing_resolution
    if res is None:
        res = 0  # 0 = the images' own resolution (diffusers' convention)
    image, padding, original = pipe.image_processor.preprocess(image * 1.0, res, "bilinear", pipe.device, pipe.dtype)
    rgb = encode_rgb(pipe, image).repeat_interleave(ensemble, dim=0)  # [N*E,4,h,w]
    if latents is not None:
        start = torch.as_tensor(latents, device=pipe.device, dtype=pipe.dtype)
        if start.shape != rgb.shape:
            raise ValueError(f"predict: `latents` must have shape {tuple(rgb.shape)} (N*ensemble, 4, h, w), "
                             f"got {tuple(start.shape)}")
    elif noise == "zeros":
        start = torch.zeros_like(rgb)
    else:
        from diffusers.utils.torch_utils import randn_tensor

        start = randn_tensor(rgb.shape, generator=generator, device=pipe.device, dtype=pipe.dtype)
    text = empty_text_embedding(pipe)
    scheduler = with_spacing(pipe.scheduler, spacing)
    bs = batch_size or rgb.shape[0]
    out = Prediction(prediction=None, start_latents=start)
    finals, x0_steps, input_steps = [], [], []
    with torch.no_grad():
        for i in range(0, rgb.shape[0], bs):
            z, cond = start[i:i + bs], rgb[i:i + bs]
            scheduler.set_timesteps(steps, device=pipe.device)
            per_step, inputs = [], []
            for t in scheduler.timesteps:
                v = pipe.unet(torch.cat([cond, z], dim=1), t, encoder_hidden_states=text.expand(len(z), -1, -1)).sample
                result = scheduler.step(v, t, z, generator=generator)
                if keep_intermediates:
                    inputs.append(z)
                    per_step.append(result.pred_original_sample)
                z = result.prev_sample
            finals.append(z)
            x0_steps.append(per_step)
            input_steps.append(inputs)
        out.timesteps = [int(t) for t in scheduler.timesteps]
        final = torch.cat(finals)
        pred = pipe.image_processor.unpad_image(_decode(pipe, final), padding)
        if keep_intermediates:
            for k in range(steps):
                lat = torch.cat([b[k] for b in x0_steps])
                out.x0_latents.append(lat)
                out.step_inputs.append(torch.cat([b[k] for b in input_steps]))
                dec = pipe.image_processor.unpad_image(_decode(pipe, lat), padding)
                out.x0_decoded.append(_to_numpy(dec, task))
        if ensemble > 1:
            pred = pred.reshape(n, ensemble, *pred.shape[1:])
            if task == "depth":
                pred = torch.cat([pipe.ensemble_depth(pred[j], pipe.scale_invariant, pipe.shift_invariant)[0]
                                  for j in range(n)])
            else:
                pred = torch.cat([pipe.ensemble_normals(pred[j], False)[0] for j in range(n)])
        pred = pipe.image_processor.resize_antialias(pred, original, "bilinear", is_aa=False)
        if task == "normals":
            pred = pipe.normalize_normals(pred)
    out.prediction = _to_numpy(pred, task)
    return out


def _to_numpy(pred, task):
    arr = pred.float().cpu().numpy()
    return arr[:, 0] if task == "depth" else arr.transpose(0, 2, 3, 1)


def predict(pipe, images, steps: int = 1, spacing: str = "trailing", noise: str = "gaussian", ensemble: int = 1,
            generator=None, latents=None, batch_size: int | None = None,
            processing_resolution: int | None = None) -> np.ndarray:
    """Marigold inference written out: depth [N,H,W] in [0,1], or unit normals [N,H,W,3] for a normals pipeline.

    images uint8 [N,H,W,3]; ``spacing`` "leading" | "trailing" | "linspace"; ``noise`` "gaussian" (from
    ``generator``) | "zeros"; ``ensemble`` > 1 aligns members without ground truth and takes the median (depth) or the
    member closest to the mean normal (normals), as diffusers does. Introduced in notebook 01.
    """
    return predict_detailed(pipe, images, steps, spacing, noise, ensemble, generator, latents, batch_size,
                            processing_resolution).prediction
