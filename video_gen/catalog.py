"""Discovery: which models are installed, and what each one is (the catalog), read from configs and file headers:
no weights are loaded (a pickle is opened, with weights_only=True, only when the user opted in).

Three kinds of places are searched (`discover`):
- the models folder: diffusers folders (`model_index.json`), motion adapter folders (`config.json` of a
  `MotionAdapter`), single files directly inside it, LoRAs in `models/loras`, upscalers in `models/upscalers`
  (spandrel tells their architecture and scale: `upscale.describe_upscaler`) and prompt enhancers in
  `models/enhancers` (vision-language model folders: `enhance.describe_enhancer`);
- the Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`): the
  snapshot of each `models--ORG--NAME` repository, named `ORG/NAME`;
- extra folders the user names (`--extra-models-dir`), searched a few levels deep, so that a ComfyUI or
  A1111 tree (`models/checkpoints`, `models/animatediff_models`, `models/svd`, `models/Stable-diffusion`,
  ComfyUI's `models/upscale_models`) works as it is.
A folder's family comes from its `model_index.json` class, a single file's from the names of the tensors in
its header (`checkpoints.py` reads both), never by loading it; the family registry says which family knows
which. Pickle files are listed but refused unless the user opts in (`checkpoints.PICKLE_REFUSED`). Downloading
and importing models is `downloads.py`'s.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import replace
from pathlib import Path

from . import enhance, loras, upscale
from .checkpoints import (ALLOW_PICKLE_FLAG, ENHANCER, HOW_TO_GET, LORA, MODEL, MOTION_ADAPTER, PARTS, PICKLE_REFUSED,
                          PICKLE_SUFFIXES, SINGLE_FILE_SUFFIXES, UNSUPPORTED, UPSCALER, ModelInfo, folder_precision,
                          header_precision, hf_hub_cache, only_pickle_weights, pickle_state_dict, read_gguf,
                          read_safetensors_header, read_safetensors_metadata, size_on_disk)
from .demo import DEMO_NOTE, is_demo
from .errors import InvalidRequest, ModelNotFound, first_line
from .families import family_for_class, load_family, part_for_class, specs
from .families.spec import SingleFile

# How deep an extra folder is searched: ComfyUI/models/checkpoints/sub/file.safetensors is 4 levels.
EXTRA_DIR_DEPTH = 4
# Parts of an SD1.5 folder that video-gen never loads (`models download sd15` leaves them out).
OPTIONAL_PARTS = ("safety_checker", "feature_extractor")


# ---- reading what a folder or a file is ------------------------------------------------------
def inspect_folder(path: Path, name: str | None = None) -> ModelInfo:
    """Read a diffusers folder's model_index.json, check its parts exist, and name its family."""

    index_file = path / "model_index.json"
    if not index_file.is_file():
        if _motion_adapter_config(path) is not None:
            return _adapter_info(path, name or path.name)
        layout = folder_layout(path)
        if layout is not None:
            family, found = layout
            return ModelInfo(name=name or path.name, path=path, family=family, class_name=found.class_name,
                             precision=folder_precision(path), size_bytes=size_on_disk(path), role=found.role,
                             note=found.note)
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
    note = DEMO_NOTE if is_demo(path) else ""
    if role == MODEL and _denoiser_is_config_only(path, index):
        role, note = PARTS, PARTS_NOTE
    info = ModelInfo(name=name or path.name, path=path, family=family, class_name=class_name,
                     motion_adapter=own_adapter, precision=folder_precision(path), size_bytes=size_on_disk(path), role=role,
                     note=note)
    return _as_family_sees_it(info) if role == MODEL else info  # Wan names its VACE models


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


def folder_layout(path: Path) -> tuple[str, object] | None:
    """(family, FolderLayout) of a folder without model_index.json that a family recognises by what it holds
    (its spec's `folder_layouts`: FramePack's transformer repository, or its three repositories side by side)."""
    for spec in specs():
        for layout in spec.folder_layouts:
            if layout.matches(path):
                return spec.name, layout
    return None


# Layouts that no family runs, recognised so that `models list` can say what a file is.
_NOT_SUPPORTED = (
    ("sdxl", "an SDXL checkpoint", 10, lambda keys: any(key.startswith("conditioner.embedders.") for key in keys)),
    ("sd2", "an SD 2.x checkpoint", 20,  # the OpenCLIP text encoder
     lambda keys: any(key.startswith("model.diffusion_model.input_blocks.") for key in keys)
     and any(key.startswith("cond_stage_model.model.") for key in keys)),
)


def _single_file_kinds():
    """Every (kind, priority, matches, what it means) known: the families' single files, then the rest."""
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
    common = dict(name=name, path=path, precision=header_precision(header), size_bytes=size)
    # asked first: a motion LoRA's tensor names contain a motion adapter's
    lora = loras.from_header(header, path.stem, read_safetensors_metadata(path))
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
    """A single file (or a model folder) as its family describes it, where the file's neighbours matter (a
    family's optional `describe_file`: Wan 2.2's low-noise expert beside its high-noise twin is part of that model,
    not one; a Wan VACE model is named so)."""
    if not info.family:  # recognised, but of no family here (an SDXL checkpoint)
        return info
    describe = getattr(load_family(info.family), "describe_file", None)
    return describe(info) if describe is not None else info


def _in_lora_folder(path: Path) -> bool:
    return path.parent.name.lower() in loras.LORA_FOLDERS


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
                     precision=folder_precision(path), size_bytes=size_on_disk(path))


def _adapter_family() -> str:
    """The family whose single files include motion adapters (AnimateDiff): adapter folders belong to it."""
    return next((spec.name for spec in specs() for single in spec.single_files if single.role == MOTION_ADAPTER), "")


# ---- upscalers and prompt enhancers (finishing) ----------------------------------------------------------
def _upscaler_entry(path: Path, source: str) -> ModelInfo:
    """An upscaler file as `models list` shows it: its architecture and scale (spandrel), or why it is none."""
    common = dict(name=path.stem, path=path, family="", size_bytes=path.stat().st_size, source=source)
    if path.suffix.lower() in PICKLE_SUFFIXES:  # opened only when a job or `upscale` is allowed to
        return ModelInfo(class_name="pickle", role=UPSCALER, note=f"pickle file: refused unless {ALLOW_PICKLE_FLAG}",
                         **common)
    try:
        info = upscale.describe_upscaler(path)
        precision = header_precision(read_safetensors_header(path))
    except (InvalidRequest, OSError, ValueError) as error:
        return ModelInfo(class_name="unknown", role=UNSUPPORTED, note=first_line(error).removeprefix("upscaler: "),
                         **common)
    return ModelInfo(class_name=info.architecture, role=UPSCALER, note=info.summary, precision=precision, **common)


def _enhancer_entry(path: Path, name: str, source: str) -> ModelInfo | None:
    """A prompt enhancer folder as `models list` shows it (None: not a model folder at all)."""
    if not (path / "config.json").is_file():
        return None
    common = dict(name=name, path=path, family="", size_bytes=size_on_disk(path), source=source)
    try:
        info = enhance.describe_enhancer(path)
    except InvalidRequest as error:
        return ModelInfo(class_name="unknown", role=UNSUPPORTED, note=first_line(error).removeprefix("enhancer: "),
                         **common)
    return ModelInfo(class_name=info.architecture, role=ENHANCER, note=info.model_type,
                     precision=folder_precision(path), **common)


def _scan_upscalers(folder: Path, source: str, depth: int = 2) -> list[ModelInfo]:
    found = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_file() and child.suffix.lower() in upscale.UPSCALER_SUFFIXES:
            found.append(_upscaler_entry(child, source))
        elif child.is_dir() and depth > 1:
            found.extend(_scan_upscalers(child, source, depth - 1))
    return found


def _scan_enhancers(folder: Path, source: str) -> list[ModelInfo]:
    return [info for child in sorted(folder.iterdir()) if child.is_dir() and not child.name.startswith(".")
            and (info := _enhancer_entry(child, child.name, source)) is not None]


def _finishing_folder(child: Path, source: str) -> list[ModelInfo] | None:
    """What a folder of upscalers or enhancers holds, or None when `child` is neither."""
    if not child.is_dir():
        return None
    if child.name.lower() in upscale.FOLDERS:
        return _scan_upscalers(child, source)
    if child.name.lower() in enhance.FOLDERS:
        return _scan_enhancers(child, source)
    return None


def _resolve_finishing(field: str, role: str, name_or_path: str, entries: list[ModelInfo], describe) -> object:
    """An upscaler's or enhancer's description (`describe(path)`) from a name in `entries` or a path; one line
    naming what is installed when neither."""
    folders = upscale.FOLDERS if role == UPSCALER else enhance.FOLDERS
    info = next((entry for entry in entries if entry.name == name_or_path and (entry.role == role or (
        entry.role == UNSUPPORTED and any(parent.name.lower() in folders for parent in entry.path.parents[:3])))),
        None)  # a file in models/upscalers that is no upscaler: its description says why
    path = info.path if info is not None else Path(name_or_path).expanduser()
    if info is None and not path.exists():
        installed = ", ".join(entry.name for entry in entries if entry.role == role) or "none"
        where = f"models/{folders[0]}"
        raise InvalidRequest(field, f"{name_or_path!r} is not installed (installed {role}s: {installed}); put it in "
                                    f"{where}, or see `video-gen models download --help`")
    described = describe(path)
    return dataclasses.replace(described, name=info.name if info is not None else described.name)


# ---- discovery -----------------------------------------------------------------------------
def _scan_entry(path: Path, name: str, source: str) -> ModelInfo | None:
    """One folder or file as a model, or None when it is neither (broken folders are skipped here)."""
    try:
        if path.is_dir():
            if ((path / "model_index.json").is_file() or _motion_adapter_config(path) is not None
                    or folder_layout(path) is not None):
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
        if child.is_dir() and child.name.lower() in loras.LORA_FOLDERS:  # models/loras: LoRAs (loras.py)
            found.extend(_scan_tree(child, "models", depth=2))
            continue
        finishing = _finishing_folder(child, "models")  # models/upscalers, models/enhancers
        if finishing is not None:
            found.extend(finishing)
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
        finishing = _finishing_folder(child, source)  # ComfyUI's models/upscale_models
        if finishing is not None:
            found.extend(finishing)
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
        info = _scan_entry(snapshot, repo_name, "hf-cache") or _hf_enhancer(snapshot, repo_name)
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


def _hf_enhancer(snapshot: Path, name: str) -> ModelInfo | None:
    """A vision-language model of a kind the prompt enhancer runs (Qwen/Qwen3-VL-4B-Instruct, …), else None."""
    try:
        model_type = json.loads((snapshot / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return _enhancer_entry(snapshot, name, "hf-cache") if model_type in enhance.LAYOUTS else None


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

    def of_role(self, role: str) -> list[ModelInfo]:
        """What is installed of one kind: `UPSCALER`s, `ENHANCER`s (the page's lists)."""
        return [info for info in self.entries() if info.role == role]

    def resolve_upscaler(self, name_or_path: str, *, allow_pickle: bool = False) -> upscale.UpscalerInfo:
        """An installed upscaler (its name in `models list`) or an upscaler file's path, described: architecture,
        scale, dtypes. One line when it is not installed, not an upscaler, or a pickle without permission."""
        if self.find(name_or_path) is None and not Path(name_or_path).expanduser().exists():
            self.refresh()  # added since the last scan
        return _resolve_finishing(upscale.FIELD, UPSCALER, name_or_path, self.entries(),
                                  lambda path: upscale.describe_upscaler(path, allow_pickle=allow_pickle))

    def resolve_enhancer(self, name_or_path: str | None, *, allow_pickle: bool = False) -> enhance.EnhancerInfo:
        """An installed prompt enhancer (by name or path; None: the only one installed), described."""
        if name_or_path is None:
            installed = self.of_role(ENHANCER)
            if len(installed) != 1:  # one added or removed since the last scan?
                self.refresh()
                installed = self.of_role(ENHANCER)
            if len(installed) != 1:
                names = ", ".join(info.name for info in installed)
                raise InvalidRequest(enhance.FIELD, f"several prompt enhancers are installed ({names}); choose one "
                                                    "with --enhancer" if installed else
                                     "no prompt enhancer is installed in models/enhancers; `video-gen models download "
                                     "qwen3-vl-4b` fetches one (models/README.md lists others)")
            name_or_path = installed[0].name
        elif self.find(name_or_path) is None and not Path(name_or_path).expanduser().exists():
            self.refresh()
        return _resolve_finishing(enhance.FIELD, ENHANCER, name_or_path, self.entries(),
                                  lambda path: enhance.describe_enhancer(path, allow_pickle=allow_pickle))

    def resolve(self, name_or_path: str | None, *, motion_adapter: str | None = None,
                allow_pickle: bool = False) -> ModelInfo:
        """`resolve_model` over this catalog. A name it does not know (but not a path, which is read as it is), or
        no name when it does not hold exactly one model, rescans once first."""
        if name_or_path:
            stale = self.find(name_or_path) is None and not _is_path(name_or_path, self.models_dir)
        else:
            stale = len(self.models()) != 1
        if stale:
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
    runnable = [info for info in everything if info.role == MODEL]
    if not name_or_path:
        if len(runnable) == 1:
            info = runnable[0]
        elif not runnable:
            raise ModelNotFound(f"no model installed in {models_dir.resolve()}; {HOW_TO_GET} (or try everything "
                                f"with a tiny demo model that makes noise: `video-gen models demo`)")
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
    if info.role == UPSCALER:
        raise ModelNotFound(f"{info.name} is an upscaler, not a model: use it with --upscaler {info.name} (or "
                            f"`video-gen upscale VIDEO --upscaler {info.name}`)")
    if info.role == ENHANCER:
        raise ModelNotFound(f"{info.name} is a prompt enhancer, not a model: use it with --enhance-prompt "
                            f"--enhancer {info.name} (or `video-gen prompt PICTURE --enhancer {info.name}`)")
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
    elif info.path.is_dir() and only_pickle_weights(info.path):
        raise ModelNotFound(f"{info.path} holds only .bin weights, which " + PICKLE_REFUSED.format(suffix=".bin"))
    complete = getattr(load_family(info.family), "complete_model", None)
    if complete is not None:
        info = complete(info, everything, motion_adapter=motion_adapter, models_dir=models_dir,
                        allow_pickle=allow_pickle, inspect=lambda path: inspect_path(path, allow_pickle=allow_pickle))
    return info


def _is_path(name_or_path: str, models_dir: Path) -> bool:
    """Whether `--model` names an existing folder or file (read directly, not looked up in a scan)."""
    return Path(name_or_path).expanduser().exists() or (models_dir / name_or_path).exists()


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
    checkpoint = pickle_state_dict(info.path)
    found = _classify(checkpoint.keys()) if checkpoint else None
    if found is not None and found[1].role != UNSUPPORTED:
        family, single = found
        return replace(info, family=family, class_name=single.class_name, role=single.role, allow_pickle=True,
                       note="")
    raise ModelNotFound(f"{info.path} holds {found[1].kind if found else 'unknown'}, which this app cannot run; "
                        f"{HOW_TO_GET}")


def inspect_path(path: Path, *, allow_pickle: bool = False) -> ModelInfo:
    """A folder or a single file given by path, as discovery reads it; an opted-in pickle is opened (with
    weights_only=True) to tell what it holds. What a family's `complete_model` is given to read paths with."""
    if path.is_dir():
        return inspect_folder(path)
    info = inspect_file(path, allow_pickle=allow_pickle)
    return _inspect_pickle(info) if info.class_name == "pickle" and allow_pickle else info


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
