"""environment.yml lists exactly the packages of pyproject.toml; notebooks are stored stripped."""
from __future__ import annotations

import json
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pip_section(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip() == "- pip:":
            inside = True
            continue
        if inside:
            item = line.strip()
            if not item.startswith("- "):
                break
            lines.append(item[2:].strip())
    return lines


def test_environment_yml_mirrors_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pip = [d for d in _pip_section((ROOT / "environment.yml").read_text()) if d != "-e ."]
    assert sorted(pip) == sorted(deps)
    assert "torch==2.13.0" in deps  # an unpinned torch pulls a multi-GB CUDA build


def test_notebooks_are_stripped_and_use_python3_kernel():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        assert nb["metadata"].get("kernelspec", {}).get("name", "python3") == "python3", nb_path.name
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{nb_path.name} has outputs"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _fake_lab(tmp_path: Path, **make_vars) -> list[str]:
    """The commands `make lab` runs, with stand-ins for the venv's python and jupyter that only record their arguments."""
    import os
    import subprocess

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    for name in ("python", "jupyter"):
        tool = venv / "bin" / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n')
        tool.chmod(0o755)
    (venv / ".installed-stamp").touch()
    args = [f"VENV={venv}", f"STAMP={venv / '.installed-stamp'}", *(f"{k}={v}" for k, v in make_vars.items())]
    subprocess.run(["make", "-s", "-C", str(ROOT), "lab", *args], check=True, capture_output=True, text=True,
                   env={**os.environ, "MAKEFLAGS": ""})
    return calls.read_text().splitlines()


def test_make_lab_starts_the_build_in_the_background_then_jupyterlab(tmp_path):
    import os

    calls = _fake_lab(tmp_path)
    assert calls[0] == "python -m genpercept_lessons assets --background"  # never a build in the foreground
    assert calls[1].startswith("jupyter lab notebooks/")
    assert ("--allow-root" in calls[1]) == (os.getuid() == 0)  # JupyterLab refuses root without it
    calls = _fake_lab(tmp_path / "again", IMPORT="room build.tar.gz", LAB_ARGS="--no-browser")
    assert calls[0] == "python -m genpercept_lessons assets --import room build.tar.gz"
    assert calls[1] == "python -m genpercept_lessons assets --background" and calls[2].endswith("--no-browser")
