"""Worker for test_training's data-parallel test; run under ``torchrun --nproc_per_node 2``.

argv: pipeline dir, output file prefix, workdir. Each rank fine-tunes the tiny depth pipeline for 3 steps and saves
its UNet weights, the world size, the distributed type and its first training batch to f"{prefix}{rank}.pt".
Also home of ``tiny_dataset``, which the tests share.
"""
from __future__ import annotations

import os
import sys

COLUMNS = ("image", "depth", "normals", "mask", "label", "K")


def tiny_dataset(n: int = 8, size: int = 16, seed: int = 0):
    """``n`` MiniScenes rows at ``size``×``size`` in the course schema, numpy-formatted like ``load_miniscenes``."""
    from datasets import Dataset

    from genpercept_lessons.mini.miniscenes import miniscenes_features
    from genpercept_lessons.mini.scenes import render_scene

    scenes = [render_scene(seed, i, size, size) for i in range(n)]
    return Dataset.from_dict({c: [getattr(s, c) for s in scenes] for c in COLUMNS},
                             features=miniscenes_features(size, size)).with_format("numpy", dtype=None)


def main(pipeline_dir: str, prefix: str, workdir: str) -> None:
    import torch
    from accelerate import PartialState
    from diffusers import MarigoldDepthPipeline

    from genpercept_lessons.finetuning import E2EConfig, finetune_end_to_end, training_batch
    from genpercept_lessons.runtime import step_generator

    torch.set_num_threads(1)
    ds = tiny_dataset()
    pipe = MarigoldDepthPipeline.from_pretrained(pipeline_dir)
    config = E2EConfig(task="depth", steps=3, batch_size=2, warmup=0, checkpoint_every=100)
    result = finetune_end_to_end(pipe, ds, config, workdir=workdir, progress=False)
    state = PartialState()
    rank = state.process_index
    assert rank == int(os.environ.get("RANK", rank))
    first = training_batch([ds], [1.0], config.batch_size, step_generator(config.seed, rank, 0), config.hflip)
    torch.save({"unet": {k: v.detach().clone() for k, v in result.pipe.unet.state_dict().items()},
                "world_size": state.num_processes, "rank": rank, "distributed_type": str(state.distributed_type),
                "losses": result.losses, "first_rgb": first["rgb"]}, f"{prefix}{rank}.pt")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: dist_e2e_worker.py PIPELINE_DIR OUTPUT_PREFIX WORKDIR")
    main(*sys.argv[1:])
