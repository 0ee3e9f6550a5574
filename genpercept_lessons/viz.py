"""Pictures of scenes and predictions, coloured the way Marigold/diffusers colour them; functions return figures."""
from __future__ import annotations

import numpy as np

from .scenes import LABELS

__all__ = ["colorize_depth", "colorize_normals", "colorize_labels", "scene_figure"]

_LABEL_COLOURS = np.array([[196, 120, 64], [120, 190, 120], [90, 90, 200], [230, 210, 40], [200, 60, 200]], np.uint8)


def colorize_depth(depth, mask=None) -> np.ndarray:
    """Depth [H,W] -> uint8 RGB [H,W,3] with diffusers' ``visualize_depth`` (Spectral: near red, far blue), min-max over valid pixels. Introduced in notebook 00."""
    from diffusers.pipelines.marigold import MarigoldImageProcessor

    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"colorize_depth: `depth` must be [H,W], got shape {d.shape}")
    m = np.ones_like(d, bool) if mask is None else np.asarray(mask, bool)
    lo, hi = (float(d[m].min()), float(d[m].max())) if m.any() else (0.0, 1.0)
    img = np.array(MarigoldImageProcessor.visualize_depth(d, val_min=lo, val_max=max(hi, lo + 1e-6))[0])
    img[~m] = 0
    return img


def colorize_normals(normals, mask=None) -> np.ndarray:
    """Unit normals [H,W,3] (x right, y up, z to viewer) -> uint8 RGB with diffusers' ``visualize_normals``. Introduced in notebook 00."""
    from diffusers.pipelines.marigold import MarigoldImageProcessor

    n = np.asarray(normals, dtype=np.float32)
    if n.ndim != 3 or n.shape[-1] != 3:
        raise ValueError(f"colorize_normals: `normals` must be [H,W,3], got shape {n.shape}")
    img = np.array(MarigoldImageProcessor.visualize_normals(n[None])[0])
    if mask is not None:
        img[~np.asarray(mask, bool)] = 0
    return img


def colorize_labels(label) -> np.ndarray:
    """Semantic labels [H,W] (0..4, 255 = invalid) -> uint8 RGB [H,W,3]. Introduced in notebook 00."""
    lab = np.asarray(label)
    if lab.ndim != 2:
        raise ValueError(f"colorize_labels: `label` must be [H,W], got shape {lab.shape}")
    out = np.zeros(lab.shape + (3,), np.uint8)
    valid = lab < len(LABELS)
    out[valid] = _LABEL_COLOURS[lab[valid]]
    return out


def scene_figure(row, title: str | None = None):
    """One MiniScenes row as a 1×4 figure: image, depth, normals, labels. Introduced in notebook 00."""
    import matplotlib.pyplot as plt

    for key in ("image", "depth", "normals", "mask", "label"):
        if key not in row:
            raise KeyError(f"scene_figure: `row` lacks {key!r}; expected a MiniScenes row with image/depth/normals/mask/label")
    panels = [(row["image"], "RGB"), (colorize_depth(row["depth"], row["mask"]), "depth (near = red)"),
              (colorize_normals(row["normals"], row["mask"]), "normals"), (colorize_labels(row["label"]), "labels")]
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
    for ax, (img, name) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
