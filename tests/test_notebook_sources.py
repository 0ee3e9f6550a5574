"""Every lesson has a text source in sync with its notebook, and no stored notebook carries outputs."""
from __future__ import annotations

import json
import shutil

import pytest

from genpercept_lessons.course.notebook_sources import ROOT, check_sources, lesson_pairs, sync_sources


def test_every_lesson_has_a_text_source_in_sync_with_its_notebook():
    pairs = lesson_pairs()
    assert len(pairs) >= 9
    assert check_sources() == []


@pytest.fixture()
def lessons(tmp_path):
    (tmp_path / "jupytext.toml").write_text((
        'formats = "notebooks///ipynb,notebooks/sources///py:percent"\n'
        'notebook_metadata_filter = "-all"\ncell_metadata_filter = "-all"\n'))
    nb = tmp_path / "notebooks"
    (nb / "sources").mkdir(parents=True)
    name = lesson_pairs()[0][0].stem
    shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", nb)
    shutil.copy(ROOT / "notebooks" / "sources" / f"{name}.py", nb / "sources")
    return nb, name


def test_check_finds_an_edit_on_one_side_and_sync_carries_it_over(lessons):
    nb, name = lessons
    py = nb / "sources" / f"{name}.py"
    py.write_text(py.read_text().replace("# **What you will learn**", "# **What you will learn today**", 1))
    problems = check_sources(nb)
    assert len(problems) == 1 and "differ from cell 0" in problems[0]
    assert set(sync_sources(nb)) == {f"{name}.ipynb"}
    assert check_sources(nb) == []
    assert "What you will learn today" in (nb / f"{name}.ipynb").read_text()


def test_check_finds_stored_outputs_and_sync_strips_them(lessons):
    nb, name = lessons
    ipynb = nb / f"{name}.ipynb"
    data = json.loads(ipynb.read_text())
    code = next(c for c in data["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]
    code["execution_count"] = 3
    ipynb.write_text(json.dumps(data))
    assert any("stores outputs" in p for p in check_sources(nb))
    sync_sources(nb)
    assert check_sources(nb) == []


def test_a_lesson_written_as_text_only_gets_its_notebook(lessons):
    nb, name = lessons
    (nb / f"{name}.ipynb").unlink()
    assert any("missing" in p for p in check_sources(nb))
    sync_sources(nb)
    assert check_sources(nb) == []
    assert json.loads((nb / f"{name}.ipynb").read_text())["metadata"]["kernelspec"]["name"] == "python3"


def test_lesson_pairs_rejects_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="`notebooks` must be a folder"):
        lesson_pairs(tmp_path / "nope")
