"""Training noise for Marigold: annealed multi-resolution ("pyramid") noise, as in Marigold's v1-0 trainer.

Marigold (``config/train_marigold.yaml``: ``multi_res_noise: strength 0.9, annealed: true, downscale_strategy:
original``) adds to the usual per-pixel Gaussian a stack of coarser Gaussian fields, each upsampled
bilinearly and weighted by ``strength**level``; "annealed" scales the strength by ``t / T`` per sample, so
the noise is white near t=0 and strongly low-frequency near t=T. The sum is rescaled to unit std over
the batch. Low-frequency noise hides the coarse layout of the target latent that white noise leaves
visible, so the denoiser must take the layout from the RGB latent (what one-step inference needs).
"""
from __future__ import annotations

__all__ = ["multi_resolution_noise"]


def multi_resolution_noise(shape, strength=0.9, generator=None, max_levels: int = 10):
    """Pyramid noise of ``shape`` [B,C,h,w] with per-sample ``strength`` (float or tensor [B]); unit std. Introduced in notebook 01."""
    import torch
    import torch.nn.functional as F

    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"multi_resolution_noise: `shape` must be [B, C, h, w] with positive sizes, got {tuple(shape)}")
    b, c, h, w = (int(s) for s in shape)
    s = torch.as_tensor(strength, dtype=torch.float32)
    if s.ndim == 0:
        s = s.expand(b)
    if s.shape != (b,) or bool(((s < 0) | (s > 1)).any()):
        raise ValueError(f"multi_resolution_noise: `strength` must be in [0, 1], a float or a tensor of shape [{b}], "
                         f"got {tuple(s.shape)} with values {s.min().item():.3g}..{s.max().item():.3g}")
    s = s.view(b, 1, 1, 1)
    noise = torch.randn((b, c, h, w), generator=generator)
    lh, lw = h, w
    for level in range(max_levels):
        # Marigold's "original" strategy: each level shrinks the previous one by r**level, r ~ U(2, 4)
        r = float(torch.rand(1, generator=generator)) * 2 + 2
        lh, lw = max(1, int(lh / r ** level)), max(1, int(lw / r ** level))
        coarse = torch.randn((b, c, lh, lw), generator=generator)
        noise = noise + F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) * s ** level
        if lh == 1 or lw == 1:
            break
    return noise / noise.std()
