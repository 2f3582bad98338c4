"""LTX-2's parts that do not depend on the app's structure: the tiny REAL model (every diffusers LTX-2 class, random
weights, saved in Lightricks/LTX-2's diffusers layout, its official single files and a GGUF) loaded and run by
diffusers' own pipelines, the pipeline behaviours the `ltx2` family has to guard against, and the sound core
(`video_gen.audio`): PCM of the video's length, audio.wav, AAC / Opus tracks and reading them back."""

from __future__ import annotations

import json
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from video_gen import audio as sound
from video_gen import video_io
from video_gen.errors import InvalidRequest

CALL = dict(prompt="a red cat walks in the rain", negative_prompt="blurry", num_frames=9, frame_rate=24.0,
            height=64, width=96, num_inference_steps=2, guidance_scale=3.0, output_type="np",
            max_sequence_length=128)


@pytest.fixture(scope="module")
def ltx2_models(tmp_path_factory) -> Path:
    """LTX-2/ (the tiny diffusers folder with latent_upsampler/), LTX-2-distilled/, upsampler/ (an
    LTX2LatentUpsamplePipeline folder) and the transformer as the official single files and a Q8_0 GGUF."""
    from video_gen.tiny.ltx2 import (build_tiny_ltx2, build_tiny_ltx2_upsampler, save_ltx2_single_file,
                                     save_ltx2_transformer)

    folder = tmp_path_factory.mktemp("ltx2-models")
    started = time.process_time()
    build_tiny_ltx2(folder / "LTX-2")
    print(f"\nbuild_tiny_ltx2: {time.process_time() - started:.2f} CPU s")
    build_tiny_ltx2(folder / "LTX-2-distilled", distilled=True, upsampler=False)
    build_tiny_ltx2_upsampler(folder / "upsampler", folder / "LTX-2")
    save_ltx2_single_file(folder / "LTX-2", folder / "ltx-2-19b-dev.safetensors")
    save_ltx2_transformer(folder / "LTX-2", folder / "ltx-2-19b-dev_transformer_only.safetensors")
    save_ltx2_transformer(folder / "LTX-2", folder / "ltx-2-19b-dev-Q8_0.gguf")
    return folder


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Image.Image:
    height, width = 60, 80
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 3, y * 4, (x + y) % 256], axis=-1).astype("uint8")
    pixels[20:40, 30:60] = (250, 240, 20)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def i2v(ltx2_models):
    from diffusers import LTX2ImageToVideoPipeline

    pipe = LTX2ImageToVideoPipeline.from_pretrained(ltx2_models / "LTX-2")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def seeded(seed: int = 7):
    import torch

    return torch.Generator().manual_seed(seed)


def levels(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] as the 0..255 levels a PNG stores."""
    return np.round(np.clip(frames, 0.0, 1.0) * 255.0)


# ---- the tiny model --------------------------------------------------------------------------------------------
def test_tiny_folder_has_lightricks_layout(ltx2_models):
    folder = ltx2_models / "LTX-2"
    index = json.loads((folder / "model_index.json").read_text())
    # As Lightricks/LTX-2 publishes its diffusers weights (model_index.json of its diffusers-weights revision).
    assert index["_class_name"] == "LTX2Pipeline"
    assert index["connectors"] == ["ltx2", "LTX2TextConnectors"] and index["vocoder"] == ["ltx2", "LTX2Vocoder"]
    assert index["tokenizer"] == ["transformers", "GemmaTokenizerFast"]
    assert index["text_encoder"] == ["transformers", "Gemma3ForConditionalGeneration"]
    assert {path.name for path in folder.iterdir()} == {
        "model_index.json", "transformer", "vae", "audio_vae", "vocoder", "connectors", "text_encoder", "tokenizer",
        "scheduler", "latent_upsampler"}
    vocoder = json.loads((folder / "vocoder" / "config.json").read_text())
    assert vocoder["output_sampling_rate"] == 24000
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["shift_terminal"] == 0.1 and scheduler["use_dynamic_shifting"] is True
    assert "distilled" in (ltx2_models / "LTX-2-distilled" / "README.md").read_text()
    assert not (ltx2_models / "LTX-2-distilled" / "latent_upsampler").exists()


def test_build_is_deterministic(ltx2_models, tmp_path):
    from safetensors.torch import load_file

    from video_gen.tiny.ltx2 import build_tiny_ltx2

    again = build_tiny_ltx2(tmp_path / "again", upsampler=False)
    for part in ("transformer", "vae", "audio_vae", "vocoder", "connectors"):
        first = load_file(ltx2_models / "LTX-2" / part / "diffusion_pytorch_model.safetensors")
        second = load_file(again / part / "diffusion_pytorch_model.safetensors")
        assert first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first), part
    full = load_file(ltx2_models / "LTX-2" / "transformer" / "diffusion_pytorch_model.safetensors")
    distilled = load_file(ltx2_models / "LTX-2-distilled" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert distilled.keys() == full.keys() and not all((distilled[k] == full[k]).all() for k in full)


def test_image_to_video_returns_frames_and_sound(i2v, picture):
    started = time.process_time()
    out = i2v(image=picture, generator=seeded(), **CALL)
    cpu_s = time.process_time() - started
    print(f"\nLTX2ImageToVideoPipeline, 9 frames 96x64, 2 steps: {cpu_s:.2f} CPU s")
    assert out.frames.shape == (1, 9, 64, 96, 3)
    assert np.isfinite(out.frames).all()
    # `audio` is a float torch tensor [batch, 2, samples] even with output_type="np", at the vocoder's rate, and a
    # little shorter than the video: 9 frames / 24 fps = 0.375 s -> round(0.375 * 25) = 9 audio latents -> 9 * 4 - 3
    # = 33 mel frames (the audio VAE is causal) x 240 = 7920 samples, not 9000.
    assert type(out.audio).__name__ == "Tensor" and tuple(out.audio.shape) == (1, 2, 7920)
    assert i2v.vocoder.config.output_sampling_rate == 24000 and i2v.audio_sampling_rate == 16000
    again = i2v(image=picture, generator=seeded(), **CALL)
    assert np.array_equal(out.frames, again.frames) and bool((out.audio == again.audio).all())


def test_condition_pipeline_first_and_last_frame(ltx2_models, picture):
    from diffusers import LTX2ConditionPipeline
    from diffusers.pipelines.ltx2 import LTX2VideoCondition

    pipe = LTX2ConditionPipeline.from_pretrained(ltx2_models / "LTX-2")
    pipe.set_progress_bar_config(disable=True)
    last = Image.new("RGB", (80, 60), (20, 200, 90))
    call = dict(CALL, num_frames=17)
    started = time.process_time()
    out = pipe(conditions=[LTX2VideoCondition(frames=picture, index=0), LTX2VideoCondition(frames=last, index=-1)],
               generator=seeded(), **call)
    print(f"\nLTX2ConditionPipeline, 17 frames, first + last: {time.process_time() - started:.2f} CPU s")
    assert out.frames.shape == (1, 17, 64, 96, 3) and tuple(out.audio.shape[:2]) == (1, 2)
    first_only = pipe(conditions=[LTX2VideoCondition(frames=picture, index=0)], generator=seeded(), **call)
    assert not np.array_equal(levels(out.frames), levels(first_only.frames))  # the last frame condition counts


def test_distilled_folder_runs_the_distilled_schedule(ltx2_models, picture):
    from diffusers import LTX2ImageToVideoPipeline
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    pipe = LTX2ImageToVideoPipeline.from_pretrained(ltx2_models / "LTX-2-distilled")
    pipe.set_progress_bar_config(disable=True)
    passes = []
    pipe.transformer.register_forward_pre_hook(lambda *args: passes.append(1))
    call = dict(CALL, num_inference_steps=len(DISTILLED_SIGMA_VALUES), guidance_scale=1.0, audio_guidance_scale=1.0,
                stg_scale=0.0, audio_stg_scale=0.0, modality_scale=1.0, audio_modality_scale=1.0)
    out = pipe(image=picture, sigmas=DISTILLED_SIGMA_VALUES, generator=seeded(), **call)
    assert out.frames.shape == (1, 9, 64, 96, 3) and np.isfinite(out.frames).all()
    assert len(passes) == 8  # one transformer pass a step once every guidance is off
    # guidance_scale=1 alone turns nothing off: the audio guidance (7), STG (1) and modality guidance (3) keep
    # their own defaults, so the CFG pair, the STG pass and the modality pass all still run.
    passes.clear()
    pipe(image=picture, sigmas=DISTILLED_SIGMA_VALUES, generator=seeded(),
         **dict(CALL, num_inference_steps=len(DISTILLED_SIGMA_VALUES), guidance_scale=1.0))
    assert len(passes) == 3 * 8


def test_two_stage_upscale_with_the_latent_upsampler(ltx2_models, i2v, picture):
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2LatentUpsamplePipeline
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    video_latents, audio_latents = i2v(image=picture, generator=seeded(), return_dict=False,
                                       **dict(CALL, output_type="latent"))
    assert tuple(video_latents.shape) == (1, 8, 2, 2, 3)
    # Both ways of getting the upsampler: the pipeline folder, and latent_upsampler/ beside the model's folders.
    pipeline_folder = LTX2LatentUpsamplePipeline.from_pretrained(ltx2_models / "upsampler")
    model = LTX2LatentUpsamplerModel.from_pretrained(ltx2_models / "LTX-2", subfolder="latent_upsampler")
    upsample = LTX2LatentUpsamplePipeline(vae=i2v.vae, latent_upsampler=model)
    upsample.set_progress_bar_config(disable=True)
    bigger = upsample(latents=video_latents, output_type="latent", return_dict=False)[0]
    assert tuple(bigger.shape) == (1, 8, 2, 4, 6)
    assert type(pipeline_folder.latent_upsampler).__name__ == "LTX2LatentUpsamplerModel"
    # Stage 2 as diffusers' LTX-2 docs run it: the distilled stage-2 sigmas as they are (no dynamic shift, no
    # terminal stretch), re-noised to the first one, without guidance.
    stage2 = i2v.scheduler
    i2v.scheduler = FlowMatchEulerDiscreteScheduler.from_config(stage2.config, use_dynamic_shifting=False,
                                                                shift_terminal=None)
    try:
        out = i2v(image=picture, latents=bigger, audio_latents=audio_latents, generator=seeded(),
                  sigmas=STAGE_2_DISTILLED_SIGMA_VALUES, noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0],
                  **dict(CALL, height=128, width=192, num_inference_steps=3, guidance_scale=1.0))
    finally:
        i2v.scheduler = stage2
    assert out.frames.shape == (1, 9, 128, 192, 3)


def test_transformer_single_files_load_through_from_single_file(ltx2_models):
    import torch
    from diffusers import AutoencoderKLLTX2Video, GGUFQuantizationConfig, LTX2VideoTransformer3DModel

    folder = ltx2_models / "LTX-2"
    reference = LTX2VideoTransformer3DModel.from_pretrained(folder, subfolder="transformer").state_dict()
    # `config=` the installed folder: without it diffusers fetches Lightricks/LTX-2's config from the hub.
    for file in ("ltx-2-19b-dev_transformer_only.safetensors", "ltx-2-19b-dev.safetensors"):
        model = LTX2VideoTransformer3DModel.from_single_file(ltx2_models / file, config=str(folder),
                                                              subfolder="transformer")
        loaded = model.state_dict()
        assert loaded.keys() == reference.keys() and all(torch.equal(loaded[k], reference[k]) for k in loaded), file
    vae = AutoencoderKLLTX2Video.from_single_file(ltx2_models / "ltx-2-19b-dev.safetensors", config=str(folder),
                                                  subfolder="vae").state_dict()
    vae_reference = AutoencoderKLLTX2Video.from_pretrained(folder, subfolder="vae").state_dict()
    assert all(torch.equal(vae[k], vae_reference[k]) for k in vae_reference)
    gguf = LTX2VideoTransformer3DModel.from_single_file(
        ltx2_models / "ltx-2-19b-dev-Q8_0.gguf", config=str(folder), subfolder="transformer",
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32), torch_dtype=torch.float32)
    weight = gguf.transformer_blocks[0].attn1.to_q.weight
    assert type(weight).__name__ == "GGUFParameter"  # quantised, dequantised on the fly
    from diffusers.quantizers.gguf.utils import dequantize_gguf_tensor

    dequantised = dequantize_gguf_tensor(weight).float()
    original = reference["transformer_blocks.0.attn1.to_q.weight"]
    # Q8_0: one int8 per weight with a per-32 scale: within 1/127 of each block's largest weight.
    assert (dequantised - original).abs().max() <= original.abs().max() / 100


def test_gguf_transformer_runs_in_the_pipeline(ltx2_models, picture):
    import torch
    from diffusers import GGUFQuantizationConfig, LTX2ImageToVideoPipeline, LTX2VideoTransformer3DModel

    folder = ltx2_models / "LTX-2"
    transformer = LTX2VideoTransformer3DModel.from_single_file(
        ltx2_models / "ltx-2-19b-dev-Q8_0.gguf", config=str(folder), subfolder="transformer",
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32), torch_dtype=torch.float32)
    pipe = LTX2ImageToVideoPipeline.from_pretrained(folder, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(image=picture, generator=seeded(), **CALL)
    assert out.frames.shape == (1, 9, 64, 96, 3) and np.isfinite(out.frames).all()


def test_prompt_enhancement_needs_a_processor_and_a_system_prompt(ltx2_models, tmp_path, picture):
    from diffusers import LTX2ImageToVideoPipeline
    from diffusers.pipelines.ltx2.utils import I2V_DEFAULT_SYSTEM_PROMPT

    from video_gen.tiny.ltx2 import build_tiny_ltx2

    folder = build_tiny_ltx2(tmp_path / "with-processor", upsampler=False, processor=True)
    pipe = LTX2ImageToVideoPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe.processor).__name__ == "Gemma3Processor"
    # The enhancer is the Gemma 3 text encoder itself (LTX-2.0/2.3), sampling at temperature 0.7 from a fixed seed:
    # the same seed gives the same prompt, with or without the picture.
    enhance = dict(prompt="a cat walks", system_prompt=I2V_DEFAULT_SYSTEM_PROMPT, max_new_tokens=8, seed=10)
    first = pipe.enhance_prompt(image=picture, **enhance)
    assert isinstance(first, list) and len(first) == 1 and isinstance(first[0], str)
    assert pipe.enhance_prompt(image=picture, **enhance) == first
    assert len(pipe.enhance_prompt(**enhance)) == 1  # text only
    out = pipe(image=picture, enable_prompt_enhancement=True, system_prompt=I2V_DEFAULT_SYSTEM_PROMPT,
               prompt_max_new_tokens=8, generator=seeded(), **CALL)
    assert out.frames.shape == (1, 9, 64, 96, 3)
    with pytest.raises(ValueError, match="system_prompt"):  # LTX-2.0/2.3 have no default system prompt
        pipe(image=picture, enable_prompt_enhancement=True, generator=seeded(), **CALL)
    plain = LTX2ImageToVideoPipeline.from_pretrained(ltx2_models / "LTX-2")
    assert plain.processor is None  # Lightricks/LTX-2's folder has no processor/: enhancement fails late
    with pytest.raises(AttributeError):
        plain(image=picture, enable_prompt_enhancement=True, system_prompt=I2V_DEFAULT_SYSTEM_PROMPT,
              generator=seeded(), **CALL)


# ---- what the pipeline does not check, or checks late (the family's refusals rest on these) ----------------------
def test_frame_count_off_the_8k_plus_1_rule_is_silently_changed(i2v, picture):
    assert i2v(image=picture, generator=seeded(), **dict(CALL, num_frames=10)).frames.shape[1] == 9
    assert i2v(image=picture, generator=seeded(), **dict(CALL, num_frames=8)).frames.shape[1] == 1


def test_pipeline_refusals_the_family_must_make_first(i2v, picture):
    with pytest.raises(ValueError, match="divisible by 32"):
        i2v(image=picture, generator=seeded(), **dict(CALL, height=48))
    with pytest.raises(ValueError, match="learnable registers 128"):
        i2v(image=picture, generator=seeded(), **dict(CALL, max_sequence_length=64))
    # One step: shift_terminal=0.1 stretches the single sigma to NaN (a division by zero) and the scheduler fails.
    with pytest.raises((IndexError, ValueError, RuntimeError)):
        i2v(image=picture, generator=seeded(), image_crf=0, **dict(CALL, num_inference_steps=1))


def test_stg_off_is_within_one_level_with_one_pass_fewer(i2v, picture):
    passes = []
    hook = i2v.transformer.register_forward_pre_hook(lambda *args: passes.append(1))
    try:
        default = i2v(image=picture, generator=seeded(), **CALL)
        default_passes, passes[:] = len(passes), []
        i2v(image=picture, generator=seeded(), stg_scale=0.0, **CALL)
        video_only_passes, passes[:] = len(passes), []
        off = i2v(image=picture, generator=seeded(), stg_scale=0.0, audio_stg_scale=0.0, **CALL)
        off_passes = len(passes)
    finally:
        hook.remove()
    # The CFG pair (one batch of 2), STG and modality guidance: 3 calls a step, 4 batch-1 passes' work.
    assert default_passes == 3 * CALL["num_inference_steps"]
    # audio_stg_scale defaults to 1.0, not to stg_scale: both must be 0 to drop the STG pass.
    assert video_only_passes == default_passes
    assert off_passes == 2 * CALL["num_inference_steps"]
    # LTX-2.0's blocks have no perturbed attention (`perturbed_attn` False), so the STG pass equals the conditional
    # one and its term is ~0: the frames agree within one level, the sound within float rounding.
    assert np.abs(levels(off.frames) - levels(default.frames)).max() <= 1
    assert float((off.audio - default.audio).abs().max()) < 1e-5


def test_picture_is_reencoded_through_pyav_by_default(i2v, picture):
    reencoded = i2v(image=picture, generator=seeded(), **CALL)
    raw = i2v(image=picture, generator=seeded(), image_crf=0, **CALL)
    # image_crf 33 (Gemma 3 models) re-encodes the picture as one H.264 frame first: other frames.
    assert np.abs(levels(reencoded.frames) - levels(raw.frames)).max() > 1


# ---- the sound core --------------------------------------------------------------------------------------------
def tone(samples: int, rate: int = 24000) -> np.ndarray:
    t = np.arange(samples) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


def test_samples_for_is_the_videos_length():
    assert sound.samples_for(9, 24, 24000) == 9000
    assert sound.samples_for(121, 24, 24000) == 121000
    assert sound.samples_for(121, 24000 / 1001, 48000) == round(121 * 1001 / 24000 * 48000)
    with pytest.raises(InvalidRequest, match="fps"):
        sound.samples_for(9, 0, 24000)


def test_to_pcm_pads_and_trims_to_the_videos_length(i2v, picture):
    import torch

    out = i2v(image=picture, generator=seeded(), **CALL)
    samples = sound.samples_for(9, 24.0, i2v.vocoder.config.output_sampling_rate)
    pcm = sound.to_pcm(out.audio, samples=samples)
    assert pcm.shape == (9000, 2) and pcm.dtype == np.int16
    model = out.audio[0].T.numpy()
    assert np.abs(pcm[:7920] / 32767.0 - model).max() <= 0.5 / 32767 + 1e-7  # rounded, within half a step
    assert not pcm[7920:].any()  # padded with silence
    assert sound.to_pcm(out.audio, samples=100).shape == (100, 2)
    assert np.array_equal(sound.to_pcm(out.audio.numpy(), samples=samples), pcm)  # numpy as well as torch
    loud = sound.to_pcm(torch.full((1, 2, 10), 3.0), samples=10)
    assert (loud == 32767).all()
    with pytest.raises(InvalidRequest, match="audio"):
        sound.to_pcm(np.zeros((10,), np.float32), samples=10)


def test_wav_round_trip_is_sample_exact(tmp_path):
    pcm = sound.to_pcm(tone(9000), samples=9000)
    path = sound.write_wav(tmp_path / sound.WAV_NAME, pcm, 24000)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()) == (2, 2, 24000, 9000)
    back, rate = sound.read_wav(path)
    assert rate == 24000 and np.array_equal(back, pcm)
    assert sound.read_audio(tmp_path)[0].shape == (9000, 2)  # a frames folder with audio.wav in it
    assert sound.probe_audio(tmp_path) == sound.AudioInfo(1, "pcm_s16le", 24000, 2, 9000)
    assert not [p for p in tmp_path.iterdir() if p.name != sound.WAV_NAME]  # no temporary left
    assert sound.pcm_sha256(back) == sound.pcm_sha256(pcm) != sound.pcm_sha256(pcm[::-1])


@pytest.mark.parametrize("format", ["mp4", "webm"])
def test_muxed_track_is_one_stream_of_the_videos_length(tmp_path, format):
    rng = np.random.RandomState(0)
    frames = (rng.rand(17, 64, 96, 3) * 255).astype(np.uint8)
    path = video_io.write_video(frames, tmp_path / f"clip.{format}", fps=24, format=format, metadata={"seed": 7})
    assert sound.probe_audio(path) is None  # no audio stream at all before
    samples = sound.samples_for(17, 24, 24000)
    pcm = sound.to_pcm(tone(samples), samples=samples)
    started = time.process_time()
    sound.mux_audio(path, pcm, 24000, format)
    print(f"\nmux_audio {format}: {time.process_time() - started:.3f} CPU s (this process; ffmpeg's own not counted)")
    info = sound.probe_audio(path)
    video = video_io.probe_video(path)
    assert info.streams == 1 and info.codec == {"mp4": "aac", "webm": "opus"}[format]
    assert abs(info.duration_s - 17 / 24) < 0.01 and abs(info.duration_s - video.duration_s) < 0.1
    assert video.frames == 17
    assert video_io.read_metadata(path) == {"seed": 7}  # the comment tag survives the remux
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"clip.{format}"]  # no temporary left


def test_aac_reads_back_close_to_what_was_written(tmp_path):
    frames = np.zeros((25, 64, 64, 3), np.uint8)
    path = video_io.write_video(frames, tmp_path / "clip.mp4", fps=24)
    samples = sound.samples_for(25, 24, 24000)
    pcm = sound.to_pcm(tone(samples), samples=samples)
    sound.mux_audio(path, pcm, 24000, "mp4")
    back, rate = sound.read_audio(path)
    assert rate == 24000 and back.shape == pcm.shape  # sample-exact length: the encoder delay is cut on decoding
    error = np.abs(back.astype(np.int32) - pcm) / 32767.0
    # AAC-LC at 192 kb/s is lossy: measured on this two-tone signal, at most 0.052 of full scale (sample 550, as
    # the codec's first windows settle) and 0.0024 RMS; a track shifted by one sample would be off by ~0.04 RMS.
    assert error.max() < 0.08
    assert np.sqrt(np.mean(error ** 2)) < 0.01


def test_opus_reads_back_at_the_requested_rate(tmp_path):
    frames = np.zeros((9, 64, 64, 3), np.uint8)
    path = video_io.write_video(frames, tmp_path / "clip.webm", fps=24, format="webm")
    pcm = sound.to_pcm(tone(9000), samples=9000)
    sound.mux_audio(path, pcm, 24000, "webm")
    assert sound.read_audio(path)[1] == 48000  # Opus decodes at its own 48 kHz
    back, rate = sound.read_audio(path, sample_rate=24000)
    assert rate == 24000 and back.shape == pcm.shape
    assert np.sqrt(np.mean((back.astype(np.int32) - pcm) ** 2)) / 32767.0 < 0.01


def test_gif_and_silent_files_have_no_sound(tmp_path):
    frames = np.zeros((9, 32, 32, 3), np.uint8)
    gif = video_io.write_video(frames, tmp_path / "clip.gif", fps=8, format="gif")
    assert not sound.carries_audio("gif") and sound.carries_audio("png") and sound.carries_audio("webm")
    with pytest.raises(InvalidRequest, match="gif") as refused:
        sound.mux_audio(gif, np.zeros((10, 2), np.int16), 24000, "gif")
    assert "\n" not in str(refused.value)
    assert sound.probe_audio(gif) is None and sound.read_audio(gif) is None
    folder = video_io.write_video(frames, tmp_path / "frames", fps=8, format="png")
    assert sound.probe_audio(folder) is None  # a frames folder without audio.wav


def test_bad_pcm_is_refused_in_one_line(tmp_path):
    for bad in (np.zeros((10, 2), np.float32), np.zeros((0, 2), np.int16), np.zeros(10, np.int16)):
        with pytest.raises(InvalidRequest) as refused:
            sound.write_wav(tmp_path / "a.wav", bad, 24000)
        assert "\n" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InvalidRequest, match="sample_rate"):
        sound.write_wav(tmp_path / "a.wav", np.zeros((10, 2), np.int16), 0)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_mux_leaves_the_file_as_it_was(tmp_path):
    broken = tmp_path / "clip.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(sound.AudioError, match="ffmpeg failed muxing"):
        sound.mux_audio(broken, np.zeros((100, 2), np.int16), 24000, "mp4")
    assert broken.read_bytes() == b"not a video"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary, no raw PCM left
