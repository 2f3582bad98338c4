"""`video-gen models download` (the hub faked at its edge: list_repo_files and snapshot_download) and
`video-gen models import` (real folders and files)."""

from __future__ import annotations

import fnmatch
import shutil
import socket
from pathlib import Path

import pytest

from video_gen import Generator, GenerationRequest, video_io
from video_gen.cli import main
from video_gen.downloads import KNOWN_MODELS, select_files

# stabilityai/stable-video-diffusion-img2vid-xt's file list (the repository's "Files" page).
SVD_XT_FILES = [
    ".gitattributes", "LICENSE.md", "README.md", "model_index.json", "output_tile.gif",
    "svd_xt.safetensors", "svd_xt_image_decoder.safetensors",
    "feature_extractor/preprocessor_config.json",
    "image_encoder/config.json", "image_encoder/model.fp16.safetensors", "image_encoder/model.safetensors",
    "scheduler/scheduler_config.json",
    "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors",
]
# stable-diffusion-v1-5/stable-diffusion-v1-5 (abridged to one of each kind of duplicate).
SD15_FILES = [
    "model_index.json", "v1-5-pruned.ckpt", "v1-5-pruned.safetensors", "v1-5-pruned-emaonly.safetensors",
    "v1-inference.yaml", "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json", "safety_checker/model.fp16.safetensors", "safety_checker/pytorch_model.bin",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.fp16.safetensors", "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin", "text_encoder/flax_model.msgpack",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
    "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.non_ema.safetensors", "unet/diffusion_pytorch_model.bin",
    "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors",
]
ADAPTER_FILES = [".gitattributes", "README.md", "config.json", "diffusion_pytorch_model.safetensors"]


def test_only_the_needed_files_are_chosen_fp16_first_without_duplicates():
    assert select_files(SVD_XT_FILES) == [
        "feature_extractor/preprocessor_config.json", "image_encoder/config.json",
        "image_encoder/model.fp16.safetensors", "model_index.json", "scheduler/scheduler_config.json",
        "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors", "vae/config.json",
        "vae/diffusion_pytorch_model.fp16.safetensors"]
    chosen = select_files(SD15_FILES)
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in chosen and "text_encoder/model.fp16.safetensors" in chosen
    assert not [name for name in chosen if name.endswith((".bin", ".ckpt", ".msgpack")) or "/" not in name
                and name != "model_index.json"]
    assert not [name for name in chosen if name.startswith("safety_checker/") or "non_ema" in name]
    assert "tokenizer/vocab.json" in chosen and "tokenizer/merges.txt" in chosen
    assert select_files(ADAPTER_FILES) == ["config.json", "diffusion_pytorch_model.safetensors"]


@pytest.fixture()
def fake_hub(monkeypatch, tiny_model_path):
    """The hub's edge: a repository list and a snapshot_download that serves the tiny SVD's files."""
    import huggingface_hub

    calls = []
    served = {name: tiny_model_path / name for name in
              [str(p.relative_to(tiny_model_path)) for p in tiny_model_path.rglob("*") if p.is_file()]}

    def list_repo_files(repo_id, **kwargs):
        calls.append(("list", repo_id))
        return sorted(served) + ["svd_xt.safetensors", "unet/diffusion_pytorch_model.bin"]

    def snapshot_download(repo_id, *, allow_patterns=None, local_dir=None, **kwargs):
        calls.append(("download", repo_id, list(allow_patterns), str(local_dir)))
        for name, source in served.items():
            if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                target = Path(local_dir) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_download_puts_a_known_model_in_models_name_and_it_runs(fake_hub, tmp_path, photo, capsys):
    models = tmp_path / "models"
    assert main(["models", "download", "svd-xt", "--models-dir", str(models)]) == 0
    assert capsys.readouterr().out.strip() == str(models / "svd-xt")
    (_, repo), (_, repo_again, patterns, local_dir) = fake_hub
    assert repo == repo_again == "stabilityai/stable-video-diffusion-img2vid-xt" and local_dir == str(models / "svd-xt")
    assert all(".fp16." in name for name in patterns if name.endswith(".safetensors"))
    assert not any(name.endswith(".bin") or name == "svd_xt.safetensors" for name in patterns)
    result = Generator(models_dir=models, outputs_dir=tmp_path / "out").generate(GenerationRequest(
        image=str(photo), model="svd-xt", width=64, height=64, num_frames=8, num_inference_steps=2, seed=1))
    assert video_io.probe_video(result.path).frames == 8


def test_download_of_an_unknown_name_lists_the_known_ones(tmp_path, capsys):
    assert main(["models", "download", "svd-4k", "--models-dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "svd-4k" in error and all(name in error for name in KNOWN_MODELS)


def test_download_offline_says_so_and_how_to_go_on(tmp_path, monkeypatch, capsys):
    """The real huggingface_hub, with the network unreachable: a clear message, nothing half-installed."""
    def refuse(self, address):
        raise OSError("network unreachable in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "download", "svd-xt", "--models-dir", str(tmp_path / "models")]) == 2
    error = capsys.readouterr().err
    assert "could not download svd-xt" in error and "offline" in error and "models import" in error
    assert not (tmp_path / "models" / "svd-xt").exists()


def test_import_links_a_folder_and_a_file_under_readable_names(family_models, tmp_path, capsys):
    models = tmp_path / "models"
    assert main(["models", "import", str(family_models / "tiny-modelscope"), "--models-dir", str(models)]) == 0
    assert capsys.readouterr().out.strip() == str(models / "tiny-modelscope")
    assert (models / "tiny-modelscope").is_symlink()
    odd = tmp_path / "My Model (v2)!.safetensors"
    shutil.copy(family_models / "tiny-sd15-single.safetensors", odd)
    assert main(["models", "import", str(odd), "--models-dir", str(models), "--copy"]) == 0
    assert "imported animatediff model as 'My-Model-v2'" in capsys.readouterr().err
    copied = models / "My-Model-v2.safetensors"
    assert copied.is_file() and not copied.is_symlink()
    assert main(["models", "import", str(family_models / "tiny-adapter"), "--models-dir", str(models),
                 "--name", "motion"]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--models-dir", str(models)]) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    assert {name: row[1:3] for name, row in rows.items()} == {
        "tiny-modelscope": ["modelscope", "model"], "My-Model-v2": ["animatediff", "model"],
        "motion": ["animatediff", "motion-adapter"]}


def test_import_refuses_what_is_not_a_model_a_pickle_and_a_taken_name(family_models, tmp_path, capsys):
    models = tmp_path / "models"
    notes = tmp_path / "notes"
    notes.mkdir()
    assert main(["models", "import", str(notes), "--models-dir", str(models)]) == 1
    assert "not a diffusers model folder" in capsys.readouterr().err
    ckpt = tmp_path / "old.ckpt"
    ckpt.write_bytes(b"never unpickled")
    assert main(["models", "import", str(ckpt), "--models-dir", str(models)]) == 1
    assert "--allow-pickle" in capsys.readouterr().err
    assert main(["models", "import", str(family_models / "tiny-sd15"), "--models-dir", str(models)]) == 0
    assert main(["models", "import", str(family_models / "tiny-sd15"), "--models-dir", str(models)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert sorted(path.name for path in models.iterdir()) == ["tiny-sd15"]  # nothing half-written
