"""``python -m genpercept_lessons predict``: depth and normals PNGs (and a 16-bit depth PNG) for any image file.

Everything a learner can get wrong (a missing or unreadable file, a folder, missing mini assets, a model folder that
is not a Marigold pipeline) raises ``CLIError`` with one readable line; the command line prints it and exits 1.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from genpercept_lessons.tasks import TASKS

__all__ = ["CLIError", "OUTPUT_SUFFIXES", "read_image", "load_pipeline", "depth_to_16bit_png",
           "write_png", "predict_files"]

# what `predict` writes per input image and task: <stem><suffix>
OUTPUT_SUFFIXES = {"depth": ("_depth.png", "_depth16.png"), "normals": ("_normals.png",)}


class CLIError(Exception):
    """A mistake in what was asked (file, folder, profile, assets): the message says what to do; no traceback."""


def read_image(path: str | Path) -> np.ndarray:
    """Any image file PIL can read -> uint8 RGB [H,W,3] (alpha dropped, greyscale repeated); CLIError names what is wrong."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise CLIError(f"IMAGE '{path}' does not exist (expected an image file such as photo.jpg)")
    if p.is_dir():
        raise CLIError(f"IMAGE '{path}' is a folder, expected an image file (pass the images inside it, e.g. {p / '*.png'})")
    try:
        with Image.open(p) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit/float greyscale: scale to 8 bit first
                arr = np.asarray(img, dtype=np.float64)
                lo, hi = float(arr.min()), float(arr.max())
                img = Image.fromarray(np.uint8(np.round(255 * (arr - lo) / max(hi - lo, 1e-12))))
            rgb = np.array(img.convert("RGB"))
    except UnidentifiedImageError:
        head = p.read_bytes()[:16]
        raise CLIError(f"IMAGE '{path}' is not an image PIL can read (a {p.stat().st_size}-byte file starting with "
                       f"{head!r}); pass a PNG, JPEG, TIFF, BMP or WebP file") from None
    except PermissionError:
        raise CLIError(f"IMAGE '{path}' cannot be read: permission denied") from None
    except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt image data
        raise CLIError(f"IMAGE '{path}' could not be decoded ({type(err).__name__}: {err}); is the file complete?") from None
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 1:
        raise CLIError(f"IMAGE '{path}' has no pixels (shape {rgb.shape})")
    return rgb


def load_pipeline(profile, task: str, model: str | None = None):
    """``models.load_marigold`` for the command line: never builds mini assets; what goes wrong is a ``CLIError``."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from genpercept_lessons.models import load_marigold
    from genpercept_lessons.tasks import TASKS

    if task not in TASKS:
        raise CLIError(f"--task must be one of {TASKS}, got {task!r}")
    diffusers_logging.disable_progress_bar()  # a command line prints its own lines
    transformers_logging.disable_progress_bar()
    try:
        return load_marigold(profile, task, model=model, build_missing=False)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        hint = "" if profile.is_mini else "\nOn the command line: --model /path/to/pipeline-folder, or --profile mini."
        raise CLIError(f"{str(err).removeprefix('load_marigold: ')}{hint}") from None


def depth_to_16bit_png(depth: np.ndarray) -> bytes:
    """Depth [H,W] in [0,1] -> the bytes of a 16-bit greyscale PNG (0..65535), checked to read back as uint16."""
    from PIL import Image

    d = np.clip(np.nan_to_num(np.asarray(depth, dtype=np.float32), nan=0.0), 0.0, 1.0)
    if d.ndim != 2:
        raise ValueError(f"depth_to_16bit_png: `depth` must be [H,W], got shape {d.shape}")
    # what diffusers' MarigoldImageProcessor.export_depth_to_16bit_png does, minus its fromarray(mode="I;16") that
    # Pillow 13 rejects ("Invalid mode for data type"); a uint16 array becomes an "I;16" image by itself
    img = Image.fromarray(np.round(d * 65535).astype(np.uint16))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as back:
        back_arr = np.asarray(back)
    if back_arr.dtype != np.uint16 or back_arr.shape != d.shape:
        raise RuntimeError(f"depth_to_16bit_png: the PNG reads back as {back_arr.dtype} {back_arr.shape}, "
                           f"expected uint16 {d.shape}")
    return data


def write_png(path: str | Path, image) -> Path:
    """Write a PIL image or uint8 array [H,W,3] as PNG atomically (temp file + os.replace); ``bytes`` are written as they are."""
    from PIL import Image

    if isinstance(image, bytes):
        data = image
    else:
        img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        data = buf.getvalue()
    from genpercept_lessons.atomic import atomic_write_bytes

    atomic_write_bytes(path, data)
    return Path(path)


def _output_dir(out: str | Path) -> Path:
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out '{out}' is a file, expected a folder to write the PNGs into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"--out: cannot create the folder '{out}' ({err.strerror or err})") from None
    return out


def predict_files(paths, out, profile, tasks=TASKS, model: str | None = None, steps: int = 1,
                  spacing: str = "trailing", noise: str = "zeros", ensemble: int = 1,
                  processing_resolution: int | None = None, seed: int = 0, say=print) -> list[Path]:
    """Predict ``tasks`` for each image file in ``paths`` and write <stem>_depth.png, <stem>_depth16.png, <stem>_normals.png.

    Reads every image first (so a bad file fails before any model loads), then runs ``inference.predict`` with the
    given settings (default: 1 trailing step from zero noise, lesson 04's fast setting). Returns the written paths.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise CLIError("predict: give at least one IMAGE")
    stems = {}
    for p in paths:
        if p.stem in stems and stems[p.stem] != p:
            raise CLIError(f"IMAGE '{stems[p.stem]}' and '{p}' share the name '{p.stem}', so their outputs would "
                           "overwrite each other; rename one or run them separately")
        stems[p.stem] = p
    images = [read_image(p) for p in paths]
    out = _output_dir(out)
    import torch  # only now: a bad file is reported without waiting for torch to import

    from genpercept_lessons.inference import predict
    from genpercept_lessons.viz import colorize_depth, colorize_normals

    written = []
    for task in tasks:
        pipe = load_pipeline(profile, task, model)
        say(f"{task}: {model or getattr(profile, task + '_model')} on {profile.device} | {steps} step(s), "
            f"{spacing} spacing, {'zero' if noise == 'zeros' else noise} noise, ensemble {ensemble}")
        for path, rgb in zip(paths, images):
            gen = torch.Generator(device=pipe.device).manual_seed(seed) if noise == "gaussian" else None
            pred = predict(pipe, rgb[None], steps=steps, spacing=spacing, noise=noise, ensemble=ensemble,
                           generator=gen, processing_resolution=processing_resolution)[0]
            if task == "depth":
                files = [(out / f"{path.stem}_depth.png", colorize_depth(pred)),
                         (out / f"{path.stem}_depth16.png", depth_to_16bit_png(pred))]
            else:
                files = [(out / f"{path.stem}_normals.png", colorize_normals(pred))]
            for target, content in files:
                write_png(target, content)
                kind = "16-bit depth, 0..65535 = near..far" if target.name.endswith("_depth16.png") else "RGB"
                say(f"wrote {target} ({rgb.shape[1]}x{rgb.shape[0]}, {kind})")
                written.append(target)
    return written
