"""The full profile's CPU rehearsal: its profile, claim reporting, stand-in hub layout, and notebook runner."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import nbformat
import numpy as np
import pytest

from genpercept_lessons.claims import REHEARSAL_LOG_ENV, check_claim
from genpercept_lessons.profiles import REHEARSAL_ENV, get_profile


def test_rehearsal_profile_is_the_full_one_shrunk(monkeypatch):
    full = get_profile("full")
    assert not full.rehearsal and full.eval_scenes == 654
    assert full.eval_settings == {"protocol": "nyuv2", "processing_resolution": 0,
                                  "ensembling_kwargs": {"max_iter": 50, "tol": 1e-6}}
    assert get_profile("mini").eval_settings == {"protocol": "miniscenes"}
    monkeypatch.setenv(REHEARSAL_ENV, "1")
    rehearsal = get_profile("full")
    assert rehearsal.rehearsal and rehearsal.device == "cpu" and rehearsal.eval_scenes == 3
    assert rehearsal.depth_model == full.depth_model and rehearsal.eval_protocol == "nyuv2"
    assert rehearsal.eval_settings["processing_resolution"] == rehearsal.resolution == 64
    assert "REHEARSAL" in rehearsal.describe()
    assert not get_profile("mini").rehearsal  # the mini profile is never rehearsed
    monkeypatch.setenv(REHEARSAL_ENV, "yes")
    with pytest.raises(ValueError, match="GENPERCEPT_REHEARSAL must be '1'.*'yes'"):
        get_profile("full")


def test_check_claim_asserts_normally_and_reports_every_claim_in_rehearsal(monkeypatch, tmp_path, capsys):
    import numpy as np
    import torch

    check_claim(get_profile("mini"), 2 > 1, "two is more than one")
    check_claim(get_profile("full"), np.float32(2) > 1, "a numpy bool")
    with pytest.raises(AssertionError, match="the lesson's claim did not hold: one is more than two"):
        check_claim(get_profile("mini"), torch.tensor(1) > 2, "one is more than two")
    with pytest.raises(TypeError, match="`held` must be one truth value"):
        check_claim(get_profile("mini"), torch.tensor([1, 2]) > 1, "several values")
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv(REHEARSAL_ENV, "1")
    monkeypatch.setenv(REHEARSAL_LOG_ENV, str(log))
    check_claim(get_profile("full"), 1 > 2, "one is more than two")  # reported, not raised
    check_claim(get_profile("full"), 2 > 1, "two is more than one")  # held by chance: listed all the same
    assert "not asserted: one is more than two [did not hold]" in capsys.readouterr().out
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"claim": "one is more than two", "held": False}, {"claim": "two is more than one", "held": True}]
    with pytest.raises(TypeError, match="`profile` must be a Profile"):
        check_claim("full", True, "x")
    with pytest.raises(ValueError, match="`claim` must be a non-empty sentence"):
        check_claim(get_profile("full"), True, " ")



@pytest.fixture(scope="module")
def standin_hub(tmp_path_factory):
    from genpercept_lessons.course.rehearsal import write_standin_hub

    return write_standin_hub(tmp_path_factory.mktemp("rehearsal") / "hub", tiny=True)


def test_standin_hub_has_the_hub_cache_layout_with_each_repos_scheduler(standin_hub):
    from genpercept_lessons.course.rehearsal import STANDIN_REPOS, write_standin_hub

    assert not standin_hub.with_name("hub.partial").exists()
    for repo_id in STANDIN_REPOS:
        repo = standin_hub / f"models--{repo_id.replace('/', '--')}"
        commit = (repo / "refs" / "main").read_text()
        snapshot = repo / "snapshots" / commit
        files = [p for p in snapshot.rglob("*") if p.is_symlink()]
        assert files and all(p.resolve().parent == (repo / "blobs").resolve() and p.resolve().is_file() for p in files)
        assert (snapshot / "model_index.json").is_file()
    sched = {r: json.loads((standin_hub / f"models--{r.replace('/', '--')}" / "snapshots" / ("0" * 40) /
                            "scheduler" / "scheduler_config.json").read_text()) for r in STANDIN_REPOS}
    assert "timestep_spacing" not in sched["prs-eth/marigold-depth-v1-0"]  # as released: diffusers' default, leading
    assert sched["GonzaloMG/marigold-e2e-ft-depth"]["timestep_spacing"] == "trailing"
    assert sched["prs-eth/marigold-depth-v1-1"]["rescale_betas_zero_snr"] is True
    # the depth repos share their weights' bytes (hard links), each repo has its own scheduler
    unet = [standin_hub / f"models--{r.replace('/', '--')}" / "snapshots" / ("0" * 40) / "unet" /
            "diffusion_pytorch_model.safetensors" for r in ("prs-eth/marigold-depth-v1-0", "prs-eth/marigold-depth-v1-1")]
    assert os.path.samefile(unet[0].resolve(), unet[1].resolve())
    # Marigold keeps SD2's VAE and text encoder frozen: every stand-in repo holds the same bytes for them
    snapshot = {r: standin_hub / f"models--{r.replace('/', '--')}" / "snapshots" / ("0" * 40) for r in STANDIN_REPOS}
    for part in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        first = (snapshot["prs-eth/marigold-depth-v1-0"] / part).resolve()
        assert all(os.path.samefile((snapshot[r] / part).resolve(), first) for r in STANDIN_REPOS), part  # one copy
    unets = {r: (snapshot[r] / "unet" / "diffusion_pytorch_model.safetensors").resolve().name for r in STANDIN_REPOS}
    assert len({unets["prs-eth/marigold-depth-v1-0"], unets["GonzaloMG/marigold-normals"],
                unets["stabilityai/stable-diffusion-2"]}) == 3
    assert json.loads((snapshot["stabilityai/stable-diffusion-2"] / "unet" / "config.json").read_text())[
        "in_channels"] == 4
    mtime = (standin_hub / "standins.json").stat().st_mtime_ns
    assert write_standin_hub(standin_hub, tiny=True) == standin_hub  # already there: left as is
    assert (standin_hub / "standins.json").stat().st_mtime_ns == mtime


def test_standin_hub_loads_offline_by_the_real_ids(standin_hub, tmp_path):
    script = textwrap.dedent("""
        from genpercept_lessons.models import load_marigold, load_text_to_image
        from genpercept_lessons.normals_convention import normals_convention
        from genpercept_lessons.profiles import get_profile
        full = get_profile("full")
        depth, normals = load_marigold(full, "depth"), load_marigold(full, "normals")
        v11 = load_marigold(full, "depth", model="prs-eth/marigold-depth-v1-1")
        sd = load_text_to_image(full)
        print(full.device, depth.scheduler.config.timestep_spacing, normals_convention(normals),
              v11.scheduler.config.timestep_spacing, type(sd).__name__, sd.unet.config.in_channels,
              depth.default_processing_resolution)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(standin_hub), "HF_HOME": str(tmp_path / "home"),
           "OMP_NUM_THREADS": "1", "GENPERCEPT_CHECKPOINTS": "", REHEARSAL_ENV: "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["cpu", "leading", "x-left", "trailing", "StableDiffusionPipeline", "4", "64"]


def test_rehearse_notebook_reports_failures_claims_and_mini_builds(tmp_path):
    from genpercept_lessons.course.rehearsal import rehearse_notebook

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from genpercept_lessons import get_profile\n"
                                  "from genpercept_lessons.claims import check_claim\nprofile = get_profile()"),
        nbformat.v4.new_code_cell("assert profile.rehearsal and profile.name == 'full'"),
        nbformat.v4.new_code_cell("check_claim(profile, 1 > 2, 'needs real weights')\n"
                                  "check_claim(profile, 2 > 1, 'holds by chance')"),
        nbformat.v4.new_code_cell("print('Building the mini assets in the background')"),
        nbformat.v4.new_code_cell("assert False, 'a planted failure'"),
    ])
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, str(path))
    env = {"GENPERCEPT_PROFILE": "full", REHEARSAL_ENV: "1"}
    report = rehearse_notebook(path, env, tmp_path / "out", timeout=120)
    assert report["lesson"] == "99_probe" and report["claims"] == [
        {"claim": "needs real weights", "held": False}, {"claim": "holds by chance", "held": True}]
    assert len(report["errors"]) == 2 and "a planted failure" in report["errors"][0]
    assert "started a mini build" in report["errors"][1]
    assert (tmp_path / "out" / "99_probe.ipynb").is_file()  # the executed copy, to read the failures in
    # the record: this lesson's last rehearsal; one never rehearsed, and one changed since, are marked so
    from genpercept_lessons.course.rehearsal import write_report

    nbformat.write(nbformat.v4.new_notebook(), str(tmp_path / "98_other.ipynb"))
    text = write_report(tmp_path / "out", tmp_path, tmp_path / "report.md").read_text()
    assert "| 98_other | no record: `make rehearse LESSONS=98` |" in text and "| 99_probe |" in text and "changed since" not in text
    assert "- not asserted: needs real weights (did not hold on the stand-ins)" in text and "a planted failure" in text
    assert "- not asserted: holds by chance (held on the stand-ins)" in text
    old = json.loads((tmp_path / "out" / "99_probe.report.json").read_text())
    old.pop("claims")
    (tmp_path / "out" / "98_other.report.json").write_text(json.dumps({**old, "lesson": "98_other", "skipped": []}))
    text = write_report(tmp_path / "out", tmp_path, tmp_path / "report.md").read_text()
    assert "| 98_other | old record: `make rehearse LESSONS=98` |" in text  # a record from before claims were listed
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, str(path))
    assert "(the lesson changed since)" in write_report(tmp_path / "out", tmp_path, tmp_path / "report.md").read_text()
    # the records live beside the report: a cache without the runs (another machine, a wiped cache) keeps them
    shutil.rmtree(tmp_path / "out")
    text = write_report(tmp_path / "empty", tmp_path, tmp_path / "report.md").read_text()
    assert "| 99_probe |" in text and "- not asserted: needs real weights" in text and "| 98_other | old record" in text
    # a run older than the kept record does not replace it; a newer one does
    (tmp_path / "runs").mkdir()
    texts = []
    for date, claim in [("2000-01-01 00:00", "an older run"), ("2999-01-01 00:00", "a newer run")]:
        (tmp_path / "runs" / "99_probe.report.json").write_text(json.dumps(
            {**report, "date": date, "claims": [{"claim": claim, "held": False}]}))
        texts.append(write_report(tmp_path / "runs", tmp_path, tmp_path / "report.md").read_text())
    assert "an older run" not in texts[0] and "needs real weights" in texts[0]
    assert "a newer run" in texts[1] and "needs real weights" not in texts[1]
    assert json.loads((tmp_path / "report.json").read_text())["99_probe"]["date"] == "2999-01-01 00:00"


def test_rehearse_rejects_unknown_lessons(tmp_path):
    from genpercept_lessons.course.rehearsal import rehearse

    (tmp_path / "02_x.ipynb").write_text("{}")
    with pytest.raises(ValueError, match=r"`lessons` \['07'\] match no notebook"):
        rehearse(tmp_path, tmp_path / "work", lessons=["07"])


def test_predict_passes_ensembling_kwargs_to_diffusers(tiny_pipeline_dirs, monkeypatch):
    from genpercept_lessons.inference import predict
    from genpercept_lessons.models import load_marigold

    pipe = load_marigold("mini", "depth", model=str(tiny_pipeline_dirs["depth"]))
    seen = []
    real = type(pipe).ensemble_depth  # a staticmethod in diffusers

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(type(pipe), "ensemble_depth", staticmethod(spy))
    images = np.zeros((1, 16, 16, 3), np.uint8)
    predict(pipe, images, ensemble=3, ensembling_kwargs={"max_iter": 50, "tol": 1e-6})
    assert seen == [{"max_iter": 50, "tol": 1e-6}]
    with pytest.raises(TypeError, match="`ensembling_kwargs` must be a dict"):
        predict(pipe, images, ensemble=3, ensembling_kwargs=[("max_iter", 50)])


def test_load_eval_data_is_the_profiles_held_out_set():
    from genpercept_lessons.training_data import load_eval_data

    with pytest.raises(TypeError, match="`profile` must be a Profile"):
        load_eval_data("mini")


def test_rehearsal_sized_shrinks_a_recipe_only_in_the_rehearsal(monkeypatch):
    from genpercept_lessons.finetuning import GPU_24GB

    assert get_profile("full").rehearsal_sized(GPU_24GB) is GPU_24GB
    monkeypatch.setenv(REHEARSAL_ENV, "1")
    small = get_profile("full").rehearsal_sized(GPU_24GB)
    assert (small.steps, small.warmup, small.batch_size, small.grad_accumulation, small.eval_scenes) == (2, 1, 1, 1, 3)
    assert small.lr == GPU_24GB.lr and small.gradient_checkpointing and small.mixed_precision == "bf16"
    small.validate()
    with pytest.raises(TypeError, match="`config` must be an E2EConfig"):
        get_profile("full").rehearsal_sized({"steps": 2})


def test_every_lesson_runs_in_the_full_profile_on_tiny_standins(tmp_path):
    """The full-profile rehearsal with tiny random pipelines: every cell of every lesson takes its full-profile branch
    (hub ids resolved offline, the real data formats, the papers' settings) and runs. `make rehearse` does the same
    with the real architecture; this one keeps those paths exercised on every `make test`."""
    from pathlib import Path

    from genpercept_lessons.course.rehearsal import rehearse

    reports = rehearse(Path(__file__).parents[1] / "notebooks", tmp_path / "work", tiny=True, timeout=900)
    assert len(reports) == len(list((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    failed = {r["lesson"]: r["errors"] for r in reports if r["errors"]}
    assert not failed, failed
