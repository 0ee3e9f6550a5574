"""The rendered course (`make course`): a real build from two tiny notebooks, checked page by page, image by image."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

from genpercept_lessons.course.site import CourseBuildError, build_site, lesson_info

REPO = Path(__file__).resolve().parents[1]


def _header(number: str, title: str, objectives: list[str]) -> str:
    bullets = "\n".join(f"- {o}" for o in objectives)
    return (f"# {number} · {title}\n\n**What you will learn**\n{bullets}\n\n"
            f"**What you need**: nothing. Mini profile: ~1 min on a laptop CPU.")


def _notebook(path: Path, number: str, title: str, objectives: list[str], code: list[str]) -> None:
    cells = [nbformat.v4.new_markdown_cell(_header(number, title, objectives)),
             nbformat.v4.new_markdown_cell("## 1. Do it")]
    cells += [nbformat.v4.new_code_cell(c) for c in code]
    cells += [nbformat.v4.new_markdown_cell("## Key points\n- it ran\n- and it\n  wrapped"),
              nbformat.v4.new_markdown_cell("## Further reading\n- nothing")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


FIGURE = """import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1], [1, 0])
plt.show()"""
WIDGET = """import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from tqdm.auto import tqdm
for _ in tqdm(range(3), desc="looping"):
    pass
out = widgets.Output()
display(widgets.VBox([widgets.IntSlider(value=3, description="level"), out]))
with out:
    out.clear_output(wait=True)
    print("inside the output widget")
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow([[0, 1], [1, 0]])
    plt.show(fig)"""


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _local(href: str) -> str | None:
    """The local file a link or src points to, or None for anchors, data URIs and web addresses."""
    url = urlparse(href)
    if url.scheme or url.netloc or not url.path:
        return None
    return unquote(url.path)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    src = tmp_path_factory.mktemp("notebooks")
    _notebook(src / "00_first_steps.ipynb", "00", "First steps", ["draw a `line`", "see a **figure**"],
              ["print('hello')", FIGURE])
    _notebook(src / "01_printing.ipynb", "01", "Printing things", ["print a number", "use a widget"],
              ["print(6 * 7)", WIDGET])
    out = tmp_path_factory.mktemp("build") / "site"
    index = build_site(src, out, timeout=120)
    return src, out, index


def test_index_lists_lessons_with_titles_objectives_and_times(site):
    src, out, index = site
    assert index == out / "index.html" and index.is_file()
    text = index.read_text(encoding="utf-8")
    for title in ("First steps", "Printing things"):
        assert title in text
    assert "draw a <code>line</code>" in text and "see a <strong>figure</strong>" in text and "use a widget" in text
    assert len(re.findall(r'<td class="gl-time">\d+\.\d min</td>', text)) == 2
    assert "CPU cores" in text and "torch" in text and "Key points" in text
    assert not out.with_name("site.partial").exists()


def test_every_page_image_and_link_exists(site):
    src, out, index = site
    pages = [index] + [out / f"{p.stem}.html" for p in sorted(src.glob("*.ipynb"))]
    for page in pages:
        assert page.is_file(), page
    n_images = 0
    for page in pages:
        found = _parse(page)
        for src_ in found.images:
            path = _local(src_)
            if path is not None:
                assert (out / path).is_file(), f"{page.name}: <img src={src_!r}> is missing"
                n_images += 1
        for href in found.links:
            path = _local(href)
            if path is not None:
                assert (out / path).is_file(), f"{page.name}: link {href!r} does not resolve"
    assert n_images == 2  # the plain figure and the one captured by the Output widget
    first, second = (_parse(out / f"{s}.html").links for s in ("00_first_steps", "01_printing"))
    assert "index.html" in first and "01_printing.html" in first
    assert "index.html" in second and "00_first_steps.html" in second
    assert {"00_first_steps.html", "01_printing.html"} <= set(_parse(index).links)


def test_widgets_become_static_html(site):
    src, out, index = site
    text = (out / "01_printing.html").read_text(encoding="utf-8").replace("\u2007", " ")  # tqdm's figure spaces
    assert "widget-view+json" not in text and "widget-state+json" not in text
    assert "looping: 100%" in text and "<progress" in text  # the tqdm bar, finished
    assert "inside the output widget" in text and "<b>level</b> 3" in text


def test_timings_json_has_every_notebook(site):
    src, out, index = site
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {"00_first_steps.ipynb", "01_printing.ipynb"}
    assert all(isinstance(s, float) and s > 0 for s in timings.values())


def test_failing_notebook_names_itself_and_keeps_the_previous_site(site, tmp_path):
    src, out, index = site
    before = index.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    _notebook(bad / "00_broken.ipynb", "00", "Broken", ["fail"], ["x = 1", "raise ValueError('boom')"])
    with pytest.raises(CourseBuildError, match=r"00_broken\.ipynb: cell 3 .*ValueError: boom"):
        build_site(bad, out, timeout=60)
    assert index.read_bytes() == before
    assert (out / "00_first_steps.html").is_file()
    assert not out.with_name("site.partial").exists() and not out.with_name("site.old").exists()


def test_lesson_info_parses_a_header():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        _header("03", "The trailing fix", ["one `argument`", "a long\n  objective"])),
        nbformat.v4.new_markdown_cell("## Key points\n- same weights\n\n## Exercises\n- not a key point")])
    info = lesson_info(nb)
    assert info["number"] == "03" and info["title"] == "The trailing fix"
    assert info["objectives"] == ["one `argument`", "a long objective"]
    assert info["key_points"] == ["same weights"]
    assert info["needs"].startswith("nothing. Mini profile: ~1 min")


def test_lesson_info_parses_every_real_notebook():
    paths = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert paths
    infos = [lesson_info(p) for p in paths]
    numbers = [int(i["number"]) for i in infos]
    assert numbers[0] == 0 and numbers == sorted(set(numbers)), numbers  # 00 first, each number once, in order
    for path, info in zip(paths, infos):
        assert info["has_header"], f"{path.name}: no '# NN · Title' header cell"
        assert info["number"] == path.name[:2], path.name
        assert info["title"] and info["objectives"], path.name
        assert "Mini profile" in info["needs"], path.name
