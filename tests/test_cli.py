"""`python -m genpercept_lessons` doctor / predict / bench on tiny random pipelines, and every bad input a learner can give."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import genpercept_lessons.mini.build as build
import genpercept_lessons.profiles as profiles
from genpercept_lessons.cli.bench import QUICK_SETTINGS, TRAIN_LABEL, format_table, run_benchmarks
from genpercept_lessons.cli.doctor import essential_failures
from genpercept_lessons.cli.main import main
from genpercept_lessons.setup_check import Check

COMMANDS = ("assets", "paths", "doctor", "predict", "bench", "photos")


@pytest.fixture(autouse=True)
def never_build(monkeypatch):
    """No command may build the mini assets (~15 minutes): make any attempt fail loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("the command line tried to build the mini assets")

    monkeypatch.setattr(build, "build_mini_assets", refuse)


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_profile(monkeypatch, tiny_pipeline_dirs, one_thread):
    """Every profile the CLI asks for points at the tiny random pipelines (16 px, training batch 2)."""
    real = profiles.get_profile

    def tiny(name=None, **overrides):
        settings = {"depth_model": str(tiny_pipeline_dirs["depth"]), "normals_model": str(tiny_pipeline_dirs["normals"]),
                    "resolution": 16, "e2e_batch_size": 2, **overrides}
        return real(name, **settings)

    monkeypatch.setattr(profiles, "get_profile", tiny)
    return tiny_pipeline_dirs


@pytest.fixture
def photo(tmp_path):
    """A 20×28 RGBA PNG (not square, with alpha) of a MiniScenes room."""
    from genpercept_lessons.mini.scenes import render_scene

    rgb = render_scene(0, 3, 20, 28, supersample=1).image
    path = tmp_path / "room.png"
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(path)
    return path


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert err.strip().startswith("error:") and err.strip().count("\n") == 0, err


# --- the parser ----------------------------------------------------------------------------------

def test_help_lists_every_command_in_a_fresh_process():
    run = subprocess.run([sys.executable, "-m", "genpercept_lessons", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s+\S", run.stdout, re.M), f"{name} has no help line:\n{run.stdout}"


def test_bad_file_fails_readably_in_a_fresh_process(tmp_path):
    run = subprocess.run([sys.executable, "-m", "genpercept_lessons", "predict", str(tmp_path / "nope.jpg"),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    _no_traceback(run.stderr)
    assert "nope.jpg" in run.stderr and "does not exist" in run.stderr


@pytest.mark.parametrize("command", ["doctor", "predict", "bench"])
def test_unknown_profile_exits_2_naming_the_valid_ones(command, photo, tmp_path, capsys):
    argv = [command, "--profile", "huge"] + ([str(photo), "--out", str(tmp_path / "o")] if command == "predict" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "'huge'" in err and "mini" in err and "full" in err


def test_unknown_profile_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("GENPERCEPT_PROFILE", "medium")
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "$GENPERCEPT_PROFILE" in err and "mini, full" in err


def test_unknown_device_exits_2(capsys):
    assert main(["doctor", "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "'tpu'" in err and "cuda" in err


# --- doctor ---------------------------------------------------------------------------------------

def test_doctor_on_an_empty_cache_says_make_assets_and_exits_1(tmp_cache, capsys):
    assert main(["doctor", "--profile", "mini"]) == 1
    out = capsys.readouterr().out
    assert "✓ python:" in out and "✓ torch:" in out
    assert "✗ asset depth: not built" in out and "✗ asset normals: not built" in out
    assert out.rstrip().splitlines()[-1].startswith("Next step: run `make lab` (builds the mini assets in the background")
    assert not tmp_cache.exists() or not any(tmp_cache.iterdir())  # reported, not built


def test_doctor_exits_0_when_the_essentials_pass(monkeypatch, capsys):
    monkeypatch.setattr(build, "mini_assets_ready", lambda **_: dict.fromkeys(build.mini_asset_paths(), True))
    assert main(["doctor", "--profile", "mini"]) == 0
    out = capsys.readouterr().out
    assert "✓ asset depth:" in out and "✗" not in out.replace("✗ RAM", "")
    assert "Next step:" in out and "make lab" in out


def test_doctor_and_paths_name_the_build_variant(tmp_cache, monkeypatch, capsys):
    monkeypatch.setenv("GENPERCEPT_MINI_SEED", "3")
    monkeypatch.setenv("GENPERCEPT_MINI_PRECISION", "fp32")
    main(["doctor", "--profile", "mini"])
    out = capsys.readouterr().out
    assert "mini build: seed 3, fp32" in out and "✓ mini build: seed 3, fp32" in out
    assert main(["paths"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mini build: seed 3, fp32 (asked for: fp32)")
    assert str(build.mini_asset_paths(3, "fp32")["depth"]) in out


@pytest.mark.parametrize("command", [["doctor"], ["paths"], ["assets"]])
def test_a_bad_build_variant_fails_in_one_line(command, tmp_cache, monkeypatch, capsys):
    monkeypatch.setenv("GENPERCEPT_MINI_PRECISION", "half")
    assert main(command) in (1, 2)
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "GENPERCEPT_MINI_PRECISION must be one of" in err and "'half'" in err
    assert not tmp_cache.exists()  # nothing was built


def test_low_ram_is_advisory_only():
    checks = [Check("torch", True, "2.4"), Check("RAM", False, "1 GB free", "close programs")]
    assert essential_failures(checks) == []
    assert [c.name for c in essential_failures(checks + [Check("asset vae", False, "not built")])] == ["asset vae"]


# --- predict --------------------------------------------------------------------------------------

def test_predict_writes_depth_depth16_and_normals(tiny_profile, photo, tmp_path, capsys):
    out = tmp_path / "predictions"
    assert main(["predict", str(photo), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["room_depth.png", "room_depth16.png", "room_normals.png"]  # and no temporary files left
    for name in names:
        assert f"wrote {out / name}" in printed
    for name in ("room_depth.png", "room_normals.png"):
        with Image.open(out / name) as im:
            assert im.mode == "RGB" and im.size == (28, 20)
    with Image.open(out / "room_depth16.png") as im:
        depth16 = np.asarray(im)
    assert depth16.dtype == np.uint16 and depth16.shape == (20, 28)
    assert len(np.unique(depth16)) > 2


def test_predict_one_task_from_a_model_folder(tiny_profile, photo, tmp_path):
    out = tmp_path / "o"
    assert main(["predict", str(photo), "--out", str(out), "--model", str(tiny_profile["normals"]),
                 "--steps", "2", "--noise", "gaussian", "--ensemble", "2", "--processing-resolution", "16"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["room_normals.png"]


def _not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is a text file renamed .png\n")
    return path


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "missing.jpg", "does not exist"),
    (_not_an_image, "not an image"),
    (lambda d: d, "is a folder"),
])
def test_predict_rejects_bad_images_before_loading_a_model(make, words, tiny_profile, photo, tmp_path, capsys,
                                                           monkeypatch):
    import genpercept_lessons.cli.predict as cli_predict

    monkeypatch.setattr(cli_predict, "load_pipeline", lambda *a, **k: pytest.fail("loaded a model for a bad input"))
    bad = make(tmp_path)
    code = main(["predict", str(photo), str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    _no_traceback(err)
    assert words in err and str(bad) in err


def test_predict_without_built_assets_says_make_assets(tmp_cache, photo, tmp_path, capsys):
    assert main(["predict", str(photo), "--out", str(tmp_path / "o"), "--profile", "mini"]) == 1
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "make assets" in err


@pytest.mark.parametrize("extra, words", [
    (["--model", "/no/such/folder", "--task", "depth"], "no folder"),
    (["--task", "both", "--model", "."], "--task depth or --task normals"),
])
def test_predict_rejects_bad_models(extra, words, tiny_profile, photo, tmp_path, capsys):
    assert main(["predict", str(photo), "--out", str(tmp_path / "o")] + extra) == 1
    err = capsys.readouterr().err
    _no_traceback(err)
    assert words in err


def test_predict_model_of_the_wrong_task(tiny_profile, photo, tmp_path, capsys):
    assert main(["predict", str(photo), "--out", str(tmp_path / "o"), "--model", str(tiny_profile["depth"]),
                 "--task", "normals"]) == 1
    assert "holds a depth pipeline" in capsys.readouterr().err


def test_bad_option_values_are_usage_errors(photo, tmp_path, capsys):
    assert main(["predict", str(photo), "--out", str(tmp_path), "--steps", "0"]) == 2
    assert main(["predict", str(photo), "--out", str(tmp_path), "--processing-resolution", "-5"]) == 2
    assert main(["predict", str(photo)]) == 2  # --out is required
    assert "Traceback" not in capsys.readouterr().err


def test_cuda_out_of_memory_prints_the_hint(tiny_profile, photo, tmp_path, capsys, monkeypatch):
    import torch

    import genpercept_lessons.inference as inference

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(inference, "predict", oom)
    assert main(["predict", str(photo), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "--processing-resolution" in err and "--ensemble" in err and "--preset 24gb" in err


# --- bench ----------------------------------------------------------------------------------------

def _table_rows(text: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("setting"))
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.split("|")] for line in lines[start + 2:])
            if len(cells) == 6}


def test_bench_quick_prints_a_table_of_positive_figures(tiny_profile, capsys):
    assert main(["bench", "--quick", "--images", "1"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert list(rows) == [label for label, _ in QUICK_SETTINGS] + [TRAIN_LABEL]
    for label, (images, seconds, per_image, relative, memory) in rows.items():
        assert int(images) == (2 if label == TRAIN_LABEL else 1)  # the training batch of the (tiny) profile
        assert float(seconds) > 0 and float(per_image) > 0 and float(memory) > 0
        assert relative.endswith("x") and float(relative[:-1]) > 0
    assert rows[QUICK_SETTINGS[0][0]][3] == "1.0x"


def test_run_benchmarks_rows_and_table(tiny_pipeline_dirs, one_thread):
    from genpercept_lessons import get_profile
    from genpercept_lessons.cli.predict import load_pipeline

    profile = get_profile("mini", depth_model=str(tiny_pipeline_dirs["depth"]))
    pipe = load_pipeline(profile, "depth")
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    rows = run_benchmarks(pipe, images, settings=QUICK_SETTINGS[:2], train_batch_size=None)
    assert [r["setting"] for r in rows] == [label for label, _ in QUICK_SETTINGS[:2]]
    assert rows[0]["relative"] == 1.0 and all(r["seconds_per_image"] > 0 and r["images"] == 2 for r in rows)
    assert rows[1]["unet_calls_per_image"] == QUICK_SETTINGS[1][1]["steps"]
    assert format_table(rows).count("\n") == len(rows) + 2  # header, rule, rows, memory note
    with pytest.raises(ValueError, match="rows"):
        format_table([])
    with pytest.raises(ValueError, match="MarigoldDepthPipeline"):
        run_benchmarks(load_pipeline(get_profile("mini", normals_model=str(tiny_pipeline_dirs["normals"])), "normals"))
