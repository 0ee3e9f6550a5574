"""A small DPT-style decoder head on multi-level UNet decoder features (GenPercept's "customized decoder", arXiv 2403.06090)."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["DPTHead", "UNetFeatures"]


class UNetFeatures:
    """Context manager that records the outputs of a UNet's up-blocks (coarse -> fine) during a forward pass.

    ``with UNetFeatures(unet) as feats: unet(...)`` -> ``feats.maps``: list of [B,C_i,h_i,w_i]. Introduced in notebook 07.
    """

    def __init__(self, unet):
        if not hasattr(unet, "up_blocks"):
            raise TypeError(f"UNetFeatures: `unet` must be a diffusers UNet2DConditionModel, got {type(unet).__name__}")
        self.unet, self.maps, self._hooks = unet, [], []

    def __enter__(self):
        self.maps = []
        self._hooks = [b.register_forward_hook(lambda _m, _i, out: self.maps.append(out)) for b in self.unet.up_blocks]
        return self

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        return False


class DPTHead(nn.Module):
    """Project each feature level to ``width`` channels, fuse coarse-to-fine with residual convs, upsample ×``upsample``.

    feats: list of [B,C_i,h_i,w_i] (coarse -> fine) -> [B,out_channels,H,W] with H = upsample·h_finest.
    Introduced in notebook 07.
    """

    def __init__(self, in_channels, out_channels: int, width: int = 32, upsample: int = 4):
        super().__init__()
        in_channels = list(in_channels)
        if not in_channels or any(not isinstance(c, int) or c < 1 for c in in_channels):
            raise ValueError(f"DPTHead: `in_channels` must be a non-empty list of positive ints, got {in_channels!r}")
        if not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"DPTHead: `out_channels` must be a positive int, got {out_channels!r}")
        if upsample not in (1, 2, 4, 8):
            raise ValueError(f"DPTHead: `upsample` must be 1, 2, 4 or 8 (the VAE factor), got {upsample!r}")
        self.project = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.fuse = nn.ModuleList(nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                                nn.Conv2d(width, width, 3, padding=1)) for _ in in_channels)
        self.out = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                 nn.Upsample(scale_factor=upsample, mode="bilinear", align_corners=False),
                                 nn.Conv2d(width, width // 2, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width // 2, out_channels, 1))

    def forward(self, feats):
        """Fuse ``feats`` (coarse -> fine) and return the full-resolution output."""
        if len(feats) != len(self.project):
            raise ValueError(f"DPTHead: expected {len(self.project)} feature maps, got {len(feats)}")
        x = None
        for f, project, fuse in zip(feats, self.project, self.fuse):
            y = project(f)
            if x is not None:
                y = y + torch.nn.functional.interpolate(x, size=y.shape[-2:], mode="bilinear",
                                                              align_corners=False)
            x = y + fuse(y)
        return self.out(x)
