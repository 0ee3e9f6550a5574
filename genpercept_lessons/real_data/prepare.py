"""Prepare the real datasets (Hypersim, Virtual KITTI 2, NYUv2) as 🤗 ``datasets`` folders in the MiniScenes schema.

The entry module: ``prepare_hypersim``, ``prepare_vkitti2`` and ``prepare_nyuv2`` read raw files with the readers in
``hypersim.py``, ``vkitti2.py`` and ``nyuv2.py`` and write with ``save_rows_atomically``: rows go to a scratch folder,
the dataset is saved into ``<out>.partial`` and only a finished dataset is renamed to ``<out>`` (``os.replace``), so a
failure never leaves a half-written folder under the final name nor touches a previous good output.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from genpercept_lessons.atomic import replace_folder
from genpercept_lessons.mini.miniscenes import COLUMNS, miniscenes_features
from genpercept_lessons.real_data.hypersim import (
    HYPERSIM_DOWNLOAD,
    HYPERSIM_SPLIT_CSV,
    check_size,
    hypersim_frame_paths,
    hypersim_frames,
    read_hypersim_frame,
)
from genpercept_lessons.real_data.nyuv2 import NYUV2_SIZE, nyuv2_rows, nyuv2_split_indices
from genpercept_lessons.real_data.vkitti2 import (
    KITTI_CROP_SIZE,
    VKITTI2_CAMERAS,
    VKITTI2_SCENES,
    VKITTI2_VARIATIONS,
    read_vkitti2_frame,
    vkitti2_frames,
)

__all__ = ["SETTINGS_FILE", "save_rows_atomically", "prepare_hypersim", "prepare_vkitti2", "prepare_nyuv2"]

SETTINGS_FILE = "prepare_settings.json"  # what produced the folder: source, arguments, number of rows
_DTYPES = {"image": np.uint8, "depth": np.float32, "normals": np.float32, "mask": np.bool_, "label": np.uint8,
           "K": np.float32}


def _check_out(fn: str, out, overwrite: bool) -> Path:
    if not isinstance(out, (str, os.PathLike)) or not str(out):
        raise ValueError(f"{fn}: `out` must be a folder path, got {out!r}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{fn}: {out} already exists; pass overwrite=True (--overwrite) to replace it")
    return out


def _check_limit(fn: str, limit) -> None:
    if limit is not None and (not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"{fn}: `limit` must be None or a positive int, got {limit!r}")


def _check_row(row: dict, size: tuple[int, int], k: int) -> None:
    h, w = size
    shapes = {"image": (h, w, 3), "depth": (h, w), "normals": (h, w, 3), "mask": (h, w), "label": (h, w), "K": (3, 3)}
    if not isinstance(row, dict) or set(row) != set(COLUMNS):
        raise ValueError(f"save_rows_atomically: row {k} must be a dict with keys {COLUMNS}, got "
                         f"{sorted(row) if isinstance(row, dict) else type(row).__name__}")
    for col, shape in shapes.items():
        arr = np.asarray(row[col])
        if arr.shape != shape:
            raise ValueError(f"save_rows_atomically: row {k} column {col!r} must be {shape}, got {arr.shape}")


def save_rows_atomically(rows: Iterable[dict], out: str | os.PathLike, size: tuple[int, int], *,
                         total: int | None = None, desc: str = "rows", overwrite: bool = False,
                         settings: dict | None = None, chunk_rows: int = 32) -> Path:
    """Write schema rows (dicts of image/depth/normals/mask/label/K at ``size`` (H, W)) as a ``datasets`` folder ``out``.

    Chunks of ``chunk_rows`` go to a scratch folder, the dataset to ``<out>.partial``, then ``os.replace`` to ``out``.
    An existing ``out`` is kept unless ``overwrite``; on any error it stays untouched and nothing is left behind.
    Returns ``out``. Introduced in notebook 08.
    """
    from datasets import Dataset, concatenate_datasets, load_from_disk
    from tqdm.auto import tqdm

    out = _check_out("save_rows_atomically", out, overwrite)
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0
                                                                        for v in size):
        raise ValueError(f"save_rows_atomically: `size` must be (height, width) positive ints, got {size!r}")
    size = (int(size[0]), int(size[1]))
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"save_rows_atomically: `chunk_rows` must be a positive int, got {chunk_rows!r}")
    features = miniscenes_features(*size)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():  # left by an interrupted run: never reused
        shutil.rmtree(partial)
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.scratch-"))
    chunks, buf, count = [], [], 0

    def flush():
        if buf:
            cols = {c: [np.asarray(r[c], dtype=_DTYPES[c]) for r in buf] for c in COLUMNS}
            path = scratch / f"chunk-{len(chunks):06d}"
            Dataset.from_dict(cols, features=features).save_to_disk(str(path))
            chunks.append(path)
            buf.clear()

    try:
        for row in tqdm(rows, total=total, desc=desc):
            _check_row(row, size, count)
            buf.append(row)
            count += 1
            if len(buf) >= chunk_rows:
                flush()
        flush()
        if not count:
            raise ValueError(f"save_rows_atomically: no rows to write to {out}")
        parts = [load_from_disk(str(p)) for p in chunks]
        ds = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
        ds.save_to_disk(str(partial))
        del ds, parts
        info = {"rows": count, "height": size[0], "width": size[1], **(settings or {})}
        (partial / SETTINGS_FILE).write_text(json.dumps(info, indent=1, default=str))
        replace_folder(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def prepare_hypersim(root: str | os.PathLike, out: str | os.PathLike, split: str = "train",
                     size: tuple[int, int] = (480, 640), limit: int | None = None, overwrite: bool = False,
                     split_csv: str | os.PathLike | None = None, skip_missing: bool = False) -> Path:
    """Hypersim frames of ``split`` (public release only) → a dataset at ``out`` (size H×W, default 480×640). Introduced in notebook 05.

    ``split_csv`` defaults to ``<root>/metadata_images_split_scene_v1.csv``. Every listed frame's color/depth HDF5
    must exist, unless ``skip_missing`` (then missing frames are skipped with a warning). ``limit`` keeps the first
    frames. See ``read_hypersim_frame`` for the conversions.
    """
    fn = "prepare_hypersim"
    out = _check_out(fn, out, overwrite)
    _check_limit(fn, limit)
    size = check_size(fn, size)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{fn}: root folder {root} not found; download {HYPERSIM_DOWNLOAD}")
    frames = hypersim_frames(Path(split_csv) if split_csv is not None else root / HYPERSIM_SPLIT_CSV, split)

    def present(frame):
        paths = hypersim_frame_paths(root, *frame)
        return paths["color"].is_file() and paths["depth"].is_file()

    absent = [f for f in frames if not present(f)]
    if absent and not skip_missing:
        s, c, i = absent[0]
        raise FileNotFoundError(f"{fn}: {len(absent)} of {len(frames)} {split} frames lack color/depth HDF5 files "
                                f"under {root}, e.g. {s}/{c}/frame.{i:04d}; download those scenes "
                                f"({HYPERSIM_DOWNLOAD}) "
                                "or pass skip_missing=True (--skip-missing)")
    if absent:
        warnings.warn(f"{fn}: skipping {len(absent)} {split} frames whose files are missing under {root}",
                      stacklevel=2)
        gone = set(absent)
        frames = [f for f in frames if f not in gone]
    if not frames:
        raise FileNotFoundError(f"{fn}: no {split} frames to prepare under {root}")
    frames = frames[:limit]
    rows = (read_hypersim_frame(root, s, c, i, size) for s, c, i in frames)
    settings = {"source": "hypersim", "root": str(root), "split": split, "limit": limit}
    return save_rows_atomically(rows, out, size, total=len(frames), desc=f"Hypersim {split}",
                                overwrite=overwrite, settings=settings)


def prepare_vkitti2(root: str | os.PathLike, out: str | os.PathLike, scenes=VKITTI2_SCENES,
                    variations=VKITTI2_VARIATIONS, cameras=VKITTI2_CAMERAS, limit: int | None = None,
                    overwrite: bool = False) -> Path:
    """Virtual KITTI 2 frames (default: E2E-FT's 5 scenes × 5 weathers × 2 cameras) → a 352×1216 dataset at ``out``. Introduced in notebook 05.

    Missing scene/variation/camera combinations are skipped with a warning; nothing found is an error. See
    ``read_vkitti2_frame`` for the conversions.
    """
    fn = "prepare_vkitti2"
    out = _check_out(fn, out, overwrite)
    _check_limit(fn, limit)
    pairs = vkitti2_frames(root, scenes, variations, cameras)[:limit]
    rows = (read_vkitti2_frame(rgb, depth) for rgb, depth in pairs)
    settings = {"source": "vkitti2", "root": str(root), "scenes": list(scenes), "variations": list(variations),
                "cameras": list(cameras), "limit": limit}
    return save_rows_atomically(rows, out, KITTI_CROP_SIZE, total=len(pairs), desc="Virtual KITTI 2",
                                overwrite=overwrite, settings=settings)


def prepare_nyuv2(mat: str | os.PathLike, out: str | os.PathLike, split: str = "test",
                  splits_mat: str | os.PathLike | None = None, depth: str = "raw", limit: int | None = None,
                  overwrite: bool = False) -> Path:
    """NYUv2 labeled frames of ``split`` ('test': 654, 'train': 795) → a 480×640 dataset at ``out``. Introduced in notebook 08.

    ``splits_mat`` defaults to ``splits.mat`` next to ``mat``; ``depth`` is 'raw' (Marigold's evaluation) or
    'filled'. See ``nyuv2_rows``.
    """
    fn = "prepare_nyuv2"
    out = _check_out(fn, out, overwrite)
    _check_limit(fn, limit)
    mat = Path(mat)
    indices = nyuv2_split_indices(Path(splits_mat) if splits_mat is not None else mat.with_name("splits.mat"),
                                  split)[:limit]
    settings = {"source": "nyuv2", "mat": str(mat), "split": split, "depth": depth, "limit": limit}
    return save_rows_atomically(nyuv2_rows(mat, indices, depth), out, NYUV2_SIZE, total=len(indices),
                                desc=f"NYUv2 {split}", overwrite=overwrite, settings=settings)
