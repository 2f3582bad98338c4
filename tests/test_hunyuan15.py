"""HunyuanVideo 1.5 on tiny REAL models (video_gen.tiny.hunyuan15: the official diffusers layout, tokenizers built
here): the app's frames equal diffusers' pipeline called directly (PNG, ±1) for image to video and text to video,
its size buckets are diffusers' own, each bad input is one line before anything loads, Cancel stops within a
step, and the estimator counts its dense attention masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from video_gen import GenerationRequest, Generator
from video_gen.errors import Cancelled, InvalidRequest
from video_gen.events import StageEvent, StepEvent
from video_gen.families import hunyuan15, prompts
from video_gen.tiny import hunyuan15 as tiny

TINY = dict(width=64, height=64, num_frames=9, fps=24, num_inference_steps=2, seed=5, interpolation=1,
            prompt='a red cat walks, a sign says "hello"', negative_prompt="blur", max_guidance_scale=6.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hy15-models")
    tiny.build_tiny_hunyuan15(folder / "HunyuanVideo-1.5-480p_i2v", task="i2v")
    tiny.build_tiny_hunyuan15(folder / "HunyuanVideo-1.5-480p_t2v", task="t2v")
    return folder


@pytest.fixture(scope="module")
def gen(models, tmp_path_factory):
    return Generator(models_dir=models, outputs_dir=tmp_path_factory.mktemp("hy15-outputs"))


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("hy15-pictures") / "cat.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def app_frames(gen, on_event=None, **request) -> np.ndarray:
    result = gen.generate(GenerationRequest.from_dict({**TINY, **request, "output_format": "png"}), on_event=on_event)
    return np.stack([np.asarray(Image.open(path)) for path in sorted(result.path.glob("frame_*.png"))])


def direct_frames(pipe, **arguments) -> np.ndarray:
    """The pipeline called as a diffusers user would (its guider set as diffusers' docs do), frames as PNG holds
    them."""
    import torch

    pipe.set_progress_bar_config(disable=True)
    pipe.guider = pipe.guider.new(guidance_scale=TINY["max_guidance_scale"])
    arguments = {"num_frames": TINY["num_frames"], **arguments}
    video = pipe(prompt=TINY["prompt"], negative_prompt=TINY["negative_prompt"],
                 num_inference_steps=TINY["num_inference_steps"], output_type="np",
                 generator=torch.Generator("cpu").manual_seed(TINY["seed"]), **arguments).frames[0]
    return (video * 255).round().astype(np.uint8)


def assert_close(app, direct):
    assert app.shape == direct.shape
    assert np.abs(app.astype(int) - direct.astype(int)).max() <= 1


def test_image_to_video_equals_the_pipeline_called_directly(gen, models, picture):
    from diffusers import HunyuanVideo15ImageToVideoPipeline

    events = []
    app = app_frames(gen, on_event=events.append, model="HunyuanVideo-1.5-480p_i2v", image=str(picture))
    pipe = HunyuanVideo15ImageToVideoPipeline.from_pretrained(models / "HunyuanVideo-1.5-480p_i2v")
    assert_close(app, direct_frames(pipe, image=Image.open(picture).convert("RGB")))
    # progress per step from the transformer's pre-hook (two calls a step with guidance), then the decode
    steps = [event.index for event in events if isinstance(event, StepEvent) and event.stage == "denoising"]
    assert steps == [1, 2]
    assert any(isinstance(event, StageEvent) and event.stage == "decoding" for event in events)
    # the pipeline's template crop keeps the prompt's first word (the tiny tokenizer spells the prefix in 108)
    resident = gen.resident_pipeline
    assert tiny.prompt_tokens_after_crop(resident, "a red cat")[:3] == ["a", "Ġred", "Ġcat"]
    # the prompt's embeddings are kept: another seed with the same prompt runs neither text encoder
    before = prompts.calls
    app_frames(gen, model="HunyuanVideo-1.5-480p_i2v", image=str(picture), seed=6, num_inference_steps=1)
    assert prompts.calls == before


def test_text_to_video_equals_the_pipeline_called_directly(gen, models):
    from diffusers import HunyuanVideo15Pipeline

    app = app_frames(gen, model="HunyuanVideo-1.5-480p_t2v", num_frames=5)
    pipe = HunyuanVideo15Pipeline.from_pretrained(models / "HunyuanVideo-1.5-480p_t2v")
    assert_close(app, direct_frames(pipe, height=64, width=64, num_frames=5))


@pytest.mark.parametrize("change,field,words", [
    (dict(num_frames=10), "num_frames", "must be 4k+1 for HunyuanVideo 1.5 (its VAE packs 4 frames into one), got "
                                        "10; the nearest is 9 (9 or 13)"),
    (dict(width=96), "width", "96x64 is not a size HunyuanVideo 1.5 makes: it makes only its"),
    (dict(last_image="PICTURE"), "last_image", "HunyuanVideo 1.5 cannot take a last frame; leave it out"),
    (dict(loras=[{"name": "style"}]), "loras", "HunyuanVideo 1.5 (HunyuanVideo-1.5-480p_i2v) cannot take LoRAs"),
    (dict(image=None), "image", "missing: HunyuanVideo-1.5-480p_i2v is a HunyuanVideo 1.5 image-to-video model"),
    (dict(model="HunyuanVideo-1.5-480p_t2v"), "image", "is a HunyuanVideo 1.5 text-to-video model; leave the picture"),
    (dict(model="HunyuanVideo-1.5-480p_t2v", image=None, num_frames=125), "num_frames",
     "(text to video) makes one generation of at most 121 frames"),
])
def test_bad_inputs_are_one_line_before_anything_loads(gen, picture, change, field, words):
    values = {**TINY, "model": "HunyuanVideo-1.5-480p_i2v", "image": str(picture), **change}
    if values.get("last_image") == "PICTURE":
        values["last_image"] = str(picture)
    loads = gen.loads
    with pytest.raises(InvalidRequest) as caught:
        gen.prepare(GenerationRequest.from_dict(values))
    message = str(caught.value)
    assert message.startswith(f"{field}: ") and words in message and "\n" not in message
    assert gen.loads == loads


def test_its_sizes_are_diffusers_buckets_that_a_picture_of_that_size_keeps():
    from diffusers.pipelines.hunyuan_video1_5.image_processor import (HunyuanVideo15ImageProcessor,
                                                                       generate_crop_size_list)

    processor = HunyuanVideo15ImageProcessor(vae_scale_factor=16)
    for target in (tiny.TARGET_SIZE, 640, 960):
        kept = [(w, h) for h, w in generate_crop_size_list(target, 16)
                if processor.calculate_default_height_width(h, w, target) == (h, w)]
        assert hunyuan15.bucket_sizes(target) == tuple(kept)
        for h, w in generate_crop_size_list(target, 16)[::7]:  # the pipeline's own choice for other shapes
            for height, width in ((h, w), (h + 7, w), (h, w + 9)):
                assert hunyuan15.bucket_for(target, width, height)[::-1] == \
                    processor.calculate_default_height_width(height, width, target)
    assert len(hunyuan15.bucket_sizes(640)) == 80 and (848, 480) in hunyuan15.bucket_sizes(640)
    assert hunyuan15.default_size(640) == (848, 480) and hunyuan15.default_size(960) == (1280, 720)


def test_without_a_size_a_picture_gets_its_bucket(tmp_path):
    """The engine asks the family for a picture's size (`picture_size`): the pipeline's bucket for its shape, or
    the nearest one an exact-size picture keeps (a 9:16 picture: the pipeline's 480x848 is made at 480x832)."""
    from video_gen.checkpoints import ModelInfo

    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "config.json").write_text('{"target_size": 640}')
    model = ModelInfo(name="hy", path=tmp_path, family="hunyuan15", class_name=hunyuan15.SPEC.class_names[0])
    assert hunyuan15.picture_size(model, 1920, 1080) == (848, 480)
    assert hunyuan15.bucket_for(640, 1080, 1920) == (480, 848)
    assert hunyuan15.picture_size(model, 1080, 1920) == (480, 832)
    assert hunyuan15.picture_size(model, 1000, 1000) == (640, 640)


def test_the_page_offers_its_buckets_and_match_image_picks_the_pictures(gen, picture):
    from video_gen.web.controls import resolution_choices

    spec = hunyuan15.model_spec(gen.resolve("HunyuanVideo-1.5-480p_i2v"))
    assert spec.image == "required" and (64, 64) in spec.sizes
    values = [value for _, value in resolution_choices(spec)]
    assert values[0] == "match image" and "64x64" in values and "1024x576" not in values
    # "match image" leaves the size to the family, which gives the picture's bucket
    request = gen.prepare(GenerationRequest(image=str(picture), model="HunyuanVideo-1.5-480p_i2v", prompt="a cat"))
    assert (request.request.width, request.request.height) == (64, 64)


def test_cancel_stops_within_a_step_and_keeps_nothing(gen, picture):
    outputs = set(gen.outputs_dir.glob("*"))
    calls, hooked = [], []

    def on_event(event):
        if isinstance(event, StageEvent) and event.stage == "encoding_image":  # loaded: count its transformer calls
            hooked.append(gen.resident_pipeline.transformer)
            hooked.append(hooked[0].register_forward_pre_hook(lambda module, args: calls.append(1)))
        if isinstance(event, StepEvent) and event.stage == "denoising":
            gen.cancel()  # step 1 of 3 is done: the next transformer call stops the job

    try:
        with pytest.raises(Cancelled):
            app_frames(gen, on_event=on_event, model="HunyuanVideo-1.5-480p_i2v", image=str(picture),
                       num_inference_steps=3, seed=9)
    finally:
        hooked[1].remove()
    # the two calls of step 1 and the first of step 2, stopped by the family's hook before the transformer ran
    assert len(calls) == 3
    assert {path for path in gen.outputs_dir.glob("*") if path.suffix != ".json"} - outputs <= {
        gen.outputs_dir / "history.sqlite3-wal", gen.outputs_dir / "history.sqlite3-shm", gen.outputs_dir / ".inputs"}
    assert not hooked[0]._forward_pre_hooks  # the family's hook is gone with the job


def test_attention_without_dense_masks_equals_the_stock_processor_on_every_row(models):
    """The family's attention (no S x S mask: the valid tokens are a prefix) against diffusers' own, on a block of
    the tiny transformer with half its text padded: the same output on valid and padded rows alike, and no tensor
    of S x S elements made (the stock one makes three: two boolean masks and SDPA's float mask)."""
    import torch
    from diffusers import HunyuanVideo15Transformer3DModel
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(tensor, torch.Tensor):
                    self.largest = max(self.largest, tensor.numel())
            return out

    transformer = HunyuanVideo15Transformer3DModel.from_pretrained(models / "HunyuanVideo-1.5-480p_i2v",
                                                                   subfolder="transformer")
    attention = transformer.transformer_blocks[0].attn
    generator = torch.Generator().manual_seed(0)
    latents, text = torch.randn(1, 150, 16, generator=generator), torch.randn(1, 50, 16, generator=generator)
    mask = torch.zeros(1, 50, dtype=torch.bool)
    mask[:, :23] = True  # the valid text first, as the transformer orders it
    outputs = []
    for processor in (type(attention.processor)(), hunyuan15.prefix_attention_processor()):
        with torch.no_grad(), Largest() as tracked:
            outputs.append(processor(attention, latents, text, attention_mask=mask))
        outputs.append(tracked.largest)
    (stock_latents, stock_text), stock_largest, (own_latents, own_text), own_largest = outputs
    torch.testing.assert_close(own_latents, stock_latents)
    torch.testing.assert_close(own_text, stock_text)  # the padded rows too
    assert stock_largest >= 200 * 200 > own_largest


def test_on_a_12_gb_card_the_480p_job_fits_with_its_text_encoder_never_beside_the_transformer():
    """Qwen2.5-VL's text model (14 GB in bf16) and the transformer (16.7 GB) are components of their own: the plan
    for 121 frames at 848x480 on a 12 GB card offloads block by block, and no stage holds both."""
    from video_gen.memory import JobShape, ModelWeights, choose, ladder
    from video_gen.memory.device import GiB

    reference = hunyuan15.SPEC.reference_model
    weights = ModelWeights(reference.numel, reference.largest_block, reference.largest_tensor)
    plans = ladder("cuda:0", "bfloat16", weights, JobShape("hunyuan15", 121, 848, 480, 128), total_bytes=12 * GiB)
    plan = choose(plans, int(12 * GiB * 0.9))
    assert plan.offload == "group" and plan.estimate_bytes <= 12 * GiB * 0.9
    both = (weights.numel["transformer"] + weights.numel["text_encoder"]) * 2
    assert max(plan.stage_bytes.values()) < min(weights.numel["transformer"], weights.numel["text_encoder"]) * 2
    # everything resident would need both and more: the planner never picks it here
    assert plans[0].offload == "none" and plans[0].estimate_bytes > both
