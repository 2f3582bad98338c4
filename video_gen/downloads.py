"""Getting models into the models folder: `video-gen models download NAME`, `video-gen models import PATH` and
`video-gen models demo` (the tiny demo model, built here: `demo.py` says what a demo model is).

Download takes a short list of known repositories from the Hugging Face hub with
`huggingface_hub.snapshot_download`, only the files a model needs: its configs and one copy of each
weight file, the fp16 `.safetensors` where the repository has it (no .bin/.ckpt/.onnx duplicates, no
original single-file checkpoint beside the diffusers folder, no safety checker). Downloads resume:
huggingface_hub keeps partial files and continues them on the next run. The annotators that make control videos
(`annotators.ANNOTATORS`: depth, pose) are downloads too, each its listed files into models/annotators/NAME/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import enhance, upscale
from .annotators import ANNOTATORS_DIRNAME
from .annotators import BY_NAME as ANNOTATORS
from .errors import InvalidRequest, VideoGenError
from .catalog import inspect_file, inspect_folder, inspect_path, resolve_model
from .demo import (DEMO_DEFAULTS, DEMO_FILE, DEMO_LORA_KEY, DEMO_NAME, DEMO_NOTE, LORA_DEMO_DEFAULTS, LORA_DEMO_FILE,
                   LORA_DEMO_NAME, is_demo)
from .checkpoints import ENHANCER, LORA, MODEL, MOTION_ADAPTER, PICKLE_REFUSED, UNSUPPORTED, UPSCALER, ModelInfo
from .errors import ModelNotFound
from .families import specs


@dataclass(frozen=True)
class KnownModel:
    name: str
    repo: str
    family: str
    description: str
    files: tuple[str, ...] = ()  # single files (GGUF): glob patterns, `{quant}` for the quantisation asked for
    folder: str = ""  # the known model whose folder gives those files their other parts
    kind: str = MODEL  # MODEL (a family's), UPSCALER (a file for models/upscalers), ENHANCER (models/enhancers)


DEFAULT_QUANT = "Q4_K_M"  # city96's and QuantStack's usual pick for 12 GB cards


def known_models() -> dict[str, KnownModel]:
    """What `models download` fetches: every family spec's download entries, then the finishing tools' (upscalers
    are no family: their entries are `upscale.DOWNLOADS`, the prompt enhancers' `enhance.DOWNLOADS`), by name."""
    known = {download.name: KnownModel(download.name, download.repo, spec.name, download.description,
                                       download.files, download.folder)
             for spec in specs() for download in spec.downloads}
    for kind, downloads in ((UPSCALER, upscale.DOWNLOADS), (ENHANCER, enhance.DOWNLOADS)):
        known.update({download.name: KnownModel(download.name, download.repo, "", download.description,
                                                download.files, kind=kind) for download in downloads})
    return known


KNOWN_MODELS = known_models()  # the families of this package; `known_models()` includes registered ones

CONFIG_NAMES = ("model_index.json", "config.json", "scheduler_config.json", "preprocessor_config.json",
                "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                # T5-family tokenizers (Wan's umT5, LTX's T5): the SentencePiece model, its fast version, added tokens
                "spiece.model", "tokenizer.json", "added_tokens.json",
                # Gemma 3 (LTX-2's text encoder and prompt enhancer) and the prompt enhancers (image-text-to-text
                # folders): the SentencePiece model, the processor that LTX-2's prompt enhancement needs
                # (processor/), the chat template (its own file in newer downloads) and the generation config
                # (greedy decoding reads it)
                "tokenizer.model", "processor_config.json", "chat_template.json", "chat_template.jinja",
                "generation_config.json")
# Parts of a diffusers repository that video-gen never uses.
SKIPPED_PARTS = ("safety_checker",)


class DownloadFailed(VideoGenError):
    """The hub could not be reached, or the repository is not as expected."""


def select_files(repo_files: list[str], *, without_weights: tuple[str, ...] = ()) -> list[str]:
    """The files of a repository that a model needs: configs, and one .safetensors per weight (fp16 first); the
    parts named in `without_weights` keep only their configs (a folder for GGUF transformers)."""
    repo_files = [name for name in repo_files
                  if name.split("/", 1)[0] not in without_weights or name.rsplit("/", 1)[-1] in CONFIG_NAMES]
    is_pipeline = "model_index.json" in repo_files
    chosen = [name for name in repo_files if name.rsplit("/", 1)[-1] in CONFIG_NAMES]
    weights: dict[str, list[str]] = {}
    for name in repo_files:
        if not name.endswith(".safetensors") and not name.endswith(".safetensors.index.json"):
            continue
        if is_pipeline and "/" not in name:
            continue  # the original single-file checkpoint beside a diffusers folder: the same weights again
        variant = name.rsplit("/", 1)[-1].split(".safetensors")[0].split(".")[1:]
        if variant and not variant[-1].startswith("fp16"):
            continue  # another variant of the same weights (non_ema, ema_only, …)
        weights.setdefault(name.replace(".fp16", ""), []).append(name)
    for group in weights.values():
        fp16 = [name for name in group if ".fp16" in name]
        chosen.append((fp16 or group)[0])
    chosen = [name for name in chosen if name.split("/", 1)[0] not in SKIPPED_PARTS]
    # Sharded weights: keep the shards the chosen index files name (same variant).
    return sorted(dict.fromkeys(chosen))


def download(name: str, models_dir: str | os.PathLike, *, quant: str = DEFAULT_QUANT) -> Path:
    """Download a known model into models_dir/NAME (resumable) and check the result is a model; for single
    files (GGUF), the files of the quantisation `quant` into models_dir itself, and the folder that gives them
    their other parts (without its transformer weights) when it is not installed. Returns what --model takes."""
    if name in ANNOTATORS:
        return download_annotator(name, models_dir)
    known_names = known_models()
    if name not in known_names:
        raise InvalidRequest("name", f"unknown model {name!r}; known: {', '.join([*known_names, *ANNOTATORS])}")
    known = known_names[name]
    models_dir = Path(models_dir)
    import huggingface_hub
    from huggingface_hub.utils import HfHubHTTPError

    try:
        if known.kind == UPSCALER:  # one file into models/upscalers
            return _download_files(known, models_dir / upscale.FOLDERS[0], quant)[0]
        if known.kind == ENHANCER:  # a transformers folder into models/enhancers/NAME
            target = models_dir / enhance.FOLDERS[0] / name
            files = select_files(huggingface_hub.list_repo_files(known.repo))
            huggingface_hub.snapshot_download(known.repo, allow_patterns=files, local_dir=target)
            return enhance.describe_enhancer(target).path
        if known.files:
            files = _download_files(known, models_dir, quant)
            if known.folder and not _runs(files[0], models_dir):  # no installed folder gives its other parts
                parts = known_names[known.folder]
                _download_folder(parts, models_dir / parts.name, without_weights=("transformer", "transformer_2"))
            return files[0]
        return _download_folder(known, models_dir / name)
    except (HfHubHTTPError, OSError, ConnectionError) as error:
        raise DownloadFailed(_offline_message(known, error)) from None
    except Exception as error:  # huggingface_hub's offline and network errors share no base class across versions
        if "offline" in type(error).__name__.lower() or "connect" in type(error).__name__.lower():
            raise DownloadFailed(_offline_message(known, error)) from None
        raise


def _runs(file: Path, models_dir: Path) -> bool:
    """Whether a downloaded single file already has what it needs (its family pairs it with an installed folder)."""

    try:
        resolve_model(str(file), models_dir)
    except ModelNotFound:
        return False
    return True


def _download_folder(known: KnownModel, target: Path, *, without_weights: tuple[str, ...] = ()) -> Path:
    import huggingface_hub

    files = select_files(huggingface_hub.list_repo_files(known.repo), without_weights=without_weights)
    # huggingface_hub draws a progress bar per file on stderr and resumes partial files.
    huggingface_hub.snapshot_download(known.repo, allow_patterns=files, local_dir=target)
    return inspect_folder(target, name=target.name).path


def _download_files(known: KnownModel, models_dir: Path, quant: str) -> list[Path]:
    """Each of `known.files`' patterns' file, fetched into a hidden staging folder (where partial downloads
    resume) and moved into the models folder only when whole."""
    import fnmatch

    import huggingface_hub

    listing = huggingface_hub.list_repo_files(known.repo)
    chosen = []
    for pattern in known.files:
        wanted = pattern.format(quant=quant)
        matches = sorted(name for name in listing if fnmatch.fnmatch(name, wanted))
        if not matches and "{quant}" not in pattern:
            raise DownloadFailed(f"huggingface.co/{known.repo} has no file {wanted} any more; download it by hand "
                                 f"and add it with `video-gen models import PATH`")
        if not matches:
            quants = sorted({match.group(1) for name in listing
                             if (match := re.search(r"[-_.]((?:I?Q\d|BF16|F16|F32)[\w]*)\.gguf$", name))})
            raise InvalidRequest("quant", f"{known.name} has no {quant} file (huggingface.co/{known.repo}); "
                                          f"it has: {', '.join(quants) or 'none'}")
        chosen.append(matches[0])
    staging = models_dir / ".downloads" / known.name  # hidden: discovery skips dot folders
    placed = []
    for name in chosen:
        target = models_dir / Path(name).name
        if target.is_file():  # only whole files are ever moved here
            placed.append(target)
            continue
        fetched = Path(huggingface_hub.hf_hub_download(known.repo, name, local_dir=staging))
        models_dir.mkdir(parents=True, exist_ok=True)
        os.replace(fetched, target)
        placed.append(target)
    _clear_staging(staging)
    return placed


def download_annotator(name: str, models_dir: str | os.PathLike) -> Path:
    """An annotator's files (`annotators.ANNOTATORS`) into models_dir/annotators/NAME, each fetched into a hidden
    staging folder (where a partial download resumes) and moved into place only when whole."""
    import huggingface_hub
    from huggingface_hub.utils import HfHubHTTPError

    annotator = ANNOTATORS[name]
    models_dir = Path(models_dir)
    target = models_dir / ANNOTATORS_DIRNAME / name
    staging = models_dir / ".downloads" / name  # hidden: discovery skips dot folders
    try:
        for file in annotator.files:
            if (target / file).is_file():
                continue
            fetched = Path(huggingface_hub.hf_hub_download(annotator.repo, file, local_dir=staging))
            target.mkdir(parents=True, exist_ok=True)
            os.replace(fetched, target / file)
    except (HfHubHTTPError, OSError, ConnectionError) as error:
        known = KnownModel(name, annotator.repo, "", annotator.description, files=annotator.files)
        raise DownloadFailed(_offline_message(known, error)) from None
    _clear_staging(staging)
    return target


def _clear_staging(staging: Path) -> None:
    """A finished download's staging folder removed, and models/.downloads too when no other download is under way."""
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.parent.rmdir()
    except OSError:
        pass


def _offline_message(known: KnownModel, error: BaseException) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (f"could not download {known.name} from huggingface.co/{known.repo} ({reason}). Are you offline? "
            f"Download it on a connected machine (`video-gen models download {known.name}`), copy "
            f"{'the files and the folder beside them' if known.files else 'the folder'}, "
            f"and add it with `video-gen models import PATH`; partial downloads resume when run again")


def import_model(path: str | os.PathLike, models_dir: str | os.PathLike, *, name: str | None = None,
                 copy: bool = False, allow_pickle: bool = False) -> ModelInfo:
    """Check a folder or file is a model video-gen can use, then link (or copy) it into the models folder."""
    source = Path(path).expanduser()
    if not source.exists():
        raise InvalidRequest("path", f"not found: {source}")
    source = source.resolve()
    if source.is_dir():
        info = inspect_folder(source)
    else:
        info = inspect_file(source)
        if info.class_name == "pickle":
            if not allow_pickle:
                raise InvalidRequest("path", f"{source} " + PICKLE_REFUSED.format(suffix=source.suffix))
            info = inspect_path(source, allow_pickle=True)
        elif info.role == UNSUPPORTED:
            raise InvalidRequest("path", f"{source}: {info.note}")
    name = readable_name(name or (source.name if source.is_dir() else source.stem))
    models_dir = Path(models_dir)
    if info.role == LORA:
        models_dir = models_dir / "loras"  # LoRAs live in their own folder (loras.py)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / (name if source.is_dir() else name + source.suffix.lower())
    if target.exists() or target.is_symlink():
        raise InvalidRequest("name", f"{target} already exists; choose another name with --name")
    if copy:
        temporary = models_dir / f".{target.name}.importing"
        if source.is_dir():
            shutil.copytree(source, temporary)
        else:
            shutil.copy2(source, temporary)
        os.replace(temporary, target)
    else:
        _link(source, target)
    kind = ("motion adapter" if info.role == MOTION_ADAPTER else f"LoRA ({info.note})" if info.role == LORA
            else f"{info.family} model")
    return ModelInfo(name=target.stem if target.is_file() else target.name, path=target, family=info.family,
                     class_name=info.class_name, role=info.role, note=kind)


def readable_name(text: str) -> str:
    """A name that is easy to type: letters, digits, '.', '_' and '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    if not cleaned:
        raise InvalidRequest("name", f"{text!r} has no letters or digits to name the model by")
    return cleaned


def _link(source: Path, target: Path) -> None:
    """A symbolic link; where those need privileges (Windows), a hard link for a file, else a copy."""
    try:
        target.symlink_to(source, target_is_directory=source.is_dir())
        return
    except OSError:
        pass
    if source.is_file():
        try:
            os.link(source, target)
            return
        except OSError:
            shutil.copy2(source, target)
            return
    shutil.copytree(source, target)


# ---- the demo model (demo.py) --------------------------------------------------------------------------
def install_demo(models_dir: str | os.PathLike, *, name: str = DEMO_NAME) -> Path:
    """Build the demo model into `models_dir/name` and return its folder; an installed one is kept as it is.

    It is built in a hidden folder beside it and renamed when complete, so an interrupted install never leaves
    a half-written model that discovery would list."""
    from .tiny.sd import build_tiny_svd

    models_dir = Path(models_dir)
    target = models_dir / name
    if is_demo(target):
        return target
    if target.exists():
        raise FileExistsError(f"{target} exists and is not a demo model; move it away or choose another --name")
    models_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_dir))  # hidden: discovery skips dot-folders
    try:
        build_tiny_svd(building / "model", fp16_variant=False)
        card = {"demo": True, "note": DEMO_NOTE, "built_with": "video_gen.tiny.sd.build_tiny_svd (random weights)",
                "defaults": DEMO_DEFAULTS}
        (building / "model" / DEMO_FILE).write_text(json.dumps(card, indent=2) + "\n")
        os.replace(building / "model", target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def install_lora_demo(models_dir: str | os.PathLike) -> Path:
    """The second demo: a tiny AnimateDiff (an SD1.5 base with its motion adapter inside) in `models_dir/
    LORA_DEMO_NAME` and a tiny LoRA that fits it in `models_dir/loras/LORA_DEMO_FILE`, both random weights that
    make noise and say so (`demo.py`); installed ones are kept. Built aside and renamed when complete, like
    `install_demo`. Returns the model's folder."""
    from .tiny.sd import build_tiny_lora, build_tiny_motion_adapter, build_tiny_sd15

    models_dir = Path(models_dir)
    target, lora = models_dir / LORA_DEMO_NAME, models_dir / "loras" / LORA_DEMO_FILE
    if target.exists() and not is_demo(target):
        raise FileExistsError(f"{target} exists and is not a demo model; move it away")
    models_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{LORA_DEMO_NAME}-", dir=models_dir))
    try:
        if not is_demo(target):
            build_tiny_sd15(building / "model")
            build_tiny_motion_adapter(building / "model" / "motion_adapter")  # the folder brings its own adapter
            card = {"demo": True, "note": DEMO_NOTE, "defaults": LORA_DEMO_DEFAULTS,
                    "built_with": "video_gen.tiny.sd.build_tiny_sd15 + build_tiny_motion_adapter (random weights)"}
            (building / "model" / DEMO_FILE).write_text(json.dumps(card, indent=2) + "\n")
            os.replace(building / "model", target)
        if not lora.is_file():
            build_tiny_lora(target, building / LORA_DEMO_FILE, parts=("unet",),
                            metadata={DEMO_LORA_KEY: DEMO_NOTE, "description": "video-gen demo LoRA"})
            lora.parent.mkdir(parents=True, exist_ok=True)
            os.replace(building / LORA_DEMO_FILE, lora)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


__all__ = ["KNOWN_MODELS", "download", "import_model", "install_demo", "install_lora_demo", "select_files"]
