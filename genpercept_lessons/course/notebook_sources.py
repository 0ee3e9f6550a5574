"""Each lesson's text source (``notebooks/sources/NN_name.py``, jupytext percent format) and its notebook, kept in sync.

``python -m genpercept_lessons.course.notebook_sources sync`` (``make notebooks``) lets jupytext sync every pair (the
file edited last wins; JupyterLab with jupytext saves both) and strips outputs from the stored notebooks; ``check``
lists what is out of sync, missing or carrying outputs (a test runs it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["NOTEBOOK_METADATA", "lesson_pairs", "strip_notebook", "check_sources", "sync_sources"]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_METADATA = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}}


def lesson_pairs(notebooks: str | Path = ROOT / "notebooks") -> list[tuple[Path, Path]]:
    """[(notebook, text source)] for every ``NN_*.ipynb`` or ``sources/NN_*.py`` in ``notebooks``, sorted by name."""
    notebooks = Path(notebooks)
    if not notebooks.is_dir():
        raise FileNotFoundError(f"lesson_pairs: `notebooks` must be a folder, got {str(notebooks)!r}")
    names = {p.stem for p in notebooks.glob("[0-9][0-9]_*.ipynb")} | {p.stem for p in notebooks.glob("sources/[0-9][0-9]_*.py")}
    return [(notebooks / f"{n}.ipynb", notebooks / "sources" / f"{n}.py") for n in sorted(names)]


def strip_notebook(path: str | Path) -> bool:
    """Remove outputs, execution counts and cell metadata; set the course's kernel metadata. True if the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    for cell in nb["cells"]:
        cell["metadata"] = {}
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"] = NOTEBOOK_METADATA
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def _cells(notebook) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in notebook.cells]


def check_sources(notebooks: str | Path = ROOT / "notebooks") -> list[str]:
    """One line per problem: a lesson without its pair, a pair whose cells differ, a notebook that stores outputs."""
    import jupytext
    import nbformat

    problems = []
    for ipynb, py in lesson_pairs(notebooks):
        missing = [p for p in (ipynb, py) if not p.exists()]
        if missing:
            problems.append(f"{missing[0].name}: missing (run `make notebooks` to write it from its pair)")
            continue
        nb = nbformat.read(ipynb, as_version=4)
        a, b = _cells(nb), _cells(jupytext.read(py))
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            problems.append(f"{ipynb.name} and sources/{py.name} differ from cell {first} on "
                            f"({len(a)} vs {len(b)} cells): run `make notebooks`")
        if any(c.cell_type == "code" and (c.outputs or c.execution_count is not None) for c in nb.cells):
            problems.append(f"{ipynb.name}: stores outputs (run `make notebooks` to strip them)")
    return problems


def sync_sources(notebooks: str | Path = ROOT / "notebooks") -> list[str]:
    """Sync every pair with ``jupytext --sync`` (the newer file wins), strip the notebooks; returns what changed."""
    from jupytext.cli import jupytext as jupytext_cli

    changed = []
    for ipynb, py in lesson_pairs(notebooks):
        before = {p: p.read_bytes() if p.exists() else None for p in (ipynb, py)}
        jupytext_cli(["--sync", "--quiet", str(ipynb if ipynb.exists() else py)])
        strip_notebook(ipynb)
        changed += [p.name for p in (ipynb, py) if p.read_bytes() != before[p]]
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genpercept_lessons.course.notebook_sources", description=__doc__)
    parser.add_argument("action", choices=("sync", "check"))
    args = parser.parse_args(argv)
    if args.action == "sync":
        changed = sync_sources()
        print("\n".join(f"updated {name}" for name in changed) or "every lesson was in sync")
    problems = check_sources()
    print("\n".join(problems) or f"{len(lesson_pairs())} lessons: notebook and text source in sync, no outputs stored")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
