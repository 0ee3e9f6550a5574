"""Headless Chromium for the tests that need a real browser (the course site, the widgets in JupyterLab).

Debian's ``chromium`` and ``chromium-driver`` packages, driven by Selenium; ``.ci/run`` installs them. Without them
the tests are skipped with a message that says how to install them.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

__all__ = ["INSTALL_HINT", "chromium", "serve_folder"]

INSTALL_HINT = ("headless Chromium is not installed: `sudo apt-get install chromium chromium-driver` "
                "(Debian/Ubuntu; `.ci/run` does this) to run the browser tests")


@contextlib.contextmanager
def chromium(profile_dir: Path, width: int = 1280, height: int = 1000):
    """A Selenium Chrome driver on Debian's Chromium, headless, offline-friendly; skips the test if it is missing."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip(INSTALL_HINT)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # without the background-networking flags Chromium keeps trying to reach Google's hosts on a closed network
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={width},{height}", f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    browser.set_page_load_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()


@contextlib.contextmanager
def serve_folder(folder: Path):
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
