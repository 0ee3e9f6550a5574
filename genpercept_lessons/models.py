"""Loading Marigold for a profile: the mini pipelines from the asset cache, or released checkpoints by hub id."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from genpercept_lessons.normals_convention import checkpoint_convention, normals_convention, set_normals_convention
from genpercept_lessons.profiles import Profile, get_profile
from genpercept_lessons.tasks import PIPELINE_CLASS_NAMES, check_task, pipeline_class, pipeline_task

__all__ = ["load_marigold", "load_text_to_image", "with_scheduler"]


def _hub_error(location: str, err: Exception) -> RuntimeError:
    return RuntimeError(
        f"Could not load '{location}': it is not a local folder and the Hugging Face Hub could not provide it "
        f"({type(err).__name__}: {str(err).splitlines()[0][:200]}).\n"
        "What to do: (1) on a machine with internet, run `hf download "
        f"{location}` once (or unset HF_HUB_OFFLINE); (2) or point the profile at a local copy: "
        "get_profile('full', depth_model='/path/to/folder'); (3) or use the offline mini profile: "
        "get_profile('mini') / GENPERCEPT_PROFILE=mini."
    )


def _ensure_mini_assets(profile: Profile, task: str, location: str, build_missing: bool) -> None:
    """Wait for the mini asset ``task`` ("depth", "normals", "sd") if ``location``, the profile's own folder, lacks it.

    The build runs in the background (started here if none runs); the caller waits for it with a progress bar.
    """
    from genpercept_lessons.assets import is_complete
    from genpercept_lessons.mini.build import mini_asset_paths

    if Path(location) != mini_asset_paths(profile.build_seed, profile.build_precision)[task]:
        return  # a mini profile pointed at another folder: load it as it is
    if is_complete(location, check_hashes=False):
        return
    if not build_missing:
        from genpercept_lessons.mini.background import BUILD_MINUTES

        what = "mini-SD text-to-image" if task == "sd" else f"mini-Marigold {task}"
        raise FileNotFoundError(f"the {what} model is not built yet ({location}); run `make assets` once "
                                f"in a terminal ({BUILD_MINUTES}), or pass a pipeline folder")
    from genpercept_lessons.mini.background import ensure_mini_assets

    ensure_mini_assets([task], profile.build_seed, profile.build_precision)


class _Mismatch(ValueError):
    """A checkpoint that loads but is not what was asked for (the other task, a text-to-image UNet)."""


def _hub_model_index(location: str) -> dict:
    """The model_index.json of a hub id (from the local hub cache when offline), or the actionable hub error."""
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(location, "model_index.json")).read_text())
    except Exception as err:  # offline, unknown id, gated repo, network down: huggingface_hub raises many kinds
        raise _hub_error(location, err) from None


def _from_parts(cls, location: str, task: str, dtype):
    """A checkpoint saved in another layout (E2E-FT saves a ``StableDiffusionPipeline``) as the core Marigold pipeline.

    Part by part, as E2E-FT's own evaluation loads its checkpoints (E2E-FT ``Marigold/infer.py``): UNet, VAE, text
    encoder, tokenizer, and a DDIM scheduler from the saved scheduler config (E2E-FT's trainer saves trailing spacing,
    ``training/train.py``). No ``custom_pipeline`` (remote code) is run; the defaults are E2E-FT's evaluation settings:
    1 step at the image's own resolution (``--denoise_steps 1 --processing_res 0``).
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(location, subfolder="unet", dtype=dtype)
    if unet.config.in_channels != 8:
        raise _Mismatch(f"'{location}' has a {unet.config.in_channels}-channel UNet: a text-to-image model, not a "
                         "Marigold or E2E-FT estimator (those take cat(rgb latent, target latent), 8 channels); "
                         "load it with load_text_to_image, or repurpose it as lesson 01 shows")
    settings = {"depth": {"scale_invariant": True, "shift_invariant": True}, "normals": {"use_full_z_range": True}}[task]
    return cls(unet=unet, vae=AutoencoderKL.from_pretrained(location, subfolder="vae", dtype=dtype),
               scheduler=DDIMScheduler.from_pretrained(location, subfolder="scheduler"),
               text_encoder=CLIPTextModel.from_pretrained(location, subfolder="text_encoder", dtype=dtype),
               tokenizer=CLIPTokenizer.from_pretrained(location, subfolder="tokenizer"), prediction_type=task,
               default_denoising_steps=1, default_processing_resolution=0, **settings)


def _load(cls, location: str, task: str, dtype, index: dict):
    """``location`` (folder or hub id) as ``cls``: directly if it is saved as one, else part by part (``_from_parts``)."""
    name = index.get("_class_name")
    found = {v: k for k, v in PIPELINE_CLASS_NAMES.items()}.get(name)
    if found is not None and found != task:
        raise _Mismatch(f"'{location}' holds a {found} pipeline but {task} was asked for; load it as task={found!r} "
                         f"(--task {found} on the command line) or pass a {task} model")
    return cls.from_pretrained(location, dtype=dtype) if found == task else _from_parts(cls, location, task, dtype)


def _from_folder(cls, folder: Path, task: str, dtype):
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"'{folder}' is not a Marigold pipeline folder (no model_index.json); expected a folder "
                                "saved by pipe.save_pretrained, e.g. the --out of `python -m genpercept_lessons.cli.train`")
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except ValueError:
        raise RuntimeError(f"'{folder}/model_index.json' is not valid JSON") from None
    try:
        return _load(cls, str(folder), task, dtype, index)
    except _Mismatch:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise RuntimeError(f"could not load the {task} model in '{folder}' (saved as {index.get('_class_name')}; "
                           f"{type(err).__name__}: {str(err).splitlines()[0][:200]})") from None


def load_marigold(profile: Profile | str | None = None, task: str = "depth", progress_bar: bool = False, *,
                  model: str | None = None, build_missing: bool = True):
    """The diffusers ``MarigoldDepthPipeline`` / ``MarigoldNormalsPipeline`` of ``profile`` on its device. Introduced in notebook 01.

    Mini profile: the pipeline folder in the asset cache; if it is not built yet, this waits for the background build
    (``make lab`` starts it; started here if none runs), or with ``build_missing=False`` raises FileNotFoundError.
    Full profile: a hub id such as ``prs-eth/marigold-depth-v1-0`` or a local folder in the same layout. ``model`` (a folder, or a hub id in the full
    profile) replaces the profile's model for ``task``. A normals pipeline records the frame it predicts in
    (``profile.normals_convention``, else its checkpoint's: E2E-FT's ``GonzaloMG/*`` are x-left); the course's
    ``predict`` returns x-right whatever the model.
    """
    import torch

    if profile is None or isinstance(profile, str):
        profile = get_profile(profile)
    if not isinstance(profile, Profile):
        raise TypeError(f"load_marigold: `profile` must be a Profile, a profile name or None, got {type(profile).__name__}")
    check_task("load_marigold", task)
    if model is not None:
        if not isinstance(model, (str, Path)) or not str(model):
            raise TypeError(f"load_marigold: `model` must be a folder path or hub id, got {model!r}")
        profile = dataclasses.replace(profile, **{f"{task}_model": str(model)})
    location = profile.depth_model if task == "depth" else profile.normals_model
    cls = pipeline_class(task)
    if profile.is_mini and model is None:
        _ensure_mini_assets(profile, task, location, build_missing)
    dtype = getattr(torch, profile.dtype)
    folder = Path(location).expanduser()
    if folder.is_dir():
        pipe = _from_folder(cls, folder, task, dtype)
    elif profile.is_mini:
        raise FileNotFoundError(f"load_marigold: there is no folder '{location}'; the mini profile is offline, so pass "
                                "a local Marigold pipeline folder (or use the full profile for a Hugging Face Hub id)")
    elif str(location).startswith(("/", ".", "~")) or str(location).count("/") != 1:
        raise FileNotFoundError(f"load_marigold: model folder '{location}' does not exist (and it is not a hub id "
                                "of the form 'owner/name')")
    else:
        index = _hub_model_index(location)
        try:
            pipe = _load(cls, location, task, dtype, index)
        except _Mismatch:
            raise
        except (OSError, ValueError) as err:  # offline, unknown id, gated repo, network down
            raise _hub_error(location, err) from None
    pipe = pipe.to(profile.device)
    pipe.set_progress_bar_config(disable=not progress_bar)
    if task == "normals":  # predictions leave the course's loops in x-right (normals_convention.py)
        declared = profile.normals_convention if model is None else None
        set_normals_convention(pipe, declared or checkpoint_convention(location))
    return pipe


def load_text_to_image(profile: Profile | str | None = None, progress_bar: bool = False, *, model: str | None = None,
                       build_missing: bool = True):
    """The text-to-image model Marigold starts from, as a diffusers ``StableDiffusionPipeline``. Introduced in notebook 01.

    Mini profile: mini-SD from the asset cache (waiting for the background build, as ``load_marigold``). Full profile:
    ``profile.text_to_image_model`` (Marigold's base, ``stabilityai/stable-diffusion-2``) or ``model``, a hub id or a
    folder in the same layout.
    """
    import torch
    from diffusers import StableDiffusionPipeline

    if profile is None or isinstance(profile, str):
        profile = get_profile(profile)
    if not isinstance(profile, Profile):
        raise TypeError(f"load_text_to_image: `profile` must be a Profile, a profile name or None, got {type(profile).__name__}")
    if model is not None and (not isinstance(model, (str, Path)) or not str(model)):
        raise TypeError(f"load_text_to_image: `model` must be a folder path or hub id, got {model!r}")
    location = str(model) if model is not None else profile.text_to_image_model
    if profile.is_mini and model is None:
        _ensure_mini_assets(profile, "sd", location, build_missing)
    dtype = getattr(torch, profile.dtype)
    folder = Path(location).expanduser()
    if folder.is_dir():
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(f"'{folder}' is not a diffusers pipeline folder (no model_index.json)")
        pipe = StableDiffusionPipeline.from_pretrained(str(folder), dtype=dtype, safety_checker=None,
                                                       requires_safety_checker=False)
    elif profile.is_mini or str(location).startswith(("/", ".", "~")) or str(location).count("/") != 1:
        raise FileNotFoundError(f"load_text_to_image: there is no folder '{location}' (the mini profile is offline; "
                                "a Hugging Face Hub id has the form 'owner/name' and needs the full profile)")
    else:
        try:
            pipe = StableDiffusionPipeline.from_pretrained(location, dtype=dtype, safety_checker=None,
                                                           requires_safety_checker=False)
        except (OSError, ValueError) as err:
            raise _hub_error(location, err) from None
    pipe = pipe.to(profile.device)
    pipe.set_progress_bar_config(disable=not progress_bar)
    return pipe


def with_scheduler(pipe, scheduler):
    """The same Marigold pipeline (shared weights and settings) with another scheduler. Introduced in notebook 03.

    E.g. ``with_scheduler(pipe, with_zero_terminal_snr(pipe.scheduler))`` runs a v1-0 checkpoint with Marigold v1-1's
    schedule; ``pipe`` itself is left unchanged (diffusers ``DiffusionPipeline.from_pipe``).
    """
    from diffusers import DDIMScheduler

    pipeline_task(pipe)  # a Marigold depth or normals pipeline, or a clear error
    if not isinstance(scheduler, DDIMScheduler):
        raise TypeError(f"with_scheduler: `scheduler` must be a diffusers DDIMScheduler (the course's loop is DDIM), "
                        f"got {type(scheduler).__name__}")
    new = type(pipe).from_pipe(pipe, scheduler=scheduler)
    new.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    if pipeline_task(pipe) == "normals":
        set_normals_convention(new, normals_convention(pipe))
    return new
