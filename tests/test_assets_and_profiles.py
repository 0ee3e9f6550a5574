"""The asset cache (hash keys, atomic builds, corruption detection) and the two profiles."""
from __future__ import annotations

import json

import pytest

from genpercept_lessons import get_profile
from genpercept_lessons.assets import asset_path, build_asset, cache_root, is_complete, settings_hash


def test_cache_root_follows_env(tmp_cache):
    assert cache_root() == tmp_cache


def test_hash_is_stable_and_order_free():
    assert settings_hash({"a": 1, "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})
    with pytest.raises(TypeError, match="settings"):
        settings_hash([1, 2])


def test_build_is_atomic_and_corruption_is_rebuilt(tmp_cache):
    settings = {"n": 3}
    final = asset_path("toy", settings)
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "data.txt").write_text("x" * 100)

    def crash(tmp):
        (tmp / "data.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_asset(final, settings, crash)
    assert not final.exists() and not is_complete(final)  # the half-built folder is never used
    build_asset(final, settings, build)
    assert is_complete(final) and len(calls) == 1
    assert json.loads((final / "_COMPLETE.json").read_text())["settings"] == settings
    build_asset(final, settings, build)
    assert len(calls) == 1  # cached
    (final / "data.txt").write_text("y" * 100)  # same size, different content
    assert not is_complete(final)
    build_asset(final, settings, build)
    assert len(calls) == 2 and (final / "data.txt").read_text() == "x" * 100


def test_asset_path_rejects_bad_kind(tmp_cache):
    with pytest.raises(ValueError, match="kind"):
        asset_path("a/b", {})


def test_profiles(monkeypatch, tmp_cache):
    monkeypatch.delenv("GENPERCEPT_PROFILE", raising=False)
    mini = get_profile()
    assert mini.name == "mini" and mini.device == "cpu" and mini.resolution == 64
    assert mini.depth_model.startswith(str(tmp_cache)) and "marigold-depth-" in mini.depth_model
    monkeypatch.setenv("GENPERCEPT_PROFILE", "full")
    full = get_profile()
    assert full.name == "full" and full.depth_model == "prs-eth/marigold-depth-v1-0" and full.resolution == 768
    assert get_profile("mini", resolution=32, device="cpu").resolution == 32
    assert "profile: full" in full.describe()


@pytest.mark.parametrize("args, kwargs, exc, match", [
    (("tiny",), {}, ValueError, "one of"),
    (("mini",), {"colour": 1}, TypeError, "unknown override"),
    (("mini",), {"device": "tpu"}, ValueError, "device"),
])
def test_profile_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        get_profile(*args, **kwargs)
