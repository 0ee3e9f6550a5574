"""Widening conv_in from 4 to 8 channels: the widened UNet answers cat(z, z) as the original answers z."""
from __future__ import annotations

import pytest
import torch

from genpercept_lessons.mini.components import make_unet
from genpercept_lessons.repurpose import marigold_unet_from, widen_conv_in


def _conv():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 16, 3, padding=1)
    with torch.no_grad():
        conv.bias.uniform_(-1, 1)  # a bias far from zero, so keeping or halving it shows
    return conv


@pytest.mark.parametrize("repeats", [2, 3])
def test_widened_conv_gives_the_old_output_on_repeated_input(repeats):
    conv, x = _conv(), torch.randn(2, 4, 8, 8)
    wide = widen_conv_in(conv, repeats)
    assert wide.in_channels == 4 * repeats and wide is not conv
    with torch.no_grad():
        assert torch.allclose(wide(torch.cat([x] * repeats, 1)), conv(x), atol=1e-5)
    assert torch.equal(wide.bias, conv.bias)


def test_halving_the_bias_as_e2e_ft_does():
    conv, x = _conv(), torch.randn(1, 4, 8, 8)
    wide = widen_conv_in(conv, 2, bias="halve")
    assert torch.allclose(wide.bias, conv.bias / 2)
    with torch.no_grad():  # the output's bias part is halved too: no longer the original output
        assert torch.allclose(wide(torch.cat([x, x], 1)), conv(x) - conv.bias[None, :, None, None] / 2, atol=1e-5)


def test_marigold_unet_from_a_text_to_image_unet():
    torch.manual_seed(0)
    sd = make_unet((16, 32), cross_attention_dim=32, sample_size=8, norm_num_groups=4, in_channels=4)
    wide = marigold_unet_from(sd)
    assert wide.config.in_channels == 8 and sd.config.in_channels == 4
    z, text = torch.randn(2, 4, 8, 8), torch.randn(2, 2, 32)
    with torch.no_grad():
        assert torch.allclose(wide(torch.cat([z, z], 1), 500, text).sample, sd(z, 500, text).sample, atol=1e-4)
        same = [torch.equal(a, b) for (k, a), (_, b) in zip(wide.state_dict().items(), sd.state_dict().items())
                if not k.startswith("conv_in")]
    assert all(same)


@pytest.mark.parametrize("call, match", [
    (lambda: widen_conv_in(torch.nn.Linear(4, 4)), "Conv2d"),
    (lambda: widen_conv_in(_conv(), 0), "repeats"),
    (lambda: widen_conv_in(_conv(), 2, bias="zero"), "bias"),
    (lambda: widen_conv_in(torch.nn.Conv2d(4, 8, 3, groups=2)), "groups"),
    (lambda: marigold_unet_from(_conv()), "UNet2DConditionModel"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()
