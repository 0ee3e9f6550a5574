"""Command line for end-to-end fine-tuning: ``python -m genpercept_lessons.cli.train`` (also under torchrun / accelerate launch).

Examples (README "Running the full recipe on a GPU")::

    python -m genpercept_lessons.cli.train --task depth --steps 300 --workdir runs/e2e-depth --out runs/e2e-depth/model
    accelerate launch --multi_gpu --num_processes 4 -m genpercept_lessons.cli.train --profile full --preset paper \\
        --train-data /data/prepared/hypersim_train:0.9 /data/prepared/vkitti2:0.1 --workdir runs/full --out runs/full/model
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from genpercept_lessons.tasks import TASKS

__all__ = ["PRESETS", "main"]

PRESETS = ("mini", "paper", "24gb")


def _config(args):
    from genpercept_lessons.finetuning import GPU_24GB, PAPER_RECIPE, E2EConfig
    from genpercept_lessons.profiles import get_profile

    if args.preset == "paper":
        base = PAPER_RECIPE
    elif args.preset == "24gb":
        base = GPU_24GB
    else:
        p = get_profile(args.profile)
        base = E2EConfig(steps=p.e2e_steps, batch_size=p.e2e_batch_size, grad_accumulation=p.e2e_grad_accumulation,
                         lr=p.e2e_lr, eval_protocol=p.eval_protocol)
    changes = {k: v for k, v in {"task": args.task, "steps": args.steps, "batch_size": args.batch_size,
                                 "grad_accumulation": args.grad_accumulation, "lr": args.lr, "noise": args.noise,
                                 "mixed_precision": args.mixed_precision, "seed": args.seed,
                                 "eval_every": args.eval_every, "eval_scenes": args.eval_scenes,
                                 "eval_protocol": args.eval_protocol,
                                 "checkpoint_every": args.checkpoint_every}.items() if v is not None}
    if args.gradient_checkpointing:
        changes["gradient_checkpointing"] = True
    if changes.get("steps") is not None and base.warmup >= changes["steps"]:
        changes["warmup"] = max(0, changes["steps"] // 10)
    return dataclasses.replace(base, **changes).validate()


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, fine-tune, save the pipeline; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m genpercept_lessons.cli.train", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="mini (default, or $GENPERCEPT_PROFILE) or full")
    parser.add_argument("--model", default=None, help="starting pipeline folder or hub id (default: the profile's)")
    parser.add_argument("--task", choices=TASKS, default="depth")
    parser.add_argument("--preset", choices=PRESETS, default="mini",
                        help="mini: the profile's short run; paper: E2E-FT's 20k-step recipe; 24gb: the same on 24 GB")
    parser.add_argument("--train-data", nargs="+", default=None, metavar="PATH[:WEIGHT]",
                        help="datasets mixed per batch by weight, e.g. hypersim_train:0.9 vkitti2:0.1 "
                             "(default: the profile's)")
    parser.add_argument("--eval-data", default=None, help="held-out dataset ('miniscenes' = its test split)")
    parser.add_argument("--workdir", required=True, help="checkpoints go here; rerun with the same one to resume")
    parser.add_argument("--out", default=None, help="where to save the fine-tuned pipeline (trailing scheduler)")
    for name, kind in (("steps", int), ("batch-size", int), ("grad-accumulation", int), ("lr", float),
                       ("seed", int), ("eval-every", int), ("eval-scenes", int), ("checkpoint-every", int)):
        parser.add_argument(f"--{name}", type=kind, default=None)
    parser.add_argument("--noise", choices=("zeros", "gaussian"), default=None)
    parser.add_argument("--eval-protocol", default=None, help="miniscenes, nyuv2, kitti, … (default: the profile's)")
    parser.add_argument("--mixed-precision", choices=("no", "bf16"), default=None)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args(argv)

    from genpercept_lessons.finetuning import finetune_end_to_end
    from genpercept_lessons.models import load_marigold
    from genpercept_lessons.profiles import get_profile
    from genpercept_lessons.training_data import load_training_data, parse_data_spec

    try:
        config = _config(args)
        profile = get_profile(args.profile)
        specs = args.train_data or [f"{loc}:{w}" for loc, w in profile.train_data]
        train = [(load_training_data(loc), w) for loc, w in map(parse_data_spec, specs)]
        eval_data = None if args.eval_data is None else load_training_data(args.eval_data, "test")
        pipe = load_marigold(profile, args.task, model=args.model or None)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"E2E-FT {args.task}: {config}")
    result = finetune_end_to_end(pipe, train, config, workdir=args.workdir, output_dir=args.out, eval_data=eval_data,
                                 in_place=True)
    for step, metrics in result.evals:
        print(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if args.out:
        print(f"saved the fine-tuned pipeline to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
