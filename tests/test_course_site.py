"""The rendered course (`make course`): a real build from two tiny notebooks, checked page by page, image by image."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from browser import chromium, serve_folder

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


def _local(page: Path, href: str) -> Path | None:
    """The file a link or src on ``page`` points to, or None for anchors, data URIs and web addresses."""
    url = urlparse(href)
    if url.scheme or url.netloc or not url.path:
        return None
    return (page.parent / unquote(url.path)).resolve()


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
    assert ">line</span></code>" in text and "<strong>figure</strong>" in text and "use a widget" in text
    assert len(re.findall(r"<p>\d+ s</p>", text)) == 2  # each lesson's measured run time
    assert "CPU cores" in text and "torch" in text and "Key points" in text
    assert not out.with_name("site.partial").exists() and not out.with_name("site.src").exists()


def test_every_page_image_and_link_exists(site):
    src, out, index = site
    lessons = [out / "lessons" / f"{p.stem}.html" for p in sorted(src.glob("*.ipynb"))]
    n_images = 0
    for page in [index, *lessons]:
        assert page.is_file(), page
        found = _parse(page)
        for src_ in found.images:
            path = _local(page, src_)
            if path is not None:
                assert path.is_file(), f"{page.name}: <img src={src_!r}> is missing"
                n_images += page in lessons
        for href in found.links:
            path = _local(page, href)
            if path is not None:
                assert path.is_file(), f"{page.name}: link {href!r} does not resolve"
    assert n_images == 2  # the plain figure and the one captured by the Output widget
    first, second = (set(_parse(page).links) for page in lessons)
    assert "01_printing.html" in first and "00_first_steps.html" in second  # previous / next
    assert "../index.html" in first and "../index.html" in second
    assert {"lessons/00_first_steps.html", "lessons/01_printing.html"} <= set(_parse(index).links)


def test_widgets_become_static_html(site):
    src, out, index = site
    text = (out / "lessons" / "01_printing.html").read_text(encoding="utf-8").replace("\u2007", " ")  # tqdm's spaces
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
    assert (out / "lessons" / "00_first_steps.html").is_file()
    assert not [p for p in out.parent.iterdir() if p.name != "site"]  # no .partial, .src or .old left behind


def _crawl(browser, base: str) -> dict[str, dict]:
    """Load every page of the site reachable from index.html; per page: broken images, bad links, traceback."""
    from urllib.error import HTTPError
    from urllib.request import urlopen

    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    todo, seen, status = [base + "index.html"], {}, {}

    def ok(url: str) -> bool:
        if url not in status:
            try:
                with urlopen(url, timeout=10) as r:
                    status[url] = r.status == 200
            except HTTPError:
                status[url] = False
        return status[url]

    while todo:
        url = todo.pop()
        if url in seen:
            continue
        browser.get(url)
        try:  # get() normally returns after the load event, but on a loaded CPU Chromium has answered earlier
            WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.readyState") == "complete")
        except TimeoutException:
            pass  # reported below as a page that never finished loading
        report = browser.execute_script("""
            const imgs = [...document.images];
            return {ready: document.readyState, text: document.body.innerText,
                    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
                    images: imgs.length, links: [...document.links].map(a => a.href.split('#')[0])};""")
        internal = sorted({h for h in report["links"] if h.startswith(base)})
        seen[url] = {"ready": report["ready"], "broken": report["broken"], "images": report["images"],
                     "bad_links": [h for h in internal if not ok(h)],
                     "traceback": "Traceback (most recent call last)" in report["text"], "text": report["text"]}
        todo += [h for h in internal if h.endswith(".html") and h not in seen]
    return seen


def _check_pages(pages: dict[str, dict]) -> None:
    for url, page in pages.items():
        assert page["ready"] == "complete", url
        assert page["broken"] == [], f"{url}: images that did not load: {page['broken']}"
        assert page["bad_links"] == [], f"{url}: links that do not resolve: {page['bad_links']}"
        assert not page["traceback"], f"{url} shows a Python traceback"


def test_the_site_in_a_real_browser(site, tmp_path):
    src, out, index = site
    with chromium(tmp_path / "profile") as browser, serve_folder(out) as base:
        pages = _crawl(browser, base)
    _check_pages(pages)
    lessons = {u.rsplit("/", 1)[1]: p for u, p in pages.items() if "/lessons/" in u}
    assert set(lessons) == {"00_first_steps.html", "01_printing.html"}
    assert all(p["images"] >= 1 for p in lessons.values())  # each lesson's figure, loaded
    assert "inside the output widget" in lessons["01_printing.html"]["text"]


def test_the_real_course_renders_in_a_real_browser(tmp_path):
    # every lesson, from its text source, rendered without executing (make course executes): the markdown, the
    # links between lessons and the navigation are the ones learners get
    out = tmp_path / "site"
    build_site(REPO / "notebooks", out, execute=False)
    with chromium(tmp_path / "profile") as browser, serve_folder(out) as base:
        pages = _crawl(browser, base)
    _check_pages(pages)
    lessons = sorted(u.rsplit("/", 1)[1] for u in pages if "/lessons/" in u)
    assert lessons == sorted(f"{p.stem}.html" for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert "02 · The leading-timestep bug" in pages[next(u for u in pages if u.endswith("index.html"))]["text"]


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
