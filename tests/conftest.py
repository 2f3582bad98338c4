"""Shared fixtures: tiny REAL Stable Video Diffusion models with random weights.

They are saved with `save_pretrained` in the layout of stabilityai/stable-video-diffusion-img2vid-xt
(fp16 variant included) and then loaded by the app through the same code path as a user's model.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image

# Nothing in the tests may reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The page's background test run of a model (timing.Estimator.probe) loads it before any job: off for the servers
# of the suite, whose tests count loads and time jobs; the tests of the estimates turn it on (WebApp(probe=True)).
os.environ.setdefault("VIDEO_GEN_PROBE", "0")
# The weights-hash cache goes to a private folder, not the user's ~/.cache, removed at exit.
os.environ["VIDEO_GEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="video-gen-test-cache-")
atexit.register(shutil.rmtree, os.environ["VIDEO_GEN_CACHE_DIR"], ignore_errors=True)
# Model discovery searches the Hugging Face cache: the tests' is an empty private folder, not the user's.
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="video-gen-test-hf-cache-")
atexit.register(shutil.rmtree, os.environ["HF_HUB_CACHE"], ignore_errors=True)

TINY_MODEL = "tiny-svd"
# 64x64, 8 frames, 3 steps: about 0.3 s a job on 2 cores, once the model is resident.
FAST = dict(width=64, height=64, num_frames=8, num_inference_steps=3)


def video_files(folder: Path) -> list[Path]:
    """What an outputs folder holds besides the job history (`history.sqlite3*`) and the kept pictures of
    jobs (`.inputs/`): the videos, their settings files and any temporary left behind."""
    return sorted(path for path in Path(folder).iterdir()
                  if not path.name.startswith("history.sqlite3") and path.name != ".inputs")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A models folder holding one tiny SVD model named `tiny-svd`."""
    from video_gen.tiny.sd import build_tiny_svd

    folder = tmp_path_factory.mktemp("models")
    build_tiny_svd(folder / TINY_MODEL)
    return folder


@pytest.fixture(scope="session")
def demo_pair(tmp_path_factory) -> Path:
    """A models folder holding both demos (`video-gen models demo` and `--lora`): the tiny SVD, the tiny AnimateDiff
    and its LoRA in loras/, as a new user installs them. Read only: copy it to change it."""
    from video_gen.downloads import install_demo, install_lora_demo

    folder = tmp_path_factory.mktemp("demo-pair") / "models"
    install_demo(folder)
    install_lora_demo(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_path(models_dir) -> Path:
    return models_dir / TINY_MODEL


@pytest.fixture()
def outputs_dir(tmp_path) -> Path:
    folder = tmp_path / "outputs"
    folder.mkdir()
    return folder


@pytest.fixture(scope="session")
def photo(tmp_path_factory) -> Path:
    """A 4:3 picture with structure (a gradient and a box), so crops and frames can be told apart."""
    import numpy as np

    height, width = 96, 128
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 2, y * 2, (x + y) % 256], axis=-1).astype("uint8")
    pixels[30:60, 40:90] = (250, 240, 20)
    path = tmp_path_factory.mktemp("images") / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def generator(models_dir, tmp_path_factory):
    """One resident Generator shared by the tests that only need a working engine."""
    from video_gen import Generator

    return Generator(models_dir=models_dir, outputs_dir=tmp_path_factory.mktemp("shared-outputs"))


@pytest.fixture()
def copy_model(models_dir, tmp_path):
    """A private copy of the tiny model (for tests that damage or rename it)."""

    def copy(name: str = "copy") -> Path:
        target = tmp_path / "models" / name
        shutil.copytree(models_dir / TINY_MODEL, target)
        return target

    return copy


@pytest.fixture(scope="session")
def family_models(tmp_path_factory) -> Path:
    """A models folder with the other families, tiny and real, as folders and as single files:
    tiny-sd15/ (SD1.5 base), tiny-adapter/ (AnimateDiff motion adapter), tiny-modelscope/ (ModelScope T2V),
    tiny-sd15-single.safetensors (the base as one original-layout checkpoint). The adapter as one file in
    AnimateDiff's own layout lies outside it, at `family_models.parent / "adapter-single.safetensors"`."""
    from video_gen.tiny.sd import build_tiny_modelscope, build_tiny_motion_adapter, build_tiny_sd15, save_motion_adapter_single_file, save_sd15_single_file

    folder = tmp_path_factory.mktemp("family-models") / "models"
    build_tiny_sd15(folder / "tiny-sd15")
    build_tiny_motion_adapter(folder / "tiny-adapter")
    build_tiny_modelscope(folder / "tiny-modelscope")
    save_sd15_single_file(folder / "tiny-sd15", folder / "tiny-sd15-single.safetensors")
    save_motion_adapter_single_file(folder / "tiny-adapter", folder.parent / "adapter-single.safetensors")
    return folder


@pytest.fixture()
def serve_hub(monkeypatch):
    """The hub faked at its edge (huggingface_hub's `list_repo_files`, `hf_hub_download`, `snapshot_download`):
    `serve_hub({repo: {name in the repository: local file, or None for a file only listed}})` serves those
    repositories; it returns the names fetched, in order."""
    import fnmatch

    import huggingface_hub

    fetched: list[str] = []

    def serve(repos: dict[str, dict[str, Path | None]]) -> list[str]:
        def copy(repo_id, name, local_dir):
            fetched.append(name)
            target = Path(local_dir) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(repos[repo_id][name], target)
            return str(target)

        def snapshot_download(repo_id, *, allow_patterns, local_dir, **kwargs):
            for name in repos[repo_id]:
                if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                    copy(repo_id, name, local_dir)
            return str(local_dir)

        monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, **kwargs: sorted(repos[repo_id]))
        monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                            lambda repo_id, filename, *, local_dir, **kwargs: copy(repo_id, filename, local_dir))
        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
        return fetched

    return serve


def folder_files(folder: Path) -> dict[str, Path]:
    """A local folder as a repository's files (name in the repository -> file), for `serve_hub`."""
    return {str(path.relative_to(folder)): path for path in folder.rglob("*") if path.is_file()}
