"""RGB images between the datasets' uint8 [N,H,W,3] and the float [N,3,H,W] tensors the models take."""
from __future__ import annotations

import numpy as np

__all__ = ["images_to_tensor"]


def images_to_tensor(images, signed: bool = False):
    """uint8 [N,H,W,3] (or [H,W,3]) -> float32 torch [N,3,H,W] in [0,1], or [-1,1] with ``signed``. Introduced in notebook 01.

    [0,1] is what a diffusers Marigold pipeline takes; [-1,1] is what the VAE encodes (the pipeline's own
    ``image * 2 - 1``, equal up to float rounding).
    """
    import torch

    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images_to_tensor: `images` must be uint8 [N,H,W,3] (or [H,W,3]), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"images_to_tensor: `images` must be uint8 in [0,255], got dtype {arr.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0 if signed else x / 255.0
