"""Measure the set-up as a new learner meets it (issue 17): from `make lab` in a fresh clone to JupyterLab answering,
and to lesson 01's first cells running in a kernel of the course's environment, with or without an imported archive.

    python tools/measure_setup.py                          # empty cache: the build starts in the background
    python tools/measure_setup.py --archive build.tar.gz   # make lab IMPORT=build.tar.gz
    python tools/measure_setup.py --no-pip-cache           # every package downloaded, as on a first install

Prints the figures; asserts nothing. The clone, its .venv and the cache live in a temporary folder removed at the end
(the background build, if one started, is stopped first).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _first_cells(clone: Path, n_code: int) -> str:
    """A notebook of lesson 01's first ``n_code`` code cells (the setup cell, then mini-SD generating from captions)."""
    import nbformat

    nb = nbformat.read(str(clone / "notebooks" / "01_loading_marigold.ipynb"), as_version=4)
    keep, code = [], 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            if code == n_code:
                break
            code += 1
        keep.append(cell)
    nb.cells = keep
    path = clone / "notebooks" / "_measure_01_head.ipynb"
    nbformat.write(nb, str(path))
    return str(path)


RUN_CELLS = """
import sys, time, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
done = []
client = NotebookClient(nb, kernel_name="python3", timeout=3600,
                        on_cell_executed=lambda cell, cell_index, **_: done.append((cell_index, time.time())))
client.execute()
for i, t in done:
    print(i, t)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", help="an archive written by `assets --export`: make lab IMPORT=ARCHIVE")
    parser.add_argument("--no-pip-cache", action="store_true", help="download every package (PIP_NO_CACHE_DIR=1)")
    parser.add_argument("--watch", type=int, default=60, metavar="S",
                        help="without an archive: seconds to watch the background build after JupyterLab answers")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="measure-setup-"))
    clone, cache, port = work / "genpercept-lessons", work / "cache", _free_port()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENPERCEPT_", "VIRTUAL_ENV"))}
    env.update(GENPERCEPT_CACHE=str(cache), JUPYTER_CONFIG_DIR=str(work / "jupyter"))
    if args.no_pip_cache:
        env["PIP_NO_CACHE_DIR"] = "1"
    make = ["make", "lab", f"LAB_ARGS=--no-browser --port {port} --ServerApp.token= --ServerApp.password="]
    if args.archive:
        make.append(f"IMPORT={Path(args.archive).resolve()}")
    log = open(work / "make_lab.log", "w")
    t0 = time.time()
    lab = subprocess.Popen(make, cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    figures = {}
    try:
        while not _answers(port):
            if lab.poll() is not None:
                print((work / "make_lab.log").read_text()[-3000:])
                raise SystemExit(f"make lab ended with {lab.returncode} before JupyterLab answered")
            time.sleep(0.5)
        figures["make lab -> JupyterLab answers"] = time.time() - t0
        py = clone / ".venv" / "bin" / "python"
        if args.archive:
            head = _first_cells(clone, 2)
            out = subprocess.run([str(py), "-c", RUN_CELLS, head], cwd=clone / "notebooks", env=env, text=True,
                                 capture_output=True, check=True).stdout.split()
            code_ends = [float(t) for t in out[1::2]]
            figures["make lab -> lesson 01, first code cell run"] = code_ends[-2] - t0
            figures["make lab -> lesson 01, mini-SD drew its first grid"] = code_ends[-1] - t0
        else:
            time.sleep(args.watch)
            report = subprocess.run([str(py), "-m", "genpercept_lessons", "doctor"], cwd=clone, env=env, text=True,
                                    capture_output=True).stdout
            figures["(background build, after watching)"] = next(
                (ln.strip() for ln in report.splitlines() if ln.startswith("✗ asset depth")), "?")
        with open(work / "make_lab.log") as f:
            figures["make lab's output"] = " | ".join(ln.strip() for ln in f if ln.strip() and "pip" not in ln)[:600]
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(30)
        status = cache / ".build-status.json"
        if status.exists():  # stop the background build this run started (its own session)
            pid = json.loads(status.read_text()).get("pid")
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(work, ignore_errors=True)
    for k, v in figures.items():
        print(f"{k}: {v:.0f} s" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
