"""The asset cache: generated data and models live in folders keyed by a hash of their build settings.

A folder counts as built only when its ``_COMPLETE.json`` manifest (settings + size and sha256 of
every file) matches what is on disk; a build happens in ``<name>.partial`` and is renamed into place
only once complete, so an interrupted or corrupted build is detected and rebuilt, never used.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from genpercept_lessons.atomic import atomic_write_bytes, replace_folder

__all__ = [
    "cache_root",
    "settings_hash",
    "asset_path",
    "is_complete",
    "build_asset",
    "file_sha256",
    "METADATA_FILE",
    "read_metadata",
]

MARKER = "_COMPLETE.json"
METADATA_FILE = "genpercept_metadata.json"  # training settings and held-out quality, beside a mini model


def cache_root() -> Path:
    """Where generated assets live: ``$GENPERCEPT_CACHE``, else ``$XDG_CACHE_HOME/genpercept_lessons``, else ``~/.cache/genpercept_lessons``."""
    env = os.environ.get("GENPERCEPT_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "genpercept_lessons"


def settings_hash(settings: dict[str, Any]) -> str:
    """A short stable hash (12 hex digits) of a JSON-serialisable settings dict."""
    if not isinstance(settings, dict):
        raise TypeError(f"settings_hash: `settings` must be a dict, got {type(settings).__name__}")
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def asset_path(kind: str, settings: dict[str, Any]) -> Path:
    """The folder for asset ``kind`` built with ``settings``: ``cache_root()/<kind>-<hash>``."""
    if not kind or "/" in kind:
        raise ValueError(f"asset_path: `kind` must be a plain name like 'miniscenes', got {kind!r}")
    return cache_root() / f"{kind}-{settings_hash(settings)}"


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes (read in 1 MiB chunks), as asset manifests and the hub cache name them."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest(folder: Path) -> dict[str, list]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER)
    return {str(p.relative_to(folder)): [p.stat().st_size, file_sha256(p)] for p in files}


def is_complete(folder: str | os.PathLike, check_hashes: bool = True) -> bool:
    """True when ``folder`` holds a finished build whose files match its manifest (sizes, and sha256 if asked)."""
    folder = Path(folder)
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError):
        return False
    for rel, (size, digest) in recorded.items():
        p = folder / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
        if check_hashes and file_sha256(p) != digest:
            return False
    return True


def build_asset(final: str | os.PathLike, settings: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Run ``build(partial_dir)`` unless ``final`` is already complete; then write the manifest and rename into place.

    The partial folder (``<final>.partial``) is kept between attempts so that a training step inside
    ``build`` can resume from its own checkpoints after an interruption. The build holds the build lock of
    ``final``'s folder (``build_lock.exclusive``): while another process holds it, this waits for it instead.
    """
    from genpercept_lessons.build_lock import exclusive

    final = Path(final)
    if is_complete(final):
        return final
    # one build at a time in a cache: if another process is building, wait for it (it may be building this very folder)
    with exclusive(final.parent, final.name, until=lambda: is_complete(final, check_hashes=False)) as ours:
        if not ours or is_complete(final):
            return final
        if final.exists():  # a corrupted or half-renamed build: never use it
            shutil.rmtree(final)
        partial = final.with_name(final.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        build(partial)
        marker = {"settings": settings, "files": _manifest(partial)}
        atomic_write_bytes(partial / MARKER, json.dumps(marker, indent=1, default=str).encode())
        replace_folder(partial, final)
    return final


def read_metadata(folder: str | os.PathLike) -> dict[str, Any]:
    """The training settings and held-out quality recorded beside a mini pipeline or VAE. Introduced in notebook 01."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METADATA_FILE} in {folder}; build the mini assets with `make assets`")
    return json.loads(path.read_text())
