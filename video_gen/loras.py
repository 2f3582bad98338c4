"""LoRAs: what a LoRA file is (from its safetensors header alone), which families take it, and keeping the
chosen ones active on a resident pipeline.

- **Kinds.** A LoRA's tensor names say which architecture it was trained on (`classify`): "sd15" (an SD1.5
  UNet and/or text encoder), "animatediff-motion" (AnimateDiff's motion modules), "wan" (Wan's transformer),
  "ltx" (LTX-Video's transformer), or "sdxl"/"sd2"/"unknown" (recognised as a LoRA, taken by no family). Three
  key styles are read: diffusers/PEFT (`unet.down_blocks.0….to_q.lora_A.weight`), kohya/sd-scripts
  (`lora_unet_down_blocks_0_…_to_q.lora_down.weight` with `.alpha`) and the original-checkpoint style
  (`diffusion_model.blocks.0.self_attn.q.lora_A.weight`). Step-distill LoRAs (lightx2v, Lightning, LCM,
  CausVid) and Wan 2.2's high-noise/low-noise pairs are told by the file's name or its metadata.
- **Families.** Each family's spec lists the kinds it takes (`FamilySpec.lora_kinds`; empty: none, as SVD,
  for which diffusers has no LoRA loader). A family may give a distill LoRA's own defaults (steps, guidance,
  scheduler) with an optional `lora_defaults(model, loras)` function in its module.
- **Applying.** `apply` keeps every LoRA it has loaded into a pipeline as a named PEFT adapter
  (`load_lora_weights(..., adapter_name=...)`), and a job only switches which adapters are active and at what
  strength (`set_adapters`): changing LoRAs never reloads the base model. Adapters beyond
  `MAX_RESIDENT_ADAPTERS` that the job does not use are deleted, least recently used first.

This module imports no torch at import time.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import struct
import threading
import warnings
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidRequest

MAX_LORAS = 8  # at once, per job
STRENGTH_RANGE = (-2.0, 2.0)  # negative strengths invert a LoRA (a "slider" LoRA's other end)
# LoRAs kept loaded on a pipeline beyond those a job uses. Each is its LoRA's own size (SD1.5 LoRAs are
# 10-150 MB, Wan's 100-600 MB), so a handful costs little next to the model and saves a reload when switching back.
MAX_RESIDENT_ADAPTERS = 8
# Folders that hold LoRAs: models/loras here and in ComfyUI, models/Lora in A1111.
LORA_FOLDERS = ("loras", "lora")

SD15, MOTION, WAN, LTX, SDXL, SD2, UNKNOWN = "sd15", "animatediff-motion", "wan", "ltx", "sdxl", "sd2", "unknown"
# Step-distill LoRAs, by the words their files are published under (lightx2v's Wan2.1-T2V-14B-lightx2v,
# ByteDance's AnimateDiff-Lightning and Wan Lightning, AnimateLCM / latent-consistency's lcm-lora, CausVid).
DISTILL_WORDS = ("lightx2v", "lightning", "causvid", "lcm")
_HIGH_NOISE = re.compile(r"high[\W_]?noise|(^|[\W_])hn([\W_]|$)|(^|[\W_])high([\W_]|$)", re.IGNORECASE)
_LOW_NOISE = re.compile(r"low[\W_]?noise|(^|[\W_])ln([\W_]|$)|(^|[\W_])low([\W_]|$)", re.IGNORECASE)

# Tensor names that only LoRA files have (PEFT/diffusers, old diffusers, kohya, LyCORIS-LoCon's lora_* part).
_LORA_TENSOR = re.compile(r"(\.|_)(lora_A|lora_B|lora_down|lora_up|lora\.down|lora\.up|lora_linear_layer)"
                          r"(\.|$)|\.lora\.(down|up)\.")
# What is stripped from the front of a key before its architecture is read.
_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.", "unet.",
             "text_encoder.", "lora_unet_", "lora_te_", "lora_transformer_", "lora_")
_SD_UNET = re.compile(r"^(down_blocks|up_blocks|mid_block|input_blocks|output_blocks|middle_block|conv_in|"
                      r"time_embedding)[._]")
_SD_TEXT = re.compile(r"^(text_model[._]|text_encoder[._]|te_)")
_WAN = re.compile(r"^blocks[._]\d+[._](self_attn|cross_attn|ffn|attn1|attn2|norm|modulation)")
_LTX = re.compile(r"^transformer_blocks[._]\d+[._]")


@dataclass(frozen=True)
class LoraChoice:
    """One LoRA a request asks for: its name (or path), its strength, and the SHA-256 of the file that made a
    stored video (filled in by the engine; a different file then gets a warning)."""

    name: str
    strength: float = 1.0
    sha256: str | None = None


@dataclass(frozen=True)
class LoraFile:
    """What a LoRA file holds, read from its header."""

    kind: str  # sd15, animatediff-motion, wan, ltx, sdxl, sd2 or unknown
    style: str  # diffusers (PEFT/diffusers names), kohya, or original (a checkpoint's own names)
    parts: tuple[str, ...]  # what it changes: unet, text_encoder, transformer
    numel: int  # its parameters (the memory estimator counts them)
    distill: str | None = None  # lightx2v, lightning, causvid or lcm: a step-distill LoRA
    noise: str | None = None  # Wan 2.2: "high" or "low" (which of the two transformers it is for)

    def describe(self) -> str:
        extra = [f"{self.distill} step-distill"] if self.distill else []
        extra += [f"{self.noise}-noise"] if self.noise else []
        return self.kind + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class ResolvedLora:
    """A request's LoRA found on disk and checked for the model's family: what `apply` loads."""

    name: str
    path: Path
    strength: float
    sha256: str
    info: LoraFile
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
        return {"name": self.name, "strength": self.strength, "sha256": self.sha256, "kind": self.info.kind,
                "distill": self.info.distill, "file": self.path.name}


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
    choices = []
    for entry in value:
        if isinstance(entry, LoraChoice):
            choices.append(entry)
        elif isinstance(entry, str):
            choices.append(parse_flag(entry))
        elif isinstance(entry, dict):
            unknown = set(entry) - {"name", "strength", "sha256"}
            if unknown:
                raise InvalidRequest("loras", f"unknown key {sorted(unknown)[0]!r} in {entry!r}; "
                                              f"allowed: name, strength, sha256")
            name, strength, sha = entry.get("name"), entry.get("strength"), entry.get("sha256")
            if not isinstance(name, str) or not name.strip():
                raise InvalidRequest("loras", f"each LoRA needs a name (text), got {entry!r}")
            strength = 1.0 if strength is None else _number(strength)  # left out or null: full strength
            if strength is None:
                raise InvalidRequest("loras", f"strength of {name!r} must be a number from {_num(STRENGTH_RANGE[0])} "
                                              f"to {_num(STRENGTH_RANGE[1])}, got {entry.get('strength')!r}")
            if sha is not None and not isinstance(sha, str):
                raise InvalidRequest("loras", f"sha256 of {name!r} must be text, got {sha!r}")
            choices.append(LoraChoice(name.strip(), strength, sha))
        else:
            raise InvalidRequest("loras", f'each LoRA must be {{"name": ..., "strength": ...}}, got {entry!r}')
    return tuple(choices)


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
        raise InvalidRequest("loras", f"must be a tuple of LoraChoice, got {choices!r}")
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


def classify(header: dict[str, Any], name: str = "", metadata: dict[str, str] | None = None) -> LoraFile | None:
    """A LoRA's kind from its tensor names (and shapes), or None when the header is not a LoRA's."""
    keys = [key for key in header if key != "__metadata__"]
    if not is_lora(keys):
        return None
    style = "kohya" if any(key.startswith("lora_") or ".lora_down." in key for key in keys) else (
        "original" if any(key.startswith(("diffusion_model.", "model.diffusion_model.")) for key in keys)
        else "diffusers")
    stripped = [_strip(key) for key in keys]
    parts = set()
    for key, rest in zip(keys, stripped):
        if key.startswith(("text_encoder", "lora_te", "te_")) or _SD_TEXT.match(rest):
            parts.add("text_encoder")
        elif _WAN.match(rest) or _LTX.match(rest):
            parts.add("transformer")
        else:
            parts.add("unet")
    if any("motion_modules" in key for key in keys):
        kind = MOTION
    elif any(_LTX.match(rest) for rest in stripped):
        kind = LTX
    elif any(_WAN.match(rest) for rest in stripped):
        kind = WAN
    elif any(key.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for key in keys) or any(
            "add_embedding" in key or "label_emb" in key for key in keys):
        kind = SDXL
    elif any(_SD_UNET.match(rest) or _SD_TEXT.match(rest) for rest in stripped):
        kind = _sd_kind(header, keys)
    else:
        kind = UNKNOWN
    numel = sum(_count(entry) for key, entry in header.items() if key != "__metadata__")
    words = " ".join([name, *(f"{key} {value}" for key, value in (metadata or {}).items()
                              if key.lower() in ("ss_output_name", "name", "modelspec.title", "description",
                                                 "ss_training_comment", "modelspec.description"))]).lower()
    distill = next((word for word in DISTILL_WORDS if word in words), None)
    noise = None
    if kind == WAN:
        noise = "high" if _HIGH_NOISE.search(name) else "low" if _LOW_NOISE.search(name) else None
    return LoraFile(kind=kind, style=style, parts=tuple(sorted(parts)), numel=numel, distill=distill, noise=noise)


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _sd_kind(header: dict, keys: list[str]) -> str:
    """SD1.5 or SD2 by the cross-attention's input width (the text encoder's: 768 SD1.5, 1024 SD2, 2048 SDXL);
    a width none of them has (a tiny test model) is taken as SD1.5's layout."""
    for key in keys:
        if re.search(r"attn2[._]to_k[._].*(lora_A|lora_down|lora\.down)", key):
            shape = header[key].get("shape", []) if isinstance(header[key], dict) else []
            width = shape[1] if len(shape) > 1 else None
            return {1024: SD2, 2048: SDXL}.get(width, SD15)
    return SD15


def _count(entry: Any) -> int:
    if not isinstance(entry, dict):
        return 0
    count = 1
    for side in entry.get("shape", []):
        count *= side
    return count


_inspected: dict[tuple, LoraFile | None] = {}
_hashes: dict[tuple, str] = {}
_cache_lock = threading.Lock()


def inspect(path: Path) -> LoraFile | None:
    """A .safetensors file's LoRA kind (None: not a LoRA), read once per version of the file. Raises ValueError
    naming the file when it is damaged or truncated."""
    from .models import read_safetensors_header

    path = Path(path)
    status = path.stat()
    key = (str(path.resolve()), status.st_size, status.st_mtime_ns)
    with _cache_lock:
        if key in _inspected:
            return _inspected[key]
    header = read_safetensors_header(path)
    _check_complete(path, header, status.st_size)
    found = classify(header, path.stem, read_metadata(path))
    with _cache_lock:
        _inspected[key] = found
    return found


def _check_complete(path: Path, header: dict, size: int) -> None:
    """A file cut short after its header (an interrupted download) holds fewer bytes than its tensors need."""
    ends = [entry["data_offsets"][1] for entry in header.values()
            if isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2]
    with open(path, "rb") as file:
        length = struct.unpack("<Q", file.read(8))[0]
    if ends and 8 + length + max(ends) > size:
        raise ValueError(f"{path.name} is truncated ({size} bytes, its header needs {8 + length + max(ends)})")


def read_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file (kohya writes the training settings there)."""
    try:
        with open(path, "rb") as file:
            length = struct.unpack("<Q", file.read(8))[0]
            header = json.loads(file.read(length))
    except (OSError, ValueError, struct.error):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(key): str(value) for key, value in metadata.items()} if isinstance(metadata, dict) else {}


def sha256(path: Path) -> str:
    """A LoRA file's SHA-256, computed once per version of the file (size and mtime)."""
    from .models import file_sha256

    status = Path(path).stat()
    key = (str(Path(path).resolve()), status.st_size, status.st_mtime_ns)
    with _cache_lock:
        known = _hashes.get(key)
    if known is None:
        known = file_sha256(path)
        with _cache_lock:
            _hashes[key] = known
    return known


# ---- which families take a kind --------------------------------------------------------------------------
def families_for(kind: str) -> list:
    """The specs of the families that take LoRAs of `kind`."""
    from .families import specs

    return [spec for spec in specs() if kind in spec.lora_kinds]


def fits(kind: str) -> str:
    """The families a kind fits, for people ("AnimateDiff"), or "no family here"."""
    return ", ".join(spec.label for spec in families_for(kind)) or "no family here"


# ---- finding them ---------------------------------------------------------------------------------------
def installed(catalog) -> list:
    """The LoRAs a catalog found (ModelInfo rows with role LORA), in discovery order."""
    from .families.spec import LORA

    return [info for info in catalog.entries() if info.role == LORA]


def installed_for(catalog, spec) -> list[str]:
    """The names of the installed LoRAs that `spec`'s family takes (the page's choices)."""
    names = []
    for info in installed(catalog):
        if info.class_name == "LoRA" and info.note.split(" ")[0] in spec.lora_kinds:
            names.append(info.name)
    return names


def resolve(choices: tuple[LoraChoice, ...], catalog, spec, *, model_name: str, models_dir: Path,
            allow_pickle: bool = False) -> tuple[tuple[ResolvedLora, ...], tuple[str, ...]]:
    """The request's LoRAs found, read and checked for `spec`'s family, and one-line notes (a LoRA whose file
    changed since the request was stored). Raises InvalidRequest naming the LoRA and what is allowed."""
    if not choices:
        return (), ()
    if not spec.lora_kinds:
        raise InvalidRequest("loras", f"{spec.label} ({model_name}) cannot take LoRAs: diffusers cannot load LoRAs "
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
        if lora.kind not in spec.lora_kinds:
            raise InvalidRequest("loras", f"{choice.name} is a {lora.kind} LoRA (for {fits(lora.kind)}), but "
                                          f"{model_name} is {spec.label}, which takes "
                                          f"{' or '.join(sorted(spec.lora_kinds))} LoRAs")
        digest = sha256(path)
        if choice.sha256 and choice.sha256 != digest:
            notes.append(f"loras: {choice.name} has changed since these settings were saved (SHA-256 "
                         f"{choice.sha256[:12]}…, now {digest[:12]}…); the result will differ")
        resolved.append(ResolvedLora(choice.name, Path(path), choice.strength, digest, lora, pickled))
    return tuple(resolved), tuple(notes)


def _as_path(name: str, models_dir: Path) -> Path | None:
    """A LoRA given by path (absolute, or relative to the models dir or its loras folder)."""
    for candidate in (Path(name).expanduser(), models_dir / "loras" / name, models_dir / name):
        for path in (candidate, candidate.with_name(candidate.name + ".safetensors")):
            if path.is_file():
                return path.resolve()
    return None


def _read(name: str, path: Path, allow_pickle: bool) -> tuple[LoraFile, bool]:
    from .models import ALLOW_PICKLE_FLAG, PICKLE_SUFFIXES, _pickle_state_dict
    from .errors import ModelNotFound

    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise InvalidRequest("loras", f"{name} is a pickle file ({path.suffix}), which can run code when loaded; "
                                          f"use a .safetensors version, or pass {ALLOW_PICKLE_FLAG} if you trust it")
        try:
            state = _pickle_state_dict(path)
        except ModelNotFound as error:
            raise InvalidRequest("loras", f"{name}: {error}") from None
        header = {key: {"shape": list(getattr(value, "shape", []))} for key, value in state.items()}
        lora = classify(header, path.stem)
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
                         if lora.strength != 0 and "text_encoder" in lora.info.parts)
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
    from .errors import GenerationFailed, first_line

    if not hasattr(pipe, "load_lora_weights"):
        raise GenerationFailed(f"{type(pipe).__name__} cannot load LoRAs")
    source: Any = str(lora.path)
    if lora.allow_pickle:
        from .models import _pickle_state_dict

        source = _pickle_state_dict(lora.path)
    # Wan 2.2 runs two transformers (high noise first, then low noise): a pair's low-noise half goes to the
    # second, its high-noise half to the first, and any other LoRA to both (as Wan2GP and ComfyUI apply them)
    calls = [{}]
    if getattr(pipe, "transformer_2", None) is not None:
        calls = {"low": [{"load_into_transformer_2": True}], "high": [{}]}.get(
            lora.info.noise, [{}, {"load_into_transformer_2": True}])
    try:
        with warnings.catch_warnings():
            # PEFT warns whenever a model gets a second adapter: keeping several is what switching relies on
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            for options in calls:
                source_for_call = dict(source) if isinstance(source, dict) else source  # diffusers pops from dicts
                pipe.load_lora_weights(source_for_call, adapter_name=lora.adapter_name, **options)
    except (ValueError, KeyError, RuntimeError) as error:
        raise GenerationFailed(f"LoRA {lora.name} could not be loaded into {type(pipe).__name__} "
                               f"({first_line(error)})") from error


def lora_numel(loras: Iterable[ResolvedLora]) -> int:
    return sum(lora.info.numel for lora in loras)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def describe_entry(info) -> tuple[str, str]:
    """(families it fits, what it is) of a discovered LoRA, for `video-gen models list`."""
    kind = info.note.split(" ")[0] if info.note else UNKNOWN
    if info.class_name == "pickle":
        return "-", f"lora ({info.note})"
    return ",".join(spec.name for spec in families_for(kind)) or "-", f"lora ({info.note})"


__all__ = ["LoraChoice", "LoraFile", "ResolvedLora", "MAX_LORAS", "STRENGTH_RANGE", "classify", "coerce",
           "check_choices", "parse_flag", "inspect", "resolve", "apply", "installed", "installed_for", "fits"]
