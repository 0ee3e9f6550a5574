"""Random-weight stand-ins with the full profile's architecture, built from the real models' configurations (no hub).

Marigold v1-0 is Stable Diffusion 2 with an 8-channel ``conv_in`` (Marigold paper §3.2; ``unet/config.json`` of
``prs-eth/marigold-depth-v1-0``): SD2's UNet (``stabilityai/stable-diffusion-2``, 865 M parameters), SD's VAE (scaling
factor 0.18215) and SD2's OpenCLIP ViT-H text tower (width 1024, 23 layers, 77 tokens). A stand-in has exactly these
shapes, with random weights, so memory and code paths can be measured and rehearsed on a CPU. Two things differ and
are said where used: the tokenizer is the course's byte-level one (SD2's BPE vocabulary is not on this disk; its ids
fall inside the real vocabulary), and ``layers`` < 2 thins every UNet/VAE block where memory forces it.
"""
from __future__ import annotations

import os

__all__ = ["SD2_UNET_CONFIG", "SD_VAE_CONFIG", "SD2_TEXT_ENCODER_CONFIG", "standin_marigold", "tiny_marigold",
           "parameter_counts"]

# unet/config.json of stabilityai/stable-diffusion-2 (the 768-v model Marigold starts from), conv_in widened to 8
SD2_UNET_CONFIG = {
    "sample_size": 96, "in_channels": 8, "out_channels": 4, "center_input_sample": False, "flip_sin_to_cos": True,
    "freq_shift": 0, "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                          "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "downsample_padding": 1,
    "mid_block_scale_factor": 1, "act_fn": "silu", "norm_num_groups": 32, "norm_eps": 1e-5,
    "cross_attention_dim": 1024, "attention_head_dim": [5, 10, 20, 20], "use_linear_projection": True,
    "upcast_attention": True, "dual_cross_attention": False,
}
# vae/config.json of stabilityai/stable-diffusion-2
SD_VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": 768, "layers_per_block": 2,
    "block_out_channels": [128, 256, 512, 512], "norm_num_groups": 32, "act_fn": "silu", "scaling_factor": 0.18215,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
# text_encoder/config.json of stabilityai/stable-diffusion-2 (OpenCLIP ViT-H/14's text tower, penultimate layer)
SD2_TEXT_ENCODER_CONFIG = {
    "vocab_size": 49408, "hidden_size": 1024, "intermediate_size": 4096, "projection_dim": 512,
    "num_hidden_layers": 23, "num_attention_heads": 16, "max_position_embeddings": 77, "hidden_act": "gelu",
    "layer_norm_eps": 1e-5, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
}


def _check_layers(name: str, value, most: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise ValueError(f"standin_marigold: `{name}` must be an int in 1..{most}, got {value!r}")
    return value


def standin_marigold(task: str = "depth", *, layers: int = 2, text_layers: int = 23, seed: int = 0,
                     tokenizer_dir: str | os.PathLike | None = None, resolution: int = 768):
    """A ``MarigoldDepthPipeline``/``MarigoldNormalsPipeline`` with Marigold v1-0's shapes and random fp32 weights.

    ``layers`` (1 or 2, real: 2) is the UNet's and VAE's layers per block; ``text_layers`` (1..23, real: 23) the text
    encoder's depth; ``resolution`` the default processing resolution it records (real: 768). Built in memory (5.2 GB
    of fp32 weights at the real size; about a minute on 2 cores).
    """
    import tempfile

    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from genpercept_lessons.mini.components import make_tokenizer
    from genpercept_lessons.mini.marigold_training import make_pipeline
    from genpercept_lessons.tasks import check_task

    check_task("standin_marigold", task)
    _check_layers("layers", layers, 2)
    _check_layers("text_layers", text_layers, 23)
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 8 or resolution % 8:
        raise ValueError(f"standin_marigold: `resolution` must be a positive multiple of 8, got {resolution!r}")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**{**SD2_UNET_CONFIG, "layers_per_block": layers})
    vae = AutoencoderKL(**{**SD_VAE_CONFIG, "layers_per_block": layers})
    text_encoder = CLIPTextModel(CLIPTextConfig(**{**SD2_TEXT_ENCODER_CONFIG, "num_hidden_layers": text_layers}))
    tokenizer = make_tokenizer(tokenizer_dir or tempfile.mkdtemp(prefix="genpercept-standin-tokenizer-"))
    for module in (unet, vae, text_encoder):
        module.eval().requires_grad_(False)
    return make_pipeline(task, unet, vae, text_encoder, tokenizer, resolution=resolution)


def tiny_marigold(task: str = "depth", *, downsample: int = 8, seed: int = 0,
                  tokenizer_dir: str | os.PathLike | None = None, resolution: int | None = None):
    """A tiny random Marigold pipeline (32-wide UNet, 32-wide text tower) for tests: built in a second, not a minute.

    ``downsample`` is the VAE's factor: 8 as Stable Diffusion's (a 480 x 640 image gives a 60 x 80 latent, as in the
    full profile; default resolution 64) or 2 (fastest, for 16 px images; default resolution 16).
    """
    import tempfile

    import torch

    from genpercept_lessons.mini.components import make_text_encoder, make_tokenizer, make_unet, make_vae
    from genpercept_lessons.mini.marigold_training import make_pipeline
    from genpercept_lessons.tasks import check_task

    check_task("tiny_marigold", task)
    if downsample not in (2, 8) or isinstance(downsample, bool):
        raise ValueError(f"tiny_marigold: `downsample` must be 2 or 8, got {downsample!r}")
    vae_widths, default_resolution = ((8, 8, 8, 8), 64) if downsample == 8 else ((32, 32), 16)
    torch.manual_seed(seed)
    unet = make_unet((32, 32), cross_attention_dim=32, sample_size=8)
    vae = make_vae(vae_widths, sample_size=default_resolution)
    tokenizer = make_tokenizer(tokenizer_dir or tempfile.mkdtemp(prefix="genpercept-tiny-tokenizer-"))
    return make_pipeline(task, unet, vae, make_text_encoder(32), tokenizer, resolution or default_resolution)


def parameter_counts(pipe) -> dict[str, int]:
    """Number of parameters of the pipeline's unet, vae and text_encoder: {"unet": 865_922_244, ...} at the real size."""
    missing = [name for name in ("unet", "vae", "text_encoder") if getattr(pipe, name, None) is None]
    if missing:
        raise ValueError(f"parameter_counts: `pipe` must have unet, vae and text_encoder; {type(pipe).__name__} lacks "
                         f"{', '.join(missing)}")
    return {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in ("unet", "vae", "text_encoder")}
