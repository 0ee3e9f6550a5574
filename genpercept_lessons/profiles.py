"""Profiles: one switch between the mini world (CPU, offline, minutes) and the full models (hub ids, GPU).

Pick one with ``GENPERCEPT_PROFILE=mini|full`` or ``get_profile("full")`` in a notebook's first cell;
every other setting can be overridden by keyword: ``get_profile("mini", device="cuda")``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Profile", "PROFILE_NAMES", "PRECISIONS", "FULL_CHECKPOINTS", "DEFAULT_BUILD_FILE", "REHEARSAL_ENV",
           "REHEARSAL_SETTINGS", "get_profile", "mini_build", "mini_build_settings", "cpu_has_bf16"]

PROFILE_NAMES = ("mini", "full")
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_BUILD_FILE = "default-build.json"  # in the cache: the build variant an imported archive brought
# The full profile's dress rehearsal (``python -m genpercept_lessons.course.rehearsal``) sets this to "1": the full
# profile then runs on the CPU at a tiny size and count, against random-weight stand-ins of the real checkpoints
REHEARSAL_ENV = "GENPERCEPT_REHEARSAL"
REHEARSAL_SETTINGS = {"device": "cpu", "resolution": 64, "eval_scenes": 3, "inference_batch_size": 1, "e2e_steps": 2,
                      "e2e_batch_size": 1, "e2e_grad_accumulation": 1, "rehearsal": True}
# The full profile's released checkpoints, by generation (``get_profile("full", checkpoints="v1-1")`` or
# $GENPERCEPT_CHECKPOINTS). Marigold v1-0 released no normals model: the E2E-FT authors trained one with Marigold's
# recipe (E2E-FT README). v1-1 is what diffusers' Marigold docs load. "e2e-ft" are those two after E2E-FT.
FULL_CHECKPOINTS = {
    "v1-0": {"depth": "prs-eth/marigold-depth-v1-0", "normals": "GonzaloMG/marigold-normals"},
    "v1-1": {"depth": "prs-eth/marigold-depth-v1-1", "normals": "prs-eth/marigold-normals-v1-1"},
    "e2e-ft": {"depth": "GonzaloMG/marigold-e2e-ft-depth", "normals": "GonzaloMG/marigold-e2e-ft-normals"},
}


def cpu_has_bf16() -> bool:
    """True when oneDNN has bf16 kernels for this CPU (a private torch op; False if a torch version lacks it)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cache_default_build() -> dict[str, Any]:
    """The build variant an imported archive made this cache's default ({} if none): {"seed": int, "precision": str}."""
    from genpercept_lessons.assets import cache_root

    try:
        found = json.loads((cache_root() / DEFAULT_BUILD_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def mini_build(seed: int | None = None, precision: str | None = None) -> dict[str, Any]:
    """Which mini world: {"seed": int, "precision": "bf16"|"fp32" (effective), "requested": str}. Introduced in notebook 00.

    ``seed`` defaults to ``$GENPERCEPT_MINI_SEED`` (else 0) and seeds every trained model; the MiniScenes are the same
    for every build. ``precision`` defaults to ``$GENPERCEPT_MINI_PRECISION`` (else "auto": bf16 autocast where the CPU
    has bf16 kernels, fp32 elsewhere). Both name the cache folders, so each build variant lives beside the others.
    Where neither is given nor set, a build imported from an archive (``assets --import``) is the cache's default.
    """
    env_seed = os.environ.get("GENPERCEPT_MINI_SEED", "").strip()
    env_precision = os.environ.get("GENPERCEPT_MINI_PRECISION", "").strip().lower()
    source = "`precision`"
    if seed is None and precision is None and not env_seed and not env_precision:
        imported = _cache_default_build()
        seed, precision = imported.get("seed", 0), imported.get("precision", "auto")
        source = f"{DEFAULT_BUILD_FILE} in the cache (written by `assets --import`)"
    if seed is None:
        text = env_seed or "0"
        if not text.isdigit():
            raise ValueError(f"GENPERCEPT_MINI_SEED must be a non-negative integer, got {text!r}")
        seed = int(text)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"mini_build: `seed` must be a non-negative int, got {seed!r}")
    if precision is None:
        precision, source = env_precision or "auto", "GENPERCEPT_MINI_PRECISION"
    if precision not in PRECISIONS:
        raise ValueError(f"mini_build: {source} must be one of {PRECISIONS}, got {precision!r}")
    effective = precision
    if precision != "fp32":
        has = cpu_has_bf16()
        if precision == "bf16" and not has:
            raise ValueError(f"mini_build: {source} is 'bf16' but this CPU has no bf16 kernels; use 'auto' or 'fp32'")
        effective = "bf16" if has else "fp32"
    return {"seed": seed, "precision": effective, "requested": precision}


def mini_build_settings(seed: int | None = None, precision: str | None = None) -> dict[str, dict[str, Any]]:
    """The settings every mini asset is built with; their hashes name the cache folders. Introduced in notebook 00.

    ``seed`` and ``precision`` pick the build variant (see ``mini_build``); the data never depend on them.
    """
    build = mini_build(seed, precision)
    seed, bf16 = build["seed"], build["precision"] == "bf16"
    data = {"version": 2, "seed": 0, "n_train": 2000, "n_test": 200, "height": 64, "width": 64}
    # mini-SD's pretraining set: 3x as many views as the labelled set, from another MiniScenes stream, RGB + caption only
    captioned = {"version": 1, "seed": 7, "n": 6000, "height": 64, "width": 64}
    # the VAE sees RGB only, as Stable Diffusion's does; Marigold then feeds it depth and normals maps it never saw
    vae = {"version": 5, "data": captioned, "images": ["rgb"], "block_out_channels": [16, 32, 64], "latent_channels": 4,
           "norm_num_groups": 4, "crop": 32, "sample_posterior": False, "steps": 3000, "batch_size": 32, "lr": 2e-3,
           "kl_weight": 1e-6, "bf16": bf16, "seed": seed, "threads": 1, "processes": 2}
    # two single-threaded processes share each batch (data-parallel): a second *thread* makes these tiny convolutions
    # slower, a second process halves the wall time; the weights do not depend on the machine's core count
    text = {"version": 1, "hidden_size": 64, "seed": seed}
    # mini-SD: text-to-image on the captioned views, as SD is trained (white noise; captions dropped to the empty prompt
    # 10 % of the time, for classifier-free guidance) and with EMA weights. To learn in a CPU budget: attention (self
    # and cross) at 8x8 as well as 4x4, the tiny text encoder trained with the UNet (SD's CLIP came pretrained), and
    # Min-SNR-5 loss weights (Hang et al., ICCV 2023). Measured on 2 cores (issue 15): 2,000 such steps drew colour
    # patches in the caption's wall colour 62-69 % of the time; 2,000 more drew rooms (ceiling, walls, floor) in it
    # 88-91 % of the time, so the recipe trains 4,000 (13-16 minutes more, measured). 4,000 steps with attention at 4x4 only and
    # a frozen random text encoder drew colour fields, and 2,000 with the trained text encoder but attention at 4x4
    # only ignored the colour words too. Objects stay blobs at 4,000 steps (docs/recipe-history.md).
    # One process with two threads: averaging weights between two processes every step costs more than it saves here
    sd = {"version": 2, "data": captioned, "vae": vae, "text": text, "block_out_channels": [32, 64, 128],
          "attention_levels": 2,
          "norm_num_groups": 8, "steps": 4000, "batch_size": 32, "lr": 2e-3, "text_lr": 1e-3, "min_snr_gamma": 5.0,
          "warmup": 100, "final_lr_ratio": 0.1, "max_grad_norm": 1.0, "caption_dropout": 0.1, "ema_decay": 0.999,
          "held_out": 256, "bf16": bf16, "seed": seed, "threads": 2, "processes": 1}

    def unet(task: str) -> dict[str, Any]:
        # Marigold v1-0's trainer (config/train_marigold.yaml), started from mini-SD's UNet with conv_in widened to
        # 8 channels: annealed multi-resolution noise, left-right flips, 100 warm-up steps, then exponential LR decay
        # (Marigold: to 1% over 25k iterations). The short normals run still learns late, so its decay stops at 10%;
        # depth keeps Marigold's 1%. Peak LR 3e-3: the largest that trained stably at batch 32 (docs/recipe-history.md, "The
        # trainer as it was then"). At 100x Marigold's LR one gradient spike can derail a run for good, so the gradient norm
        # is clipped to 1.0 (as E2E-FT's trainer does; Marigold's does not).
        return {"version": 5, "task": task, "init": sd, "vae": vae, "text": text, "block_out_channels": [32, 64, 128],
                "attention_levels": sd["attention_levels"],
                "norm_num_groups": 8, "steps": 2000, "batch_size": 32, "lr": 3e-3, "warmup": 100, "max_grad_norm": 1.0,
                "final_lr_ratio": {"depth": 0.01, "normals": 0.1}[task],
                "multi_res_noise": {"strength": 0.9, "annealed": True},
                "hflip": True, "bf16": bf16, "seed": seed}

    return {"data": data, "captioned": captioned, "vae": vae, "sd": sd, "depth": unet("depth"), "normals": unet("normals")}


@dataclass(frozen=True)
class Profile:
    """What a lesson needs to know about where it runs: model locations, sizes, steps, training lengths."""

    name: str
    device: str
    depth_model: str
    normals_model: str
    text_to_image_model: str  # the generator Marigold fine-tunes (lesson 01): mini-SD, or Stable Diffusion 2
    dataset: str
    resolution: int
    eval_scenes: int
    inference_batch_size: int
    e2e_steps: int
    e2e_batch_size: int
    e2e_grad_accumulation: int
    e2e_lr: float
    train_data: tuple = (("miniscenes", 1.0),)  # (dataset, weight) pairs mixed per batch; see train.load_training_data
    eval_data: str = "miniscenes"
    eval_protocol: str = "miniscenes"  # see protocols.PROTOCOLS
    dtype: str = "float32"
    build_seed: int | None = None  # mini only: which build variant (see mini_build)
    build_precision: str | None = None  # mini only: the precision that build trains in, "bf16" or "fp32"
    normals_convention: str | None = None  # the frame normals_model predicts in; None = normals_convention.checkpoint_convention
    checkpoints: str | None = None  # full only: which FULL_CHECKPOINTS generation depth_model / normals_model come from
    rehearsal: bool = False  # full only: a CPU rehearsal on random-weight stand-ins ($GENPERCEPT_REHEARSAL=1)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def is_mini(self) -> bool:
        """True for the offline CPU profile."""
        return self.name == "mini"

    @property
    def eval_settings(self) -> dict[str, Any]:
        """``evaluate``'s keyword arguments for this profile's held-out set: protocol, processing resolution, ensembling.

        Full profile: the NYUv2 protocol at the images' own resolution (``processing_res 0``, as Marigold's
        ``script/eval/11_infer_nyu.sh`` and E2E-FT's ``Marigold/infer.py`` run it; the rehearsal shrinks it to
        ``resolution``), and ensembles aligned as Marigold's ``marigold/util/ensemble.py`` does (50 iterations,
        tolerance 1e-6; diffusers' default is 2 and 1e-3). Mini: MiniScenes at the model's own, diffusers' defaults.
        """
        if self.is_mini:
            return {"protocol": self.eval_protocol}
        return {"protocol": self.eval_protocol, "processing_resolution": self.resolution if self.rehearsal else 0,
                "ensembling_kwargs": {"max_iter": 50, "tol": 1e-6}}

    def rehearsal_sized(self, config):
        """``config`` (an ``E2EConfig``) as it is, or shrunk to the rehearsal's steps, batch and evaluation counts.

        Lets a lesson's full-profile cell keep the real recipe in the open while the CPU rehearsal runs it in minutes.
        """
        import dataclasses

        from genpercept_lessons.finetuning import E2EConfig

        if not isinstance(config, E2EConfig):
            raise TypeError(f"rehearsal_sized: `config` must be an E2EConfig, got {type(config).__name__}")
        if not self.rehearsal:
            return config
        steps = min(config.steps, self.e2e_steps)
        return dataclasses.replace(config, steps=steps, warmup=min(config.warmup, steps - 1),
                                   batch_size=min(config.batch_size, self.e2e_batch_size),
                                   grad_accumulation=min(config.grad_accumulation, self.e2e_grad_accumulation),
                                   eval_scenes=min(config.eval_scenes, self.eval_scenes))

    def describe(self) -> str:
        """A few lines naming the profile, device and models, printed by every notebook's first cell."""
        build = (f"\nmini build: seed {self.build_seed}, {self.build_precision} (set GENPERCEPT_MINI_SEED / "
                 "GENPERCEPT_MINI_PRECISION for another)" if self.is_mini else "")
        build += f"\ncheckpoints: Marigold {self.checkpoints} (GENPERCEPT_CHECKPOINTS: v1-0, v1-1, e2e-ft)" if self.checkpoints else ""
        build += ("\nREHEARSAL: random-weight stand-ins, tiny sizes and counts; claims that need the real weights "
                  "are reported, not asserted") if self.rehearsal else ""
        return (f"profile: {self.name} | device: {self.device} | resolution: {self.resolution}\n"
                f"depth model: {self.depth_model}\nnormals model: {self.normals_model}{build}")


def _default_device(name: str) -> str:
    if name == "mini":
        return "cpu"  # the mini numbers in the lessons are measured on the CPU; override with device="cuda"
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _mini(**overrides: Any) -> Profile:
    from genpercept_lessons.assets import asset_path

    build = mini_build(overrides.pop("build_seed", None), overrides.pop("build_precision", None))
    s = mini_build_settings(build["seed"], build["precision"])
    return Profile(
        name="mini",
        device=overrides.pop("device", None) or _default_device("mini"),
        depth_model=str(asset_path("marigold-depth", s["depth"])),
        normals_model=str(asset_path("marigold-normals", s["normals"])),
        text_to_image_model=str(asset_path("mini-sd", s["sd"])),
        dataset="miniscenes",
        resolution=s["data"]["height"],
        eval_scenes=200,
        inference_batch_size=50,
        e2e_steps=150,
        e2e_batch_size=16,
        e2e_grad_accumulation=1,
        e2e_lr=3e-4,
        build_seed=build["seed"],
        build_precision=build["precision"],
        notes={"data": "MiniScenes, rendered here",
               "models": "mini-SD and mini-Marigold (fine-tuned from it with Marigold's recipe), trained here"},
    )


def _full(**overrides: Any) -> Profile:
    checkpoints = overrides.pop("checkpoints", None) or os.environ.get("GENPERCEPT_CHECKPOINTS", "").strip() or "v1-0"
    if checkpoints not in FULL_CHECKPOINTS:
        raise ValueError(f"get_profile: `checkpoints` (or GENPERCEPT_CHECKPOINTS) must be one of {tuple(FULL_CHECKPOINTS)}, "
                         f"got {checkpoints!r}")
    full = Profile(
        name="full",
        device=overrides.pop("device", None) or _default_device("full"),
        depth_model=FULL_CHECKPOINTS[checkpoints]["depth"],
        normals_model=FULL_CHECKPOINTS[checkpoints]["normals"],
        checkpoints=checkpoints,
        text_to_image_model="stabilityai/stable-diffusion-2",  # Marigold's base (Ke et al. §4.1; prs-eth/Marigold README)
        dataset="nyuv2",
        resolution=768,
        eval_scenes=654,
        inference_batch_size=1,
        e2e_steps=20000,
        e2e_batch_size=2,
        e2e_grad_accumulation=16,
        e2e_lr=3e-5,
        # E2E-FT's mix (E2E-FT ``training/dataloaders/load.py``), as written by data_scripts/prepare_*.py under $GENPERCEPT_DATA
        train_data=(("$GENPERCEPT_DATA/hypersim_train", 0.9), ("$GENPERCEPT_DATA/vkitti2", 0.1)),
        eval_data="$GENPERCEPT_DATA/nyuv2_test",
        eval_protocol="nyuv2",
        notes={"data": "Hypersim + Virtual KITTI 2 (training), NYUv2 (evaluation), prepared by data_scripts/",
               "models": "released checkpoints from the Hugging Face Hub (E2E-FT README, diffusers Marigold docs)"},
    )
    rehearsal = os.environ.get(REHEARSAL_ENV, "").strip()
    if rehearsal not in ("", "0", "1"):
        raise ValueError(f"get_profile: {REHEARSAL_ENV} must be '1' (rehearse the full profile) or '0'/unset, got "
                         f"{rehearsal!r}")
    return dataclasses.replace(full, **REHEARSAL_SETTINGS) if rehearsal == "1" else full


def get_profile(name: str | None = None, **overrides: Any) -> Profile:
    """The profile ``name`` (default ``$GENPERCEPT_PROFILE`` or "mini"), with keyword overrides. Introduced in notebook 00."""
    if name is None:
        name = os.environ.get("GENPERCEPT_PROFILE", "mini").strip() or "mini"
    if not isinstance(name, str) or name.lower() not in PROFILE_NAMES:
        raise ValueError(f"get_profile: `name` must be one of {PROFILE_NAMES} (or set GENPERCEPT_PROFILE), got {name!r}")
    name = name.lower()
    known = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"get_profile: unknown override(s) {sorted(unknown)}; known settings: {sorted(known)}")
    device = overrides.get("device")
    if device is not None and not (isinstance(device, str) and device.split(":")[0] in ("cpu", "cuda", "mps")):
        raise ValueError(f"get_profile: `device` must be 'cpu', 'cuda[:N]' or 'mps', got {device!r}")
    if overrides.get("normals_convention") is not None:
        from genpercept_lessons.normals_convention import check_convention

        check_convention("get_profile", overrides["normals_convention"])
    variant = {k: overrides[k] for k in ("build_seed", "build_precision") if k in overrides}
    if variant and name != "mini":
        raise TypeError(f"get_profile: {sorted(variant)} only apply to the mini profile, not {name!r}")
    if "checkpoints" in overrides:
        if name != "full":
            raise TypeError("get_profile: `checkpoints` only applies to the full profile (the mini one trains its own)")
        variant["checkpoints"] = overrides["checkpoints"]
    profile = (_mini if name == "mini" else _full)(device=overrides.get("device"), **variant)
    rest = {k: v for k, v in overrides.items() if k not in ("device", *variant)}
    return dataclasses.replace(profile, **rest) if rest else profile
