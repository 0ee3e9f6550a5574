"""The Marigold inference loop written out on a pipeline's own parts (VAE, UNet, scheduler, empty-text embedding).

It does what ``MarigoldDepthPipeline.__call__`` does (Marigold paper §3; diffusers `pipeline_marigold_depth.py`), with the knobs the lessons turn:
timestep spacing, number of steps, Gaussian or zero start noise, ensembling, and the per-step x̂0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genpercept_lessons.images import images_to_tensor
from genpercept_lessons.noise_schedules import SPACINGS, with_spacing
from genpercept_lessons.normals_convention import convert_normals, normals_convention
from genpercept_lessons.tasks import pipeline_task

__all__ = ["NOISE_TYPES", "Prediction", "encode_empty_prompt", "empty_text_embedding", "encode_rgb", "predict", "predict_detailed"]

NOISE_TYPES = ("gaussian", "zeros")


@dataclass
class Prediction:
    """What ``predict_detailed`` returns: the final prediction and, per step, the timestep and decoded x̂0."""

    prediction: np.ndarray  # depth [N,H,W] in [0,1] or unit normals [N,H,W,3], x right, y up, z toward the viewer
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


def _check_arguments(steps, spacing, noise, ensemble, generator, latents, ensembling_kwargs=None) -> None:
    if ensembling_kwargs is not None and not isinstance(ensembling_kwargs, dict):
        raise TypeError(f"predict: `ensembling_kwargs` must be a dict for diffusers' ensemble_depth (e.g. "
                        f"{{'max_iter': 50, 'tol': 1e-6}}) or None, got {type(ensembling_kwargs).__name__}")
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


def _start_latents(pipe, rgb, noise: str, generator, latents):
    """The latent the loop starts from, shaped like ``rgb`` [N*E,4,h,w]: given, zeros, or Gaussian from ``generator``."""
    import torch

    if latents is not None:
        start = torch.as_tensor(latents, device=pipe.device, dtype=pipe.dtype)
        if start.shape != rgb.shape:
            raise ValueError(f"predict: `latents` must have shape {tuple(rgb.shape)} (N*ensemble, 4, h, w), "
                             f"got {tuple(start.shape)}")
        return start
    if noise == "zeros":
        return torch.zeros_like(rgb)
    from diffusers.utils.torch_utils import randn_tensor

    return randn_tensor(rgb.shape, generator=generator, device=pipe.device, dtype=pipe.dtype)


def _denoise(pipe, rgb, start, scheduler, steps: int, batch_size: int, generator, keep_intermediates: bool):
    """DDIM from ``start`` in batches: (final latents, [steps] x̂0 latents, [steps] latents fed to the UNet)."""
    import torch

    text = empty_text_embedding(pipe)
    finals, per_step, inputs = [], [[] for _ in range(steps)], [[] for _ in range(steps)]
    for i in range(0, rgb.shape[0], batch_size):
        z, cond = start[i:i + batch_size], rgb[i:i + batch_size]
        scheduler.set_timesteps(steps, device=pipe.device)
        for k, t in enumerate(scheduler.timesteps):
            v = pipe.unet(torch.cat([cond, z], dim=1), t, encoder_hidden_states=text.expand(len(z), -1, -1)).sample
            result = scheduler.step(v, t, z, generator=generator)
            if keep_intermediates:
                inputs[k].append(z)
                per_step[k].append(result.pred_original_sample)
            z = result.prev_sample
        finals.append(z)
    if not keep_intermediates:
        return torch.cat(finals), [], []
    return torch.cat(finals), [torch.cat(b) for b in per_step], [torch.cat(b) for b in inputs]


def _ensemble(pipe, pred, n: int, ensemble: int, task: str, ensembling_kwargs=None):
    """[N*E,C,H,W] members -> [N,C,H,W]: diffusers' aligned median (depth) or the member closest to the mean (normals).

    ``ensembling_kwargs`` go to diffusers' ``ensemble_depth`` (depth only; e.g. Marigold's own max_iter=50, tol=1e-6).
    """
    import torch

    if ensemble == 1:
        return pred
    pred = pred.reshape(n, ensemble, *pred.shape[1:])
    if task == "depth":
        return torch.cat([pipe.ensemble_depth(pred[j], pipe.scale_invariant, pipe.shift_invariant,
                                              **(ensembling_kwargs or {}))[0] for j in range(n)])
    return torch.cat([pipe.ensemble_normals(pred[j], False)[0] for j in range(n)])


def predict_detailed(pipe, images, steps: int = 1, spacing: str = "trailing", noise: str = "gaussian",
                     ensemble: int = 1, generator=None, latents=None, batch_size: int | None = None,
                     processing_resolution: int | None = None, keep_intermediates: bool = False,
                     ensembling_kwargs: dict | None = None) -> Prediction:
    """Run Marigold's loop on ``images`` (uint8 [N,H,W,3]); see ``predict``. Introduced in notebook 01.

    With ``keep_intermediates`` the result also holds each step's input latent and x̂0.
    """
    import torch

    # 0. Which task, and are the arguments sensible (before any model runs)
    task = pipeline_task(pipe)
    _check_arguments(steps, spacing, noise, ensemble, generator, latents, ensembling_kwargs)
    with torch.no_grad():
        # 1. The image as the pipeline sees it: [N,3,H',W'] in [-1,1], resized to the processing resolution and padded
        image = images_to_tensor(images).to(pipe.device, pipe.dtype)
        n = image.shape[0]
        res = processing_resolution if processing_resolution is not None else pipe.default_processing_resolution
        res = 0 if res is None else res  # 0 = the images' own resolution (diffusers' convention)
        image, padding, original = pipe.image_processor.preprocess(image * 1.0, res, "bilinear", pipe.device,
                                                                   pipe.dtype)
        # 2. The RGB latent [N*E,4,h,w], each image repeated for its E ensemble members
        rgb = encode_rgb(pipe, image).repeat_interleave(ensemble, dim=0)
        # 3. The start latent [N*E,4,h,w]: given, zeros, or Gaussian noise
        start = _start_latents(pipe, rgb, noise, generator, latents)
        # 4. DDIM with the chosen timestep spacing: the UNet sees cat(rgb, z) [.,8,h,w] and predicts v
        scheduler = with_spacing(pipe.scheduler, spacing)
        final, x0_latents, step_inputs = _denoise(pipe, rgb, start, scheduler, steps, batch_size or rgb.shape[0],
                                                  generator, keep_intermediates)
        out = Prediction(prediction=None, start_latents=start, timesteps=[int(t) for t in scheduler.timesteps],
                         step_inputs=step_inputs, x0_latents=x0_latents)
        # 5. Decode with the VAE and remove the padding: depth [N*E,1,H',W'] in [0,1] or normals [N*E,3,H',W']
        pred = pipe.image_processor.unpad_image(_decode(pipe, final), padding)
        out.x0_decoded = [_to_numpy(pipe.image_processor.unpad_image(_decode(pipe, lat), padding), pipe)
                          for lat in x0_latents]
        # 6. Combine the ensemble members, 7. resize back to the input size (normals renormalised)
        pred = _ensemble(pipe, pred, n, ensemble, task, ensembling_kwargs)
        pred = pipe.image_processor.resize_antialias(pred, original, "bilinear", is_aa=False)
        if task == "normals":
            pred = pipe.normalize_normals(pred)
    out.prediction = _to_numpy(pred, pipe)
    return out


def _to_numpy(pred, pipe):
    """Decoded [N,C,H,W] -> depth [N,H,W] or normals [N,H,W,3] in the course's x-right frame (the one conversion point)."""
    arr = pred.float().cpu().numpy()
    if pipeline_task(pipe) == "depth":
        return arr[:, 0]
    return convert_normals(arr.transpose(0, 2, 3, 1), normals_convention(pipe))


def predict(pipe, images, steps: int = 1, spacing: str = "trailing", noise: str = "gaussian", ensemble: int = 1,
            generator=None, latents=None, batch_size: int | None = None,
            processing_resolution: int | None = None, ensembling_kwargs: dict | None = None) -> np.ndarray:
    """Marigold inference written out: depth [N,H,W] in [0,1], or unit normals [N,H,W,3] for a normals pipeline.

    images uint8 [N,H,W,3]; ``spacing`` "leading" | "trailing" | "linspace"; ``noise`` "gaussian" (from
    ``generator``) | "zeros"; ``ensemble`` > 1 aligns members without ground truth and takes the median (depth) or the
    member closest to the mean normal (normals), as diffusers does; ``ensembling_kwargs`` (depth) go to diffusers'
    ``ensemble_depth``, e.g. {"max_iter": 50, "tol": 1e-6}, Marigold's own settings. Introduced in notebook 01.
    """
    return predict_detailed(pipe, images, steps, spacing, noise, ensemble, generator, latents, batch_size,
                            processing_resolution, ensembling_kwargs=ensembling_kwargs).prediction
