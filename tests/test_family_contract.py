"""The family contract's guard: a family is ONE module, and nothing else changes.

A throwaway family of a kind video-gen does not support (diffusers' `DDPMPipeline`, an unconditional image
model, run once per frame from one seeded noise tensor) is dropped into the families package as one file,
in a folder added to the package's path, so no file of the project changes. It must then be listed,
validated by its spec's rules, planned by its frame rule, generated from the command line and from the
page's API (frames equal to the diffusers pipeline called directly), recorded in the history, and shown
with the controls its spec asks for.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

FAMILY_MODULE = textwrap.dedent('''
    """Throwaway test family: every frame is an unconditional DDPM sample (diffusers' DDPMPipeline)."""
    import numpy as np

    from video_gen.events import DENOISING
    from video_gen.families.common import loading
    from video_gen.families.spec import NONE, FamilySpec, MemoryConstants

    SPEC = FamilySpec(
        name="throwaway",
        label="Throwaway DDPM",
        class_names=("DDPMPipeline",),
        image=NONE,
        size_multiple=16,
        frame_step=4,  # one generation makes 4k+1 frames
        dtype="bfloat16",
        native_frames=9,
        native_fps=6,
        steps_range=(2, 20),
        latent_rgb_factors=None,  # no preview: a live preview must be skipped, not crash
        memory=MemoryConstants(denoise_bytes_per_token=100, denoise_base_bytes=0, forward_chunking_saving=0.0,
                               decode_bytes_per_pixel=0, encode_bytes_per_pixel=0, encode_base_bytes=0,
                               measured="estimated: a test family", spatial_compression=1, cfg_batch=1),
    )


    def defaults(model):
        return {"num_frames": 9, "fps": 6, "width": 64, "height": 64, "num_inference_steps": 3,
                "decode_chunk_size": 1, "min_guidance_scale": 0.0, "max_guidance_scale": 0.0}


    def check(request, model):
        pass


    def load(model, device, dtype):
        from diffusers import DDPMPipeline

        with loading(str(model.path)):
            pipe = DDPMPipeline.from_pretrained(model.path, local_files_only=True, use_safetensors=True)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(dtype=dtype)


    def run(pipe, request, image, job):
        steps = request.num_inference_steps
        calls = []

        def on_forward(module, args):
            calls.append(1)
            job.step(DENOISING, len(calls), steps, preview=lambda: args[0][0])

        job.stage(DENOISING)
        hook = pipe.unet.register_forward_pre_hook(on_forward)
        try:
            images = pipe(batch_size=request.num_frames, generator=job.generator, num_inference_steps=steps,
                          output_type="np").images
        finally:
            hook.remove()
        return (np.asarray(images) * 255).round().astype(np.uint8)
''')

SIZE = dict(width=64, height=64)  # the tiny model's sample size


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory):
    """The family module dropped into the families package (a folder on its path) and a tiny DDPM model."""
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    import video_gen.families as families

    folder = tmp_path_factory.mktemp("extra-families")
    (folder / "throwaway.py").write_text(FAMILY_MODULE)
    families.__path__.append(str(folder))

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=64, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(8, 16), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    models = tmp_path_factory.mktemp("throwaway-models")
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(models / "tiny-ddpm")
    yield models
    families.__path__.remove(str(folder))
    families.unregister("throwaway")


def direct_frames(model_path, frames: int, steps: int, seed: int) -> np.ndarray:
    """The diffusers pipeline called directly, as a user of diffusers would (bf16 weights, as on a GPU; the CPU
    runs float32, which is what the app picks there)."""
    import torch
    from diffusers import DDPMPipeline

    pipe = DDPMPipeline.from_pretrained(model_path, local_files_only=True, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=frames, generator=torch.Generator("cpu").manual_seed(seed), num_inference_steps=steps,
                  output_type="np").images
    return (np.asarray(images) * 255).round().astype(np.uint8)


def test_a_family_is_one_module(throwaway, tmp_path, capsys):
    from video_gen import GenerationRequest, Generator, InvalidRequest
    from video_gen.cli import main
    from video_gen.families import spec_for, specs
    from video_gen.video_io import read_video

    # Known to the registry and found by discovery, with its label
    assert "throwaway" in [spec.name for spec in specs()] and spec_for("throwaway").label == "Throwaway DDPM"
    outputs = tmp_path / "outputs"
    assert main(["models", "list", "--models-dir", str(throwaway)]) == 0
    assert "tiny-ddpm\tthrowaway\tmodel" in capsys.readouterr().out
    generator = Generator(models_dir=throwaway, outputs_dir=outputs)
    assert [model.family for model in generator.list_models()] == ["throwaway"]

    # Validated by its spec: sizes in multiples of 16, no picture
    with pytest.raises(InvalidRequest, match="^width: must be a multiple of 16 for Throwaway DDPM, got 72"):
        generator.prepare(GenerationRequest(width=72, height=64))
    with pytest.raises(InvalidRequest, match="^image: Throwaway DDPM makes a video from text only"):
        generator.prepare(GenerationRequest(image=str(tmp_path / "x.png")))

    # Planned by its frame rule: 7 frames are generated as 9 (4k+1) and cut; 12 frames at 6 fps is 2 segments
    prepared = generator.prepare(GenerationRequest(num_frames=7, interpolation=1, **SIZE))
    assert prepared.spec.name == "throwaway" and prepared.length.generated_frames == (9,)
    assert generator.prepare(GenerationRequest(num_frames=12, interpolation=1)).length.segment_frames == (7, 6)
    assert generator.memory_plan(GenerationRequest(**SIZE)).dtype == "float32"  # the CPU's; bf16 on CUDA

    # Generated from the command line: the frames are the diffusers pipeline's own, with a preview asked for
    video = tmp_path / "cli.png"
    assert main(["generate", "--models-dir", str(throwaway), "--outputs-dir", str(outputs), "--frames", "5",
                 "--steps", "3", "--seed", "11", "--interpolation", "1", "--format", "png", "--output", str(video),
                 "--quiet"]) == 0
    frames, _ = read_video(video)
    expected = direct_frames(throwaway / "tiny-ddpm", frames=5, steps=3, seed=11)
    assert frames.shape == expected.shape and np.abs(frames.astype(int) - expected.astype(int)).max() <= 1

    # Python, with live preview on: the family has no latent map, so no preview and no crash
    seen = []
    result = generator.generate(GenerationRequest(num_frames=5, interpolation=1, seed=12, **SIZE),
                                on_event=seen.append, preview_every=1)
    assert result.path.is_file() and not [event for event in seen if event.kind == "preview"]
    assert [event.kind for event in seen].count("step") >= 3

    # Both jobs are in the history of the outputs folder (the CLI's too)
    entries = generator.history.entries(newest_first=False)
    assert [(entry.status, entry.request["seed"]) for entry in entries] == [("done", 11), ("done", 12)]
    assert json.loads(result.path.with_suffix(".json").read_text())["family"] == "throwaway"


def test_a_family_is_one_module_on_the_page(throwaway, tmp_path):
    from gradio_client import Client
    from test_app import start_server

    demo, server = start_server(throwaway, tmp_path / "web", tmp_path / "temp")
    try:
        client = Client(server.url, verbose=False, download_files=str(tmp_path / "downloads"))
        video, info, *_ = client.predict(image=None, model="tiny-ddpm", duration=1, fps=8, resolution="64x64",
                                         num_inference_steps=3, seed=13, interpolation=1, output_format="png",
                                         api_name="/generate")
        assert info["model"] == "tiny-ddpm" and info["frames"] == 8 and info["job"] >= 1
        frames = _frames_of(info["output"])
        expected = direct_frames(throwaway / "tiny-ddpm", frames=9, steps=3, seed=13)[:8]
        assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1
        entry = server.generator.history.get(info["job"])
        assert entry.status == "done" and entry.request["model"] == "tiny-ddpm"

        # Shown with the controls its spec asks for: no picture, no prompt, no SVD controls, its steps range
        from video_gen.web.app import WebApp

        page = WebApp(server.generator, tmp_path / "work")
        assert ("tiny-ddpm · Throwaway DDPM", "tiny-ddpm") in page.model_choices()
        shown = page.family_controls("tiny-ddpm")
        for name in ("image", "last_image", "prompt", "negative_prompt", "image_strength", "motion_bucket_id"):
            assert not shown[name]["visible"], name
        assert (shown["num_inference_steps"]["minimum"], shown["num_inference_steps"]["maximum"]) == (2, 20)
    finally:
        demo.close()


def _frames_of(path) -> np.ndarray:
    from video_gen.video_io import read_video

    return read_video(path)[0]
