"""Which way a normals model's x axis points, and the one conversion between conventions. Introduced in notebook 06.

The course's frame is x right, y up, z toward the viewer: diffusers' ``visualize_normals`` docs, Marigold v1-1, the
MiniScenes and ``real_data.geometry.normals_from_depth`` all use it. E2E-FT's normals checkpoints predict x pointing
*left*: its Hypersim loader flips y and z and then negates the vector (E2E-FT ``training/dataloaders/load.py``) and its
Virtual KITTI script negates too (``depth-to-normal-translator/python/gen_vkitti_normals.py``), the frame of the DSINE
evaluation data it is scored on. Predictions leave a pipeline, and targets enter one, converted here and nowhere else.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["COURSE_CONVENTION", "NORMALS_CONVENTIONS", "CHECKPOINT_CONVENTIONS", "CONVENTION_FILE", "check_convention",
           "convert_normals", "checkpoint_convention", "normals_convention", "set_normals_convention", "write_convention"]

COURSE_CONVENTION = "x-right"
NORMALS_CONVENTIONS = ("x-right", "x-left")
# Released normals checkpoints whose frame is known (unlisted ones are taken as diffusers' x-right)
CHECKPOINT_CONVENTIONS = {
    "GonzaloMG/marigold-normals": "x-left",  # trained by the E2E-FT authors on E2E-FT's data
    "GonzaloMG/marigold-e2e-ft-normals": "x-left",
    "GonzaloMG/stable-diffusion-e2e-ft-normals": "x-left",
    "prs-eth/marigold-normals-v1-1": "x-right",  # diffusers' Marigold docs
}
CONVENTION_FILE = "genpercept_normals.json"  # written beside model_index.json by the course's trainers


def check_convention(fn: str, convention) -> str:
    """``convention`` if it is "x-right" or "x-left", else a ValueError naming ``fn``."""
    if convention not in NORMALS_CONVENTIONS:
        raise ValueError(f"{fn}: a normals convention must be one of {NORMALS_CONVENTIONS}, got {convention!r}")
    return convention


def convert_normals(normals, source: str, target: str = COURSE_CONVENTION, axis: int = -1):
    """Normals (numpy or torch, 3 components along ``axis``) from ``source``'s frame to ``target``'s: x negated if they differ.

    [N,H,W,3] uses axis -1, [N,3,H,W] axis 1; differentiable for torch; the input itself when the frames agree.
    """
    check_convention("convert_normals", source)
    check_convention("convert_normals", target)
    if normals.shape[axis] != 3:
        raise ValueError(f"convert_normals: expected 3 components along axis {axis}, got shape {tuple(normals.shape)}")
    if source == target:
        return normals
    shape = [1] * normals.ndim
    shape[axis] = 3
    if hasattr(normals, "new_tensor"):  # torch
        return normals * normals.new_tensor([-1.0, 1.0, 1.0]).reshape(shape)
    import numpy as np

    normals = np.asarray(normals)
    return normals * np.array([-1.0, 1.0, 1.0], dtype=normals.dtype).reshape(shape)


def checkpoint_convention(location: str | os.PathLike) -> str:
    """The frame a normals model predicts: a course-trained folder says it in ``CONVENTION_FILE``; hub ids by the table."""
    folder = Path(str(location)).expanduser()
    if folder.is_dir():
        record = folder / CONVENTION_FILE
        if record.is_file():
            try:
                return check_convention(f"checkpoint_convention ({record})", json.loads(record.read_text())["convention"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"checkpoint_convention: {record} is not a JSON object with a 'convention' key") from None
        return COURSE_CONVENTION
    return CHECKPOINT_CONVENTIONS.get(str(location), COURSE_CONVENTION)


def normals_convention(pipe) -> str:
    """The frame ``pipe`` (a normals pipeline) predicts in, as ``load_marigold`` recorded it; x-right if it did not."""
    return check_convention("normals_convention", getattr(pipe, "normals_convention", COURSE_CONVENTION))


def set_normals_convention(pipe, convention: str):
    """Record on ``pipe`` the frame it predicts in ("x-right" | "x-left"); returns ``pipe``."""
    pipe.normals_convention = check_convention("set_normals_convention", convention)
    return pipe


def write_convention(folder: str | os.PathLike, convention: str) -> None:
    """Write ``CONVENTION_FILE`` into a saved pipeline folder, so that loading it later knows its frame."""
    check_convention("write_convention", convention)
    (Path(folder) / CONVENTION_FILE).write_text(json.dumps({"convention": convention}) + "\n")
