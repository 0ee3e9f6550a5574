"""Training data for fine-tuning: the MiniScenes split or a folder prepared by data_scripts/, with mixing weights."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["parse_data_spec", "load_training_data", "load_eval_data"]


def parse_data_spec(spec: str) -> tuple[str, float]:
    """'PATH[:WEIGHT]' or 'miniscenes[:WEIGHT]' -> (location, weight > 0). Introduced in notebook 05."""
    location, sep, weight = spec.rpartition(":")
    if not sep or not weight.replace(".", "", 1).isdigit():  # no weight given (or a Windows drive letter)
        location, weight = spec, "1"
    value = float(weight)
    if not location or not value > 0:
        raise ValueError(f"--train-data: expected PATH[:WEIGHT] with WEIGHT > 0 (e.g. /data/hypersim_train:0.9), got {spec!r}")
    return location, value


def load_training_data(location: str, split: str = "train"):
    """'miniscenes' -> the MiniScenes ``split``; else a folder written by data_scripts/prepare_*.py, numpy-formatted.

    ``$GENPERCEPT_DATA`` in ``location`` defaults to ~/genpercept_data. Introduced in notebook 05.
    """
    from datasets import load_from_disk

    from genpercept_lessons.mini.miniscenes import load_miniscenes

    if location == "miniscenes":
        return load_miniscenes(split)
    root = os.environ.get("GENPERCEPT_DATA") or str(Path("~/genpercept_data").expanduser())
    folder = Path(location.replace("$GENPERCEPT_DATA", root)).expanduser()
    if not (folder / "dataset_info.json").is_file() and not (folder / "state.json").is_file():
        raise FileNotFoundError(f"'{folder}' is not a prepared dataset folder; create it with data_scripts/prepare_"
                                "hypersim.py, prepare_vkitti2.py or prepare_nyuv2.py (see data_scripts/README.md)")
    return load_from_disk(str(folder)).with_format("numpy", dtype=None)


def load_eval_data(profile):
    """The held-out scenes a profile's lessons measure on: MiniScenes test (mini), prepared NYUv2 test (full). Introduced in notebook 02.

    Evaluate on them with ``profile.eval_settings`` (the protocol, and in the full profile the papers' processing
    resolution).
    """
    from genpercept_lessons.profiles import Profile

    if not isinstance(profile, Profile):
        raise TypeError(f"load_eval_data: `profile` must be a Profile (get_profile(...)), got {type(profile).__name__}")
    return load_training_data(profile.eval_data, split="test")
