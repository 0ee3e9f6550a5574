"""Pictures of scenes and predictions, coloured the way Marigold/diffusers colour them; functions return figures."""
from __future__ import annotations

import numpy as np

from genpercept_lessons.mini.scenes import LABELS

__all__ = ["colorize_depth", "colorize_normals", "colorize_labels", "add_label_legend", "scene_figure", "prediction_grid",
           "caption_grid", "metric_vs_steps", "error_map"]

_LABEL_COLOURS = np.array([[196, 120, 64], [120, 190, 120], [90, 90, 200], [230, 210, 40], [200, 60, 200]], np.uint8)


def colorize_depth(depth, mask=None) -> np.ndarray:
    """Depth [H,W] -> uint8 RGB [H,W,3] with diffusers' ``visualize_depth``. Introduced in notebook 00.

    Spectral colours (near red, far blue), min-max over the valid pixels.
    """
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


def add_label_legend(fig, ncol: int = 6):
    """Put the colour key of ``colorize_labels`` (one patch per class, black = invalid) under ``fig``. Introduced in notebook 07."""
    from matplotlib.patches import Patch

    if not hasattr(fig, "legend"):
        raise TypeError(f"add_label_legend: `fig` must be a matplotlib Figure, got {type(fig).__name__}")
    handles = [Patch(color="#{:02x}{:02x}{:02x}".format(*_LABEL_COLOURS[i]), label=name) for i, name in enumerate(LABELS)]
    handles.append(Patch(color="black", label="invalid"))
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=8)
    fig.subplots_adjust(bottom=0.12)
    return fig


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


def prediction_grid(images, rows: dict, masks=None, max_cols: int = 6):
    """A grid figure: the RGB images, then a row per named prediction set. Introduced in notebook 01.

    Each set is depth [N,H,W] or normals [N,H,W,3].
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"prediction_grid: `images` must be [N,H,W,3], got shape {images.shape}")
    if not isinstance(rows, dict) or not rows:
        raise ValueError("prediction_grid: `rows` must be a non-empty dict {name: predictions}")
    n = min(len(images), max_cols)
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.6 * n + 1.2, 1.6 * (1 + len(rows))), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(images[j])
    axes[0, 0].set_ylabel("RGB", fontsize=8)
    for i, (name, pred) in enumerate(rows.items(), start=1):
        pred = np.asarray(pred)
        if len(pred) < n:
            raise ValueError(f"prediction_grid: row {name!r} has {len(pred)} predictions, need {n}")
        for j in range(n):
            m = None if masks is None else np.asarray(masks)[j]
            img = colorize_normals(pred[j], m) if pred.ndim == 4 else colorize_depth(pred[j], m)
            axes[i, j].imshow(img)
        axes[i, 0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def caption_grid(images, captions, rows: dict | None = None, max_cols: int = 4, width: int = 24):
    """Images [N,H,W,3] uint8 with each caption (wrapped at ``width`` characters) under it; ``rows`` adds named rows of
    more images [N,H,W,3], e.g. generated ones under the real views. Introduced in notebook 01."""
    import textwrap

    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"caption_grid: `images` must be [N,H,W,3], got shape {images.shape}")
    if isinstance(captions, str) or len(captions) != len(images):
        raise ValueError(f"caption_grid: `captions` must be a list with one caption per image ({len(images)}), "
                         f"got {type(captions).__name__}")
    named = {"": images, **(rows or {})}
    for name, imgs in named.items():
        if np.asarray(imgs).shape[1:] != images.shape[1:] or len(imgs) < min(len(images), max_cols):
            raise ValueError(f"caption_grid: row {name!r} must hold images shaped like `images`, got {np.shape(imgs)}")
    n = min(len(images), max_cols)
    fig, axes = plt.subplots(len(named), n, figsize=(2.0 * n, 2.0 * len(named) + 0.8), squeeze=False)
    for i, (name, imgs) in enumerate(named.items()):
        for j in range(n):
            axes[i, j].imshow(np.asarray(imgs)[j], interpolation="nearest")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(name, fontsize=8)
    for j in range(n):
        axes[-1, j].set_xlabel(textwrap.fill(str(captions[j]), width), fontsize=7)
    fig.tight_layout()
    return fig


def metric_vs_steps(results: dict, metric="abs_rel", reference: dict | None = None, ylabel=None):
    """Plot ``metric`` (a name, or a tuple of names: one panel each) against the number of steps, one line per spacing. Introduced in notebook 03.

    results = {spacing: {steps: metrics dict}}; reference = {label: value} (one metric) or {label: metrics dict}
    drawn as dashed lines; ylabel a label or a tuple of labels like ``metric``.
    """
    import matplotlib.pyplot as plt

    if not isinstance(results, dict) or not results:
        raise ValueError("metric_vs_steps: `results` must be {spacing: {steps: metrics}}")
    metrics = (metric,) if isinstance(metric, str) else tuple(metric)
    labels = (ylabel,) if ylabel is None or isinstance(ylabel, str) else tuple(ylabel)
    if not metrics or len(labels) not in (1, len(metrics)):
        raise ValueError(f"metric_vs_steps: `metric` must be a name or names and `ylabel` one label per metric, "
                         f"got {metric!r} and {ylabel!r}")
    missing = {m for by_steps in results.values() for r in by_steps.values() for m in metrics if m not in r}
    if missing:
        raise ValueError(f"metric_vs_steps: metrics {sorted(missing)} missing from `results`")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.4), squeeze=False)
    for ax, name, label in zip(axes[0], metrics, labels * len(metrics) if len(labels) == 1 else labels):
        for spacing, by_steps in results.items():
            steps = sorted(by_steps)
            ax.plot(steps, [by_steps[s][name] for s in steps], marker="o", label=spacing)
        refs = {ref: value[name] if isinstance(value, dict) else value for ref, value in (reference or {}).items()}
        for ref, value in refs.items():
            ax.axhline(value, linestyle="--", color="grey", linewidth=1, label=ref)
        if refs:  # keep the reference lines inside the axes
            lo, hi = ax.get_ylim()
            pad = 0.05 * (hi - lo)
            ax.set_ylim(min(lo, min(refs.values()) - pad), max(hi, max(refs.values()) + pad))
        ax.set_xscale("log")
        ax.set_xlabel("denoising steps")
        ax.set_ylabel(label or name)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def error_map(pred, target, mask):
    """Per-pixel absolute relative error |p − g| / g of an already aligned depth map [H,W]; invalid pixels are NaN. Introduced in notebook 03."""
    pred, target, mask = np.asarray(pred, float), np.asarray(target, float), np.asarray(mask, bool)
    if not pred.shape == target.shape == mask.shape or pred.ndim != 2:
        raise ValueError(f"error_map: `pred`, `target`, `mask` must all be [H,W], got {pred.shape}, {target.shape}, {mask.shape}")
    out = np.full(pred.shape, np.nan)
    ok = mask & (target > 0)
    out[ok] = np.abs(pred[ok] - target[ok]) / target[ok]
    return out
