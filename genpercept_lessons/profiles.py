"""Profiles: one switch between the mini world (CPU, offline, minutes) and the full models (hub ids, GPU).

Pick one with ``GENPERCEPT_PROFILE=mini|full`` or ``get_profile("full")`` in a notebook's first cell;
every other setting can be overridden by keyword: ``get_profile("mini", device="cuda")``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Profile", "PROFILE_NAMES", "get_profile", "mini_build_settings"]

PROFILE_NAMES = ("mini", "full")


def mini_build_settings() -> dict[str, dict[str, Any]]:
    """The settings every mini asset is built with; their hashes name the cache folders. Introduced in notebook 00."""
    data = {"version": 2, "seed": 0, "n_train": 2000, "n_test": 200, "height": 64, "width": 64}
    # 2,000 bf16 steps take 1.2x as long as 1,000 in fp32 did; a decoded normal map's error falls from 7.7 to 5.2 deg
    vae = {"version": 3, "data": data, "block_out_channels": [16, 32, 64], "latent_channels": 4, "norm_num_groups": 4,
           "crop": 32, "sample_posterior": False, "steps": 2000, "batch_size": 32, "lr": 2e-3, "kl_weight": 1e-6,
           "bf16": True, "seed": 0}
    text = {"version": 1, "hidden_size": 64, "seed": 0}

    def unet(task: str) -> dict[str, Any]:
        # Marigold v1-0's trainer (config/train_marigold.yaml): annealed multi-resolution noise, left-right flips,
        # 100 warm-up steps, then exponential LR decay to 1% (Marigold: over 25k iterations). The 2,000-step normals
        # run learns more when the decay stops at 10% (16.1 -> 14.9 deg; depth got worse at 5%). Peak LR 3e-3 (4e-3
        # diverges).
        return {"version": 4, "task": task, "vae": vae, "text": text, "block_out_channels": [32, 64, 128],
                "norm_num_groups": 8, "steps": 2000, "batch_size": 32, "lr": 3e-3, "warmup": 100,
                "final_lr_ratio": {"depth": 0.01, "normals": 0.1}[task],
                "multi_res_noise": {"strength": 0.9, "annealed": True},
                "hflip": True, "bf16": True, "seed": 0}

    return {"data": data, "vae": vae, "depth": unet("depth"), "normals": unet("normals")}


@dataclass(frozen=True)
class Profile:
    """What a lesson needs to know about where it runs: model locations, sizes, steps, training lengths."""

    name: str
    device: str
    depth_model: str
    normals_model: str
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
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def is_mini(self) -> bool:
        """True for the offline CPU profile."""
        return self.name == "mini"

    def describe(self) -> str:
        """A few lines naming the profile, device and models, printed by every notebook's first cell."""
        return (f"profile: {self.name} | device: {self.device} | resolution: {self.resolution}\n"
                f"depth model: {self.depth_model}\nnormals model: {self.normals_model}")


def _default_device(name: str) -> str:
    if name == "mini":
        return "cpu"  # the mini numbers in the lessons are measured on the CPU; override with device="cuda"
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _mini(**overrides: Any) -> Profile:
    from .assets import asset_path

    s = mini_build_settings()
    return Profile(
        name="mini",
        device=overrides.pop("device", None) or _default_device("mini"),
        depth_model=str(asset_path("marigold-depth", s["depth"])),
        normals_model=str(asset_path("marigold-normals", s["normals"])),
        dataset="miniscenes",
        resolution=s["data"]["height"],
        eval_scenes=200,
        inference_batch_size=50,
        e2e_steps=150,
        e2e_batch_size=16,
        e2e_grad_accumulation=1,
        e2e_lr=3e-4,
        notes={"data": "MiniScenes, rendered here", "models": "mini-Marigold, trained here with Marigold's recipe"},
    )


def _full(**overrides: Any) -> Profile:
    return Profile(
        name="full",
        device=overrides.pop("device", None) or _default_device("full"),
        depth_model="prs-eth/marigold-depth-v1-0",
        normals_model="GonzaloMG/marigold-normals",
        dataset="nyuv2",
        resolution=768,
        eval_scenes=654,
        inference_batch_size=1,
        e2e_steps=20000,
        e2e_batch_size=2,
        e2e_grad_accumulation=16,
        e2e_lr=3e-5,
        # E2E-FT's mix (FACTS §3.2), as written by data_scripts/prepare_*.py under $GENPERCEPT_DATA
        train_data=(("$GENPERCEPT_DATA/hypersim_train", 0.9), ("$GENPERCEPT_DATA/vkitti2", 0.1)),
        eval_data="$GENPERCEPT_DATA/nyuv2_test",
        eval_protocol="nyuv2",
        notes={"data": "Hypersim + Virtual KITTI 2 (training), NYUv2 (evaluation), prepared by data_scripts/",
               "models": "released checkpoints from the Hugging Face Hub (FACTS §2, E2E-FT README)"},
    )


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
    profile = (_mini if name == "mini" else _full)(device=overrides.get("device"))
    rest = {k: v for k, v in overrides.items() if k != "device"}
    return dataclasses.replace(profile, **rest) if rest else profile
