#!/usr/bin/env python3
"""Mutation check: plant curated one-line bugs in the modules the lessons teach, one at a time, and count how many
the fast unit tests catch. Writes docs/mutation_report.md (kill rate, every mutant, every survivor explained).

Each mutant runs in a fresh temporary copy of genpercept_lessons/, tests/, data_scripts/ and pyproject.toml, imported
from there through PYTHONPATH (a sanity check makes sure the copy, not the editable install, is what gets imported);
pytest's temporary files go inside that copy, which is deleted afterwards, so a run leaves nothing behind but the
report.

    python tools/mutation_check.py               # every mutant (make mutation), ~15-25 min on 2 busy cores
    python tools/mutation_check.py --list        # the mutants, without running anything
    python tools/mutation_check.py --only metrics --report /tmp/r.md   # mutants whose id contains "metrics"
    python tools/mutation_check.py --only metrics --quick    # ... against their related test files only, no report

Exit status: 0 when >= 90 % are killed and every survivor is explained; 1 when not; 2 when the list has rotted
(an original snippet is missing or not unique), the unmutated suite fails, or the copy is not what gets imported.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "genpercept_lessons"
REPORT = ROOT / "docs" / "mutation_report.md"
TARGET_KILL_RATE = 0.90

# The fast unit tests: everything in tests/ except what needs built assets, notebooks or the site.
EXCLUDED_TESTS = {
    "test_mini_assets.py",  # needs the built mini assets (make assets)
    "test_spread.py",  # runs lessons on a build
    "test_course_site.py",  # executes notebooks, renders with Sphinx, loads pages in Chromium
    "test_widgets_in_lab.py",  # needs the built mini assets, JupyterLab and Chromium
    "test_environment.py",  # reads notebooks/, README.md and environment.yml (not copied; not library behaviour)
}

# For speed only: the tests that exercise a module run first, in a pytest run of their own (with -x the first
# failure ends it). Every mutant still runs against the whole fast suite before it counts as a survivor.
RELATED_TESTS = {
    "noise_schedules.py": ["test_schedules_and_inference.py"],
    "inference.py": ["test_schedules_and_inference.py"],
    "metrics.py": ["test_targets_and_metrics.py", "test_protocols.py"],
    "losses.py": ["test_losses.py"],
    "finetuning.py": ["test_training.py"],
    "protocols.py": ["test_protocols.py"],
    "real_data/geometry.py": ["test_geometry.py", "test_real_datasets.py"],
    "real_data/hypersim.py": ["test_real_datasets.py"],
    "real_data/vkitti2.py": ["test_real_datasets.py"],
    "real_data/nyuv2.py": ["test_real_datasets.py"],
    "one_step.py": ["test_one_step.py"],
    "lr_schedules.py": ["test_lr_schedules.py", "test_training.py"],
}


@dataclass(frozen=True)
class Mutant:
    """One planted bug: in ``file`` (under genpercept_lessons/) the ``original`` text, which must occur exactly once,
    becomes ``replacement``. ``equivalent`` says why the mutant cannot change behaviour, when that is so."""

    id: str
    file: str
    original: str
    replacement: str
    description: str
    equivalent: str = ""


M = Mutant
MUTANTS: list[Mutant] = [
    # --- schedules (notebook 02) ---------------------------------------------------------------------------------
    M("schedules-spacing-ignored", "noise_schedules.py",
      "return DDIMScheduler.from_config(scheduler.config, timestep_spacing=spacing)",
      "return DDIMScheduler.from_config(scheduler.config)",
      "with_spacing keeps the scheduler's own spacing"),
    M("schedules-snr-inverted", "noise_schedules.py", "return a / (1.0 - a)", "return (1.0 - a) / a",
      "SNR computed as noise / signal"),
    M("schedules-steps-off-by-one", "noise_schedules.py", "not 1 <= steps <= total", "not 1 <= steps < total",
      "1000 inference steps (one per training timestep) refused"),
    M("schedules-alpha-bar-one-based", "noise_schedules.py", "return float(scheduler.alphas_cumprod[t])",
      "return float(scheduler.alphas_cumprod[t - 1])", "ᾱ_t read at index t − 1 (1-based timesteps)"),
    M("schedules-table-first-t", "noise_schedules.py", '"first_t": ts[0]', '"first_t": ts[-1]',
      "timestep table reports the last timestep as the first"),
    # --- inference (notebooks 01-03) -----------------------------------------------------------------------------
    M("inference-ensemble-mean", "inference.py",
      "pipe.ensemble_depth(pred[j], pipe.scale_invariant, pipe.shift_invariant,",
      'pipe.ensemble_depth(pred[j], pipe.scale_invariant, pipe.shift_invariant, reduction="mean",',
      "depth ensemble takes the mean instead of the median"),
    M("inference-ensemble-unaligned", "inference.py",
      "pipe.ensemble_depth(pred[j], pipe.scale_invariant, pipe.shift_invariant,",
      "pipe.ensemble_depth(pred[j], False, False,",
      "depth ensemble members not aligned (scale/shift) before the median"),
    M("inference-normals-ensemble-mean", "inference.py", "pipe.ensemble_normals(pred[j], False)[0]",
      'pipe.ensemble_normals(pred[j], False, reduction="mean")[0]',
      "normals ensemble averages instead of picking the member closest to the mean"),
    M("inference-members-misassigned", "inference.py", "encode_rgb(pipe, image).repeat_interleave(ensemble, dim=0)",
      "encode_rgb(pipe, image).repeat(ensemble, 1, 1, 1)",
      "ensemble members paired with the wrong images (repeat instead of repeat_interleave)"),
    M("inference-spacing-ignored", "inference.py", "scheduler = with_spacing(pipe.scheduler, spacing)",
      "scheduler = pipe.scheduler", "predict ignores `spacing` and uses the pipeline's scheduler as it is"),
    M("inference-step-to-x0", "inference.py", "z = result.prev_sample", "z = result.pred_original_sample",
      "each step continues from x̂0 instead of z_{t-1}"),
    M("inference-intermediate-is-prev", "inference.py", "per_step[k].append(result.pred_original_sample)",
      "per_step[k].append(result.prev_sample)", "per-step x̂0 records z_{t-1} instead"),
    M("inference-rgb-unscaled", "inference.py",
      "return pipe.vae.encode(image).latent_dist.mode() * pipe.vae.config.scaling_factor",
      "return pipe.vae.encode(image).latent_dist.mode()", "RGB latent without the VAE scaling factor"),
    M("inference-zeros-not-zero", "inference.py", "return torch.zeros_like(rgb)", "return torch.randn_like(rgb)",
      "noise='zeros' starts from random noise"),
    M("inference-normals-hw-swapped", "inference.py", "arr.transpose(0, 2, 3, 1)", "arr.transpose(0, 3, 2, 1)",
      "normals returned as [N,W,H,3] (H and W swapped)"),
    # --- metrics (notebooks 03, 06, 08) --------------------------------------------------------------------------
    M("metrics-no-upper-clip", "metrics.py", "pred = np.clip(pred, min_depth, max_depth)",
      "pred = np.clip(pred, min_depth, None)", "aligned depth not clipped to the dataset's max_depth"),
    M("metrics-pooled-not-per-image", "metrics.py",
      "return {k: float(np.mean(v)) for k, v in per_image.items()}",
      "return {k: float(np.average(v, weights=np.asarray(mask).reshape(len(v), -1).sum(1))) "
      "for k, v in per_image.items()}",
      "depth metrics pooled over pixels (images weighted by valid count) instead of averaged per image"),
    M("metrics-align-ignores-mask", "metrics.py",
      "p, g, m = pred.astype(np.float64), target.astype(np.float64), mask.astype(np.float64)",
      "p, g, m = pred.astype(np.float64), target.astype(np.float64), np.ones(mask.shape)",
      "least-squares alignment fitted on every pixel, masked ones included"),
    M("metrics-delta1-inclusive", "metrics.py", "np.mean(ratio < 1.25),", "np.mean(ratio <= 1.25),",
      "δ1 counts ratio <= 1.25"),
    M("metrics-delta2-times-two", "metrics.py", "np.mean(ratio < 1.25 ** 2)", "np.mean(ratio < 1.25 * 2)",
      "δ2 threshold 2.5 instead of 1.5625"),
    M("metrics-absrel-over-pred", "metrics.py", "np.mean(np.abs(p - g) / g)", "np.mean(np.abs(p - g) / p)",
      "AbsRel divided by the prediction"),
    M("metrics-rmse-is-mae", "metrics.py", "np.sqrt(np.mean((p - g) ** 2))", "np.mean(np.abs(p - g))",
      "RMSE computed as the mean absolute error"),
    M("metrics-gt-range-ignored", "metrics.py", "mask = mask & (target > min_depth)", "mask = mask",
      "pixels whose ground truth is <= min_depth (no depth) are scored"),
    M("metrics-normal-median-is-mean", "metrics.py", '"median": float(np.median(err))',
      '"median": float(np.mean(err))', "normal 'median' angle is the mean"),
    M("metrics-normals-not-renormalised", "metrics.py",
      "p /= np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)", "p = p",
      "predicted normals not re-normalised before the angle"),
    M("metrics-per-image-normal-median", "metrics.py",
      "_angular_errors(p[None], g[None], m[None]).mean()", "np.median(_angular_errors(p[None], g[None], m[None]))",
      "per-image normal error is the median, not the mean"),
    # --- losses (notebooks 05, 06) -------------------------------------------------------------------------------
    M("losses-masked-pixels-in-variance", "losses.py", "pc = torch.where(mask, p - mean_p[:, None, None], 0.0)",
      "pc = p - mean_p[:, None, None]", "masked pixels enter the variance of the scale/shift fit"),
    M("losses-shift-sign", "losses.py", "shift = torch.where(ok, mean_g - scale * mean_p, torch.zeros_like(var))",
      "shift = torch.where(ok, mean_g + scale * mean_p, torch.zeros_like(var))", "shift t = mean(g) + s·mean(p)"),
    M("losses-degenerate-pixels-counted", "losses.py", "return torch.where(m, err, 0.0).sum() / count",
      "return torch.where(m, err, 0.0).sum() / mask.sum()",
      "affine L1 divides by the valid pixels of degenerate images too"),
    M("losses-angular-no-clamp", "losses.py", "cos = (p * g).sum(1).clamp(-1.0 + eps, 1.0 - eps)",
      "cos = (p * g).sum(1).clamp(-1.0, 1.0)", "cosine clamped to [-1, 1] (infinite arccos gradient at ±1)"),
    M("losses-angular-all-pixels", "losses.py", "return torch.where(mask, angle, 0.0).sum() / count",
      "return angle.mean()", "angular loss averaged over every pixel, masked ones included"),
    # --- E2E-FT forward and loss (notebook 05) -------------------------------------------------------------------
    M("training-x0-is-minus-v", "finetuning.py",
      "return alpha_bar_T ** 0.5 * z - (1 - alpha_bar_T) ** 0.5 * v", "return -v",
      "E2E-FT x̂0 = −v̂, dropping √ᾱ_T·z and √(1−ᾱ_T)"),
    M("training-depth-channel-0", "finetuning.py", "return image.mean(1).clamp(-1, 1)",
      "return image[:, 0].clamp(-1, 1)", "E2E-FT depth from channel 0 instead of the channel mean"),
    M("training-decode-unscaled", "finetuning.py", "image = vae.decode(x0 / vae.config.scaling_factor).sample",
      "image = vae.decode(x0).sample", "x̂0 decoded without undoing the VAE scaling factor"),
    M("training-timestep-1", "finetuning.py", "timestep = pipe.scheduler.config.num_train_timesteps - 1",
      "timestep = 1", "E2E-FT trains at t = 1 (leading spacing's single step) instead of t = T"),
    M("training-alpha-bar-t0", "finetuning.py", "alpha_bar = float(pipe.scheduler.alphas_cumprod[timestep])",
      "alpha_bar = float(pipe.scheduler.alphas_cumprod[0])", "ᾱ of t = 0 used with the UNet at t = T"),
    M("training-no-accumulation-average", "finetuning.py",
      "loss = loss / config.grad_accumulation", "loss = loss", "micro-batch losses summed instead of averaged"),
    M("training-percentiles-over-invalid", "finetuning.py", "np.percentile(d[m], [2, 98])", "np.percentile(d, [2, 98])",
      "depth clamp percentiles over every pixel, invalid ones included"),
    M("training-flip-negates-y", "finetuning.py", 'out["normals"][flip, 0] *= -1', 'out["normals"][flip, 1] *= -1',
      "horizontal flip negates the y of the normals instead of x"),
    # --- protocols (notebook 08) ---------------------------------------------------------------------------------
    M("protocols-max-depth-inclusive", "protocols.py", "out &= depth < p.max_depth", "out &= depth <= p.max_depth",
      "ground truth exactly at max_depth counted as valid"),
    M("protocols-min-depth-inclusive", "protocols.py", "out &= depth > p.min_depth", "out &= depth >= p.min_depth",
      "ground truth exactly at min_depth counted as valid"),
    M("protocols-relative-crop-rounded", "protocols.py",
      "top, bottom, left, right = int(top * height), int(bottom * height), int(left * width), int(right * width)",
      "top, bottom, left, right = round(top * height), round(bottom * height), round(left * width), "
      "round(right * width)", "relative crops rounded instead of truncated with int()"),
    M("protocols-crop-inclusive", "protocols.py", "crop[top:bottom, left:right] = True",
      "crop[top:bottom + 1, left:right + 1] = True", "crop bounds treated as inclusive"),
    # --- geometry (notebook 08) ----------------------------------------------------------------------------------
    M("geometry-ray-no-half-pixel", "real_data/geometry.py", "x = np.arange(width, dtype=np.float64) - width / 2 + 0.5",
      "x = np.arange(width, dtype=np.float64) - width / 2", "ray grid without the half-pixel offset in x"),
    M("geometry-resize-uses-height", "real_data/geometry.py", "out[0] *= w1 / w0", "out[0] *= h1 / h0",
      "resize scales fx, cx by the height ratio"),
    M("geometry-crop-swapped", "real_data/geometry.py", "out[1, 2] -= top", "out[1, 2] -= left",
      "crop moves cy by the left offset"),
    M("geometry-y-not-flipped", "real_data/geometry.py", "P = np.stack([x, -y, -d], axis=-1)",
      "P = np.stack([x, y, -d], axis=-1)", "back-projection keeps OpenCV's y down"),
    M("geometry-absolute-jump", "real_data/geometry.py", "(np.abs(d[sl] - c) <= max_rel_jump * c)",
      "(np.abs(d[sl] - c) <= max_rel_jump)", "discontinuity threshold absolute (m) instead of relative"),
    M("geometry-cross-order", "real_data/geometry.py", "n = np.cross(dv, du)", "n = np.cross(du, dv)",
      "cross product in the other order",
      equivalent="the sign of n is fixed right after by orienting every normal toward the camera "
                 "(flip where n · P > 0), so either order gives the same normals"),
    # --- dataset readers (notebooks 05, 08) ----------------------------------------------------------------------
    M("hypersim-ray-y-sign", "real_data/hypersim.py", "-v[:, None] / focal", "v[:, None] / focal",
      "back-face test with the ray's y sign flipped"),
    M("hypersim-focal-unscaled", "real_data/hypersim.py", "focal = HYPERSIM_FOCAL_PX * w / HYPERSIM_SIZE[1]",
      "focal = HYPERSIM_FOCAL_PX", "focal length not scaled to the frame width"),
    M("hypersim-no-max-depth", "real_data/hypersim.py", "mask = geometry_ok & (depth > lo) & (depth < hi)",
      "mask = geometry_ok & (depth > lo)", "depth beyond 65 m kept"),
    M("hypersim-tone-map-no-gamma-target", "real_data/hypersim.py", "scale = target ** (1.0 / gamma) / p90",
      "scale = target / p90", "tone map scales p90 to 0.8 before the gamma instead of after"),
    M("hypersim-nearest-no-centre", "real_data/hypersim.py",
      "rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)",
      "rows = np.minimum((np.arange(size[0]) * h / size[0]).astype(int), h - 1)",
      "nearest resize samples rows at pixel corners"),
    M("vkitti2-depth-over-256", "real_data/vkitti2.py", "depth = raw.astype(np.float64) / 100.0",
      "depth = raw.astype(np.float64) / 256.0", "VKITTI2 depth decoded like KITTI's PNGs (/256) instead of cm"),
    M("vkitti2-no-max-depth", "real_data/vkitti2.py", "mask = (raw != VKITTI2_FAR) & (raw > 0) & (depth < VKITTI2_MAX_DEPTH)",
      "mask = (raw != VKITTI2_FAR) & (raw > 0)", "depth beyond 80 m kept"),
    M("vkitti2-crop-not-centred", "real_data/vkitti2.py", "return int(height - ch), int((width - cw) // 2)",
      "return int(height - ch), int(width - cw)", "benchmark crop takes the right-most columns"),
    M("vkitti2-crop-K-swapped", "real_data/vkitti2.py", "K = crop_intrinsics(K, top, left)", "K = crop_intrinsics(K, left, top)",
      "intrinsics cropped with top and left swapped"),
    M("nyuv2-zero-based", "real_data/nyuv2.py", "return idx - 1  # MATLAB is 1-based", "return idx",
      "splits.mat indices used as 0-based"),
    M("nyuv2-image-transposed", "real_data/nyuv2.py", "images[int(i)].transpose(2, 1, 0)", "images[int(i)].transpose(1, 2, 0)",
      "image axes transposed wrongly (W,H,3)"),
    M("nyuv2-depth-keys-swapped", "real_data/nyuv2.py", '_DEPTH_KEYS = {"raw": "rawDepths", "filled": "depths"}',
      '_DEPTH_KEYS = {"raw": "depths", "filled": "rawDepths"}', "raw and in-painted depth swapped"),
    # --- one-step model (notebook 07) ----------------------------------------------------------------------------
    M("one-step-depth-channel-0", "one_step.py", "return image.mean(1)", "return image[:, 0]",
      "one-step VAE decoder: depth from channel 0 instead of the channel mean"),
    M("one-step-x0-is-v", "one_step.py", "image = self.vae.decode(-v / self.vae.config.scaling_factor).sample",
      "image = self.vae.decode(v / self.vae.config.scaling_factor).sample", "one-step x̂0 = +v̂"),
    M("one-step-latent-unscaled", "one_step.py",
      "latent = self.vae.encode(rgb).latent_dist.mode() * self.vae.config.scaling_factor",
      "latent = self.vae.encode(rgb).latent_dist.mode()", "one-step RGB latent without the scaling factor"),
    M("one-step-beta-not-one", "one_step.py", "trained_betas=np.ones(num_train_timesteps)",
      "trained_betas=np.full(num_train_timesteps, 0.999)", "β = 0.999 instead of 1 (ᾱ_0 ≠ 0)"),
    M("one-step-conv-in-noise-half", "one_step.py", 'state["conv_in.weight"] = state["conv_in.weight"][:, :4]',
      'state["conv_in.weight"] = state["conv_in.weight"][:, 4:]', "4-channel UNet keeps the noise half of conv_in"),
    M("one-step-predict-rgb-range", "one_step.py", "images_to_tensor(arr[i:i + batch_size], signed=True)",
      "images_to_tensor(arr[i:i + batch_size])", "predict_one_step feeds RGB in [0,1] instead of [-1,1]"),
    # --- LR schedule (notebook 05) -------------------------------------------------------------------------------
    M("lr-warmup-from-zero", "lr_schedules.py", "return (step + 1) / warmup_steps", "return step / warmup_steps",
      "warm-up starts at 0 (the first step does not train)"),
    M("lr-linear-decay", "lr_schedules.py", "return final_ratio ** progress", "return 1 - (1 - final_ratio) * progress",
      "linear instead of exponential decay"),
    M("lr-no-floor", "lr_schedules.py",
      "progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))",
      "progress = (step - warmup_steps) / (total_steps - warmup_steps)",
      "decay continues below final_ratio after total_steps"),
]


# ---------------------------------------------------------------------------------------------------------------

def die(message: str) -> None:
    print(f"mutation_check: {message}", file=sys.stderr)
    sys.exit(2)


def fast_test_files(tests_dir: Path) -> list[str]:
    return sorted(p.name for p in tests_dir.glob("test_*.py") if p.name not in EXCLUDED_TESTS)


def stages_for(mutant: Mutant | None, files: list[str]) -> list[list[str]]:
    """The fast test files in two pytest runs: the mutated module's related tests, then all the others (collecting
    every test module costs ~15 s, which a mutant caught by its related tests need not pay)."""
    first = [f for f in RELATED_TESTS.get(mutant.file, []) if f in files] if mutant else []
    stages = [first, [f for f in files if f not in first]]
    return [[f"tests/{f}" for f in stage] for stage in stages if stage]


def check_mutants(mutants: list[Mutant]) -> None:
    """Every original snippet occurs exactly once and differs from its replacement; ids are unique."""
    problems = []
    ids = [m.id for m in mutants]
    problems += [f"duplicate id {i!r}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for m in mutants:
        path = ROOT / PACKAGE / m.file
        if not path.is_file():
            problems.append(f"{m.id}: {path} not found")
            continue
        n = path.read_text().count(m.original)
        if n != 1:
            problems.append(f"{m.id}: the original snippet occurs {n} times in {PACKAGE}/{m.file} (must be once): "
                            f"{m.original!r}")
        if m.original == m.replacement:
            problems.append(f"{m.id}: replacement equals the original")
    if problems:
        die("the mutant list does not match the code any more; update tools/mutation_check.py:\n  "
            + "\n  ".join(problems))


def make_copy(parent: Path) -> Path:
    work = parent / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / PACKAGE, work / PACKAGE, ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    shutil.copytree(ROOT / "data_scripts", work / "data_scripts", ignore=ignore)  # test_real_datasets runs a CLI
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    return work


def env_for(work: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(work) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # every import compiles the (mutated) source; no stale .pyc possible
    return env


def sanity_check(work: Path) -> None:
    """The copy's package, not the editable install in the venv, is what the tests import."""
    out = subprocess.run([sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"], cwd=work,
                         env=env_for(work), capture_output=True, text=True)
    got = Path(out.stdout.strip() or "?").resolve()
    if out.returncode != 0 or work.resolve() not in got.parents:
        die(f"in the copy {work}, `import {PACKAGE}` gives {got} (not the copy):\n{out.stderr}")


def run_tests(work: Path, tests: list[str], timeout: float) -> tuple[int, str, float]:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           f"--basetemp={work.parent / 'pytest-tmp'}", *tests]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=work, env=env_for(work), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timeout", time.perf_counter() - t0
    return out.returncode, out.stdout + out.stderr, time.perf_counter() - t0


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return re.sub(r" - .*$", "", line.split(" ", 1)[1]).strip()
    return "timeout" if output == "timeout" else "?"


def run_mutant(mutant: Mutant, files: list[str], timeout: float) -> dict:
    """Plant ``mutant`` in a fresh copy, run ``files`` there (related ones first); killed/survived and by what."""
    with tempfile.TemporaryDirectory(prefix="genpercept-mutant-") as tmp:
        work = make_copy(Path(tmp))
        path = work / PACKAGE / mutant.file
        text = path.read_text()
        path.write_text(text.replace(mutant.original, mutant.replacement, 1))
        seconds = 0.0
        for stage in stages_for(mutant, files):
            rc, output, took = run_tests(work, stage, timeout)
            seconds += took
            if rc != 0:
                break
    if rc == 0:
        return {"status": "survived", "by": "", "seconds": seconds}
    if rc in (1, -1):  # tests failed, or the suite hung
        return {"status": "killed", "by": first_failure(output), "seconds": seconds}
    # 2: collection error / interrupted, 3: internal error, 4: usage error, 5: no tests: the mutant broke the import
    return {"status": "killed", "by": f"pytest exit {rc}: " + (first_failure(output) if rc == 2 else "error"),
            "seconds": seconds}


def write_report(path: Path, results: list[tuple[Mutant, dict]], baseline: float, summary: str, wall: float,
                 n_tests: int, partial: bool) -> tuple[float, list[Mutant]]:
    killed = sum(r["status"] == "killed" for _, r in results)
    rate = killed / len(results)
    survivors = [m for m, r in results if r["status"] == "survived"]
    unexplained = [m for m in survivors if not m.equivalent]
    lines = [
        "# Mutation report",
        "",
        "Written by `make mutation` (`tools/mutation_check.py`): each curated one-line bug is planted alone in a "
        "temporary copy of the library and the fast unit tests run against it (`pytest -x`; "
        f"{n_tests} test files, all of `tests/` except {', '.join(sorted(EXCLUDED_TESTS))}). A mutant is *killed* "
        "when a test fails. Notebooks are not run. Each mutant is an `original` snippet of the module (it must occur "
        "exactly once there, or the script stops with exit status 2, so the list cannot rot silently) and its "
        "`replacement`; add new ones to `MUTANTS` in `tools/mutation_check.py`.",
        "",
        f"- **Kill rate: {killed}/{len(results)} = {100 * rate:.1f} %** (target ≥ {100 * TARGET_KILL_RATE:.0f} %)"
        + (" — partial run (`--only`)" if partial else ""),
        f"- Survivors: {len(survivors)}, of them unexplained: {len(unexplained)}",
        f"- Unmutated fast suite: {summary} in {baseline:.0f} s; whole measurement: {wall / 60:.1f} min wall time "
        f"({time.strftime('%Y-%m-%d')}, `{sys.executable.replace(str(ROOT) + '/', '')}`)",
        "",
        "| # | mutant | file | bug | result | first failing test |",
        "|---|---|---|---|---|---|",
    ]
    for i, (m, r) in enumerate(results, 1):
        by = r["by"].replace("|", "\\|")
        lines.append(f"| {i} | `{m.id}` | {m.file} | {m.description} | "
                     f"{'killed' if r['status'] == 'killed' else '**survived**'} | {f'`{by}`' if by else '—'} |")
    lines += ["", "## Survivors", ""]
    if not survivors:
        lines.append("None.")
    for m in survivors:
        why = f"equivalent: {m.equivalent}" if m.equivalent else "**UNEXPLAINED: add a test that fails for it**"
        lines.append(f"- `{m.id}` (`{m.original}` → `{m.replacement}`): {why}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return rate, unexplained


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=None, help="run the mutants whose id contains one of these")
    ap.add_argument("--report", type=Path, default=REPORT, help=f"where to write the report (default {REPORT})")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--quick", action="store_true",
                    help="while writing tests: run only each mutant's related test files, no baseline, no report")
    args = ap.parse_args(argv)
    # a `kill` ends the run like Ctrl-C: the running pytest is killed and the temporary copy removed
    signal.signal(signal.SIGTERM, _interrupt)

    check_mutants(MUTANTS)
    mutants = [m for m in MUTANTS if args.only is None or any(s in m.id for s in args.only)]
    if args.list:
        for m in mutants:
            print(f"{m.id:40s} {m.file:16s} {m.description}")
        return 0
    if not mutants:
        die(f"no mutant id contains any of {args.only}")
    files = fast_test_files(ROOT / "tests")
    if args.quick:
        for m in mutants:
            r = run_mutant(m, [f for f in RELATED_TESTS.get(m.file, files) if f in files], timeout=1800)
            print(f"{r['status']:8s} {m.id} ({r['seconds']:.0f} s){'  by ' + r['by'] if r['by'] else ''}", flush=True)
        return 0
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genpercept-mutant-") as tmp:
        work = make_copy(Path(tmp))
        sanity_check(work)
        print(f"unmutated fast suite ({len(files)} files) ...", flush=True)
        rc, output, baseline = run_tests(work, [f"tests/{f}" for f in files], timeout=3600)
    if rc != 0:
        die(f"the unmutated fast suite fails (exit {rc}); fix that first:\n{output[-4000:]}")
    summary = re.findall(r"(\d+ passed.*?) in [\d.]+s", output)
    summary = summary[-1] if summary else "passed"
    print(f"  {summary} in {baseline:.0f} s", flush=True)
    timeout = 3 * baseline + 120
    results = []
    for i, m in enumerate(mutants, 1):
        r = run_mutant(m, files, timeout)
        results.append((m, r))
        by = f"  by {r['by']}" if r["by"] else ""
        print(f"[{i}/{len(mutants)}] {r['status']:8s} {m.id} ({r['seconds']:.0f} s){by}", flush=True)
    wall = time.perf_counter() - t_start
    rate, unexplained = write_report(args.report, results, baseline, summary, wall, len(files), args.only is not None)
    survivors = [m.id for m, r in results if r["status"] == "survived"]
    print(f"\nkilled {100 * rate:.1f} % of {len(results)} mutants in {wall / 60:.1f} min; "
          f"survivors: {', '.join(survivors) or 'none'}; report: {args.report}")
    if unexplained:
        print("unexplained survivors: " + ", ".join(m.id for m in unexplained))
    return 0 if rate >= TARGET_KILL_RATE and not unexplained else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("mutation_check: interrupted; the temporary copy is removed, the report left as it was", file=sys.stderr)
        sys.exit(130)
