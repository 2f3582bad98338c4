"""What every family module's `load` and `run` share: reading fp16 variants, one-line load errors, the last
frame, an encoder moved onto the device apart from the denoiser. Family modules import these from here, never
from the registry (`families/__init__.py`), which imports them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from ..checkpoints import HOW_TO_GET
from ..errors import ModelNotFound, first_line
from ..events import LOADING_MODEL


def read_json(folder: Path, *parts: str) -> dict:
    """The JSON file `folder/parts…` of a model folder; one `ModelNotFound` line when it is missing or broken."""
    file = folder.joinpath(*parts)
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelNotFound(f"{file} could not be read ({error}); the folder is incomplete ({HOW_TO_GET})") from None


def fp16_variant(folder: Path, dtype) -> str | None:
    """"fp16" where a component folder's fp16 files are the ones to read: on a GPU (half the reading), or
    when they are all it has; None for its full-precision files."""
    import torch

    has_fp16 = any(folder.glob("*.fp16.safetensors"))
    has_plain = any(file for file in folder.glob("*.safetensors") if ".fp16." not in file.name)
    return "fp16" if has_fp16 and (dtype == torch.float16 or not has_plain) else None


@contextlib.contextmanager
def loading(what: str) -> Iterator[None]:
    """Turn a loader's OSError/ValueError into one `ModelNotFound` line naming `what` and how to get a model."""
    try:
        yield
    except ModelNotFound:
        raise  # already says what is wrong
    except (OSError, ValueError) as error:
        raise ModelNotFound(f"{what} could not be loaded ({first_line(error)}); {HOW_TO_GET}") from error


def latent_upsampler(pipe, job, pipeline_class, model_class, missing: str):
    """The resident pipeline's latent-upsample pipeline (`pipeline_class`), sharing its VAE; the upsampler
    (`model_class`, from the folder the loader noted as `pipe._video_gen_upsampler`) loaded on the first job that
    asks for two stages and kept. `missing` is the one-line error when no upsampler is installed."""
    upsampler = getattr(pipe, "_video_gen_upsample", None)
    if upsampler is None:
        path = getattr(pipe, "_video_gen_upsampler", None)
        if path is None:
            raise ModelNotFound(missing)
        job.stage(LOADING_MODEL, "loading the latent upsampler")
        with loading(f"latent upsampler {path}"):
            # The VAE's dtype: the transformer's may be fp8 storage under a +fp8 memory plan
            model = model_class.from_pretrained(path, local_files_only=True, dtype=pipe.vae.dtype)
        upsampler = pipeline_class(vae=pipe.vae, latent_upsampler=model)
        upsampler.set_progress_bar_config(disable=True)
        pipe._video_gen_upsample = upsampler
    upsampler.latent_upsampler.to(pipe._execution_device)
    return upsampler


def last_picture(request):
    """The request's last frame, fitted to its size like the first picture (the engine fits that one), or None.
    The engine gives a last frame only to the last segment of a long video."""
    if not request.last_image:
        return None
    from ..images import fit_to_size, open_image

    return fit_to_size(open_image(request.last_image), request.width, request.height, request.resize_mode)


@contextlib.contextmanager
def encode_apart(pipe, plan, name: str, denoiser: str = "transformer") -> Iterator[None]:
    """While the block runs, the component `name` (kept apart from the denoiser: its spec's `MemoryConstants.apart`,
    left on the CPU by `memory.apply_plan`) is on the plan's device and the denoiser on the CPU; afterwards the other
    way round. Only under the plan that keeps everything on the device: the offload plans move each model in as it
    runs (diffusers' hooks), and on the CPU there is nothing to move."""
    import torch

    encoder, model = getattr(pipe, name), getattr(pipe, denoiser)
    device = torch.device(plan.device)
    if plan.offload != "none" or device.type == "cpu":
        yield
        return
    model.to("cpu")
    try:
        encoder.to(device)
        yield
    finally:
        encoder.to("cpu")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        model.to(device)
