"""The set-up check of notebook 00 in both profiles: each line says ✓ or what to do."""
from __future__ import annotations

from genpercept_lessons import get_profile
from genpercept_lessons.setup_check import Check, check_environment, format_checks


def test_mini_profile_reports_missing_assets_with_a_fix(tmp_cache):
    checks = {c.name: c for c in check_environment(get_profile("mini"))}
    assert checks["python"].ok and checks["torch"].ok and checks["diffusers"].ok
    for name in ("asset data", "asset vae", "asset depth", "asset normals"):
        assert not checks[name].ok and "make assets" in checks[name].fix  # the cache is empty here


def test_full_profile_names_local_folders_and_hub_ids(tiny_pipeline_dirs):
    profile = get_profile("full", device="cpu", depth_model=str(tiny_pipeline_dirs["depth"]))
    checks = {c.name: c for c in check_environment(profile)}
    assert "local folder" in checks["depth_model"].found
    assert "hub id" in checks["normals_model"].found and profile.normals_model in checks["normals_model"].found
    assert not any(name.startswith("asset ") for name in checks)


def test_format_marks_failures_with_their_fix():
    text = format_checks([Check("a", True, "1.0"), Check("b", False, "missing", "install b")])
    assert "✓ a: 1.0" in text and "✗ b: missing\n    → install b" in text
    assert text.endswith("1 check(s) need attention (see → lines above)")
    assert format_checks([Check("a", True, "1.0")]).endswith("All checks passed ✓")
