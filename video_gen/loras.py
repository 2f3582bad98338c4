"""LoRAs: the request's choice of them, whether a LoRA fits a model, and keeping the chosen ones active on a
resident pipeline.

- **Files.** A .safetensors file is a LoRA when its tensor names are a LoRA's (`lora_A`/`lora_B`,
  `lora_down`/`lora_up`, …). Three key styles are read: diffusers/PEFT (`unet.down_blocks.0….to_q.lora_A.weight`),
  kohya/sd-scripts (`lora_unet_down_blocks_0_…_to_q.lora_down.weight` with `.alpha`) and the original-checkpoint
  style (`diffusion_model.blocks.0.self_attn.q.lora_A.weight`). Step-distill LoRAs (lightx2v, Lightning, LCM,
  CausVid) are told by the file's name or its metadata.
- **Fit.** A LoRA fits a model when every module it changes exists in that model with the same shape (ComfyUI's
  rule: decided from the model's own key map, `comfy/lora.py`), read from the safetensors headers of both; nothing
  is loaded. The LoRA's names are first put in diffusers' form by the very function that will load it (the
  family's pipeline class's `lora_state_dict`, run on shape-only "meta" tensors), so kohya and original names are
  judged as diffusers will read them. A family takes LoRAs when its spec names that class
  (`FamilySpec.lora_loader`); what is its own it declares in its module: `lora_shapes(model)` (modules its model
  has beyond its folder's, such as AnimateDiff's motion adapter), `lora_load_options(model, lora)` (where each LoRA goes:
  Wan 2.2's high- and low-noise halves) and `lora_defaults(model, loras)` (a step-distill LoRA's steps and
  guidance).
- **Applying.** `apply` keeps every LoRA it has loaded into a pipeline as a named PEFT adapter
  (`load_lora_weights(..., adapter_name=...)`), and a job only switches which adapters are active and at what
  strength (`set_adapters`): changing LoRAs never reloads the base model. Adapters beyond
  `MAX_RESIDENT_ADAPTERS` that the job does not use are deleted, least recently used first.

Imports no torch at import time (judging a fit imports it, to build shape-only tensors).
"""

from __future__ import annotations

import difflib
import math
import re
import threading
import warnings
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import (ALLOW_PICKLE_FLAG, PICKLE_SUFFIXES, LORA, ModelInfo, check_complete, component_shapes,
                          file_sha256, meta_shapes, numel, pickle_state_dict, read_safetensors_header, read_safetensors_metadata)
from .demo import DEMO_LORA_KEY, DEMO_NOTE
from .errors import GenerationFailed, InvalidRequest, ModelNotFound, first_line
from .memory.apply import adapters_in_compute_dtype

MAX_LORAS = 8  # at once, per job
STRENGTH_RANGE = (-2.0, 2.0)  # negative strengths invert a LoRA (a "slider" LoRA's other end)
# LoRAs kept loaded on a pipeline beyond those a job uses. Each is its LoRA's own size (SD1.5 LoRAs are
# 10-150 MB, Wan's 100-600 MB), so a handful costs little next to the model and saves a reload when switching back.
MAX_RESIDENT_ADAPTERS = 8
# Folders that hold LoRAs: models/loras here and in ComfyUI, models/Lora in A1111.
LORA_FOLDERS = ("loras", "lora")
# Step-distill LoRAs, by the words their files are published under (lightx2v's Wan2.1-T2V-14B-lightx2v,
# ByteDance's AnimateDiff-Lightning and Wan Lightning, AnimateLCM / latent-consistency's lcm-lora, CausVid).
DISTILL_WORDS = ("lightx2v", "lightning", "causvid", "lcm")

# Tensor names that only LoRA files have (PEFT/diffusers, old diffusers, kohya, LyCORIS-LoCon's lora_* part).
_LORA_TENSOR = re.compile(r"(\.|_)(lora_A|lora_B|lora_down|lora_up|lora\.down|lora\.up|lora_linear_layer)"
                          r"(\.|$)|\.lora\.(down|up)\.")
# A normalised LoRA weight: the module it changes and whether it is the down (A) or up (B) half, in each of the
# forms diffusers' `lora_state_dict` returns (PEFT, diffusers, the old attention-processor form).
_HALF = re.compile(r"^(?P<module>.+?)\.(?:lora_(?P<peft>[AB])|lora\.(?P<new>down|up)|"
                   r"lora_linear_layer\.(?P<linear>down|up))\.weight$")
_OLD_HALF = re.compile(r"^(?P<module>.+?)\.(?:processor\.)?(?P<projection>to_q|to_k|to_v|to_out)_lora\."
                       r"(?P<half>down|up)\.weight$")
# The old form's projections by their modules' names: in a UNet or transformer, and in a CLIP text encoder.
_OLD_MODULES = {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"}
_OLD_TEXT_MODULES = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}


@dataclass(frozen=True)
class LoraChoice:
    """One LoRA a request asks for: its name (or path), its strength, and the SHA-256 of the file that made a
    stored video (filled in by the engine; a different file then gets a warning)."""

    name: str
    strength: float = 1.0
    sha256: str | None = None


@dataclass(frozen=True)
class LoraFile:
    """What a LoRA file is, read from its header."""

    name: str  # the file's stem (families read their own conventions in it: Wan 2.2's high/low-noise halves)
    style: str  # diffusers (PEFT/diffusers names), kohya, or original (a checkpoint's own names)
    numel: int  # its parameters (the memory estimator counts them)
    distill: str | None = None  # lightx2v, lightning, causvid or lcm: a step-distill LoRA
    demo: bool = False  # the demo LoRA (`demo.py`): random weights

    def describe(self) -> str:
        return self.style + (f", {self.distill} step-distill" if self.distill else "") + (
            f"; {DEMO_NOTE}" if self.demo else "")


@dataclass(frozen=True)
class ResolvedLora:
    """A request's LoRA found on disk and checked against the model: what `apply` loads."""

    name: str
    path: Path
    strength: float
    sha256: str
    info: LoraFile
    components: tuple[str, ...] = ()  # the model's components it changes (unet, text_encoder, transformer)
    load_options: tuple[dict, ...] = ({},)  # one `load_lora_weights` call each (the family's `lora_load_options`)
    allow_pickle: bool = False

    @property
    def choice(self) -> LoraChoice:
        return LoraChoice(self.name, self.strength, self.sha256)

    @property
    def adapter_name(self) -> str:
        """The PEFT adapter's name: the LoRA's name and its content (a changed file is another adapter).
        PEFT keeps adapters in ModuleDicts, whose keys may not contain dots."""
        return f"{re.sub(r'[^A-Za-z0-9_]+', '_', self.name).strip('_') or 'lora'}_{self.sha256[:12]}"

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "strength": self.strength, "sha256": self.sha256, "style": self.info.style,
                "changes": list(self.components), "distill": self.info.distill, "file": self.path.name}


# ---- the request's field -------------------------------------------------------------------------------
def parse_flag(text: str) -> LoraChoice:
    """`--lora NAME[:STRENGTH]` (a name may itself hold colons, as a Windows path does: only a number after the
    last colon is a strength)."""
    name, colon, tail = text.rpartition(":")
    if colon and name:
        try:
            return LoraChoice(name.strip(), float(tail))
        except ValueError:
            pass
    return LoraChoice(text.strip())


def coerce(value: Any) -> tuple[LoraChoice, ...]:
    """JSON's `loras` ([{"name": ..., "strength": ...}], or "NAME:STRENGTH" strings) as LoraChoices."""
    if value is None:
        return ()
    if isinstance(value, (str, dict, LoraChoice)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise InvalidRequest("loras", f'must be a list of {{"name": ..., "strength": ...}}, got {value!r}')
    return tuple(_choice(entry) for entry in value)


def _choice(entry: Any) -> LoraChoice:
    if isinstance(entry, LoraChoice):
        return entry
    if isinstance(entry, str):
        return parse_flag(entry)
    if not isinstance(entry, dict):
        raise InvalidRequest("loras", f'each LoRA must be {{"name": ..., "strength": ...}}, got {entry!r}')
    unknown = set(entry) - {"name", "strength", "sha256"}
    if unknown:
        raise InvalidRequest("loras", f"unknown key {sorted(unknown)[0]!r} in {entry!r}; allowed: name, strength, sha256")
    name, strength, sha = entry.get("name"), entry.get("strength"), entry.get("sha256")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("loras", f"each LoRA needs a name (text), got {entry!r}")
    strength = 1.0 if strength is None else _number(strength)  # left out or null: full strength
    if strength is None:
        raise InvalidRequest("loras", f"strength of {name!r} must be a number from {_num(STRENGTH_RANGE[0])} "
                                      f"to {_num(STRENGTH_RANGE[1])}, got {entry.get('strength')!r}")
    if sha is not None and not isinstance(sha, str):
        raise InvalidRequest("loras", f"sha256 of {name!r} must be text, got {sha!r}")
    return LoraChoice(name.strip(), strength, sha)


def _number(value: Any) -> float | None:
    """A JSON number (or numeric text) as a float; None for anything else (booleans included)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def check_choices(choices: tuple[LoraChoice, ...]) -> None:
    """The checks that need no files: how many, each strength's range, no LoRA twice."""
    if not isinstance(choices, tuple) or not all(isinstance(choice, LoraChoice) for choice in choices):
        raise InvalidRequest("loras", f'must be a list of {{"name": ..., "strength": ...}}, got {choices!r}')
    if len(choices) > MAX_LORAS:
        raise InvalidRequest("loras", f"at most {MAX_LORAS} at once, got {len(choices)}")
    low, high = STRENGTH_RANGE
    seen = set()
    for choice in choices:
        if not math.isfinite(choice.strength) or not low <= choice.strength <= high:
            raise InvalidRequest("loras", f"strength of {choice.name!r} must be from {_num(low)} to {_num(high)}, "
                                          f"got {_num(choice.strength)}")
        if choice.name in seen:
            raise InvalidRequest("loras", f"{choice.name!r} is asked for twice; give each LoRA once, with one "
                                          f"strength")
        seen.add(choice.name)


# ---- what a file is -------------------------------------------------------------------------------------
def is_lora(keys: Iterable[str]) -> bool:
    return any(_LORA_TENSOR.search(key) for key in keys)


def from_header(header: dict[str, Any], name: str = "", metadata: dict[str, str] | None = None) -> LoraFile | None:
    """A LoRA's description from its tensor names (and metadata), or None when the header is not a LoRA's."""
    keys = [key for key in header if key != "__metadata__"]
    if not is_lora(keys):
        return None
    style = "kohya" if any(key.startswith("lora_") or ".lora_down." in key for key in keys) else (
        "original" if any(key.startswith(("diffusion_model.", "model.diffusion_model.")) for key in keys)
        else "diffusers")
    words = " ".join([name, *(f"{key} {value}" for key, value in (metadata or {}).items()
                              if key.lower() in ("ss_output_name", "name", "modelspec.title", "description",
                                                 "ss_training_comment", "modelspec.description"))]).lower()
    distill = next((word for word in DISTILL_WORDS if word in words), None)
    return LoraFile(name=name, style=style, numel=sum(numel(header[key]) for key in keys), distill=distill,
                    demo=bool((metadata or {}).get(DEMO_LORA_KEY)))


_cache_lock = threading.Lock()
_inspected: dict[tuple, LoraFile | None] = {}
_hashes: dict[tuple, str] = {}
_targets: dict[tuple, dict] = {}
_model_shapes: dict[tuple, dict] = {}


def _version(path: Path) -> tuple:
    status = Path(path).stat()
    return str(Path(path).resolve()), status.st_size, status.st_mtime_ns


def inspect(path: Path) -> LoraFile | None:
    """A .safetensors file's LoRA description (None: not a LoRA), read once per version of the file. Raises
    ValueError naming the file when it is damaged or truncated."""
    key = _version(path)
    with _cache_lock:
        if key in _inspected:
            return _inspected[key]
    header = read_safetensors_header(path)
    check_complete(path, header)
    found = from_header(header, Path(path).stem, read_safetensors_metadata(path))
    with _cache_lock:
        _inspected[key] = found
    return found


def sha256(path: Path) -> str:
    """A LoRA file's SHA-256, computed once per version of the file (size and mtime)."""
    key = _version(path)
    with _cache_lock:
        known = _hashes.get(key)
    if known is None:
        known = file_sha256(path)
        with _cache_lock:
            _hashes[key] = known
    return known


# ---- does it fit? ---------------------------------------------------------------------------------------
def targets(path: Path, loader: str, *, allow_pickle: bool = False) -> dict[str, dict[str, tuple[int, int]]]:
    """The modules a LoRA changes, by the model's component: {"unet": {"down_blocks.0…attn1.to_q": (out, in)}},
    its names as diffusers' `loader.lora_state_dict` reads them (cached per version of the file)."""
    key = (*_version(path), loader)
    with _cache_lock:
        if key in _targets:
            return _targets[key]
    if Path(path).suffix.lower() in PICKLE_SUFFIXES:
        shapes = {name: list(getattr(value, "shape", [])) for name, value in pickle_state_dict(path).items()}
    else:
        shapes = {name: entry["shape"] for name, entry in read_safetensors_header(path).items()}
    found = _normalised_targets(shapes, loader)
    with _cache_lock:
        _targets[key] = found
    return found


def _normalised_targets(shapes: dict[str, list[int]], loader: str) -> dict[str, dict[str, tuple[int, int]]]:
    import diffusers
    import torch

    meta = {name: torch.empty(shape, device="meta") if shape else torch.tensor(1.0) for name, shape in shapes.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = getattr(diffusers, loader).lora_state_dict(meta)
    except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as error:
        raise ValueError(f"diffusers cannot read it as a LoRA for {loader} ({first_line(error)})") from None
    state = state[0] if isinstance(state, tuple) else state
    halves: dict[tuple[str, str], dict[str, list[int]]] = {}
    for name, tensor in state.items():
        component, _, rest = name.partition(".")
        found = _HALF.match(rest)
        if found:
            module = found["module"]
            half = "down" if (found["peft"] == "A" or "down" in (found["new"], found["linear"])) else "up"
        elif (old := _OLD_HALF.match(rest)) is not None:
            names = _OLD_TEXT_MODULES if component.startswith("text_encoder") else _OLD_MODULES
            module, half = f"{old['module']}.{names[old['projection']]}", old["half"]
        else:
            continue  # alphas, DoRA magnitudes: they change no module's shape
        halves.setdefault((component, module), {})[half] = list(tensor.shape)
    found_targets: dict[str, dict[str, tuple[int, int]]] = {}
    for (component, module), pair in halves.items():
        if "down" in pair and "up" in pair and len(pair["down"]) >= 2:
            found_targets.setdefault(component, {})[module] = (pair["up"][0], pair["down"][1])
    return found_targets


def model_shapes(model: ModelInfo, component: str, family=None) -> dict[str, list[int]]:
    """A model component's weight names and shapes: its safetensors headers; where the component is a single file
    (a GGUF, a checkpoint) or a config alone, the architecture its config describes, built on the meta device.
    `family`'s `lora_shapes(model)` adds what its model has beyond the folder (AnimateDiff's motion modules)."""
    key = (model, component)
    with _cache_lock:
        if key in _model_shapes:
            return _model_shapes[key]
    folder = model.path if model.path.is_dir() else model.config_dir
    shapes = None
    if folder is not None and model.path.is_dir() and model.component != component:
        shapes = component_shapes(folder / component)
    if shapes is None and folder is not None and (folder / component / "config.json").is_file():
        shapes = meta_shapes(folder / component)
    shapes = dict(shapes or {})
    extra = getattr(family, "lora_shapes", None)
    if extra is not None:
        shapes.update(extra(model).get(component, {}))
    with _cache_lock:
        _model_shapes[key] = shapes
    return shapes


def first_mismatch(lora_targets: dict[str, dict[str, tuple[int, int]]], model: ModelInfo, family) -> str | None:
    """Why a LoRA does not fit a model, naming the first module that is missing or has another shape; None when
    every module it changes is there with its shape."""
    for component, modules in sorted(lora_targets.items()):
        shapes = model_shapes(model, component, family)
        if not shapes:
            return f"it changes a part named {component}, which this model does not have (a LoRA for another kind of model)"
        for module, (out, width) in sorted(modules.items()):
            weight = shapes.get(f"{module}.weight")
            if weight is None:
                return f"{module}: not in this model"
            if len(weight) < 2 or weight[1] != width:
                return f"{module}: LoRA made for width {width}, this model has {weight[1] if len(weight) > 1 else '?'}"
            if weight[0] != out:
                return f"{module}: LoRA made for {out} outputs, this model has {weight[0]}"
    if not lora_targets:
        return "diffusers finds no module it changes"
    return None


def fits(lora_path: Path, model: ModelInfo, family, *, allow_pickle: bool = False) -> str | None:
    """None when the LoRA fits `model` (of `family`, a family module), else why not in one line."""
    loader = family.SPEC.lora_loader
    if not loader:
        return f"{family.SPEC.label} cannot take LoRAs"
    try:
        return first_mismatch(targets(lora_path, loader, allow_pickle=allow_pickle), model, family)
    except (OSError, ValueError, ModelNotFound) as error:
        return first_line(error)


# ---- finding them ---------------------------------------------------------------------------------------
def installed(catalog) -> list[ModelInfo]:
    """The LoRAs a catalog found (ModelInfo rows with role LORA), in discovery order."""
    return [info for info in catalog.entries() if info.role == LORA]


def installed_for(catalog, model: ModelInfo, family) -> list[str]:
    """The names of the installed LoRAs that fit `model` (the page's choices)."""
    if not family.SPEC.lora_loader:
        return []
    return [info.name for info in installed(catalog)
            if info.class_name == "LoRA" and fits(info.path, model, family) is None]


def resolve(choices: tuple[LoraChoice, ...], catalog, family, model: ModelInfo, *, models_dir: Path,
            allow_pickle: bool = False) -> tuple[tuple[ResolvedLora, ...], tuple[str, ...]]:
    """The request's LoRAs found, read and checked against `model` (of `family`, a family module), and one-line
    notes (a LoRA whose file changed since the request was stored). Raises InvalidRequest naming the LoRA, the
    model and what is wrong, before anything loads."""
    if not choices:
        return (), ()
    spec = family.SPEC
    if not spec.lora_loader:
        raise InvalidRequest("loras", f"{spec.label} ({model.name}) cannot take LoRAs: diffusers cannot load LoRAs "
                                      f"into its model; leave loras out")
    found = {info.name: info for info in installed(catalog)}
    if any(choice.name not in found for choice in choices):
        catalog.refresh()  # a LoRA added since the last scan
        found = {info.name: info for info in installed(catalog)}
    resolved, notes = [], []
    for choice in choices:
        info = found.get(choice.name)
        path = info.path if info is not None else _as_path(choice.name, models_dir)
        if path is None:
            close = difflib.get_close_matches(choice.name, list(found), n=3, cutoff=0.5)
            hint = f"close names: {', '.join(close)}" if close else (
                f"installed: {', '.join(found)}" if found else f"none installed; put LoRA files in {models_dir / 'loras'}")
            raise InvalidRequest("loras", f"{choice.name!r} is not installed ({hint})")
        lora, pickled = _read(choice.name, path, allow_pickle)
        try:
            lora_targets = targets(path, spec.lora_loader, allow_pickle=pickled)
        except ValueError as error:
            raise InvalidRequest("loras", f"{choice.name} does not fit {model.name} ({spec.label}): "
                                          f"{first_line(error)}") from None
        mismatch = first_mismatch(lora_targets, model, family)
        if mismatch is not None:
            raise InvalidRequest("loras", f"{choice.name} does not fit {model.name} ({spec.label}): {mismatch}")
        digest = sha256(path)
        if choice.sha256 and choice.sha256 != digest:
            notes.append(f"loras: {choice.name} has changed since these settings were saved (SHA-256 "
                         f"{choice.sha256[:12]}…, now {digest[:12]}…); the result will differ")
        options = getattr(family, "lora_load_options", None)
        resolved.append(ResolvedLora(choice.name, Path(path), choice.strength, digest, lora,
                                     components=tuple(sorted(lora_targets)),
                                     load_options=tuple(options(model, lora)) if options else ({},),
                                     allow_pickle=pickled))
    return tuple(resolved), tuple(notes)


def _as_path(name: str, models_dir: Path) -> Path | None:
    """A LoRA given by path (absolute, or relative to the models dir or its loras folder)."""
    for candidate in (Path(name).expanduser(), models_dir / "loras" / name, models_dir / name):
        for path in (candidate, candidate.with_name(candidate.name + ".safetensors")):
            if path.is_file():
                return path.resolve()
    return None


def _read(name: str, path: Path, allow_pickle: bool) -> tuple[LoraFile, bool]:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise InvalidRequest("loras", f"{name} is a pickle file ({path.suffix}), which can run code when loaded; "
                                          f"use a .safetensors version, or pass {ALLOW_PICKLE_FLAG} if you trust it")
        try:
            state = pickle_state_dict(path)
        except ModelNotFound as error:
            raise InvalidRequest("loras", f"{name}: {error}") from None
        lora = from_header({key: {"shape": list(getattr(value, "shape", []))} for key, value in state.items()},
                           path.stem)
        pickled = True
    elif path.suffix.lower() != ".safetensors":
        raise InvalidRequest("loras", f"{name} is not a LoRA file: expected .safetensors, got {path.name}")
    else:
        try:
            lora = inspect(path)
        except (OSError, ValueError) as error:
            raise InvalidRequest("loras", f"{name} cannot be read ({error}); download it again") from None
        pickled = False
    if lora is None:
        raise InvalidRequest("loras", f"{name} is not a LoRA ({path.name} has no lora_A/lora_B or "
                                      f"lora_down/lora_up tensors); LoRAs go in models/loras")
    return lora, pickled


# ---- applying them to a resident pipeline ---------------------------------------------------------------
@dataclass
class _Adapters:
    loaded: list[str]  # adapter names, least recently used first
    disabled: bool = False
    text_encoder: tuple = ()  # the active (adapter, strength) pairs that change the text encoder


_state: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pipeline -> its _Adapters


def loaded_adapters(pipe) -> list[str]:
    state = _state.get(pipe)
    return list(state.loaded) if state else []


def apply(pipe, loras: tuple[ResolvedLora, ...]) -> None:
    """Make `loras` (and only they) active on `pipe` at their strengths: load the ones it has not loaded yet as
    named adapters, switch with `set_adapters`, delete unused adapters beyond MAX_RESIDENT_ADAPTERS. A LoRA at
    strength 0 is left inactive (the same frames as without it, and no work)."""
    state = _state.get(pipe)
    if state is None:
        if not loras:
            return  # never had one: nothing to switch off
        state = _state[pipe] = _Adapters(loaded=[])
    wanted = [lora.adapter_name for lora in loras]
    for lora in loras:
        if lora.adapter_name in state.loaded:
            state.loaded.remove(lora.adapter_name)
        else:
            _load(pipe, lora)
        state.loaded.append(lora.adapter_name)  # most recently used last
    unused = [name for name in state.loaded if name not in wanted]
    extra = len(state.loaded) - MAX_RESIDENT_ADAPTERS
    if extra > 0 and unused:
        dropped = unused[:extra]
        _delete(pipe, dropped)
        state.loaded = [name for name in state.loaded if name not in dropped]
    active = [(lora.adapter_name, lora.strength) for lora in loras if lora.strength != 0]
    if active:
        if state.disabled:
            pipe.enable_lora()
            state.disabled = False
        pipe.set_adapters([name for name, _ in active], [strength for _, strength in active])
    elif state.loaded and not state.disabled:
        pipe.disable_lora()
        state.disabled = True
    text_encoder = tuple((lora.adapter_name, lora.strength) for lora in loras
                         if lora.strength != 0 and any(part.startswith("text_encoder") for part in lora.components))
    if text_encoder != state.text_encoder:
        state.text_encoder = text_encoder
        _forget_prompt_embeddings(pipe)


def _forget_prompt_embeddings(pipe) -> None:
    """A LoRA that changes the text encoder changes every prompt's embeddings: a family that keeps them per
    pipeline (families/prompts.py) must encode again."""
    from .families import prompts

    prompts.clear(pipe)


def drop_unused(pipe, loras: tuple[ResolvedLora, ...]) -> None:
    """Delete the adapters `loras` do not use (the engine's out-of-memory path: memory is short)."""
    state = _state.get(pipe)
    if state is None:
        return
    keep = {lora.adapter_name for lora in loras}
    unused = [name for name in state.loaded if name not in keep]
    if unused:
        _delete(pipe, unused)
        state.loaded = [name for name in state.loaded if name in keep]


def _delete(pipe, names: list[str]) -> None:
    with warnings.catch_warnings():
        # PEFT warns when a deleted adapter was active and picks another; `apply` sets the active ones right after
        warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
        pipe.delete_adapters(names)


def _load(pipe, lora: ResolvedLora) -> None:
    if not hasattr(pipe, "load_lora_weights"):
        raise GenerationFailed(f"{type(pipe).__name__} cannot load LoRAs")
    source: Any = str(lora.path)
    if lora.allow_pickle:
        source = pickle_state_dict(lora.path)
    try:
        with warnings.catch_warnings():
            # PEFT warns whenever a model gets a second adapter: keeping several is what switching relies on
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            for options in lora.load_options:
                source_for_call = dict(source) if isinstance(source, dict) else source  # diffusers pops from dicts
                pipe.load_lora_weights(source_for_call, adapter_name=lora.adapter_name, **options)
    except (ValueError, KeyError, RuntimeError) as error:
        raise GenerationFailed(f"LoRA {lora.name} could not be loaded into {type(pipe).__name__} "
                               f"({first_line(error)})") from error
    adapters_in_compute_dtype(pipe)


def lora_numel(loras: Iterable[ResolvedLora]) -> int:
    return sum(lora.info.numel for lora in loras)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


__all__ = ["LoraChoice", "LoraFile", "ResolvedLora", "MAX_LORAS", "STRENGTH_RANGE", "from_header", "coerce",
           "check_choices", "parse_flag", "inspect", "resolve", "apply", "installed", "installed_for", "fits"]
