"""LTX-Video through the app: tiny REAL models (transformer, VAE, T5, latent upsampler) saved as a diffusers
folder and as one official-layout single file, loaded through the user's code path; frames compared with
diffusers' pipelines called directly with the same seed (PNG, within 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from video_gen import GenerationRequest
from video_gen.errors import InvalidRequest
from video_gen.families import ltx, prompts
from video_gen.images import fit_to_size, open_image
from video_gen.request import Keyframe

SIZE = dict(width=64, height=64)
FAST = dict(**SIZE, num_frames=17, num_inference_steps=2, max_guidance_scale=3.0, seed=7, prompt="a red cat walks",
            negative_prompt="blurry", output_format="png")


@pytest.fixture(scope="module")
def ltx_models(tmp_path_factory) -> Path:
    """tiny-ltx/ (diffusers folder), ltxv-tiny.safetensors (its transformer and VAE as one original-layout file),
    its transformer alone as a Q4_0 GGUF and as a .safetensors, tiny-upscaler/ (a latent upsampler)."""
    from video_gen.tiny.ltx import (build_tiny_ltx, build_tiny_ltx_upsampler, save_ltx_single_file,
                                       save_ltx_transformer)

    folder = tmp_path_factory.mktemp("ltx-models") / "models"
    build_tiny_ltx(folder / "tiny-ltx")
    save_ltx_single_file(folder / "tiny-ltx", folder / "ltxv-tiny.safetensors")
    save_ltx_transformer(folder / "tiny-ltx", folder / "ltxv-tiny-Q4_0.gguf", quant="Q4_0")
    save_ltx_transformer(folder / "tiny-ltx", folder / "ltxv-tiny-transformer.safetensors")
    build_tiny_ltx_upsampler(folder / "tiny-upscaler", folder / "tiny-ltx")
    return folder


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, photo) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ltx-pictures")
    made = {"first": photo}
    for name, colour in (("last", (20, 200, 90)), ("middle", (240, 240, 10)), ("late", (10, 10, 220))):
        made[name] = folder / f"{name}.png"
        Image.new("RGB", (80, 60), colour).save(made[name])
    made["text"] = folder / "notes.png"
    made["text"].write_text("not a picture")
    return made


@pytest.fixture(scope="module")
def gen(ltx_models, tmp_path_factory):
    from video_gen import Generator

    return Generator(models_dir=ltx_models, outputs_dir=tmp_path_factory.mktemp("ltx-outputs"))


@pytest.fixture(scope="module")
def reference(ltx_models):
    """diffusers' own LTXConditionPipeline over the same folder, loaded directly."""
    from diffusers import LTXConditionPipeline

    pipe = LTXConditionPipeline.from_pretrained(ltx_models / "tiny-ltx")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fitted(path) -> Image.Image:
    return fit_to_size(open_image(path), SIZE["width"], SIZE["height"], "crop")


def png_frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in sorted(Path(folder).glob("frame_*.png"))])


def uint8(frames) -> np.ndarray:
    return (np.asarray(frames) * 255).round().astype(np.uint8)


def assert_close(app: np.ndarray, direct: np.ndarray) -> None:
    assert app.shape == direct.shape
    assert np.abs(app.astype(int) - direct.astype(int)).max() <= 1


def direct_options(**extra) -> dict:
    import torch

    options = dict(prompt=FAST["prompt"], negative_prompt=FAST["negative_prompt"], num_frames=FAST["num_frames"],
                   frame_rate=24, guidance_scale=FAST["max_guidance_scale"], decode_timestep=ltx.DECODE_TIMESTEP,
                   decode_noise_scale=ltx.DECODE_NOISE_SCALE,
                   generator=torch.Generator("cpu").manual_seed(FAST["seed"]))
    options.update(extra)
    return options


def test_first_frame_only_matches_the_image_to_video_pipeline_and_caches_the_prompt(gen, reference, pictures):
    from diffusers import LTXImageToVideoPipeline

    request = GenerationRequest(image=str(pictures["first"]), model="tiny-ltx", **FAST)
    result = gen.generate(request)
    app = png_frames(result.path)
    direct = LTXImageToVideoPipeline.from_pipe(reference)(image=fitted(pictures["first"]), **SIZE,
                                                         num_inference_steps=2, output_type="np",
                                                         **direct_options()).frames[0]
    assert_close(app, uint8(direct))
    assert result.request.fps == 24 and len(app) == 17

    # The same prompt again: the text encoder never runs, and the frames are the same
    encoder_calls = []
    hook = gen.resident_pipeline.text_encoder.register_forward_pre_hook(lambda module, args: encoder_calls.append(1))
    encodes = prompts.calls
    try:
        again = gen.generate(request)
    finally:
        hook.remove()
    assert encoder_calls == [] and prompts.calls == encodes
    assert np.array_equal(png_frames(again.path), app)
    # Another prompt runs it once
    gen.generate(request.replace(prompt="a dog"))
    assert prompts.calls == encodes + 1


def test_first_and_last_frame_match_the_condition_pipeline(gen, reference, pictures):
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    result = gen.generate(GenerationRequest(image=str(pictures["first"]), last_image=str(pictures["last"]),
                                            model="tiny-ltx", **FAST))
    conditions = [LTXVideoCondition(image=fitted(pictures["first"]), frame_index=0),
                  LTXVideoCondition(image=fitted(pictures["last"]), frame_index=16)]
    direct = reference(conditions=conditions, **SIZE, num_inference_steps=2, output_type="np",
                       image_cond_noise_scale=ltx.IMAGE_COND_NOISE_SCALE, **direct_options()).frames[0]
    assert_close(png_frames(result.path), uint8(direct))


def test_two_keyframes_sit_on_the_frame_grid_and_match_the_condition_pipeline(gen, reference, pictures):
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    request = GenerationRequest(image=str(pictures["first"]), model="tiny-ltx",
                                keyframes=(Keyframe(str(pictures["middle"]), 7), Keyframe(str(pictures["late"]), 16)),
                                **{**FAST, "num_frames": 25})
    job = gen.prepare(request)
    assert "keyframe 1 (middle.png) at frame 8 (asked for 7; LTX's 8-frame grid)" in job.notes
    assert "keyframe 2 (late.png) at frame 16" in job.notes
    result = gen.generate(job)
    conditions = [LTXVideoCondition(image=fitted(pictures["first"]), frame_index=0),
                  LTXVideoCondition(image=fitted(pictures["middle"]), frame_index=8),
                  LTXVideoCondition(image=fitted(pictures["late"]), frame_index=16)]
    direct = reference(conditions=conditions, **SIZE, num_inference_steps=2, output_type="np",
                       image_cond_noise_scale=ltx.IMAGE_COND_NOISE_SCALE,
                       **direct_options(num_frames=25)).frames[0]
    assert_close(png_frames(result.path), uint8(direct))
    # The request keeps the keyframes as asked, as JSON's list of {image, frame}
    stored = json.loads(result.request.to_json())["keyframes"]
    assert stored == [{"image": str(pictures["middle"]), "frame": 7}, {"image": str(pictures["late"]), "frame": 16}]
    assert GenerationRequest.from_json(result.request.to_json()).keyframes == request.keyframes


def test_two_stage_output_matches_diffusers_recipe(gen, reference, ltx_models, pictures):
    from diffusers import LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    events = []
    result = gen.generate(GenerationRequest(image=str(pictures["first"]), model="tiny-ltx", upscale="2x", **FAST),
                          on_event=events.append)
    assert any("stage 2 of 2" in getattr(event, "message", "") for event in events)

    upsampler = LTXLatentUpsamplePipeline(
        vae=reference.vae,
        latent_upsampler=LTXLatentUpsamplerModel.from_pretrained(ltx_models / "tiny-upscaler" / "latent_upsampler"))
    conditions = [LTXVideoCondition(image=fitted(pictures["first"]), frame_index=0)]
    options = direct_options(image_cond_noise_scale=ltx.IMAGE_COND_NOISE_SCALE)
    latents = reference(conditions=conditions, width=32, height=32, num_inference_steps=2, output_type="latent",
                        **options).frames
    latents = upsampler(latents=latents, output_type="latent").frames
    direct = reference(conditions=conditions, **SIZE, latents=latents, num_inference_steps=ltx.REFINE_STEPS,
                       denoise_strength=ltx.REFINE_STRENGTH, output_type="np", **options).frames[0]
    assert_close(png_frames(result.path), uint8(direct))


def test_single_file_gives_the_folders_frames(gen, pictures):
    request = GenerationRequest(image=str(pictures["first"]), **{**FAST, "num_frames": 9})
    folder = png_frames(gen.generate(request.replace(model="tiny-ltx")).path)
    model = gen.resolve("ltxv-tiny")
    assert model.class_name == "LTXCheckpoint" and model.config_dir.name == "tiny-ltx"
    single = png_frames(gen.generate(request.replace(model="ltxv-tiny")).path)
    assert_close(single, folder)


def test_a_gguf_transformer_equals_its_weights_dequantised(gen, ltx_models, pictures, capsys):
    from diffusers import LTXImageToVideoPipeline

    from video_gen.cli import main
    from video_gen.tiny.ltx import dequantized_ltx_transformer

    assert main(["models", "list", "--models-dir", str(ltx_models)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ltxv-tiny-Q4_0\t"))
    assert "\tltx\t" in line and "gguf Q4_0" in line  # family and quant type
    model = gen.resolve("ltxv-tiny-Q4_0")
    assert model.config_dir == ltx_models / "tiny-ltx" and model.component == "transformer"
    request = GenerationRequest(image=str(pictures["first"]), **{**FAST, "num_frames": 9})
    app = png_frames(gen.generate(request.replace(model="ltxv-tiny-Q4_0")).path)
    weight = gen.resident_pipeline.transformer.transformer_blocks[0].attn1.to_q.weight
    assert type(weight).__name__ == "GGUFParameter"  # kept quantised on the device
    folder = png_frames(gen.generate(request.replace(model="tiny-ltx")).path)
    assert np.abs(app.astype(int) - folder.astype(int)).max() > 1  # 4-bit weights: the comparison below can fail
    pipe = LTXImageToVideoPipeline.from_pretrained(
        ltx_models / "tiny-ltx", transformer=dequantized_ltx_transformer(ltx_models / "ltxv-tiny-Q4_0.gguf",
                                                                         ltx_models / "tiny-ltx"))
    pipe.set_progress_bar_config(disable=True)
    direct = pipe(image=fitted(pictures["first"]), **SIZE, num_inference_steps=2, output_type="np",
                  **direct_options(num_frames=9)).frames[0]
    assert_close(app, uint8(direct))


def test_a_lora_on_a_gguf_transformer_equals_diffusers_on_its_weights_dequantised(gen, ltx_models, pictures):
    """The 12 GB workflow: a quantised transformer with a LoRA (a step-distilled or style LoRA) on top."""
    from diffusers import LTXImageToVideoPipeline

    from video_gen.tiny.common import build_tiny_transformer_lora
    from video_gen.tiny.ltx import dequantized_ltx_transformer

    build_tiny_transformer_lora(ltx_models / "tiny-ltx", ltx_models / "loras" / "gguf-style.safetensors", seed=3)
    gen.list_models(refresh=True)
    request = GenerationRequest.from_dict({**FAST, "num_frames": 9, "image": str(pictures["first"]),
                                           "model": "ltxv-tiny-Q4_0",
                                           "loras": [{"name": "gguf-style", "strength": 1.0}]})
    styled = png_frames(gen.generate(request).path)
    pipe = LTXImageToVideoPipeline.from_pretrained(
        ltx_models / "tiny-ltx", transformer=dequantized_ltx_transformer(ltx_models / "ltxv-tiny-Q4_0.gguf",
                                                                         ltx_models / "tiny-ltx"))
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(ltx_models / "loras" / "gguf-style.safetensors"), adapter_name="style")
    pipe.set_adapters(["style"], [1.0])
    direct = pipe(image=fitted(pictures["first"]), **SIZE, num_inference_steps=2, output_type="np",
                  **direct_options(num_frames=9)).frames[0]
    assert_close(styled, uint8(direct))
    plain = png_frames(gen.generate(request.replace(loras=())).path)
    assert np.abs(styled.astype(int) - plain.astype(int)).max() > 1  # the LoRA changed the frames


def test_a_transformer_only_safetensors_gives_the_folders_frames(gen, pictures):
    request = GenerationRequest(image=str(pictures["first"]), **{**FAST, "num_frames": 9})
    folder = png_frames(gen.generate(request.replace(model="tiny-ltx")).path)
    model = gen.resolve("ltxv-tiny-transformer")
    assert model.class_name == "LTXVideoTransformer3DModel" and model.config_dir.name == "tiny-ltx"
    assert_close(png_frames(gen.generate(request.replace(model="ltxv-tiny-transformer")).path), folder)


def test_a_transformer_file_without_a_matching_folder_is_one_line(ltx_models, tmp_path):
    import shutil

    from video_gen import Generator
    from video_gen.errors import ModelNotFound
    from video_gen.catalog import classify_checkpoint
    from video_gen.checkpoints import read_safetensors_header

    lonely = tmp_path / "models"
    lonely.mkdir()
    shutil.copy(ltx_models / "ltxv-tiny-Q4_0.gguf", lonely / "ltxv-tiny-Q4_0.gguf")
    other = shutil.copytree(ltx_models / "tiny-ltx", lonely / "tiny-ltx-3-blocks")  # LTX, another architecture
    config = json.loads((other / "transformer" / "config.json").read_text())
    (other / "transformer" / "config.json").write_text(json.dumps({**config, "num_layers": 3}))
    with pytest.raises(ModelNotFound) as error:
        Generator(models_dir=lonely, outputs_dir=tmp_path / "out").resolve("ltxv-tiny-Q4_0")
    message = str(error.value)
    assert "\n" not in message and "same architecture" in message and "2 blocks, width 32" in message
    assert "tiny-ltx-3-blocks" in message and "video-gen models download ltx-video" in message
    shutil.copy(ltx_models / "ltxv-tiny.safetensors", lonely / "ltxv-tiny.safetensors")  # transformer and VAE
    with pytest.raises(ModelNotFound) as error:
        Generator(models_dir=lonely, outputs_dir=tmp_path / "out").resolve("ltxv-tiny")
    assert "same architecture and VAE version" in str(error.value) and "\n" not in str(error.value)
    # The full checkpoint and LTX-2's transformer are not taken for an LTX-Video transformer alone
    assert classify_checkpoint(read_safetensors_header(ltx_models / "ltxv-tiny.safetensors")) == "ltx"
    assert classify_checkpoint(read_safetensors_header(ltx_models / "ltxv-tiny-transformer.safetensors")) \
        == "ltx-transformer"
    assert not ltx._is_ltx_transformer(["model.diffusion_model.patchify_proj.weight",
                                        "model.diffusion_model.audio_patchify_proj.weight"])


def test_the_2b_distilled_download_is_the_single_file_with_0_9_5s_other_parts(gen, ltx_models, pictures, tmp_path,
                                                                               serve_hub, capsys):
    """`models download ltx-2b-distilled`: the official single file from Lightricks/LTX-Video and, without its
    transformer, the 0.9.5 diffusers folder for T5 and the configs (the hub serving the tiny model's)."""
    from conftest import folder_files

    from video_gen import Generator
    from video_gen.cli import main

    fetched = serve_hub({
        "Lightricks/LTX-Video": {"model_index.json": None, "ltxv-2b-0.9.8-distilled-fp8.safetensors": None,
                                 "ltxv-2b-0.9.8-distilled.safetensors": ltx_models / "ltxv-tiny.safetensors"},
        "Lightricks/LTX-Video-0.9.5": folder_files(ltx_models / "tiny-ltx"),
    })
    models = tmp_path / "models"
    assert main(["models", "download", "ltx-2b-distilled", "--models-dir", str(models)]) == 0
    assert capsys.readouterr().out.strip() == str(models / "ltxv-2b-0.9.8-distilled.safetensors")
    assert "fp8" not in " ".join(fetched) and not list((models / "ltx-video-0.9.5").glob("transformer/*.safetensors"))
    generator = Generator(models_dir=models, outputs_dir=tmp_path / "out")
    model = generator.resolve("ltxv-2b-0.9.8-distilled")
    assert model.config_dir == models / "ltx-video-0.9.5" and ltx.defaults(model)["num_inference_steps"] == 8
    request = GenerationRequest(image=str(pictures["first"]), **{**FAST, "num_frames": 9})
    assert_close(png_frames(generator.generate(request.replace(model="ltxv-2b-0.9.8-distilled")).path),
                 png_frames(gen.generate(request.replace(model="ltxv-tiny")).path))
    assert main(["models", "download", "ltx-2b-distilled", "--quant", "Q8_0", "--models-dir", str(models)]) == 1
    assert "comes in one precision only" in capsys.readouterr().err


def test_distilled_defaults_and_speed(ltx_models, tmp_path):
    from video_gen import Generator

    distilled = tmp_path / "models" / "tiny-ltx-distilled"
    import shutil

    shutil.copytree(ltx_models / "tiny-ltx", distilled)
    defaults = Generator(models_dir=distilled.parent).defaults("tiny-ltx-distilled")
    assert defaults["max_guidance_scale"] == 1.0 and defaults["num_inference_steps"] == 8
    assert defaults["num_frames"] == 161 and defaults["fps"] == 24


@pytest.mark.parametrize("changes, field, words", [
    (dict(num_frames=100), "num_frames", "nearest is 97"),
    (dict(width=700, height=500), "width", "700"),
    (dict(keyframes=(Keyframe("middle", 40),)), "keyframes", "past the last frame (16)"),
    (dict(keyframes=(Keyframe("middle", 7), Keyframe("late", 9))), "keyframes", "lands on frame 8"),
    (dict(keyframes=(Keyframe("text", 8),)), "keyframes", "not a picture"),
    (dict(keyframes=(Keyframe("middle", 8), Keyframe("late", 9), Keyframe("last", 10))), "keyframes", "do not fit"),
    (dict(keyframes=(Keyframe("middle", 16),), last_image="last"), "keyframes", "the last frame already holds"),
    (dict(keyframes=(Keyframe("middle", 8),), num_frames=321), "keyframes", "one generation"),
    (dict(upscale="4x"), "upscale", "off, 2x"),
    (dict(upscale="2x", width=96), "width", "multiple of 64"),
])
def test_bad_inputs_are_one_line_and_start_nothing(gen, pictures, changes, field, words):
    def picture(value):
        return str(pictures[value]) if value in pictures else value

    if "keyframes" in changes:
        changes["keyframes"] = tuple(Keyframe(picture(k.image), k.frame) for k in changes["keyframes"])
    if "last_image" in changes:
        changes["last_image"] = picture(changes["last_image"])
    before = sorted(gen.outputs_dir.iterdir())
    request = GenerationRequest(image=str(pictures["first"]), model="tiny-ltx", **{**FAST, **changes})
    with pytest.raises(InvalidRequest) as raised:
        gen.generate(request)
    assert raised.value.field == field and words in str(raised.value) and "\n" not in str(raised.value)
    assert sorted(gen.outputs_dir.iterdir()) == before


def test_other_families_refuse_keyframes_and_upscale():
    from video_gen.families import spec_for

    svd = spec_for("svd")
    with pytest.raises(InvalidRequest, match="keyframes"):
        svd.check_request(GenerationRequest(image="a.png", keyframes=(Keyframe("b.png", 8),)))
    with pytest.raises(InvalidRequest, match="upscale"):
        svd.check_request(GenerationRequest(image="a.png", upscale="2x"))


@pytest.mark.parametrize("value, words", [
    ([{"image": "a.png"}], "must be a list of"),
    ("a.png@8", "must be a list of"),
    ([{"image": "a.png", "frame": "x"}], "whole number"),
    ([{"image": "a.png", "frame": 0}], "frame 0 is the picture"),
])
def test_keyframes_json_is_checked(value, words):
    with pytest.raises(InvalidRequest, match=words):
        GenerationRequest.from_dict({"image": "a.png", "keyframes": value}).validate()


def test_cli_keyframe_and_upscale_flags(ltx_models, pictures, tmp_path, monkeypatch, capsys):
    from video_gen.cli import main

    monkeypatch.setenv("VIDEO_GEN_MODELS_DIR", str(ltx_models))
    monkeypatch.setenv("VIDEO_GEN_OUTPUTS_DIR", str(tmp_path))
    target = tmp_path / "frames"
    assert main(["generate", str(pictures["first"]), "--model", "tiny-ltx", "--frames", "17", "--width", "64",
                 "--height", "64", "--steps", "1", "--format", "png", "--output", str(target), "--quiet",
                 "--keyframe", f"{pictures['middle']}@9", "--upscale", "2x", "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(target)]) == 0
    stored = json.loads(capsys.readouterr().out)["request"]
    assert stored["keyframes"] == [{"image": str(pictures["middle"]), "frame": 9}] and stored["upscale"] == "2x"
    with pytest.raises(SystemExit) as caught:
        main(["generate", str(pictures["first"]), "--keyframe", "middle.png"])
    assert caught.value.code == 1
    error = capsys.readouterr().err.strip()
    assert "PATH@FRAME" in error and len(error.splitlines()) == 1


def test_preview_of_packed_latents_takes_the_videos_middle_frame():
    import torch

    frames, height, width = 3, 2, 4
    video = torch.arange(frames * height * width * 128, dtype=torch.float32).reshape(1, -1, 128)
    extra = torch.full((1, 5, 128), -1.0)  # a keyframe's conditioning tokens come first
    picture = ltx.preview_latent(torch.cat([extra, video], dim=1), frames, height, width)
    assert picture.shape == (128, height, width)
    assert torch.equal(picture, video[0].reshape(frames, height, width, 128)[1].permute(2, 0, 1))
    from video_gen.running import latent_to_rgb

    assert latent_to_rgb(picture, ltx.SPEC.latent_rgb_factors).size == (width * 4, height * 4)


def test_tiled_decode_when_the_plan_decodes_fewer_frames_than_the_video(gen, reference, pictures):
    from diffusers import LTXImageToVideoPipeline

    result = gen.generate(GenerationRequest(image=str(pictures["first"]), model="tiny-ltx", decode_chunk_size=8,
                                            **{**FAST, "num_frames": 25}))
    assert result.request.decode_chunk_size == 8
    vae = reference.vae
    vae.enable_tiling(tile_sample_min_num_frames=16, tile_sample_stride_num_frames=8)
    vae.use_framewise_decoding = True
    try:
        direct = LTXImageToVideoPipeline(**reference.components)(
            image=fitted(pictures["first"]), **SIZE, num_inference_steps=2, output_type="np",
            **direct_options(num_frames=25)).frames[0]
    finally:
        vae.use_tiling = vae.use_framewise_decoding = False
    assert_close(png_frames(result.path), uint8(direct))


def test_speed_cache_hook_runs(gen, pictures):
    result = gen.generate(GenerationRequest(image=str(pictures["first"]), model="tiny-ltx", speed="first-block-cache",
                                            **{**FAST, "num_frames": 9}))
    assert len(png_frames(result.path)) == 9
    assert gen.resident_pipeline.transformer._video_gen_speed == "first-block-cache"


def test_memory_plan_counts_the_single_files_parts_and_its_text_encoder(gen):
    folder = gen.reports.model_weights(gen.resolve("tiny-ltx"))
    single = gen.reports.model_weights(gen.resolve("ltxv-tiny"))
    assert single.numel == folder.numel and single.denoiser == "transformer"
    # A transformer file with the folder's other parts; a GGUF sized by the bytes it keeps quantised
    gguf = gen.reports.model_weights(gen.resolve("ltxv-tiny-Q4_0"))
    assert set(gguf.numel) == set(folder.numel) and gguf.numel["text_encoder"] == folder.numel["text_encoder"]
    stored = (gen.models_dir / "ltxv-tiny-Q4_0.gguf").stat().st_size
    assert gguf.numel["transformer"] != folder.numel["transformer"]
    assert stored // 2 - 20_000 < gguf.numel["transformer"] <= stored // 2
    assert gen.reports.model_weights(gen.resolve("ltxv-tiny-transformer")).numel == folder.numel


def test_the_upsampler_is_found_as_a_part_not_a_model(gen, ltx_models):
    from video_gen.errors import ModelNotFound
    from video_gen.downloads import select_files

    found = {info.name: info for info in gen.catalog.entries()}
    assert found["tiny-upscaler"].role == "upsampler" and found["tiny-upscaler"].family == "ltx"
    assert "tiny-upscaler" not in [info.name for info in gen.list_models()]
    with pytest.raises(ModelNotFound, match="tiny-upscaler is an upsampler .* not a model on its own"):
        gen.resolve("tiny-upscaler")
    assert gen.resolve("tiny-ltx").upsampler == ltx_models / "tiny-upscaler" / "latent_upsampler"
    # A download keeps T5's tokenizer files and skips the single files beside the diffusers folder
    chosen = select_files(["model_index.json", "tokenizer/spiece.model", "tokenizer/tokenizer_config.json",
                           "text_encoder/model-00001-of-00002.safetensors", "ltxv-13b-0.9.8-distilled.safetensors"])
    assert "tokenizer/spiece.model" in chosen and "ltxv-13b-0.9.8-distilled.safetensors" not in chosen


def test_cancel_stops_within_a_step_and_writes_nothing(gen, pictures):
    from video_gen.errors import Cancelled
    from video_gen.events import StepEvent

    def cancel_at_first_step(event):
        if isinstance(event, StepEvent):
            gen.cancel()

    from conftest import video_files

    before = video_files(gen.outputs_dir)
    with pytest.raises(Cancelled):
        gen.generate(GenerationRequest(image=str(pictures["first"]), model="tiny-ltx", **{**FAST, "num_frames": 9,
                                                                                           "num_inference_steps": 4}),
                     on_event=cancel_at_first_step)
    assert video_files(gen.outputs_dir) == before


def test_a_long_video_is_chained_segments_of_8k_plus_1_frames(gen, pictures):
    events = []
    result = gen.generate(GenerationRequest(image=str(pictures["first"]), model="tiny-ltx",
                                            last_image=str(pictures["last"]),
                                            **{**FAST, "num_frames": 169, "num_inference_steps": 1}),
                          on_event=events.append)
    assert result.plan.segments == 2 and all((count - 1) % 8 == 0 for count in result.plan.generated_frames)
    assert len(png_frames(result.path)) == 169


def test_reference_model_counts_match_the_architecture():
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    from video_gen.memory import ModelWeights

    with torch.device("meta"):
        parts = {"transformer": LTXVideoTransformer3DModel(), "vae": AutoencoderKLLTXVideo(),
                 "text_encoder": T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240,
                                                         num_layers=24, num_heads=64, feed_forward_proj="gated-gelu"))}
    counted = ModelWeights.from_modules(parts)
    reference = ltx.SPEC.reference_model
    embedding = 32128 * 4096  # T5's `shared` and `encoder.embed_tokens` are one tensor, stored once
    assert {**counted.numel, "text_encoder": counted.numel["text_encoder"] - embedding} == reference.numel
    assert counted.largest_block == reference.largest_block and counted.largest_tensor == reference.largest_tensor


def test_an_ltx_lora_equals_diffusers_loading_it_directly(gen, ltx_models, pictures):
    from diffusers import LTXImageToVideoPipeline

    from video_gen.tiny.common import build_tiny_transformer_lora

    build_tiny_transformer_lora(ltx_models / "tiny-ltx", ltx_models / "loras" / "ltx-style.safetensors", seed=2)
    gen.list_models(refresh=True)
    request = GenerationRequest(image=str(pictures["first"]), model="tiny-ltx", **FAST)
    plain = png_frames(gen.generate(request).path)
    loads = gen.loads
    styled = png_frames(gen.generate(GenerationRequest.from_dict(
        {**request.to_dict(), "loras": [{"name": "ltx-style", "strength": 1.0}]})).path)
    assert gen.loads == loads and np.abs(styled.astype(int) - plain.astype(int)).max() > 1

    pipe = LTXImageToVideoPipeline.from_pretrained(ltx_models / "tiny-ltx")
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(ltx_models / "loras" / "ltx-style.safetensors"), adapter_name="style")
    pipe.set_adapters(["style"], [1.0])
    direct = pipe(image=fitted(pictures["first"]), **SIZE, num_inference_steps=2, output_type="np",
                  **direct_options()).frames[0]
    assert_close(styled, uint8(direct))
