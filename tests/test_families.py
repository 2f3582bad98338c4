"""AnimateDiff and ModelScope end to end on tiny REAL models (conftest.family_models): the CLI, the engine,
single files against folders, offline single-file loading, and the refusal of pickle files."""

from __future__ import annotations

import json
from pathlib import Path
import pickle
import socket

import numpy as np
import pytest
from PIL import Image

from video_gen import Generator, GenerationRequest, video_io
from video_gen.cli import main
from video_gen.errors import InvalidRequest, ModelNotFound

TINY = dict(width=64, height=64, num_frames=8, num_inference_steps=2, seed=3)
TINY_FLAGS = ["--width", "64", "--height", "64", "--frames", "8", "--steps", "2", "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def family_generator(family_models, tmp_path_factory):
    return Generator(models_dir=family_models, outputs_dir=tmp_path_factory.mktemp("family-outputs"))


def frames_of(generator, **request) -> np.ndarray:
    """Generate as PNG frames (lossless) and read them back."""
    result = generator.generate(GenerationRequest(**{**TINY, **request}, output_format="png"))
    return np.stack([np.asarray(Image.open(path)) for path in sorted(result.path.glob("frame_*.png"))])


@pytest.mark.parametrize("model, prompt", [("tiny-sd15", "a cat"), ("tiny-modelscope", "a dog")])
def test_text_to_video_through_the_cli_without_a_picture(family_models, tmp_path, capsys, model, prompt):
    output = tmp_path / "clip.mp4"
    code = main(["generate", "--models-dir", str(family_models), "--model", model, "--prompt", prompt,
                 "--negative-prompt", "blurry", "--output", str(output), *TINY_FLAGS])
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == str(output)
    info = video_io.probe_video(output)
    assert (info.frames, info.width, info.height) == (8, 64, 64)
    stored = video_io.read_metadata(output)
    assert stored["family"] == ("animatediff" if model == "tiny-sd15" else "modelscope")
    assert stored["request"]["prompt"] == prompt and stored["request"]["image"] is None


def test_text_families_need_a_prompt_without_a_picture_and_svd_still_needs_a_picture(family_models, models_dir,
                                                                                      capsys):
    code = main(["generate", "--models-dir", str(family_models), "--model", "tiny-sd15", *TINY_FLAGS])
    assert code == 1 and "--prompt (prompt): missing" in capsys.readouterr().err
    code = main(["generate", "--models-dir", str(models_dir), *TINY_FLAGS])
    assert code == 1 and "image: missing" in capsys.readouterr().err


def test_json_mode_runs_a_text_family_and_checks_its_fields(family_models, tmp_path, capsys):
    request = {**TINY, "model": "tiny-sd15", "prompt": "a cat", "scheduler": "ddim", "output": str(tmp_path / "a.mp4")}
    assert main(["json", "--models-dir", str(family_models), json.dumps(request)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["status"] == "success" and line["request"]["scheduler"] == "ddim"
    for bad, words in (({"scheduler": "heun"}, "must be one of euler, ddim, lcm"),
                       ({"image_strength": 1.5}, "from 0 to 1")):
        assert main(["json", "--models-dir", str(family_models), json.dumps({**request, **bad})]) == 1
        assert words in json.loads(capsys.readouterr().out)["error"]


def test_the_picture_drives_the_result_more_with_more_image_strength(family_generator, photo, tmp_path):
    # Random weights cannot reproduce a picture (the tiny VAE is no autoencoder), so what is measured is how
    # much the video depends on which picture is given: two different pictures, each strength.
    other = tmp_path / "other.png"
    Image.fromarray(255 - np.asarray(Image.open(photo).convert("RGB"))).save(other)
    spread = {}
    for strength in (0.0, 0.75):
        a, b = (frames_of(family_generator, model="tiny-sd15", prompt="a cat", image=str(picture),
                          image_strength=strength, num_inference_steps=4).astype(float) for picture in (photo, other))
        spread[strength] = np.abs(a - b).mean()
    assert spread[0.75] > 3 * spread[0.0], spread
    text_only = frames_of(family_generator, model="tiny-sd15", prompt="a cat", num_inference_steps=4)
    assert not np.array_equal(text_only, a)


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-modelscope"])
def test_progress_and_live_previews_come_from_each_text_family(family_generator, model):
    events = []
    family_generator.generate(GenerationRequest(**TINY, model=model, prompt="a cat"), on_event=events.append,
                              preview_every=1)
    steps = [event.index for event in events if event.kind == "step" and event.stage == "denoising"]
    previews = [event.image for event in events if event.kind == "preview"]
    assert steps == [1, 2] and len(previews) == 2 and previews[0].size == (32, 32)  # 8x8 latents, shown 4x


def test_image_strength_that_leaves_no_step_is_refused_before_loading(family_generator, photo):
    loads = family_generator.loads
    with pytest.raises(InvalidRequest, match="image_strength: 0.9 leaves no denoising step out of 2"):
        family_generator.prepare(GenerationRequest(**TINY, model="tiny-sd15", image=str(photo), image_strength=0.9))
    assert family_generator.loads == loads


def test_single_files_make_the_same_frames_as_the_folders(family_generator, family_models):
    adapter_file = family_models.parent / "adapter-single.safetensors"
    from_folders = frames_of(family_generator, model="tiny-sd15", motion_adapter="tiny-adapter", prompt="a red cat")
    from_files = frames_of(family_generator, model="tiny-sd15-single", motion_adapter=str(adapter_file),
                           prompt="a red cat")
    np.testing.assert_array_equal(from_files, from_folders)


def test_each_scheduler_runs_and_gives_its_own_result(family_generator):
    results = {name: frames_of(family_generator, model="tiny-sd15", prompt="a cat", scheduler=name)
               for name in ("euler", "ddim", "lcm")}
    assert not np.array_equal(results["ddim"], results["euler"])
    assert not np.array_equal(results["lcm"], results["euler"])


def test_a_motion_adapter_is_not_a_model_and_a_base_needs_one(family_models, tmp_path):
    generator = Generator(models_dir=family_models, outputs_dir=tmp_path)
    with pytest.raises(ModelNotFound, match="motion adapter, not a model on its own"):
        generator.prepare(GenerationRequest(model="tiny-adapter", prompt="a cat"))
    alone = tmp_path / "models"
    alone.mkdir()
    (alone / "base").symlink_to(family_models / "tiny-sd15")
    with pytest.raises(ModelNotFound, match="needs a motion adapter and none is installed"):
        Generator(models_dir=alone).prepare(GenerationRequest(model="base", prompt="a cat"))


# ---- offline --------------------------------------------------------------------------------
@pytest.fixture()
def no_network(monkeypatch):
    """The network is unreachable: every connection to a non-loopback address fails, and the hub is offline."""
    real_connect = socket.socket.connect
    attempts = []

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and self.family != socket.AF_UNIX:
            attempts.append(address)
            raise OSError(f"network unreachable in this test: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: connect(socket.socket(), address))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return attempts


def test_a_single_file_checkpoint_loads_and_runs_with_the_network_unreachable(family_models, tmp_path, no_network):
    generator = Generator(models_dir=family_models, outputs_dir=tmp_path)  # a fresh one: nothing resident
    result = generator.generate(GenerationRequest(**TINY, model="tiny-sd15-single", prompt="a cat",
                                                  motion_adapter=str(family_models.parent / "adapter-single.safetensors")))
    assert video_io.probe_video(result.path).frames == 8
    assert no_network == []  # nothing even tried


def test_shipped_sd15_configs_and_the_packaged_clip_vocabulary_work_offline(tmp_path, no_network):
    """A real-size SD1.5 checkpoint takes video-gen's own configs and the CLIP vocabulary of `openai-clip`:
    the checkpoint's widths choose the configs; the parts build from them; the tokenizer gives CLIP's ids."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from video_gen.families.animatediff import clip_tokenizer
    from video_gen.families.animatediff import SHIPPED_SD15_CONFIG
    from video_gen.catalog import resolve_model

    # The three tensors whose widths tell SD1.5 apart, at SD1.5's real shapes (a few kB), plus a text one.
    checkpoint = tmp_path / "community-model.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
               "cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(768),
               "first_stage_model.encoder.conv_in.weight": torch.zeros(128, 3, 3, 3)}, str(checkpoint))
    model = resolve_model(str(checkpoint), tmp_path / "models", motion_adapter=str(_tiny_adapter(tmp_path)))
    assert model.config_dir == SHIPPED_SD15_CONFIG
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(SHIPPED_SD15_CONFIG / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(SHIPPED_SD15_CONFIG / "vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(SHIPPED_SD15_CONFIG / "text_encoder"))
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964  # SD1.5's UNet, to the parameter
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert sum(p.numel() for p in text.parameters()) == 123_060_480
    tokenizer = clip_tokenizer()
    assert len(tokenizer) == 49408
    # The ids openai/clip-vit-large-patch14's tokenizer gives (the SD1.5 repository's tokenizer).
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert no_network == []


def _tiny_adapter(tmp_path):
    from video_gen.tiny.sd import build_tiny_motion_adapter

    return build_tiny_motion_adapter(tmp_path / "tiny-adapter")


# ---- pickle files ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pickle_checkpoint(family_models, tmp_path_factory):
    """The tiny single-file base saved as a .ckpt, the way old checkpoints were shared (torch.save)."""
    import torch
    from safetensors.torch import load_file

    path = tmp_path_factory.mktemp("pickles") / "old-model.ckpt"
    torch.save({"state_dict": load_file(str(family_models / "tiny-sd15-single.safetensors"))}, path)
    return path


def test_pickle_files_are_refused_with_the_reason_and_the_flag(family_models, pickle_checkpoint, capsys):
    code = main(["generate", "--models-dir", str(family_models), "--model", str(pickle_checkpoint),
                 "--prompt", "a cat", *TINY_FLAGS])
    error = capsys.readouterr().err
    assert code == 1
    assert "pickle" in error and "can run any code" in error and "--allow-pickle" in error


def test_with_the_flag_a_pickle_loads_with_weights_only(family_models, pickle_checkpoint, tmp_path, capsys):
    output = tmp_path / "from-ckpt.mp4"
    code = main(["generate", "--models-dir", str(family_models), "--model", str(pickle_checkpoint), "--allow-pickle",
                 "--prompt", "a cat", "--output", str(output), *TINY_FLAGS])
    assert code == 0, capsys.readouterr().err
    assert video_io.probe_video(output).frames == 8


class _Payload:
    """A pickle that runs code when loaded without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_even_with_the_flag_a_pickle_that_runs_code_is_refused(family_models, tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": _Payload(marker)}}))
    generator = Generator(models_dir=family_models, outputs_dir=tmp_path, allow_pickle=True)
    with pytest.raises(ModelNotFound, match="could not be read safely"):
        generator.prepare(GenerationRequest(model=str(evil), prompt="a cat"))
    assert not marker.exists()


# ---- the page ------------------------------------------------------------------------------------
def test_the_page_api_generates_with_each_text_family_without_a_picture(family_models, tmp_path_factory, tmp_path,
                                                                        photo):
    from gradio_client import Client, handle_file
    from test_app import start_server

    demo, server = start_server(family_models, tmp_path_factory.mktemp("family-web"),
                                tmp_path_factory.mktemp("family-gradio-temp"))
    try:
        client = Client(server.url, verbose=False, download_files=str(tmp_path))
        common = dict(duration=1, fps=8, resolution="64x64", num_inference_steps=10, seed=5)
        model_family = {"tiny-sd15": "animatediff", "tiny-modelscope": "modelscope"}
        for model, image in (("tiny-sd15", None), ("tiny-modelscope", None), ("tiny-sd15", handle_file(str(photo)))):
            video, info, seed, *_ = client.predict(image=image, model=model, prompt="a cat", negative_prompt="blur",
                                                   image_strength=0.3, **common, api_name="/generate")
            assert video_io.probe_video(video).frames == 8
            parameters = info["parameters"]
            assert (parameters["model"], parameters["prompt"], parameters["negative_prompt"]) == (model, "a cat", "blur")
            assert (parameters["image"] is None) == (image is None) and parameters["image_strength"] == 0.3
            assert video_io.read_metadata(Path(info["output"]))["family"] == model_family[model]
        # The dropdown names each model's family; the prompt fields belong to the text families only.
        from video_gen.web.app import WebApp

        app = WebApp(server.generator, tmp_path / "work")
        assert ("tiny-modelscope · ModelScope T2V", "tiny-modelscope") in app.model_choices()
        prompt, negative, strength, picture = app.text_controls("tiny-sd15")
        assert prompt["visible"] and negative["visible"] and strength["visible"] and "optional" in picture["label"]
    finally:
        demo.close()


def test_the_page_shows_prompt_fields_only_for_text_families(generator, tmp_path):
    from video_gen.web.app import WebApp

    app = WebApp(generator, tmp_path / "work")  # conftest's models folder: one tiny SVD
    assert app.model_choices() == [("tiny-svd · Stable Video Diffusion", "tiny-svd")]
    prompt, negative, strength, picture = app.text_controls("tiny-svd")
    assert not prompt["visible"] and not negative["visible"] and not strength["visible"]
    assert "optional" not in picture["label"]
