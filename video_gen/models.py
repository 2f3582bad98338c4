"""Finding models on disk and telling which family each one is, by reading JSON only (no weights)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotFound

HOW_TO_GET = "see models/README.md for the folder layout and how to download one"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")


@dataclass(frozen=True)
class ModelInfo:
    name: str  # what the user types: the folder name under the models dir, or the file's stem
    path: Path
    family: str  # a module name under video_gen.families, e.g. "svd"
    class_name: str  # the pipeline class from model_index.json

    def read_config(self, component: str) -> dict:
        """A component's config.json (for example the UNet's), read without loading any weights."""
        for name in ("config.json", "scheduler_config.json", "preprocessor_config.json"):
            file = self.path / component / name
            if file.is_file():
                return json.loads(file.read_text())
        raise ModelNotFound(f"{self.path} has no {component}/config.json; the folder is incomplete ({HOW_TO_GET})")


def default_models_dir() -> Path:
    return Path(os.environ.get("VIDEO_GEN_MODELS_DIR") or "models")


def inspect_folder(path: Path, name: str | None = None) -> ModelInfo:
    """Read a diffusers folder's model_index.json, check its parts exist, and name its family."""
    from .families import family_for_class  # the registry imports no torch

    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelNotFound(
            f"{path} is not a diffusers model folder: expected {index_file.name} with one subfolder per part "
            f"(unet/, vae/, image_encoder/, …); {HOW_TO_GET}"
        )
    try:
        index = json.loads(index_file.read_text())
        class_name = index["_class_name"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ModelNotFound(f"{index_file} is damaged ({error}); download the model again ({HOW_TO_GET})") from None
    family = family_for_class(class_name)
    if family is None:
        raise ModelNotFound(f"{path} holds a {class_name}, which this app cannot run yet")
    missing = [
        part for part, spec in index.items()
        if not part.startswith("_") and isinstance(spec, list) and spec[0] is not None and not (path / part).is_dir()
    ]
    if missing:
        raise ModelNotFound(
            f"{path} is incomplete: missing {', '.join(part + '/' for part in missing)}; "
            f"download the model again ({HOW_TO_GET})"
        )
    return ModelInfo(name=name or path.name, path=path, family=family, class_name=class_name)


def list_models(models_dir: str | os.PathLike) -> list[ModelInfo]:
    """Every usable diffusers folder directly under `models_dir`, sorted by name."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    found = []
    for child in sorted(models_dir.iterdir()):
        if child.is_dir() and (child / "model_index.json").is_file():
            try:
                found.append(inspect_folder(child))
            except ModelNotFound:
                continue  # a broken folder is reported when asked for by name, not in the list
    return found


def resolve_model(name_or_path: str | None, models_dir: str | os.PathLike) -> ModelInfo:
    """Turn `--model` into a model: a folder name under models_dir, a path to a folder, or the only one installed."""
    models_dir = Path(models_dir)
    if not name_or_path:
        installed = list_models(models_dir)
        if len(installed) == 1:
            return installed[0]
        if not installed:
            raise ModelNotFound(f"no model installed in {models_dir.resolve()}; {HOW_TO_GET}")
        names = ", ".join(model.name for model in installed)
        raise ModelNotFound(f"several models are installed ({names}); choose one with --model")
    candidate = models_dir / name_or_path
    if os.sep not in name_or_path and "/" not in name_or_path and candidate.exists():
        path = candidate
    else:
        path = Path(name_or_path).expanduser()
    if path.is_file():
        if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
            raise ModelNotFound(
                f"{path} is a single-file checkpoint; single-file Stable Video Diffusion checkpoints are not "
                f"supported yet: use the diffusers folder ({HOW_TO_GET})"
            )
        raise ModelNotFound(f"{path} is not a model: expected a diffusers folder ({HOW_TO_GET})")
    if path.is_dir():
        return inspect_folder(path.resolve(), name=path.name)
    installed = ", ".join(model.name for model in list_models(models_dir)) or "none"
    raise ModelNotFound(
        f"{name_or_path!r} is not installed (installed in {models_dir}: {installed}); {HOW_TO_GET}"
    )


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 8 * 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("VIDEO_GEN_CACHE_DIR") or Path.home() / ".cache" / "video-gen")


def weights_sha256(model: ModelInfo) -> str:
    """One SHA-256 over every weight file of a model (path and content), cached by size and mtime.

    Hashing SVD-XT's 4.2 GB of fp16 weights takes ~10 s at disk speed, so it is done once per
    version of the files and remembered in the cache folder; outputs carry it so a result can be
    traced to the exact weights that made it.
    """
    files = sorted(file for file in model.path.rglob("*.safetensors") if file.is_file())
    fingerprint = [[str(file.relative_to(model.path)), file.stat().st_size, file.stat().st_mtime_ns]
                   for file in files]
    cache_file = cache_dir() / "weights-sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    key = str(model.path.resolve())
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("files") == fingerprint:
        return entry["sha256"]
    digest = hashlib.sha256()
    for (relative, _, _), file in zip(fingerprint, files):
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
