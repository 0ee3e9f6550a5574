"""From a text-to-image UNet to Marigold's: the input convolution widened from 4 to 8 channels.

Marigold (Ke et al., CVPR 2024, §3.2) feeds the UNet cat(RGB latent, target latent) and starts the doubled ``conv_in`` from
Stable Diffusion's weights, duplicated and halved, so that the widened layer gives SD's output when both halves are the
same latent; prs-eth/Marigold ``src/trainer/marigold_trainer.py`` (``_replace_unet_conv_in``) keeps the bias, while
E2E-FT's ``training/util/unet_prep.py`` halves the bias too (its issue #3).
"""
from __future__ import annotations

__all__ = ["widen_conv_in", "marigold_unet_from"]

_BIAS = ("keep", "halve")


def widen_conv_in(conv, repeats: int = 2, bias: str = "keep"):
    """A new ``nn.Conv2d`` with ``repeats`` × the input channels: weights repeated and divided by ``repeats``. Introduced in notebook 07."""
    import torch

    if not isinstance(conv, torch.nn.Conv2d):
        raise TypeError(f"widen_conv_in: `conv` must be a torch.nn.Conv2d, got {type(conv).__name__}")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"widen_conv_in: `repeats` must be an int >= 1, got {repeats!r}")
    if bias not in _BIAS:
        raise ValueError(f"widen_conv_in: `bias` must be one of {_BIAS}, got {bias!r}")
    if conv.groups != 1:
        raise ValueError(f"widen_conv_in: only ungrouped convolutions can be widened, got groups={conv.groups}")
    wide = torch.nn.Conv2d(conv.in_channels * repeats, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                           conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode)
    wide = wide.to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        wide.weight.copy_(conv.weight.repeat(1, repeats, 1, 1) / repeats)
        if conv.bias is not None:
            wide.bias.copy_(conv.bias / (repeats if bias == "halve" else 1))
    return wide


def marigold_unet_from(unet, bias: str = "keep"):
    """A copy of a 4-input-channel ``UNet2DConditionModel`` with an 8-channel ``conv_in`` (``widen_conv_in``). Introduced in notebook 07."""
    from diffusers import UNet2DConditionModel

    if not isinstance(unet, UNet2DConditionModel):
        raise TypeError(f"marigold_unet_from: `unet` must be a diffusers UNet2DConditionModel, got {type(unet).__name__}")
    if unet.config.in_channels != 4:
        raise ValueError(f"marigold_unet_from: expected a 4-channel text-to-image UNet, got in_channels={unet.config.in_channels}")
    new = UNet2DConditionModel.from_config({**unet.config, "in_channels": 8})
    state = {k: v.clone() for k, v in unet.state_dict().items()}
    wide = widen_conv_in(unet.conv_in, 2, bias)
    state["conv_in.weight"], state["conv_in.bias"] = wide.weight.detach(), wide.bias.detach()
    new.load_state_dict(state)
    return new.to(device=unet.device, dtype=unet.dtype)
