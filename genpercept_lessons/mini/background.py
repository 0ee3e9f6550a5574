"""The mini assets built in the background: ``make lab`` opens JupyterLab at once while ``python -m genpercept_lessons
assets --background`` builds, and a lesson that needs an asset waits for it with a progress bar (one build at a time,
``build_lock``); a build that crashed is reported and started again, resuming from its checkpoints."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from genpercept_lessons.assets import cache_root, is_complete
from genpercept_lessons.build_lock import (
    build_state,
    exclusive,
    holds_lock,
    lock_is_held,
    log_tail,
    progress_text,
    wait_while_building,
)
from genpercept_lessons.mini.build import mini_asset_paths
from genpercept_lessons.profiles import mini_build

__all__ = ["STAGES", "BUILD_MINUTES", "build_plan", "build_command", "run_build", "start_background_build",
           "ensure_mini_assets", "build_report"]

# (asset, what a learner reads, share of the build time, the training loop's progress name): seconds of a build on
# 2 cores (README: data and VAE from the seed-1 fresh clone, mini-SD and the UNets from seed 0); the two UNets train
# side by side, so each counts half of their time
STAGES = (("data", "MiniScenes", 50, "miniscenes"), ("captioned", "captioned views", 75, "captioned"), ("vae", "VAE", 560, "vae"),
          ("sd", "mini-SD", 2050, "mini-sd"), ("depth", "depth UNet", 470, "unet-depth"),
          ("normals", "normals UNet", 470, "unet-normals"))
BUILD_MINUTES = "55-65 minutes on 2 CPU cores"


def _variant(seed: int | None, precision: str | None) -> tuple[int, str]:
    build = mini_build(seed, precision)
    return build["seed"], build["precision"]


def build_plan(seed: int | None = None, precision: str | None = None) -> list[dict[str, Any]]:
    """The build's stages for ``build_lock.overall_progress``: [{"name", "folder", "weight", "progress"}, ...]."""
    paths = mini_asset_paths(*_variant(seed, precision))
    return [{"name": name, "folder": paths[key].name, "weight": weight, "progress": progress}
            for key, name, weight, progress in STAGES]


def _ready(paths: list[Path]) -> bool:
    return all(is_complete(p, check_hashes=False) for p in paths)


def build_command() -> list[str]:
    """The command a background build runs (the foreground ``assets`` command, in a process of its own)."""
    return [sys.executable, "-m", "genpercept_lessons", "assets"]


def run_build(seed: int | None = None, precision: str | None = None) -> dict[str, Path]:
    """Build the mini assets in this process, holding the cache's build lock; if another build runs, wait for it first."""
    seed, precision = _variant(seed, precision)
    paths = mini_asset_paths(seed, precision)
    with exclusive(cache_root(), f"the mini assets (seed {seed}, {precision})", until=lambda: _ready(list(paths.values())),
                   plan=build_plan(seed, precision), log=os.environ.get("GENPERCEPT_BUILD_LOG")) as ours:
        if ours:
            from genpercept_lessons.mini.build import build_mini_assets

            return build_mini_assets(seed, precision)
    print(f"mini assets ready (seed {seed}, {precision}), built by the other process")
    return paths


def start_background_build(seed: int | None = None, precision: str | None = None,
                           wait_start: float = 120.0) -> dict[str, Any]:
    """Start ``build_command()`` detached (it outlives the caller), logging to ``<cache>/logs/``; return {"state", ...}.

    "ready": nothing to build; "running": a build already runs (its status); "started": {"pid", "log"}, once the new
    process holds the build lock (or has already ended, e.g. on an error its log shows).
    """
    seed, precision = _variant(seed, precision)
    cache = cache_root().expanduser().resolve()
    if _ready(list(mini_asset_paths(seed, precision).values())):
        return {"state": "ready"}
    state, status = build_state(cache)
    if state == "running":
        return {**status, "state": "running"}
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"build-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    env = dict(os.environ, GENPERCEPT_CACHE=str(cache), GENPERCEPT_MINI_SEED=str(seed),
               GENPERCEPT_MINI_PRECISION=precision, GENPERCEPT_BUILD_LOG=str(log), PYTHONUNBUFFERED="1")
    env.pop("GENPERCEPT_BUILD_LOCKS", None)  # a fresh process: it takes the lock itself
    with open(log, "ab") as out:  # a session of its own: closing JupyterLab or the terminal leaves it running
        proc = subprocess.Popen(build_command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    deadline = time.monotonic() + wait_start
    while proc.poll() is None and not lock_is_held(cache) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {"state": "started", "pid": proc.pid, "log": str(log)}


def ensure_mini_assets(keys: list[str], seed: int | None = None, precision: str | None = None) -> None:
    """Return once the mini assets ``keys`` (e.g. ["depth"]) are built, waiting for the background build with a progress bar.

    Starts the background build if none runs; a build that crashed or failed is reported and started again once
    (it resumes from its checkpoints); a second failure raises RuntimeError with the end of its log.
    """
    seed, precision = _variant(seed, precision)
    paths = mini_asset_paths(seed, precision)
    unknown = [k for k in keys if k not in paths]
    if unknown or not keys:
        raise ValueError(f"ensure_mini_assets: `keys` must name mini assets among {sorted(paths)}, got {keys!r}")
    need = [paths[k] for k in keys]
    cache = cache_root()
    if _ready(need) or holds_lock(cache):  # the build itself never waits for itself
        return
    what = ", ".join(keys)
    for attempt in range(2):
        state, status = build_state(cache)
        if state != "running":
            if state in ("crashed", "failed"):
                why = status.get("error") or "its process ended before it finished"
                print(f"The last build of the mini assets stopped ({why}; log: {status.get('log')}). "
                      "Starting it again: it resumes where it stopped.", flush=True)
            started = start_background_build(seed, precision)
            if started["state"] == "started":
                print(f"Building the mini assets in the background ({BUILD_MINUTES}, once; log: {started['log']}). "
                      f"This cell waits for the {what} model and goes on by itself.", flush=True)
        wait_while_building(cache, lambda: _ready(need), why=f"this cell needs the mini {what} model")
        if _ready(need):
            return
    state, status = build_state(cache)
    raise RuntimeError(f"the mini {what} model could not be built: the background build stopped twice. The end of its "
                       f"log ({status.get('log')}):\n{log_tail(status)}\nRun `make assets` in a terminal to see the "
                       "whole error.")


def build_report(seed: int | None = None, precision: str | None = None) -> str:
    """One paragraph on the mini build: ready, being built (percent, stage, log), stopped (end of its log) or not started."""
    seed, precision = _variant(seed, precision)
    paths = mini_asset_paths(seed, precision)
    if _ready(list(paths.values())):
        return f"✓ the mini assets (seed {seed}, {precision}) are built: {cache_root()}"
    cache = cache_root()
    state, status = build_state(cache)
    log = f"\n  log: {status['log']}" if status.get("log") else ""
    if state == "running":
        started = (time.time() - status.get("started", time.time())) / 60
        return (f"… the mini assets are being built in the background (pid {status.get('pid')}, started {started:.0f} "
                f"min ago): {progress_text(cache)}.{log}\n  A lesson that needs a model not built yet waits for it with "
                "a progress bar.")
    if state in ("crashed", "failed"):
        why = status.get("error") or "its process ended before it finished"
        tail = log_tail(status, 3)
        return (f"✗ the last build of the mini assets stopped ({why}).{log}" + (f"\n  its last lines:\n{tail}" if tail else "")
                + "\n  → `make lab`, `make assets` or any lesson that needs a model starts it again; it resumes where "
                "it stopped.")
    return (f"✗ the mini assets (seed {seed}, {precision}) are not built yet → `make lab` builds them in the background "
            f"({BUILD_MINUTES}, once), or run `make assets` in a terminal.")
