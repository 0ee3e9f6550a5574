"""One build at a time in an asset cache: an OS file lock beside the assets, a status file saying who builds what, and
progress files, so that every other process (a lesson, a second terminal) waits with a progress bar instead of
starting a second build.

The lock is an ``flock`` on ``<cache>/.build.lock``: the operating system releases it when its
holder exits, however it exits, so a status that still says "running" while nobody holds the lock is a crashed build.
Worker processes a build spawns inherit the right to build through ``$GENPERCEPT_BUILD_LOCKS``.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from genpercept_lessons.atomic import atomic_write_bytes

__all__ = ["LOCK_FILE", "STATUS_FILE", "PROGRESS_DIR", "holds_lock", "lock_is_held", "exclusive", "read_status",
           "build_state", "report_progress", "overall_progress", "progress_text", "wait_while_building",
           "log_tail"]

LOCK_FILE = ".build.lock"
STATUS_FILE = ".build-status.json"  # {pid, what, started, state, log, plan, error, ended}
PROGRESS_DIR = ".build-progress"  # one {step, steps} file per training loop of the running build
_HELD_ENV = "GENPERCEPT_BUILD_LOCKS"  # lock files this process, or the build that spawned it, holds
_PROGRESS_ENV = "GENPERCEPT_BUILD_PROGRESS"  # where report_progress writes, set while a build holds its lock
_last_report: dict[str, float] = {}


def _lock_file(folder: str | os.PathLike) -> Path:
    return Path(folder).expanduser().resolve() / LOCK_FILE


def holds_lock(folder: str | os.PathLike) -> bool:
    """True when this process (or the build process that started it) holds the build lock of ``folder``."""
    return str(_lock_file(folder)) in os.environ.get(_HELD_ENV, "").split(os.pathsep)


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on ``path``, or None when another process holds it."""
    try:
        import fcntl
    except ImportError:
        raise RuntimeError("the course's asset builds need a POSIX system (Linux, macOS); on Windows run it in WSL, "
                           "as the README says") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:  # someone else builds
        os.close(fd)
        return None


def _unlock(fd: int) -> None:
    os.close(fd)  # closing the descriptor releases the flock


def lock_is_held(folder: str | os.PathLike) -> bool:
    """True while some process holds the build lock of ``folder`` (this one included)."""
    if holds_lock(folder):
        return True
    if not _lock_file(folder).exists():  # never built here: nobody holds it (and looking creates nothing)
        return False
    fd = _try_lock(_lock_file(folder))
    if fd is None:
        return True
    _unlock(fd)
    return False


def read_status(folder: str | os.PathLike) -> dict[str, Any]:
    """The last build's status in ``folder`` ({} if none): pid, what, started, state, log, plan, error, ended."""
    path = Path(folder).expanduser() / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def build_state(folder: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """("running" | "crashed" | "failed" | "finished" | "none", the status): crashed = said running, but nobody holds the lock."""
    status = read_status(folder)
    if lock_is_held(folder):
        return "running", status
    state = status.get("state", "none")
    return ("crashed" if state == "running" else state), status


def _write_status(folder: Path, status: dict[str, Any]) -> None:
    atomic_write_bytes(folder / STATUS_FILE, json.dumps(status, indent=1, default=str).encode())


@contextmanager
def exclusive(folder: str | os.PathLike, what: str, *, until: Callable[[], bool] | None = None,
              plan: list[dict[str, Any]] | None = None, log: str | None = None) -> Iterator[bool]:
    """Hold the build lock of ``folder`` for the block (yields True); while another process holds it, wait with a bar.

    If ``until()`` becomes true while waiting (what we wanted was built by the other process), yields False without
    taking the lock. Re-entrant: a process that already holds it (or a worker of the build that does) goes straight
    in. ``what`` names the build in the status file; ``plan`` (stages with a folder and a weight, see
    ``overall_progress``) and ``log`` let waiting processes show progress and where to read more.
    """
    folder = Path(folder).expanduser().resolve()
    if holds_lock(folder):
        yield True
        return
    lock = _lock_file(folder)
    while True:
        fd = _try_lock(lock)
        if fd is not None:
            break
        if wait_while_building(folder, until or (lambda: False), why=f"waiting to build {what}") == "ready":
            yield False
            return
    progress = folder / PROGRESS_DIR
    saved = {k: os.environ.get(k) for k in (_HELD_ENV, _PROGRESS_ENV)}
    status = {"pid": os.getpid(), "what": what, "started": time.time(), "state": "running", "log": log,
              "plan": plan or []}
    try:
        for old in progress.glob("*.json") if progress.is_dir() else []:
            old.unlink(missing_ok=True)
        _write_status(folder, status)
        os.environ[_HELD_ENV] = os.pathsep.join(filter(None, [saved[_HELD_ENV], str(lock)]))
        os.environ[_PROGRESS_ENV] = str(progress)
        yield True
        status.update(state="finished", ended=time.time())
    except BaseException as err:
        status.update(state="failed", ended=time.time(), error=f"{type(err).__name__}: {err}"[:500])
        raise
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            _write_status(folder, status)
        finally:
            _unlock(fd)


def report_progress(name: str, step: int, steps: int, every: float = 2.0, unit: str = "steps") -> None:
    """Record that loop ``name`` is at ``step`` of ``steps`` ``unit`` for waiting processes (no-op outside a locked build)."""
    where = os.environ.get(_PROGRESS_ENV)
    now = time.monotonic()
    if not where or (step < steps and now - _last_report.get(name, -every) < every):
        return
    _last_report[name] = now
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path / f"{name}.json", json.dumps({"step": int(step), "steps": int(steps), "unit": unit}).encode())


def overall_progress(folder: str | os.PathLike) -> tuple[float | None, str]:
    """(fraction done in [0, 1] or None if the build has no plan, what it is doing) of the build running in ``folder``.

    A plan stage is {"name", "folder", "weight", "progress"}: done when its folder is complete, else the fraction its
    training loop ``progress`` reported; weights are the stages' share of the build time.
    """
    from genpercept_lessons.assets import is_complete

    folder = Path(folder).expanduser()
    status = read_status(folder)
    plan = status.get("plan") or []
    if not plan:
        return None, f"building {status.get('what', 'an asset')}"
    done, training, waiting = 0.0, "", ""
    for stage in plan:
        frac = 1.0 if is_complete(folder / stage["folder"], check_hashes=False) else 0.0
        if frac < 1 and stage.get("progress"):
            try:
                p = json.loads((folder / PROGRESS_DIR / f"{stage['progress']}.json").read_text())
                frac = min(p["step"] / max(p["steps"], 1), 0.999)
                training = training or f"{stage['name']} {p['step']:,}/{p['steps']:,} {p.get('unit', 'steps')}"
            except (OSError, ValueError, KeyError):
                pass
        waiting = waiting or ("" if frac >= 1 else stage["name"])
        done += stage["weight"] * frac
    return done / sum(s["weight"] for s in plan), training or waiting


def progress_text(folder: str | os.PathLike) -> str:
    """How far the build running in ``folder`` is, as words: e.g. "37 %, now mini-SD 1,200/2,000 steps"."""
    frac, doing = overall_progress(folder)
    return f"{100 * frac:.0f} %, now {doing}" if frac is not None else doing


def log_tail(status: dict[str, Any], lines: int = 5) -> str:
    """The last ``lines`` lines of the build log named in ``status`` (tqdm's carriage returns resolved), or ''."""
    try:
        text = Path(status["log"]).read_text(errors="replace")
    except (KeyError, TypeError, OSError):
        return ""
    rows = [r.rstrip("\r").rsplit("\r", 1)[-1] for r in text.replace("\r\n", "\n").split("\n")]
    return "\n".join([r for r in rows if r.strip()][-lines:])


def wait_while_building(folder: str | os.PathLike, until: Callable[[], bool], why: str = "waiting",
                        poll: float = 2.0) -> str:
    """Wait, with a progress bar, until ``until()`` is true ("ready") or nobody holds the build lock any more ("free")."""
    from tqdm.auto import tqdm

    folder = Path(folder).expanduser()
    if until():
        return "ready"
    if not lock_is_held(folder):
        return "free"
    status = read_status(folder)
    started = status.get("started")
    ago = f", started {(time.time() - started) / 60:.0f} min ago" if started else ""
    log = f"; its log: {status['log']}" if status.get("log") else ""
    print(f"{why}: another process (pid {status.get('pid', '?')}) is building {status.get('what', 'the assets')}"
          f"{ago}{log}. This goes on by itself when it is ready; nothing needs to be restarted.", flush=True)
    bar = tqdm(total=100, desc="mini assets", unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]{postfix}")
    try:
        while True:
            if until():
                return "ready"
            if not lock_is_held(folder):
                return "free"
            frac, doing = overall_progress(folder)
            if frac is not None:
                bar.n = round(100 * frac, 1)
            bar.set_postfix_str(doing, refresh=False)
            bar.refresh()
            time.sleep(poll)
    finally:
        bar.close()
