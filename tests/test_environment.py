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
