"""``python -m genpercept_lessons doctor``: the set-up check of notebook 00 as text, with a verdict and the next step."""
from __future__ import annotations

__all__ = ["ADVISORY_CHECKS", "essential_failures", "next_step", "doctor_report"]

# checks that only warn: free RAM changes from minute to minute and a lesson may still fit
ADVISORY_CHECKS = ("RAM",)


def essential_failures(checks) -> list:
    """The failed checks that stop the course from running (everything but ``ADVISORY_CHECKS``)."""
    return [c for c in checks if not c.ok and c.name not in ADVISORY_CHECKS]


def next_step(checks, profile) -> str:
    """One line saying what to do now, from the first kind of failure found (packages, device, assets), else where to start."""
    bad = essential_failures(checks)
    names = {c.name for c in bad}
    if names & {"python"}:
        return "install Python 3.10 or newer, then run `make setup`"
    if any(not n.startswith("asset ") and n != "device" for n in names):
        pkgs = ", ".join(sorted(n for n in names if not n.startswith("asset ") and n != "device"))
        return f"run `make setup` (it installs {pkgs}), then `python -m genpercept_lessons doctor` again"
    if "device" in names:
        return "no CUDA GPU is visible: run with --device cpu, or use the mini profile (--profile mini)"
    assets = [c for c in bad if c.name.startswith("asset ")]
    if assets:
        if assets[0].found.startswith("being built"):
            return ("the mini assets are being built in the background: open the lessons (`make lab`); one that needs "
                    "a model not built yet waits for it")
        from genpercept_lessons.mini.background import BUILD_MINUTES

        return (f"run `make lab` (builds the mini assets in the background, {BUILD_MINUTES}) or "
                "`make assets`, then `python -m genpercept_lessons doctor` again")
    ram = [c for c in checks if not c.ok and c.name in ADVISORY_CHECKS]
    start = ("run `make lab` and open notebooks/00_setup_check.ipynb" if profile.is_mini else
             "run `make lab`, or fine-tune from a terminal as in the README's \"Running the full recipe on a GPU\"")
    return ("close other programs to free memory (the lessons may still run); then " if ram else "") + start


def doctor_report(profile) -> tuple[str, bool]:
    """(the report text, whether every essential check passed) for ``profile``; never builds or downloads anything."""
    from genpercept_lessons.setup_check import check_environment, format_checks

    checks = check_environment(profile)
    ok = not essential_failures(checks)
    lines = ["GenPercept Lessons: set-up check", profile.describe(), "", format_checks(checks)]
    advisory = [c.name for c in checks if not c.ok and c.name in ADVISORY_CHECKS]
    if ok and advisory:
        lines.append(f"({', '.join(advisory)} is advisory: the essential checks passed)")
    lines.append(f"Next step: {next_step(checks, profile)}")
    return "\n".join(lines), ok
