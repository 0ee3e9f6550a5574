"""Build once, hand to a room: export a whole mini build as one archive, import it into another cache after checking
every member and manifest hash, and refuse every kind of archive that must not land (each with its message)."""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from genpercept_lessons.assets import MARKER, build_asset, cache_root, is_complete
from genpercept_lessons.mini import archive
from genpercept_lessons.mini.archive import HEADER, ArchiveError, export_build, import_build
from genpercept_lessons.mini.build import mini_asset_paths
from genpercept_lessons.profiles import DEFAULT_BUILD_FILE, mini_build, mini_build_settings


def _fake_build(seed: int = 0, precision: str = "fp32") -> dict[str, Path]:
    """Every asset folder of a build, with small files of the kinds a real one holds (weights, configs, merges, Arrow)."""
    from safetensors.numpy import save_file

    def make(key):
        def build(tmp):
            (tmp / "unet").mkdir()
            save_file({"w": np.full((4, 4), float(seed), np.float32)}, str(tmp / "unet" / "model.safetensors"))
            (tmp / "unet" / "config.json").write_text(json.dumps({"asset": key}))
            (tmp / "tokenizer").mkdir()
            (tmp / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
            (tmp / "train").mkdir()
            (tmp / "train" / "data-00000-of-00001.arrow").write_bytes(os.urandom(2048))
        return build

    paths, settings = mini_asset_paths(seed, precision), mini_build_settings(seed, precision)
    for key, path in paths.items():
        build_asset(path, settings[key], make(key))  # the build's own settings: they name the folder
    return paths


def _clear_build_variant(monkeypatch):
    for key in ("GENPERCEPT_MINI_SEED", "GENPERCEPT_MINI_PRECISION"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def clean_env(monkeypatch):
    _clear_build_variant(monkeypatch)


@pytest.fixture
def exported(tmp_path, monkeypatch, clean_env):
    """(archive file, the exported folders) of a fake seed-1 fp32 build in one cache; GENPERCEPT_CACHE then points at an empty one."""
    monkeypatch.setenv("GENPERCEPT_CACHE", str(tmp_path / "instructor"))
    folders = _fake_build(1, "fp32")
    file = export_build(tmp_path / "room" / "build.tar.gz", 1, "fp32")
    monkeypatch.setenv("GENPERCEPT_CACHE", str(tmp_path / "learner"))
    return file, folders


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MARKER).read_text())["files"]


def test_export_then_import_into_an_empty_cache(exported):
    file, folders = exported
    with tarfile.open(file) as tar:
        names = tar.getnames()
    assert names[0] == HEADER and all(n.split("/")[0] in {p.name for p in folders.values()} for n in names[1:])
    done = import_build(file)
    assert done == {"seed": 1, "precision": "fp32", "installed": list(folders), "present": []}
    for key, src in folders.items():
        dest = cache_root() / src.name
        assert is_complete(dest, check_hashes=True) and _manifest(dest) == _manifest(src)
    assert not list(cache_root().glob(".import-*"))  # the staging folder is gone
    # the imported build is this cache's default now: lessons use it without setting any variable
    assert json.loads((cache_root() / DEFAULT_BUILD_FILE).read_text()) == {"seed": 1, "precision": "fp32"}
    assert mini_build() == {"seed": 1, "precision": "fp32", "requested": "fp32"}
    assert import_build(file)["present"] == list(folders)  # a second import keeps what is there


def test_the_environment_still_picks_another_build(exported, monkeypatch):
    import_build(exported[0])
    monkeypatch.setenv("GENPERCEPT_MINI_SEED", "2")
    assert mini_build()["seed"] == 2 and mini_build(seed=3)["seed"] == 3


def test_export_needs_a_complete_build(tmp_cache, clean_env, tmp_path):
    with pytest.raises(FileNotFoundError, match="not built"):
        export_build(tmp_path / "x.tar.gz", 0, "fp32")
    assert not (tmp_path / "x.tar.gz").exists()


def test_cli_export_and_import(exported, tmp_path, capsys, monkeypatch):
    from genpercept_lessons.cli.main import main

    assert main(["assets", "--import", str(exported[0])]) == 0
    assert "imported the mini build (seed 1, fp32)" in capsys.readouterr().out
    monkeypatch.setenv("GENPERCEPT_MINI_SEED", "1")
    monkeypatch.setenv("GENPERCEPT_MINI_PRECISION", "fp32")
    assert main(["assets", "--export", str(tmp_path / "again.tar.gz")]) == 0
    assert "make lab IMPORT=again.tar.gz" in capsys.readouterr().out
    assert main(["assets", "--import", str(tmp_path / "nothing.tar.gz")]) == 1
    assert "no archive at" in capsys.readouterr().err


# --- refusals: a valid header followed by one bad member, or a bad header ---------------------------------------------

def _rewrite(src: Path, dest: Path, header=None, extra=(), drop=None, change=None) -> Path:
    """Copy archive ``src`` to ``dest`` with another header, extra (TarInfo, bytes) members, a member dropped or changed."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w:gz") as tout:
        for member in tin:
            data = tin.extractfile(member).read() if member.isfile() else None
            if member.name == HEADER and header is not None:
                data = json.dumps(header(json.loads(data))).encode()
                member.size = len(data)
            if drop and member.name.endswith(drop):
                continue
            if change and member.name.endswith(change):
                data = bytes([data[0] ^ 1]) + data[1:]
            tout.addfile(member, io.BytesIO(data) if data is not None else None)
        for info, data in extra:
            tout.addfile(info, io.BytesIO(data) if data is not None else None)
    return dest


def _member(name: str, data: bytes = b"x", kind=tarfile.REGTYPE, link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def _refused(file: Path, match: str) -> None:
    with pytest.raises(ArchiveError, match=match):
        import_build(file)
    cache = cache_root()
    landed = [p.name for p in cache.iterdir() if not p.name.startswith(".")] if cache.exists() else []
    assert landed == [], f"a refused import left {landed} in the cache"


def _first_folder(file: Path) -> str:
    with tarfile.open(file) as tar:
        return tar.getnames()[1].split("/")[0]


@pytest.mark.parametrize("suffix", [".pt", ".pkl", ".bin", ".npy", ""])
def test_refuses_files_that_are_not_weights_json_or_datasets(exported, tmp_path, suffix):
    file, _ = exported
    folder = _first_folder(file)
    bad = _rewrite(file, tmp_path / "bad.tar.gz", extra=[_member(f"{folder}/unet/evil{suffix}")])
    _refused(bad, "may hold only .safetensors, .json, .arrow, .txt files")


@pytest.mark.parametrize("name", ["../evil.json", "/etc/evil.json", "{folder}/../../evil.json", "elsewhere/x.json",
                                  "{folder}\\..\\evil.json"])
def test_refuses_member_paths_that_leave_the_cache(exported, tmp_path, name):
    file, _ = exported
    bad = _rewrite(file, tmp_path / "bad.tar.gz", extra=[_member(name.format(folder=_first_folder(file)))])
    _refused(bad, "would leave the cache's asset folders")
    assert not (tmp_path / "evil.json").exists()


@pytest.mark.parametrize("kind, what", [(tarfile.SYMTYPE, "is a link"), (tarfile.LNKTYPE, "is a link"),
                                        (tarfile.CHRTYPE, "not a plain file"), (tarfile.FIFOTYPE, "not a plain file")])
def test_refuses_links_and_special_files(exported, tmp_path, kind, what):
    file, _ = exported
    bad = _rewrite(file, tmp_path / "bad.tar.gz",
                   extra=[_member(f"{_first_folder(file)}/unet/w.safetensors", kind=kind, link="/etc/passwd")])
    _refused(bad, what)


def test_refuses_other_package_versions(exported, tmp_path):
    def older(h):
        h["versions"]["diffusers"] = "0.30.0"
        return h

    _refused(_rewrite(exported[0], tmp_path / "bad.tar.gz", header=older), "other package versions: diffusers 0.30.0")


def test_refuses_other_build_settings(exported, tmp_path):
    def renamed(h):
        h["assets"]["vae"] = "mini-vae-000000000000"
        return h

    _refused(_rewrite(exported[0], tmp_path / "bad.tar.gz", header=renamed), "other build settings")


def test_refuses_another_format_and_a_missing_header(exported, tmp_path):
    def newer(h):
        h["format"] = 99
        return h

    _refused(_rewrite(exported[0], tmp_path / "bad.tar.gz", header=newer), "format is 99")
    _refused(_rewrite(exported[0], tmp_path / "bad2.tar.gz", drop=HEADER), "not a GenPercept Lessons asset archive")
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive at all")
    _refused(tmp_path / "junk.tar.gz", "not a readable asset archive")


def test_refuses_a_file_that_does_not_match_its_manifest(exported, tmp_path):
    _refused(_rewrite(exported[0], tmp_path / "bad.tar.gz", change="model.safetensors"), "does not match the sha256")
    _refused(_rewrite(exported[0], tmp_path / "bad2.tar.gz", drop="merges.txt"), "does not hold what its manifest lists")
    extra = _member(f"{_first_folder(exported[0])}/unet/extra.json", b"{}")
    _refused(_rewrite(exported[0], tmp_path / "bad3.tar.gz", extra=[extra]), "not in the manifest")
    _refused(_rewrite(exported[0], tmp_path / "bad4.tar.gz", change=MARKER), "no readable _COMPLETE.json manifest")


def test_refuses_a_bf16_build_on_a_cpu_without_bf16(exported, tmp_path, monkeypatch):
    import genpercept_lessons.profiles as profiles

    def bf16(h):
        h["precision"] = "bf16"
        return h

    monkeypatch.setattr(profiles, "cpu_has_bf16", lambda: False)
    _refused(_rewrite(exported[0], tmp_path / "bad.tar.gz", header=bf16), "Ask for an fp32 build")


def test_refuses_a_truncated_archive(exported, tmp_path):
    data = exported[0].read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    _refused(tmp_path / "cut.tar.gz", "damaged or cut short")


def test_an_interrupted_import_leaves_nothing_half_written(exported, monkeypatch):
    calls = []

    def interrupted(partial, final):
        calls.append(final)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(partial, final)

    real = archive.replace_folder
    monkeypatch.setattr(archive, "replace_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_build(exported[0])
    folders = [p for p in cache_root().iterdir() if not p.name.startswith(".")]
    assert len(folders) == 2 and all(is_complete(p, check_hashes=True) for p in folders)  # whole folders, or none
    assert not list(cache_root().glob(".import-*")) and not (cache_root() / DEFAULT_BUILD_FILE).exists()
    monkeypatch.setattr(archive, "replace_folder", real)
    assert sorted(import_build(exported[0])["present"]) == sorted(["data", "captioned"])  # the rerun completes it


def test_import_refuses_while_a_build_runs(exported):
    import subprocess
    import sys

    code = ("import sys, time; from genpercept_lessons.build_lock import exclusive\n"
            "with exclusive(sys.argv[1], 'a build'):\n print('in', flush=True); time.sleep(20)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(cache_root())], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "in"
        _refused(exported[0], "a build is running in this cache")
    finally:
        proc.kill()
        proc.wait()


# --- the real build: export it, import it into an empty cache, and the lessons run there without building -----------

def _real_build_ready() -> bool:
    from genpercept_lessons.mini.build import mini_assets_ready

    return all(mini_assets_ready().values())


@pytest.mark.skipif(not _real_build_ready(), reason="mini assets not built: run `make assets` (make test does it first)")
def test_the_real_build_exported_and_imported_runs_the_course(tmp_path, monkeypatch):
    import time

    from genpercept_lessons.course.site import execute_notebook

    build = mini_build()  # the build this run's GENPERCEPT_MINI_SEED / _PRECISION chose: the one `make test` built
    _clear_build_variant(monkeypatch)  # the learner's room sets neither
    t = time.perf_counter()
    file = export_build(tmp_path / "genpercept-build.tar.gz", build["seed"], build["precision"])
    exported = time.perf_counter() - t
    room = tmp_path / "learner-cache"
    monkeypatch.setenv("GENPERCEPT_CACHE", str(room))
    t = time.perf_counter()
    done = import_build(file)
    imported = time.perf_counter() - t
    assert done["installed"] == ["data", "captioned", "vae", "sd", "depth", "normals"]
    assert mini_build() == {**build, "requested": build["precision"]}
    print(f"archive {file.stat().st_size / 1e6:.0f} MB: export {exported:.0f} s, import {imported:.0f} s")
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    for lesson in ("00_setup_check.ipynb", "01_loading_marigold.ipynb"):
        execute_notebook(notebooks / lesson)  # raises, naming the cell, if one fails
    from genpercept_lessons.build_lock import read_status

    assert not (room / "logs").exists() and read_status(room)["what"].startswith("importing")  # nothing was built there
