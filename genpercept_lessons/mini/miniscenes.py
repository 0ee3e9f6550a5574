"""MiniScenes as 🤗 ``datasets`` datasets, rendered once into the asset cache: the labelled train/test splits (image,
depth, normals, ...) and mini-SD's pretraining set, many more views with a caption each and no labels."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genpercept_lessons.assets import asset_path, build_asset, is_complete
from genpercept_lessons.mini.scenes import render_scene, scene_caption
from genpercept_lessons.profiles import mini_build_settings

__all__ = ["SPLITS", "COLUMNS", "miniscenes_features", "build_miniscenes", "load_miniscenes", "build_captioned_views",
           "load_captioned_views"]

SPLITS = ("train", "test")
COLUMNS = ("image", "depth", "normals", "mask", "label", "K")
_TEST_OFFSET = 1_000_000  # test scenes come from a disjoint index range of the same seed


def miniscenes_features(height: int, width: int):
    """The dataset schema shared by MiniScenes and the prepared real datasets (full profile)."""
    from datasets import Array2D, Array3D, Features

    return Features({
        "image": Array3D((height, width, 3), "uint8"),
        "depth": Array2D((height, width), "float32"),
        "normals": Array3D((height, width, 3), "float32"),
        "mask": Array2D((height, width), "bool"),
        "label": Array2D((height, width), "uint8"),
        "K": Array2D((3, 3), "float32"),
    })


def _render(args):
    seed, index, height, width = args
    s = render_scene(seed, index, height, width)
    return {"image": s.image, "depth": s.depth, "normals": s.normals, "mask": s.mask, "label": s.label, "K": s.K}


def _render_captioned(args):
    seed, index, height, width = args
    return {"image": render_scene(seed, index, height, width).image, "caption": scene_caption(seed, index, height, width)}


def _rows(seed: int, indices, height: int, width: int, desc: str, workers: int, render=_render,
          progress: tuple[str, int, int] | None = None):
    """Rendered rows; ``progress`` = (name, rows before these, rows in all) is reported to processes waiting on a build."""
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    from genpercept_lessons.build_lock import report_progress

    jobs = [(seed, int(i), height, width) for i in indices]
    name, before, total = progress or ("", 0, len(jobs))

    def reported(rows):
        for i, row in enumerate(rows, 1):
            if name:
                report_progress(name, before + i, total, unit="views")
            yield row

    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            yield from reported(tqdm(pool.imap(render, jobs, chunksize=16), total=len(jobs), desc=desc))
    else:
        yield from reported(render(j) for j in tqdm(jobs, desc=desc))


def _check_settings(caller: str, settings, keys) -> None:
    if not isinstance(settings, dict):
        raise TypeError(f"{caller}: `settings` must be a dict, got {type(settings).__name__}")
    for key in keys:
        if key not in settings:
            raise KeyError(f"{caller}: `settings` lacks {key!r}; got keys {sorted(settings)}")


def build_miniscenes(settings: dict[str, Any], folder: str | os.PathLike, workers: int | None = None) -> Path:
    """Render MiniScenes with ``settings`` (seed, n_train, n_test, height, width) into ``folder``/{train,test}. Introduced in notebook 00."""
    from datasets import Dataset

    _check_settings("build_miniscenes", settings, ("seed", "n_train", "n_test", "height", "width"))
    folder = Path(folder)
    workers = workers or min(2, os.cpu_count() or 1)
    h, w, seed = settings["height"], settings["width"], settings["seed"]
    features = miniscenes_features(h, w)
    ranges = {"train": range(settings["n_train"]), "test": range(_TEST_OFFSET, _TEST_OFFSET + settings["n_test"])}
    total, before = sum(len(r) for r in ranges.values()), 0
    for split, idx in ranges.items():
        rows = list(_rows(seed, idx, h, w, f"MiniScenes {split}", workers, progress=("miniscenes", before, total)))
        before += len(idx)
        ds = Dataset.from_dict({c: [r[c] for r in rows] for c in COLUMNS}, features=features)
        ds.save_to_disk(str(folder / split))
    return folder


def load_miniscenes(split: str = "train", settings: dict[str, Any] | None = None):
    """MiniScenes ``split`` as a numpy-formatted ``datasets.Dataset``, rendered first if the cache lacks it. Introduced in notebook 00.

    Columns: image uint8 [H,W,3], depth float32 [H,W] (m), normals float32 [H,W,3], mask bool [H,W], label uint8
    [H,W], K float32 [3,3].
    """
    from datasets import load_from_disk

    if split not in SPLITS:
        raise ValueError(f"load_miniscenes: `split` must be one of {SPLITS}, got {split!r}")
    settings = settings or mini_build_settings()["data"]
    folder = asset_path("miniscenes", settings)
    if not is_complete(folder):
        print(f"MiniScenes are not in the cache yet: rendering them into {folder} (about a minute), or waiting for "
              "the build that is rendering them.")
        build_asset(folder, settings, lambda tmp: build_miniscenes(settings, tmp))
    ds = load_from_disk(str(folder / split))
    # dtype=None keeps the stored dtypes (uint8 images and labels); the default numpy format widens ints to int64
    return ds.with_format("numpy", dtype=None)


def build_captioned_views(settings: dict[str, Any], folder: str | os.PathLike, workers: int | None = None) -> Path:
    """Render ``settings["n"]`` views of MiniScenes stream ``settings["seed"]`` with their captions into ``folder``. Introduced in notebook 01."""
    from datasets import Array3D, Dataset, Features, Value

    _check_settings("build_captioned_views", settings, ("seed", "n", "height", "width"))
    folder = Path(folder)
    h, w = settings["height"], settings["width"]
    rows = list(_rows(settings["seed"], range(settings["n"]), h, w, "captioned views", workers or min(2, os.cpu_count() or 1),
                      _render_captioned, progress=("captioned", 0, settings["n"])))
    features = Features({"image": Array3D((h, w, 3), "uint8"), "caption": Value("string")})
    Dataset.from_dict({c: [r[c] for r in rows] for c in features}, features=features).save_to_disk(str(folder / "train"))
    return folder


def load_captioned_views(settings: dict[str, Any] | None = None):
    """mini-SD's pretraining set: RGB views (uint8 [H,W,3]) and captions (str), no labels; rendered first if the cache lacks it.

    Its scenes come from another stream than the labelled MiniScenes, so no view is also a fine-tuning scene.
    Introduced in notebook 01.
    """
    from datasets import load_from_disk

    settings = settings or mini_build_settings()["captioned"]
    folder = asset_path("miniscenes-captioned", settings)
    if not is_complete(folder):
        print(f"The captioned views are not in the cache yet: rendering them into {folder} (a minute or two), or "
              "waiting for the build that is rendering them.")
        build_asset(folder, settings, lambda tmp: build_captioned_views(settings, tmp))
    return load_from_disk(str(folder / "train")).with_format("numpy", dtype=None)
