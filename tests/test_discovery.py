"""Finding models in every place: the models folder (folders and single files told apart by their
safetensors header), the Hugging Face cache, and ComfyUI/A1111-style folders named with --extra-models-dir."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from video_gen import Generator, GenerationRequest, video_io
from video_gen.cli import main
from video_gen.catalog import classify_checkpoint, discover, list_models, resolve_model

TINY_FLAGS = ["--width", "64", "--height", "64", "--frames", "8", "--steps", "2", "--seed", "3", "--quiet"]


def write_header_only_checkpoint(path: Path, names: list[str], dtype=None) -> Path:
    """A real .safetensors file whose tensors carry a checkpoint's names (tiny shapes): what discovery reads."""
    import torch
    from safetensors.torch import save_file

    save_file({name: torch.zeros(2, dtype=dtype or torch.float16) for name in names}, str(path))
    return path


SVD_NAMES = ["model.diffusion_model.input_blocks.1.0.time_stack.in_layers.0.weight",
             "conditioner.embedders.0.open_clip.model.visual.proj", "first_stage_model.decoder.conv_in.weight"]
SDXL_NAMES = ["model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.1.model.ln_final.weight"]


def test_checkpoints_are_told_apart_by_their_tensor_names():
    assert classify_checkpoint(SVD_NAMES) == "svd"
    assert classify_checkpoint(SDXL_NAMES) == "sdxl"
    assert classify_checkpoint(["model.diffusion_model.input_blocks.0.0.weight",
                                "cond_stage_model.transformer.text_model.final_layer_norm.weight"]) == "sd15"
    assert classify_checkpoint(["model.diffusion_model.input_blocks.0.0.weight",
                                "cond_stage_model.model.ln_final.weight"]) == "sd2"
    assert classify_checkpoint(["down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight",
                                "mid_block.motion_modules.0.temporal_transformer.proj_in.weight"]) == "motion-adapter"
    assert classify_checkpoint(["lora_unet_down_blocks_0.alpha"]) == "unknown"


def test_the_models_folder_lists_every_family_from_folders_and_single_files(family_models, models_dir, tmp_path,
                                                                            capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("tiny-sd15", "tiny-adapter", "tiny-modelscope"):
        (folder / name).symlink_to(family_models / name)
    (folder / "tiny-svd").symlink_to(models_dir / "tiny-svd")
    shutil.copy(family_models / "tiny-sd15-single.safetensors", folder / "community.safetensors")
    shutil.copy(family_models.parent / "adapter-single.safetensors", folder / "mm_sd_v15.safetensors")
    write_header_only_checkpoint(folder / "svd_xt.safetensors", SVD_NAMES)
    write_header_only_checkpoint(folder / "sdxl_base.safetensors", SDXL_NAMES)  # recognised, of no family here
    (folder / "old.ckpt").write_bytes(b"not opened")
    (folder / "notes.txt").write_text("ignored")

    assert main(["models", "list", "--models-dir", str(folder)]) == 0
    rows = {row[0]: row for row in (line.split("\t") for line in capsys.readouterr().out.strip().splitlines())}
    assert all(len(row) == 7 for row in rows.values())  # name, family, kind, precision, size, source, path
    assert set(rows) == {"tiny-sd15", "tiny-adapter", "tiny-modelscope", "tiny-svd", "community", "mm_sd_v15",
                         "svd_xt", "sdxl_base", "old"}
    assert rows["tiny-sd15"][1:3] == ["animatediff", "model"]
    assert rows["community"][1:4] == ["animatediff", "model", "fp32"]
    assert rows["tiny-adapter"][1:3] == ["animatediff", "motion-adapter"]
    assert rows["mm_sd_v15"][1:3] == ["animatediff", "motion-adapter"]
    assert rows["tiny-modelscope"][1:3] == ["modelscope", "model"]
    assert rows["tiny-svd"][1:4] == ["svd", "model", "fp16+fp32"]
    assert rows["svd_xt"][1] == "svd" and "not supported yet" in rows["svd_xt"][2]
    assert rows["svd_xt"][3] == "fp16"
    assert rows["sdxl_base"][1:3] == ["-", "unsupported (an SDXL checkpoint: not supported)"]
    assert "--allow-pickle" in rows["old"][2]
    assert rows["community"][6] == str(folder / "community.safetensors")
    assert rows["tiny-modelscope"][4].endswith("MB")
    # What can run on its own (the page's dropdown): no adapters, nothing unsupported.
    assert [info.name for info in list_models(folder)] == ["community", "tiny-modelscope", "tiny-sd15", "tiny-svd"]


def make_hf_cache(hub: Path, family_models: Path) -> None:
    """huggingface_hub's cache layout: models--ORG--NAME/{refs/main, snapshots/REV/...}, files as links to blobs."""
    for repo, source in (("models--someone--tiny-sd15", family_models / "tiny-sd15"),
                         ("models--guoyww--tiny-adapter", family_models / "tiny-adapter")):
        revision = "0123456789abcdef0123456789abcdef01234567"
        snapshot = hub / repo / "snapshots" / revision
        blobs = hub / repo / "blobs"
        blobs.mkdir(parents=True)
        for file in sorted(source.rglob("*")):
            if file.is_file():
                blob = blobs / f"{abs(hash(str(file))):x}"
                shutil.copy(file, blob)
                target = snapshot / file.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(os.path.relpath(blob, target.parent))
        (hub / repo / "refs").mkdir()
        (hub / repo / "refs" / "main").write_text(revision)
    # An old, superseded snapshot is not listed.
    stale = hub / "models--someone--tiny-sd15" / "snapshots" / "old"
    stale.mkdir()
    (stale / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))


def test_the_hugging_face_cache_is_found_and_runs_by_repository_name(family_models, tmp_path, monkeypatch, capsys):
    hub = tmp_path / "hf-home" / "hub"
    make_hf_cache(hub, family_models)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # the default place under HF_HOME
    empty_models = tmp_path / "models"
    found = {info.name: info for info in discover(empty_models)}
    assert set(found) == {"someone/tiny-sd15", "guoyww/tiny-adapter"}
    assert found["someone/tiny-sd15"].source == "hf-cache" and found["someone/tiny-sd15"].path.name.startswith("0123")
    assert found["guoyww/tiny-adapter"].role == "motion-adapter"

    output = tmp_path / "from-cache.mp4"
    code = main(["generate", "--models-dir", str(empty_models), "--model", "someone/tiny-sd15", "--prompt", "a cat",
                 "--output", str(output), *TINY_FLAGS])
    assert code == 0, capsys.readouterr().err
    assert video_io.probe_video(output).frames == 8


def make_comfyui_tree(root: Path, family_models: Path, models_dir: Path) -> Path:
    """ComfyUI's layout: models/checkpoints, models/animatediff_models, models/svd, models/diffusers."""
    models = root / "ComfyUI" / "models"
    for sub in ("checkpoints", "animatediff_models", "svd", "diffusers", "loras"):
        (models / sub).mkdir(parents=True)
    shutil.copy(family_models / "tiny-sd15-single.safetensors", models / "checkpoints" / "dreamy.safetensors")
    shutil.copy(family_models.parent / "adapter-single.safetensors", models / "animatediff_models" / "mm_v3.safetensors")
    write_header_only_checkpoint(models / "svd" / "svd_xt_1_1.safetensors", SVD_NAMES)
    (models / "diffusers" / "t2v").symlink_to(family_models / "tiny-modelscope")
    (models / "diffusers" / "svd-folder").symlink_to(models_dir / "tiny-svd")
    write_header_only_checkpoint(models / "loras" / "style.safetensors", ["lora_unet_down_blocks_0.alpha"])
    (root / "ComfyUI" / "custom_nodes" / "x").mkdir(parents=True)
    return root / "ComfyUI"


def test_a_comfyui_folder_given_with_extra_models_dir_lists_and_runs(family_models, models_dir, tmp_path, capsys):
    comfy = make_comfyui_tree(tmp_path, family_models, models_dir)
    own = tmp_path / "models"
    own.mkdir()
    (own / "tiny-sd15").symlink_to(family_models / "tiny-sd15")  # installed SD1.5 folder: the tiny file's configs
    assert main(["models", "list", "--models-dir", str(own), "--extra-models-dir", str(comfy)]) == 0
    rows = {row.split("\t")[0]: row.split("\t") for row in capsys.readouterr().out.strip().splitlines()}
    assert {name: rows[name][1] for name in rows} == {
        "tiny-sd15": "animatediff", "dreamy": "animatediff", "mm_v3": "animatediff", "svd_xt_1_1": "svd",
        "t2v": "modelscope", "svd-folder": "svd", "style": "-"}
    assert rows["dreamy"][5] == str(comfy) and rows["style"][2].startswith("unsupported")

    output = tmp_path / "comfy.mp4"
    code = main(["generate", "--models-dir", str(own), "--extra-models-dir", str(comfy), "--model", "dreamy",
                 "--motion-adapter", "mm_v3", "--prompt", "a cat", "--output", str(output), *TINY_FLAGS])
    assert code == 0, capsys.readouterr().err
    assert video_io.probe_video(output).frames == 8
    generator = Generator(models_dir=own, extra_models_dirs=[comfy])
    assert {info.name for info in generator.list_models()} == {"tiny-sd15", "dreamy", "t2v", "svd-folder"}


def test_a_single_file_of_other_widths_without_a_matching_folder_is_a_clear_error(family_models, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(family_models / "tiny-sd15-single.safetensors", folder / "toy.safetensors")
    (folder / "adapter").symlink_to(family_models / "tiny-adapter")
    with pytest.raises(Exception, match=r"layout of an SD1.5 checkpoint but not its sizes"):
        resolve_model("toy", folder)


def test_single_file_svd_is_recognised_but_refused_with_the_way_out(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    write_header_only_checkpoint(folder / "svd_xt.safetensors", SVD_NAMES)
    with pytest.raises(Exception, match="single-file SVD is not supported yet: use the diffusers folder"):
        Generator(models_dir=folder).prepare(GenerationRequest(model="svd_xt", image="x.png"))
