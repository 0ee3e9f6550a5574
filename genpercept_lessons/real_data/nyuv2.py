"""NYUv2 labeled (``nyu_depth_v2_labeled.mat``, MATLAB v7.3 = HDF5) + ``splits.mat`` → rows of the course schema.

As Marigold reads them (``src/dataset/*_dataset.py``).

With h5py the MATLAB axes come reversed: ``images`` is (N, 3, 640, 480) → per frame transpose to (480, 640, 3);
``rawDepths``/``depths`` are (N, 640, 480) → (480, 640). ``splits.mat`` (MATLAB v5, scipy.io) holds 1-BASED
``trainNdxs`` (795) and ``testNdxs`` (654) column vectors.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from genpercept_lessons.mini.scenes import IGNORE_LABEL

__all__ = ["NYUV2_K", "NYUV2_SIZE", "NYUV2_DOWNLOAD", "nyuv2_split_indices", "nyuv2_rows"]

NYUV2_SIZE = (480, 640)
# The widely used Kinect colour-camera calibration of NYUv2 (fx, fy, cx, cy) as in the toolbox's camera_params.m;
# Not from the papers' code. Pixel-centre convention differences (±0.5 px) are below this calibration's accuracy.
NYUV2_K = np.array([[518.8579, 0.0, 325.5824], [0.0, 519.4696, 253.7362], [0.0, 0.0, 1.0]], dtype=np.float32)
NYUV2_DOWNLOAD = ("the NYU Depth V2 page (cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html): "
                  "nyu_depth_v2_labeled.mat and splits.mat")
_DEPTH_KEYS = {"raw": "rawDepths", "filled": "depths"}


def nyuv2_split_indices(splits_mat: str | os.PathLike, split: str = "test") -> np.ndarray:
    """0-based frame indices [M] int64 of ``split`` ('train' | 'test') from ``splits.mat``'s 1-based trainNdxs/testNdxs. Introduced in notebook 08."""
    from scipy.io import loadmat

    if split not in ("train", "test"):
        raise ValueError(f"nyuv2_split_indices: `split` must be 'train' or 'test', got {split!r}")
    splits_mat = Path(splits_mat)
    if not splits_mat.is_file():
        raise FileNotFoundError(f"nyuv2_split_indices: {splits_mat} not found; download {NYUV2_DOWNLOAD}")
    key = f"{split}Ndxs"
    try:
        data = loadmat(splits_mat)
    except (ValueError, NotImplementedError, OSError) as e:  # e.g. a v7.3 (HDF5) file scipy cannot read
        raise ValueError(f"nyuv2_split_indices: cannot read {splits_mat} with scipy.io.loadmat ({e})") from e
    if key not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise KeyError(f"nyuv2_split_indices: {splits_mat} has no {key!r}; found {found}")
    idx = np.asarray(data[key]).ravel().astype(np.int64)
    if idx.size == 0 or idx.min() < 1:
        raise ValueError(f"nyuv2_split_indices: {key} in {splits_mat} must hold MATLAB 1-based indices >= 1, got "
                         f"min {idx.min() if idx.size else 'none'}")
    return idx - 1  # MATLAB is 1-based


def _open(mat: Path):
    import h5py

    if not mat.is_file():
        raise FileNotFoundError(f"nyuv2_rows: {mat} not found; download {NYUV2_DOWNLOAD}")
    if not h5py.is_hdf5(mat):
        raise ValueError(f"nyuv2_rows: {mat} is not an HDF5 file; nyu_depth_v2_labeled.mat is MATLAB v7.3 (HDF5). "
                         "A MATLAB v5 .mat (e.g. re-saved without -v7.3) is not supported; use the original file "
                         f"from {NYUV2_DOWNLOAD}")
    return h5py.File(mat, "r")


def nyuv2_rows(mat: str | os.PathLike, indices, depth: str = "raw") -> Iterator[dict[str, np.ndarray]]:
    """Schema rows (480×640) of the NYUv2 labeled frames at 0-based ``indices``: image uint8, depth float32 m, normals 0, mask, label 255, K.

    ``depth='raw'`` reads ``rawDepths`` (Marigold evaluates on raw depth with its raw valid mask: Marigold's
    ``src/util/alignment.py``, ``src/util/metric.py``, ``script/depth/eval.py``),
    'filled' the in-painted ``depths``; mask = depth > 0 (no Eigen crop: that belongs to the evaluation protocol,
    see ``protocols.py``). Normals are unknown in this file, so they are all zero vectors (the schema's "unknown").
    Introduced in notebook 08.
    """
    if depth not in _DEPTH_KEYS:
        raise ValueError(f"nyuv2_rows: `depth` must be 'raw' or 'filled', got {depth!r}")
    indices = np.asarray(indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"nyuv2_rows: `indices` must be a 1-D sequence of 0-based ints, got {indices.dtype} "
                         f"{indices.shape}")
    mat = Path(mat)
    with _open(mat) as f:
        missing = [k for k in ("images", _DEPTH_KEYS[depth]) if k not in f]
        if missing:
            raise KeyError(f"nyuv2_rows: {mat} lacks {missing}; found keys {sorted(f.keys())}. Is it "
                           "nyu_depth_v2_labeled.mat?")
        images, depths = f["images"], f[_DEPTH_KEYS[depth]]
        n = images.shape[0]
        if images.ndim != 4 or images.shape[1] != 3 or depths.ndim != 3 or depths.shape[0] != n \
                or depths.shape[1:] != images.shape[2:]:
            raise ValueError(f"nyuv2_rows: expected images (N,3,W,H) and {_DEPTH_KEYS[depth]} (N,W,H) as h5py reads "
                             f"a v7.3 .mat, got {images.shape} and {depths.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"nyuv2_rows: `indices` must be in [0, {n}) (0-based), got range "
                             f"[{indices.min()}, {indices.max()}]")
        for i in indices:
            image = np.ascontiguousarray(images[int(i)].transpose(2, 1, 0), dtype=np.uint8)  # (3,W,H) → (H,W,3)
            d = np.ascontiguousarray(depths[int(i)].T, dtype=np.float32)  # (W,H) → (H,W)
            d = np.where(np.isfinite(d), d, 0.0).astype(np.float32)
            h, w = d.shape
            yield {
                "image": image,
                "depth": d,
                "normals": np.zeros((h, w, 3), dtype=np.float32),
                "mask": d > 0,
                "label": np.full((h, w), IGNORE_LABEL, dtype=np.uint8),
                "K": NYUV2_K.copy(),
            }
