"""Finding models on disk and telling which family each one is, by reading JSON only (no weights).

Three kinds of places are searched (`discover`):
- the models folder: diffusers folders (`model_index.json`), motion adapter folders (`config.json` of a
  `MotionAdapter`) and single files directly inside it;
- the Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`): the
  snapshot of each `models--ORG--NAME` repository, named `ORG/NAME`;
- extra folders the user names (`--extra-models-dir`), searched a few levels deep, so that a ComfyUI or
  A1111 tree (`models/checkpoints`, `models/animatediff_models`, `models/svd`, `models/Stable-diffusion`)
  works as it is.
A single file is told apart by the names of the tensors in its safetensors header (the first bytes of
the file), never by loading it. Pickle files (`.ckpt`, `.pt`, `.bin`) can run code when loaded, so they
are listed but refused unless the user opts in (`--allow-pickle`), and then loaded with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ModelNotFound, first_line
# Roles: a "model" runs on its own; a "motion-adapter" is the motion part of AnimateDiff, used with an SD1.5
# base; "unsupported" is recognised but cannot run here (the note says why).
from .families.spec import LORA, MODEL, MOTION_ADAPTER, PARTS, UNSUPPORTED

HOW_TO_GET = "see models/README.md for the folder layout and how to download one"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin", ".gguf")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".bin")
ALLOW_PICKLE_FLAG = "--allow-pickle"
PICKLE_REFUSED = (
    "is a pickle file ({suffix}): loading a pickle can run any code hidden in it, so only .safetensors "
    "files and diffusers folders of .safetensors load by default. If you trust where it came from, pass "
    f"{ALLOW_PICKLE_FLAG} (it is then read with torch.load(weights_only=True), which refuses code), or "
    "better, use a .safetensors version of it"
)


# The largest safetensors header we read: real ones are well under 1 MB (SD1.5's is ~90 kB).
MAX_HEADER_BYTES = 64 * 2**20
# How deep an extra folder is searched: ComfyUI/models/checkpoints/sub/file.safetensors is 4 levels.
EXTRA_DIR_DEPTH = 4
# Parts of an SD1.5 folder that video-gen never loads (`models download sd15` leaves them out).
OPTIONAL_PARTS = ("safety_checker", "feature_extractor")
SAFETENSORS_PRECISION = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F64": "fp64"}


@dataclass(frozen=True)
class ModelInfo:
    name: str  # what the user types: the folder name under the models dir, the file's stem, or ORG/NAME
    path: Path
    family: str  # a module name under video_gen.families, e.g. "svd"
    class_name: str  # the pipeline class from model_index.json (or what a single file holds)
    # AnimateDiff only: the motion adapter (a folder or a single file) that goes with this SD1.5 base.
    motion_adapter: Path | None = None
    # Single-file SD1.5 checkpoints only: the folder of configs to build the pipeline from, chosen without
    # the network (`sd15_config_dir`): the configs shipped with video-gen, or an installed SD1.5 folder's.
    config_dir: Path | None = None
    # LTX-Video only: an installed latent upsampler folder (`LTXLatentUpsamplerModel`) for two-stage output.
    upsampler: Path | None = None
    # Set only when the user opted in to loading pickle files (`--allow-pickle`).
    allow_pickle: bool = False
    # A single file that holds one part of a model (a GGUF transformer): which part; the rest comes from
    # config_dir, an installed diffusers folder of the same architecture (families/single_file.py).
    component: str = ""
    # Wan 2.2 A14B as two files: the low-noise expert's file beside the high-noise one (`path`).
    transformer_2: Path | None = None
    role: str = field(default=MODEL, compare=False)
    precision: str = field(default="", compare=False)  # fp16, fp32, "fp16+fp32" for folders with both
    size_bytes: int = field(default=0, compare=False)
    source: str = field(default="models", compare=False)  # models, hf-cache, or the extra folder
    note: str = field(default="", compare=False)

    @property
    def single_file(self) -> bool:
        return self.path.is_file()

    def read_config(self, component: str) -> dict:
        """A component's config.json (for example the UNet's), read without loading any weights."""
        for name in ("config.json", "scheduler_config.json", "preprocessor_config.json"):
            file = self.path / component / name
            if file.is_file():
                return json.loads(file.read_text())
        raise ModelNotFound(f"{self.path} has no {component}/config.json; the folder is incomplete ({HOW_TO_GET})")


def default_models_dir() -> Path:
    return Path(os.environ.get("VIDEO_GEN_MODELS_DIR") or "models")


def hf_hub_cache() -> Path:
    """Where huggingface_hub keeps downloads, by its own rules (HF_HUB_CACHE, then HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


# ---- reading what a folder or a file is ------------------------------------------------------
def inspect_folder(path: Path, name: str | None = None) -> ModelInfo:
    """Read a diffusers folder's model_index.json, check its parts exist, and name its family."""
    from .families import family_for_class, part_for_class  # the registry imports no torch

    index_file = path / "model_index.json"
    if not index_file.is_file():
        if _motion_adapter_config(path) is not None:
            return _adapter_info(path, name or path.name)
        raise ModelNotFound(
            f"{path} is not a diffusers model folder: expected {index_file.name} with one subfolder per part "
            f"(unet/, vae/, image_encoder/, …); {HOW_TO_GET}"
        )
    try:
        index = json.loads(index_file.read_text())
        class_name = index["_class_name"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ModelNotFound(f"{index_file} is damaged ({error}); download the model again ({HOW_TO_GET})") from None
    family, role = family_for_class(class_name), MODEL
    if family is None and part_for_class(class_name) is not None:
        family, role = part_for_class(class_name)  # a part for a family's models (LTX's latent upsampler)
    if family is None:
        raise ModelNotFound(f"{path} holds a {class_name}, which this app cannot run yet")
    missing = [
        part for part, spec in index.items()
        if not part.startswith("_") and isinstance(spec, list) and spec[0] is not None and not (path / part).is_dir()
        and part not in OPTIONAL_PARTS
    ]
    if missing:
        raise ModelNotFound(
            f"{path} is incomplete: missing {', '.join(part + '/' for part in missing)}; "
            f"download the model again ({HOW_TO_GET})"
        )
    own_adapter = path / "motion_adapter" if (path / "motion_adapter").is_dir() else None
    from .demo import DEMO_NOTE, is_demo  # the demo model is labelled wherever models are listed

    note = DEMO_NOTE if is_demo(path) else ""
    if role == MODEL and _denoiser_is_config_only(path, index):
        role, note = PARTS, PARTS_NOTE
    return ModelInfo(name=name or path.name, path=path, family=family, class_name=class_name,
                     motion_adapter=own_adapter, precision=_folder_precision(path), size_bytes=_size(path), role=role,
                     note=note)


PARTS_NOTE = ("the text encoder, VAE and configs without transformer weights; choose a transformer file (GGUF) "
              "beside it with --model")
DENOISER_PARTS = ("transformer", "transformer_2", "unet")


def _denoiser_is_config_only(path: Path, index: dict) -> bool:
    """Whether the folder's transformer (or UNet) has its config.json but no weights: the other parts for GGUF
    transformer files (`models download …-gguf` fetches a folder so)."""
    parts = [part for part in DENOISER_PARTS if isinstance(index.get(part), list) and index[part][0] is not None]
    return bool(parts) and all(
        (path / part / "config.json").is_file()
        and not any(file.suffix.lower() in SINGLE_FILE_SUFFIXES for file in (path / part).iterdir())
        for part in parts)


def read_safetensors_header(path: str | os.PathLike) -> dict:
    """The JSON header of a .safetensors file (tensor names, dtypes, shapes; 8 bytes of length, then JSON),
    without its `__metadata__`; reads a few KB. Raises ValueError naming the file when it is not a complete
    safetensors file, or is truncated or damaged. The one reader for discovery and the memory estimator."""
    name = Path(path).name
    with open(path, "rb") as file:
        prefix = file.read(8)
        length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 2 <= length <= MAX_HEADER_BYTES:
            raise ValueError(f"{name} is not a complete .safetensors file")
        text = file.read(length)
    if len(text) < length:
        raise ValueError(f"{name} is truncated")
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{name} has a damaged header") from None
    if not isinstance(header, dict):
        raise ValueError(f"{name} has a damaged header")
    header.pop("__metadata__", None)
    return header


# Layouts that no family runs, recognised so that `models list` can say what a file is.
_NOT_SUPPORTED = (
    ("sdxl", "an SDXL checkpoint", 10, lambda keys: any(key.startswith("conditioner.embedders.") for key in keys)),
    ("sd2", "an SD 2.x checkpoint", 20,  # the OpenCLIP text encoder
     lambda keys: any(key.startswith("model.diffusion_model.input_blocks.") for key in keys)
     and any(key.startswith("cond_stage_model.model.") for key in keys)),
)


def _single_file_kinds():
    """Every (kind, priority, matches, what it means) known: the families' single files, then the rest."""
    from .families import specs
    from .families.spec import SingleFile

    kinds = [(single.priority, single.kind, single.matches, (spec.name, single)) for spec in specs()
             for single in spec.single_files]
    kinds += [(priority, kind, matches, ("", SingleFile(kind, kind, matches, role=UNSUPPORTED,
                                                          note=f"{label}: not supported")))
              for kind, label, priority, matches in _NOT_SUPPORTED]
    return sorted(kinds, key=lambda entry: entry[0])


def _classify(keys) -> tuple[str, object] | None:
    """(family, SingleFile) of a single file from its tensor names, or None when nothing knows it."""
    keys = list(keys)
    for _, _, matches, found in _single_file_kinds():
        if matches(keys):
            return found
    return None


def classify_checkpoint(keys) -> str:
    """What a single file holds, from its tensor names: a kind a family declares (sd15, svd, motion-adapter, …),
    sdxl, sd2 or unknown."""
    found = _classify(keys)
    return found[1].kind if found else "unknown"


def inspect_file(path: Path, name: str | None = None, allow_pickle: bool = False) -> ModelInfo:
    """A single file, told apart by its header; pickle files are named but not opened."""
    name = name or path.stem
    size = path.stat().st_size
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if _in_lora_folder(path):  # a pickled LoRA: what it holds is read only with --allow-pickle
            return ModelInfo(name=name, path=path, family="", class_name="pickle", role=LORA, size_bytes=size,
                             note=f"pickle file: refused unless {ALLOW_PICKLE_FLAG}", allow_pickle=allow_pickle)
        return ModelInfo(name=name, path=path, family="", class_name="pickle", role=UNSUPPORTED, size_bytes=size,
                         note=f"pickle file: refused unless {ALLOW_PICKLE_FLAG}", allow_pickle=allow_pickle)
    if suffix == ".gguf":
        return _inspect_gguf(path, name, size)
    try:
        header = read_safetensors_header(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        return ModelInfo(name=name, path=path, family="", class_name="damaged", role=UNSUPPORTED, size_bytes=size,
                         note=f"not a readable single-file checkpoint (.safetensors: {error})")
    common = dict(name=name, path=path, precision=_header_precision(header), size_bytes=size)
    lora = _lora_kind(path, header)  # asked first: a motion LoRA's tensor names contain a motion adapter's
    if lora is not None:
        return ModelInfo(family="", class_name="LoRA", role=LORA, note=lora.describe(), **common)
    found = _classify(header)
    if found is None:
        return ModelInfo(family="", class_name="unknown", role=UNSUPPORTED, note="not a known checkpoint: not supported",
                         **common)
    family, single = found
    return _as_family_sees_it(ModelInfo(family=family, class_name=single.class_name, role=single.role,
                                        note=single.note, **common))


def _inspect_gguf(path: Path, name: str, size: int) -> ModelInfo:
    """A GGUF file, told apart by its tensor names like a .safetensors (the family's `SingleFile` entries); its
    quantisation is its precision ("gguf Q4_K") and its `general.architecture` is named in the note."""
    from .families.single_file import read_gguf

    try:
        gguf = read_gguf(path)
    except (OSError, ValueError) as error:
        return ModelInfo(name=name, path=path, family="", class_name="damaged", role=UNSUPPORTED, size_bytes=size,
                         note=f"not a readable GGUF file ({first_line(error)})")
    common = dict(name=name, path=path, precision=f"gguf {gguf.quant}".strip(), size_bytes=size)
    found = _classify(gguf.shapes)
    architecture = gguf.architecture or "an unknown architecture"
    if found is None:
        return ModelInfo(family="", class_name="unknown", role=UNSUPPORTED,
                         note=f"a GGUF of {architecture}, which no family here runs: not supported", **common)
    family, single = found
    note = single.note or f"GGUF {gguf.quant} transformer ({architecture}); runs with an installed {family} folder"
    return _as_family_sees_it(ModelInfo(family=family, class_name=single.class_name, role=single.role, note=note,
                                        **common))


def _as_family_sees_it(info: ModelInfo) -> ModelInfo:
    """A single file as its family describes it, where the file's neighbours matter (a family's optional
    `describe_file`: Wan 2.2's low-noise expert beside its high-noise twin is part of that model, not one)."""
    from .families import load_family

    if not info.family:  # recognised, but of no family here (an SDXL checkpoint)
        return info
    describe = getattr(load_family(info.family), "describe_file", None)
    return describe(info) if describe is not None else info


def _in_lora_folder(path: Path) -> bool:
    from .loras import LORA_FOLDERS

    return path.parent.name.lower() in LORA_FOLDERS


def _lora_kind(path: Path, header: dict):
    """A LoRA's `loras.LoraFile`, or None when the file is not a LoRA."""
    from .loras import classify, read_metadata

    return classify(header, path.stem, read_metadata(path))


def _motion_adapter_config(path: Path) -> dict | None:
    config_file = path / "config.json"
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return config if isinstance(config, dict) and config.get("_class_name") == "MotionAdapter" else None


def _adapter_info(path: Path, name: str) -> ModelInfo:
    return ModelInfo(name=name, path=path, family=_adapter_family(), class_name="MotionAdapter", role=MOTION_ADAPTER,
                     precision=_folder_precision(path), size_bytes=_size(path))


def _adapter_family() -> str:
    """The family whose single files include motion adapters (AnimateDiff): adapter folders belong to it."""
    from .families import specs

    return next((spec.name for spec in specs() for single in spec.single_files if single.role == MOTION_ADAPTER), "")


def _header_precision(header: dict) -> str:
    counts: dict[str, int] = {}
    for entry in header.values():
        if isinstance(entry, dict) and "dtype" in entry:
            count = 1
            for side in entry.get("shape", []):
                count *= side
            counts[entry["dtype"]] = counts.get(entry["dtype"], 0) + count
    if not counts:
        return ""
    dtype = max(counts, key=counts.get)
    return SAFETENSORS_PRECISION.get(dtype, dtype.lower())


def _folder_precision(path: Path) -> str:
    files = [file.name for file in path.rglob("*.safetensors")]
    has_fp16 = any(".fp16." in name for name in files)
    plain = [file for file in path.rglob("*.safetensors") if ".fp16." not in file.name]
    found = []
    if has_fp16:
        found.append("fp16")
    if plain:
        try:
            found.append(_header_precision(read_safetensors_header(max(plain, key=lambda f: f.stat().st_size))))
        except (OSError, ValueError, UnicodeDecodeError):
            found.append("?")
    if not files and any(path.rglob("*.bin")):
        found.append("pickle")
    return "+".join(dict.fromkeys(found))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


# ---- discovery -----------------------------------------------------------------------------
def _scan_entry(path: Path, name: str, source: str) -> ModelInfo | None:
    """One folder or file as a model, or None when it is neither (broken folders are skipped here)."""
    try:
        if path.is_dir():
            if (path / "model_index.json").is_file() or _motion_adapter_config(path) is not None:
                return replace(inspect_folder(path, name=name), source=source)
            return None
        if path.is_file() and path.suffix.lower() in SINGLE_FILE_SUFFIXES:
            return replace(inspect_file(path, name=name), source=source)
    except (ModelNotFound, OSError):
        return None  # a broken folder is reported when asked for by name, not in the list
    return None


def _scan_models_dir(models_dir: Path) -> list[ModelInfo]:
    if not models_dir.is_dir():
        return []
    found = []
    for child in sorted(models_dir.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir() and child.name.lower() in ("loras", "lora"):  # models/loras: LoRAs (loras.py)
            found.extend(_scan_tree(child, "models", depth=2))
            continue
        name = child.name if child.is_dir() else child.stem
        info = _scan_entry(child, name, "models")
        if info is not None:
            found.append(info)
    return found


def _scan_tree(root: Path, source: str, depth: int = EXTRA_DIR_DEPTH) -> list[ModelInfo]:
    """Diffusers folders and single files anywhere under `root` (not inside a found model folder)."""
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or child.name in ("custom_nodes", "venv", ".venv", "__pycache__", "node_modules"):
            continue
        info = _scan_entry(child, child.name if child.is_dir() else child.stem, source)
        if info is not None:
            found.append(info)
        elif child.is_dir() and depth > 1:
            found.extend(_scan_tree(child, source, depth - 1))
    return found


def _scan_hf_cache(hub: Path) -> list[ModelInfo]:
    """Each `models--ORG--NAME` repository's current snapshot, named ORG/NAME."""
    if not hub.is_dir():
        return []
    found = []
    for repo in sorted(hub.glob("models--*")):
        snapshot = _current_snapshot(repo)
        if snapshot is None:
            continue
        repo_name = repo.name.removeprefix("models--").replace("--", "/")
        info = _scan_entry(snapshot, repo_name, "hf-cache")
        if info is not None:
            found.append(info)
            continue
        # A repository of single files (community checkpoints, AnimateDiff's own motion modules).
        for file in sorted(snapshot.rglob("*")):
            if file.suffix.lower() in SINGLE_FILE_SUFFIXES:
                info = _scan_entry(file, f"{repo_name}/{file.relative_to(snapshot).with_suffix('')}", "hf-cache")
                if info is not None and info.class_name not in ("unknown", "damaged", "pickle"):
                    found.append(info)
    return found


def _current_snapshot(repo: Path) -> Path | None:
    snapshots = repo / "snapshots"
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip()
        if candidate.is_dir():
            return candidate
    if not snapshots.is_dir():
        return None
    revisions = [path for path in snapshots.iterdir() if path.is_dir()]
    return max(revisions, key=lambda path: path.stat().st_mtime) if revisions else None


def discover(models_dir: str | os.PathLike, extra_dirs=(), hf_cache: bool = True) -> list[ModelInfo]:
    """Everything recognisable: the models folder, then the extra folders, then the Hugging Face cache."""
    found = _scan_models_dir(Path(models_dir))
    for extra in extra_dirs:
        found.extend(_scan_tree(Path(extra).expanduser(), source=str(extra)))
    if hf_cache:
        found.extend(_scan_hf_cache(hf_hub_cache()))
    return found


def list_models(models_dir: str | os.PathLike, extra_dirs=()) -> list[ModelInfo]:
    """Every model that can run (not motion adapters or unsupported files): what the page's dropdown shows."""
    return [info for info in discover(models_dir, extra_dirs) if info.role == MODEL]


def list_motion_adapters(models_dir: str | os.PathLike, extra_dirs=()) -> list[ModelInfo]:
    return [info for info in discover(models_dir, extra_dirs) if info.role == MOTION_ADAPTER]


class Catalog:
    """What `discover` found in a set of places, kept until `refresh` (InvokeAI's model records: a model is
    looked up once per job, not scanned for on every call). `resolve` rescans once when a name is not found,
    so a model added while the app runs is found by its name without a Refresh. Safe to share between threads.
    """

    def __init__(self, models_dir: str | os.PathLike, extra_dirs=()):
        self.models_dir = Path(models_dir)
        self.extra_dirs = tuple(Path(folder) for folder in extra_dirs)
        self._lock = threading.Lock()
        self._entries: list[ModelInfo] | None = None
        self.scans = 0  # how many times the places were scanned (tests and the benchmark read it)

    def entries(self) -> list[ModelInfo]:
        with self._lock:
            if self._entries is None:
                self._entries = discover(self.models_dir, self.extra_dirs)
                self.scans += 1
            return list(self._entries)

    def refresh(self) -> list[ModelInfo]:
        with self._lock:
            self._entries = None
        return self.entries()

    def models(self) -> list[ModelInfo]:
        """The runnable models (what the page's dropdown shows)."""
        return [info for info in self.entries() if info.role == MODEL]

    def find(self, name: str) -> ModelInfo | None:
        return next((info for info in self.entries() if info.name == name), None)

    def resolve(self, name_or_path: str | None, *, motion_adapter: str | None = None,
                allow_pickle: bool = False) -> ModelInfo:
        """`resolve_model` over this catalog. A name it does not know, or no name when it does not hold exactly
        one model, rescans once first."""
        if (self.find(name_or_path) is None) if name_or_path else (len(self.models()) != 1):
            self.refresh()  # a model added (or removed) since the last scan
        return _resolve(name_or_path, self.models_dir, self.entries(), motion_adapter=motion_adapter,
                        allow_pickle=allow_pickle)


# ---- resolving what the user asked for ------------------------------------------------------------
def resolve_model(name_or_path: str | None, models_dir: str | os.PathLike, extra_dirs=(), *,
                  motion_adapter: str | None = None, allow_pickle: bool = False) -> ModelInfo:
    """Turn `--model` into a model: a name from `models list`, a path to a folder or file, or the only one.

    A family that needs more than the model itself gets it here (its `complete_model`: AnimateDiff picks its
    motion adapter), so that a request is complete before anything loads.
    """
    return _resolve(name_or_path, Path(models_dir), discover(models_dir, extra_dirs), motion_adapter=motion_adapter,
                    allow_pickle=allow_pickle)


def _resolve(name_or_path: str | None, models_dir: Path, everything: list[ModelInfo], *,
             motion_adapter: str | None, allow_pickle: bool) -> ModelInfo:
    from .families import load_family

    runnable = [info for info in everything if info.role == MODEL]
    if not name_or_path:
        if len(runnable) == 1:
            info = runnable[0]
        elif not runnable:
            from .console import command

            raise ModelNotFound(f"no model installed in {models_dir.resolve()}; {HOW_TO_GET} (or try everything "
                                f"with a tiny demo model that makes noise: `{command('models demo')}`)")
        else:
            names = ", ".join(model.name for model in runnable)
            raise ModelNotFound(f"several models are installed ({names}); choose one with --model")
    else:
        info = next((model for model in everything if model.name == name_or_path), None)
        if info is None:
            info = _resolve_path(name_or_path, models_dir, runnable, allow_pickle)
    if info.role == LORA:
        raise ModelNotFound(f"{info.name} is a LoRA, not a model: choose a model with --model and this LoRA "
                            f"with --lora {info.name}")
    if info.role == MOTION_ADAPTER:
        raise ModelNotFound(
            f"{info.name} is an AnimateDiff motion adapter, not a model on its own: choose an SD1.5 base with "
            f"--model and this adapter with --motion-adapter {info.name}"
        )
    if info.role == PARTS:
        raise ModelNotFound(f"{info.name} is not a model on its own: it holds {info.note}")
    if info.role not in (MODEL, MOTION_ADAPTER, UNSUPPORTED):
        raise ModelNotFound(f"{info.name} is {_article(info.role)} {info.role} ({info.class_name}) that goes with "
                            f"{info.family} models, not a model on its own; choose one of those with --model")
    if info.role == UNSUPPORTED:
        if info.class_name == "pickle":
            if not allow_pickle:
                raise ModelNotFound(f"{info.path} " + PICKLE_REFUSED.format(suffix=info.path.suffix))
            info = _inspect_pickle(info)
        else:
            raise ModelNotFound(f"{info.path}: {info.note}; {HOW_TO_GET}")
    if allow_pickle:
        info = replace(info, allow_pickle=True)
    elif info.path.is_dir() and _only_pickle_weights(info.path):
        raise ModelNotFound(f"{info.path} holds only .bin weights, which " + PICKLE_REFUSED.format(suffix=".bin"))
    complete = getattr(load_family(info.family), "complete_model", None)
    if complete is not None:
        info = complete(info, everything, motion_adapter=motion_adapter, models_dir=models_dir,
                        allow_pickle=allow_pickle)
    return info


def _resolve_path(name_or_path: str, models_dir: Path, runnable: list[ModelInfo], allow_pickle: bool) -> ModelInfo:
    candidate = models_dir / name_or_path
    if os.sep not in name_or_path and "/" not in name_or_path and candidate.exists():
        path = candidate
    else:
        path = Path(name_or_path).expanduser()
    if path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise ModelNotFound(f"{path} is not a model: expected a diffusers folder or a .safetensors file "
                                f"({HOW_TO_GET})")
        return inspect_file(path.resolve(), name=path.stem, allow_pickle=allow_pickle)
    if path.is_dir():
        return inspect_folder(path.resolve(), name=path.name)
    installed = ", ".join(model.name for model in runnable) or "none"
    raise ModelNotFound(f"{name_or_path!r} is not installed (installed: {installed}); {HOW_TO_GET}")


def _inspect_pickle(info: ModelInfo) -> ModelInfo:
    """Opted in: read the pickle with weights_only=True (no code runs) and tell what it holds."""
    checkpoint = _pickle_state_dict(info.path)
    found = _classify(checkpoint.keys()) if checkpoint else None
    if found is not None and found[1].role != UNSUPPORTED:
        family, single = found
        return replace(info, family=family, class_name=single.class_name, role=single.role, allow_pickle=True,
                       note="")
    raise ModelNotFound(f"{info.path} holds {found[1].kind if found else 'unknown'}, which this app cannot run; "
                        f"{HOW_TO_GET}")


def _pickle_state_dict(path: Path) -> dict:
    """A pickle checkpoint's tensors, read with weights_only=True (no code runs; memory-mapped, not copied)."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, ... for unsafe or damaged files
        raise ModelNotFound(f"{path} could not be read safely ({first_line(error)}); use a .safetensors "
                            f"version") from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    return checkpoint if isinstance(checkpoint, dict) else {}


def _only_pickle_weights(path: Path) -> bool:
    return not any(path.rglob("*.safetensors")) and any(path.rglob("*.bin"))


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 8 * 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("VIDEO_GEN_CACHE_DIR") or Path.home() / ".cache" / "video-gen")


def _weight_files(model: ModelInfo) -> list[tuple[str, Path]]:
    """(name in the hash, file) for every weight file of a model, its motion adapter included."""
    files = []
    for prefix, root in (("", model.path), ("motion_adapter:", model.motion_adapter)):
        if root is None or (prefix and model.path.is_dir() and root.is_relative_to(model.path)):
            continue
        if root.is_file():
            files.append((prefix + root.name, root))
        else:
            files.extend((prefix + str(file.relative_to(root)), file)
                         for file in sorted(root.rglob("*.safetensors")) if file.is_file())
    return files


def weights_sha256(model: ModelInfo) -> str:
    """One SHA-256 over every weight file of a model (path and content), cached by size and mtime.

    Hashing SVD-XT's 4.2 GB of fp16 weights takes ~10 s at disk speed, so it is done once per
    version of the files and remembered in the cache folder; outputs carry it so a result can be
    traced to the exact weights that made it.
    """
    named_files = _weight_files(model)
    fingerprint = [[name, file.stat().st_size, file.stat().st_mtime_ns] for name, file in named_files]
    cache_file = cache_dir() / "weights-sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    key = str(model.path.resolve()) + (f"+{model.motion_adapter.resolve()}" if model.motion_adapter else "")
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("files") == fingerprint:
        return entry["sha256"]
    digest = hashlib.sha256()
    for (relative, _, _), (_, file) in zip(fingerprint, named_files):
        digest.update(f"{relative}\0{file_sha256(file)}\n".encode())
    cache[key] = {"files": fingerprint, "sha256": digest.hexdigest()}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        temporary.write_text(json.dumps(cache))
        os.replace(temporary, cache_file)
    except OSError:
        pass  # an unwritable cache only costs hashing again next time
    return cache[key]["sha256"]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
