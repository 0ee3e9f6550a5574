"""Lesson 02's timestep explorer in a real JupyterLab: run the cells, move a control, see the figure change.

nbval runs the notebook but cannot tell whether the widget works for a learner; this test starts ``jupyter lab`` on
loopback, opens the lesson in headless Chromium, runs every cell, changes the explorer's ``spacing`` dropdown and
waits for its output (the timesteps printed and the figure) to change.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest
from browser import chromium

from genpercept_lessons.mini.build import mini_assets_ready

REPO = Path(__file__).resolve().parents[1]
LESSON = "02_leading_timestep_bug.ipynb"
pytestmark = pytest.mark.skipif(not all(mini_assets_ready().values()),
                                reason="the mini assets are not built: run `make assets` (make test does it first)")

NOTEBOOK = """
const app = window.jupyterapp;
const nb = app ? [...app.shell.widgets('main')].find(w => w.sessionContext && w.content) : null;
"""
OUTPUT_STATE = """
const outs = [...document.querySelectorAll('.widget-output')];
const area = outs.find(o => o.innerText.includes('timesteps fed to the UNet'));
if (!area) return null;
const img = area.querySelector('img');
return {text: area.innerText, img: img ? img.src : null};
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float, every: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture()
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of lesson 02; yields (url of the lesson, log file)."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / LESSON, root)
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "config" / "lab" / "user-settings" / "@jupyterlab"
    # every cell stays in the page (JupyterLab 4 otherwise detaches cells scrolled out of view); no news pop-up
    for name, value in (("notebook-extension/tracker", '{"windowingMode": "none"}'),
                        ("apputils-extension/notification", '{"fetchNews": "false"}')):
        (settings / f"{name}.jupyterlab-settings").parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{name}.jupyterlab-settings").write_text(value)
    env = {**os.environ, "GENPERCEPT_PROFILE": "mini", "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    log = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           *(["--allow-root"] if os.geteuid() == 0 else [])]
    with open(log, "w") as f:
        server = subprocess.Popen(cmd, cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return server.poll() is not None  # ends the wait; checked below

    try:
        _wait("JupyterLab to start", up, 90)
        assert server.poll() is None, f"jupyter lab exited: {log.read_text()[-2000:]}"
        yield f"{base}/lab/tree/{LESSON}?token={token}", log
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_the_timestep_explorer_answers_its_controls(lab, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, log = lab
    with chromium(tmp_path / "profile", height=1400) as browser:
        browser.get(url)
        _wait("the notebook and its kernel", lambda: browser.execute_script(NOTEBOOK + """
            const k = nb && nb.sessionContext.session && nb.sessionContext.session.kernel;
            if (k && k.status === 'idle') { window.jupyterapp.shell.activateById(nb.id); return true; }
            return false;"""), 120)
        browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
        before = _wait("the explorer's first figure", lambda: (lambda s: s if s and s["img"] else None)(
            browser.execute_script(OUTPUT_STATE)), 300)
        assert "timesteps fed to the UNet: [1]" in before["text"]  # one leading step: t = 1, the bug
        spacing = next(s for s in browser.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")
                       if "leading" in [o.text for o in Select(s).options])
        browser.execute_script("arguments[0].scrollIntoView();", spacing)
        Select(spacing).select_by_visible_text("trailing")
        after = _wait("the explorer to redraw for trailing spacing", lambda: (
            lambda s: s if s and "[999]" in s["text"] and s["img"] else None)(browser.execute_script(OUTPUT_STATE)), 120)
        errors = browser.execute_script(
            "return [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]')]"
            ".map(e => e.innerText).filter(t => t.includes('Traceback'));")
    assert "timesteps fed to the UNet: [999]" in after["text"]  # one trailing step: t = 999
    assert after["img"] != before["img"], "the figure did not change when the spacing did"
    assert errors == [], errors
