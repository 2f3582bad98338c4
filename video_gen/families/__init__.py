"""Model families: one module each, with the same entry points (STYLE.md, k-diffusion's samplers).

A family module exposes:
    CLASS_NAMES        the `_class_name`s of model_index.json it runs
    defaults(model)    the request defaults for this model, read from its configs (no weights)
    check(request)     family-specific validation, before anything loads
    load(model, device, dtype) -> pipeline, still on the CPU (the engine places it under the memory plan)
    run(pipe, request, image, job) -> uint8 frames (F, H, W, 3); `image` is None for text-to-video
Adding a family (LTX, Wan, …) is adding a module here and a line to FAMILIES.
This registry imports no torch.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

FAMILIES: dict[str, tuple[str, ...]] = {
    "svd": ("StableVideoDiffusionPipeline",),
    # An SD1.5 base (a diffusers folder or a single-file checkpoint) plus a motion adapter.
    "animatediff": ("AnimateDiffPipeline", "StableDiffusionPipeline", "StableDiffusionCheckpoint"),
    "modelscope": ("TextToVideoSDPipeline",),
}
# Families driven by a text prompt: the page shows the prompt fields only for these, and lets the picture
# be left out (text to video).
TEXT_FAMILIES = frozenset({"animatediff", "modelscope"})
# The picture is optional for these (it drives the result when given).
IMAGE_OPTIONAL_FAMILIES = frozenset({"animatediff", "modelscope"})
LABELS = {"svd": "Stable Video Diffusion", "animatediff": "AnimateDiff", "modelscope": "ModelScope T2V"}


def family_for_class(class_name: str) -> str | None:
    for family, class_names in FAMILIES.items():
        if class_name in class_names:
            return family
    return None


def load_family(name: str) -> ModuleType:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{name}")


# ---- what every family's `load` needs ---------------------------------------------------------------
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
    from ..errors import ModelNotFound, first_line
    from ..models import HOW_TO_GET

    try:
        yield
    except ModelNotFound:
        raise  # already says what is wrong
    except (OSError, ValueError) as error:
        raise ModelNotFound(f"{what} could not be loaded ({first_line(error)}); {HOW_TO_GET}") from error
