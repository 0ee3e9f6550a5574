"""The set-up check of notebook 00: each check says ✓ or exactly what to do."""
from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from importlib import metadata

from genpercept_lessons.profiles import Profile, get_profile

__all__ = ["Check", "REQUIRED_PACKAGES", "check_environment", "format_checks"]

# the packages every lesson imports, with the oldest version that works (diffusers' Marigold docs: the Marigold pipelines need diffusers >= 0.28)
REQUIRED_PACKAGES = {"torch": "2.1", "diffusers": "0.28", "transformers": "4.37", "datasets": "2.18", "numpy": "1.26",
                     "scipy": "1.11", "matplotlib": "3.8", "ipywidgets": "8.1", "tqdm": "4.66", "h5py": "3.10"}


@dataclass
class Check:
    """One line of the set-up check: what was checked, whether it passed, what was found, and the fix if not."""

    name: str
    ok: bool
    found: str
    fix: str = ""

    def __str__(self) -> str:
        line = f"{'✓' if self.ok else '✗'} {self.name}: {self.found}"
        return line if self.ok else f"{line}\n    → {self.fix}"


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def _ram_gb() -> tuple[float, float]:
    import psutil

    vm = psutil.virtual_memory()
    return vm.total / 1024 ** 3, vm.available / 1024 ** 3


def check_environment(profile: Profile | str | None = None) -> list[Check]:
    """Run every set-up check for ``profile``: Python, packages, device, RAM, assets. Introduced in notebook 00."""
    if profile is None or isinstance(profile, str):
        profile = get_profile(profile)
    checks = [Check("python", sys.version_info >= (3, 10), platform.python_version(),
                    "use Python 3.10 or newer (`make setup` creates .venv with the python3 on your PATH)")]
    for pkg, oldest in REQUIRED_PACKAGES.items():
        try:
            v = metadata.version(pkg)
            ok = _version_tuple(v) >= _version_tuple(oldest)
            checks.append(Check(pkg, ok, v, f"upgrade: pip install -U '{pkg}>={oldest}' (or re-run `make setup`)"))
        except metadata.PackageNotFoundError:
            checks.append(Check(pkg, False, "not installed", "run `make setup` (or `pip install -e .` in this folder)"))

    import torch

    cuda = torch.cuda.is_available()
    dev = profile.device
    dev_ok = not dev.startswith("cuda") or cuda
    detail = f"{dev} (CUDA available: {cuda}" + (f", {torch.cuda.get_device_name(0)}" if cuda else "") + ")"
    checks.append(Check("device", dev_ok, detail, "no CUDA GPU is visible: use the mini profile or device='cpu'"))
    total, free = _ram_gb()
    need = 4.0 if profile.is_mini else 16.0
    checks.append(Check("RAM", free >= need, f"{free:.1f} GB free of {total:.1f} GB (profile needs ~{need:.0f} GB)",
                        "close other programs, or use the mini profile"))

    if profile.is_mini:
        from genpercept_lessons.mini.build import mini_asset_paths, mini_assets_ready

        variant = {"seed": profile.build_seed, "precision": profile.build_precision}
        ready, paths = mini_assets_ready(**variant), mini_asset_paths(**variant)
        checks.append(Check("mini build", True, f"seed {profile.build_seed}, {profile.build_precision} "
                            "(GENPERCEPT_MINI_SEED / GENPERCEPT_MINI_PRECISION pick another)"))
        if not all(ready.values()):
            from genpercept_lessons.assets import cache_root
            from genpercept_lessons.build_lock import build_state, progress_text
            from genpercept_lessons.mini.background import BUILD_MINUTES

            state, status = build_state(cache_root())
            log = f"; log: {status['log']}" if status.get("log") else ""
            if state == "running":
                missing = f"being built in the background ({progress_text(cache_root())}{log})"
                fix = "wait: a lesson that needs it waits too"
            else:
                stopped = (f"the last build stopped{log}; " if state in ("crashed", "failed") else "")
                missing, fix = "not built", (f"{stopped}`make lab` builds the assets in the background ({BUILD_MINUTES}, "
                                             "once), or run `make assets` in a terminal")
        for name, ok in ready.items():
            checks.append(Check(f"asset {name}", ok, str(paths[name]) if ok else missing, "" if ok else fix))
    else:
        from pathlib import Path

        for name in ("depth_model", "normals_model"):
            loc = getattr(profile, name)
            local = Path(loc).is_dir()
            checks.append(Check(name, True, f"{loc} ({'local folder' if local else 'hub id: downloaded on first use'})"))
    return checks


def format_checks(checks: list[Check]) -> str:
    """All checks as text, one per line, with a closing verdict."""
    bad = [c for c in checks if not c.ok]
    tail = "All checks passed ✓" if not bad else f"{len(bad)} check(s) need attention (see → lines above)"
    return "\n".join(map(str, checks)) + "\n" + tail
