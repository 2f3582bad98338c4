"""LoRAs (loras.py) on tiny REAL models with REAL PEFT adapters: classification from headers, the request field,
the bad inputs (one line each, nothing started), frames equal to diffusers' own pipeline with the LoRA loaded
directly, stacking, switching without reloading, metadata and `--from`, discovery and `models list`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from video_gen import Generator, GenerationRequest, video_io
from video_gen.cli import main
from video_gen.errors import InvalidRequest
from video_gen.loras import LoraChoice, MAX_LORAS, from_header, parse_flag
from conftest import TINY_MODEL, video_files

TINY = dict(width=64, height=64, num_frames=8, num_inference_steps=2, seed=3, prompt="a cat")
TINY_FLAGS = ["--width", "64", "--height", "64", "--frames", "8", "--steps", "2", "--seed", "3", "--quiet",
              "--prompt", "a cat", "--model", "tiny-sd15"]


# ---- fixtures: a models folder with the tiny families and a loras/ folder ------------------------------------
@pytest.fixture(scope="module")
def lora_models(family_models, models_dir, tmp_path_factory) -> Path:
    """tiny-sd15 (+ tiny-adapter), tiny-modelscope and tiny-svd linked from the session's folders, and loras/:
    style (diffusers: UNet + text encoder), style-b (another seed), kohya (kohya keys), motion (a motion LoRA),
    animatelcm-lora (named as a distill LoRA), wan22-high-noise (a Wan LoRA's header), not-a-lora, truncated."""
    from safetensors.torch import save_file
    import torch

    from video_gen.tiny.sd import build_tiny_lora

    folder = tmp_path_factory.mktemp("lora-models") / "models"
    folder.mkdir()
    for name in ("tiny-sd15", "tiny-adapter", "tiny-modelscope"):
        os.symlink(family_models / name, folder / name)
    os.symlink(models_dir / TINY_MODEL, folder / TINY_MODEL)
    loras = folder / "loras"
    base = family_models / "tiny-sd15"
    build_tiny_lora(base, loras / "style.safetensors", parts=("unet", "text_encoder"), seed=1)
    build_tiny_lora(base, loras / "style-b.safetensors", seed=2)
    build_tiny_lora(base, loras / "kohya.safetensors", style="kohya", seed=3)
    build_tiny_lora(base, loras / "motion.safetensors", parts=("motion",), motion_adapter=family_models / "tiny-adapter",
                    seed=4)
    build_tiny_lora(base, loras / "animatelcm-lora.safetensors", seed=5)
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_A.weight": torch.zeros(4, 8),
               "diffusion_model.blocks.0.self_attn.q.lora_B.weight": torch.zeros(8, 4)},
              str(loras / "wan22-high-noise.safetensors"))
    save_file({"weight": torch.zeros(4, 4)}, str(loras / "not-a-lora.safetensors"))
    # tiny-sd15's own module names, made for a model twice as wide (as an LTX-Video LoRA's names are those of
    # CogVideoX, HunyuanVideo and LTX-2 too): refused by its shapes alone
    from safetensors.torch import load_file

    style = load_file(loras / "style-b.safetensors")
    save_file({key: torch.zeros(value.shape[0], value.shape[1] * 2) if ".lora_A." in key
               else torch.zeros(value.shape[0] * 2, value.shape[1]) for key, value in style.items()},
              str(loras / "wide-style.safetensors"))
    data = (loras / "style-b.safetensors").read_bytes()
    (loras / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    return folder


@pytest.fixture(scope="module")
def lora_generator(lora_models, tmp_path_factory):
    return Generator(models_dir=lora_models, outputs_dir=tmp_path_factory.mktemp("lora-outputs"))


def frames_of(generator, **request) -> np.ndarray:
    result = generator.generate(GenerationRequest(**{**TINY, "model": "tiny-sd15", **request}, output_format="png"))
    return read_frames(result.path)


def read_frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(path)) for path in sorted(Path(folder).glob("frame_*.png"))])


def direct_frames(lora_models, loras: list[tuple[str, float]]) -> np.ndarray:
    """diffusers' own AnimateDiffPipeline with the LoRAs loaded directly, called as a diffusers user would."""
    import torch
    from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler, MotionAdapter

    pipe = AnimateDiffPipeline.from_pretrained(lora_models / "tiny-sd15",
                                               motion_adapter=MotionAdapter.from_pretrained(lora_models / "tiny-adapter"))
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing",
                                                        beta_schedule="linear")
    pipe.set_progress_bar_config(disable=True)
    for name, _ in loras:
        pipe.load_lora_weights(str(lora_models / "loras" / f"{name}.safetensors"), adapter_name=name.replace("-", "_"))
    if loras:
        pipe.set_adapters([name.replace("-", "_") for name, _ in loras], [strength for _, strength in loras])
    frames = pipe(prompt="a cat", num_frames=8, height=64, width=64, num_inference_steps=2, guidance_scale=7.5,
                  generator=torch.Generator("cpu").manual_seed(3), decode_chunk_size=8, output_type="np").frames[0]
    return (np.asarray(frames) * 255).round().astype(np.uint8)


def assert_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


# ---- what a file is, from its header alone -------------------------------------------------------------
def header(*keys: str, shape=(4, 8)) -> dict:
    return {key: {"dtype": "F32", "shape": list(shape), "data_offsets": [0, 0]} for key in keys}


@pytest.mark.parametrize("keys, style", [
    (("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",), "diffusers"),
    (("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight",
      "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight"), "kohya"),
    (("diffusion_model.blocks.0.self_attn.q.lora_A.weight",), "original"),
    (("transformer.blocks.12.attn1.to_q.lora_A.weight",), "diffusers"),
])
def test_key_styles_from_the_header_alone(keys, style):
    assert from_header(header(*keys)).style == style


def test_non_loras_are_none_and_distill_loras_are_told_by_name_or_metadata():
    assert from_header(header("model.diffusion_model.input_blocks.0.0.weight")) is None
    assert from_header(header("down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight")) is None
    wan = header("diffusion_model.blocks.0.self_attn.q.lora_A.weight")
    assert from_header(wan, "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise").distill == "lightx2v"
    assert from_header(wan, "my_style").distill is None
    assert from_header(wan, "x", {"ss_output_name": "Wan21_T2V_14B_lightx2v_cfg_step_distill"}).distill == "lightx2v"
    sd = header("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight")
    assert from_header(sd, "AnimateLCM_sd15_t2v_lora").distill == "lcm"


def test_wan22_pairs_are_told_by_the_wan_family_from_the_file_name():
    from video_gen.families import wan

    lora = header("diffusion_model.blocks.0.self_attn.q.lora_A.weight")
    high = from_header(lora, "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1_high_noise_model")
    low = from_header(lora, "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise")
    assert (wan.noise_half(high), wan.noise_half(low), wan.noise_half(from_header(lora, "my_style"))) == \
        ("high", "low", None)


def pair(down: str, up: str, rank: int, width: int, out: int) -> dict:
    return {down: [rank, width], up: [out, rank]}


@pytest.mark.parametrize("shapes, loader, component, module", [
    (pair("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight",
          "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight", 4, 32, 32),
     "AnimateDiffPipeline", "unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"),
    (pair("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
          "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", 4, 32, 32),
     "AnimateDiffPipeline", "text_encoder", "text_model.encoder.layers.0.self_attn.q_proj"),
    (pair("diffusion_model.blocks.0.self_attn.q.lora_A.weight", "diffusion_model.blocks.0.self_attn.q.lora_B.weight",
          4, 64, 64), "WanPipeline", "transformer", "blocks.0.attn1.to_q"),
    (pair("diffusion_model.transformer_blocks.3.attn2.to_k.lora_A.weight",
          "diffusion_model.transformer_blocks.3.attn2.to_k.lora_B.weight", 4, 64, 64),
     "LTXConditionPipeline", "transformer", "transformer_blocks.3.attn2.to_k"),
])
def test_each_key_style_names_the_modules_diffusers_will_change(shapes, loader, component, module):
    """kohya and original names are read as diffusers' own `lora_state_dict` reads them (on shape-only tensors)."""
    from video_gen.loras import _normalised_targets

    found = _normalised_targets(shapes, loader)
    assert found == {component: {module: (shapes[next(k for k in shapes if "up" in k or "lora_B" in k)][0],
                                          shapes[next(k for k in shapes if "down" in k or "lora_A" in k)][1])}}


# ---- the request field ------------------------------------------------------------------------------
def test_json_cli_and_to_dict_forms():
    request = GenerationRequest.from_dict({"loras": [{"name": "a", "strength": 0.5}, "b:-1", {"name": "c"}]})
    assert request.loras == (LoraChoice("a", 0.5), LoraChoice("b", -1.0), LoraChoice("c", 1.0))
    data = request.to_dict()["loras"]
    assert data == [{"name": "a", "strength": 0.5, "sha256": None}, {"name": "b", "strength": -1.0, "sha256": None},
                    {"name": "c", "strength": 1.0, "sha256": None}]
    assert GenerationRequest.from_json(request.to_json()) == request
    assert parse_flag("style:0.7") == LoraChoice("style", 0.7)
    assert parse_flag(r"C:\loras\style.safetensors") == LoraChoice(r"C:\loras\style.safetensors", 1.0)
    assert parse_flag(r"C:\loras\style.safetensors:0.5") == LoraChoice(r"C:\loras\style.safetensors", 0.5)


@pytest.mark.parametrize("loras, words", [
    ([{"name": "style", "strength": 2.5}], "strength of 'style' must be from -2 to 2, got 2.5"),
    ([{"name": "style", "strength": float("nan")}], "must be from -2 to 2"),
    ([{"name": "style"}, {"name": "style", "strength": 0.3}], "'style' is asked for twice"),
    ([{"name": f"l{index}"} for index in range(MAX_LORAS + 1)], "at most 8 at once, got 9"),
    ([{"name": "style", "strength": "lots"}], "strength of 'style' must be a number"),
    ([{"name": 7}], "each LoRA needs a name"),
    ([{"name": "style", "weight": 1}], "unknown key 'weight'"),
    (42, "must be a list of"),
    ([[1, 2]], "each LoRA must be"),
])
def test_bad_values_are_one_line_naming_loras(loras, words):
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest.from_dict({"loras": loras}).validate()
    assert caught.value.field == "loras" and words in str(caught.value) and "\n" not in str(caught.value)


# ---- bad LoRAs for the engine: one line, nothing started, nothing written -------------------------------------
@pytest.mark.parametrize("model, loras, words", [
    ("tiny-modelscope", [("style", 1)], "ModelScope T2V (tiny-modelscope) cannot take LoRAs"),
    (TINY_MODEL, [("style", 1)], "Stable Video Diffusion (tiny-svd) cannot take LoRAs"),
    ("tiny-sd15", [("wan22-high-noise", 1)], "wan22-high-noise does not fit tiny-sd15 (AnimateDiff): "),
    ("tiny-sd15", [("wide-style", 1)], "wide-style does not fit tiny-sd15 (AnimateDiff): down_blocks.0.attentions.0."
                                       "transformer_blocks.0.attn1.to_k: LoRA made for width 64, this model has 32"),
    ("tiny-sd15", [("styel", 1)], "'styel' is not installed (close names: style"),
    ("tiny-sd15", [("truncated", 1)], "truncated cannot be read (truncated.safetensors is truncated"),
    ("tiny-sd15", [("not-a-lora", 1)], "not-a-lora is not a LoRA (not-a-lora.safetensors has no lora_A/lora_B"),
])
def test_bad_loras_refused_before_anything_loads(lora_generator, photo, model, loras, words):
    loads = lora_generator.loads
    outputs = video_files(lora_generator.outputs_dir)
    request = GenerationRequest(**{**TINY, "model": model, "loras": tuple(LoraChoice(*lora) for lora in loras)},
                                image=str(photo) if model == TINY_MODEL else None)
    with pytest.raises(InvalidRequest) as caught:
        lora_generator.generate(request)
    message = str(caught.value)
    assert words in message and "\n" not in message and caught.value.field == "loras"
    assert lora_generator.loads == loads and video_files(lora_generator.outputs_dir) == outputs


def test_pickled_lora_is_refused_unless_allowed(lora_models, tmp_path):
    import torch
    from safetensors.torch import load_file

    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    os.symlink(lora_models / "tiny-sd15", models / "tiny-sd15")
    os.symlink(lora_models / "tiny-adapter", models / "tiny-adapter")
    torch.save(load_file(lora_models / "loras" / "style-b.safetensors"), models / "loras" / "pickled.pt")
    request = GenerationRequest(**TINY, model="tiny-sd15", loras=(LoraChoice("pickled"),))
    with pytest.raises(InvalidRequest, match="pickled is a pickle file .* pass --allow-pickle"):
        Generator(models_dir=models, outputs_dir=tmp_path / "out").prepare(request)
    prepared = Generator(models_dir=models, outputs_dir=tmp_path / "out", allow_pickle=True).prepare(request)
    assert prepared.loras[0].components == ("unet",) and prepared.loras[0].allow_pickle


# ---- frames ----------------------------------------------------------------------------------------------
def test_strength_zero_is_no_lora_and_strength_one_is_diffusers_with_the_lora(lora_generator, lora_models):
    plain = frames_of(lora_generator)
    assert np.array_equal(frames_of(lora_generator, loras=(LoraChoice("style", 0.0),)), plain)
    with_lora = frames_of(lora_generator, loras=(LoraChoice("style", 1.0),))
    assert not np.array_equal(with_lora, plain)
    assert_close(with_lora, direct_frames(lora_models, [("style", 1.0)]))
    # and back to none: the adapters stay loaded but inactive, the frames are the base model's again
    assert np.array_equal(frames_of(lora_generator), plain)


def test_kohya_keys_and_motion_loras_equal_diffusers(lora_generator, lora_models):
    assert_close(frames_of(lora_generator, loras=(LoraChoice("kohya", 0.8),)), direct_frames(lora_models, [("kohya", 0.8)]))
    assert_close(frames_of(lora_generator, loras=(LoraChoice("motion", 1.0),)),
                 direct_frames(lora_models, [("motion", 1.0)]))


def test_two_stacked_equal_set_adapters_with_both_and_switching_never_reloads(lora_generator, lora_models):
    frames_of(lora_generator, loras=(LoraChoice("style", 1.0),))  # resident, with one adapter loaded
    loads = lora_generator.loads
    stacked = frames_of(lora_generator, loras=(LoraChoice("style", 0.7), LoraChoice("style-b", -0.5)))
    switched = frames_of(lora_generator, loras=(LoraChoice("style-b", 1.2),))
    assert lora_generator.loads == loads  # the base model stayed resident
    assert_close(stacked, direct_frames(lora_models, [("style", 0.7), ("style-b", -0.5)]))
    assert_close(switched, direct_frames(lora_models, [("style-b", 1.2)]))  # a fresh pipeline's frames


# ---- reproducible -------------------------------------------------------------------------------------------
def test_metadata_history_and_from_round_trip_bit_exact(lora_models, tmp_path, capsys):
    from video_gen.checkpoints import file_sha256

    outputs = tmp_path / "outputs"
    first = tmp_path / "first"
    code = main(["generate", "--models-dir", str(lora_models), "--outputs-dir", str(outputs), "--lora", "style:0.6",
                 "--lora", "motion", "--format", "png", "--output", str(first), *TINY_FLAGS])
    assert code == 0, capsys.readouterr().err
    stored = video_io.read_metadata(first)
    sha = file_sha256(lora_models / "loras" / "style.safetensors")
    assert stored["request"]["loras"][0] == {"name": "style", "strength": 0.6, "sha256": sha}
    assert [(lora["name"], lora["strength"], lora["changes"]) for lora in stored["loras"]] == [
        ("style", 0.6, ["text_encoder", "unet"]), ("motion", 1.0, ["unet"])]
    second = tmp_path / "second"
    code = main(["generate", "--from", str(first), "--models-dir", str(lora_models), "--outputs-dir", str(outputs),
                 "--format", "png", "--output", str(second), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert np.array_equal(read_frames(first), read_frames(second))
    assert video_io.read_metadata(second)["request"]["loras"] == stored["request"]["loras"]


def test_history_keeps_each_loras_name_hash_and_strength(lora_generator):
    result = lora_generator.generate(GenerationRequest(**TINY, model="tiny-sd15", loras=(LoraChoice("kohya", 0.25),)))
    entry = lora_generator.history.get(result.job_id)
    assert entry.request["loras"] == [{"name": "kohya", "strength": 0.25, "sha256": result.request.loras[0].sha256}]
    assert entry.info["loras"][0]["sha256"] == result.request.loras[0].sha256


def test_a_changed_lora_warns_naming_it_and_a_missing_one_refuses(lora_models, tmp_path, capsys):
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    for name in ("tiny-sd15", "tiny-adapter"):
        os.symlink(lora_models / name, models / name)
    shutil.copy(lora_models / "loras" / "style-b.safetensors", models / "loras" / "mine.safetensors")
    common = ["--models-dir", str(models), "--outputs-dir", str(tmp_path / "out"), *TINY_FLAGS]
    assert main(["generate", "--lora", "mine:0.5", "--output", str(tmp_path / "a.mp4"), *common]) == 0
    capsys.readouterr()
    shutil.copy(lora_models / "loras" / "kohya.safetensors", models / "loras" / "mine.safetensors")
    assert main(["generate", "--from", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "b.mp4"), *common]) == 0
    err = capsys.readouterr().err
    assert "warning: loras: mine has changed since these settings were saved" in err
    stored = json.loads((tmp_path / "a.json").read_text())["request"]
    assert main(["json", "--models-dir", str(models), json.dumps({**stored, "output": str(tmp_path / "j.mp4")})]) == 0
    assert json.loads(capsys.readouterr().out)["notes"][0].startswith("loras: mine has changed")
    (models / "loras" / "mine.safetensors").unlink()
    assert main(["generate", "--from", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "c.mp4"), *common]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("video-gen: error: --lora (loras): 'mine' is not installed") and "\n" not in err
    assert not (tmp_path / "c.mp4").exists()


def test_cli_flag_and_json_mode_bad_lora_exit_1(lora_models, tmp_path, capsys):
    common = ["--models-dir", str(lora_models), "--outputs-dir", str(tmp_path)]
    assert main(["generate", "--lora", "style:3", *common, *TINY_FLAGS]) == 1
    assert "--lora (loras): strength of 'style' must be from -2 to 2, got 3" in capsys.readouterr().err
    request = {**TINY, "model": "tiny-sd15", "loras": [{"name": "style"}, {"name": "style"}]}
    assert main(["json", *common, json.dumps(request)]) == 1
    assert "asked for twice" in json.loads(capsys.readouterr().out)["error"]
    # the model's module names with another model's shapes: refused before anything loads, in one line
    assert main(["generate", "--lora", "wide-style", *common, *TINY_FLAGS]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("video-gen: error: --lora (loras): wide-style does not fit tiny-sd15 (AnimateDiff): ")
    assert "LoRA made for width 64, this model has 32" in err and "\n" not in err
    assert not video_files(tmp_path)


# ---- defaults, memory, discovery ----------------------------------------------------------------------------
def test_a_distill_lora_sets_its_own_steps_guidance_and_scheduler(lora_generator):
    prepared = lora_generator.prepare(GenerationRequest(prompt="a cat", model="tiny-sd15",
                                                        loras=(LoraChoice("animatelcm-lora"),)))
    request = prepared.request
    assert (request.num_inference_steps, request.max_guidance_scale, request.scheduler) == (6, 1.5, "lcm")
    plain = lora_generator.prepare(GenerationRequest(prompt="a cat", model="tiny-sd15")).request
    assert (plain.num_inference_steps, plain.scheduler) == (25, "euler")
    assert lora_generator.defaults("tiny-sd15", loras=(LoraChoice("animatelcm-lora"),))["scheduler"] == "lcm"


def test_memory_estimate_counts_lora_weights(lora_generator):
    request = GenerationRequest(**TINY, model="tiny-sd15")
    with_lora = request.replace(loras=(LoraChoice("style"), LoraChoice("motion")))
    plain, loaded = lora_generator.memory_ladder(request)[0], lora_generator.memory_ladder(with_lora)[0]
    numel = sum(lora.info.numel for lora in lora_generator.prepare(with_lora).loras)
    assert loaded.stage_bytes["denoising"] - plain.stage_bytes["denoising"] == numel * plain.itemsize


def test_models_list_shows_loras_with_the_models_they_fit_and_comfyui_folders(lora_models, tmp_path, capsys):
    assert main(["models", "list", "--models-dir", str(lora_models)]) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    assert rows["style"][1:3] == ["animatediff", "lora (diffusers; fits tiny-sd15)"]
    assert rows["motion"][1:3] == ["animatediff", "lora (diffusers; fits tiny-sd15)"]
    assert rows["wan22-high-noise"][1:3] == ["-", "lora (original; fits no installed model)"]
    assert rows["wide-style"][1:3] == ["-", "lora (diffusers; fits no installed model)"]  # other shapes
    assert rows["tiny-sd15"][2] == "model"
    comfy = tmp_path / "ComfyUI" / "models" / "loras"
    comfy.mkdir(parents=True)
    shutil.copy(lora_models / "loras" / "kohya.safetensors", comfy / "comfy-style.safetensors")
    (comfy / "old.pt").write_bytes(b"not read")
    empty = tmp_path / "empty"
    assert main(["models", "list", "--models-dir", str(empty), "--extra-models-dir", str(tmp_path / "ComfyUI")]) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    assert rows["comfy-style"][1:3] == ["-", "lora (kohya; fits no installed model)"]  # no model in that folder
    assert rows["old"][2].startswith("lora (pickle file: refused unless --allow-pickle")
    # found there by name for a job too
    generator = Generator(models_dir=lora_models, outputs_dir=tmp_path / "out", extra_models_dirs=[tmp_path / "ComfyUI"])
    prepared = generator.prepare(GenerationRequest(**TINY, model="tiny-sd15", loras=(LoraChoice("comfy-style"),)))
    assert prepared.loras[0].path == comfy / "comfy-style.safetensors"


def test_a_lora_is_not_a_model(lora_models, tmp_path):
    from video_gen.errors import ModelNotFound

    with pytest.raises(ModelNotFound, match="style is a LoRA, not a model"):
        Generator(models_dir=lora_models, outputs_dir=tmp_path).prepare(GenerationRequest(**TINY, model="style"))


# ---- the page's API ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_server(lora_models, tmp_path_factory):
    from test_app import start_server

    demo, running = start_server(lora_models, tmp_path_factory.mktemp("lora-web"), tmp_path_factory.mktemp("lora-temp"))
    yield running
    demo.close()


def test_generate_api_takes_loras_last_and_refuses_bad_ones_in_one_line(lora_server, tmp_path, photo):
    from gradio_client import Client, handle_file

    client = Client(lora_server.url, verbose=False, download_files=str(tmp_path))
    names = [parameter["parameter_name"] for parameter in client.view_api(print_info=False, return_format="dict")[
        "named_endpoints"]["/generate"]["parameters"]]
    assert names[names.index("speed") + 1] == "loras"  # appended after the inputs published before it
    common = dict(image=None, model="tiny-sd15", prompt="a cat", duration=1, fps=8, resolution="64x64", num_inference_steps=4,
                  seed=5, api_name="/generate")
    video, info, seed, *_ = client.predict(loras=[{"name": "style", "strength": 0.5}], **common)
    assert info["loras"][0]["name"] == "style" and info["loras"][0]["strength"] == 0.5
    assert info["parameters"]["loras"][0]["sha256"] == info["loras"][0]["sha256"]
    plain = client.predict(**common)[1]  # loras left out: none
    assert "loras" not in plain and plain["parameters"]["loras"] == []
    for bad, words in (([{"name": "style", "strength": 9}], "strength of 'style' must be from -2 to 2, got 9"),
                       ("nonsense[", "loras:"),
                           ([{"name": "wan22-high-noise"}], "wan22-high-noise does not fit tiny-sd15")):
        with pytest.raises(Exception) as caught:
            client.predict(loras=bad, **common)
        assert words in str(caught.value) and "\n" not in str(caught.value).strip()
    with pytest.raises(Exception, match="Stable Video Diffusion .* cannot take LoRAs"):
        client.predict(loras=[{"name": "style"}], **{**common, "model": TINY_MODEL, "num_inference_steps": 10,
                                                     "image": handle_file(str(photo))})
    assert lora_server.generator.loads >= 1


def test_a_lora_on_weights_stored_in_fp8_runs_in_the_compute_dtype(lora_models, tmp_path):
    """The 12 GB recipe (fp8 storage plus a LoRA): PEFT made the adapters fp8 too and then failed in the first
    step ("mul_cpu_reduced_float" not implemented for Float8_e4m3fn); they are kept in the compute dtype."""
    import torch

    generator = Generator(models_dir=lora_models, outputs_dir=tmp_path)
    plain = frames_of(generator, memory_plan="none+fp8")
    styled = frames_of(generator, memory_plan="none+fp8", loras=(LoraChoice("style", 1.0),))
    unet = generator.resident_pipeline.unet
    assert unet.conv_in.weight.dtype == torch.float8_e4m3fn  # the base weights stay in fp8
    adapters = {parameter.dtype for name, parameter in unet.named_parameters() if ".lora_" in name}
    assert adapters == {torch.float32} and np.abs(styled.astype(int) - plain.astype(int)).max() > 1


def test_unused_adapters_beyond_the_cap_are_dropped_and_out_of_memory_keeps_only_the_jobs(lora_generator, monkeypatch):
    from video_gen import loras

    plain = frames_of(lora_generator)
    frames_of(lora_generator, loras=(LoraChoice("style"), LoraChoice("motion")))
    pipe = lora_generator.resident_pipeline
    monkeypatch.setattr(loras, "MAX_RESIDENT_ADAPTERS", 1)
    job = lora_generator.prepare(GenerationRequest(**TINY, model="tiny-sd15", loras=(LoraChoice("kohya"),)))
    loras.apply(pipe, job.loras)
    assert loras.loaded_adapters(pipe) == [job.loras[0].adapter_name]
    assert set(pipe.get_list_adapters()["unet"]) == {job.loras[0].adapter_name}
    loras.drop_unused(pipe, ())  # what the engine does on out-of-memory
    assert loras.loaded_adapters(pipe) == [] and not pipe.get_list_adapters().get("unet")
    assert np.array_equal(frames_of(lora_generator), plain)


def test_models_import_puts_a_lora_in_the_loras_folder(lora_models, tmp_path, capsys):
    assert main(["models", "import", str(lora_models / "loras" / "motion.safetensors"), "--models-dir",
                 str(tmp_path / "models"), "--name", "zoom"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "models" / "loras" / "zoom.safetensors")


def test_a_text_encoder_lora_clears_kept_prompt_embeddings(lora_generator):
    prompts = pytest.importorskip("video_gen.families.prompts", reason="the prompt cache is not in this tree")
    from video_gen import loras

    frames_of(lora_generator)
    pipe = lora_generator.resident_pipeline
    prompts.cached(pipe, ("a cat",), lambda: "embeddings")
    job = lora_generator.prepare(GenerationRequest(**TINY, model="tiny-sd15", loras=(LoraChoice("style", 0.5),)))
    loras.apply(pipe, job.loras)  # style changes the text encoder: the kept embeddings go
    assert prompts.size(pipe) == 0
    prompts.cached(pipe, ("a cat",), lambda: "embeddings")
    loras.apply(pipe, job.loras + lora_generator.prepare(
        GenerationRequest(**TINY, model="tiny-sd15", loras=(LoraChoice("kohya"),))).loras)  # UNet only: kept
    assert prompts.size(pipe) == 1


def test_a_sweep_varies_a_loras_strength(lora_generator, photo):
    from video_gen.sweep import Sweep, parse_vary, plan_sweep

    base = GenerationRequest(**{**TINY, "model": "tiny-sd15"}, loras=(LoraChoice("motion", 0.5),))
    plan = plan_sweep(lora_generator, base, [parse_vary("lora:style=0,1")])
    assert [cell.job.request.loras for cell in plan.cells] == [
        (LoraChoice("motion", 0.5, plan.cells[0].job.request.loras[0].sha256),
         LoraChoice("style", 0.0, plan.cells[0].job.request.loras[1].sha256)),
        (LoraChoice("motion", 0.5, plan.cells[1].job.request.loras[0].sha256),
         LoraChoice("style", 1.0, plan.cells[1].job.request.loras[1].sha256))]
    result = Sweep(lora_generator, plan).run()
    assert result.grid.exists() and len(result.results) == 2
    assert [cell.request.loras[1].strength for cell in result.results] == [0.0, 1.0]
    assert [cell["loras"][1]["strength"] for cell in (cell.info() for cell in result.results)] == [0.0, 1.0]
    with pytest.raises(InvalidRequest, match="^vary: .*strength must be"):
        parse_vary("lora:style=0,strong")
    with pytest.raises(InvalidRequest, match="^vary: .*-2"):
        parse_vary("lora:style=0,5")
