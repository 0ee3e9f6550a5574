"""Build-to-build spread: run the course on several mini builds and tabulate every number it asserts or quotes.

Every learner trains their own mini world (CPU kernels, bf16 or fp32, thread count), so a lesson may assert a
direction only where it holds on every build with room to spare. ``measure`` builds one variant (seed, precision),
runs every notebook on it with *probe* cells inserted after the cells that compute the asserted numbers, and writes
what the probes read to ``docs/spread/<build>.json``; ``table`` turns all of them into ``docs/robustness.md``.

    python -m genpercept_lessons.course.spread measure --seed 1 --precision fp32
    python -m genpercept_lessons.course.spread table
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Probe", "PROBES", "ASSET_CLAIMS", "measure_build", "run_notebook", "write_table"]

PROBE_TAG = "GENPERCEPT_PROBE "


@dataclass(frozen=True)
class Probe:
    """One number a lesson computes: read after the first cell of notebook ``lesson`` that contains ``after``.

    ``expr`` is evaluated in the notebook's kernel and gives a float, or a list of floats (one per scene) for a paired
    comparison. ``claim`` is the assert the lesson makes about it, exactly as it appears in the notebook ("" = shown,
    not asserted); a test checks that each claim is still in its notebook.
    """

    lesson: str
    after: str
    name: str
    expr: str
    claim: str = ""


def _p(lesson, after, *rows):
    return [Probe(lesson, after, *row) for row in rows]


PROBES: list[Probe] = [
    *_p("00", 'metrics["abs_rel"] < 0.2',
        ("00 tiny prediction AbsRel", 'metrics["abs_rel"]', 'metrics["abs_rel"] < 0.2')),
    *_p("01", 'wall_match["mini-SD w = 4, another',
        ("01 mini-SD wall colour as captioned, renders", 'wall_match["renders (the measure\'s ceiling)"]', ""),
        ("01 mini-SD wall colour as captioned, w = 4", 'wall_match["mini-SD w = 4, its caption"]', ""),
        ("01 mini-SD wall colour as captioned, w = 4, another caption",
         'wall_match["mini-SD w = 4, another view\'s caption"]', "")),
    *_p("01", 'losses["own caption"] < losses["another',
        ("01 mini-SD held-out v-loss, own / another view's caption", 'losses["own caption"] / losses["another view\'s caption"]',
         'losses["own caption"] < losses["another view\'s caption"]'),
        ("01 mini-SD held-out v-loss, own caption / empty prompt", 'losses["own caption"] / losses["empty prompt"]', "")),
    *_p("01", "spread < 0.1", ("01 decoded depth: std across the 3 channels", "spread", "spread < 0.1")),
    *_p("01", "loss < 0.5 * trivial", ("01 held-out v-loss / v = 0 loss", "loss / trivial", "loss < 0.5 * trivial")),
    *_p("01", "white_corr > pyramid_corr", ("01 layout correlation, white − multi-res noise",
                                            "white_corr - pyramid_corr", "white_corr > pyramid_corr + 0.15")),
    *_p("02", "runs[\"leading\"].x0_latents[0], runs[\"leading\"].start_latents",
        ("02 corr(x0, start noise), leading", 'correlation(runs["leading"].x0_latents[0], runs["leading"].start_latents)',
         'runs["leading"].start_latents) >= 0.99'),
        ("02 |corr(x0, start noise)|, trailing",
         'abs(correlation(runs["trailing"].x0_latents[0], runs["trailing"].start_latents))',
         'runs["trailing"].start_latents)) < 0.5')),
    *_p("02", 'results["leading"]["abs_rel"] >=',
        ("02 AbsRel leading / trailing (1 step)", 'results["leading"]["abs_rel"] / results["trailing"]["abs_rel"]',
         'results["leading"]["abs_rel"] >= 2 * results["trailing"]["abs_rel"]'),
        ("02 δ1 trailing − leading (1 step)", 'results["trailing"]["delta1"] - results["leading"]["delta1"]',
         'results["leading"]["delta1"] < results["trailing"]["delta1"]')),
    *_p("03", "ratio = ",
        ("03 AbsRel trailing 1 step / 50×10 ensemble", "ratio", "ratio <= 1.3"),
        ("03 per scene: 1 step − ensemble AbsRel", "per_scene_gap", ""),
        ("03 AbsRel leading / trailing (1 step)", 'sweep["leading"][1]["abs_rel"] / sweep["trailing"][1]["abs_rel"]',
         'sweep["leading"][1]["abs_rel"] >= 2.5 * sweep["trailing"][1]["abs_rel"]'),
        ("03 AbsRel trailing 1 step / trailing 50 steps", 'sweep["trailing"][1]["abs_rel"] / sweep["trailing"][50]["abs_rel"]',
         ""),
        ("03 AbsRel trailing 1 step / leading 50 steps (no ensemble)",
         'sweep["trailing"][1]["abs_rel"] / sweep["leading"][50]["abs_rel"]',
         'sweep["trailing"][1]["abs_rel"] < sweep["leading"][50]["abs_rel"]'),
        ("03 per scene: trailing 1 step − leading 50 steps", 'per_scene["trailing"][1] - per_scene["leading"][50]', ""),
        ("03 AbsRel ensemble / one leading 50-step member (same scenes)",
         'ensemble["metrics"]["abs_rel"] / per_scene["leading"][50][:N_ENSEMBLE].mean()',
         'ensemble["metrics"]["abs_rel"] < member'),
        ("03 measured speed-up of 1 step over 50×10", "speedup", "speedup > 50")),
    *_p("03", "ens_gain = ",
        ("03 AbsRel 10-member ensemble of 1-step members / one member", "ens_gain", "")),
    *_p("03", 'abs(v11["zeros"] / v10["zeros"] - 1) < 0.02',
        ("03 AbsRel with v1-1's schedule / v1-0's (zero start)", 'v11["zeros"] / v10["zeros"]',
         'abs(v11["zeros"] / v10["zeros"] - 1) < 0.02'),
        ("03 AbsRel with v1-1's schedule / v1-0's (Gaussian start)", 'v11["gaussian"] / v10["gaussian"]', "")),
    *_p("03", 'lead[50]["abs_rel"] <= 0.5',
        ("03 AbsRel leading 50 / leading 1 step", 'lead[50]["abs_rel"] / lead[1]["abs_rel"]',
         'lead[50]["abs_rel"] <= 0.5 * lead[1]["abs_rel"]'),
        ("03 |leading 50 − trailing 50| / trailing 50", 'abs(lead[50]["abs_rel"] - trail[50]["abs_rel"]) / trail[50]["abs_rel"]',
         'abs(lead[50]["abs_rel"] - trail[50]["abs_rel"]) <= 0.1 * trail[50]["abs_rel"]')),
    *_p("04", "x0_seeds.std(0).mean() < 0.5",
        ("04 x̂₀ std across start noises / x̂₀ std across pixels", "float(x0_seeds.std(0).mean() / x0_seeds.mean(0).std())",
         "x0_seeds.std(0).mean() < 0.5 * x0_seeds.mean(0).std()")),
    *_p("04", "np.array_equal(zero_a[\"prediction\"], zero_b[\"prediction\"])",
        ("04 AbsRel zeros / mean over 5 Gaussian seeds", 'zero_a["metrics"]["abs_rel"] / seed_abs_rel.mean()',
         "abs(rel - 1) < 0.1"),
        ("04 AbsRel std over 5 Gaussian seeds / their mean", "seed_abs_rel.std() / seed_abs_rel.mean()", ""),
        ("04 per scene: zeros − seed 0 AbsRel", 'zero_a["per_image"]["abs_rel"] - by_seed[0]["per_image"]["abs_rel"]', ""),
        ("04 zeros run twice: identical (1 = yes)", 'float(np.array_equal(zero_a["prediction"], zero_b["prediction"]))',
         'np.array_equal(zero_a["prediction"], zero_b["prediction"])')),
    *_p("04", "seed_std[valid].mean() < error",
        ("04 per-pixel depth spread across seeds / error", "seed_std[valid].mean() / error[valid].mean()",
         "seed_std[valid].mean() < error[valid].mean()")),
    *_p("05", 'after["metrics"]["abs_rel"] < before',
        ("05 AbsRel before E2E-FT (zero-noise 1 step)", 'before["metrics"]["abs_rel"]', ""),
        ("05 AbsRel after E2E-FT", 'after["metrics"]["abs_rel"]', ""),
        ("05 AbsRel after / before E2E-FT", 'after["metrics"]["abs_rel"] / before["metrics"]["abs_rel"]',
         'after["metrics"]["abs_rel"] < before["metrics"]["abs_rel"]'),
        ("05 per scene: after − before E2E-FT", 'after["per_image"]["abs_rel"] - before["per_image"]["abs_rel"]', ""),
        ("05 per scene: E2E-FT − ensemble (subset)",
         'after_subset["per_image"]["abs_rel"] - ensemble["per_image"]["abs_rel"]', ""),
        ("05 AbsRel E2E-FT / 50×10 ensemble (subset)", 'after_subset["metrics"]["abs_rel"] / ensemble["metrics"]["abs_rel"]',
         'after_subset["metrics"]["abs_rel"] <= 1.2 * ensemble["metrics"]["abs_rel"]')),
    *_p("05", "SD init / Marigold init, zeros",
        ("05 ablation: Marigold init, zeros", 'scores["Marigold init, zeros"]', ""),
        ("05 ablation: Marigold init, Gaussian / zeros", 'scores["Marigold init, Gaussian"] / scores["Marigold init, zeros"]', ""),
        ("05 ablation: SD init, Gaussian / zeros", 'scores["SD init, Gaussian"] / scores["SD init, zeros"]', ""),
        ("05 ablation: SD init / Marigold init, zeros", 'scores["SD init, zeros"] / scores["Marigold init, zeros"]',
         'scores["SD init, zeros"] > 1.3 * scores["Marigold init, zeros"]')),
    *_p("06", 'one_step["metrics"]["mean"] < 0.6',
        ("06 mean angle trailing 1 step, z = 0", 'one_step["metrics"]["mean"]', ""),
        ("06 mean angle 1 step / constant map", 'one_step["metrics"]["mean"] / const_metrics["mean"]',
         'one_step["metrics"]["mean"] < 0.6 * const_metrics["mean"]'),
        ("06 mean angle 1 step / 50 steps", 'one_step["metrics"]["mean"] / fifty["metrics"]["mean"]',
         'one_step["metrics"]["mean"] <= fifty["metrics"]["mean"]'),
        ("06 per scene: 1 step − 50 steps mean angle", 'one_step["per_image"]["mean"] - fifty["per_image"]["mean"]', "")),
    *_p("06", 'after["metrics"]["mean"] < one_step',
        ("06 mean angle after E2E-FT", 'after["metrics"]["mean"]', ""),
        ("06 mean angle after / before E2E-FT", 'after["metrics"]["mean"] / one_step["metrics"]["mean"]',
         'after["metrics"]["mean"] < one_step["metrics"]["mean"]')),
    *_p("07", 'results[decoder]["abs_rel"] < 0.6',
        ("07 one-step AbsRel, VAE decoder", 'results["vae"]["abs_rel"]', ""),
        ("07 one-step AbsRel, DPT-style head", 'results["head"]["abs_rel"]', ""),
        ("07 worst decoder / constant AbsRel", 'max(results["vae"]["abs_rel"], results["head"]["abs_rel"]) / constant["abs_rel"]',
         'results[decoder]["abs_rel"] < 0.6 * constant["abs_rel"]')),
    *_p("07", 'seg_scores["miou"] > base',
        ("07 mIoU, head", 'seg_scores["miou"]', ""),
        ("07 mIoU head − majority baseline", 'seg_scores["miou"] - base_scores["miou"]',
         'seg_scores["miou"] > base_scores["miou"] + 0.1')),
    *_p("08", 'scale_only["abs_rel"] > library',
        ("08 AbsRel scale only / scale and shift", 'scale_only["abs_rel"] / library["abs_rel"]',
         'scale_only["abs_rel"] > library["abs_rel"]'),
        ("08 AbsRel half resolution / full", 'half["abs_rel"] / library["abs_rel"]', 'half["abs_rel"] > library["abs_rel"]')),
    *_p("08", 'constant["abs_rel"] > 1.5',
        ("08 AbsRel constant / model", 'constant["abs_rel"] / library["abs_rel"]',
         'constant["abs_rel"] > 1.5 * library["abs_rel"]')),
    *_p("08", "values[0] > 2 * values[1]",
        ("08 leading 1 step / trailing 1 step", "values[0] / values[1]", "values[0] > 2 * values[1]"),
        ("08 E2E-FT (60 steps) / zero-noise 1 step", "values[-1] / values[2]", "values[-1] < 1.05 * values[2]")),
    *_p("08", "model_score = photo_scores",
        ("08 motorcycle AbsRel / MiniScenes AbsRel", "model_score / on_scenes", "model_score > 1.3 * on_scenes"),
        ("08 motorcycle AbsRel, vertical ramp / model", 'photo_scores["vertical ramp"]["abs_rel"] / model_score', "")),
    *_p("09", "ratio[\"all\"] > 1.15,",
        ("09 E2E-FT from mini-SD, all labels", 'results["mini-SD", "all"]["metrics"]["abs_rel"]', ""),
        ("09 random init / mini-SD, all labels", 'ratio["all"]', 'ratio["all"] > 1.15'),
        ("09 random init / mini-SD, 40 labels", 'ratio["40 scenes"]', ""),
        ("09 mini-SD, 40 labels / all", "few_over_all", "few_over_all > 1.1")),
    *_p("09", "edge_scores = {",
        ("09 latent / decoded loss AbsRel", 'losses_compared["latent loss"]["metrics"]["abs_rel"] / '
         'losses_compared["decoded loss"]["metrics"]["abs_rel"]', ""),
        ("09 latent / decoded loss edge AbsRel", 'edge_scores["latent loss"] / edge_scores["decoded loss"]', "")),
    *_p("09", "quality = {",
        ("09 degraded / exact labels AbsRel", 'quality["degraded"]["metrics"]["abs_rel"] / quality["all"]["metrics"]["abs_rel"]', "")),
    *_p("09", "one zero-noise step / one stochastic sample",
        ("09 one zero-noise step / one stochastic 10-step member", 'one["metrics"]["abs_rel"] / multi[1]["metrics"]["abs_rel"]',
         ""),
        ("09 one zero-noise step / 5-member stochastic ensemble", 'one["metrics"]["abs_rel"] / multi[5]["metrics"]["abs_rel"]', "")),
    *_p("09", "errors = {",
        ("09 VAE depth round trip, RGB-only", 'errors["RGB only (mini-SD\'s)"]["depth AbsRel"]', ""),
        ("09 VAE depth round trip, + targets / RGB-only",
         'errors["RGB + targets"]["depth AbsRel"] / errors["RGB only (mini-SD\'s)"]["depth AbsRel"]', "")),
]

# the build's own quality gates (tests/test_mini_assets.py) and the numbers the README quotes, from the metadata
ASSET_CLAIMS: dict[str, str] = {
    "build: VAE scaling factor": "",
    "build: VAE depth round-trip AbsRel": "",
    "build: VAE normals round-trip mean°": "",
    "build: mini-SD held-out v-loss, own / another caption": "",
    "build: depth trailing 1 step AbsRel": "<= 0.13",
    "build: depth zero-noise 1 step AbsRel": "",
    "build: depth leading / trailing": ">= 3",
    "build: depth trailing / constant map": "<= 0.5",
    "build: depth zero-noise / Gaussian start": "within ±10 %",
    "build: normals trailing 1 step mean°": "<= 16",
    "build: normals zero-noise 1 step mean°": "",
    "build: normals leading / trailing": ">= 3",
    "build: normals trailing / constant map": "<= 0.5",
    "build: normals zero-noise / Gaussian start": "within ±10 %",
    "build: VAE training s": "",
    "build: mini-SD training s": "",
    "build: depth UNet training s": "",
    "build: normals UNet training s": "",
}


def _asset_hashes(seed: int, precision: str) -> dict[str, str]:
    """The settings hash of every asset of a build: which recipe a measurement belongs to."""
    from genpercept_lessons.assets import settings_hash
    from genpercept_lessons.profiles import mini_build_settings

    return {k: settings_hash(v) for k, v in mini_build_settings(seed, precision).items()}


def _current_hashes(record: dict) -> dict[str, str] | None:
    """Today's asset hashes for a measured build; None where this CPU cannot name a bf16 build's settings."""
    try:
        return _asset_hashes(record["seed"], record["precision"])
    except ValueError:
        return record.get("asset_hashes")


def _asset_numbers(seed: int, precision: str) -> dict[str, float]:
    from genpercept_lessons.assets import read_metadata
    from genpercept_lessons.mini.build import mini_asset_paths

    paths = mini_asset_paths(seed, precision)
    vae = read_metadata(paths["vae"])["report"]
    out = {"build: VAE scaling factor": vae["scaling_factor"],
           "build: VAE depth round-trip AbsRel": vae["depth_roundtrip_abs_rel"],
           "build: VAE normals round-trip mean°": vae.get("normals_roundtrip_mean_deg", float("nan")),
           "build: VAE training s": vae["train_seconds"]}
    if "sd" in paths:  # the recipe that fine-tunes mini-Marigold from mini-SD
        sd = read_metadata(paths["sd"])["report"]
        loss = sd["held_out_v_loss"]
        out["build: mini-SD held-out v-loss, own / another caption"] = loss["own caption"] / loss["another view's caption"]
        out["build: mini-SD training s"] = sd["train_seconds"]
    for task, key, unit in (("depth", "abs_rel", " AbsRel"), ("normals", "mean", " mean°")):
        meta = read_metadata(paths[task])
        q = meta["held_out"]
        trailing = q["trailing_1step"][key]
        out[f"build: {task} trailing 1 step{unit}"] = trailing
        out[f"build: {task} zero-noise 1 step{unit}"] = q["trailing_1step_zero_noise"][key]
        out[f"build: {task} leading / trailing"] = q["leading_1step"][key] / trailing
        out[f"build: {task} trailing / constant map"] = trailing / q["constant_mean_map"][key]
        out[f"build: {task} zero-noise / Gaussian start"] = q["trailing_1step_zero_noise"][key] / trailing
        out[f"build: {task} UNet training s"] = meta["report"]["train_seconds"]
    return out


def _probe_source(probes: list[Probe]) -> str:
    pairs = json.dumps([(p.name, p.expr) for p in probes])
    return ("import json as _probe_json\n_probe_out = {}\n"
            f"for _probe_name, _probe_expr in {pairs}:\n"
            "    try:\n"
            "        _probe_v = eval(_probe_expr)\n"
            "        _probe_out[_probe_name] = ([float(x) for x in _probe_v] if hasattr(_probe_v, '__len__')\n"
            "                                   else float(_probe_v))\n"
            "    except Exception as _probe_err:\n"
            "        _probe_out[_probe_name] = f'error: {type(_probe_err).__name__}: {_probe_err}'\n"
            f"print({PROBE_TAG!r} + _probe_json.dumps(_probe_out))\n")


def _with_probes(nb, probes: list[Probe]):
    """The notebook with a probe cell after each cell that a probe names; raises if a marker matches no cell."""
    import nbformat

    by_cell: dict[int, list[Probe]] = {}
    for p in probes:
        hits = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and p.after in c.source]
        if not hits:
            raise ValueError(f"probe {p.name!r}: no code cell of lesson {p.lesson} contains {p.after!r}")
        by_cell.setdefault(hits[0], []).append(p)
    for i in sorted(by_cell, reverse=True):
        nb.cells.insert(i + 1, nbformat.v4.new_code_cell(_probe_source(by_cell[i])))
    return nb


def run_notebook(path: str | os.PathLike, env: dict[str, str], timeout: int,
                 probes: list[Probe] = ()) -> dict[str, Any]:
    """Execute one notebook with ``env`` added to its kernel's environment; {"values", "errors", "seconds", "notebook"}.

    ``values`` are the probes' readings, ``errors`` one line per failed cell (recorded, not raised: later cells still
    run) and one for a kernel that died or a cell past ``timeout``, ``notebook`` the executed notebook. ``env``
    reaches the kernel only: this process's environment is left as it was (a caller that goes on, e.g. a test
    worker, must not inherit another build).
    """
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from genpercept_lessons.course.site import notebook_client_class

    path = Path(path)
    nb = _with_probes(nbformat.read(str(path), as_version=4), list(probes))
    client = notebook_client_class()(nb, timeout=timeout, kernel_name="python3", allow_errors=True, record_timing=False,
                             resources={"metadata": {"path": str(path.parent.resolve())}})
    start = time.perf_counter()
    values, errors = {}, []
    try:
        client.execute(env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1", **env})
    except DeadKernelError:  # e.g. killed for memory: the cells after it never ran
        errors.append("the kernel died (out of memory?); the cells after the last output did not run")
    except CellTimeoutError as err:
        errors.append(f"a cell ran past the {timeout} s timeout: {str(err).splitlines()[0][:200]}")
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and PROBE_TAG in out.get("text", ""):
                for line in out["text"].splitlines():
                    if line.startswith(PROBE_TAG):
                        values.update(json.loads(line[len(PROBE_TAG):]))
            elif out.get("output_type") == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                errors.append(f"cell {i} ({first[:50]!r}): {out['ename']}: {out['evalue'][:200]}")
    return {"values": values, "errors": errors, "seconds": round(time.perf_counter() - start, 1), "notebook": nb}


def _build_name(seed: int, precision: str) -> str:
    return f"seed{seed}-{precision}"


def measure_build(seed: int, precision: str, out_dir: str | os.PathLike = "docs/spread",
                  notebooks_dir: str | os.PathLike = "notebooks", timeout: int = 1800,
                  lessons: list[str] | None = None) -> Path:
    """Build the mini variant (if the cache lacks it), run every lesson on it, write ``<out_dir>/<build>.json``.

    ``lessons`` (e.g. ["03"]) re-runs only those and updates their numbers in an existing file.
    """
    import platform

    from genpercept_lessons.mini.background import run_build
    from genpercept_lessons.profiles import mini_build

    variant = mini_build(seed, precision)
    seed, precision = variant["seed"], variant["precision"]
    t0 = time.perf_counter()
    run_build(seed, precision)  # under the cache's build lock: its two UNet processes then train side by side
    out = Path(out_dir) / f"{_build_name(seed, precision)}.json"
    record: dict[str, Any] = {"build": _build_name(seed, precision), "seed": seed, "precision": precision,
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                              "build_seconds_this_run": round(time.perf_counter() - t0, 1),
                              "values": _asset_numbers(seed, precision), "errors": {}, "lesson_seconds": {},
                              "asset_hashes": _asset_hashes(seed, precision)}
    if lessons:
        if not out.is_file():
            raise FileNotFoundError(f"--lessons updates an existing measurement, but {out} does not exist")
        old = json.loads(out.read_text())
        if old.get("asset_hashes", record["asset_hashes"]) != record["asset_hashes"]:
            raise ValueError(f"--lessons: {out} was measured on another recipe (asset hashes {old['asset_hashes']}, "
                             f"now {record['asset_hashes']}); measure the whole course again")
        drop = {p.name for p in PROBES if p.lesson in lessons}
        record = {**old, "asset_hashes": record["asset_hashes"],
                  "values": {**{k: v for k, v in old["values"].items() if k not in drop},
                             **_asset_numbers(seed, precision)},
                  "errors": {k: v for k, v in old["errors"].items() if k not in lessons}}
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")):
        lesson = path.name[:2]
        if lessons and lesson not in lessons:
            continue
        result = run_notebook(path, {"GENPERCEPT_PROFILE": "mini", "GENPERCEPT_MINI_SEED": str(seed),
                                     "GENPERCEPT_MINI_PRECISION": precision}, timeout,
                              [p for p in PROBES if p.lesson == lesson])
        record["values"].update(result["values"])
        record["lesson_seconds"][lesson] = result["seconds"]
        if result["errors"]:
            record["errors"][lesson] = result["errors"]
        print(f"lesson {lesson}: {result['seconds']:.0f} s, {len(result['errors'])} failed cell(s)", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    from genpercept_lessons.atomic import atomic_write_bytes

    atomic_write_bytes(out, json.dumps(record, indent=1, sort_keys=True).encode())
    print(f"wrote {out}")
    return out


def _summary(v) -> tuple[float, str]:
    """(the number compared across builds, its text): a float as is; per-scene lists as their mean ± sd."""
    import numpy as np

    if isinstance(v, list):
        a = np.asarray(v, dtype=float)
        return float(a.mean()), f"{a.mean():+.4f} ± {a.std(ddof=1):.4f} ({int((a < 0).sum())}/{len(a)} < 0)"
    if isinstance(v, str):
        return float("nan"), v
    return float(v), f"{v:.4g}"


def _meets(value: float, gate: str) -> bool:
    """Whether ``value`` passes a gate written as "<= x", ">= x" or "within ±p %" (of 1)."""
    op, _, rest = gate.partition(" ")
    if op == "<=":
        return value <= float(rest)
    if op == ">=":
        return value >= float(rest)
    if op == "within":
        return abs(value - 1) <= float(rest.strip("±% ")) / 100
    raise ValueError(f"unknown gate {gate!r}")


# probes whose lesson renamed what they measure (same expression, same numbers): older measurements still count
RENAMED = {"05 ablation: fresh UNet / Marigold init": "05 ablation: no pre-training / Marigold init"}


def _renamed(record: dict) -> dict:
    record["values"] = {RENAMED.get(k, k): v for k, v in record["values"].items()}
    return record


def write_table(in_dir: str | os.PathLike = "docs/spread", out: str | os.PathLike = "docs/robustness.md") -> Path:
    """Every probe and asset number across the measured builds, with min and max, as a markdown table."""
    records = [_renamed(json.loads(p.read_text())) for p in sorted(Path(in_dir).glob("seed*.json"))]
    if not records:
        raise FileNotFoundError(f"no seed*.json in {in_dir}: run `python -m genpercept_lessons.course.spread measure` first")
    stale = [r["build"] for r in records if r.get("asset_hashes") != _current_hashes(r)]
    builds = [r["build"] + (" (older recipe)" if r["build"] in stale else "") for r in records]
    claims = {**ASSET_CLAIMS, **{p.name: p.claim for p in PROBES}}
    lines = ["# How much the mini world varies between builds", "",
             "Written by `python -m genpercept_lessons.course.spread table` from `docs/spread/*.json` (one file per build, "
             "written by `python -m genpercept_lessons.course.spread measure --seed S --precision P`). Each build trains "
             "its own VAE and UNets; the MiniScenes are the same for all. A lesson asserts a direction only where it "
             "holds on every build here with room to spare. Per-scene rows show the mean ± sd over scenes of a paired "
             "difference and how many scenes favour the first arm. Builds of earlier recipes are kept in the "
             "subfolders of `docs/spread/` (`mini-sd-v2/`: mini-SD trained half as long; `mini-sd-v1/`: the first "
             "mini-SD; `older-recipe/`: UNets trained from scratch).", ""]
    if stale:
        lines += [f"**{', '.join(stale)}: measured with an older recipe** (their asset settings hashes differ from "
                  "today's `profiles.mini_build_settings`); measure them again before quoting them.", ""]
    lines += [
             "| number | asserted | " + " | ".join(builds) + " | min | max |",
             "|---|---|" + "---|" * (len(builds) + 2)]
    for name, claim in claims.items():
        cells, nums = [], []
        for r in records:
            v = r["values"].get(name)
            if v is None:
                cells.append("—")
                continue
            num, text = _summary(v)
            cells.append(text)
            if num == num:
                nums.append(num)
        lo, hi = (f"{min(nums):.4g}", f"{max(nums):.4g}") if nums else ("—", "—")
        cell = name.replace("|", "\\|")
        lines.append(f"| {cell} | {('`' + claim + '`') if claim else ''} | " + " | ".join(cells) + f" | {lo} | {hi} |")
    lines += ["", "## Run times (s)", "", "| build | build this run | " + " | ".join(
        sorted(records[0]["lesson_seconds"])) + " | machine |", "|---|---|" + "---|" * (len(records[0]["lesson_seconds"]) + 1)]
    for r in records:
        secs = [f"{r['lesson_seconds'].get(k, float('nan')):.0f}" for k in sorted(records[0]["lesson_seconds"])]
        lines.append(f"| {r['build']} | {r['build_seconds_this_run']:.0f} | " + " | ".join(secs) + f" | {r['machine']} |")
    lines += ["", "## The build's quality gates (tests/test_mini_assets.py)", "",
              "| gate | " + " | ".join(builds) + " |", "|---|" + "---|" * len(builds)]
    for name, claim in ASSET_CLAIMS.items():
        if claim:
            marks = [("—" if name not in r["values"] else "✓" if _meets(r["values"][name], claim) else "✗ FAILS")
                     for r in records]
            lines.append(f"| {name} {claim} | " + " | ".join(marks) + " |")
    failed = [(r["build"], lesson, e) for r in records for lesson, errs in r["errors"].items() for e in errs]
    lines += ["", "## Failed cells", ""] + ([f"- {b}, lesson {lesson}: {e}" for b, lesson, e in failed] or ["none"])
    out = Path(out)
    from genpercept_lessons.atomic import atomic_write_bytes

    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode())
    print(f"wrote {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m genpercept_lessons.course.spread measure|table``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m genpercept_lessons.course.spread", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="build one variant if needed and run every lesson on it with probes")
    m.add_argument("--seed", type=int, default=None, help="default: $GENPERCEPT_MINI_SEED or 0")
    m.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="default: $GENPERCEPT_MINI_PRECISION or auto")
    m.add_argument("--out", default="docs/spread")
    m.add_argument("--lessons", nargs="+", default=None, help="re-run only these lessons (e.g. 03 05) of a measured build")
    t = sub.add_parser("table", help="tabulate docs/spread/*.json into docs/robustness.md")
    t.add_argument("--out", default="docs/robustness.md")
    args = parser.parse_args(argv)
    if args.command == "measure":
        measure_build(args.seed, args.precision, args.out, lessons=args.lessons)
    else:
        write_table(out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
