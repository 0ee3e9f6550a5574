"""Hypersim (apple/ml-hypersim) raw HDF5 frames → rows of the course schema (Marigold's `src/dataset/*_dataset.py`).

Per frame ``<root>/<scene>/images/scene_<cam>_final_hdf5/frame.IIII.color.hdf5`` (HDR linear RGB, key "dataset",
768×1024×3) and ``scene_<cam>_geometry_hdf5/frame.IIII.depth_meters.hdf5`` (Euclidean DISTANCE to the optical
centre, ml-hypersim issue #9), plus the optional ``normal_cam.hdf5`` and ``render_entity_id.hdf5``.

Normals convention assumed for ``normal_cam.hdf5``: Hypersim's camera space as its README ("Coordinate conventions")
defines it: +x right, +y up, +z away from where the camera looks, i.e. toward the viewer. That is already the
diffusers/Marigold frame this course uses, so no axes are flipped; the vectors are re-normalised and flipped where
they face away from the camera (back faces; ml-hypersim issue #26, GeoWizard ``align_normals``). The dataset's
``normal_cam.png`` previews encode the same vectors as ``(n + 1) / 2`` (ml-hypersim ``generate_hdf5_from_vrimg.py``);
E2E-FT reads those previews, flips y and z, aligns, then negates (E2E-FT ``training/dataloaders/load.py``), so its
normals, and the checkpoints trained on them, are x-left: see ``genpercept_lessons.normals_convention``.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from genpercept_lessons.mini.scenes import IGNORE_LABEL
from genpercept_lessons.real_data.geometry import distance_to_planar_depth, normals_from_depth, resize_intrinsics

__all__ = [
    "HYPERSIM_SIZE",
    "HYPERSIM_FOCAL_PX",
    "HYPERSIM_SPLIT_CSV",
    "HYPERSIM_DOWNLOAD",
    "HYPERSIM_DEPTH_RANGE",
    "check_size",
    "tone_map_hypersim",
    "hypersim_frames",
    "hypersim_frame_paths",
    "read_hypersim_frame",
]

HYPERSIM_SIZE = (768, 1024)  # (H, W) of the released frames
HYPERSIM_FOCAL_PX = 886.81  # at W = 1024 (60° horizontal FoV); Marigold/GeoWizard's constant, Marigold's `src/dataset/*_dataset.py`
HYPERSIM_SPLIT_CSV = "metadata_images_split_scene_v1.csv"
HYPERSIM_DEPTH_RANGE = (1e-5, 65.0)  # valid planar depth (m), E2E-FT/Marigold training loader, E2E-FT ``training/dataloaders/load.py``
HYPERSIM_DOWNLOAD = ("apple/ml-hypersim: code/python/tools/dataset_download_images.py (scene ZIPs) and "
                     "evermotion_dataset/analysis/metadata_images_split_scene_v1.csv")


def tone_map_hypersim(rgb, valid) -> np.ndarray:
    """HDR linear RGB [H,W,3] float + valid bool [H,W] → uint8 [H,W,3] with Hypersim's reference tone map.

    gamma 1/2.2; scale = 0.8^2.2 / p90 of 0.3R+0.59G+0.11B over valid pixels (so that p90 becomes 0.8 after gamma);
    rgb = clip((scale·rgb)^(1/2.2), 0, 1) (Marigold's `src/dataset/*_dataset.py`, Marigold ``tone_map``). NaN/inf and negatives count as 0; a
    frame without a valid pixel or with p90 = 0 keeps scale 1. Introduced in notebook 05.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"tone_map_hypersim: `rgb` must be [H,W,3], got shape {rgb.shape}")
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != rgb.shape[:2]:
        raise ValueError(f"tone_map_hypersim: `valid` must be {rgb.shape[:2]}, got {valid.shape}")
    rgb = np.nan_to_num(rgb.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    gamma, target = 1.0 / 2.2, 0.8
    brightness = 0.3 * rgb[..., 0] + 0.59 * rgb[..., 1] + 0.11 * rgb[..., 2]
    scale = 1.0
    if valid.any():
        p90 = float(np.percentile(brightness[valid], 90))
        if p90 > 1e-12:
            scale = target ** (1.0 / gamma) / p90
    out = np.clip(np.power(np.maximum(scale * rgb, 0.0), gamma), 0.0, 1.0)
    return np.round(out * 255).astype(np.uint8)


def check_size(fn: str, size) -> tuple[int, int]:
    """``size`` as (height, width) ints >= 8, or a ValueError naming ``fn``. Introduced in notebook 05."""
    if not isinstance(size, (tuple, list)) or len(size) != 2 \
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 8 for v in size):
        raise ValueError(f"{fn}: `size` must be (height, width) with ints >= 8, got {size!r}")
    return int(size[0]), int(size[1])


def hypersim_frames(split_csv: str | os.PathLike, split: str = "train") -> list[tuple[str, str, int]]:
    """(scene_name, camera_name, frame_id) of ``split`` in the public release. Introduced in notebook 05.

    Read from Hypersim's ``metadata_images_split_scene_v1.csv``.
    """
    split_csv = Path(split_csv)
    if split not in ("train", "val", "test"):
        raise ValueError(f"hypersim_frames: `split` must be 'train', 'val' or 'test', got {split!r}")
    if not split_csv.is_file():
        raise FileNotFoundError(f"hypersim_frames: split file {split_csv} not found; it comes with {HYPERSIM_DOWNLOAD}")
    needed = {"scene_name", "camera_name", "frame_id", "included_in_public_release", "split_partition_name"}
    with open(split_csv, newline="") as f:
        reader = csv.DictReader(f)
        missing = needed - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"hypersim_frames: {split_csv} lacks columns {sorted(missing)}; got {reader.fieldnames}")
        return [(r["scene_name"], r["camera_name"], int(r["frame_id"])) for r in reader
                if r["included_in_public_release"].strip().lower() == "true"
                and r["split_partition_name"].strip() == split]


def hypersim_frame_paths(root: str | os.PathLike, scene: str, camera: str, frame_id: int) -> dict[str, Path]:
    """Paths of one frame's color, depth (distance), normal_cam and render_entity_id HDF5 files (they may not exist). Introduced in notebook 05."""
    root = Path(root)
    images = root / scene / "images"
    stem = f"frame.{frame_id:04d}"
    final, geometry = images / f"scene_{camera}_final_hdf5", images / f"scene_{camera}_geometry_hdf5"
    return {"color": final / f"{stem}.color.hdf5", "depth": geometry / f"{stem}.depth_meters.hdf5",
            "normal": geometry / f"{stem}.normal_cam.hdf5", "entity": geometry / f"{stem}.render_entity_id.hdf5"}


def _read_h5(path: Path, ndim: int) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "dataset" not in f:
                raise KeyError(f"Hypersim file {path} has no key 'dataset' (keys: {sorted(f.keys())})")
            arr = f["dataset"][()]
    except OSError as e:
        raise ValueError(f"Hypersim file {path} is not a readable HDF5 file ({e})") from e
    if arr.ndim != ndim:
        raise ValueError(f"Hypersim file {path}: expected a {ndim}-D 'dataset', got shape {arr.shape}")
    return arr


def _nearest(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of [H,W,...] to ``size`` by pixel-centre sampling (exact for integer factors)."""
    h, w = arr.shape[:2]
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(int), w - 1)
    return arr[rows][:, cols]


def _bilinear_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def read_hypersim_frame(root: str | os.PathLike, scene: str, camera: str, frame_id: int,
                        size: tuple[int, int] = (480, 640)) -> dict[str, np.ndarray]:
    """One Hypersim frame as a schema row resized to ``size`` (H, W): image uint8, depth float32 planar m, normals, mask, label 255, K.

    Distance → planar depth with f = 886.81 px × W/1024 (so smaller stand-in frames work); NaN/inf depth, no geometry
    (render_entity_id −1, when the file exists) and depth outside (1e-5, 65) m are invalid (depth 0, normals 0).
    Normals from ``normal_cam.hdf5`` (see the module docstring) or, when absent, ``normals_from_depth``. RGB resized
    bilinear, depth/mask/normals nearest. Introduced in notebook 05.
    """
    root = Path(root)
    if not isinstance(frame_id, (int, np.integer)) or frame_id < 0:
        raise ValueError(f"read_hypersim_frame: `frame_id` must be a non-negative int, got {frame_id!r}")
    check_size("read_hypersim_frame", size)
    paths = hypersim_frame_paths(root, scene, camera, int(frame_id))
    for key in ("color", "depth"):
        if not paths[key].is_file():
            raise FileNotFoundError(f"read_hypersim_frame: {paths[key]} not found; download scene {scene} with "
                                    f"{HYPERSIM_DOWNLOAD.split(' and ')[0]}")
    rgb, distance = _read_h5(paths["color"], 3), _read_h5(paths["depth"], 2).astype(np.float64)
    if rgb.shape[-1] != 3 or rgb.shape[:2] != distance.shape:
        raise ValueError(f"read_hypersim_frame: color {rgb.shape} and depth {distance.shape} of {scene}/{camera}/"
                         f"frame {frame_id} must be [H,W,3] and [H,W]")
    h, w = distance.shape
    focal = HYPERSIM_FOCAL_PX * w / HYPERSIM_SIZE[1]
    geometry_ok = np.isfinite(distance)
    if paths["entity"].is_file():
        geometry_ok &= _read_h5(paths["entity"], 2) != -1
    depth = distance_to_planar_depth(np.where(geometry_ok, distance, np.nan), focal).astype(np.float64)
    lo, hi = HYPERSIM_DEPTH_RANGE
    with np.errstate(invalid="ignore"):
        mask = geometry_ok & (depth > lo) & (depth < hi)
    depth = np.where(mask, depth, 0.0)
    image = tone_map_hypersim(rgb, geometry_ok)
    K = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1]])
    if paths["normal"].is_file():
        normals = _read_h5(paths["normal"], 3).astype(np.float64)
        if normals.shape != (h, w, 3):
            raise ValueError(f"read_hypersim_frame: {paths['normal']} must be {(h, w, 3)}, got {normals.shape}")
        normals = np.nan_to_num(normals, nan=0.0, posinf=0.0, neginf=0.0)
        length = np.linalg.norm(normals, axis=-1)
        normals = normals / np.maximum(length, 1e-12)[..., None]
        # face the camera: in the x right / y up / z toward-viewer frame the ray through pixel (u, v) is
        # ((u - cx)/f, -(v - cy)/f, -1); a normal facing the camera has a negative dot product with it
        u, v = np.arange(w) + 0.5 - w / 2, np.arange(h) + 0.5 - h / 2
        ray = np.stack(np.broadcast_arrays(u[None, :] / focal, -v[:, None] / focal, -np.ones((h, 1))), axis=-1)
        normals[(normals * ray).sum(-1) > 0] *= -1
        normals_ok = mask & (length > 0.5)
    else:
        normals, normals_ok = normals_from_depth(depth, K, mask)
    normals = np.where(normals_ok[..., None], normals, 0.0)
    out_h, out_w = size
    return {
        "image": _bilinear_rgb(image, (out_h, out_w)),
        "depth": _nearest(depth, size).astype(np.float32),
        "normals": _nearest(normals, size).astype(np.float32),
        "mask": _nearest(mask, size),
        "label": np.full((out_h, out_w), IGNORE_LABEL, dtype=np.uint8),
        "K": resize_intrinsics(K, (h, w), (out_h, out_w)),
    }
