"""Virtual KITTI 2 raw frames (jpg + 16-bit cm PNG) → rows of the course schema at the KITTI benchmark crop.

As E2E-FT (``training/dataloaders/load.py``) and Marigold (``src/dataset/*_dataset.py``) read them.

Layout: ``<root>/SceneXX/<variation>/frames/rgb/Camera_K/rgb_NNNNN.jpg`` and
``<root>/SceneXX/<variation>/frames/depth/Camera_K/depth_NNNNN.png`` (from ``vkitti_2.0.3_rgb.tar`` and
``vkitti_2.0.3_depth.tar``).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from genpercept_lessons.mini.scenes import IGNORE_LABEL
from genpercept_lessons.real_data.geometry import crop_intrinsics, normals_from_depth

__all__ = [
    "VKITTI2_SCENES",
    "VKITTI2_VARIATIONS",
    "VKITTI2_CAMERAS",
    "VKITTI2_FOCAL_PX",
    "KITTI_CROP_SIZE",
    "VKITTI2_DOWNLOAD",
    "kitti_benchmark_crop",
    "vkitti2_frames",
    "read_vkitti2_frame",
]

# E2E-FT's training subset (E2E-FT ``training/dataloaders/load.py``): 5 scenes × 5 weathers × 2 cameras
VKITTI2_SCENES = ("Scene01", "Scene02", "Scene06", "Scene18", "Scene20")
VKITTI2_VARIATIONS = ("morning", "fog", "rain", "sunset", "overcast")
VKITTI2_CAMERAS = ("Camera_0", "Camera_1")
VKITTI2_FOCAL_PX = 725.0087  # fx = fy, used for normals by E2E-FT (D2NT gen_vkitti_normals.py), E2E-FT ``training/dataloaders/load.py``
KITTI_CROP_SIZE = (352, 1216)  # KITTI benchmark crop: bottom 352 rows, centred 1216 columns
VKITTI2_MAX_DEPTH = 80.0  # m; Marigold and E2E-FT cap depth at 80 m (Marigold's `src/dataset/*_dataset.py`)
VKITTI2_FAR = 65535  # 655.35 m: the far/sky code (Marigold comment `max_depth=80, # 655.35`)
VKITTI2_DOWNLOAD = ("Naver Labs Europe's Virtual KITTI 2 page: vkitti_2.0.3_rgb.tar (rgb) and "
                    "vkitti_2.0.3_depth.tar (depth), both extracted into the same root")


def kitti_benchmark_crop(height: int, width: int) -> tuple[int, int]:
    """(top, left) of the KITTI benchmark crop 352×1216 (bottom rows, centred columns) in an H×W frame. Introduced in notebook 05."""
    ch, cw = KITTI_CROP_SIZE
    if not isinstance(height, (int, np.integer)) or not isinstance(width, (int, np.integer)) \
            or height < ch or width < cw:
        raise ValueError(f"kitti_benchmark_crop: the frame must be at least {ch}x{cw} (KITTI frames are 375x1242), "
                         f"got {height}x{width}")
    return int(height - ch), int((width - cw) // 2)


def _names(fn: str, arg: str, values, prefix: str) -> list[str]:
    if isinstance(values, (str, int)) or not all(isinstance(v, (str, int)) for v in values):
        raise ValueError(f"{fn}: `{arg}` must be a sequence of names or numbers, got {values!r}")
    out = []
    for v in values:
        if prefix == "Scene" and (isinstance(v, int) or str(v).isdigit()):
            v = f"Scene{int(v):02d}"
        elif prefix == "Camera_" and (isinstance(v, int) or str(v).isdigit()):
            v = f"Camera_{int(v)}"
        out.append(str(v))
    return out


def vkitti2_frames(root: str | os.PathLike, scenes=VKITTI2_SCENES, variations=VKITTI2_VARIATIONS,
                   cameras=VKITTI2_CAMERAS) -> list[tuple[Path, Path]]:
    """Sorted (rgb.jpg, depth.png) path pairs for every scene × variation × camera found; missing combinations warn. Introduced in notebook 05.

    Scenes may be given as "Scene01", "01" or 1; cameras as "Camera_0" or 0. Raises FileNotFoundError when nothing
    is found, or when an rgb frame has no depth PNG.
    """
    fn = "vkitti2_frames"
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{fn}: root folder {root} not found; extract {VKITTI2_DOWNLOAD}")
    scenes, variations = _names(fn, "scenes", scenes, "Scene"), _names(fn, "variations", variations, "")
    cameras = _names(fn, "cameras", cameras, "Camera_")
    pairs, missing = [], []
    for scene in scenes:
        for variation in variations:
            for camera in cameras:
                frames = root / scene / variation / "frames"
                rgb_dir = frames / "rgb" / camera
                rgbs = sorted(rgb_dir.glob("rgb_*.jpg")) if rgb_dir.is_dir() else []
                if not rgbs:
                    missing.append(f"{scene}/{variation}/{camera}")
                    continue
                for rgb in rgbs:
                    depth = frames / "depth" / camera / ("depth_" + rgb.stem[len("rgb_"):] + ".png")
                    if not depth.is_file():
                        raise FileNotFoundError(f"{fn}: depth map {depth} for {rgb} not found; extract "
                                                f"vkitti_2.0.3_depth.tar into {root}")
                    pairs.append((rgb, depth))
    if not pairs:
        raise FileNotFoundError(f"{fn}: no frames found under {root} for scenes {scenes} × variations {variations} × "
                                f"cameras {cameras} (expected SceneXX/<variation>/frames/rgb/Camera_K/rgb_NNNNN.jpg); "
                                f"extract {VKITTI2_DOWNLOAD}")
    if missing:
        warnings.warn(f"{fn}: skipping {len(missing)} missing combination(s) under {root}: {', '.join(missing[:10])}"
                      f"{' …' if len(missing) > 10 else ''}", stacklevel=2)
    return pairs


def _read_depth_cm(path: Path) -> np.ndarray:
    """The 16-bit depth PNG as uint16 centimetres; 8-bit or colour PNGs are refused."""
    from PIL import Image

    with Image.open(path) as img:
        mode = img.mode
        arr = np.asarray(img)
    if mode in ("I;16", "I;16L", "I;16B"):
        return arr.astype(np.uint16)
    if mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 65535:  # older Pillow opens 16-bit as int32
        return arr.astype(np.uint16)
    raise ValueError(f"read_vkitti2_frame: depth PNG {path} must be a 16-bit single-channel PNG in centimetres, got "
                     f"PIL mode {mode!r} ({arr.dtype}); an 8-bit or colour PNG (e.g. a re-saved preview) cannot hold "
                     f"depth in cm. Use the original files from vkitti_2.0.3_depth.tar")


def read_vkitti2_frame(rgb_path: str | os.PathLike, depth_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """One VKITTI2 frame as a schema row at the 352×1216 KITTI benchmark crop: image uint8, depth float32 m, normals, mask, label 255, K.

    Depth = PNG cm / 100; 65535 (far/sky), 0 and ≥ 80 m are invalid (depth 0). Normals from the cropped depth with
    ``normals_from_depth`` and f = 725.0087 px, principal point at the frame centre (W/2, H/2) moved by the crop.
    Introduced in notebook 05.
    """
    from PIL import Image

    rgb_path, depth_path = Path(rgb_path), Path(depth_path)
    for name, p in (("rgb_path", rgb_path), ("depth_path", depth_path)):
        if not p.is_file():
            raise FileNotFoundError(f"read_vkitti2_frame: `{name}` {p} not found; it comes from {VKITTI2_DOWNLOAD}")
    with Image.open(rgb_path) as img:
        image = np.asarray(img.convert("RGB"))
    raw = _read_depth_cm(depth_path)
    if raw.ndim != 2 or raw.shape != image.shape[:2]:
        raise ValueError(f"read_vkitti2_frame: depth {depth_path} is {raw.shape}, rgb {rgb_path} is {image.shape}; "
                         "they must be the same H×W")
    h, w = raw.shape
    top, left = kitti_benchmark_crop(h, w)
    ch, cw = KITTI_CROP_SIZE
    image = image[top:top + ch, left:left + cw]
    raw = raw[top:top + ch, left:left + cw]
    depth = raw.astype(np.float64) / 100.0
    mask = (raw != VKITTI2_FAR) & (raw > 0) & (depth < VKITTI2_MAX_DEPTH)
    depth = np.where(mask, depth, 0.0)
    K = np.array([[VKITTI2_FOCAL_PX, 0, w / 2], [0, VKITTI2_FOCAL_PX, h / 2], [0, 0, 1]])
    K = crop_intrinsics(K, top, left)
    normals, _ = normals_from_depth(depth, K, mask)
    return {
        "image": np.ascontiguousarray(image, dtype=np.uint8),
        "depth": depth.astype(np.float32),
        "normals": normals,
        "mask": mask,
        "label": np.full((ch, cw), IGNORE_LABEL, dtype=np.uint8),
        "K": K,
    }
