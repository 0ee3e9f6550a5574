"""Marigold's per-dataset depth evaluation protocols: the valid depth range and the crop mask.

Sources: Marigold's ``src/util/alignment.py``, ``src/util/metric.py`` and ``script/depth/eval.py``.

Marigold (``src/dataset/*_dataset.py``, ``script/depth/eval.py``) counts a pixel when its ground truth lies in
(min_depth, max_depth) and, for NYUv2 and KITTI, inside the Eigen crop; aligned predictions are clipped to the
same range.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EvalProtocol", "PROTOCOLS", "get_protocol", "evaluation_mask"]


@dataclass(frozen=True)
class EvalProtocol:
    """One dataset's protocol: depth range (m) and crop (top, bottom, left, right), in pixels or fractions of H/W. Introduced in notebook 08.

    ``crop`` None means the whole image; ``relative`` crops are fractions turned into rows/columns with ``int()``
    as Marigold does; ``image_size`` (H, W) is the only size the crop is defined on (None = any size).
    """

    name: str
    min_depth: float
    max_depth: float | None
    crop: tuple[float, float, float, float] | None = None
    relative: bool = False
    image_size: tuple[int, int] | None = None


PROTOCOLS: dict[str, EvalProtocol] = {p.name: p for p in (
    EvalProtocol("miniscenes", 1e-3, None),
    # NYUv2 official test (654): 1e-3–10 m, Eigen crop rows 45:471, cols 41:601 on 480×640 (Marigold's
    # `src/util/alignment.py`, `src/util/metric.py`, `script/depth/eval.py`)
    EvalProtocol("nyuv2", 1e-3, 10.0, (45, 471, 41, 601), relative=False, image_size=(480, 640)),
    # KITTI Eigen test: 1e-5–80 m; on the 352×1216 benchmark crop, the Eigen mask (Marigold's `src/util/alignment.py`,
    # `src/util/metric.py`, `script/depth/eval.py`)
    EvalProtocol("kitti", 1e-5, 80.0, (0.3324324, 0.91351351, 0.0359477, 0.96405229), relative=True,
                 image_size=(352, 1216)),
    # ... or the Garg mask, also available in Marigold's KITTI dataset class (Marigold's `src/util/alignment.py`,
    # `src/util/metric.py`, `script/depth/eval.py`)
    EvalProtocol("kitti_garg", 1e-5, 80.0, (0.40810811, 0.99189189, 0.03594771, 0.96405229), relative=True,
                 image_size=(352, 1216)),
    # training-data ranges of the E2E-FT/Marigold loaders (E2E-FT ``training/dataloaders/load.py``), for checking on held-out training data;
    # these are not published test protocols
    EvalProtocol("hypersim", 1e-5, 65.0),
    EvalProtocol("vkitti2", 1e-5, 80.0),
)}


def get_protocol(name: str | EvalProtocol) -> EvalProtocol:
    """The ``EvalProtocol`` called ``name`` (one of ``PROTOCOLS``); an ``EvalProtocol`` is returned as is. Introduced in notebook 08."""
    if isinstance(name, EvalProtocol):
        return name
    if not isinstance(name, str) or name not in PROTOCOLS:
        raise ValueError(f"get_protocol: `name` must be one of {sorted(PROTOCOLS)}, got {name!r}")
    return PROTOCOLS[name]


def _crop_box(p: EvalProtocol, height: int, width: int) -> tuple[int, int, int, int]:
    if p.image_size is not None and (height, width) != tuple(p.image_size):
        raise ValueError(f"evaluation_mask: protocol {p.name!r} crops images of {p.image_size[0]}x{p.image_size[1]} "
                         f"(H x W), got {height}x{width}")
    top, bottom, left, right = p.crop
    if p.relative:
        top, bottom, left, right = int(top * height), int(bottom * height), int(left * width), int(right * width)
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ValueError(f"evaluation_mask: protocol {p.name!r} crop rows {top}:{bottom}, cols {left}:{right} does "
                         f"not fit an image of {height}x{width}")
    return int(top), int(bottom), int(left), int(right)


def evaluation_mask(protocol: str | EvalProtocol, mask, depth=None) -> np.ndarray:
    """The pixels a protocol scores: ``mask`` bool [N,H,W] or [H,W] ∧ crop (∧ range). Introduced in notebook 08.

    The range test, min_depth < depth < max_depth, applies when ``depth`` (the shape of ``mask``) is given.
    """
    p = get_protocol(protocol)
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"evaluation_mask: `mask` must be [H,W] or [N,H,W], got shape {mask.shape}")
    out = mask.astype(bool).copy()
    h, w = mask.shape[-2:]
    if p.crop is not None:
        top, bottom, left, right = _crop_box(p, h, w)
        crop = np.zeros((h, w), dtype=bool)
        crop[top:bottom, left:right] = True
        out &= crop
    if depth is not None:
        depth = np.asarray(depth)
        if depth.shape != mask.shape:
            raise ValueError(f"evaluation_mask: `depth` must have the shape of `mask` {mask.shape}, got {depth.shape}")
        with np.errstate(invalid="ignore"):
            out &= depth > p.min_depth
            if p.max_depth is not None:
                out &= depth < p.max_depth
    return out
