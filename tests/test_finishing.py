"""Finishing through the app's doors (issue 27): `video-gen upscale`, `generate --upscaler`, `video-gen prompt`,
`generate --enhance-prompt`, `models list`, and every refusal, one line each with nothing written.

Real spandrel architectures and a real Qwen2.5-VL with tiny random weights, in the folders users put them in
(models/upscalers, models/enhancers), loaded through the app's code; a tiny real Wan TI2V-5B makes the videos.
Upscaled frames are compared with spandrel's own loader and model applied to each decoded source frame (PNG, ±2).
"""

from __future__ import annotations

import shutil
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from video_gen import GenerationRequest, Generator, video_io
from video_gen.checkpoints import file_sha256
from video_gen.cli import main
from video_gen.errors import Cancelled
from video_gen.events import UPSCALING, StepEvent
from video_gen.finishing import audio_codec
from video_gen.upscale import import_spandrel

WAN = "tiny-wan-ti2v-5b"
JOB = ["--model", WAN, "--width", "64", "--height", "64", "--frames", "9", "--fps", "16", "--steps", "2", "--seed",
       "5", "--interpolation", "1"]
PROMPT = "a cat looks around"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A models folder: a tiny Wan, an x2 upscaler (Real-ESRGAN's layout) also as a .pth pickle, an x4 Compact, a
    file that is no upscaler, and a tiny Qwen2.5-VL prompt enhancer."""
    from video_gen.tiny.enhancer import build_tiny_qwen2_5_vl
    from video_gen.tiny.upscalers import build_not_an_upscaler, build_tiny_compact, build_tiny_esrgan
    from video_gen.tiny.wan import build_tiny_wan

    folder = tmp_path_factory.mktemp("finishing") / "models"
    build_tiny_wan(folder / WAN, "ti2v-5b", seed=1)
    build_tiny_esrgan(folder / "upscalers" / "tiny-x2.safetensors", scale=2, layout="realesrgan")
    build_tiny_esrgan(folder / "upscalers" / "tiny-x2-pickle.pth", scale=2, layout="realesrgan")
    build_tiny_compact(folder / "upscalers" / "tiny-x4.safetensors", scale=4)
    build_not_an_upscaler(folder / "upscalers" / "vae.safetensors")
    build_tiny_qwen2_5_vl(folder / "enhancers" / "tiny-qwen")
    return folder


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 5-frame 64x40 clip at 12 fps with an AAC sound track, a picture, a file that is not a video, and a
    1030x16 clip (x4 of it is over the 4096 pixel limit)."""
    folder = tmp_path_factory.mktemp("finishing-media")
    photo = data.astronaut()
    frames = np.stack([np.ascontiguousarray(photo[150:190, 100 + 9 * index:164 + 9 * index]) for index in range(5)])
    video_io.write_video(frames, folder / "silent.mp4", fps=12)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(folder / "silent.mp4"), "-f",
                    "lavfi", "-i", "sine=frequency=440:duration=1", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                    "-c:a", "aac", "-shortest", str(folder / "clip.mp4")], check=True)
    Image.fromarray(data.chelsea()[::3, ::3]).save(folder / "cat.png")
    (folder / "notes.mp4").write_text("not a video")
    video_io.write_video(np.zeros((1, 16, 1030, 3), np.uint8), folder / "wide.mp4", fps=8)
    return folder


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def spandrel_frames(upscaler, frames: np.ndarray) -> np.ndarray:
    """spandrel on its own: its file loader and model on each frame (float32 in [0, 1]), rounded back."""
    model = import_spandrel().ModelLoader().load_from_file(upscaler).eval()
    out = []
    with torch.inference_mode():
        for frame in frames:
            image = torch.from_numpy(frame.copy()).permute(2, 0, 1).unsqueeze(0).float() / 255
            out.append((model(image) * 255).round().clamp(0, 255).byte()[0].permute(1, 2, 0).numpy())
    return np.stack(out)


def png_frames(folder) -> np.ndarray:
    return np.stack([np.asarray(Image.open(path)) for path in sorted(folder.glob("frame_*.png"))])


def within_two(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) <= 2


# ---- video-gen upscale ---------------------------------------------------------------------------------------
def test_upscale_equals_spandrel_on_each_frame_and_keeps_count_rate_and_sound(capsys, models, media, tmp_path):
    common = ["--models-dir", models, "--outputs-dir", tmp_path, "--quiet"]
    code, out, err = run(capsys, "upscale", media / "clip.mp4", "--upscaler", "tiny-x2", "--format", "png", *common)
    assert code == 0, err
    folder = tmp_path / "clip_x2"
    assert out.strip() == str(folder)
    source, info = video_io.read_video(media / "clip.mp4")
    assert (len(source), info.fps) == (5, 12)
    upscaled = png_frames(folder)
    assert upscaled.shape == (5, 80, 128, 3)
    assert within_two(upscaled, spandrel_frames(models / "upscalers" / "tiny-x2.safetensors", source))
    assert (folder / "audio.wav").is_file()  # the sound, beside the frames
    metadata = video_io.read_metadata(folder)
    assert metadata["fps"] == 12 and video_io.probe_video(folder).fps == 12
    entry = metadata["upscaled"]
    assert (entry["upscaler"], entry["scale"], entry["architecture"]) == ("tiny-x2", 2, "ESRGAN")
    assert entry["upscaler_sha256"] == file_sha256(models / "upscalers" / "tiny-x2.safetensors")
    assert entry["source_sha256"] == file_sha256(media / "clip.mp4") and entry["frames"] == 5

    code, out, err = run(capsys, "upscale", media / "clip.mp4", "--upscaler", "tiny-x2", *common)
    assert code == 0, err
    mp4 = tmp_path / "clip_x2_1.mp4"  # the next free name: clip_x2.json belongs to the frames
    assert out.strip() == str(mp4)
    probe = video_io.probe_video(mp4)
    assert (probe.frames, probe.fps, probe.width, probe.height) == (5, 12, 128, 80)
    assert audio_codec(mp4) == "aac" and video_io.read_metadata(mp4)["upscaled"]["upscaler"] == "tiny-x2"


def test_refusals_are_one_line_and_write_nothing(capsys, models, media, tmp_path):
    outputs = tmp_path / "outputs"
    common = ["--models-dir", models, "--outputs-dir", outputs]
    cases = [
        (["upscale", media / "clip.mp4", "--upscaler", "nope"],
         "--upscaler (upscaler): 'nope' is not installed (installed upscalers: tiny-x2-pickle, tiny-x2, tiny-x4)"),
        (["upscale", media / "clip.mp4", "--upscaler", "vae"],
         "--upscaler (upscaler): vae.safetensors is not an upscaler spandrel 0.4.2 knows"),
        (["upscale", media / "clip.mp4", "--upscaler", "tiny-x2-pickle"],
         "--upscaler (upscaler): tiny-x2-pickle.pth is a pickle file (.pth)"),
        (["upscale", media / "notes.mp4", "--upscaler", "tiny-x2"],
         "video: notes.mp4 is not a video this app can read"),
        (["upscale", media / "wide.mp4", "--upscaler", "tiny-x4"],
         "--upscaler (upscaler): 4x of wide.mp4 (1030x16) would be 4120x64, above the 4096 pixel limit per side; "
         "the largest input for a 4x upscaler is 1024 pixels per side (1024x15 at this shape)"),
        (["generate", media / "cat.png", *JOB, "--upscaler", "nope"], "--upscaler (upscaler): 'nope' is not installed"),
        (["generate", media / "cat.png", *JOB, "--width", "1536", "--height", "1024", "--upscaler", "tiny-x4"],
         "--upscaler (upscaler): 4x of the video (1536x1024) would be 6144x4096, above the 4096 pixel limit"),
        (["generate", media / "cat.png", *JOB, "--enhance-prompt", "--enhancer", "nope"],
         "--enhancer (enhancer): 'nope' is not installed (installed enhancers: tiny-qwen)"),
        (["prompt", media / "cat.png", "--prompt", PROMPT, "--enhancer", "nope"],
         "--enhancer (enhancer): 'nope' is not installed"),
        (["prompt", media / "notes.mp4", "--prompt", PROMPT], "image: "),
        (["generate", "--model", WAN, "--prompt", PROMPT, "--enhance-prompt"],
         "--enhance-prompt (enhance_prompt): the prompt enhancer rewrites the prompt from the picture"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, *argv, *common)
        assert (code, out) == (1, ""), (argv, err)
        assert err.startswith(f"video-gen: error: {message}"), err
        assert err.count("\n") == 1, err
    assert not outputs.exists() or [path.name for path in outputs.iterdir()] in ([], ["history.sqlite3"])
    # the pickle with permission: read with weights_only=True, and upscaled like the .safetensors
    code, out, err = run(capsys, "upscale", media / "clip.mp4", "--upscaler", "tiny-x2-pickle", "--allow-pickle",
                         "--format", "png", "--quiet", *common)
    assert code == 0, err
    source, _ = video_io.read_video(media / "clip.mp4")
    assert within_two(png_frames(outputs / "clip_x2"), spandrel_frames(models / "upscalers" / "tiny-x2.safetensors",
                                                                        source))


def test_a_family_without_a_prompt_refuses_the_enhancer(capsys, models_dir, photo, tmp_path):
    code, out, err = run(capsys, "generate", photo, "--model", "tiny-svd", "--enhance-prompt", "--models-dir",
                         models_dir, "--outputs-dir", tmp_path)
    assert (code, out) == (1, "") and not any(tmp_path.iterdir())
    assert err == ("video-gen: error: --enhance-prompt (enhance_prompt): Stable Video Diffusion takes no prompt, so "
                   "there is nothing to enhance; leave it off, got True\n")


def test_models_list_shows_upscalers_and_enhancers_and_comfyuis_folder(capsys, models, tmp_path):
    comfy = tmp_path / "ComfyUI" / "models" / "upscale_models"
    comfy.mkdir(parents=True)
    shutil.copy(models / "upscalers" / "tiny-x4.safetensors", comfy / "4x-comfy.safetensors")
    code, out, err = run(capsys, "models", "list", "--models-dir", models, "--extra-models-dir",
                         tmp_path / "ComfyUI")
    assert code == 0, err
    rows = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}
    assert rows["tiny-x2"][1:3] == ["-", "upscaler (ESRGAN 2x (8nf, 1nb, unshuffle), fp16)"]
    assert rows["tiny-x4"][2] == "upscaler (RealESRGAN Compact 4x (8nf, 2nc), fp16)"
    assert rows["4x-comfy"][2] == rows["tiny-x4"][2] and rows["4x-comfy"][5].endswith("ComfyUI")
    assert rows["tiny-x2-pickle"][2] == "upscaler (pickle file: refused unless --allow-pickle)"
    assert rows["vae"][2].startswith("unsupported (vae.safetensors is not an upscaler")
    assert rows["tiny-qwen"][2] == "enhancer (qwen2_5_vl)"


# ---- the prompt enhancer, and a job with both -----------------------------------------------------------------
def test_prompt_twice_then_generate_stores_both_prompts_and_upscales_the_frames(capsys, models, media, tmp_path):
    common = ["--models-dir", models, "--outputs-dir", tmp_path]
    printed = []
    for _ in range(2):
        torch.manual_seed(len(printed))  # sampling would now draw other tokens: decoding is greedy
        code, out, err = run(capsys, "prompt", media / "cat.png", "--prompt", PROMPT, "--model", WAN, *common)
        assert code == 0, err
        printed.append(out)
    assert printed[0] == printed[1] and printed[0].endswith("\n") and printed[0].count("\n") == 1
    enhanced = printed[0][:-1]
    assert enhanced.strip() and enhanced != PROMPT

    code, out, err = run(capsys, "generate", media / "cat.png", *JOB, "--prompt", PROMPT, "--enhance-prompt",
                         "--upscaler", "tiny-x2", "--format", "png", "--quiet", *common)
    assert code == 0, err
    folder = video_io.Path(out.strip())
    metadata = video_io.read_metadata(folder)
    assert metadata["prompt_enhancement"]["user_prompt"] == PROMPT
    assert metadata["prompt_enhancement"]["enhanced_prompt"] == enhanced
    assert metadata["prompt_enhancement"]["enhancer"] == "tiny-qwen"
    assert metadata["request"]["prompt"] == enhanced and metadata["request"]["enhance_prompt"] is False
    assert metadata["upscaled"]["scale"] == 2 and metadata["upscaled"]["upscaler"] == "tiny-x2"
    from video_gen.history import History, history_path

    history = History(history_path(tmp_path))
    entry = history.entries(limit=1)[0]
    assert entry.request["prompt"] == enhanced and entry.info["prompt_enhancement"]["user_prompt"] == PROMPT
    history.close()

    # The last stage is spandrel's model on each frame the job made: the same job without it, then spandrel
    plain = Generator(models_dir=models, outputs_dir=tmp_path / "plain").generate(GenerationRequest(
        image=str(media / "cat.png"), model=WAN, width=64, height=64, num_frames=9, fps=16, num_inference_steps=2,
        seed=5, interpolation=1, prompt=enhanced, output_format="png"))
    made = png_frames(plain.path)
    upscaled = png_frames(folder)
    assert upscaled.shape == (9, 128, 128, 3)
    assert within_two(upscaled, spandrel_frames(models / "upscalers" / "tiny-x2.safetensors", made))


@pytest.fixture(scope="module")
def generator(models, tmp_path_factory):
    """One engine for the tests of jobs, its model kept loaded between them."""
    return Generator(models_dir=models, outputs_dir=tmp_path_factory.mktemp("finishing-outputs"))


def request_for(media, **fields) -> GenerationRequest:
    return GenerationRequest(image=str(media / "cat.png"), model=WAN, width=64, height=64, num_frames=9, fps=16,
                             num_inference_steps=2, seed=5, interpolation=1, prompt=PROMPT, **fields)


def test_a_jobs_upscale_reports_each_frame_and_cancel_within_it_leaves_nothing(generator, media):
    steps = []

    def on_event(event):
        if isinstance(event, StepEvent) and event.stage == UPSCALING:
            steps.append((event.index, event.total, event.eta_s))
            if event.index == 3:
                generator.cancel()

    with pytest.raises(Cancelled):
        generator.generate(request_for(media, upscaler="tiny-x2"), on_event=on_event)
    assert [(index, total) for index, total, _ in steps] == [(1, 9), (2, 9), (3, 9)]
    assert all(eta >= 0 for _, _, eta in steps)
    outputs = generator.outputs_dir
    assert sorted(path.name for path in outputs.rglob("*") if path.name != ".partial" and not
                  path.name.startswith("history.sqlite3") and ".inputs" not in path.parts) == []
    assert generator.history.entries(limit=1)[0].status == "cancelled"


def test_a_small_card_unloads_the_resident_model_before_the_enhancer_loads(generator, media, monkeypatch):
    """The memory plan: when the enhancer does not fit beside the video model kept from the last job (the free
    memory faked small: a fault injected), that model is unloaded first, and loaded again after the prompt."""
    from video_gen.events import ENHANCING, LOADING_MODEL, StageEvent
    from video_gen.memory import finishing as memory_finishing

    if generator.loaded_model != WAN:  # the job before (cancelled in its last stage) leaves it loaded
        generator.generate(request_for(media))
    loads = generator.loads
    request = request_for(media, enhance_prompt=True)
    generator.generate(request)  # room enough on this machine: the model of the last job stays
    assert generator.loads == loads
    monkeypatch.setattr(memory_finishing, "available_bytes", lambda device: 2**20)
    stages = []
    result = generator.generate(request, on_event=lambda event: stages.append(
        (event.stage, generator.loaded_model)) if isinstance(event, StageEvent) else None)
    assert stages[:2] == [(ENHANCING, WAN), (LOADING_MODEL, None)]  # unloaded while the enhancer ran
    assert generator.loads == loads + 1 and result.info()["prompt_enhancement"]["user_prompt"] == PROMPT


def test_downloads_land_in_the_upscalers_and_enhancers_folders(capsys, models, tmp_path, serve_hub):
    from conftest import folder_files

    fetched = serve_hub({
        "Comfy-Org/Real-ESRGAN_repackaged": {"RealESRGAN_x2plus.safetensors": models / "upscalers" /
                                             "tiny-x2.safetensors", "RealESRGAN_x4plus.safetensors": None},
        "Qwen/Qwen3-VL-4B-Instruct": {**folder_files(models / "enhancers" / "tiny-qwen"), "README.md": None},
    })
    target = tmp_path / "models"
    code, out, err = run(capsys, "models", "download", "realesrgan-x2", "--models-dir", target)
    assert code == 0, err
    assert out.strip() == str(target / "upscalers" / "RealESRGAN_x2plus.safetensors")
    assert "--upscaler RealESRGAN_x2plus" in err
    code, out, err = run(capsys, "models", "download", "qwen3-vl-4b", "--models-dir", target)
    assert code == 0, err
    assert out.strip() == str(target / "enhancers" / "qwen3-vl-4b") and "README.md" not in fetched
    assert {"generation_config.json", "preprocessor_config.json", "tokenizer_config.json"} <= set(fetched)
    code, out, err = run(capsys, "models", "list", "--models-dir", target)
    kinds = {line.split("\t")[0]: line.split("\t")[2] for line in out.splitlines()}
    assert kinds == {"RealESRGAN_x2plus": "upscaler (ESRGAN 2x (8nf, 1nb, unshuffle), fp16)",
                     "qwen3-vl-4b": "enhancer (qwen2_5_vl)"}
