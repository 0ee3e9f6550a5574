"""One build of the mini assets as one file that an instructor hands to a room: ``python -m genpercept_lessons assets
--export FILE`` on the machine that built it, ``assets --import FILE`` on every other.

The archive is a gzip-compressed tar: first ``genpercept-build.json`` (the build variant, its asset folders and the
versions of the packages that wrote them), then every asset folder of that build with its ``_COMPLETE.json``
manifest. It holds safetensors weights, JSON, text and Arrow dataset files only: nothing that unpickles. An import
checks every member and every manifest hash in a staging folder before anything lands in the cache, and then moves
each folder into place whole (an interrupted import leaves nothing half-written).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
import uuid
import zlib
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from genpercept_lessons.assets import MARKER, cache_root, is_complete, settings_hash
from genpercept_lessons.atomic import atomic_write_bytes, replace_folder
from genpercept_lessons.build_lock import exclusive, lock_is_held, read_status
from genpercept_lessons.mini.build import mini_asset_paths
from genpercept_lessons.profiles import DEFAULT_BUILD_FILE, mini_build

__all__ = ["HEADER", "ARCHIVE_FORMAT", "ALLOWED_SUFFIXES", "VERSIONED_PACKAGES", "ArchiveError", "export_build",
           "import_build"]

HEADER = "genpercept-build.json"
ARCHIVE_FORMAT = 1
ALLOWED_SUFFIXES = (".safetensors", ".json", ".arrow", ".txt")  # weights, configs, tokenizer merges, datasets
# the packages whose files the archive holds (or that named its folders): an archive imports only where they match
VERSIONED_PACKAGES = ("genpercept-lessons", "torch", "diffusers", "transformers", "datasets")
_HEADER_MAX_BYTES = 1 << 20


class ArchiveError(ValueError):
    """An asset archive that ``import_build`` refuses; the message says why and what to do."""


def _versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in VERSIONED_PACKAGES}


def export_build(file: str | os.PathLike, seed: int | None = None, precision: str | None = None) -> Path:
    """Write the mini build (``seed``, ``precision``: default the environment's) into the archive ``file``; return its path.

    Every asset folder must be complete and match its manifest. The file appears only once fully written.
    """
    if not isinstance(file, (str, os.PathLike)) or not str(file):
        raise TypeError(f"export_build: `file` must be a path, got {file!r}")
    build = mini_build(seed, precision)
    paths = mini_asset_paths(build["seed"], build["precision"])
    missing = [k for k, p in paths.items() if not is_complete(p, check_hashes=True)]
    if missing:
        raise FileNotFoundError(f"export_build: the mini assets {missing} of seed {build['seed']}, {build['precision']} "
                                "are not built (or no longer match their manifests); run `make assets` first")
    for folder in paths.values():
        odd = [p.name for p in folder.rglob("*") if p.is_file() and p.suffix not in ALLOWED_SUFFIXES]
        if odd:
            raise ValueError(f"export_build: {folder} holds files an import would refuse ({odd[:3]}); rebuild it")
    file = Path(file).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": ARCHIVE_FORMAT, "seed": build["seed"], "precision": build["precision"],
              "assets": {k: p.name for k, p in paths.items()}, "versions": _versions(),
              "created": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    blob = json.dumps(header, indent=1).encode()
    tmp = file.with_name(f".{file.name}.partial-{os.getpid()}")

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:  # no user names or ids of the instructor's machine
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    try:
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
            info = plain(tarfile.TarInfo(HEADER))
            info.size, info.mtime = len(blob), int(time.time())
            tar.addfile(info, io.BytesIO(blob))
            for folder in paths.values():
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    tar.add(path, arcname=f"{folder.name}/{path.relative_to(folder).as_posix()}", recursive=False,
                            filter=plain)
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
    return file


def _check_header(header: Any) -> tuple[int, str, dict[str, str]]:
    """(seed, precision, {asset: folder name}) of a readable header from this course's recipe and package versions."""
    if not isinstance(header, dict) or header.get("format") != ARCHIVE_FORMAT:
        raise ArchiveError(f"this archive's format is {header.get('format') if isinstance(header, dict) else '?'}; this "
                           f"course reads format {ARCHIVE_FORMAT}: export it again with this version of the course")
    theirs, ours = header.get("versions") or {}, _versions()
    other = {k: theirs.get(k) for k in VERSIONED_PACKAGES if theirs.get(k) != ours[k]}
    if other:
        said = ", ".join(f"{k} {v} (here {ours[k]})" for k, v in other.items())
        raise ArchiveError(f"this archive was built with other package versions: {said}. Weights and datasets from "
                           "other versions are not imported: install the same course version (`make setup` in the same "
                           "checkout as the instructor's) or build here with `make assets`")
    seed, precision = header.get("seed"), header.get("precision")
    try:
        expected = {k: p.name for k, p in mini_asset_paths(seed, precision).items()}
    except ValueError as err:
        raise ArchiveError(f"this archive is a build (seed {seed}, {precision}) this machine cannot use: {err}. Ask for "
                           "an fp32 build: `GENPERCEPT_MINI_PRECISION=fp32 make assets`, then `assets --export`") from None
    if header.get("assets") != expected:
        raise ArchiveError(f"this archive was built with other build settings (seed {seed}, {precision}): its folders "
                           f"{sorted((header.get('assets') or {}).values())}, where this version of the course builds "
                           f"{sorted(expected.values())}. Export it again from the same version of the course")
    return seed, precision, expected


def _check_member(member: tarfile.TarInfo, folders: set[str], seen: set[str]) -> PurePosixPath:
    """The member's relative path, or ArchiveError: links, devices, odd paths and file kinds other than ALLOWED_SUFFIXES."""
    name = member.name
    path = PurePosixPath(name)
    if member.issym() or member.islnk():
        raise ArchiveError(f"refused: {name!r} is a link (to {member.linkname!r}); an asset archive holds plain files only")
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(f"refused: {name!r} is not a plain file or folder (a device, pipe or other special file)")
    if path.is_absolute() or "\\" in name or ".." in path.parts or not path.parts or path.parts[0] not in folders:
        raise ArchiveError(f"refused: the member path {name!r} would leave the cache's asset folders "
                           f"(expected a path inside one of {sorted(folders)})")
    if member.isfile():
        if path.suffix not in ALLOWED_SUFFIXES:
            raise ArchiveError(f"refused: {name!r} is a {path.suffix or 'suffix-less'} file; an asset archive may hold "
                               f"only {', '.join(ALLOWED_SUFFIXES)} files (safetensors weights, JSON, text, Arrow "
                               "datasets), never pickled objects")
        if name in seen:
            raise ArchiveError(f"refused: {name!r} appears twice in the archive")
        seen.add(name)
    return path


def _verify(folder: Path) -> None:
    """ArchiveError unless ``folder`` holds exactly the files of its manifest, with their hashes, under its settings' name."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        recorded = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ArchiveError(f"refused: {folder.name}/ has no readable {MARKER} manifest") from None
    if f"{folder.name.rsplit('-', 1)[0]}-{settings_hash(marker.get('settings'))}" != folder.name:
        raise ArchiveError(f"refused: the manifest of {folder.name}/ records other build settings than its name says")
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MARKER}
    if on_disk != set(recorded):
        extra, lost = sorted(on_disk - set(recorded)), sorted(set(recorded) - on_disk)
        raise ArchiveError(f"refused: {folder.name}/ does not hold what its manifest lists (not in the manifest: "
                           f"{extra[:3]}, missing: {lost[:3]})")
    if not is_complete(folder, check_hashes=True):
        raise ArchiveError(f"refused: a file of {folder.name}/ does not match the sha256 its manifest records "
                           "(a damaged or altered archive); copy it again")


def import_build(file: str | os.PathLike) -> dict[str, Any]:
    """Install the build in archive ``file`` into the cache, checked first; return {"seed", "precision", "installed", "present"}.

    Refuses (ArchiveError) anything but safetensors, JSON, text and Arrow files, member paths that would leave the
    cache's asset folders, links and special files, and archives of other build settings or package versions. Folders
    already complete in the cache are kept. The cache's default build becomes the archive's (``profiles.mini_build``).
    """
    if not isinstance(file, (str, os.PathLike)) or not str(file):
        raise TypeError(f"import_build: `file` must be a path, got {file!r}")
    file = Path(file).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"import_build: no archive at '{file}' (expected a file written by `assets --export`)")
    cache = cache_root().expanduser()
    if lock_is_held(cache):
        status = read_status(cache)
        raise ArchiveError(f"a build is running in this cache (pid {status.get('pid')}, {status.get('what')}); importing "
                           "now would race it. Wait for it, or stop it (the import replaces what it would build), then "
                           "import again")
    try:
        tar = tarfile.open(file, "r:*")
    except (tarfile.TarError, OSError) as err:
        raise ArchiveError(f"'{file}' is not a readable asset archive ({type(err).__name__}); expected a file written "
                           "by `python -m genpercept_lessons assets --export`") from None
    with tar, exclusive(cache, f"importing {file.name}"):
        first = tar.next()
        if first is None or first.name != HEADER or not first.isfile() or first.size > _HEADER_MAX_BYTES:
            raise ArchiveError(f"'{file}' is not a GenPercept Lessons asset archive: its first member is "
                               f"{first.name if first else 'missing'!r}, not {HEADER!r}")
        try:
            header = json.loads(tar.extractfile(first).read())
        except ValueError:
            raise ArchiveError(f"'{file}': {HEADER} is not valid JSON") from None
        seed, precision, folders = _check_header(header)
        for old in cache.glob(".import-*"):  # left by an interrupted import (we hold the lock: nobody else imports)
            shutil.rmtree(old, ignore_errors=True)
        staging = cache / f".import-{uuid.uuid4().hex[:8]}"
        installed, present, seen = [], [], set()
        try:
            for member in tar:  # from the start again: the header was read above
                if member is first:
                    continue
                rel = _check_member(member, set(folders.values()), seen)
                if member.isdir():
                    continue
                dest = staging.joinpath(*rel.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            for name in folders.values():
                if not (staging / name).is_dir():
                    raise ArchiveError(f"refused: the archive lacks the asset folder {name}/ its header lists")
                _verify(staging / name)
            for key, name in folders.items():  # each folder lands whole (os.replace), checked above
                if is_complete(cache / name, check_hashes=True):
                    present.append(key)
                else:
                    replace_folder(staging / name, cache / name)
                    shutil.rmtree(cache / f"{name}.partial", ignore_errors=True)  # an unfinished build of it, if any
                    installed.append(key)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise ArchiveError(f"'{file}' is damaged or cut short ({type(err).__name__}: {err}); copy it again") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        atomic_write_bytes(cache / DEFAULT_BUILD_FILE, json.dumps({"seed": seed, "precision": precision}).encode())
    return {"seed": seed, "precision": precision, "installed": installed, "present": present}
