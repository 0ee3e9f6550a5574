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


# Build variants (issue: every claim must hold on every learner's build)
def test_build_variant_follows_the_environment_and_names_its_own_folders(monkeypatch, tmp_cache):
    from genpercept_lessons import profiles
    from genpercept_lessons.mini.build import mini_asset_paths

    monkeypatch.delenv("GENPERCEPT_MINI_SEED", raising=False)
    monkeypatch.delenv("GENPERCEPT_MINI_PRECISION", raising=False)
    monkeypatch.setattr(profiles, "cpu_has_bf16", lambda: True)
    default = profiles.mini_build()
    assert default == {"seed": 0, "precision": "bf16", "requested": "auto"}
    monkeypatch.setattr(profiles, "cpu_has_bf16", lambda: False)
    assert profiles.mini_build()["precision"] == "fp32"  # auto = fp32 on a CPU without bf16 kernels
    monkeypatch.setenv("GENPERCEPT_MINI_SEED", "2")
    monkeypatch.setenv("GENPERCEPT_MINI_PRECISION", "fp32")
    p = get_profile("mini")
    assert (p.build_seed, p.build_precision) == (2, "fp32") and "seed 2, fp32" in p.describe()
    assert p.depth_model == str(mini_asset_paths(2, "fp32")["depth"])
    s = profiles.mini_build_settings()
    assert s["vae"]["seed"] == s["sd"]["seed"] == s["depth"]["seed"] == s["normals"]["seed"] == 2 and not s["depth"]["bf16"]
    assert s["data"] == profiles.mini_build_settings(0, "fp32")["data"]  # every build sees the same MiniScenes
    paths = {(seed, prec): mini_asset_paths(seed, prec) for seed in (0, 1) for prec in ("fp32",)}
    monkeypatch.setattr(profiles, "cpu_has_bf16", lambda: True)
    paths[(0, "bf16")] = mini_asset_paths(0, "bf16")
    for kind in ("vae", "sd", "depth", "normals"):
        assert len({str(v[kind]) for v in paths.values()}) == 3, kind  # seed and precision are in the cache key
    assert len({str(v["data"]) for v in paths.values()}) == len({str(v["captioned"]) for v in paths.values()}) == 1
    assert get_profile("mini", build_seed=1, build_precision="bf16").build_precision == "bf16"


def test_seed0_bf16_settings_keep_their_cache_key():
    # the default build's cache key is pinned, so a settings change that would make every learner rebuild is a
    # deliberate one (last changed when mini-SD's training went from 2,000 to 4,000 steps)
    from genpercept_lessons.profiles import mini_build_settings

    s = mini_build_settings(0, "bf16") if _has_bf16() else None
    if s is None:
        pytest.skip("this CPU has no bf16 kernels")
    assert {k: settings_hash(v) for k, v in s.items()} == {
        "data": "a80eeeea6c3d", "captioned": "32e95fe40354", "vae": "6ec00d91d842", "sd": "e15eab738dba",
        "depth": "3e543655f5ee", "normals": "5ef4dfd10e2c"}


def _has_bf16() -> bool:
    from genpercept_lessons.profiles import cpu_has_bf16

    return cpu_has_bf16()


@pytest.mark.parametrize("env, value, match", [
    ("GENPERCEPT_MINI_SEED", "-1", "non-negative integer"),
    ("GENPERCEPT_MINI_SEED", "one", "non-negative integer"),
    ("GENPERCEPT_MINI_PRECISION", "fp16", "GENPERCEPT_MINI_PRECISION must be one of"),
])
def test_bad_build_variant_in_the_environment_is_named(monkeypatch, env, value, match):
    from genpercept_lessons.profiles import mini_build

    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=match):
        mini_build()


def test_bf16_on_a_cpu_without_it_is_refused(monkeypatch):
    from genpercept_lessons import profiles
    from genpercept_lessons.mini import marigold_training

    monkeypatch.setattr(profiles, "cpu_has_bf16", lambda: False)
    with pytest.raises(ValueError, match="no bf16 kernels"):
        profiles.mini_build(0, "bf16")
    with pytest.raises(ValueError, match="`seed` must be"):
        profiles.mini_build(-3, "fp32")
    with pytest.raises(RuntimeError, match="GENPERCEPT_MINI_PRECISION=fp32"):
        marigold_training._use_bf16({"bf16": True})
    with pytest.raises(TypeError, match="only apply to the mini profile"):
        get_profile("full", build_seed=1)
