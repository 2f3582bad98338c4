"""Model families: one module each, with the same entry points (STYLE.md, k-diffusion's samplers).

A family module exposes:
    CLASS_NAMES        the `_class_name`s of model_index.json it runs
    defaults(model)    the request defaults for this model, read from its configs (no weights)
    check(request)     family-specific validation, before anything loads
    load(model, device, dtype) -> pipeline
    run(pipe, request, image, job) -> uint8 frames (F, H, W, 3)
Adding a family (LTX, Wan, …) is adding a module here and a line to FAMILIES.
This registry imports no torch.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FAMILIES: dict[str, tuple[str, ...]] = {
    "svd": ("StableVideoDiffusionPipeline",),
}


def family_for_class(class_name: str) -> str | None:
    for family, class_names in FAMILIES.items():
        if class_name in class_names:
            return family
    return None


def load_family(name: str) -> ModuleType:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{name}")
