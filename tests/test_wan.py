"""The Wan family on tiny REAL models (video_gen.tiny.wan): each variant's frames equal diffusers' pipeline
called directly with the same seed and parameters (PNG, ±1), the GGUF transformer against its weights
dequantised, the prompt-embedding cache, GGUF discovery, and the bad inputs, each one line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from video_gen import GenerationRequest, Generator
from video_gen.cli import main
from video_gen.errors import InvalidRequest, ModelNotFound
from video_gen.events import PreviewEvent, StepEvent
from video_gen.families import prompts
from video_gen.tiny.wan import (build_tiny_wan, dequantized_transformer, save_gguf_of_another_family,
                                   save_wan_gguf)

TINY = dict(width=64, height=64, num_frames=9, fps=16, num_inference_steps=2, seed=5, prompt="a cat walks",
            negative_prompt="blurry", interpolation=1)


@pytest.fixture(scope="module")
def wan_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wan-models")
    for variant in ("i2v", "flf2v", "a14b", "ti2v-5b", "t2v"):
        build_tiny_wan(folder / f"tiny-wan-{variant}", variant, seed=1)
    save_wan_gguf(folder / "tiny-wan-i2v" / "transformer", folder / "wan-i2v-Q4_0.gguf", quant="Q4_0")
    save_wan_gguf(folder / "tiny-wan-a14b" / "transformer", folder / "wan-a14b_high_noise_Q8_0.gguf")
    save_wan_gguf(folder / "tiny-wan-a14b" / "transformer_2", folder / "wan-a14b_low_noise_Q8_0.gguf")
    return folder


@pytest.fixture(scope="module")
def wan_generator(wan_models, tmp_path_factory):
    return Generator(models_dir=wan_models, outputs_dir=tmp_path_factory.mktemp("wan-outputs"))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wan-pictures")
    rng = np.random.default_rng(0)
    first, last = folder / "first.png", folder / "last.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(first)
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(last)  # another size: fitted
    return first, last


def app_frames(generator, **request) -> np.ndarray:
    result = generator.generate(GenerationRequest.from_dict({**TINY, **request, "output_format": "png"}))
    return np.stack([np.asarray(Image.open(path)) for path in sorted(result.path.glob("frame_*.png"))])


def direct_frames(pipe, steps=2, **arguments) -> np.ndarray:
    """diffusers' pipeline called directly, as a user of diffusers would, frames as the app writes them (PIL)."""
    import torch

    pipe.set_progress_bar_config(disable=True)
    video = pipe(prompt=TINY["prompt"], negative_prompt=TINY["negative_prompt"], height=64, width=64, num_frames=9,
                 num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(TINY["seed"]),
                 output_type="pil", **arguments).frames[0]
    return np.stack([np.asarray(frame) for frame in video])


def fitted(path, width=64, height=64):
    from video_gen.images import fit_to_size, open_image

    return fit_to_size(open_image(path), width, height, "crop")


def assert_close(app, direct):
    assert app.shape == direct.shape
    assert np.abs(app.astype(int) - direct.astype(int)).max() <= 1


def test_wan_21_i2v_equals_the_pipeline_called_directly(wan_generator, wan_models, pictures):
    from diffusers import WanImageToVideoPipeline

    app = app_frames(wan_generator, model="tiny-wan-i2v", image=str(pictures[0]), max_guidance_scale=5.0)
    pipe = WanImageToVideoPipeline.from_pretrained(wan_models / "tiny-wan-i2v")
    assert_close(app, direct_frames(pipe, image=fitted(pictures[0]), guidance_scale=5.0))


def test_wan_flf2v_first_and_last_frame_equals_the_pipeline(wan_generator, wan_models, pictures):
    from diffusers import WanImageToVideoPipeline

    first, last = pictures
    app = app_frames(wan_generator, model="tiny-wan-flf2v", image=str(first), last_image=str(last))
    pipe = WanImageToVideoPipeline.from_pretrained(wan_models / "tiny-wan-flf2v")
    # The last frame (128x96) is fitted to the video's size the way the first one is
    direct = direct_frames(pipe, image=fitted(first), last_image=fitted(last), guidance_scale=5.0)
    assert_close(app, direct)


def test_wan_22_a14b_two_experts_with_two_guidances_equals_the_pipeline(wan_generator, wan_models, pictures):
    from diffusers import WanImageToVideoPipeline

    app = app_frames(wan_generator, model="tiny-wan-a14b", image=str(pictures[0]), num_inference_steps=4,
                     max_guidance_scale=4.0, min_guidance_scale=2.0)
    pipe = WanImageToVideoPipeline.from_pretrained(wan_models / "tiny-wan-a14b")
    # 4 steps with boundary 0.875: both experts run
    direct = direct_frames(pipe, image=fitted(pictures[0]), guidance_scale=4.0, guidance_scale_2=2.0, steps=4)
    assert_close(app, direct)


def test_wan_22_ti2v_5b_from_a_picture_and_from_text_equals_the_pipelines(wan_generator, wan_models, pictures):
    from diffusers import WanImageToVideoPipeline, WanPipeline

    app = app_frames(wan_generator, model="tiny-wan-ti2v-5b", image=str(pictures[0]))
    text_pipe = WanPipeline.from_pretrained(wan_models / "tiny-wan-ti2v-5b")
    image_pipe = WanImageToVideoPipeline(**text_pipe.components, expand_timesteps=True)  # diffusers' 5B I2V
    assert_close(app, direct_frames(image_pipe, image=fitted(pictures[0]), guidance_scale=5.0))
    app_text = app_frames(wan_generator, model="tiny-wan-ti2v-5b")
    assert_close(app_text, direct_frames(text_pipe, guidance_scale=5.0))


def test_a_gguf_transformer_equals_its_weights_dequantised(wan_generator, wan_models, pictures, capsys):
    from diffusers import WanImageToVideoPipeline

    assert main(["models", "list", "--models-dir", str(wan_models)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("wan-i2v-Q4_0\t"))
    assert "\twan\t" in line and "gguf Q4_0" in line  # family and quant type
    app = app_frames(wan_generator, model="wan-i2v-Q4_0", image=str(pictures[0]))
    kinds = {type(weight).__name__ for weight in wan_generator.resident_pipeline.transformer.parameters()}
    assert "GGUFParameter" in kinds  # kept quantised on the device
    folder_frames = app_frames(wan_generator, model="tiny-wan-i2v", image=str(pictures[0]))
    assert np.abs(app.astype(int) - folder_frames.astype(int)).max() > 1  # 4-bit weights: the test below can fail
    folder = wan_models / "tiny-wan-i2v"
    transformer = dequantized_transformer(wan_models / "wan-i2v-Q4_0.gguf", folder / "transformer")
    pipe = WanImageToVideoPipeline.from_pretrained(folder, transformer=transformer)
    assert_close(app, direct_frames(pipe, image=fitted(pictures[0]), guidance_scale=5.0))


def test_wan_22_a14b_as_two_gguf_files_equals_its_experts_dequantised(wan_generator, wan_models, pictures):
    from diffusers import WanImageToVideoPipeline

    model = wan_generator.resolve("wan-a14b_high_noise_Q8_0")
    assert model.config_dir == wan_models / "tiny-wan-a14b"
    assert model.transformer_2 == wan_models / "wan-a14b_low_noise_Q8_0.gguf"
    with pytest.raises(ModelNotFound, match="choose its high-noise file \\(wan-a14b_high_noise_Q8_0.gguf\\)"):
        wan_generator.resolve("wan-a14b_low_noise_Q8_0")
    app = app_frames(wan_generator, model="wan-a14b_high_noise_Q8_0", image=str(pictures[0]), num_inference_steps=4,
                     max_guidance_scale=4.0, min_guidance_scale=2.0)
    folder = wan_models / "tiny-wan-a14b"
    pipe = WanImageToVideoPipeline.from_pretrained(
        folder, transformer=dequantized_transformer(wan_models / "wan-a14b_high_noise_Q8_0.gguf", folder / "transformer"),
        transformer_2=dequantized_transformer(wan_models / "wan-a14b_low_noise_Q8_0.gguf", folder / "transformer_2"))
    direct = direct_frames(pipe, image=fitted(pictures[0]), guidance_scale=4.0, guidance_scale_2=2.0, steps=4)
    assert_close(app, direct)


def test_the_second_job_with_the_same_prompt_never_runs_the_text_encoder(wan_generator, pictures):
    request = dict(model="tiny-wan-i2v", image=str(pictures[0]), prompt="the red dog", seed=9)
    first = app_frames(wan_generator, **request)
    pipe = wan_generator.resident_pipeline
    calls = []
    hook = pipe.text_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        encodes = prompts.calls
        second = app_frames(wan_generator, **request)
        assert calls == [] and prompts.calls == encodes  # served from the cache
        app_frames(wan_generator, **{**request, "prompt": "a dog on the cat"})
        assert len(calls) == 2 and prompts.calls == encodes + 1  # a new prompt: prompt and negative prompt
    finally:
        hook.remove()
    assert np.array_equal(first, second)


def test_progress_previews_info_and_speed_hooks(wan_generator, pictures):
    events = []
    result = wan_generator.generate(GenerationRequest(**TINY, model="tiny-wan-i2v", image=str(pictures[0]),
                                                      speed="first-block-cache", output_format="png"),
                                    on_event=events.append, preview_every=1)
    stages = [(event.stage, event.index, event.total) for event in events if isinstance(event, StepEvent)]
    assert ("denoising", 2, 2) in stages and ("decoding", 3, 3) in stages  # 9 frames: 3 latent frames
    assert any(isinstance(event, PreviewEvent) for event in events)
    info = result.info()
    assert info["run"] == {"attention": "native", "speed": "first-block-cache"}
    assert result.metadata["request"]["speed"] == "first-block-cache"
    # TI2V-5B's 48-channel latents have no RGB map: no previews, and no crash
    events.clear()
    wan_generator.generate(GenerationRequest(**TINY, model="tiny-wan-ti2v-5b", output_format="png"),
                           on_event=events.append, preview_every=1)
    assert not any(isinstance(event, PreviewEvent) for event in events)


def test_cancel_during_denoising_stops_the_job(wan_generator, pictures):
    from video_gen.errors import Cancelled

    def cancel_at_first_step(event):
        if isinstance(event, StepEvent) and event.stage == "denoising":
            wan_generator.cancel()

    with pytest.raises(Cancelled):
        wan_generator.generate(GenerationRequest(**TINY, model="tiny-wan-i2v", image=str(pictures[0])),
                               on_event=cancel_at_first_step)


def test_defaults_come_from_each_variants_configs(wan_generator):
    assert wan_generator.defaults("tiny-wan-i2v")["num_frames"] == 81
    five = wan_generator.defaults("tiny-wan-ti2v-5b")
    assert (five["num_frames"], five["fps"], five["width"], five["height"]) == (121, 24, 1280, 704)
    assert wan_generator.defaults("tiny-wan-a14b")["num_inference_steps"] == 40


@pytest.mark.parametrize("request_fields, field, words", [
    (dict(model="tiny-wan-i2v", width=1000, height=560), "width", "multiple of 16"),
    (dict(model="tiny-wan-ti2v-5b", width=80, height=64), "width", "multiple of 32"),
    (dict(model="tiny-wan-ti2v-5b", last_image="LAST"), "last_image", "cannot take a last frame"),
    (dict(model="tiny-wan-i2v", last_image="LAST"), "last_image", "use Wan 2.1 FLF2V"),
    (dict(model="tiny-wan-flf2v"), "last_image", "missing"),
    (dict(model="tiny-wan-flf2v", last_image="LAST", num_frames=200), "num_frames", "one pass"),
    (dict(model="tiny-wan-i2v", image=None), "image", "missing"),
    (dict(model="tiny-wan-t2v", image="FIRST"), "image", "text-to-video"),
])
def test_bad_inputs_are_refused_in_one_line_before_loading(wan_generator, pictures, request_fields, field, words):
    values = {**TINY, "image": str(pictures[0]), **request_fields}
    values = {key: (str(pictures[1]) if value == "LAST" else str(pictures[0]) if value == "FIRST" else value)
              for key, value in values.items()}
    loads = wan_generator.loads
    with pytest.raises(InvalidRequest) as error:
        wan_generator.prepare(GenerationRequest(**values))
    assert error.value.field == field and words in str(error.value) and "\n" not in str(error.value)
    assert wan_generator.loads == loads


def test_80_frames_are_refused_naming_the_nearest_valid_counts(wan_generator, pictures):
    """Wan makes 4k+1 frames: 80 is refused in one line naming 81 (and 77); 81 plans one generation."""
    with pytest.raises(InvalidRequest) as caught:
        wan_generator.prepare(GenerationRequest(**{**TINY, "num_frames": 80, "image": str(pictures[0]),
                                                   "model": "tiny-wan-i2v"}))
    assert str(caught.value) == ("num_frames: must be 4k+1 for Wan (its VAE packs 4 frames into one), got 80; the "
                                 "nearest is 81 (77 or 81)")
    plan = wan_generator.length_plan(GenerationRequest(**{**TINY, "num_frames": 81}), wan_generator.resolve("tiny-wan-i2v"))
    assert plan.generated_frames == (81,) and plan.frames == 81


def test_a_gguf_without_a_matching_folder_and_a_gguf_of_another_family(wan_models, tmp_path, capsys):
    lonely = tmp_path / "models"
    lonely.mkdir()
    shutil.copy(wan_models / "wan-i2v-Q4_0.gguf", lonely / "wan-i2v-Q4_0.gguf")
    shutil.copytree(wan_models / "tiny-wan-t2v", lonely / "tiny-wan-t2v")  # Wan, but another architecture
    save_gguf_of_another_family(lonely / "flux-dev-Q4_K.gguf")
    generator = Generator(models_dir=lonely, outputs_dir=tmp_path / "out")
    with pytest.raises(ModelNotFound) as error:
        generator.resolve("wan-i2v-Q4_0")
    message = str(error.value)
    assert "\n" not in message and "same architecture" in message and "tiny-wan-t2v" in message
    with pytest.raises(ModelNotFound) as error:
        generator.resolve("flux-dev-Q4_K")
    assert "a GGUF of flux" in str(error.value) and "\n" not in str(error.value)
    assert main(["models", "list", "--models-dir", str(lonely)]) == 0
    listed = capsys.readouterr().out
    assert "flux-dev-Q4_K\t-\tunsupported (a GGUF of flux" in listed


def test_memory_estimate_reads_a_gguf_and_its_folder(wan_generator):
    from video_gen.memory import ModelWeights

    gguf_model = wan_generator.resolve("wan-i2v-Q4_0")
    weights = ModelWeights.from_model(gguf_model)
    folder = ModelWeights.from_model(wan_generator.resolve("tiny-wan-i2v"))
    assert set(weights.numel) == set(folder.numel)  # text encoder, image encoder, VAE from the folder
    # Sized by the bytes the quantised tensors keep on the device (in 2-byte units), not by their parameters
    stored = (wan_generator.models_dir / "wan-i2v-Q4_0.gguf").stat().st_size
    assert weights.numel["transformer"] != folder.numel["transformer"]
    assert stored // 2 - 20_000 < weights.numel["transformer"] <= stored // 2


def test_a_wan_download_takes_the_umt5_tokenizer_and_every_shard():
    from video_gen.downloads import KNOWN_MODELS, select_files

    listing = ["model_index.json", "README.md", "scheduler/scheduler_config.json", "text_encoder/config.json",
               "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors",
               "text_encoder/model.safetensors.index.json", "tokenizer/spiece.model", "tokenizer/tokenizer.json",
               "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json", "transformer/config.json",
               "transformer/diffusion_pytorch_model-00001-of-00003.safetensors",
               "transformer/diffusion_pytorch_model.safetensors.index.json", "vae/config.json",
               "vae/diffusion_pytorch_model.safetensors", "examples/i2v_input.JPG"]
    chosen = select_files(listing)
    assert "tokenizer/spiece.model" in chosen and "tokenizer/tokenizer.json" in chosen
    assert "text_encoder/model-00002-of-00002.safetensors" in chosen and "examples/i2v_input.JPG" not in chosen
    assert KNOWN_MODELS["wan2.2-ti2v-5b"].repo == "Wan-AI/Wan2.2-TI2V-5B-Diffusers"


def test_the_wan_benchmark_runs_tiny_on_the_cpu_and_writes_every_row(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    out = tmp_path / "gpu_wan.json"
    done = subprocess.run([sys.executable, str(repo / "bench" / "gpu_wan.py"), "--tiny", "--device", "cpu",
                           "--models", "ti2v-5b", "--steps", "2", "--model-dir", str(tmp_path / "models"),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["case"] for row in rows] == ["uncapped", "prompt-cache", "speed"]  # no cap without a GPU
    assert not any("error" in row for row in rows), rows
    assert rows[0]["s_per_step"] > 0 and rows[2]["run"]["speed"] == "first-block-cache" and "speedup" in rows[2]


def test_on_a_12_gb_card_umt5_never_sits_on_the_gpu_with_the_transformer():
    """Wan 2.2 TI2V-5B's sizes (transformer 5.0 B, umT5-XXL encoder 5.7 B parameters, VAE 0.7 B): every plan the
    planner would pick for 12 GB keeps at most one of the two on the device at a time."""
    from video_gen import memory

    weights = memory.ModelWeights(
        numel={"transformer": 5_000_000_000, "text_encoder": 5_680_000_000, "vae": 700_000_000},
        largest_block={"transformer": 170_000_000, "text_encoder": 240_000_000, "vae": 100_000_000},
        largest_tensor=1_050_000_000)
    shape = memory.JobShape("wan", 121, 1280, 704, 4)
    plans = memory.ladder("cuda:0", "bfloat16", weights, shape, total_bytes=12 * memory.GiB)
    chosen = memory.choose(plans, int(11.5 * memory.GiB))
    both = (weights.numel["transformer"] + weights.numel["text_encoder"]) * 2
    assert chosen.offload != "none"
    assert all(chosen.stage_bytes[stage] < both for stage in memory.STAGES)
    # with everything resident (plan none) they would be together, which is why it is not chosen
    resident = next(plan for plan in plans if plan.offload == "none")
    assert resident.stage_bytes["denoising"] > both


@pytest.fixture(scope="module")
def wan_loras(wan_models):
    from video_gen.tiny.common import build_tiny_transformer_lora as build_tiny_wan_lora

    folder = wan_models / "loras"
    return {"style": build_tiny_wan_lora(wan_models / "tiny-wan-i2v", folder / "wan-style.safetensors", seed=3),
            "low": build_tiny_wan_lora(wan_models / "tiny-wan-a14b", folder / "pair_low_noise.safetensors",
                                       subfolder="transformer_2", seed=4),
            "distill": build_tiny_wan_lora(wan_models / "tiny-wan-i2v",
                                           folder / "Wan21_I2V_14B_lightx2v_cfg_step_distill_lora_rank4.safetensors",
                                           seed=5)}


def test_a_wan_lora_equals_diffusers_loading_it_and_switching_keeps_the_model(wan_generator, wan_models, wan_loras,
                                                                             pictures):
    from diffusers import WanImageToVideoPipeline

    wan_generator.list_models(refresh=True)  # the LoRAs were written after the first scan
    request = dict(model="tiny-wan-i2v", image=str(pictures[0]), max_guidance_scale=5.0)
    plain = app_frames(wan_generator, **request)
    loads = wan_generator.loads
    styled = app_frames(wan_generator, **request, loras=[{"name": "wan-style", "strength": 1.0}])
    assert wan_generator.loads == loads  # a LoRA switches adapters on the resident model
    assert np.abs(styled.astype(int) - plain.astype(int)).max() > 1  # the LoRA changed the frames
    assert (app_frames(wan_generator, **request, loras=[{"name": "wan-style", "strength": 0.0}]) == plain).all()

    pipe = WanImageToVideoPipeline.from_pretrained(wan_models / "tiny-wan-i2v")
    pipe.load_lora_weights(str(wan_loras["style"]), adapter_name="style")
    pipe.set_adapters(["style"], [1.0])
    assert_close(styled, direct_frames(pipe, image=fitted(pictures[0]), guidance_scale=5.0))


def test_wan_22_pairs_go_to_their_expert_and_other_loras_to_both(wan_generator, wan_models, wan_loras, pictures):
    from diffusers import WanImageToVideoPipeline

    wan_generator.list_models(refresh=True)
    request = dict(model="tiny-wan-a14b", image=str(pictures[0]), num_inference_steps=4, max_guidance_scale=4.0,
                   min_guidance_scale=2.0)
    both = app_frames(wan_generator, **request, loras=[{"name": "pair_low_noise", "strength": 1.0},
                                                       {"name": "wan-style", "strength": 0.7}])
    pipe = WanImageToVideoPipeline.from_pretrained(wan_models / "tiny-wan-a14b")
    pipe.load_lora_weights(str(wan_loras["low"]), adapter_name="low", load_into_transformer_2=True)
    pipe.load_lora_weights(str(wan_loras["style"]), adapter_name="style")
    pipe.load_lora_weights(str(wan_loras["style"]), adapter_name="style", load_into_transformer_2=True)
    pipe.set_adapters(["low", "style"], [1.0, 0.7])
    assert_close(both, direct_frames(pipe, image=fitted(pictures[0]), guidance_scale=4.0, guidance_scale_2=2.0,
                                     steps=4))


def test_a_step_distill_lora_sets_its_steps_and_guidance(wan_generator, wan_loras, pictures):
    wan_generator.list_models(refresh=True)
    name = "Wan21_I2V_14B_lightx2v_cfg_step_distill_lora_rank4"
    prepared = wan_generator.prepare(GenerationRequest.from_dict(
        {"model": "tiny-wan-i2v", "image": str(pictures[0]), "loras": [{"name": name}]}))
    assert prepared.request.num_inference_steps == 4 and prepared.request.max_guidance_scale == 1.0
    plain = wan_generator.prepare(GenerationRequest(model="tiny-wan-i2v", image=str(pictures[0])))
    assert plain.request.num_inference_steps != 4


def test_the_page_shows_the_last_frame_only_for_wan_models_that_take_one(wan_generator, tmp_path):
    from video_gen.web.app import WebApp

    page = WebApp(wan_generator, tmp_path / "work")
    shown = {name: page.family_controls(name) for name in
             ("tiny-wan-i2v", "tiny-wan-flf2v", "tiny-wan-a14b", "tiny-wan-ti2v-5b", "wan-a14b_high_noise_Q8_0")}
    visible = {name: controls["last_image"]["visible"] for name, controls in shown.items()}
    assert visible == {"tiny-wan-i2v": False, "tiny-wan-flf2v": True, "tiny-wan-a14b": True,
                       "tiny-wan-ti2v-5b": False, "wan-a14b_high_noise_Q8_0": True}
    assert "optional" in shown["tiny-wan-ti2v-5b"]["image"]["label"]
    assert "optional" not in shown["tiny-wan-i2v"]["image"]["label"]
    assert shown["tiny-wan-i2v"]["speed"]["visible"] and shown["tiny-wan-i2v"]["prompt"]["visible"]


def test_a_gguf_download_takes_the_quant_asked_for_and_its_folders_other_parts(wan_generator, wan_models, pictures,
                                                                              tmp_path, serve_hub, capsys):
    """`models download wan2.2-i2v-a14b-gguf`, the hub serving the tiny A14B's GGUF experts under QuantStack's
    names and its diffusers folder."""
    from conftest import folder_files

    fetched = serve_hub({
        "QuantStack/Wan2.2-I2V-A14B-GGUF": {
            "README.md": None, "HighNoise/Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf": None,
            "LowNoise/Wan2.2-I2V-A14B-LowNoise-Q4_K_M.gguf": None,
            "HighNoise/Wan2.2-I2V-A14B-HighNoise-Q8_0.gguf": wan_models / "wan-a14b_high_noise_Q8_0.gguf",
            "LowNoise/Wan2.2-I2V-A14B-LowNoise-Q8_0.gguf": wan_models / "wan-a14b_low_noise_Q8_0.gguf"},
        "Wan-AI/Wan2.2-I2V-A14B-Diffusers": folder_files(wan_models / "tiny-wan-a14b"),
    })
    # With the full folder installed (under any name), only the files come
    installed = tmp_path / "installed"
    shutil.copytree(wan_models / "tiny-wan-a14b", installed / "My-Wan-A14B")
    assert main(["models", "download", "wan2.2-i2v-a14b-gguf", "--quant", "Q8_0", "--models-dir", str(installed)]) == 0
    assert len(fetched) == 2 and all(name.endswith(".gguf") for name in fetched)
    assert sorted(path.name for path in installed.iterdir()) == [
        "My-Wan-A14B", "Wan2.2-I2V-A14B-HighNoise-Q8_0.gguf", "Wan2.2-I2V-A14B-LowNoise-Q8_0.gguf"]
    fetched.clear()
    capsys.readouterr()

    models = tmp_path / "models"
    download = ["models", "download", "wan2.2-i2v-a14b-gguf", "--models-dir", str(models)]

    assert main(download + ["--quant", "Q2_K"]) == 1  # not in the repository: say which are
    error = capsys.readouterr().err
    assert "has no Q2_K file" in error and "it has: Q4_K_M, Q8_0" in error and "\n" not in error.strip()
    assert main(["models", "download", "wan2.2-i2v-a14b", "--quant", "Q8_0", "--models-dir", str(models)]) == 1
    assert "--quant goes with the -gguf downloads" in capsys.readouterr().err

    assert main(download + ["--quant", "Q8_0"]) == 0
    high = models / "Wan2.2-I2V-A14B-HighNoise-Q8_0.gguf"
    assert capsys.readouterr().out.strip() == str(high)
    parts = models / "wan2.2-i2v-a14b"
    assert (parts / "transformer" / "config.json").is_file() and (parts / "text_encoder").is_dir()
    assert not list(parts.glob("transformer*/*.safetensors"))  # the GGUF experts replace them
    assert not [name for name in fetched if "Q4_K_M" in name] and not (models / ".downloads").exists()

    generator = Generator(models_dir=models, outputs_dir=tmp_path / "out")
    model = generator.resolve(high.stem)
    assert model.config_dir == parts and model.transformer_2 == models / "Wan2.2-I2V-A14B-LowNoise-Q8_0.gguf"
    with pytest.raises(ModelNotFound, match="not a model on its own: it holds the text encoder, VAE and configs"):
        generator.resolve("wan2.2-i2v-a14b")
    # Only the pair's high-noise file is offered: the parts folder and the low-noise expert are no models
    assert [info.name for info in generator.list_models()] == [high.stem]
    assert main(["models", "list", "--models-dir", str(models)]) == 0
    listed = capsys.readouterr().out
    assert "wan2.2-i2v-a14b\twan\tparts (the text encoder, VAE and configs" in listed
    assert "Wan2.2-I2V-A14B-LowNoise-Q8_0\twan\tparts (the low-noise expert" in listed
    # It runs, and makes the frames of the same experts beside the full folder
    options = dict(image=str(pictures[0]), num_inference_steps=4, max_guidance_scale=4.0, min_guidance_scale=2.0)
    assert_close(app_frames(generator, model=high.stem, **options),
                 app_frames(wan_generator, model="wan-a14b_high_noise_Q8_0", **options))
    assert main(download + ["--quant", "Q8_0"]) == 0  # again: nothing fetched twice
    assert len([name for name in fetched if name.endswith(".gguf")]) == 2
