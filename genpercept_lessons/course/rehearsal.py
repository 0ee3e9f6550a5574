"""The full profile's dress rehearsal on a CPU: every lesson, top to bottom, in the full profile, against stand-ins.

No machine here reaches the Hugging Face Hub or has a GPU, so the full profile's cells would otherwise never run. The
rehearsal writes random-weight stand-ins of the real checkpoints (``course/full_standins.py``: Stable Diffusion 2's
UNet with the 8-channel ``conv_in``, SD's VAE with scaling factor 0.18215, SD2's 1024-wide, 23-layer text tower with
its 77-token context) into a Hugging Face hub cache under the real ids, and stand-in Hypersim / Virtual KITTI 2 /
NYUv2 files in their real formats (``real_data/standins.py``), prepared by the course's own ``prepare_*``. Each lesson
then runs with ``GENPERCEPT_PROFILE=full GENPERCEPT_REHEARSAL=1 HF_HUB_OFFLINE=1``: the profile shrinks sizes and
counts (``profiles.REHEARSAL_SETTINGS``) and every claim that needs the real weights is reported, not asserted
(``claims.check_claim``), never silently passed. Everything else (the code paths, loaders, conventions, the
library-vs-open-code checks) runs for real.

The stand-ins record the rehearsal's processing resolution (64 px) as their default instead of the real 768, so that
cells that run a pipeline at its default stay small. Memory forces one thinning, said here: the UNet and VAE have 1
layer per block instead of 2 (583 M UNet parameters instead of 866 M), because lessons 05 and 09 hold two pipelines
beside AdamW's moments on a 24 GiB machine. Widths, attention heads, channels, the text tower and the scheduler
configurations are the real ones.

    python -m genpercept_lessons.course.rehearsal [--lessons 02 03] [--workdir DIR]     (make rehearse)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["STANDIN_REPOS", "write_standin_hub", "prepare_rehearsal", "rehearse_notebook", "rehearse", "write_report",
           "main"]

# hub id -> (what it is, its scheduler's settings beside Marigold v1-0's DDIM config). Marigold v1-0's scheduler json
# has no timestep_spacing key (diffusers' default "leading"); E2E-FT's checkpoints are saved "trailing"; Marigold v1-1
# is trained with zero terminal SNR and trailing timesteps (Marigold README, v1-1 news).
STANDIN_REPOS: dict[str, tuple[str, dict[str, Any]]] = {
    "prs-eth/marigold-depth-v1-0": ("depth", {}),
    "GonzaloMG/marigold-normals": ("normals", {}),
    "prs-eth/marigold-depth-v1-1": ("depth", {"timestep_spacing": "trailing", "rescale_betas_zero_snr": True}),
    "prs-eth/marigold-normals-v1-1": ("normals", {"timestep_spacing": "trailing", "rescale_betas_zero_snr": True}),
    "GonzaloMG/marigold-e2e-ft-depth": ("depth", {"timestep_spacing": "trailing"}),
    "GonzaloMG/marigold-e2e-ft-normals": ("normals", {"timestep_spacing": "trailing"}),
    "stabilityai/stable-diffusion-2": ("text-to-image", {}),
}
_COMMIT = "0" * 40  # the snapshot every stand-in repo points refs/main at
_VERSION = 2  # bump when the stand-ins change: a hub folder written by another version is rewritten


def _add_repo(hub: Path, repo_id: str, files: dict[str, Path], stored: dict[str, Path]) -> None:
    """Lay ``files`` ({path in repo: file}) out as the hub cache does: blobs/<sha256>, snapshots/<commit>/<path> ->
    ../../blobs/<sha256>, refs/main. Blobs are hard links to the first file with that digest (``stored``, updated):
    the bytes are stored once for every repo that holds them."""
    from genpercept_lessons.assets import file_sha256

    repo = hub / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for rel, path in files.items():
        name = file_sha256(path)
        if not (repo / "blobs" / name).exists():
            os.link(stored.setdefault(name, path), repo / "blobs" / name)
        target = repo / "snapshots" / _COMMIT / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(Path(*[".."] * (len(Path(rel).parts) + 1), "blobs", name))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(_COMMIT)


def write_standin_hub(hub_dir: str | os.PathLike, layers: int = 1, text_layers: int = 23, tiny: bool = False) -> Path:
    """Write every ``STANDIN_REPOS`` id into the hub cache ``hub_dir`` (random weights, ~9 GB on disk); return it.

    ``tiny`` writes the course's tiny random pipelines instead of the real architecture (a few MB: what ``make test``
    rehearses with; the real-size stand-ins are ``make rehearse``'s). Idempotent: a folder already holding these
    stand-ins (same settings, version) is left as is. Written beside the target and renamed into place, so an
    interrupted run leaves nothing half-written.
    """
    import torch
    from diffusers import UNet2DConditionModel

    from genpercept_lessons.course.full_standins import standin_marigold, tiny_marigold
    from genpercept_lessons.mini.marigold_training import make_pipeline, make_text_to_image_pipeline
    from genpercept_lessons.profiles import REHEARSAL_SETTINGS

    hub_dir = Path(hub_dir)
    stamp = {"version": _VERSION, "layers": layers, "text_layers": text_layers, "tiny": tiny,
             "repos": sorted(STANDIN_REPOS)}
    if (hub_dir / "standins.json").is_file() and json.loads((hub_dir / "standins.json").read_text()) == stamp:
        return hub_dir
    tmp = hub_dir.with_name(hub_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    staging = tmp / "staging"
    resolution = REHEARSAL_SETTINGS["resolution"]
    kinds: dict[str, dict[str, Path]] = {}
    # Marigold and E2E-FT keep Stable Diffusion 2's VAE and text encoder frozen: every kind shares the first kind's
    # (so their files are one blob each); only the UNets differ (8-channel conv_in for Marigold, 4 for SD2 itself)
    base = None
    for seed, kind in enumerate(("depth", "normals", "text-to-image"), start=1):
        if base is None:
            base = (tiny_marigold(kind, seed=seed, tokenizer_dir=staging / "tok", resolution=resolution) if tiny else
                    standin_marigold(kind, layers=layers, text_layers=text_layers, seed=seed,
                                     tokenizer_dir=staging / "tok", resolution=resolution))
            pipe = base
        else:
            torch.manual_seed(seed)
            unet = UNet2DConditionModel(**{**dict(base.unet.config), "in_channels": 4 if kind == "text-to-image" else 8})
            parts = (unet, base.vae, base.text_encoder, base.tokenizer)
            pipe = (make_text_to_image_pipeline(*parts) if kind == "text-to-image" else
                    make_pipeline(kind, *parts, resolution=resolution))
        pipe.save_pretrained(staging / kind)
        kinds[kind] = {}
        for path in sorted(p for p in (staging / kind).rglob("*") if p.is_file()):
            rel = path.relative_to(staging / kind).as_posix()
            if rel != "scheduler/scheduler_config.json":
                kinds[kind][rel] = path
    del base, pipe
    stored: dict[str, Path] = {}
    for repo_id, (kind, scheduler) in STANDIN_REPOS.items():
        config = json.loads((staging / kind / "scheduler" / "scheduler_config.json").read_text())
        config.pop("timestep_spacing", None)  # v1-0's json has no key: diffusers' default, "leading"
        config.update(scheduler)
        own = staging / "schedulers" / repo_id.replace("/", "--") / "scheduler_config.json"
        own.parent.mkdir(parents=True)
        own.write_text(json.dumps(config, indent=2))
        _add_repo(tmp, repo_id, {**kinds[kind], "scheduler/scheduler_config.json": own}, stored)
    shutil.rmtree(staging)
    (tmp / "standins.json").write_text(json.dumps(stamp))
    shutil.rmtree(hub_dir, ignore_errors=True)
    os.replace(tmp, hub_dir)
    return hub_dir


def prepare_rehearsal(workdir: str | os.PathLike, layers: int = 1, text_layers: int = 23,
                      tiny: bool = False) -> dict[str, str]:
    """Stand-in hub, data and cache under ``workdir``; the environment a lesson's kernel then runs the rehearsal in.

    The cache is the rehearsal's own (lessons 05 and 06 keep their full-profile runs there); the MiniScenes data that
    lessons show beside the real data are linked from the course's cache when it has them (else rendered on first use).
    """
    from genpercept_lessons.assets import is_complete
    from genpercept_lessons.mini.build import mini_asset_paths
    from genpercept_lessons.real_data.standins import prepare_standin_data

    workdir = Path(workdir).resolve()
    hub = write_standin_hub(workdir / "hub", layers=layers, text_layers=text_layers, tiny=tiny)
    data = workdir / "data"
    prepare_standin_data(data, overwrite=True)  # seconds: always the current stand-ins
    cache = workdir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(cache / "runs", ignore_errors=True)  # lessons 05-06 resume their full-profile runs: start afresh
    source = mini_asset_paths()["data"]
    if source.parent != cache and is_complete(source, check_hashes=False) and not (cache / source.name).exists():
        (cache / source.name).symlink_to(source)
    return {"GENPERCEPT_PROFILE": "full", "GENPERCEPT_REHEARSAL": "1", "GENPERCEPT_CACHE": str(cache),
            "GENPERCEPT_DATA": str(data), "GENPERCEPT_CHECKPOINTS": "", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub),
            "HF_HOME": str(workdir / "hf-home"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}


def rehearse_notebook(path: str | os.PathLike, env: dict[str, str], out_dir: str | os.PathLike,
                      timeout: int = 3600) -> dict[str, Any]:
    """Run one lesson in the rehearsal ``env``; {"lesson", "errors", "claims", "seconds", ...}; the executed copy in
    ``out_dir``. ``claims``: each weight-dependent claim the lesson reached, {"claim", "held"} (held on random weights)."""
    import nbformat

    from genpercept_lessons.claims import REHEARSAL_LOG_ENV
    from genpercept_lessons.course.spread import run_notebook

    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / f"{path.stem}.claims.jsonl"
    log.unlink(missing_ok=True)
    result = run_notebook(path, {**env, REHEARSAL_LOG_ENV: str(log)}, timeout)
    nbformat.write(result["notebook"], str(out_dir / path.name))
    claims = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    builds = [i for i, c in enumerate(result["notebook"].cells) for o in c.get("outputs", [])
              if "Building the mini assets" in o.get("text", "")]
    errors = result["errors"] + [f"cell {i}: started a mini build (a full-profile cell must not need one)" for i in builds]
    from genpercept_lessons.assets import file_sha256
    from genpercept_lessons.atomic import atomic_write_bytes

    report = {"lesson": path.stem, "errors": errors, "claims": claims, "seconds": result["seconds"],
              "notebook_sha256": file_sha256(path), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    atomic_write_bytes(out_dir / f"{path.stem}.report.json", json.dumps(report, indent=1).encode())
    return report


def rehearse(notebooks_dir: str | os.PathLike = "notebooks", workdir: str | os.PathLike | None = None,
             lessons: list[str] | None = None, timeout: int = 3600, tiny: bool = False) -> list[dict[str, Any]]:
    """Prepare the stand-ins and run each lesson (or ``lessons``, e.g. ["02"]) in the rehearsal; one report per lesson.

    ``tiny``: with the course's tiny random pipelines instead of the real architecture (see ``write_standin_hub``).
    """
    from genpercept_lessons.assets import cache_root

    workdir = Path(workdir) if workdir is not None else cache_root() / ("rehearsal-tiny" if tiny else "rehearsal")
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if lessons:
        unknown = sorted(set(lessons) - {p.name[:2] for p in paths})
        if unknown:
            raise ValueError(f"rehearse: `lessons` {unknown} match no notebook in {notebooks_dir} "
                             f"(there are {[p.name[:2] for p in paths]})")
        paths = [p for p in paths if p.name[:2] in lessons]
    if not paths:
        raise FileNotFoundError(f"rehearse: no lesson notebooks (NN_*.ipynb) in {notebooks_dir}")
    t0 = time.perf_counter()
    env = prepare_rehearsal(workdir, tiny=tiny)
    print(f"stand-ins ready in {time.perf_counter() - t0:.0f} s ({workdir})", flush=True)
    reports = []
    for path in paths:
        report = rehearse_notebook(path, env, workdir / "executed", timeout)
        reports.append(report)
        print(f"{report['lesson']}: {report['seconds']:.0f} s, {len(report['errors'])} failed cell(s), "
              f"{len(report['claims'])} claim(s) reported, not asserted", flush=True)
        for line in report["errors"]:
            print(f"  FAILED {line}", flush=True)
        for c in report["claims"]:
            print(f"  not asserted: {c['claim']} [{'held' if c['held'] else 'did not hold'} on the stand-ins]", flush=True)
    return reports


def write_report(executed: str | os.PathLike, notebooks_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``out``: a Markdown record of the last rehearsal of each lesson: its run time, failed cells and every claim it
    reached but could not check; a lesson changed since (or never rehearsed) is marked so.

    The reports behind it are kept beside it (``out`` with ``.json``), so that a lesson rehearsed alone, or on a machine
    whose cache no longer holds the others' runs, leaves the others' records as they were; a report in ``executed`` (this
    machine's runs) replaces the kept one when it is newer.
    """
    from genpercept_lessons.assets import file_sha256
    from genpercept_lessons.atomic import atomic_write_bytes

    out = Path(out)
    kept_path = out.with_suffix(".json")
    kept = json.loads(kept_path.read_text()) if kept_path.is_file() else {}
    for found in sorted(Path(executed).glob("*.report.json")):
        r = json.loads(found.read_text())
        if r["lesson"] not in kept or r["date"] > kept[r["lesson"]]["date"]:
            kept[r["lesson"]] = r
    here = f"{platform.machine()}, {os.cpu_count()} cores"
    machines = sorted({r.get("machine", here) for r in kept.values()}) or [here]
    lines = ["# The full profile's dress rehearsal", "",
             "Written by `make rehearse` (`python -m genpercept_lessons.course.rehearsal`): every lesson run top to bottom "
             "in the full profile on the CPU, against random-weight stand-ins of the real checkpoints (real widths and "
             "scheduler configurations; UNet and VAE with 1 layer per block) and stand-in Hypersim / Virtual KITTI 2 / "
             "NYUv2 files in their real formats, at 64 px and 3 evaluation images. Every cell ran unless listed as "
             "failed. The claims below need the real weights (or the real data): in the rehearsal they are reported, "
             "not asserted (whether one held on random weights means nothing; it is listed so that none passes "
             "unseen); with the released checkpoints and datasets they are asserted.", "",
             f"Machine: {'; '.join(machines)}.", "",
             "| lesson | run time | failed cells | claims reported, not asserted |", "|---|---|---|---|"]
    reports = []
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")):
        r = kept.get(path.stem)
        if r is None:
            lines.append(f"| {path.stem} | no record: `make rehearse LESSONS={path.name[:2]}` | | |")
            continue
        if "claims" not in r:  # written before every claim was recorded (version 1 listed failing ones only)
            lines.append(f"| {path.stem} | old record: `make rehearse LESSONS={path.name[:2]}` | | |")
            continue
        stale = "" if r["notebook_sha256"] == file_sha256(path) else " (the lesson changed since)"
        lines.append(f"| {r['lesson']} | {r['seconds'] / 60:.1f} min, {r['date']}{stale} | {len(r['errors'])} | "
                     f"{len(r['claims'])} |")
        reports.append(r)
    for r in reports:
        if r["errors"] or r["claims"]:
            lines += ["", f"## {r['lesson']}"]
            lines += [f"- FAILED {e}" for e in r["errors"]]
            lines += [f"- not asserted: {c['claim']} ({'held' if c['held'] else 'did not hold'} on the stand-ins)"
                      for c in r["claims"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(kept_path, (json.dumps(dict(sorted(kept.items())), indent=1) + "\n").encode())
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode())
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m genpercept_lessons.course.rehearsal``: 0 when every cell of every lesson ran, else 1."""
    parser = argparse.ArgumentParser(prog="python -m genpercept_lessons.course.rehearsal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lessons", nargs="+", help="only these lessons, e.g. 02 03 (default: all)")
    parser.add_argument("--workdir", help="where the stand-ins and runs go (default: <cache>/rehearsal)")
    parser.add_argument("--notebooks", default="notebooks")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny random pipelines instead of the real architecture (what make test rehearses with)")
    parser.add_argument("--report", default="docs/rehearsal.md",
                        help="the record of each lesson's last rehearsal (default: docs/rehearsal.md)")
    args = parser.parse_args(argv)
    reports = rehearse(args.notebooks, args.workdir, args.lessons, args.timeout, tiny=args.tiny)
    if not args.tiny:  # the record of the last rehearsal of every lesson, this run's and earlier ones
        from genpercept_lessons.assets import cache_root

        workdir = Path(args.workdir) if args.workdir else cache_root() / "rehearsal"
        print(f"wrote {write_report(workdir / 'executed', args.notebooks, args.report)}")
    failed = [r["lesson"] for r in reports if r["errors"]]
    claims = sum(len(r["claims"]) for r in reports)
    print(f"rehearsal: {len(reports) - len(failed)}/{len(reports)} lessons ran every cell in the full profile; "
          f"{claims} claim(s) need the real weights and were reported, not asserted" +
          (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
