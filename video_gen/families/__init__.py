"""Model families: one module each, with one spec and the same entry points (like k-diffusion's samplers:
same signature, one file each). This module is the registry: every module of this package with a `SPEC` is a
family (`register` adds one from elsewhere, as the contract's test does). It imports no torch.

A family module exposes:
    SPEC                   its `FamilySpec` (spec.py): what it is, read by the rest of the program
    defaults(model)        the request defaults for this model, read from its configs (no weights)
    check(request, model)  family-specific validation beyond the spec's own (variants differ), before any load;
                           may return notes (where LTX placed a keyframe)
    load(model, device, dtype) -> pipeline, still on the CPU (the engine places it under the memory plan)
    run(pipe, request, image, job) -> uint8 frames (F, H, W, 3); `image` is None for text-to-video; `job` is the
                           engine's `running.RunningJob` (stages, steps, previews, the seed, out-of-memory).
                           A family that makes sound (its spec's `sound`) returns (frames, `audio.Sound`): the
                           sound exactly as long as the frames at `request.fps` (`Sound.from_model`); the job
                           joins segments, fits it to the video and writes it, or drops it for `audio="off"`
and may expose, where its models need it:
    complete_model(info, catalog, *, motion_adapter, models_dir, allow_pickle, inspect) -> ModelInfo
                           finish a resolved model before it is used: AnimateDiff picks its motion adapter, a single
                           file is paired with an installed folder for its other parts (`inspect(path)` reads a
                           folder or file as discovery does)
    describe_file(info) -> ModelInfo   a single file (or a model folder) as the family sees it beside its
                           neighbours (Wan 2.2's low-noise expert is part of its high-noise twin's model; a Wan VACE
                           model is named so)
    model_spec(info) -> FamilySpec     the spec narrowed for one model (a Wan that cannot take a last frame)
    component_headers(model) -> {component: [headers]} | None   for the memory plan, files only the family can
                           read (an official LTX single file holds transformer and VAE)
    lora_shapes(model) -> {component: {name: shape}}   modules its model has beyond its folder, for judging LoRAs
                           (AnimateDiff's motion adapter)
    lora_load_options(model, lora) -> [dict]   one `load_lora_weights` call per dict: where a LoRA goes (Wan
                           2.2's high- and low-noise halves)
    lora_defaults(model, loras) -> dict   the defaults a step-distill LoRA sets (its steps and guidance)
    denoise_extra_bytes_per_token(model) -> int   for the memory estimate: activation bytes per latent token
                           (16-bit) its denoiser holds for a whole call beyond the family's constants (Wan VACE's
                           hints)
    picture_size(model, width, height) -> (width, height)   the size it makes from a picture of that size when
                           the request names none (HunyuanVideo 1.5's size bucket for the picture's shape)
Adding a family is adding a module here (and its tests); the modules `spec`, `common`, `prompts`, `speed` and
`single_file` are what families share, and import nothing of the registry; `wan_vace` is part of the Wan family
(wan.py imports it).
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from types import ModuleType

from .spec import FamilySpec

_NOT_FAMILIES = frozenset({"spec", "common", "prompts", "speed", "single_file", "wan_vace"})
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
