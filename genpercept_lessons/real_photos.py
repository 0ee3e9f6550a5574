"""Real photographs, offline: openly licensed pictures that ship inside scikit-image's wheel, and the Middlebury 2014
motorcycle, a real photo with measured depth. What a model trained on MiniScenes never saw. Introduced in notebook 08.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

__all__ = ["PHOTOS", "MOTORCYCLE_CALIBRATION", "load_photo", "load_motorcycle", "save_photos"]

# name -> (scikit-image's loader in skimage.data, what it shows, its licence as scikit-image's docstrings give it)
PHOTOS = {
    "motorcycle": ("stereo_motorcycle", "a motorcycle in a garage, with measured depth",
                   "Middlebury 2014 stereo benchmark (Scharstein et al., GCPR 2014), left view, downsampled 4x"),
    "coffee": ("coffee", "a cup of coffee on a wooden table", "CC0, Rachel Michetti (Pikolo Espresso Bar)"),
    "chelsea": ("chelsea", "a cat", "CC0, Stefan van der Walt"),
    "astronaut": ("astronaut", "astronaut Eileen Collins", "NASA, public domain"),
    "rocket": ("rocket", "a Falcon 9 launch", "SpaceX, released into the public domain"),
}
# calibration of the downsampled motorcycle (scikit-image's `stereo_motorcycle` docstring): depth = f * B / (d + doffs)
MOTORCYCLE_CALIBRATION = {"focal_px": 994.978, "cx_px": 311.193, "cy_px": 254.877, "doffs_px": 31.086,
                          "baseline_m": 0.193001}


def _skimage_data():
    try:
        import skimage.data
    except ImportError:
        raise ImportError("the real photos come with scikit-image: run `make setup` (or `pip install scikit-image`)") from None
    return skimage.data


def load_photo(name: str) -> np.ndarray:
    """The photo ``name`` (one of ``PHOTOS``) as uint8 RGB [H,W,3], read from scikit-image's wheel (no network). Introduced in notebook 08."""
    if name not in PHOTOS:
        raise ValueError(f"load_photo: `name` must be one of {sorted(PHOTOS)}, got {name!r}")
    image = getattr(_skimage_data(), PHOTOS[name][0])()
    if name == "motorcycle":
        image = image[0]  # (left, right, disparity): the left view
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def load_motorcycle() -> dict[str, np.ndarray]:
    """Middlebury's motorcycle as a MiniScenes-like row: image uint8 [500,741,3], depth float32 [500,741] (m; 0 where unknown), mask bool, K [3,3].

    Depth comes from the benchmark's ground-truth disparity d and calibration: depth = f · B / (d + doffs), valid where
    the disparity is known (~93 % of the pixels). Introduced in notebook 08.
    """
    left, _, disparity = _skimage_data().stereo_motorcycle()
    c = MOTORCYCLE_CALIBRATION
    mask = np.isfinite(disparity)
    depth = np.where(mask, c["focal_px"] * c["baseline_m"] / (np.where(mask, disparity, 0) + c["doffs_px"]), 0)
    K = np.array([[c["focal_px"], 0, c["cx_px"]], [0, c["focal_px"], c["cy_px"]], [0, 0, 1]], np.float32)
    return {"image": np.ascontiguousarray(left, dtype=np.uint8), "depth": depth.astype(np.float32), "mask": mask, "K": K}


def save_photos(folder: str | os.PathLike, names: list[str] | None = None) -> list[Path]:
    """Write photos ``names`` (default all of ``PHOTOS``) as ``<folder>/<name>.png`` plus ``LICENSES.txt``; return the PNG paths."""
    from PIL import Image

    from genpercept_lessons.atomic import atomic_write_bytes

    names = list(PHOTOS) if names is None else list(names)
    unknown = [n for n in names if n not in PHOTOS]
    if unknown or not names:
        raise ValueError(f"save_photos: `names` must be among {sorted(PHOTOS)}, got {names!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        buf = io.BytesIO()
        Image.fromarray(load_photo(name)).save(buf, format="PNG")
        atomic_write_bytes(folder / f"{name}.png", buf.getvalue())
        written.append(folder / f"{name}.png")
    lines = [f"{n}.png: {PHOTOS[n][1]}. {PHOTOS[n][2]} (shipped inside scikit-image's wheel, skimage.data.{PHOTOS[n][0]})"
             for n in names]
    atomic_write_bytes(folder / "LICENSES.txt", ("\n".join(lines) + "\n").encode())
    return written
