"""The tiny HunyuanVideo 1.5 and FramePack folders (video_gen/tiny/hunyuan15.py, video_gen/tiny/framepack.py)
load with diffusers' own pipeline classes and a direct pipeline call runs, on the CPU in float32: the facts the
families `hunyuan15` and `framepack` are built on (size buckets, frame counts, sections, prompt crops)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from video_gen.tiny import framepack as tiny_framepack
from video_gen.tiny import hunyuan15 as tiny_hunyuan15

STEPS = 2


def _picture(width: int, height: int) -> Image.Image:
    """A picture with structure (a gradient and a block), so that crops and resizes change the pixels."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    pixels = np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                             np.full((height, width, 1), 90, np.float32)], axis=2).copy()
    pixels[height // 4: height // 2, width // 4: width // 2] = (250, 20, 20)
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.fixture(scope="module")
def hunyuan15_i2v(tmp_path_factory):
    return tiny_hunyuan15.build_tiny_hunyuan15(tmp_path_factory.mktemp("hy15") / "HunyuanVideo-1.5-480p_i2v")


@pytest.fixture(scope="module")
def hunyuan15_pipe(hunyuan15_i2v):
    from diffusers import HunyuanVideo15ImageToVideoPipeline

    return HunyuanVideo15ImageToVideoPipeline.from_pretrained(hunyuan15_i2v, torch_dtype=torch.float32)


def test_hunyuan15_i2v_folder_is_the_official_layout(hunyuan15_i2v):
    index = json.loads((hunyuan15_i2v / "model_index.json").read_text())
    assert index["_class_name"] == "HunyuanVideo15ImageToVideoPipeline"
    expected = {"transformer": "HunyuanVideo15Transformer3DModel", "vae": "AutoencoderKLHunyuanVideo15",
                "text_encoder": "Qwen2_5_VLTextModel", "tokenizer": "Qwen2Tokenizer",
                "text_encoder_2": "T5EncoderModel", "tokenizer_2": "ByT5Tokenizer",
                "guider": "ClassifierFreeGuidance", "scheduler": "FlowMatchEulerDiscreteScheduler",
                "image_encoder": "SiglipVisionModel"}
    assert {name: index[name][1] for name in expected} == expected
    # Without torchvision transformers saves the Pil-backed processor under its own name.
    assert index["feature_extractor"][1] in ("SiglipImageProcessor", "SiglipImageProcessorPil")
    for name in expected:
        assert (hunyuan15_i2v / name).is_dir(), name
    config = json.loads((hunyuan15_i2v / "transformer" / "config.json").read_text())
    assert (config["task_type"], config["target_size"]) == ("i2v", tiny_hunyuan15.TARGET_SIZE)


def test_hunyuan15_prompt_survives_the_template_crop(hunyuan15_pipe):
    """The pipeline drops the first 108 tokens of the templated prompt: with the tiny tokenizer that is exactly
    the system message and the chat markup, so the kept tokens start with the prompt's first word."""
    assert hunyuan15_pipe.prompt_template_encode_start_idx == tiny_hunyuan15.CROP_START
    kept = tiny_hunyuan15.prompt_tokens_after_crop(hunyuan15_pipe, "a red cat walks on the snow")
    assert kept[:7] == ["a", "Ġred", "Ġcat", "Ġwalks", "Ġon", "Ġthe", "Ġsnow"]
    assert kept[7] == "<|im_end|>"
    # A word the tokenizer never saw is spelled in bytes, still after the crop.
    assert "".join(tiny_hunyuan15.prompt_tokens_after_crop(hunyuan15_pipe, "zebra")[:5]).startswith("z")


@pytest.mark.parametrize("size,expected", [((160, 90), (80, 48)), ((90, 160), (48, 80)), ((100, 100), (64, 64))])
def test_hunyuan15_picks_the_bucket_nearest_the_pictures_aspect(hunyuan15_pipe, size, expected):
    """No width/height argument: the output size is the bucket of the transformer's `target_size` nearest the
    picture's aspect (the picture is resized and centre-cropped to it)."""
    assert expected in tiny_hunyuan15.bucket_sizes(tiny_hunyuan15.TARGET_SIZE)
    frames = hunyuan15_pipe(image=_picture(*size), prompt="a red cat", num_frames=5, num_inference_steps=1,
                            generator=torch.Generator().manual_seed(0), output_type="np").frames
    assert frames.shape[2:4] == (expected[1], expected[0])


def test_hunyuan15_real_buckets():
    buckets = tiny_hunyuan15.bucket_sizes(640)
    assert (848, 480) in buckets and (480, 848) in buckets and (640, 640) in buckets and len(buckets) == 121
    assert all(width % 16 == 0 and height % 16 == 0 for width, height in buckets)
    assert len(tiny_hunyuan15.bucket_sizes(960)) == 181 and (1280, 720) in tiny_hunyuan15.bucket_sizes(960)


def test_hunyuan15_i2v_direct_call_is_deterministic(hunyuan15_pipe):
    counts = []
    hook = hunyuan15_pipe.transformer.register_forward_pre_hook(lambda module, args: counts.append(1))
    try:
        hunyuan15_pipe.guider = hunyuan15_pipe.guider.new(guidance_scale=6.0)
        started = time.process_time()
        first = hunyuan15_pipe(image=_picture(160, 90), prompt='a red cat walks, a sign says "hello"',
                               negative_prompt="blur", num_frames=9, num_inference_steps=STEPS,
                               generator=torch.Generator().manual_seed(7), output_type="np").frames
        seconds = time.process_time() - started
        calls_with_cfg = len(counts)
        second = hunyuan15_pipe(image=_picture(160, 90), prompt='a red cat walks, a sign says "hello"',
                                negative_prompt="blur", num_frames=9, num_inference_steps=STEPS,
                                generator=torch.Generator().manual_seed(7), output_type="np").frames
        other_seed = hunyuan15_pipe(image=_picture(160, 90), prompt='a red cat walks, a sign says "hello"',
                                    negative_prompt="blur", num_frames=9, num_inference_steps=STEPS,
                                    generator=torch.Generator().manual_seed(8), output_type="np").frames
        counts.clear()
        hunyuan15_pipe.guider = hunyuan15_pipe.guider.new(guidance_scale=1.0)
        hunyuan15_pipe(image=_picture(160, 90), prompt="a red cat", num_frames=5, num_inference_steps=STEPS,
                       generator=torch.Generator().manual_seed(7), output_type="np")
    finally:
        hook.remove()
        hunyuan15_pipe.guider = hunyuan15_pipe.guider.new(guidance_scale=6.0)
    print(f"\nHunyuanVideo 1.5 tiny i2v, 9 frames 80x48, {STEPS} steps with CFG: {seconds:.2f} CPU s")
    assert first.shape == (1, 9, 48, 80, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - other_seed).max() > 1e-3
    # Classifier-free guidance runs the transformer twice per step, one batch of 1 each (not one batch of 2);
    # guidance 1.0 turns the guider off: once per step, and the negative prompt is not encoded.
    assert calls_with_cfg == 2 * STEPS
    assert len(counts) == STEPS


def test_hunyuan15_floors_frames_to_4k_plus_1_without_a_word(hunyuan15_pipe):
    """Neither HunyuanVideo 1.5 pipeline checks `num_frames`: 10 gives (10-1)//4+1 = 3 latent frames = 9 frames.
    The app must refuse a count off the rule itself."""
    frames = hunyuan15_pipe(image=_picture(64, 64), prompt="a cat", num_frames=10, num_inference_steps=1,
                            generator=torch.Generator().manual_seed(0), output_type="np").frames
    assert frames.shape[1] == 9


def test_hunyuan15_t2v_folder_runs(tmp_path):
    from diffusers import HunyuanVideo15Pipeline

    folder = tiny_hunyuan15.build_tiny_hunyuan15(tmp_path / "HunyuanVideo-1.5-480p_t2v", task="t2v")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "HunyuanVideo15Pipeline" and "image_encoder" not in index
    pipe = HunyuanVideo15Pipeline.from_pretrained(folder, torch_dtype=torch.float32)
    # No size: the bucket nearest 16:9 (`default_aspect_ratio`); a size: taken as given, floored to 16.
    default = pipe(prompt="a dog runs", num_frames=5, num_inference_steps=1,
                   generator=torch.Generator().manual_seed(0), output_type="np").frames
    assert default.shape == (1, 5, 48, 80, 3)
    given = pipe(prompt="a dog runs", height=40, width=72, num_frames=5, num_inference_steps=1,
                 generator=torch.Generator().manual_seed(0), output_type="np").frames
    assert given.shape == (1, 5, 32, 64, 3)


# ---- FramePack -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def framepack_combined(tmp_path_factory):
    return tiny_framepack.build_tiny_framepack(tmp_path_factory.mktemp("fp") / "framepack-f1", variant="f1",
                                               layout="combined")


@pytest.fixture(scope="module")
def framepack_f1_pipe(framepack_combined):
    return tiny_framepack.load_combined(framepack_combined, torch_dtype=torch.float32)


def test_framepack_combined_layout_is_three_repositories(framepack_combined):
    paths = tiny_framepack.combined_paths(framepack_combined)
    assert paths["transformer"].name == "FramePack_F1_I2V_HY_20250503"
    base = json.loads((paths["base"] / "model_index.json").read_text())
    assert base["_class_name"] == "HunyuanVideoPipeline"
    assert base["tokenizer"] == ["transformers", "LlamaTokenizerFast"]
    config = json.loads((paths["transformer"] / "config.json").read_text())
    assert config["_class_name"] == "HunyuanVideoTransformer3DModelPacked"
    assert config["has_clean_x_embedder"] and config["has_image_proj"]
    assert (paths["siglip"] / "image_encoder" / "config.json").is_file()
    assert (paths["siglip"] / "feature_extractor" / "preprocessor_config.json").is_file()


def test_framepack_prompt_survives_the_template_crop(framepack_f1_pipe):
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_framepack import DEFAULT_PROMPT_TEMPLATE

    tokenizer = framepack_f1_pipe.tokenizer
    ids = tokenizer(DEFAULT_PROMPT_TEMPLATE["template"].format("a red cat walks"))["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[DEFAULT_PROMPT_TEMPLATE["crop_start"]:]) == \
        ["a", "Ġred", "Ġcat", "Ġwalks", "<|eot_id|>"]


def test_framepack_sampling_type_follows_the_name():
    assert tiny_framepack.sampling_type_for("FramePack_F1_I2V_HY_20250503") == "vanilla"
    assert tiny_framepack.sampling_type_for("framepack-f1") == "vanilla"
    assert tiny_framepack.sampling_type_for("FramePack_F1_I2V_HY_20250503_fp8_e4m3fn.safetensors") == "vanilla"
    assert tiny_framepack.sampling_type_for("FramePackI2V_HY") == "inverted_anti_drifting"
    assert tiny_framepack.sampling_type_for("FramePackI2V_HY_bf16.safetensors") == "inverted_anti_drifting"


def _sections(num_frames: int, latent_window_size: int = 9) -> int:
    """The pipeline's own count (step 5 of its __call__)."""
    window = (latent_window_size - 1) * 4 + 1
    return max(1, (num_frames + window - 1) // window)


def _run(pipe, num_frames, seed, **kwargs):
    return pipe(image=_picture(48, 40), prompt="a red cat walks", height=32, width=32, num_frames=num_frames,
                num_inference_steps=STEPS, guidance_scale=9.0, generator=torch.Generator().manual_seed(seed),
                output_type="np", **kwargs).frames


def test_framepack_f1_two_sections_deterministic(framepack_f1_pipe):
    """34 frames need two sections of 33 (latent_window_size 9): one pipeline call returns 36*2+1 = 73 frames.
    The step callback sees `i` restart at 0 in each section, which is how the app counts "section k of n"."""
    seen = []

    def on_step(pipe, i, t, kwargs):
        seen.append(i)
        return {}

    started = time.process_time()
    first = _run(framepack_f1_pipe, 34, 3, sampling_type="vanilla", callback_on_step_end=on_step)
    seconds = time.process_time() - started
    second = _run(framepack_f1_pipe, 34, 3, sampling_type="vanilla")
    print(f"\nFramePack F1 tiny, 2 sections (73 frames 32x32), {STEPS} steps: {seconds:.2f} CPU s")
    assert _sections(34) == 2
    assert first.shape == (1, 73, 32, 32, 3)
    np.testing.assert_array_equal(first, second)
    assert seen == list(range(STEPS)) * 2
    assert framepack_f1_pipe.num_timesteps == STEPS


@pytest.mark.parametrize("num_frames", [1, 33, 67])
def test_framepack_returns_36_frames_per_section_plus_one(framepack_f1_pipe, num_frames):
    frames = _run(framepack_f1_pipe, num_frames, 0, sampling_type="vanilla")
    assert frames.shape[1] == 36 * _sections(num_frames) + 1


def test_framepack_original_saved_layout_two_sections(tmp_path):
    from diffusers import HunyuanVideoFramepackPipeline

    folder = tiny_framepack.build_tiny_framepack(tmp_path / "FramePackI2V_HY-pipeline", variant="original",
                                                 layout="saved")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "HunyuanVideoFramepackPipeline"
    assert index["transformer"] == ["diffusers", "HunyuanVideoFramepackTransformer3DModel"]
    pipe = HunyuanVideoFramepackPipeline.from_pretrained(
        folder, tokenizer=tiny_framepack.llama_tokenizer(folder / "tokenizer"), torch_dtype=torch.float32)
    started = time.process_time()
    first = _run(pipe, 34, 5)  # the pipeline's default sampling: inverted anti-drifting
    seconds = time.process_time() - started
    second = _run(pipe, 34, 5, sampling_type="inverted_anti_drifting")
    print(f"\nFramePack original tiny, 2 sections (73 frames 32x32), {STEPS} steps: {seconds:.2f} CPU s")
    assert first.shape == (1, 73, 32, 32, 3)
    np.testing.assert_array_equal(first, second)
    # The pipeline's own checks: sizes in multiples of 16, a last picture only with inverted sampling.
    with pytest.raises(ValueError, match="divisible by 16"):
        pipe(image=_picture(48, 40), prompt="a cat", height=40, width=32, num_frames=9, num_inference_steps=1)
    with pytest.raises(ValueError, match="last_image"):
        pipe(image=_picture(48, 40), last_image=_picture(48, 40), prompt="a cat", height=32, width=32,
             num_frames=9, num_inference_steps=1, sampling_type="vanilla")
