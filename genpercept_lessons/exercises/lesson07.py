"""Lesson 07 exercises: widen a UNet's input convolution from 4 to 8 channels, as Marigold does."""
from __future__ import annotations

from . import FunctionExercise
from ._fixtures import rng_arrays

__all__ = ["q1"]


def _conv(seed: int):
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Conv2d(4, 16, kernel_size=3, padding=1)


def _widen_reference(conv):
    from genpercept_lessons.repurpose import widen_conv_in

    return widen_conv_in(conv, 2, bias="keep")


def _widened_weights(func):
    """Compare the new layer's weights and its output on cat(x, x), and check the old layer is untouched."""
    import torch

    from . import NOT_ATTEMPTED, _contains_placeholder, _Mismatch, compare

    conv = _conv(1)
    before = conv.weight.detach().clone()
    wide = func(conv)
    if _contains_placeholder(wide):
        return NOT_ATTEMPTED
    if not isinstance(wide, torch.nn.Conv2d) or wide.in_channels != 8 or wide.out_channels != conv.out_channels:
        return f"expected an nn.Conv2d with 8 input and {conv.out_channels} output channels, got {wide!r}"
    if not torch.equal(conv.weight, before):
        return "you changed the original layer's weights in place; build a new layer instead"
    (x,) = rng_arrays(16, (2, 4, 8, 8), low=-1, high=1)
    x = torch.tensor(x, dtype=torch.float32)
    try:
        compare("the weights", wide.weight, _widen_reference(conv).weight, 1e-5, 1e-6)
        compare("the bias", wide.bias, conv.bias, 1e-5, 1e-6)
        with torch.no_grad():
            compare("the output on cat(x, x)", wide(torch.cat([x, x], 1)), conv(x), 1e-4, 1e-5)
    except _Mismatch as err:
        return str(err)
    return None


q1 = FunctionExercise(
    title="Exercise 1 (transfer): widen conv_in from 4 to 8 input channels, the way Marigold adapts SD's UNet",
    hints=["The new layer sees cat(rgb_latent, target_latent): 8 channels. Start both halves from the old weights.",
           "Repeat the weight along the input-channel dimension (dim 1) and halve it, so that cat(x, x) gives the old "
           "output; keep the bias as it is (prs-eth/Marigold, `_replace_unet_conv_in`).",
           "Copy into a new torch.nn.Conv2d(8, out_channels, kernel_size, stride, padding) under torch.no_grad()."],
    solution_code="""
        def widen_conv_in(conv):
            wide = torch.nn.Conv2d(8, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
            with torch.no_grad():
                wide.weight.copy_(conv.weight.repeat(1, 2, 1, 1) * 0.5)
                wide.bias.copy_(conv.bias)
            return wide
    """,
    also=_widened_weights)
