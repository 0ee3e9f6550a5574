"""The parts of mini-Marigold: tiny VAE, 8-channel UNet, tiny local CLIP text encoder/tokenizer, v1-0 scheduler.

Every part is a real diffusers/transformers class, only smaller, so that the mini model is saved in
(and loaded from) exactly the on-disk layout of ``prs-eth/marigold-depth-v1-0``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = [
    "MARIGOLD_V1_0_SCHEDULER",
    "make_vae",
    "make_unet",
    "make_text_encoder",
    "make_tokenizer",
    "make_scheduler",
]

# Exactly the scheduler_config.json of prs-eth/marigold-depth-v1-0 at commit 9a42035: no
# `timestep_spacing` key, so diffusers falls back to its default, "leading".
MARIGOLD_V1_0_SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "_diffusers_version": "0.8.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def make_vae(block_out_channels=(32, 64, 64), latent_channels: int = 4, sample_size: int = 64, norm_num_groups: int = 4):
    """A small ``AutoencoderKL`` (3-channel images in [-1,1] -> 4-channel latents at 1/2^(len-1) size). Introduced in notebook 01."""
    from diffusers import AutoencoderKL

    n = len(block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        latent_channels=latent_channels,
        # few, wide groups: with one channel per group GroupNorm becomes instance norm, and the decoder's last norm
        # would wipe out the level of flat regions (a wall's normal, a constant depth)
        norm_num_groups=norm_num_groups,
        sample_size=sample_size,
    )


def make_unet(block_out_channels=(64, 128, 192), cross_attention_dim: int = 64, sample_size: int = 16,
              layers_per_block: int = 1, norm_num_groups: int = 32, in_channels: int = 8, attention_levels: int = 1):
    """A ``UNet2DConditionModel`` (in: RGB latent ‖ target latent, or 4 channels for text-to-image) -> v. Introduced in notebook 01.

    The ``attention_levels`` coarsest resolutions get (self- and cross-) attention blocks, as SD's UNet has them at
    three of its four; mini-SD reads its captions only with two (at 4×4 alone it ignored their colour words).

    Keep several channels per GroupNorm group (SD2: 320 channels in 32 groups): with one channel per group every norm
    removes each feature map's own mean level, including the last one before ``conv_out``; the mini build uses 8
    groups (its training loss ended ~5-9 % lower than with 32 groups of one channel).
    """
    from diffusers import UNet2DConditionModel

    if in_channels not in (4, 8):
        raise ValueError(f"make_unet: `in_channels` must be 4 (text-to-image) or 8 (Marigold), got {in_channels!r}")
    n = len(block_out_channels)
    if not isinstance(attention_levels, int) or not 1 <= attention_levels <= n:
        raise ValueError(f"make_unet: `attention_levels` must be an int in [1, {n}] (one per resolution), "
                         f"got {attention_levels!r}")
    plain = n - attention_levels
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",) * attention_levels,
        up_block_types=("CrossAttnUpBlock2D",) * attention_levels + ("UpBlock2D",) * plain,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=norm_num_groups,
    )


def make_text_encoder(hidden_size: int = 64, vocab_size: int = 514, seed: int = 0):
    """A tiny randomly initialised ``CLIPTextModel`` (frozen); mini-SD's build trains it with its UNet. Introduced in notebook 01."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        projection_dim=hidden_size,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIPTextModel(config)
    return model.eval().requires_grad_(False)


def _byte_unicode() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for bytes (same table as GPT-2/CLIP)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def make_tokenizer(directory: str | os.PathLike):
    """A tiny local ``CLIPTokenizer`` (bytes only, no merges) written to ``directory`` and loaded from it. Introduced in notebook 01."""
    from transformers import CLIPTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chars = _byte_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}  # 514 tokens; BOS = 512, EOS = 513
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    # model_max_length must be set: without it a save/load round trip breaks the empty-prompt
    # tokenisation with "OverflowError: int too big to convert" (seen with transformers 5 on this course's machines).
    return CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=77,
                         pad_token="<|endoftext|>")


def make_scheduler():
    """Marigold v1-0's ``DDIMScheduler`` (scaled_linear 0.00085→0.012, v-prediction, leading spacing). Introduced in notebook 01."""
    from diffusers import DDIMScheduler

    config = {k: v for k, v in MARIGOLD_V1_0_SCHEDULER.items() if not k.startswith("_")}
    return DDIMScheduler.from_config(config)
