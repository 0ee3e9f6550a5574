"""The package layout keeps its promises: lessons import no tooling, no private names cross modules, one home per concept."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "genpercept_lessons"
TOOLING = ("genpercept_lessons.cli", "genpercept_lessons.course", "genpercept_lessons.mini.build",
           "genpercept_lessons.mini.marigold_training")
FLAT = sorted(p for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
LESSONS = sorted((ROOT / "notebooks" / "sources").glob("[0-9][0-9]_*.py"))
ALL_MODULES = sorted(p for p in PKG.rglob("*.py") if p.name != "__main__.py")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """[(module, [names])] for every ``from genpercept_lessons... import`` and ``import genpercept_lessons...``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genpercept_lessons"):
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.level:
            out.append(("." * node.level + (node.module or ""), [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("genpercept_lessons")]
    return out


def test_there_are_lessons_and_flat_modules():
    assert len(LESSONS) >= 9 and len(FLAT) >= 20


@pytest.mark.parametrize("path", LESSONS + FLAT, ids=lambda p: p.name)
def test_lessons_and_lesson_modules_import_no_tooling(path):
    # models.load_marigold builds missing mini assets and setup_check looks for them: both only through mini.build
    allowed = {"models.py": {"genpercept_lessons.mini.build"}, "setup_check.py": {"genpercept_lessons.mini.build"}}
    bad = [m for m, _ in _imports(path) if m.startswith(TOOLING) and m not in allowed.get(path.name, set())]
    assert bad == [], f"{path.name} imports tooling: {bad}"


@pytest.mark.parametrize("path", ALL_MODULES + LESSONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_names_cross_modules_and_imports_are_absolute(path):
    found = _imports(path)
    private = [(m, n) for m, names in found for n in names if n.startswith("_") and n.strip("_") and m != "."]
    assert private == [], f"{path.name} imports private names {private}"
    relative = [m for m, _ in found if m.startswith(".") and "exercises" not in path.parts]
    assert relative == [], f"{path.name}: relative imports {relative}"


@pytest.mark.parametrize("path", [p for p in ALL_MODULES if p.name != "__init__.py"], ids=lambda p: p.name)
def test_every_module_has_a_docstring_and_all(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{path.name} has no module docstring"
    assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
               for n in tree.body), f"{path.name} has no __all__"


@pytest.mark.parametrize("pattern, home, what", [
    (r"\bTASKS\s*=", "tasks.py", "the task list"),
    (r"\(\s*\"depth\",\s*\"normals\"\s*\)", "tasks.py", "the literal task tuple"),
    (r"os\.replace\(|\.rename\(", "atomic.py", "an atomic file or folder swap"),
    (r"/\s*127\.5|/\s*255(\.0?)?\b", "images.py", "uint8 -> float image conversion"),
    (r"\"MarigoldDepthPipeline\"", "tasks.py", "telling a pipeline's task from its class name"),
    (r"(Pipeline|cls)\.from_pretrained\(", "models.py", "loading a Marigold pipeline"),
])
def test_one_home_per_concept(pattern, home, what):
    hits = sorted({str(p.relative_to(PKG)) for p in ALL_MODULES
                   if re.search(pattern, re.sub(r"(?m)^\s*#.*$|\"\"\".*?\"\"\"", "", p.read_text(), flags=re.S))})
    assert hits == [home], f"{what} is implemented in {hits}, expected only in {home}"


def test_the_code_passes_the_linter():
    # the configuration is pyproject's [tool.ruff]: 120 columns for code, 150 for a docstring with shapes
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", "genpercept_lessons", "tests", "tools",
                        "data_scripts", "notebooks/sources"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]


def test_the_mutation_checks_planted_bugs_still_find_their_lines():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "tools/mutation_check.py", "--list"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout.splitlines()) >= 60
