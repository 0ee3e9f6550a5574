"""Command line of the GenPercept Lessons course: ``python -m genpercept_lessons COMMAND`` (see the README's "Command line")."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_OOM_HINT = ("out of GPU memory. Try a lower --processing-resolution (e.g. 512), fewer --ensemble members, or "
             "--device cpu; for fine-tuning on a 24 GB GPU use `python -m genpercept_lessons.cli.train --preset 24gb` "
             "(batch 1 x accumulation 32, bf16, gradient checkpointing)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _steps(text: str) -> int:
    value = _positive_int(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(f"expected 1 to 1000 steps (the model was trained with 1000 timesteps), got {text!r}")
    return value


def _resolution(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels >= 0 (0 = the image's own size), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every subcommand (assets, paths, doctor, predict, bench, course)."""
    from genpercept_lessons.noise_schedules import SPACINGS
    from genpercept_lessons.real_photos import PHOTOS

    parser = argparse.ArgumentParser(prog="python -m genpercept_lessons",
                                     description="Command line of the GenPercept Lessons course.",
                                     epilog="Run `python -m genpercept_lessons COMMAND --help` for a command's options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", default=None,
                        help="mini (CPU, offline) or full (hub models); default: $GENPERCEPT_PROFILE, else mini")
    common.add_argument("--device", default=None, help="cpu, cuda[:N] or mps (default: the profile's)")

    asp = sub.add_parser("assets", help="build the mini assets (MiniScenes, mini-SD, mini-Marigold), in the background, "
                         "or export / import them as one archive",
                         description="Build the mini assets the cache lacks (one build at a time: if another build runs, "
                                     "wait for it). --background starts the build as a process of its own and returns at "
                                     "once; --export / --import move one whole build between machines.")
    mode = asp.add_mutually_exclusive_group()
    mode.add_argument("--background", action="store_true",
                      help="start the build in a process of its own, logging to <cache>/logs/, and return at once")
    mode.add_argument("--export", metavar="FILE", help="write the current build (every asset folder with its manifest) "
                      "into one archive, e.g. genpercept-build.tar.gz")
    mode.add_argument("--import", dest="import_file", metavar="FILE",
                      help="install an archive written by --export into the cache, after checking every file")
    sub.add_parser("paths", help="print where the mini assets live and whether they are built")
    sub.add_parser("doctor", parents=[common], help="check the set-up: versions, profile, device, assets, what to do next",
                   description="Check the set-up (never builds or downloads). Exit code 0 when every essential check "
                               "passes, 1 otherwise.")

    pr = sub.add_parser("predict", parents=[common],
                        help="write depth and normals PNGs (and a 16-bit depth PNG) for image files",
                        description="Predict depth and/or normals for image files and write <stem>_depth.png "
                                    "(colourised), <stem>_depth16.png (16-bit, 0..65535 = near..far, affine-invariant) "
                                    "and <stem>_normals.png into --out. Default: 1 trailing step from zero noise.")
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    pr.add_argument("--out", required=True, metavar="DIR", help="folder to write the PNGs into (created if missing)")
    pr.add_argument("--task", choices=("depth", "normals", "both"), default=None,
                    help="what to predict (default: both; with --model, the model's own task)")
    pr.add_argument("--steps", type=_steps, default=1, help="denoising steps, 1..1000 (default 1)")
    pr.add_argument("--spacing", choices=SPACINGS, default="trailing", help="timestep spacing (default trailing)")
    pr.add_argument("--noise", choices=("zeros", "gaussian"), default="zeros", help="start latent (default zeros)")
    pr.add_argument("--ensemble", type=_positive_int, default=1, help="ensemble members (default 1; needs --noise gaussian)")
    pr.add_argument("--processing-resolution", type=_resolution, default=None, metavar="N",
                    help="longer side the model sees (default: the pipeline's; 0 = the image's own size)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the Gaussian start noise (default 0)")
    pr.add_argument("--model", default=None, metavar="PATH",
                    help="a Marigold pipeline folder (e.g. a fine-tuned model) instead of the profile's")

    be = sub.add_parser("bench", parents=[common], help="time inference settings and an E2E-FT training step, with peak memory",
                        description="Time 1-step/4-step/50-step/50x10-ensemble inference and one E2E-FT training step "
                                    "on the profile's depth model and print a table. Figures, not a test.")
    be.add_argument("--quick", action="store_true", help="fewer steps and images (10 steps, 10 x 2 ensemble)")
    be.add_argument("--images", type=_positive_int, default=None, metavar="N",
                    help="images per inference batch (default 4, 2 with --quick)")
    be.add_argument("--model", default=None, metavar="PATH", help="a Marigold depth pipeline folder instead of the profile's")
    be.add_argument("--repeats", type=_positive_int, default=1, metavar="N", help="timed runs per row, best kept (default 1)")
    be.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                    help="CPU threads for torch (default: torch's choice; 1 gives steadier figures on a busy machine)")
    be.add_argument("--e2e-memory", action="store_true",
                    help="instead: peak memory of two E2E-FT optimiser steps (the second is the steady state) under the "
                         "24gb preset (batch 1, gradient checkpointing, bf16), by default on a random-weight stand-in "
                         "with Marigold's real architecture (SD2 UNet, 865 M parameters; about 20 GB of RAM on a CPU)")
    be.add_argument("--height", type=_positive_int, default=480, help="--e2e-memory: image height (default 480, Hypersim)")
    be.add_argument("--width", type=_positive_int, default=640, help="--e2e-memory: image width (default 640)")
    be.add_argument("--standin-layers", type=int, choices=(1, 2), default=2,
                    help="--e2e-memory: layers per UNet/VAE block of the stand-in (real: 2; 1 where memory forces it)")

    ph = sub.add_parser("photos", help="write real photographs (openly licensed, offline) as PNGs, to try `predict` on",
                        description="Write photos that ship inside scikit-image's wheel (and Middlebury's motorcycle, "
                                    "which has measured depth) as <name>.png with a LICENSES.txt into --out.")
    ph.add_argument("names", nargs="*", metavar="NAME", help="which photos (default: all): " + ", ".join(PHOTOS))
    ph.add_argument("--out", required=True, metavar="DIR", help="folder to write the PNGs into (created if missing)")

    co = sub.add_parser("course", help="execute every notebook (mini profile) and write the course as an HTML site",
                        description="Execute every notebooks/NN_name.ipynb in the mini profile and write a browsable "
                                    "HTML site: index.html (lessons, measured run times, objectives), one page per "
                                    "lesson with its figures, and timings.json. Built aside and swapped in at the end.")
    co.add_argument("--out", default="site", metavar="DIR", help="folder to write the site into (default: site)")
    co.add_argument("--notebooks", default="notebooks", metavar="DIR", help="folder of the lessons (default: notebooks)")
    co.add_argument("--no-execute", action="store_true", help="export the notebooks as stored (code only), fast")
    co.add_argument("--timeout", type=_positive_int, default=900, metavar="S", help="seconds any one cell may run (default 900)")
    return parser


def _profile(args):
    """The profile named by --profile / $GENPERCEPT_PROFILE with --device, or None after printing a one-line error."""
    import os

    from genpercept_lessons.profiles import PROFILE_NAMES, get_profile

    where = "--profile" if args.profile is not None else "$GENPERCEPT_PROFILE"
    name = args.profile if args.profile is not None else os.environ.get("GENPERCEPT_PROFILE", "").strip() or "mini"
    if name.lower() not in PROFILE_NAMES:
        print(f"error: unknown profile {name!r} ({where}); choose one of: {', '.join(PROFILE_NAMES)}", file=sys.stderr)
        return None
    try:
        return get_profile(name, **({"device": args.device} if args.device else {}))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def _check_device(profile) -> None:
    """Raise CLIError when the profile's device is CUDA/MPS but torch cannot see it (doctor reports it instead)."""
    from genpercept_lessons.cli.predict import CLIError

    kind = profile.device.split(":")[0]
    if kind == "cpu":
        return
    import torch

    if kind == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"device {profile.device!r}: torch sees no CUDA GPU; use --device cpu (the mini profile runs there)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise CLIError("device 'mps': this torch has no Apple-GPU (MPS) support here; use --device cpu")


def _doctor(args) -> int:
    from genpercept_lessons.cli.doctor import doctor_report

    profile = _profile(args)
    if profile is None:
        return EXIT_USAGE
    text, ok = doctor_report(profile)
    print(text)
    return EXIT_OK if ok else EXIT_FAILED


def _predict(args) -> int:
    from genpercept_lessons.cli.predict import CLIError, predict_files
    from genpercept_lessons.tasks import TASKS, folder_task

    profile = _profile(args)
    if profile is None:
        return EXIT_USAGE
    _check_device(profile)
    task = args.task
    if task is None and args.model is not None:
        task = folder_task(args.model)
        if task is None:
            raise CLIError(f"--model '{args.model}': cannot tell whether it is a depth or a normals pipeline; "
                           "pass --task depth or --task normals")
    if task == "both" and args.model is not None:
        raise CLIError("--model names one pipeline: pass --task depth or --task normals with it")
    if args.ensemble > 1 and args.noise == "zeros":
        print(f"note: --ensemble {args.ensemble} with --noise zeros gives identical members; "
              "add --noise gaussian for a real ensemble", file=sys.stderr)
    tasks = TASKS if task in (None, "both") else (task,)
    written = predict_files(args.images, args.out, profile, tasks, model=args.model, steps=args.steps,
                            spacing=args.spacing, noise=args.noise, ensemble=args.ensemble,
                            processing_resolution=args.processing_resolution, seed=args.seed)
    print(f"done: {len(written)} file(s) in {args.out}")
    return EXIT_OK


def _bench(args) -> int:
    from genpercept_lessons.cli.bench import QUICK_SETTINGS, SETTINGS, format_table, run_benchmarks
    from genpercept_lessons.cli.predict import load_pipeline

    profile = _profile(args)
    if profile is None:
        return EXIT_USAGE
    _check_device(profile)
    if args.e2e_memory:
        return _bench_e2e_memory(args, profile)
    pipe = load_pipeline(profile, "depth", args.model)
    n = args.images or (2 if args.quick else 4)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    where = f"{threads} CPU thread{'s' if threads != 1 else ''}" if profile.device == "cpu" else torch.cuda.get_device_name(
        profile.device) if profile.device.startswith("cuda") else profile.device
    print(f"profile: {profile.name} | device: {profile.device} ({where}) | model: {args.model or profile.depth_model}\n"
          f"inference: {n} image(s) of {pipe.default_processing_resolution or profile.resolution} px per batch; "
          f"training: batch {profile.e2e_batch_size}; one warm-up, then best of {args.repeats} timed run(s) per row",
          flush=True)
    rows = run_benchmarks(pipe, settings=QUICK_SETTINGS if args.quick else SETTINGS, n_images=n,
                          resolution=pipe.default_processing_resolution or profile.resolution,
                          train_batch_size=profile.e2e_batch_size, train_lr=profile.e2e_lr, repeats=args.repeats,
                          progress=lambda msg: print(f"  timing: {msg}", file=sys.stderr, flush=True))
    print(format_table(rows))
    return EXIT_OK


def _bench_e2e_memory(args, profile) -> int:
    import torch

    from genpercept_lessons.cli.bench import e2e_step_memory, format_memory_report

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        from genpercept_lessons.cli.predict import load_pipeline

        pipe, what = load_pipeline(profile, "depth", args.model), args.model
    else:
        from genpercept_lessons.course.full_standins import standin_marigold

        print("building a random-weight stand-in with Marigold v1-0's architecture "
              f"(layers per block {args.standin_layers}, real: 2) ...", flush=True)
        pipe = standin_marigold("depth", layers=args.standin_layers)
        what = f"stand-in, Marigold v1-0 architecture, layers per block {args.standin_layers}"
    pipe = pipe.to(profile.device)
    print(f"device: {profile.device} ({torch.get_num_threads()} CPU threads) | model: {what}", flush=True)
    result = e2e_step_memory(pipe, args.height, args.width,
                             progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    print(format_memory_report(result))
    return EXIT_OK


def _mini_build():
    """The build variant the environment selects, or CLIError with the environment variable's message."""
    from genpercept_lessons.cli.predict import CLIError
    from genpercept_lessons.profiles import mini_build

    try:
        return mini_build()
    except ValueError as err:
        raise CLIError(str(err)) from None


def _assets(args) -> int:
    from genpercept_lessons.cli.predict import CLIError

    build = _mini_build()
    if args.export:
        from genpercept_lessons.mini.archive import export_build

        t = time.time()
        try:
            file = export_build(args.export, build["seed"], build["precision"])
        except (FileNotFoundError, ValueError) as err:
            raise CLIError(str(err)) from None
        print(f"wrote {file} ({file.stat().st_size / 1e6:.0f} MB, seed {build['seed']}, {build['precision']}) in "
              f"{time.time() - t:.0f} s; on another machine: `make lab IMPORT={file.name}` or "
              f"`python -m genpercept_lessons assets --import {file.name}`")
        return EXIT_OK
    if args.import_file:
        from genpercept_lessons.mini.archive import ArchiveError, import_build

        t = time.time()
        try:
            done = import_build(args.import_file)
        except (ArchiveError, FileNotFoundError) as err:
            raise CLIError(f"{err}\nNothing was imported.") from None
        kept = f"; already there: {', '.join(done['present'])}" if done["present"] else ""
        print(f"imported the mini build (seed {done['seed']}, {done['precision']}) in {time.time() - t:.0f} s: "
              f"{', '.join(done['installed']) or 'nothing new'}{kept}. It is now this cache's default build.")
        return EXIT_OK
    if args.background:
        from genpercept_lessons.mini.background import BUILD_MINUTES, start_background_build

        started = start_background_build(build["seed"], build["precision"])
        if started["state"] == "ready":
            print(f"mini assets ready (seed {build['seed']}, {build['precision']})")
        elif started["state"] == "running":
            print(f"the mini assets are already being built (pid {started.get('pid')}); log: {started.get('log')}")
        else:
            print(f"building the mini assets in the background ({BUILD_MINUTES}, once), pid {started['pid']}\n"
                  f"  log: {started['log']}\n  progress: `python -m genpercept_lessons doctor`, or lesson 00; a lesson "
                  "that needs a model waits for it")
        return EXIT_OK
    from genpercept_lessons.mini.background import run_build

    run_build(build["seed"], build["precision"])
    return EXIT_OK


def _paths(args) -> int:
    from genpercept_lessons.mini.build import mini_asset_paths, mini_assets_ready

    build = _mini_build()
    print(f"mini build: seed {build['seed']}, {build['precision']} (asked for: {build['requested']})")
    ready = mini_assets_ready(seed=build["seed"], precision=build["precision"])
    for k, p in mini_asset_paths(build["seed"], build["precision"]).items():
        print(f"{'✓' if ready[k] else '✗'} {k:8s} {p}")
    return EXIT_OK


def _photos(args) -> int:
    from genpercept_lessons.cli.predict import CLIError
    from genpercept_lessons.real_photos import PHOTOS, save_photos

    unknown = [n for n in args.names if n not in PHOTOS]
    if unknown:
        raise CLIError(f"unknown photo(s) {unknown}; choose among: {', '.join(PHOTOS)}")
    try:
        written = save_photos(args.out, args.names or None)
    except ImportError as err:
        raise CLIError(str(err)) from None
    print(f"wrote {len(written)} photo(s) and LICENSES.txt into {args.out}; try: python -m genpercept_lessons predict "
          f"{Path(args.out) / '*.png'} --out preds/")
    return EXIT_OK


def _course(args) -> int:
    from genpercept_lessons.course.site import CourseBuildError, build_site

    try:
        index = build_site(args.notebooks, args.out, execute=not args.no_execute, timeout=args.timeout)
    except CourseBuildError as err:
        print(f"error: {err}\nNothing was written; a previous site in {args.out}/ is unchanged.", file=sys.stderr)
        return EXIT_FAILED
    print(f"course site: {index.resolve()}")
    return EXIT_OK


_COMMANDS = {"assets": _assets, "paths": _paths, "doctor": _doctor, "predict": _predict, "bench": _bench,
             "photos": _photos, "course": _course}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m genpercept_lessons``; returns the exit code (0 ok, 1 failed, 2 bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2, already printed by argparse)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    from genpercept_lessons.cli.predict import CLIError

    try:
        return _COMMANDS[args.command](args)
    except CLIError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        torch = sys.modules.get("torch")  # loaded by then if a model ran; never imported just for this check
        if torch is not None and isinstance(err, torch.cuda.OutOfMemoryError):
            print(f"error: {_OOM_HINT}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
