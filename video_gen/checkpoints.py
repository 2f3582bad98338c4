"""The ground floor for model files: what a checkpoint is on disk, read without loading a weight.

`ModelInfo` (one model as discovery found it), the readers of safetensors and GGUF headers (tensor names, shapes,
dtypes, the few KB at the front of a file), a component's weight files in a diffusers folder, the pickle policy
(`.ckpt`/`.pt`/`.bin` can run code when loaded: refused unless the user opts in, then read with
`weights_only=True`), the SHA-256 of files and whole models, and the cache folder. It knows no model family:
families, LoRAs, the memory estimator, discovery (`catalog.py`) and downloads build on it. Imports no torch
except to read an opted-in pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelNotFound, first_line

HOW_TO_GET = "see models/README.md for the folder layout and how to download one"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin", ".pth", ".gguf")
# .pth is the usual suffix of upscalers (Real-ESRGAN's releases) and of some LoRAs: a pickle like the others.
PICKLE_SUFFIXES = (".ckpt", ".pt", ".bin", ".pth")
ALLOW_PICKLE_FLAG = "--allow-pickle"
PICKLE_REFUSED = (
    "is a pickle file ({suffix}): loading a pickle can run any code hidden in it, so only .safetensors "
    "files and diffusers folders of .safetensors load by default. If you trust where it came from, pass "
    f"{ALLOW_PICKLE_FLAG} (it is then read with torch.load(weights_only=True), which refuses code), or "
    "better, use a .safetensors version of it"
)
# The largest safetensors header we read: real ones are well under 1 MB (SD1.5's is ~90 kB).
MAX_HEADER_BYTES = 64 * 2**20
SAFETENSORS_PRECISION = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F64": "fp64"}

# Roles of what discovery finds: a model that runs on its own; the motion part of AnimateDiff (used with an SD1.5
# base); a LoRA; something recognised that cannot run here (the note says why); a folder that belongs with a
# family's models but does not run alone (LTX-Video's latent upsampler); a diffusers folder whose transformer (or
# UNet) is only its config, downloaded beside GGUF files for their text encoder, VAE and configs; a picture
# upscaler (`models/upscalers`, run on finished frames: upscale.py); a prompt enhancer (`models/enhancers`, a
# vision-language model: enhance.py).
MODEL, MOTION_ADAPTER, LORA, UNSUPPORTED, UPSAMPLER, PARTS, UPSCALER, ENHANCER = (
    "model", "motion-adapter", "lora", "unsupported", "upsampler", "parts", "upscaler", "enhancer")


@dataclass(frozen=True)
class ModelInfo:
    name: str  # what the user types: the folder name under the models dir, the file's stem, or ORG/NAME
    path: Path
    family: str  # a module name under video_gen.families, e.g. "svd" ("" for what no family runs)
    class_name: str  # the pipeline class from model_index.json (or what a single file holds)
    # AnimateDiff only: the motion adapter (a folder or a single file) that goes with this SD1.5 base.
    motion_adapter: Path | None = None
    # Single files: the diffusers folder whose configs (and other parts) complete the file, chosen without the
    # network: the configs shipped with video-gen, or an installed folder of the same architecture.
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


def cache_dir() -> Path:
    return Path(os.environ.get("VIDEO_GEN_CACHE_DIR") or Path.home() / ".cache" / "video-gen")


# ---- headers -----------------------------------------------------------------------------------------
def read_safetensors_header(path: str | os.PathLike) -> dict:
    """The JSON header of a .safetensors file (tensor names, dtypes, shapes; 8 bytes of length, then JSON),
    without its `__metadata__`; reads a few KB. Raises ValueError naming the file when it is not a complete
    safetensors file, or is truncated or damaged. The one reader for discovery, LoRAs and the memory estimator."""
    header = _raw_safetensors_header(path)
    header.pop("__metadata__", None)
    return header


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `__metadata__` of a safetensors file (kohya writes the training settings there); {} when unreadable."""
    try:
        metadata = _raw_safetensors_header(path).get("__metadata__")
    except (OSError, ValueError):
        return {}
    return {str(key): str(value) for key, value in metadata.items()} if isinstance(metadata, dict) else {}


def _raw_safetensors_header(path: str | os.PathLike) -> dict:
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
    return header


def check_complete(path: Path, header: dict) -> None:
    """Raise ValueError when a safetensors file was cut short after its header (an interrupted download): it then
    holds fewer bytes than its tensors need."""
    ends = [entry["data_offsets"][1] for entry in header.values()
            if isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2]
    size = Path(path).stat().st_size
    with open(path, "rb") as file:
        length = struct.unpack("<Q", file.read(8))[0]
    if ends and 8 + length + max(ends) > size:
        raise ValueError(f"{Path(path).name} is truncated ({size} bytes, its header needs {8 + length + max(ends)})")


@dataclass(frozen=True)
class GGUFInfo:
    architecture: str  # general.architecture ("wan", "ltxv", "flux", …), "" when the file does not say
    shapes: dict[str, list[int]]  # tensor name -> shape, in PyTorch's order
    bytes: dict[str, int]  # tensor name -> bytes stored (quantised)
    quant: str  # the quantisation holding the most bytes: "Q4_K", "Q8_0"; a float type if none is quantised


def read_gguf(path: str | Path) -> GGUFInfo:
    """The tensor table and architecture of a GGUF file, read with the `gguf` package's `GGUFReader` (it
    memory-maps the file and reads the table only). Raises ValueError when it is not a readable GGUF."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelNotFound(f"{Path(path).name} is a GGUF file: install the `gguf` package to read it "
                            f"(.venv/bin/pip install gguf)") from None
    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError, KeyError, IndexError) as error:  # gguf raises ValueError for a bad magic/version
        raise ValueError(f"{Path(path).name} is not a readable GGUF file ({error})") from None
    field_ = reader.fields.get("general.architecture")
    architecture = ""
    if field_ is not None and field_.data:
        architecture = bytes(field_.parts[field_.data[0]]).decode("utf-8", "replace")
    shapes, sizes, by_type = {}, {}, {}
    for tensor in reader.tensors:
        shapes[tensor.name] = [int(side) for side in reversed(tensor.shape.tolist())]  # ggml stores them reversed
        sizes[tensor.name] = int(tensor.n_bytes)
        by_type[tensor.tensor_type.name] = by_type.get(tensor.tensor_type.name, 0) + int(tensor.n_bytes)
    # Float tensors (norms, biases, embeddings) are kept unquantised in every GGUF; the quantised type names it.
    quantised = {kind: size for kind, size in by_type.items() if kind not in ("F32", "F16", "BF16")}
    quant = max(quantised or by_type, key=(quantised or by_type).get) if by_type else ""
    return GGUFInfo(architecture=architecture, shapes=shapes, bytes=sizes, quant=quant)


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape of a single file (GGUF or safetensors), from its header."""
    if Path(path).suffix.lower() == ".gguf":
        return read_gguf(path).shapes
    return {name: entry["shape"] for name, entry in read_safetensors_header(path).items()}


def weight_header(file: Path) -> dict:
    """A weight file's tensors as {name: {"shape": [...]}}: a safetensors header; a GGUF's tensors sized by the
    bytes they keep on the device (quantised, in units of 2-byte elements, since diffusers keeps GGUF weights
    quantised); for a pickle checkpoint (opt-in only), one tensor the size of the file in fp16."""
    suffix = Path(file).suffix.lower()
    if suffix == ".safetensors":
        return read_safetensors_header(file)
    if suffix == ".gguf":
        return {name: {"shape": [max(1, size // 2)]} for name, size in read_gguf(file).bytes.items()}
    return {"weights": {"shape": [Path(file).stat().st_size // 2]}}


def header_precision(header: dict) -> str:
    """The dtype holding most of a header's parameters: "fp16", "bf16", "fp32", …"""
    counts: dict[str, int] = {}
    for entry in header.values():
        if isinstance(entry, dict) and "dtype" in entry:
            counts[entry["dtype"]] = counts.get(entry["dtype"], 0) + numel(entry)
    if not counts:
        return ""
    dtype = max(counts, key=counts.get)
    return SAFETENSORS_PRECISION.get(dtype, dtype.lower())


def numel(entry) -> int:
    """Parameters of one header entry ({"shape": [...]}); 0 for anything else."""
    if not isinstance(entry, dict):
        return 0
    count = 1
    for side in entry.get("shape", []):
        count *= side
    return count


# ---- a diffusers folder's parts ------------------------------------------------------------------------
def component_files(path: Path) -> dict[str, list[Path]]:
    """Weight files by component (`unet`, `transformer`, `vae`, …): a single file counts as the denoiser (a
    checkpoint holds all of a model); a motion adapter folder keeps its weights at the top (counted as `unet`)."""
    if path.is_file():
        return {"unet": [path]}
    files = {}
    for folder in sorted(child for child in path.iterdir() if child.is_dir()):
        chosen = variant_files(folder)
        if chosen:
            files[folder.name] = chosen
    top = variant_files(path)
    if top:
        files["unet"] = top
    return files


def variant_files(folder: Path) -> list[Path]:
    """One copy of a component's weights: the plain files, or the fp16 variant where that is all there is."""
    files = sorted(folder.glob("*.safetensors")) or sorted(
        file for pattern in ("*.bin", "*.ckpt", "*.pt") for file in folder.glob(pattern))
    plain = [file for file in files if ".fp16." not in file.name]
    return plain or files


def component_shapes(folder: Path) -> dict[str, list[int]] | None:
    """A component folder's tensor names and shapes from its safetensors headers (every shard), or None when its
    weights are not safetensors (a pickle, or only a config: a `parts` folder)."""
    files = [file for file in variant_files(folder) if file.suffix == ".safetensors"]
    if not files:
        return None
    shapes = {}
    for file in files:
        shapes.update({name: entry["shape"] for name, entry in read_safetensors_header(file).items()})
    return shapes


def meta_shapes(folder: Path) -> dict[str, list[int]]:
    """The weight shapes of the diffusers or transformers model whose config is in `folder`, built on the meta
    device (no memory, no weights read)."""
    import diffusers
    import transformers
    from accelerate import init_empty_weights

    config = json.loads((folder / "config.json").read_text())
    with init_empty_weights(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "_class_name" in config:  # a diffusers model
            model_class = getattr(diffusers, config["_class_name"])
            module = model_class.from_config(model_class.load_config(folder))
        else:  # a transformers model (a text encoder)
            config_object = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
            module_class = getattr(transformers, (config.get("architectures") or ["AutoModel"])[0])
            module = module_class(config_object)
    return {name: list(tensor.shape) for name, tensor in module.state_dict().items()}


def folder_precision(path: Path) -> str:
    files = [file.name for file in path.rglob("*.safetensors")]
    has_fp16 = any(".fp16." in name for name in files)
    plain = [file for file in path.rglob("*.safetensors") if ".fp16." not in file.name]
    found = []
    if has_fp16:
        found.append("fp16")
    if plain:
        try:
            found.append(header_precision(read_safetensors_header(max(plain, key=lambda f: f.stat().st_size))))
        except (OSError, ValueError, UnicodeDecodeError):
            found.append("?")
    if not files and any(path.rglob("*.bin")):
        found.append("pickle")
    return "+".join(dict.fromkeys(found))


def size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def only_pickle_weights(path: Path) -> bool:
    return not any(path.rglob("*.safetensors")) and any(path.rglob("*.bin"))


# ---- pickles (opt-in only) ------------------------------------------------------------------------------
def pickle_state_dict(path: Path) -> dict:
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


# ---- hashes --------------------------------------------------------------------------------------------
def file_sha256(path: str | os.PathLike, chunk_bytes: int = 8 * 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


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
