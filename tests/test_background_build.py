"""One build at a time, in the background: the build lock, a lesson waiting for a build with a progress bar, a crashed
build reported and started again. The 30-minute mini build is played by a stand-in process that uses the same lock,
plan and progress reports and writes a tiny pipeline into the folder the real build would."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from genpercept_lessons import build_lock, get_profile, load_marigold
from genpercept_lessons.assets import build_asset, cache_root, is_complete
from genpercept_lessons.mini import background
from genpercept_lessons.mini.build import mini_asset_paths

# a stand-in for `python -m genpercept_lessons assets`: holds the cache's build lock with the real plan, reports
# progress, and builds the depth asset from a tiny pipeline folder; $STANDIN_MODE makes it crash or fail
STANDIN = textwrap.dedent('''
    import os, shutil, sys, time
    from pathlib import Path
    from genpercept_lessons.assets import build_asset, cache_root
    from genpercept_lessons.build_lock import exclusive, report_progress
    from genpercept_lessons.mini.background import build_plan
    from genpercept_lessons.mini.build import mini_asset_paths

    runs = Path(os.environ["STANDIN_RUNS"])
    with open(runs, "a") as f:
        f.write(f"{os.getpid()}\\n")
    mode = os.environ.get("STANDIN_MODE", "ok")
    crash = mode == "crash-once" and len(runs.read_text().split()) == 1
    print("stand-in build starting", flush=True)
    with exclusive(cache_root(), "the stand-in build", plan=build_plan(), log=os.environ.get("GENPERCEPT_BUILD_LOG")):
        for step in range(1, 11):
            report_progress("unet-depth", step, 10, every=0)
            time.sleep(float(os.environ.get("STANDIN_STEP", "0.3")))
            if crash and step == 3:
                os._exit(9)  # killed: no status written, as after an out-of-memory kill
        if mode == "fail":
            raise RuntimeError("boom: the stand-in build failed")
        depth = mini_asset_paths()["depth"]
        build_asset(depth, {"stand-in": True}, lambda tmp: shutil.copytree(os.environ["STANDIN_PIPELINE"], tmp,
                                                                            dirs_exist_ok=True))
    print("stand-in build done", flush=True)
''')


@pytest.fixture
def standin(tmp_cache, tmp_path, monkeypatch, tiny_pipeline_dirs):
    """Make the background build run the stand-in; returns the file where each run writes its pid."""
    script = tmp_path / "standin_build.py"
    script.write_text(STANDIN)
    runs = tmp_path / "runs.txt"
    monkeypatch.setattr(background, "build_command", lambda: [sys.executable, str(script)])
    monkeypatch.setenv("STANDIN_RUNS", str(runs))
    monkeypatch.setenv("STANDIN_PIPELINE", str(tiny_pipeline_dirs["depth"]))
    for key in ("GENPERCEPT_MINI_SEED", "GENPERCEPT_MINI_PRECISION"):
        monkeypatch.delenv(key, raising=False)
    return runs


def _runs(runs: Path) -> int:
    return len(runs.read_text().split()) if runs.exists() else 0


def _wait_gone(timeout: float = 60.0) -> None:
    """Wait until no process holds the cache's build lock (the stand-in has exited)."""
    deadline = time.monotonic() + timeout
    while build_lock.lock_is_held(cache_root()) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_lesson_starts_the_background_build_and_waits_for_it(standin, capsys):
    pipe = load_marigold(get_profile("mini"), "depth")
    out = capsys.readouterr()
    assert type(pipe).__name__ == "MarigoldDepthPipeline"
    assert "Building the mini assets in the background" in out.out and "waits for the depth model" in out.out
    log = Path(build_lock.read_status(cache_root())["log"])
    assert log.parent == cache_root().resolve() / "logs" and "stand-in build done" in log.read_text()
    assert "mini assets:" in out.err  # the progress bar
    assert _runs(standin) == 1
    _wait_gone()
    assert build_lock.build_state(cache_root())[0] == "finished"


def test_a_lesson_waits_for_a_running_build_instead_of_starting_a_second(standin, capsys, monkeypatch):
    monkeypatch.setenv("STANDIN_STEP", "1.5")  # 15 s: still running when the lesson asks, even on a busy machine
    started = background.start_background_build()
    assert started["state"] == "started" and build_lock.lock_is_held(cache_root())
    assert background.start_background_build()["state"] == "running"  # `make lab` twice: still one build
    text = background.build_report()
    assert "being built in the background" in text and str(started["log"]) in text
    load_marigold(get_profile("mini"), "depth")
    out = capsys.readouterr().out
    assert "another process (pid" in out and "Building the mini assets" not in out
    assert _runs(standin) == 1
    _wait_gone()
    assert background.start_background_build()["state"] in ("ready", "started")


def test_setup_check_and_doctor_report_a_running_build(standin, monkeypatch):
    from genpercept_lessons.cli.doctor import next_step
    from genpercept_lessons.setup_check import check_environment

    monkeypatch.setenv("STANDIN_STEP", "6")  # a minute: the checks below see it running
    pid = background.start_background_build()["pid"]
    try:
        deadline = time.monotonic() + 30
        while build_lock.overall_progress(cache_root())[1].startswith("MiniScenes") and time.monotonic() < deadline:
            time.sleep(0.1)  # until the stand-in's first progress report
        checks = check_environment("mini")
        depth = next(c for c in checks if c.name == "asset depth")
        assert not depth.ok and depth.found.startswith("being built in the background") and "depth UNet" in depth.found
        assert "being built in the background" in next_step(checks, get_profile("mini"))
    finally:
        os.kill(pid, 9)
        _wait_gone()


def test_a_crashed_build_is_reported_and_started_again(standin, capsys, monkeypatch):
    monkeypatch.setenv("STANDIN_MODE", "crash-once")
    pipe = load_marigold(get_profile("mini"), "depth")
    out = capsys.readouterr().out
    assert type(pipe).__name__ == "MarigoldDepthPipeline"
    assert "The last build of the mini assets stopped" in out and "Starting it again" in out
    assert _runs(standin) == 2


def test_a_crashed_build_is_reported_by_build_report(standin, monkeypatch):
    monkeypatch.setenv("STANDIN_MODE", "crash-once")
    background.start_background_build()
    _wait_gone()
    assert build_lock.build_state(cache_root())[0] == "crashed"
    text = background.build_report()
    assert text.startswith("✗ the last build of the mini assets stopped") and "stand-in build starting" in text


def test_a_build_that_keeps_failing_raises_with_the_end_of_its_log(standin, monkeypatch):
    monkeypatch.setenv("STANDIN_MODE", "fail")
    monkeypatch.setenv("STANDIN_STEP", "0.01")
    with pytest.raises(RuntimeError, match="stopped twice") as err:
        load_marigold(get_profile("mini"), "depth")
    assert "boom: the stand-in build failed" in str(err.value) and "make assets" in str(err.value)
    assert _runs(standin) == 2  # started, then started again once: never a loop
    assert build_lock.build_state(cache_root())[0] == "failed"


def test_build_missing_false_never_starts_a_build(standin):
    with pytest.raises(FileNotFoundError, match="make assets"):
        load_marigold(get_profile("mini"), "depth", build_missing=False)
    assert _runs(standin) == 0


def test_ensure_mini_assets_rejects_unknown_keys(tmp_cache):
    with pytest.raises(ValueError, match="`keys` must name mini assets"):
        background.ensure_mini_assets(["depht"])


# --- the lock under build_asset: every asset build in a cache waits for the one running ------------------------------

HOLDER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from genpercept_lessons.assets import build_asset
    target, then = Path(sys.argv[1]), sys.argv[2]

    def build(tmp):
        print("holding", flush=True)
        time.sleep(1.5)
        if then == "crash":
            raise SystemExit(3)
        (tmp / "weights.json").write_text("{}")

    build_asset(target, {"holder": 1}, build)
''')


def _holder(tmp_path: Path, target: Path, then: str) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), str(target), then], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"  # it holds the lock now
    return proc


def test_build_asset_waits_for_another_process_building_the_same_folder(tmp_path):
    target = tmp_path / "cache" / "thing-abc"
    proc = _holder(tmp_path, target, "finish")

    def must_not_run(tmp):
        raise AssertionError("a second build of the same folder started")

    assert build_asset(target, {"holder": 1}, must_not_run) == target
    assert is_complete(target) and proc.wait(30) == 0


def test_build_asset_builds_itself_when_the_other_process_dies(tmp_path):
    target = tmp_path / "cache" / "thing-abc"
    proc = _holder(tmp_path, target, "crash")
    assert build_asset(target, {"holder": 1}, lambda tmp: (tmp / "weights.json").write_text("[]")) == target
    assert proc.wait(30) == 3 and (target / "weights.json").read_text() == "[]"


def test_the_lock_is_reentrant_and_lends_itself_to_worker_processes(tmp_path):
    folder = tmp_path / "cache"
    with build_lock.exclusive(folder, "outer") as outer:
        assert outer and build_lock.holds_lock(folder)
        with build_lock.exclusive(folder, "inner") as inner:  # e.g. build_asset inside a build
            assert inner
        code = "from genpercept_lessons.build_lock import holds_lock; import sys; sys.exit(0 if holds_lock(sys.argv[1]) else 1)"
        assert subprocess.run([sys.executable, "-c", code, str(folder)], env=dict(os.environ)).returncode == 0
    assert not build_lock.holds_lock(folder) and not build_lock.lock_is_held(folder)
    assert build_lock.read_status(folder)["state"] == "finished"


def test_an_exception_inside_the_lock_is_recorded_as_failed(tmp_path):
    with pytest.raises(KeyError), build_lock.exclusive(tmp_path, "doomed"):
        raise KeyError("x")
    state, status = build_lock.build_state(tmp_path)
    assert state == "failed" and "KeyError" in status["error"]


def test_progress_reports_only_inside_a_build_and_add_up_by_weight(tmp_path, monkeypatch):
    build_lock.report_progress("loop", 1, 2)  # outside a build: nothing written anywhere
    assert not (tmp_path / build_lock.PROGRESS_DIR).exists()
    (tmp_path / "a-1").mkdir()
    plan = [{"name": "A", "folder": "a-1", "weight": 3, "progress": None},
            {"name": "B", "folder": "b-1", "weight": 1, "progress": "loop-b"}]
    with build_lock.exclusive(tmp_path, "two stages", plan=plan):
        build_asset(tmp_path / "a-1", {}, lambda tmp: (tmp / "x.json").write_text("1"))
        build_lock.report_progress("loop-b", 5, 10, every=0)
        frac, doing = build_lock.overall_progress(tmp_path)
    assert frac == pytest.approx((3 + 0.5) / 4) and doing == "B 5/10 steps"


def test_rendering_the_data_reports_progress_in_views(tmp_path, monkeypatch):
    from genpercept_lessons.mini.miniscenes import build_miniscenes

    plan = [{"name": "MiniScenes", "folder": "data-1", "weight": 1, "progress": "miniscenes"}]
    seen = []
    real = build_lock.report_progress
    monkeypatch.setattr(build_lock, "report_progress",
                        lambda *a, **k: (real(*a, **{**k, "every": 0}), seen.append(build_lock.progress_text(tmp_path))))
    with build_lock.exclusive(tmp_path, "MiniScenes", plan=plan):
        build_miniscenes({"seed": 0, "n_train": 3, "n_test": 2, "height": 16, "width": 16}, tmp_path / "out", workers=1)
    assert seen[0] == "20 %, now MiniScenes 1/5 views" and seen[-1] == "100 %, now MiniScenes 5/5 views", seen


def test_log_tail_resolves_progress_bars(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("start\nvae:  10%|#\rvae:  20%|##\rvae: 30%|###\r\nTraceback\nboom\n")
    assert build_lock.log_tail({"log": str(log)}, 3) == "vae: 30%|###\nTraceback\nboom"
    assert build_lock.log_tail({}) == "" and build_lock.log_tail({"log": str(tmp_path / "none")}) == ""


def test_cli_assets_background_reports_ready_running_or_started(standin, capsys, monkeypatch):
    from genpercept_lessons.cli.main import main

    monkeypatch.setenv("STANDIN_STEP", "1")

    assert main(["assets", "--background"]) == 0
    out = capsys.readouterr().out
    assert "building the mini assets in the background" in out and "log:" in out
    assert main(["assets", "--background"]) == 0
    assert "already being built" in capsys.readouterr().out
    _wait_gone()
    for key, path in mini_asset_paths().items():  # pretend the rest was built too
        if key != "depth":
            build_asset(path, {"k": key}, lambda tmp: (tmp / "x.json").write_text("1"))
    assert main(["assets", "--background"]) == 0
    assert "mini assets ready" in capsys.readouterr().out
    assert _runs(standin) == 1
