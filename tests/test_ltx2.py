"""LTX-2 through the app: a tiny REAL LTX-2 (every diffusers LTX-2 class, random weights, Lightricks' folder layout,
a Gemma tokenizer built here) loaded through the user's code path. Frames equal diffusers' pipelines called
directly (PNG, within 1) and the written audio.wav equals the pipeline's sound (within 2 LSB); MP4 carries one
audio stream of the video's length, `audio off` none; extend keeps the source's sound; the refusals are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from video_gen import GenerationRequest, audio, video_io
from video_gen.errors import InvalidRequest, ModelNotFound
from video_gen.images import fit_to_size, open_image

SIZE = dict(width=96, height=64)
FAST = dict(**SIZE, num_frames=9, num_inference_steps=2, max_guidance_scale=3.0, seed=7, prompt="a red cat walks",
            negative_prompt="blurry", output_format="png")


@pytest.fixture(scope="module")
def ltx2_models(tmp_path_factory) -> Path:
    """models/LTX-2/ (with latent_upsampler/), models/ltx-2-19b-distilled.safetensors (the official single file
    made from OTHER weights: a distilled folder kept outside the models folder, at `../LTX-2-distilled`),
    models/ltx-2-19b-dev-Q8_0.gguf, and models/loras/ltx2-tiny-lora.safetensors."""
    from video_gen.tiny.common import build_tiny_transformer_lora
    from video_gen.tiny.ltx2 import build_tiny_ltx2, save_ltx2_single_file, save_ltx2_transformer

    root = tmp_path_factory.mktemp("ltx2")
    models = root / "models"
    build_tiny_ltx2(models / "LTX-2")
    build_tiny_ltx2(root / "LTX-2-distilled", distilled=True, upsampler=False)
    save_ltx2_single_file(root / "LTX-2-distilled", models / "ltx-2-19b-distilled.safetensors")
    save_ltx2_transformer(models / "LTX-2", models / "ltx-2-19b-dev-Q8_0.gguf")
    build_tiny_transformer_lora(models / "LTX-2", models / "loras" / "ltx2-tiny-lora.safetensors")
    return models


@pytest.fixture(scope="module")
def gen(ltx2_models, tmp_path_factory):
    from video_gen import Generator

    return Generator(models_dir=ltx2_models, outputs_dir=tmp_path_factory.mktemp("ltx2-outputs"))


@pytest.fixture(scope="module")
def made(gen, photo):
    """The app's first video of the module (PNG frames + audio.wav), shared by the tests that read it."""
    return gen.generate(GenerationRequest(image=str(photo), model="LTX-2", **FAST))


def direct(pipeline_class, folder: Path, **call):
    """diffusers' own pipeline over the folder, called as the app calls it for LTX-2.0 (one pass fewer without
    STG, the legacy cross-timestep mode, the sound's guidance at the pipeline's defaults)."""
    import torch

    pipe = pipeline_class.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    options = dict(prompt=FAST["prompt"], negative_prompt=FAST["negative_prompt"], height=SIZE["height"],
                   width=SIZE["width"], num_frames=FAST["num_frames"], frame_rate=24.0,
                   num_inference_steps=FAST["num_inference_steps"], guidance_scale=3.0, audio_guidance_scale=7.0,
                   stg_scale=0.0, audio_stg_scale=0.0, modality_scale=3.0, audio_modality_scale=3.0,
                   use_cross_timestep=False, max_sequence_length=1024, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(FAST["seed"]))
    return pipe(**{**options, **call})


def fitted(path) -> Image.Image:
    return fit_to_size(open_image(path), SIZE["width"], SIZE["height"], "crop")


def png_frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in sorted(Path(folder).glob("frame_*.png"))])


def uint8(frames) -> np.ndarray:
    return (np.asarray(frames) * 255).round().astype(np.uint8)


def assert_same_sound(folder: Path, out, frames: int, fps: float = 24.0) -> None:
    pcm, rate = audio.read_wav(folder / audio.WAV_NAME)
    assert rate == 24000 and pcm.shape == (audio.samples_for(frames, fps, rate), 2)  # exactly the video's length
    expected = audio.to_pcm(out.audio, samples=len(pcm))
    assert np.abs(pcm.astype(int) - expected.astype(int)).max() <= 2


# ---- the frames and the sound, against diffusers --------------------------------------------------------------
def test_frames_and_sound_equal_the_image_to_video_pipeline(made, ltx2_models, photo):
    from diffusers import LTX2ImageToVideoPipeline

    out = direct(LTX2ImageToVideoPipeline, ltx2_models / "LTX-2", image=fitted(photo))
    ours = png_frames(made.path)
    assert ours.shape == (9, 64, 96, 3)
    assert np.abs(ours.astype(int) - uint8(out.frames[0]).astype(int)).max() <= 1
    assert_same_sound(made.path, out, 9)
    stored = made.metadata["audio"]
    pcm, _ = audio.read_wav(made.path / audio.WAV_NAME)
    assert stored["made"] and stored["sample_rate"] == 24000 and stored["duration_s"] == 0.375
    assert stored["sha256"] == audio.pcm_sha256(pcm) and made.info()["audio"]["sample_rate"] == 24000
    assert video_io.read_metadata(made.path)["audio"] == stored  # what `video-gen inspect` prints
    assert made.request.audio == "on" and made.metadata["request"]["audio"] == "on"  # the model's default


def test_first_and_last_frame_equal_the_condition_pipeline(gen, ltx2_models, photo, tmp_path):
    from diffusers import LTX2ConditionPipeline
    from diffusers.pipelines.ltx2 import LTX2VideoCondition

    last = tmp_path / "last.png"
    Image.new("RGB", (80, 60), (20, 200, 90)).save(last)
    result = gen.generate(GenerationRequest(image=str(photo), last_image=str(last), model="LTX-2",
                                            **dict(FAST, num_frames=17)))
    assert "the last frame is placed at frame 9 of 17" in " ".join(result.notes)
    conditions = [LTX2VideoCondition(frames=fitted(photo), index=0), LTX2VideoCondition(frames=fitted(last), index=-1)]
    out = direct(LTX2ConditionPipeline, ltx2_models / "LTX-2", conditions=conditions, num_frames=17)
    assert np.abs(png_frames(result.path).astype(int) - uint8(out.frames[0]).astype(int)).max() <= 1
    assert_same_sound(result.path, out, 17)


# ---- the streams ----------------------------------------------------------------------------------------------
def test_mp4_has_one_audio_stream_of_the_videos_length_and_audio_off_has_none(gen, photo, tmp_path, capsys):
    from video_gen.cli import main

    request = dict(FAST, output_format="mp4")
    with_sound = gen.generate(GenerationRequest(image=str(photo), model="LTX-2", **request))
    found = audio.probe_audio(with_sound.path)
    assert found.streams == 1 and found.codec == "aac" and found.sample_rate == 24000
    assert abs(found.duration_s - video_io.probe_video(with_sound.path).duration_s) <= 0.1
    assert abs(found.duration_s - 9 / 24) < 1e-3
    # The command line's --audio off: no audio stream at all
    off = tmp_path / "silent.mp4"
    assert main(["generate", str(photo), "--models-dir", str(gen.models_dir), "--outputs-dir", str(tmp_path),
                 "--model", "LTX-2", "--frames", "9", "--width", "96", "--height", "64", "--steps", "2",
                 "--seed", "7", "--prompt", "a red cat walks", "--audio", "off", "--output", str(off), "--quiet"]) == 0
    assert audio.probe_audio(off) is None and video_io.probe_video(off).frames == 9
    assert video_io.read_metadata(off)["audio"] == {"made": False}
    capsys.readouterr()
    assert main(["inspect", str(with_sound.path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["audio"]["sample_rate"] == 24000 and shown["audio"]["stream"] == "aac"


def test_gif_says_once_that_it_has_no_sound(gen, photo):
    job = gen.prepare(GenerationRequest(image=str(photo), model="LTX-2", **dict(FAST, output_format="gif")))
    assert [note for note in job.notes if "sound" in note] == [
        "gif has no sound: the video's sound is not written (mp4, webm and png keep it)"]


def test_extend_keeps_the_sources_sound_sample_exact_up_to_the_seam(gen, made, tmp_path):
    from video_gen.extend import extend

    source, rate = audio.read_wav(made.path / audio.WAV_NAME)
    result = extend(gen, made.path, frames=8, overrides={"output_path": str(tmp_path / "longer"), "seed": 3,
                                                         "num_inference_steps": 2})
    assert video_io.probe_video(result.path).frames == 17
    pcm, written_rate = audio.read_wav(result.path / audio.WAV_NAME)
    assert written_rate == rate and len(pcm) == audio.samples_for(17, 24, rate)
    assert np.array_equal(pcm[:len(source)], source)  # the source's own samples, up to the seam
    assert np.abs(pcm[len(source):]).max() > 0  # then the continuation's sound
    assert result.metadata["audio"]["sha256"] == audio.pcm_sha256(pcm)


# ---- single files, distilled, LoRAs, two stages -----------------------------------------------------------------
def test_official_single_file_runs_its_own_weights_with_the_distilled_defaults(gen, ltx2_models, photo):
    from diffusers import LTX2ImageToVideoPipeline
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    request = GenerationRequest(image=str(photo), model="ltx-2-19b-distilled",
                                **{**FAST, "num_inference_steps": None, "max_guidance_scale": None})
    result = gen.generate(request)
    assert result.request.num_inference_steps == 8 and result.request.max_guidance_scale == 1.0
    # Every part but Gemma comes from the file (its weights are the distilled folder's, not LTX-2/'s)
    out = direct(LTX2ImageToVideoPipeline, ltx2_models.parent / "LTX-2-distilled", image=fitted(photo),
                 num_inference_steps=8, sigmas=DISTILLED_SIGMA_VALUES, guidance_scale=1.0, audio_guidance_scale=1.0,
                 modality_scale=1.0, audio_modality_scale=1.0)
    assert np.abs(png_frames(result.path).astype(int) - uint8(out.frames[0]).astype(int)).max() <= 1
    assert_same_sound(result.path, out, 9)


def test_gguf_transformer_and_a_lora_run_with_the_folder(gen, made, photo):
    from video_gen import loras
    from video_gen.families import ltx2

    gguf = gen.generate(GenerationRequest(image=str(photo), model="ltx-2-19b-dev-Q8_0", **FAST))
    assert audio.probe_audio(gguf.path).samples == 9000
    assert np.abs(png_frames(gguf.path).astype(int) - png_frames(made.path).astype(int)).max() <= 8  # Q8_0
    assert loras.installed_for(gen.catalog, gen.resolve("LTX-2"), ltx2) == ["ltx2-tiny-lora"]  # the fit rule
    lora = gen.generate(GenerationRequest.from_dict(dict(FAST, image=str(photo), model="LTX-2",
                                                         loras=[{"name": "ltx2-tiny-lora"}])))
    assert not np.array_equal(png_frames(lora.path), png_frames(made.path))


def test_two_stage_upscale_makes_the_full_size_with_sound(gen, photo):
    result = gen.generate(GenerationRequest(image=str(photo), model="LTX-2", upscale="2x",
                                            **dict(FAST, width=128, height=64)))
    assert png_frames(result.path).shape == (9, 64, 128, 3)
    assert audio.read_wav(result.path / audio.WAV_NAME)[0].shape == (9000, 2)


# ---- refusals, one line each, before anything loads ----------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    (dict(num_frames=10), "num_frames: must be 8k+1 for LTX-2 (its VAE packs 8 frames into one), got 10; the nearest "
                          "is 9 (9 or 17)"),
    (dict(width=80), "width: must be a multiple of 32 for LTX-2, got 80; try 64"),
    (dict(num_inference_steps=1), "num_inference_steps: must be at least 2 for LTX-2"),
    (dict(model_enhancer="on"), "model_enhancer: LTX-2 has no processor/"),
    (dict(upscale="2x", width=96), "width: must be a multiple of 64 with upscale 2x"),
])
def test_refusals_are_one_line(gen, photo, change, words):
    loads = gen.loads
    with pytest.raises(InvalidRequest) as error:
        gen.prepare(GenerationRequest(image=str(photo), model="LTX-2", **{**FAST, **change}))
    assert str(error.value).startswith(words) and "\n" not in str(error.value)
    assert gen.loads == loads


def test_sound_asked_of_a_silent_family_and_a_gguf_without_its_folder(generator, photo, ltx2_models, tmp_path):
    with pytest.raises(InvalidRequest) as error:
        generator.prepare(GenerationRequest(image=str(photo), audio="on"))
    assert str(error.value) == "audio: Stable Video Diffusion makes no sound (LTX-2 does); use off or leave it out"
    assert generator.prepare(GenerationRequest(image=str(photo), audio="off")).request.audio == "off"
    alone = tmp_path / "models"
    alone.mkdir()
    (alone / "ltx-2-19b-dev-Q8_0.gguf").symlink_to(ltx2_models / "ltx-2-19b-dev-Q8_0.gguf")
    from video_gen import Generator

    with pytest.raises(ModelNotFound) as error:
        Generator(models_dir=alone, outputs_dir=tmp_path / "out").prepare(
            GenerationRequest(image=str(photo), model="ltx-2-19b-dev-Q8_0", **FAST))
    message = str(error.value)
    assert "\n" not in message and "is a ltx2 transformer" in message and "video-gen models download ltx-2" in message


# ---- memory -----------------------------------------------------------------------------------------------------
def test_the_memory_plan_never_counts_gemma_beside_the_transformer():
    from video_gen.families.ltx2 import SPEC
    from video_gen.memory import JobShape, MemoryPlan, ModelWeights, estimate_stages
    from video_gen.memory.estimate import RUNTIME_OVERHEAD_BYTES

    reference = SPEC.reference_model
    weights = ModelWeights(reference.numel, reference.largest_block, reference.largest_tensor)
    stages = estimate_stages(MemoryPlan("cuda", "bfloat16", "none", decode_chunk_size=121), weights,
                             JobShape("ltx2", 121, 768, 512, 121))
    size = {name: count * 2 for name, count in reference.numel.items()}
    others = sum(size.values()) - size["transformer"]
    others += RUNTIME_OVERHEAD_BYTES
    resident = sum(size.values()) - size["text_encoder"] + RUNTIME_OVERHEAD_BYTES  # no Gemma while denoising
    assert 4.5e9 < stages["denoising"] - resident < 5.5e9  # the transformer's activations: ~4.96 GB at 121 frames
    # Encoding: Gemma in with the transformer out, or the transformer in for the picture; never both
    assert 4.0e9 < stages["encoding_image"] - max(others, resident) < 4.5e9  # + the text path's activations
    assert max(stages.values()) < size["transformer"] + size["text_encoder"]
    assert SPEC.memory.measured.startswith("CPU-measured")


def test_prompt_length_keeps_to_the_connectors_registers():
    from video_gen.families.ltx2 import sequence_length

    assert sequence_length(128) == 1024 and sequence_length(None) == 1024 and sequence_length(384) == 1152


# ---- keyframes, prompt enhancement, sweeps, smoothing, downloads --------------------------------------------------
def test_keyframes_land_on_the_latent_grid_and_are_said(gen, photo, tmp_path):
    from video_gen.request import Keyframe

    middle = tmp_path / "middle.png"
    Image.new("RGB", (80, 60), (240, 240, 10)).save(middle)
    job = gen.prepare(GenerationRequest(image=str(photo), model="LTX-2", keyframes=(Keyframe(str(middle), 6),),
                                        **dict(FAST, num_frames=25)))
    assert "keyframe 1 (middle.png) at frame 9 (asked for 6; LTX-2's grid is frames 8k+1)" in job.notes
    with pytest.raises(InvalidRequest, match="lands on frame 17, which the last frame already holds"):
        gen.prepare(GenerationRequest(image=str(photo), model="LTX-2", keyframes=(Keyframe(str(middle), 16),),
                                      last_image=str(middle), **dict(FAST, num_frames=25)))


def test_the_models_own_prompt_enhancement_is_recorded(gen, ltx2_models, photo, monkeypatch):
    from diffusers import LTX2ImageToVideoPipeline
    from diffusers.pipelines.ltx2.utils import I2V_DEFAULT_SYSTEM_PROMPT

    from video_gen.families import ltx2
    from video_gen.tiny.ltx2 import build_tiny_ltx2

    # The tiny Gemma's random weights never say <eos>: 24 new tokens instead of 512 keep the test short
    monkeypatch.setattr(ltx2, "ENHANCE_MAX_TOKENS", 24)
    build_tiny_ltx2(ltx2_models / "LTX-2-enhancer", processor=True, upsampler=False)
    gen.list_models(refresh=True)
    result = gen.generate(GenerationRequest(image=str(photo), model="LTX-2-enhancer", model_enhancer="on", **FAST))
    recorded = result.metadata["run"]["prompt_enhancement"]
    assert recorded["original"] == FAST["prompt"] and result.request.prompt == FAST["prompt"]
    import torch

    pipe = LTX2ImageToVideoPipeline.from_pretrained(ltx2_models / "LTX-2-enhancer")
    expected = pipe.enhance_prompt(prompt=FAST["prompt"], system_prompt=I2V_DEFAULT_SYSTEM_PROMPT, image=fitted(photo),
                                   max_new_tokens=24,
                                   generator=torch.Generator("cpu").manual_seed(FAST["seed"]))[0]
    assert recorded["enhanced"] == expected and expected.strip()


def test_a_sweep_grid_carries_the_first_cells_sound(gen, photo):
    from video_gen.sweep import Sweep, make_axis, plan_sweep

    base = GenerationRequest(image=str(photo), model="LTX-2", **FAST)  # PNG cells: their sound kept exactly
    result = Sweep(gen, plan_sweep(gen, base, [make_axis("seed", [7, 8])])).run()
    first, second = (cell.metadata["audio"]["sha256"] for cell in result.results)
    assert result.info["audio"]["sha256"] == first != second and result.info["audio"]["from_cell"] == 1
    found = audio.probe_audio(result.grid)
    assert found.streams == 1 and found.samples == 9000  # in sync with the cells, from their start


def test_smoothing_keeps_the_sound_where_it_was(tmp_path):
    from video_gen.smoothing import check_video, plan_smooth, render_smooth

    frames = (np.random.default_rng(0).random((12, 32, 32, 3)) * 255).astype(np.uint8)
    seconds = np.arange(audio.samples_for(12, 12, 24000)) / 24000
    tone = audio.to_pcm(np.stack([np.sin(2 * np.pi * 440 * seconds)] * 2)[None] * 0.5,
                        samples=len(seconds))
    source = video_io.write_video(frames, tmp_path / "clip.mp4", fps=12, audio=audio.Sound(tone, 24000))
    smooth = render_smooth(source, plan_smooth(check_video(source), 24, "none"), tmp_path / "smooth.mp4")
    found = audio.probe_audio(smooth)
    assert found.streams == 1 and abs(found.duration_s - video_io.probe_video(smooth).duration_s) <= 0.1
    before, after = audio.read_audio(source)[0], audio.read_audio(smooth)[0]
    common = min(len(before), len(after))
    assert np.sqrt(np.mean((before[:common].astype(float) - after[:common].astype(float)) ** 2)) / 32767 < 0.02


def test_downloads_fetch_the_folder_the_single_file_and_a_gguf_by_quant(ltx2_models, tmp_path, serve_hub, capsys):
    from conftest import folder_files

    from video_gen import Generator
    from video_gen.cli import main

    fetched = serve_hub({
        "Lightricks/LTX-2": {**folder_files(ltx2_models / "LTX-2"), "ltx-2-19b-dev.safetensors": None,
                             "ltx-2-19b-distilled-fp8.safetensors": None,
                             "ltx-2-19b-distilled.safetensors": ltx2_models / "ltx-2-19b-distilled.safetensors"},
        "QuantStack/LTX-2-GGUF": {"LTX-2-dev-Q4_K_M.gguf": None, "LTX-2-distilled-Q8_0.gguf": None,
                                  "LTX-2-dev-Q8_0.gguf": ltx2_models / "ltx-2-19b-dev-Q8_0.gguf"},
    })
    models = tmp_path / "models"
    assert main(["models", "download", "ltx-2-distilled", "--models-dir", str(models)]) == 0
    assert capsys.readouterr().out.strip() == str(models / "ltx-2-19b-distilled.safetensors")
    assert "ltx-2-19b-dev.safetensors" not in fetched and "fp8" not in " ".join(fetched)
    assert not list((models / "ltx-2" / "transformer").glob("*.safetensors"))  # its other parts only
    assert (models / "ltx-2" / "latent_upsampler" / "config.json").is_file()
    assert main(["models", "download", "ltx-2-gguf", "--quant", "Q8_0", "--models-dir", str(models)]) == 0
    assert capsys.readouterr().out.strip() == str(models / "LTX-2-dev-Q8_0.gguf")
    generator = Generator(models_dir=models, outputs_dir=tmp_path / "out")
    distilled, gguf = generator.resolve("ltx-2-19b-distilled"), generator.resolve("LTX-2-dev-Q8_0")
    assert distilled.config_dir == gguf.config_dir == models / "ltx-2" and distilled.upsampler is not None
    assert generator.defaults("ltx-2-19b-distilled")["num_inference_steps"] == 8


def test_sound_cut_at_frame_boundaries_joins_without_a_gap():
    """A long video's segments share their seam frame: each later one's sound starts at its second frame, and the
    pieces add up to exactly the video's length (at a rate such as 24000/1001 too)."""
    rate, fps = 24000, 24000 / 1001
    pieces = [audio.Sound(np.full((audio.samples_for(33, fps, rate), 2), number, np.int16), rate)
              for number in (1, 2, 3)]
    joined = pieces[0].frames(0, 33, fps)
    for piece in pieces[1:]:
        joined = joined.then(piece.frames(1, 33, fps))
    assert joined.samples == audio.samples_for(33 + 32 + 32, fps, rate)
    assert joined.pcm[audio.sample_at(33, fps, rate) - 1, 0] == 1 and joined.pcm[audio.sample_at(33, fps, rate), 0] == 2


def test_a_silent_model_continues_a_video_with_silence(generator, made, tmp_path):
    """SVD extends an LTX-2 video: the source's settings ask for sound, which SVD does not make; the source's sound
    is kept and the continuation is silent."""
    from video_gen.extend import extend

    source, rate = audio.read_wav(made.path / audio.WAV_NAME)
    result = extend(generator, made.path, frames=4, overrides={"model": "tiny-svd", "num_inference_steps": 2,
                                                               "output_path": str(tmp_path / "svd")})
    pcm, _ = audio.read_wav(result.path / audio.WAV_NAME)
    assert result.request.audio is None and len(pcm) == audio.samples_for(13, 24, rate)
    assert np.array_equal(pcm[:len(source)], source) and not pcm[len(source):].any()


def test_an_upscaled_job_keeps_its_sound(gen, photo, tmp_path):
    """generate --upscaler (issue 27) on a model that makes sound: the upscaled video keeps it."""
    from video_gen.tiny.upscalers import build_tiny_compact

    upscaler = tmp_path / "tiny-x2.safetensors"
    build_tiny_compact(upscaler, scale=2)
    result = gen.generate(GenerationRequest(image=str(photo), model="LTX-2", **dict(FAST, output_format="mp4"),
                                            upscaler=str(upscaler)))
    found = audio.probe_audio(result.path)
    assert found.streams == 1 and found.sample_rate == 24000 and abs(found.duration_s - 9 / 24) < 1e-3
    assert video_io.probe_video(result.path).width == 2 * SIZE["width"]
    assert video_io.read_metadata(result.path)["audio"]["sample_rate"] == 24000
