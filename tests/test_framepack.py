"""FramePack on tiny REAL models (video_gen.tiny.framepack: diffusers' documented three-repository layout and a
saved pipeline, tokenizers built here): a video of two sections is ONE pipeline call whose frames equal the
pipeline called directly (PNG, ±1) for F1 and for the original with a last frame; progress says "section k of
n"; Cancel stops within a step; a long video is one generation; the estimate does not grow with the length but
by the history latents; each bad input is one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from video_gen import GenerationRequest, Generator
from video_gen.errors import Cancelled, InvalidRequest
from video_gen.events import PreviewEvent, StageEvent, StepEvent
from video_gen.families import framepack
from video_gen.tiny import framepack as tiny
from video_gen.tiny.common import build_tiny_transformer_lora

# 45 frames: two sections of 36 (the pipeline makes 73 and the app writes the first 45)
TINY = dict(width=64, height=64, num_frames=45, fps=30, num_inference_steps=2, seed=3, interpolation=1,
            prompt="a red cat walks", max_guidance_scale=9.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("framepack-models")
    tiny.build_tiny_framepack(folder / "framepack-f1", variant="f1", layout="combined")
    tiny.build_tiny_framepack(folder / "FramePackI2V_HY-pipeline", variant="original", layout="saved", seed=1)
    # a LoRA on the attention of its double-stream blocks, in diffusers' layout (HunyuanVideo's LoRA loader reads it)
    build_tiny_transformer_lora(folder / "FramePackI2V_HY-pipeline", folder / "loras" / "fp-style.safetensors",
                                targets=r".*transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v)", scale=1.0)
    return folder


@pytest.fixture(scope="module")
def gen(models, tmp_path_factory):
    return Generator(models_dir=models, outputs_dir=tmp_path_factory.mktemp("framepack-outputs"))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("framepack-pictures")
    rng = np.random.default_rng(1)
    first, last = folder / "first.png", folder / "last.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(first)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(last)
    return first, last


def app_frames(gen, on_event=None, preview_every=0, **request) -> np.ndarray:
    result = gen.generate(GenerationRequest.from_dict({**TINY, **request, "output_format": "png"}), on_event=on_event,
                          preview_every=preview_every)
    return np.stack([np.asarray(Image.open(path)) for path in sorted(result.path.glob("frame_*.png"))])


def direct_frames(pipe, picture, frames=TINY["num_frames"], sections=2, **arguments) -> np.ndarray:
    """One call of diffusers' pipeline as its docs make it, asked for 33 frames a section (it counts sections as
    ceil(num_frames / 33)); the first `frames` of its 36 x sections + 1."""
    import torch

    pipe.set_progress_bar_config(disable=True)
    video = pipe(image=Image.open(picture).convert("RGB"), prompt=TINY["prompt"], height=64, width=64,
                 num_frames=33 * sections, num_inference_steps=TINY["num_inference_steps"],
                 guidance_scale=TINY["max_guidance_scale"], generator=torch.Generator("cpu").manual_seed(TINY["seed"]),
                 output_type="np", **arguments).frames[0]
    assert video.shape[0] == 36 * sections + 1
    return (video[:frames] * 255).round().astype(np.uint8)


def assert_close(app, direct):
    assert app.shape == direct.shape
    assert np.abs(app.astype(int) - direct.astype(int)).max() <= 1


def test_f1_two_sections_are_one_pipeline_call_equal_to_the_pipeline_called_directly(gen, models, pictures):
    events = []
    app = app_frames(gen, on_event=events.append, preview_every=2, model="framepack-f1", image=str(pictures[0]))
    assert gen.resident_pipeline._video_gen_sampling == "vanilla"  # "F1" in the transformer folder's name
    assert_close(app, direct_frames(tiny.load_combined(models / "framepack-f1"), pictures[0], sampling_type="vanilla"))
    stages = [event.message for event in events if isinstance(event, StageEvent) and event.stage == "denoising"]
    assert stages == ["section 1 of 2: denoising 36 frames", "section 2 of 2: denoising 36 frames"]
    steps = [(event.section, event.sections, event.index, event.total) for event in events
             if isinstance(event, StepEvent) and event.stage == "denoising"]
    assert steps == [(1, 2, 1, 4), (1, 2, 2, 4), (2, 2, 3, 4), (2, 2, 4, 4)]
    assert all(event.segments == 1 for event in events if isinstance(event, StepEvent))  # no chained segments
    # the preview shows each section's latents (HunyuanVideo's latent-to-RGB map, the tiny VAE's 16 channels)
    assert [(event.index, event.total) for event in events if isinstance(event, PreviewEvent)] == [(2, 4), (4, 4)]
    # the Llama tokenizer as its tokenizer.json defines it: the template's 95 tokens cropped, the prompt kept whole
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_framepack import DEFAULT_PROMPT_TEMPLATE

    tokenizer = gen.resident_pipeline.tokenizer
    ids = tokenizer(DEFAULT_PROMPT_TEMPLATE["template"].format("a red cat walks"))["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[95:]) == ["a", "Ġred", "Ġcat", "Ġwalks", "<|eot_id|>"]
    # the decoded frames' hook is gone with the job
    assert not gen.resident_pipeline.vae.decoder._forward_hooks


def test_cancel_stops_within_a_step_and_keeps_nothing(gen, pictures):
    before = {path for path in gen.outputs_dir.glob("*") if path.suffix != ".json"}
    seen = []

    def on_event(event):
        seen.append(event)
        if isinstance(event, StageEvent) and event.message.startswith("section 2 of 2"):
            gen.cancel()  # as section 2 starts: its first transformer call is stopped

    with pytest.raises(Cancelled):
        app_frames(gen, on_event=on_event, model="framepack-f1", image=str(pictures[0]), seed=4)
    assert not any(isinstance(event, StepEvent) and event.section == 2 for event in seen)
    after = {path for path in gen.outputs_dir.glob("*") if path.suffix != ".json"}
    assert after - before <= {gen.outputs_dir / "history.sqlite3-wal", gen.outputs_dir / "history.sqlite3-shm",
                              gen.outputs_dir / ".inputs"}
    pipe = gen.resident_pipeline
    assert not pipe.transformer._forward_pre_hooks and not pipe.vae.decoder._forward_hooks


def test_a_lora_fits_by_its_modules_and_equals_diffusers_loading_it(gen, models, pictures):
    """The LoRA is judged against the transformer in its own repository (the documented layout's) and loads through
    `HunyuanVideoFramepackPipeline`'s LoRA loader, as diffusers' own `load_lora_weights` + `set_adapters` do."""
    one_section = dict(model="framepack-f1", image=str(pictures[0]), num_frames=9)
    app = app_frames(gen, loras=[{"name": "fp-style", "strength": 0.8}], **one_section)
    pipe = tiny.load_combined(models / "framepack-f1")
    pipe.load_lora_weights(str(models / "loras" / "fp-style.safetensors"), adapter_name="style")
    pipe.set_adapters(["style"], [0.8])
    assert_close(app, direct_frames(pipe, pictures[0], frames=9, sections=1, sampling_type="vanilla"))
    assert np.abs(app.astype(int) - app_frames(gen, **one_section).astype(int)).max() > 1  # it changes the video


def test_the_original_saved_pipeline_with_a_last_frame_equals_the_pipeline(gen, models, pictures):
    from diffusers import HunyuanVideoFramepackPipeline

    first, last = pictures
    # one section (9 frames of its 37): the two-section call is the F1 test's
    app = app_frames(gen, model="FramePackI2V_HY-pipeline", image=str(first), last_image=str(last), num_frames=9)
    folder = models / "FramePackI2V_HY-pipeline"
    pipe = HunyuanVideoFramepackPipeline.from_pretrained(folder, tokenizer=framepack.llama_tokenizer(folder / "tokenizer"))
    assert_close(app, direct_frames(pipe, first, frames=9, sections=1, last_image=Image.open(last).convert("RGB"),
                                    sampling_type="inverted_anti_drifting"))


@pytest.mark.parametrize("change,field,words", [
    (dict(num_frames=46), "num_frames", "must be 4k+1 for FramePack (its VAE packs 4 frames into one), got 46; the "
                                        "nearest is 45 (45 or 49)"),
    (dict(width=72), "width", "must be a multiple of 16 for FramePack, got 72"),
    (dict(last_image="LAST"), "last_image", "framepack-f1 is FramePack-F1, which samples forward in time and cannot "
                                            "end on a last frame"),
    (dict(image=None), "image", "missing: FramePack animates a picture"),
    (dict(keyframes=[{"image": "LAST", "frame": 8}]), "keyframes", "FramePack cannot take keyframes"),
])
def test_bad_inputs_are_one_line_before_anything_loads(gen, pictures, change, field, words):
    values = {**TINY, "model": "framepack-f1", "image": str(pictures[0]), **change}
    for key, value in list(values.items()):
        if value == "LAST":
            values[key] = str(pictures[1])
    if "keyframes" in change:
        values["keyframes"] = [{"image": str(pictures[1]), "frame": 8}]
    loads = gen.loads
    with pytest.raises(InvalidRequest) as caught:
        gen.prepare(GenerationRequest.from_dict(values))
    message = str(caught.value)
    assert message.startswith(f"{field}: ") and words in message and "\n" not in message
    assert gen.loads == loads


def test_a_long_video_is_one_generation_and_the_negative_prompt_is_noted(gen, pictures):
    from video_gen.web.fields import length_note, length_plan

    job = gen.prepare(GenerationRequest(image=str(pictures[0]), model="framepack-f1", num_frames=1801, fps=30,
                                        negative_prompt="blur"))
    assert job.length.segments == 1 and job.length.generated_frames == (1801,)  # a minute at 30 fps
    assert job.spec.sections(1801) == 50 and framepack.pipeline_frames(1801) == 33 * 50
    assert any("negative prompt is not used" in note for note in job.notes)
    spec = framepack.model_spec(job.model)
    assert not spec.last_image and spec.duration_range == (1, 60)
    plan = length_plan(20, 30, {"num_frames": 145, "fps": 30}, frame_step=4, exact_frames=True, spec=spec)
    assert plan.segments == 1 and "in 17 sections of 36 frames" in length_note(plan, {"num_frames": 145}, spec)
    # the guidance control says what it is for FramePack
    assert "distilled guidance" in dict(spec.control_help)["max_guidance_scale"]
    # F1 or the original, by name only
    assert framepack.names_f1("FramePack_F1_I2V_HY_20250503") and framepack.names_f1("framepack-f1")
    assert not framepack.names_f1("FramePackI2V_HY") and not framepack.names_f1("f16-model")


def test_the_estimate_is_one_sections_and_grows_only_by_the_history_latents():
    from video_gen.memory import JobShape, MemoryPlan, ModelWeights, estimate, length_rows
    from video_gen.memory.device import GiB

    reference = framepack.SPEC.reference_model
    weights = ModelWeights(reference.numel, reference.largest_block, reference.largest_tensor)
    for offload in ("none", "group"):
        plan = MemoryPlan(device="cuda:0", dtype="bfloat16", offload=offload, decode_chunk_size=16)
        five, minute = (estimate(plan, weights, JobShape("framepack", frames, 640, 640, 16)) for frames in (149, 1801))
        # the decoded video leaves the device as it is made; the float32 history latents stay: 0.25 B a pixel a frame
        assert minute - five == int(0.25 * 1801 * 640 * 640) - int(0.25 * 149 * 640 * 640)
        assert (minute - five) / GiB < 0.2
    rows = length_rows("framepack-f1", "framepack", weights, reference.defaults, device="cuda:0", dtype="bfloat16",
                       budget_bytes=int(10.8 * GiB), total_bytes=12 * GiB, resolutions=((640, 640),))
    assert rows[0].length_text(rows[0].cheapest_frames) == "any length (36-frame sections fit)"


def test_a_continuation_of_one_generations_length_keeps_every_frame(gen, tmp_path):
    """FramePack makes any length in one generation: extending by 145 frames (its 4.8 s default at 30 fps) keeps
    all 145, with no note that one frame more would cost a whole generation more (it would not)."""
    from video_gen import video_io
    from video_gen.extend import prepare_extension

    rng = np.random.default_rng(2)
    source = video_io.write_video(rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8), tmp_path / "source.mp4",
                                  fps=30)
    job = prepare_extension(gen, source, duration=145 / 30, overrides={"model": "framepack-f1"})
    assert job.length.segments == 1 and job.finish.new_frames == 145
    assert not any("whole generation more" in note for note in job.notes)
