"""The rendered course: execute every notebook (mini profile) and write a static HTML site with its figures."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from pathlib import Path

from genpercept_lessons.atomic import replace_folder

__all__ = ["CourseBuildError", "lesson_info", "notebook_client_class", "execute_notebook", "build_site"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_PACKAGES = ("genpercept-lessons", "torch", "diffusers", "transformers", "datasets", "numpy", "matplotlib", "ipywidgets",
             "nbclient", "nbconvert")
_CSS = """<style>
body.jp-Notebook, body.gl-index {max-width: 1080px; margin: 0 auto; padding: 0 16px 40px}
body.gl-index {font: 15px/1.5 system-ui, sans-serif; color: #222} code {background: #f4f4f4; padding: 0 3px}
.gl-nav {display: flex; gap: 12px; padding: 10px 0; margin: 8px 0; border-bottom: 1px solid #ccc; font: 14px system-ui}
.gl-nav.gl-bottom {border-top: 1px solid #ccc; border-bottom: none} .gl-nav span {flex: 1}
.gl-nav span:nth-child(2) {text-align: center} .gl-nav span:last-child {text-align: right}
.gl-meta {color: #555; font: 13px system-ui, sans-serif; margin: 4px 0 12px} .gl-note {color: #666; font: italic 13px system-ui}
table.gl-lessons {border-collapse: collapse; width: 100%; margin: 16px 0} table.gl-lessons th {background: #f0f0f0}
table.gl-lessons th, table.gl-lessons td {border: 1px solid #bbb; padding: 6px 10px; vertical-align: top; text-align: left}
.gl-num, .gl-time {white-space: nowrap; width: 1%} table.gl-lessons ul {margin: 0; padding-left: 18px}
table.gl-lessons th:nth-child(2) {width: 30%} small {color: #555}
.gl-row {display: flex; flex-wrap: wrap; align-items: center; gap: 12px; font: 13px system-ui, sans-serif; margin: 2px 0}
.gl-control {border: 1px solid #ccc; border-radius: 4px; padding: 1px 8px; background: #fafafa}
</style>"""


class CourseBuildError(RuntimeError):
    """A notebook failed while the site was built; the message names the notebook and the cell."""


def _markdown(text: str) -> str:
    """Inline markdown (code, bold, italics, links) to HTML, without the surrounding paragraph."""
    import mistune

    return mistune.html(text).strip().removeprefix("<p>").removesuffix("</p>")


def _bullets(lines: list[str]) -> list[str]:
    """The items of a markdown bullet list (continuation lines joined); stops at the first line that is neither."""
    items: list[str] = []
    for line in lines:
        if re.match(r"\s{0,1}[-*] ", line):
            items.append(line.strip()[2:].strip())
        elif items and line.startswith("  ") and line.strip():
            items[-1] += " " + line.strip()
        elif items or line.strip():
            break
    return items


def lesson_info(nb) -> dict:
    """Number, title, objectives, "What you need" text and key points of a lesson (a path or a NotebookNode)."""
    import nbformat

    name = ""
    if isinstance(nb, (str, Path)):
        name, nb = Path(nb).stem, nbformat.read(str(nb), as_version=4)
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    head = next((s for s in md if s.lstrip().startswith("# ")), "")
    m = re.match(r"#\s+(\d+)\s*[·:.\-–]?\s*(.+)", head.lstrip().splitlines()[0]) if head else None
    fallback = re.match(r"(\d+)_?(.*)", name)
    number = m.group(1) if m else (fallback.group(1) if fallback else "")
    title = m.group(2).strip() if m else (fallback.group(2).replace("_", " ").capitalize() if fallback else name)
    lines = head.splitlines()
    learn = next((i for i, s in enumerate(lines) if "What you will learn" in s), None)
    objectives = _bullets(lines[learn + 1:]) if learn is not None else []
    need = re.search(r"\*\*What you need\*\*:?\s*(.+?)(?:\n\s*\n|\Z)", head, re.S)
    after = next((ls[i + 1:] for ls in (t.splitlines() for t in md) for i, x in enumerate(ls)
                  if x.strip().lower() == "## key points"), [])
    return {"number": number, "title": title, "objectives": objectives, "key_points": _bullets(after),
            "needs": " ".join(need.group(1).split()) if need else "", "has_header": bool(m)}


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


def execute_notebook(path: str | Path, timeout: int = 900):
    """(executed NotebookNode, seconds): run a notebook in a fresh kernel, its folder as cwd, GENPERCEPT_PROFILE=mini.

    timeout: seconds any one cell may run. Raises CourseBuildError naming the notebook and the failing cell.
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    at = {"index": None}
    client = notebook_client_class()(nb, timeout=timeout, kernel_name="python3", store_widget_state=True, record_timing=False,
                             resources={"metadata": {"path": str(path.parent.resolve())}},
                             on_cell_start=lambda cell, cell_index, **_: at.update(index=cell_index))
    env = {**os.environ, "GENPERCEPT_PROFILE": "mini", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    start = time.perf_counter()
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        i = at["index"]
        first = nb.cells[i].source.strip().splitlines()[0] if i is not None and nb.cells[i].source.strip() else ""
        what = f"{err.ename}: {err.evalue}" if isinstance(err, CellExecutionError) else f"{type(err).__name__}: {err}"
        raise CourseBuildError(f"{path.name}: cell {i} (starting {first!r}) failed: {what.strip().splitlines()[0]}") from err
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


def _nav(lessons: list[dict], i: int, bottom: bool = False) -> str:
    """The navigation bar of lesson i: previous, index, next."""
    def link(j: int, arrow: str) -> str:
        return (f'<a href="{lessons[j]["page"]}">{arrow}{lessons[j]["number"]} · '
                f'{html.escape(lessons[j]["title"])}</a>' if 0 <= j < len(lessons) else "")

    prev, nxt = link(i - 1, "← "), link(i + 1, "") + (" →" if i + 1 < len(lessons) else "")
    return (f'<nav class="gl-nav{" gl-bottom" if bottom else ""}"><span>{prev}</span>'
            f'<span><a href="index.html">Course index</a></span><span>{nxt}</span></nav>')


def _lesson_page(nb, lessons: list[dict], i: int, out_dir: Path) -> None:
    """Write one lesson's HTML page and its figures (as PNG files under NN_name_files/)."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import ExtractOutputPreprocessor

    lesson = lessons[i]
    _static_widgets(nb)
    exporter = HTMLExporter(template_name="lab")
    exporter.register_preprocessor(ExtractOutputPreprocessor(), enabled=True)
    body, resources = exporter.from_notebook_node(
        nb, resources={"unique_key": "output", "output_files_dir": f"{lesson['stem']}_files"})
    for rel, data in resources.get("outputs", {}).items():
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / rel).write_bytes(data)
    ran = (f"Executed in the mini profile in {lesson['seconds']:.0f} s on this machine." if lesson["seconds"] is not None
           else "Not executed: code only (built with --no-execute).")
    top = (f'{_nav(lessons, i)}<div class="gl-meta"><b>{lesson["number"]} · {html.escape(lesson["title"])}</b> — {ran} '
           f'Source: <code>notebooks/{lesson["stem"]}.ipynb</code></div>')
    body = body.replace("</head>", f"{_CSS}\n</head>", 1)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + top, body, count=1)
    body = body.replace("</body>", _nav(lessons, i, bottom=True) + "</body>", 1)
    (out_dir / lesson["page"]).write_text(body, encoding="utf-8")


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


def _index_page(lessons: list[dict]) -> str:
    """index.html: the lesson table (number, linked title, measured run time, objectives) and the build line."""
    rows = []
    for les in lessons:
        minutes = f"{les['seconds'] / 60:.1f} min" if les["seconds"] is not None else "not run"
        objectives = "".join(f"<li>{_markdown(o)}</li>" for o in les["objectives"]) or "<li><em>(no objectives listed)</em></li>"
        keys = "".join(f"<li>{_markdown(k)}</li>" for k in les["key_points"])
        keys = f"<details><summary>Key points</summary><ul>{keys}</ul></details>" if keys else ""
        needs = f"<br><small>What you need: {_markdown(les['needs'])}</small>" if les["needs"] else ""
        rows.append(f'<tr><td class="gl-num">{les["number"]}</td><td><a href="{les["page"]}">{html.escape(les["title"])}'
                    f'</a>{needs}</td><td class="gl-time">{minutes}</td><td><ul>{objectives}</ul>{keys}</td></tr>')
    measured = [les["seconds"] for les in lessons if les["seconds"] is not None]
    total = f"<p>All lessons together: {sum(measured) / 60:.1f} min of CPU run time.</p>" if measured else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>GenPercept Lessons</title>{_CSS}</head>\n'
            '<body class="gl-index"><h1>GenPercept Lessons</h1>\n<p>Repurposing text-to-image diffusion models '
            "(Marigold, E2E-FT, GenPercept) for dense perception. Every lesson below was executed in the <b>mini</b> "
            "profile (CPU, offline); read it here, or run it yourself with <code>make lab</code>.</p>\n"
            '<table class="gl-lessons"><thead><tr><th>#</th><th>Lesson</th><th>Run time<br><small>(CPU, this machine)'
            f'</small></th><th>What you will learn</th></tr></thead>\n<tbody>{"".join(rows)}</tbody></table>\n{total}'
            f'<p class="gl-meta">{html.escape(_environment_line())}</p></body></html>\n')


def build_site(notebooks_dir: str | Path = "notebooks", out_dir: str | Path = "site", execute: bool = True,
               timeout: int = 900) -> Path:
    """Execute every NN_*.ipynb (mini profile) and write out_dir/index.html, one page per lesson and timings.json.

    The site is built in out_dir.partial and swapped in at the end: a failing notebook raises CourseBuildError and
    leaves any previous site untouched. Returns the path of index.html.
    """
    import nbformat
    from tqdm.auto import tqdm

    paths = sorted(p for p in Path(notebooks_dir).glob("*.ipynb") if re.match(r"\d+_", p.name))
    if not paths:
        raise CourseBuildError(f"no lesson notebooks (NN_name.ipynb) in {notebooks_dir}")
    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    lessons = [{**lesson_info(p), "stem": p.stem, "page": f"{p.stem}.html", "seconds": None} for p in paths]
    missing = [p.name for p, les in zip(paths, lessons) if not les["has_header"]]
    if missing:
        print(f"warning: no '# NN · Title' header cell (title, objectives) in {', '.join(missing)}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        bar = tqdm(list(zip(paths, lessons)), desc="executing" if execute else "exporting", unit="notebook")
        for i, (path, lesson) in enumerate(bar):
            bar.set_postfix_str(path.name)
            if execute:
                nb, lesson["seconds"] = execute_notebook(path, timeout=timeout)
            else:
                nb = nbformat.read(str(path), as_version=4)
            _lesson_page(nb, lessons, i, partial)
        (partial / "index.html").write_text(_index_page(lessons), encoding="utf-8")
        timings = {les["stem"] + ".ipynb": round(les["seconds"], 1) for les in lessons if les["seconds"] is not None}
        (partial / "timings.json").write_text(json.dumps(timings, indent=1) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    replace_folder(partial, out_dir)
    return out_dir / "index.html"
