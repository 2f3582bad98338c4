"""Model families: one module each, with one spec and the same entry points (like k-diffusion's samplers:
same signature, one file each).

A family module exposes:
    SPEC               its `FamilySpec` (spec.py): what it is, read by the rest of the program
    defaults(model)    the request defaults for this model, read from its configs (no weights)
    check(request, model)  family-specific validation beyond the spec's own (the model: variants differ), before any load
    load(model, device, dtype) -> pipeline, still on the CPU (the engine places it under the memory plan)
    run(pipe, request, image, job) -> uint8 frames (F, H, W, 3); `image` is None for text-to-video
and optionally `complete_model(info, catalog, options)`, which finishes a resolved model before it is used
(AnimateDiff picks its motion adapter there).
Adding a family (LTX, Wan, …) is adding a module here: every module of this package with a `SPEC` is a
family (`register` adds one from elsewhere, as the contract's test does). This registry imports no torch.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from .spec import FamilySpec

_NOT_FAMILIES = frozenset({"spec"})
_registry: dict[str, ModuleType] = {}
_registry_lock = threading.Lock()
_scanned: tuple[str, ...] | None = None  # the package's search path when it was last scanned


def _families() -> dict[str, ModuleType]:
    """Every family module by name: the modules of this package that declare a SPEC, found once (and again
    when the package's path grows, so that a folder of families added to it is seen)."""
    global _scanned
    with _registry_lock:
        if _scanned != tuple(__path__):
            for found in pkgutil.iter_modules(__path__):
                if found.name.startswith("_") or found.name in _NOT_FAMILIES:
                    continue
                module = importlib.import_module(f"{__name__}.{found.name}")
                if isinstance(getattr(module, "SPEC", None), FamilySpec):
                    _registry.setdefault(module.SPEC.name, module)
            _scanned = tuple(__path__)
        return _registry


def register(module: ModuleType) -> FamilySpec:
    """Add a family module defined outside this package (it needs the same SPEC and entry points)."""
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, FamilySpec):
        raise TypeError(f"{module.__name__} has no SPEC (a FamilySpec)")
    families = _families()
    with _registry_lock:
        families[spec.name] = module
    return spec


def unregister(name: str) -> None:
    with _registry_lock:
        _registry.pop(name, None)


def specs() -> list[FamilySpec]:
    return [module.SPEC for module in _families().values()]


def spec_for(name: str) -> FamilySpec:
    return load_family(name).SPEC


def family_for_class(class_name: str) -> str | None:
    for module in _families().values():
        if class_name in module.SPEC.class_names:
            return module.SPEC.name
    return None


def part_for_class(class_name: str) -> tuple[str, str] | None:
    """(family, role) of a folder class that is a part for a family's models (its spec's `part_classes`)."""
    for module in _families().values():
        role = dict(module.SPEC.part_classes).get(class_name)
        if role is not None:
            return module.SPEC.name, role
    return None


def load_family(name: str) -> ModuleType:
    families = _families()
    if name not in families:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(families)}")
    return families[name]


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


def last_picture(request):
    """The request's last frame, fitted to its size like the first picture (the engine fits that one), or None.
    The engine gives a last frame only to the last segment of a long video."""
    if not request.last_image:
        return None
    from ..images import fit_to_size, open_image

    return fit_to_size(open_image(request.last_image), request.width, request.height, request.resize_mode)
