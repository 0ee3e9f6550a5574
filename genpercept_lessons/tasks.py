"""The two dense tasks Marigold is released for, and how to tell which one a pipeline or a pipeline folder does."""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["TASKS", "PIPELINE_CLASS_NAMES", "check_task", "pipeline_task", "folder_task", "pipeline_class"]

TASKS = ("depth", "normals")
PIPELINE_CLASS_NAMES = {"depth": "MarigoldDepthPipeline", "normals": "MarigoldNormalsPipeline"}


def check_task(fn: str, task) -> str:
    """``task`` if it is one of TASKS, else a ValueError that names the function ``fn``."""
    if task not in TASKS:
        raise ValueError(f"{fn}: `task` must be one of {TASKS}, got {task!r}")
    return task


def pipeline_task(pipe) -> str:
    """'depth' or 'normals' for a diffusers Marigold pipeline; TypeError for anything else. Introduced in notebook 01."""
    name = type(pipe).__name__
    for task, class_name in PIPELINE_CLASS_NAMES.items():
        if name == class_name:
            return task
    raise TypeError(f"`pipe` must be a diffusers MarigoldDepthPipeline or MarigoldNormalsPipeline, got {name}")


def folder_task(folder: str | os.PathLike) -> str | None:
    """'depth' or 'normals' from a pipeline folder's model_index.json ``_class_name``; None if it does not say."""
    try:
        name = json.loads((Path(folder) / "model_index.json").read_text()).get("_class_name", "")
    except (OSError, ValueError, AttributeError):
        return None
    return {v: k for k, v in PIPELINE_CLASS_NAMES.items()}.get(name)


def pipeline_class(task: str):
    """The diffusers pipeline class for ``task`` (``MarigoldDepthPipeline`` or ``MarigoldNormalsPipeline``)."""
    import diffusers

    return getattr(diffusers, PIPELINE_CLASS_NAMES[check_task("pipeline_class", task)])
