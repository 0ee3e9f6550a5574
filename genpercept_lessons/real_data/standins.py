"""Small stand-ins of Hypersim, Virtual KITTI 2 and NYUv2 in their REAL raw on-disk formats, for a CPU rehearsal.

The full profile reads datasets prepared from the real downloads (``prepare.py``). To rehearse that route without
them, these writers put MiniScenes rooms (``mini.scenes.render_scene``) into the very files the real datasets ship,
so that the course's own readers and ``prepare_*`` functions process them exactly as they would the real ones:

* Hypersim (``write_hypersim_standin``): ``<root>/ai_001_001/images/scene_cam_00_final_hdf5/frame.IIII.color.hdf5``
  (linear HDR float16: the uint8 image mapped to [0, 1], to the power 2.2; the reader tone-maps it back),
  ``scene_cam_00_geometry_hdf5/frame.IIII.depth_meters.hdf5`` (float16 Euclidean DISTANCE = ``planar_depth_to_distance(depth, 886.81·W/1024)``,
  so the reader's distance → planar depth gives the render's depth back; NaN where a ray hits nothing),
  ``frame.IIII.normal_cam.hdf5`` (float16, the render's camera-space normals, x right / y up / z toward the viewer
  as Hypersim's; NaN where nothing is hit) and ``frame.IIII.render_entity_id.hdf5`` (int32, the render's label,
  −1 where nothing is hit); all under the HDF5 key "dataset"; plus ``metadata_images_split_scene_v1.csv``.
  The normals are WRITTEN, so the reader takes its ``normal_cam`` route as on the real data. They are exact for the
  render's camera, whose horizontal field of view is 55–65°, where the reader assumes Hypersim's 60°: normals the
  reader would derive from the depth with its own K may differ from them by a few degrees.
* Virtual KITTI 2 (``write_vkitti2_standin``): ``<root>/Scene01/morning/frames/rgb/Camera_0/rgb_NNNNN.jpg`` and
  ``.../depth/Camera_0/depth_NNNNN.png`` (16-bit, centimetres, 65535 = sky) at the real 375×1242; rendered at
  94×311, upsampled nearest (PIL) and the depth scaled ×3 into a street-like 1–25 m.
* NYUv2 (``write_nyuv2_standin``): ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5 with a 512-byte user block
  holding MATLAB's header; ``images`` uint8, ``depths`` float32 in-painted, ``rawDepths`` float32 with 0 where
  nothing is hit; MATLAB's axes order, i.e. reversed as h5py reads them) at the real 480×640, rendered at 120×160
  and upsampled nearest, and ``splits.mat`` (MATLAB v5) with 1-based ``testNdxs``/``trainNdxs`` column vectors.

``prepare_standin_data`` writes all three under ``<data_dir>/raw`` and prepares them under the names the full
profile reads from ``$GENPERCEPT_DATA``. Each dataset renders its own MiniScenes stream (``STANDIN_SEED_OFFSETS``),
so they differ; everything is deterministic in ``seed``.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np

from genpercept_lessons.atomic import atomic_write_bytes
from genpercept_lessons.mini.scenes import render_scene
from genpercept_lessons.real_data.geometry import planar_depth_to_distance
from genpercept_lessons.real_data.hypersim import HYPERSIM_FOCAL_PX, HYPERSIM_SIZE, HYPERSIM_SPLIT_CSV
from genpercept_lessons.real_data.nyuv2 import NYUV2_SIZE
from genpercept_lessons.real_data.prepare import prepare_hypersim, prepare_nyuv2, prepare_vkitti2

__all__ = [
    "STANDIN_DATASETS",
    "STANDIN_SEED_OFFSETS",
    "STANDIN_SETTINGS_FILE",
    "HYPERSIM_STANDIN_SCENE",
    "HYPERSIM_STANDIN_CAMERA",
    "VKITTI2_STANDIN_SIZE",
    "VKITTI2_STANDIN_RENDER_SIZE",
    "VKITTI2_STANDIN_DEPTH_SCALE",
    "NYUV2_STANDIN_RENDER_SIZE",
    "upsample_nearest",
    "write_hypersim_standin",
    "write_vkitti2_standin",
    "write_nyuv2_standin",
    "prepare_standin_data",
]

STANDIN_DATASETS = ("hypersim_train", "hypersim_val", "vkitti2", "nyuv2_test")  # folders under $GENPERCEPT_DATA
STANDIN_SEED_OFFSETS = {"hypersim": 100, "vkitti2": 200, "nyuv2": 300}  # render_scene(seed + offset, i, ...)
STANDIN_SETTINGS_FILE = "standin_settings.json"  # in <data_dir>/raw: the seed and size the stand-ins were made with
HYPERSIM_STANDIN_SCENE, HYPERSIM_STANDIN_CAMERA = "ai_001_001", "cam_00"
VKITTI2_STANDIN_SIZE = (375, 1242)  # (H, W) of the real Virtual KITTI 2 frames
VKITTI2_STANDIN_RENDER_SIZE = (94, 311)  # rendered at about a quarter of it, then upsampled nearest
VKITTI2_STANDIN_DEPTH_SCALE = 3.0  # room depths (≤ 8 m) × 3: a street-like range, below the 80 m cap
NYUV2_STANDIN_RENDER_SIZE = (120, 160)  # a quarter of NYUv2's 480×640
_VKITTI2_FAR = 65535  # the far/sky code of the depth PNGs
_GAMMA = 2.2  # display gamma undone to make Hypersim's linear HDR colour
_LINEAR = np.linspace(0.0, 1.0, 256) ** _GAMMA  # lookup table: uint8 code k → linear intensity, (k ÷ 255)^2.2
_HYPERSIM_CSV_COLUMNS = ["scene_name", "camera_name", "frame_id", "included_in_public_release", "exclude_reason",
                         "split_partition_name"]
# the 116-byte text that opens MATLAB's 128-byte header in a v7.3 .mat file's user block
_MATLAB_73_TEXT = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970 HDF5 schema 1.00 ."


# ---------------------------------------------------------------------------------------------------------------
# argument checks: every error names the function, the argument, what it must be and what it got

def _check_path(fn: str, name: str, value) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{fn}: `{name}` must be a folder path (str or os.PathLike), got {value!r}")
    return Path(value)


def _check_int(fn: str, name: str, value, least: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < least:
        raise ValueError(f"{fn}: `{name}` must be an int >= {least}, got {value!r}")
    return int(value)


def _check_size(fn: str, size, most: int) -> tuple[int, int]:
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and 8 <= v <= most for v in size):
        raise ValueError(f"{fn}: `size` must be (height, width) with ints in [8, {most}], got {size!r}")
    return int(size[0]), int(size[1])


def _check_seed(fn: str, seed) -> int:
    return _check_int(fn, "seed", seed, 0)


# ---------------------------------------------------------------------------------------------------------------
# helpers

def upsample_nearest(arr, size: tuple[int, int]) -> np.ndarray:
    """uint8 [h,w,3] or float32 [h,w] → the same dtype at ``size`` (H, W), nearest neighbour (PIL).

    Used by the full-profile rehearsal (course/rehearsal.py).
    """
    from PIL import Image

    arr = np.asarray(arr)
    ok = (arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3) or (arr.dtype == np.float32 and arr.ndim == 2)
    if not ok:
        raise ValueError(f"upsample_nearest: `arr` must be uint8 [h,w,3] or float32 [h,w], got {arr.dtype} {arr.shape}")
    size = _check_size("upsample_nearest", size, 8192)
    return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).resize((size[1], size[0]), Image.NEAREST))


def _h5(path: Path, arr: np.ndarray) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("dataset", data=arr)


# ---------------------------------------------------------------------------------------------------------------
# the three writers

def write_hypersim_standin(root, n_train: int = 4, n_val: int = 2, size=(96, 128), seed: int = 0) -> Path:
    """Hypersim stand-in at ``root``: ai_001_001/cam_00 frames 0..n_train+n_val-1 (HDF5, ``size`` H×W) + split CSV.

    The first ``n_train`` frames are "train", the rest "val", all in the public release. Frame i is
    ``render_scene(seed + 100, i, H, W)``; see the module docstring for the files. Files of the same names are
    replaced, other files under ``root`` are left alone. Returns ``root``. Used by the full-profile rehearsal
    (course/rehearsal.py).
    """
    fn = "write_hypersim_standin"
    root = _check_path(fn, "root", root)
    n_train, n_val = _check_int(fn, "n_train", n_train, 1), _check_int(fn, "n_val", n_val, 1)
    h, w = _check_size(fn, size, 4096)
    seed = _check_seed(fn, seed)
    focal = HYPERSIM_FOCAL_PX * w / HYPERSIM_SIZE[1]
    scene, camera = HYPERSIM_STANDIN_SCENE, HYPERSIM_STANDIN_CAMERA
    images = root / scene / "images"
    final, geometry = images / f"scene_{camera}_final_hdf5", images / f"scene_{camera}_geometry_hdf5"
    rows = []
    for i in range(n_train + n_val):
        s = render_scene(seed + STANDIN_SEED_OFFSETS["hypersim"], i, h, w)
        stem = f"frame.{i:04d}"
        _h5(final / f"{stem}.color.hdf5", _LINEAR[s.image].astype(np.float16))
        distance = np.where(s.mask, planar_depth_to_distance(s.depth, focal), np.nan)
        _h5(geometry / f"{stem}.depth_meters.hdf5", distance.astype(np.float16))
        _h5(geometry / f"{stem}.normal_cam.hdf5", np.where(s.mask[..., None], s.normals, np.nan).astype(np.float16))
        _h5(geometry / f"{stem}.render_entity_id.hdf5", np.where(s.mask, s.label.astype(np.int32), -1).astype(np.int32))
        rows.append([scene, camera, i, "True", "", "train" if i < n_train else "val"])
    root.mkdir(parents=True, exist_ok=True)
    with open(root / HYPERSIM_SPLIT_CSV, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_HYPERSIM_CSV_COLUMNS)
        writer.writerows(rows)
    return root


def write_vkitti2_standin(root, n: int = 2, seed: int = 0) -> Path:
    """Virtual KITTI 2 stand-in at ``root``: ``n`` Scene01/morning/Camera_0 frames, jpg + 16-bit cm PNG, 375×1242.

    Frame i is ``render_scene(seed + 200, i, 94, 311)`` upsampled nearest to 375×1242, depth × 3 stored as
    round(cm) clipped to [1, 65534], 65535 (sky) where nothing is hit. Files of the same names are replaced, other
    files under ``root`` are left alone. Returns ``root``. Used by the full-profile rehearsal (course/rehearsal.py).
    """
    from PIL import Image

    fn = "write_vkitti2_standin"
    root = _check_path(fn, "root", root)
    n, seed = _check_int(fn, "n", n, 1), _check_seed(fn, seed)
    frames = root / "Scene01" / "morning" / "frames"
    rgb_dir, depth_dir = frames / "rgb" / "Camera_0", frames / "depth" / "Camera_0"
    rgb_dir.mkdir(parents=True, exist_ok=True)
    depth_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        s = render_scene(seed + STANDIN_SEED_OFFSETS["vkitti2"], i, *VKITTI2_STANDIN_RENDER_SIZE)
        image = upsample_nearest(s.image, VKITTI2_STANDIN_SIZE)
        depth = upsample_nearest(s.depth, VKITTI2_STANDIN_SIZE).astype(np.float64) * VKITTI2_STANDIN_DEPTH_SCALE
        cm = np.where(depth > 0, np.clip(np.round(depth * 100), 1, _VKITTI2_FAR - 1), _VKITTI2_FAR).astype(np.uint16)
        Image.fromarray(image).save(rgb_dir / f"rgb_{i:05d}.jpg", quality=95)
        Image.fromarray(cm).save(depth_dir / f"depth_{i:05d}.png")  # uint16 → a 16-bit greyscale PNG
    return root


def _fill_nearest(depth: np.ndarray) -> np.ndarray:
    """In-painted depth: every pixel without depth (0) takes the nearest valid pixel's depth (float32 [H,W])."""
    from scipy.ndimage import distance_transform_edt

    valid = depth > 0
    if not valid.any():
        return np.ones_like(depth, dtype=np.float32)
    _, (rows, cols) = distance_transform_edt(~valid, return_indices=True)
    return depth[rows, cols].astype(np.float32)


def _interleaved_splits(n_test: int, n_train: int) -> tuple[list[int], list[int]]:
    """1-based test and train frame numbers, alternating test/train while both last (NYUv2's are interleaved too)."""
    test, train, k = [], [], 1
    while len(test) < n_test or len(train) < n_train:
        if len(test) < n_test:
            test.append(k)
            k += 1
        if len(train) < n_train:
            train.append(k)
            k += 1
    return test, train


def write_nyuv2_standin(folder, n_test: int = 3, n_train: int = 2, seed: int = 0) -> Path:
    """NYUv2 stand-in in ``folder``: nyu_depth_v2_labeled.mat (v7.3, n_test+n_train frames, 480×640) + splits.mat.

    Frame k (0-based) is ``render_scene(seed + 300, k, 120, 160)`` upsampled nearest ×4; ``rawDepths`` is its
    depth (0 where nothing is hit), ``depths`` the same with the holes filled from the nearest valid pixel. Test and
    train frames alternate (1-based test 1, 3, 5, ...; train 2, 4, ...) until one split runs out. Both files are
    replaced if present. Returns the path of the .mat file. Used by the full-profile rehearsal
    (course/rehearsal.py).
    """
    import h5py
    from scipy.io import savemat

    fn = "write_nyuv2_standin"
    folder = _check_path(fn, "folder", folder)
    n_test, n_train = _check_int(fn, "n_test", n_test, 1), _check_int(fn, "n_train", n_train, 1)
    seed = _check_seed(fn, seed)
    n = n_test + n_train
    h, w = NYUV2_SIZE
    images = np.zeros((n, 3, w, h), np.uint8)  # MATLAB's (H, W, 3, N) as h5py reads it: reversed
    raw = np.zeros((n, w, h), np.float32)
    filled = np.zeros((n, w, h), np.float32)
    for k in range(n):
        s = render_scene(seed + STANDIN_SEED_OFFSETS["nyuv2"], k, *NYUV2_STANDIN_RENDER_SIZE)
        depth = upsample_nearest(s.depth, NYUV2_SIZE)
        images[k] = upsample_nearest(s.image, NYUV2_SIZE).transpose(2, 1, 0)
        raw[k] = depth.T
        filled[k] = _fill_nearest(depth).T
    folder.mkdir(parents=True, exist_ok=True)
    mat = folder / "nyu_depth_v2_labeled.mat"
    with h5py.File(mat, "w", userblock_size=512) as f:
        for key, data, matlab_class in (("images", images, "uint8"), ("depths", filled, "single"),
                                        ("rawDepths", raw, "single")):
            f.create_dataset(key, data=data).attrs["MATLAB_class"] = np.bytes_(matlab_class)
    header = _MATLAB_73_TEXT.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM"  # text, subsys offset, version, endian
    with open(mat, "r+b") as f:  # the user block h5py left zeroed carries MATLAB's header, as in a real v7.3 file
        f.write(header)
    test, train = _interleaved_splits(n_test, n_train)
    savemat(folder / "splits.mat", {"testNdxs": np.array(test, np.float64)[:, None],
                                    "trainNdxs": np.array(train, np.float64)[:, None]})
    return mat


# ---------------------------------------------------------------------------------------------------------------
# all of it, prepared as the full profile reads it

def prepare_standin_data(data_dir, size=(48, 64), seed: int = 0, overwrite: bool = False) -> dict[str, Path]:
    """Raw stand-ins under ``<data_dir>/raw``, prepared into ``<data_dir>/`` hypersim_train, hypersim_val, vkitti2, nyuv2_test.

    Hypersim: 4 train + 4 val frames written at 2×``size`` and prepared at ``size`` (H, W); Virtual KITTI 2: 2
    frames → 352×1216; NYUv2: 8 test frames (+ 2 train) → 480×640, all with the course's ``prepare_*``. Returns
    {name: folder} in that order. Outputs that exist are kept unless ``overwrite``: when all four do, nothing is
    written (idempotent); missing ones are prepared. Without ``overwrite`` it refuses (FileExistsError) outputs made
    with another ``seed``/``size`` (recorded per output in ``<data_dir>/raw/standin_settings.json``), mixing
    stand-ins with outputs it did not make, and in any case writing into a non-empty ``<data_dir>/raw`` it did not
    make. Used by the full-profile rehearsal (course/rehearsal.py).
    """
    fn = "prepare_standin_data"
    data_dir = _check_path(fn, "data_dir", data_dir)
    size = _check_size(fn, size, 2048)
    seed = _check_seed(fn, seed)
    if not isinstance(overwrite, bool):
        raise ValueError(f"{fn}: `overwrite` must be True or False, got {overwrite!r}")
    outs = {name: data_dir / name for name in STANDIN_DATASETS}
    raw = data_dir / "raw"
    marker = raw / STANDIN_SETTINGS_FILE
    wanted = {"seed": seed, "size": list(size)}
    recorded = _read_marker(marker)  # {output name: the settings it was prepared with}, None: no marker
    existing = [name for name, p in outs.items() if p.exists()]
    if not overwrite:
        stale = [name for name in existing if recorded is not None and name in recorded and recorded[name] != wanted]
        if stale:
            raise FileExistsError(f"{fn}: {', '.join(stale)} under {data_dir} were made with "
                                  f"{recorded[stale[0]]}, not {wanted}; pass overwrite=True to replace them")
        if len(existing) == len(outs):
            return outs
        foreign = [name for name in existing if recorded is None or name not in recorded]
        if foreign:
            raise FileExistsError(f"{fn}: {', '.join(foreign)} under {data_dir} were not made by {fn}; refusing to "
                                  "mix them with stand-ins: pass overwrite=True or use another `data_dir`")
    if recorded is None and raw.is_dir() and any(raw.iterdir()):
        raise FileExistsError(f"{fn}: {raw} holds files {fn} did not write; move them or use another `data_dir`")
    todo = [name for name, p in outs.items() if overwrite or not p.exists()]
    recorded = recorded or {}
    raw.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, json.dumps(recorded).encode())  # claims <data_dir>/raw before anything is written

    sources = {"hypersim": raw / "hypersim", "vkitti2": raw / "vkitti2", "nyuv2": raw / "nyuv2"}
    needed = [src for src, names in (("hypersim", ("hypersim_train", "hypersim_val")), ("vkitti2", ("vkitti2",)),
                                     ("nyuv2", ("nyuv2_test",))) if set(names) & set(todo)]
    for src in needed:
        shutil.rmtree(sources[src], ignore_errors=True)  # frames of an earlier call must not be read
    if "hypersim" in needed:
        write_hypersim_standin(sources["hypersim"], n_val=4, size=(2 * size[0], 2 * size[1]), seed=seed)
    if "vkitti2" in needed:
        write_vkitti2_standin(sources["vkitti2"], seed=seed)
    # 8 test images: lessons index a few beyond the rehearsal's 3 evaluation images (e.g. lesson 03's scenes[3])
    mat = write_nyuv2_standin(sources["nyuv2"], n_test=8, seed=seed) if "nyuv2" in needed else None

    for name in todo:
        if name in ("hypersim_train", "hypersim_val"):
            prepare_hypersim(sources["hypersim"], outs[name], split=name.split("_")[1], size=size, overwrite=overwrite)
        elif name == "vkitti2":
            prepare_vkitti2(sources["vkitti2"], outs[name], scenes=("Scene01",), variations=("morning",),
                            cameras=("Camera_0",), overwrite=overwrite)
        else:
            prepare_nyuv2(mat, outs[name], split="test", overwrite=overwrite)
        recorded[name] = wanted
        atomic_write_bytes(marker, json.dumps(recorded, indent=1).encode())
    return outs


def _read_marker(marker: Path) -> dict | None:
    """The per-output settings recorded in ``<data_dir>/raw/standin_settings.json``; None when absent or unreadable."""
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None
