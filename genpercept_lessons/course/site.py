"""The rendered course (``make course``): execute every lesson from its text source, then let Sphinx + MyST-NB write the site.

Execution is ours (one fresh kernel per lesson, its run time measured, widgets turned into static snapshots, so the
site works offline); rendering is Sphinx's, with MyST-NB reading the executed notebooks and sphinx-book-theme giving
the navigation, search and previous/next links. The site is built in ``<out>.partial`` and replaces ``<out>``
only when complete.
"""
from __future__ import annotations

import html
import json
import os
import shutil
import time
from pathlib import Path

from genpercept_lessons.atomic import replace_folder

__all__ = ["CourseBuildError", "lesson_info", "notebook_client_class", "execute_notebook", "build_site"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_PACKAGES = ("genpercept-lessons", "torch", "diffusers", "transformers", "datasets", "numpy", "matplotlib", "ipywidgets",
             "nbclient", "sphinx", "myst-nb")
_STATIC = Path(__file__).with_name("static")
_CONF = """# written by genpercept_lessons/course/site.py for one build of the course site
project = "GenPercept Lessons"
author = "the GenPercept Lessons contributors"
html_title = "GenPercept Lessons"
extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath", "deflist"]
nb_execution_mode = "off"  # executed by genpercept_lessons.course.site, one fresh kernel per lesson
nb_merge_streams = True
html_theme = "sphinx_book_theme"
html_theme_options = {"show_toc_level": 2, "use_download_button": False, "use_fullscreen_button": False}
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_copy_source = False
html_show_sourcelink = False
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
"""


class CourseBuildError(RuntimeError):
    """A notebook failed while the site was built; the message names the notebook and the cell."""


def _inline_text(tokens) -> str:
    return "".join(t.content for t in tokens if t.type == "inline").strip()


def _bullets_after(tokens, i: int) -> list[str]:
    """The items of the bullet list that starts at or right after token ``i`` (their markdown, lines joined)."""
    while i < len(tokens) and tokens[i].type not in ("bullet_list_open", "heading_open"):
        i += 1
    if i >= len(tokens) or tokens[i].type != "bullet_list_open":
        return []
    items, depth, current = [], 0, None
    for t in tokens[i:]:
        depth += t.nesting if t.type.startswith("bullet_list") else 0
        if t.type == "list_item_open" and depth == 1:
            current = []
        elif t.type == "inline" and current is not None and depth == 1:
            current.append(" ".join(t.content.split()))
        elif t.type == "list_item_close" and depth == 1:
            items.append(" ".join(current))
            current = None
        if depth == 0:
            break
    return items


def lesson_info(nb) -> dict:
    """Number, title, objectives, "What you need" text and key points of a lesson (a path or a NotebookNode)."""
    import re

    import nbformat
    from markdown_it import MarkdownIt

    name = ""
    if isinstance(nb, (str, Path)):
        name, nb = Path(nb).stem, nbformat.read(str(nb), as_version=4)
    md = MarkdownIt()
    cells = [md.parse(c.source) for c in nb.cells if c.cell_type == "markdown"]
    head = next((t for t in cells if t and t[0].type == "heading_open" and t[0].tag == "h1"), [])
    m = re.match(r"(\d+)\s*[·:.\-–]?\s*(.+)", _inline_text(head[:3])) if head else None
    fallback = re.match(r"(\d+)_?(.*)", name)
    number = m.group(1) if m else (fallback.group(1) if fallback else "")
    title = m.group(2).strip() if m else (fallback.group(2).replace("_", " ").capitalize() if fallback else name)
    objectives, needs = [], ""
    for i, t in enumerate(head):
        if t.type == "inline" and "What you will learn" in t.content:
            objectives = _bullets_after(head, i + 1)
        if t.type == "inline" and t.content.startswith("**What you need**"):
            needs = " ".join(t.content.removeprefix("**What you need**").lstrip(":").split())
    key_points = []
    for tokens in cells:
        for i, t in enumerate(tokens):
            if t.type == "heading_open" and t.tag == "h2" and tokens[i + 1].content.strip().lower() == "key points":
                key_points = _bullets_after(tokens, i + 3)
    return {"number": number, "title": title, "objectives": objectives, "key_points": key_points, "needs": needs,
            "has_header": bool(m)}


def notebook_client_class():
    """An nbclient NotebookClient whose Output-widget emulation keeps captured outputs locally (see execute_notebook)."""
    from nbclient import NotebookClient
    from nbclient.output_widget import OutputWidget

    class LocalOutputWidget(OutputWidget):
        def sync_state(self) -> None:
            """Keep captured outputs here; nbclient would echo them to the kernel over the shell socket (see below)."""
            if hasattr(self.executor, "widget_state"):
                self.executor.widget_state[self.comm_id]["outputs"] = self.outputs

    class Client(NotebookClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.widget_registry = {**self.widget_registry, "@jupyter-widgets/output": {"OutputModel": LocalOutputWidget}}

    return Client


def execute_notebook(nb_or_path, timeout: int = 900, cwd: str | Path | None = None, name: str | None = None):
    """(executed NotebookNode, seconds): run a notebook in a fresh kernel, ``cwd`` (default: its folder), mini profile.

    timeout: seconds any one cell may run. Raises CourseBuildError naming the notebook and the failing cell.
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(nb_or_path, (str, Path)):
        path = Path(nb_or_path)
        nb, cwd, name = nbformat.read(str(path), as_version=4), cwd or path.parent, name or path.name
    else:
        nb, name = nb_or_path, name or "notebook"
    at = {"index": None}
    client = notebook_client_class()(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                                     record_timing=False, resources={"metadata": {"path": str(Path(cwd or ".").resolve())}},
                                     on_cell_start=lambda cell, cell_index, **_: at.update(index=cell_index))
    env = {**os.environ, "GENPERCEPT_PROFILE": "mini", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    start = time.perf_counter()
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        i = at["index"]
        first = nb.cells[i].source.strip().splitlines()[0] if i is not None and nb.cells[i].source.strip() else ""
        what = f"{err.ename}: {err.evalue}" if isinstance(err, CellExecutionError) else f"{type(err).__name__}: {err}"
        raise CourseBuildError(f"{name}: cell {i} (starting {first!r}) failed: {what.strip().splitlines()[0]}") from err
    return nb, time.perf_counter() - start


def _html_output(text: str, inline: bool = False):
    """A display_data output holding HTML; inline ones are later wrapped in a row."""
    import nbformat

    return nbformat.v4.new_output("display_data", data={"text/html": text}, metadata={"gl_inline": inline})


def _control_html(name: str, s: dict) -> str:
    """One widget (slider, dropdown, progress bar, HTML, label, ...) as a static HTML snippet."""
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<span>{s.get('value', '')}</span>"
    if name == "LabelModel":
        return f"<span>{html.escape(str(s.get('value', '')))}</span>"
    if "Progress" in name:
        return f'<progress value="{s.get("value", 0)}" max="{s.get("max", 100)}"></progress>'
    desc = html.escape(str(s.get("description", "")))
    if name == "ButtonModel":
        return f'<span class="gl-control">{desc}</span>'
    labels, index = s.get("_options_labels"), s.get("index")
    value = labels[index] if labels is not None and isinstance(index, int) else s.get("value", "")
    return f'<span class="gl-control"><b>{desc}</b> {html.escape(str(value))}</span>'


def _widget_outputs(model_id: str, states: dict) -> list:
    """A widget view as plain outputs: Output widgets give what they captured, containers their children, controls a snippet."""
    entry = states.get(model_id)
    if entry is None:
        return [_html_output('<span class="gl-note">[an interactive widget: run the notebook to use it]</span>', True)]
    name, s = entry["model_name"], entry["state"]
    if name == "OutputModel":
        return [x for o in s.get("outputs", []) for x in _expand(o, states)]
    if "children" in s:
        outs = [x for c in s["children"] for x in _widget_outputs(str(c).removeprefix("IPY_MODEL_"), states)]
        if name.startswith("HBox") and all(o.metadata.get("gl_inline") for o in outs):
            return [_html_output("".join(o.data["text/html"] for o in outs), True)]
        return outs
    return [_html_output(_control_html(name, s), True)]


def _expand(output, states: dict) -> list:
    """An output as the outputs it stands for: itself, or a widget view's static rendering."""
    if WIDGET_VIEW in output.get("data", {}):
        return _widget_outputs(output["data"][WIDGET_VIEW]["model_id"], states)
    return [output]


def _static_widgets(nb) -> None:
    """Replace every widget view in the outputs by static HTML (tqdm bars, controls) and the outputs it captured."""
    states = nb.metadata.pop("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        outs = []
        for output in cell.outputs:
            new = _expand(output, states)
            if any("gl-control" in o.get("data", {}).get("text/html", "") for o in new):
                new.insert(0, _html_output('<div class="gl-note">Interactive in JupyterLab; here with its first '
                                           "settings. Run the notebook to explore.</div>"))
            outs.extend(new)
        for o in outs:
            if o.get("metadata", {}).pop("gl_inline", False):
                o.data["text/html"] = f'<div class="gl-row">{o.data["text/html"]}</div>'
        cell.outputs = outs


def _environment_line() -> str:
    """When, on what machine (cores, platform) and with which package versions the site was built."""
    import platform
    import sys
    from datetime import datetime, timezone
    from importlib.metadata import distributions

    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in distributions()}
    versions = [f"{p} {installed[p]}" for p in _PACKAGES if p in installed]
    from genpercept_lessons.profiles import mini_build

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    build = mini_build()
    return (f"Built {when} on {platform.platform()} ({os.cpu_count()} CPU cores), Python {sys.version.split()[0]}, "
            f"mini profile, mini build seed {build['seed']} ({build['precision']}). Packages: {', '.join(versions)}.")


def _read_lesson(ipynb: Path, py: Path):
    """A lesson from its text source when it has one (jupytext percent), else from the notebook."""
    import jupytext
    import nbformat

    if py.is_file():
        nb = jupytext.read(py)
        nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
        return nb
    return nbformat.read(str(ipynb), as_version=4)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not run"
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _index_page(lessons: list[dict]) -> str:
    """index.md: the lesson table (number, linked title, measured run time, objectives), key points, the build line."""
    table = ["```{list-table}", ":header-rows: 1", ":class: gl-lessons", "",
             "* - No.", "  - Lesson", "  - Run time (CPU, this machine)", "  - What you will learn"]
    for les in lessons:
        needs = f"<br><small>What you need: {les['needs']}</small>" if les["needs"] else ""
        table += [f"* - {les['number']}",
                  f"  - {{doc}}`{les['title'].replace('`', '')} <lessons/{les['stem']}>`{needs}",
                  f"  - {_duration(les['seconds'])}",
                  "  - " + ("<br>".join(f"• {o}" for o in les["objectives"]) or "*(no objectives listed)*")]
    table.append("```")
    measured = [les["seconds"] for les in lessons if les["seconds"] is not None]
    total = [f"All lessons together: {sum(measured) / 60:.1f} min of CPU run time.", ""] if measured else []
    keys = [line for les in lessons if les["key_points"]
            for line in (f"{les['number']} · {les['title']}", ": " + "; ".join(les["key_points"]), "")]
    return "\n".join(
        ["# GenPercept Lessons", "",
         "Repurposing text-to-image diffusion models (Marigold, E2E-FT, GenPercept) for dense perception. Every lesson "
         "below was executed in the **mini** profile (CPU, offline); read it here, or run it yourself with `make lab`.",
         "", *table, "", *total, *(["## Key points", "", *keys] if keys else []),
         f'<p class="gl-meta">{html.escape(_environment_line())}</p>', "",
         "```{toctree}", ":hidden:", ":maxdepth: 1", "", *(f"lessons/{les['stem']}" for les in lessons), "```", ""])


def _sphinx(src: Path, out: Path) -> None:
    """Render ``src`` (conf.py, index.md, lessons/*.ipynb) to HTML in ``out`` with Sphinx; errors raise."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from sphinx.cmd.build import build_main

    log = io.StringIO()
    with redirect_stdout(log), redirect_stderr(log):
        code = build_main(["-b", "html", "-q", "-d", str(src.parent / "doctrees"), str(src), str(out)])
    problems = [line for line in log.getvalue().splitlines() if "ERROR" in line or "CRITICAL" in line]
    if code != 0 or problems:
        raise CourseBuildError("Sphinx could not render the course:\n" + "\n".join((problems or
                               log.getvalue().splitlines())[-20:]))


def build_site(notebooks_dir: str | Path = "notebooks", out_dir: str | Path = "site", execute: bool = True,
               timeout: int = 900) -> Path:
    """Execute every ``NN_*`` lesson in ``notebooks_dir`` (from ``sources/NN_*.py`` where present) and render the site.

    Writes ``out_dir/index.html`` (lesson table with objectives and measured run times), one page per lesson
    (figures, static widget snapshots, previous/next), and ``timings.json``. A failing notebook raises
    CourseBuildError and leaves any previous site untouched. Returns the path of index.html.
    """
    import nbformat
    from tqdm.auto import tqdm

    from genpercept_lessons.course.notebook_sources import lesson_pairs

    notebooks_dir, out_dir = Path(notebooks_dir), Path(out_dir)
    pairs = lesson_pairs(notebooks_dir) if notebooks_dir.is_dir() else []
    if not pairs:
        raise CourseBuildError(f"no lesson notebooks (NN_name.ipynb or sources/NN_name.py) in {notebooks_dir}")
    work = out_dir.with_name(out_dir.name + ".partial")  # sources, doctrees and MyST-NB's files: removed at the end
    shutil.rmtree(work, ignore_errors=True)
    (work / "src" / "lessons").mkdir(parents=True)
    try:
        lessons = []
        bar = tqdm(pairs, desc="executing" if execute else "exporting", unit="notebook")
        for ipynb, py in bar:
            bar.set_postfix_str(ipynb.name)
            nb = _read_lesson(ipynb, py)
            info = {**lesson_info(nb), "stem": ipynb.stem, "seconds": None}
            if not info["has_header"]:
                print(f"warning: no '# NN · Title' header cell (title, objectives) in {ipynb.name}")
            if execute:
                nb, info["seconds"] = execute_notebook(nb, timeout=timeout, cwd=notebooks_dir, name=ipynb.name)
            _static_widgets(nb)
            nbformat.write(nb, str(work / "src" / "lessons" / ipynb.name))
            lessons.append(info)
        (work / "src" / "conf.py").write_text(_CONF, encoding="utf-8")
        shutil.copytree(_STATIC, work / "src" / "_static")
        (work / "src" / "index.md").write_text(_index_page(lessons), encoding="utf-8")
        _sphinx(work / "src", work / "html")
        timings = {les["stem"] + ".ipynb": round(les["seconds"], 1) for les in lessons if les["seconds"] is not None}
        (work / "html" / "timings.json").write_text(json.dumps(timings, indent=1) + "\n", encoding="utf-8")
        replace_folder(work / "html", out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir / "index.html"
