"""Wan VACE through the app (issue 26), on the tiny REAL `WanVACEPipeline` (video_gen.tiny.wan_vace): the app's
frames equal the pipeline called directly (PNG, ±1) with a control alone, with a reference picture and with a
mask; an MP4 control through JSON mode and its sidecar; `--control-from … --control-kind edges` and its
`_control.mp4`, re-made exactly by `--from`; the refusals, one line each; VACE and plain Wan files never pairing
with each other's folders; `models list`; the annotator downloads; the memory term; a long video's segments."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from video_gen import GenerationRequest, Generator, annotators, control
from video_gen.cli import main
from video_gen.families import wan_vace

SIZE, FRAMES = 64, 9
TINY = dict(width=SIZE, height=SIZE, num_frames=FRAMES, fps=16, num_inference_steps=2, seed=5, prompt="a cat walks",
            negative_prompt="blurry", interpolation=1, output_format="png")


@pytest.fixture(scope="module")
def vace_models(tmp_path_factory):
    """tiny-wan-vace (the official layout), its plain T2V twin of the same width and blocks, and each one's
    transformer as a GGUF in Wan's layout beside them."""
    from video_gen.tiny.wan import save_wan_gguf
    from video_gen.tiny.wan_vace import build_tiny_plain_twin, build_tiny_wan_vace, save_wan_vace_gguf

    folder = tmp_path_factory.mktemp("vace-models")
    vace = build_tiny_wan_vace(folder / "tiny-wan-vace", seed=1)
    plain = build_tiny_plain_twin(vace, folder / "tiny-wan-plain", seed=2)
    save_wan_vace_gguf(vace / "transformer", folder / "wan-vace-Q8_0.gguf")
    save_wan_gguf(plain / "transformer", folder / "wan-plain-Q8_0.gguf")
    return folder


@pytest.fixture(scope="module")
def generator(vace_models, tmp_path_factory):
    return Generator(models_dir=vace_models, outputs_dir=tmp_path_factory.mktemp("vace-outputs"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A control as a folder of PNG frames at the video's size (exact), a 24 fps MP4 of 12 frames at 64x48, a
    reference picture of another shape and a mask picture (generate the right half)."""
    folder = tmp_path_factory.mktemp("vace-inputs")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    (folder / "frames").mkdir()
    for number, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / "frames" / f"frame_{number:03d}.png")
    moving = np.stack([np.roll(np.asarray(Image.fromarray(frames[0]).resize((64, 48))), 3 * index, axis=1)
                       for index in range(24)])
    control.write_control_video(moving, folder / "dance.mp4", fps=24)
    Image.fromarray(rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)).save(folder / "reference.png")
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:, SIZE // 2:] = 255
    Image.fromarray(mask, "L").save(folder / "mask.png")
    return dict(folder=folder, frames=frames, mp4=folder / "dance.mp4", reference=folder / "reference.png",
                mask=folder / "mask.png")


@pytest.fixture(scope="module")
def pipe(vace_models):
    from diffusers import WanVACEPipeline

    pipeline = WanVACEPipeline.from_pretrained(vace_models / "tiny-wan-vace")
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def app_frames(generator, **request):
    result = generator.generate(GenerationRequest.from_dict({**TINY, "model": "tiny-wan-vace", **request}))
    return np.stack([np.asarray(Image.open(path)) for path in sorted(result.path.glob("frame_*.png"))]), result


def direct_frames(pipe, **arguments):
    import torch

    video = pipe(prompt=TINY["prompt"], negative_prompt=TINY["negative_prompt"], height=SIZE, width=SIZE,
                 num_frames=FRAMES, num_inference_steps=2, guidance_scale=5.0, output_type="pil",
                 generator=torch.Generator("cpu").manual_seed(TINY["seed"]), **arguments).frames[0]
    return np.stack([np.asarray(frame) for frame in video])


def assert_close(app, direct):
    assert app.shape == direct.shape
    assert np.abs(app.astype(int) - direct.astype(int)).max() <= 1


# ---- the app's frames are the pipeline's ---------------------------------------------------------------
def test_a_control_alone_a_reference_picture_and_a_mask_equal_the_pipeline(generator, pipe, inputs):
    video = [Image.fromarray(frame) for frame in inputs["frames"]]
    alone, result = app_frames(generator, control=str(inputs["folder"] / "frames"))
    assert_close(alone, direct_frames(pipe, video=video))
    assert type(generator.resident_pipeline).__name__ == "WanVACEPipeline"

    # the reference picture goes to the pipeline as the user gave it (it fits it onto a white canvas itself)
    with_reference, _ = app_frames(generator, control=str(inputs["folder"] / "frames"),
                                   image=str(inputs["reference"]))
    direct = direct_frames(pipe, video=video, reference_images=[Image.open(inputs["reference"]).convert("RGB")])
    assert_close(with_reference, direct)
    assert np.abs(with_reference.astype(int) - alone.astype(int)).max() > 1  # the test above can fail

    masked, result = app_frames(generator, control=str(inputs["folder"] / "frames"), mask=str(inputs["mask"]))
    mask = [Image.open(inputs["mask"])] * FRAMES
    assert_close(masked, direct_frames(pipe, video=video, mask=mask))
    assert np.abs(masked.astype(int) - alone.astype(int)).max() > 1
    assert result.metadata["mask"]["sha256"] == control.file_sha256(inputs["mask"])


def test_an_mp4_control_through_json_mode_records_its_hash_and_frames(inputs, vace_models, tmp_path, capsys):
    output = tmp_path / "clip.mp4"
    request = {**TINY, "model": "tiny-wan-vace", "output_format": "mp4", "output_path": str(output),
               "control": str(inputs["mp4"])}
    assert main(["json", json.dumps(request), "--models-dir", str(vace_models), "--outputs-dir",
                 str(tmp_path)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "success" and answer["request"]["control"] == str(inputs["mp4"])
    # 24 fps taken at 16 fps: source frames 0, 1, 3, 4, 6, … (never stretched), and the note says so
    assert any("source frames 0, 1, 3, 4, 6, 7, … 12" in note for note in answer["notes"])
    sidecar = json.loads(output.with_suffix(".json").read_text())
    assert sidecar["control"]["sha256"] == control.file_sha256(inputs["mp4"])
    assert sidecar["control"]["source_frames"] == 24 and sidecar["control"]["frames"] == FRAMES
    assert sidecar["control"]["source_indices"] == [0, 1, 3, 4, 6, 7, 9, 10, 12]
    kept = tmp_path / "clip_control.mp4"
    assert sidecar["control"]["video"] == str(kept) and kept.is_file()
    assert control.read_clip(kept, num_frames=FRAMES, fps=16).frames.shape == (FRAMES, SIZE, SIZE, 3)


def test_control_from_edges_writes_the_canny_control_and_from_remakes_the_video(inputs, vace_models, tmp_path):
    import cv2

    first = tmp_path / "edges"
    common = ["--models-dir", str(vace_models), "--outputs-dir", str(tmp_path), "--model", "tiny-wan-vace",
              "--prompt", "a cat walks", "--width", "64", "--height", "64", "--frames", "9", "--steps", "2",
              "--seed", "5", "--format", "png", "--interpolation", "1", "--quiet"]
    assert main(["generate", *common, "--control-from", str(inputs["mp4"]), "--control-kind", "edges",
                 "--output", str(first)]) == 0
    made = control.read_clip(tmp_path / "edges_control.mp4", num_frames=FRAMES, fps=16).frames
    source = control.fit_frames(control.read_clip(inputs["mp4"], num_frames=FRAMES, fps=16).frames, SIZE, SIZE)
    canny = np.stack([cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), annotators.CANNY_LOW,
                                annotators.CANNY_HIGH) for frame in source])
    assert canny.any() and np.array_equal(control.binarize_mask(made), canny)  # H.264, thresholded: pixel for pixel
    stored = json.loads((tmp_path / "edges.json").read_text())
    assert stored["control"]["annotator"] == {"kind": "edges", "name": "opencv-canny",
                                              "settings": {"low": 100, "high": 200}}
    assert stored["request"]["control_from"] == str(inputs["mp4"]) and stored["request"]["control_kind"] == "edges"

    again = tmp_path / "again"
    assert main(["generate", "--from", str(tmp_path / "edges.json"), "--models-dir", str(vace_models),
                 "--outputs-dir", str(tmp_path), "--output", str(again), "--quiet"]) == 0
    frames = [np.asarray(Image.open(path)) for path in sorted(first.glob("frame_*.png"))]
    assert len(frames) == FRAMES
    assert all(np.array_equal(a, np.asarray(Image.open(b))) for a, b in zip(frames, sorted(again.glob("frame_*.png"))))


# ---- refusals, one line each, before anything loads -------------------------------------------------------
def refusal(capsys, vace_models, tmp_path, *flags: str, model: str = "tiny-wan-vace") -> str:
    code = main(["generate", "--models-dir", str(vace_models), "--outputs-dir", str(tmp_path), "--model", model,
                 "--prompt", "a cat", "--width", "64", "--height", "64", "--frames", "9", "--quiet", *flags])
    error = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in error, error
    return error


def test_each_bad_control_is_refused_in_one_line(generator, inputs, vace_models, tmp_path, capsys, photo,
                                                 tiny_model_path):
    loads = generator.loads
    folder = inputs["folder"]
    short = control.write_control_video(inputs["frames"][:5], tmp_path / "short.mp4", fps=16)
    assert "--control (control): is shorter than the video: it has 5 frames at 16 fps (0.31 s), the video needs 9 " \
           "frames at 16 fps (0.56 s" in refusal(capsys, vace_models, tmp_path, "--control", str(short))
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    assert "is not a video or a folder of frames" in refusal(capsys, vace_models, tmp_path, "--control", str(fake))
    assert "is one picture; give a video file or a folder of frames" in refusal(
        capsys, vace_models, tmp_path, "--control", str(photo))
    Image.new("L", (32, 32), 255).save(tmp_path / "small.png")
    assert "--mask (mask): is 32x32 but the control is 64x64" in refusal(
        capsys, vace_models, tmp_path, "--control", str(folder / "frames"), "--mask", str(tmp_path / "small.png"))
    longer = tmp_path / "longer"
    shutil.copytree(folder / "frames", longer)
    Image.new("L", (64, 64)).save(longer / "frame_999.png")
    assert "--mask (mask): has 10 frames but the control has 9" in refusal(
        capsys, vace_models, tmp_path, "--control", str(folder / "frames"), "--mask", str(longer))
    assert "takes no control video; use a Wan VACE model" in refusal(
        capsys, vace_models, tmp_path, "--control", str(inputs["mp4"]), model="tiny-wan-plain")
    svd = refusal(capsys, tiny_model_path.parent, tmp_path, str(photo), "--control", str(inputs["mp4"]),
                  model=tiny_model_path.name)
    assert "--control (control): Stable Video Diffusion takes no control video (Wan VACE models do)" in svd
    assert "--control-kind (control_kind): depth needs the Depth Anything V2 annotator in" in refusal(
        capsys, vace_models, tmp_path, "--control-from", str(inputs["mp4"]), "--control-kind", "depth")
    assert "video-gen models download dwpose" in refusal(
        capsys, vace_models, tmp_path, "--control-from", str(inputs["mp4"]), "--control-kind", "pose")
    assert "--mask (mask): needs a control video" in refusal(capsys, vace_models, tmp_path, "--mask",
                                                             str(inputs["mask"]))
    assert "--control-kind (control_kind): missing: control_from needs a kind" in refusal(
        capsys, vace_models, tmp_path, "--control-from", str(inputs["mp4"]))
    assert main(["extend", str(inputs["mp4"]), "--model", "tiny-wan-vace", "--models-dir", str(vace_models),
                 "--outputs-dir", str(tmp_path)]) == 1
    assert "takes its picture as a reference, not as the first frame" in capsys.readouterr().err
    assert generator.loads == loads and not list(tmp_path.glob("*_control.mp4"))  # nothing loaded, nothing written


# ---- what a VACE model is -------------------------------------------------------------------------------
def test_vace_and_plain_wan_files_pair_only_with_their_own_folders(generator, vace_models, inputs, capsys):
    """The VACE file and the plain one have the same width, blocks and input channels: without the VACE flag in
    the shape, both would pair with the first of the two folders."""
    vace_file, plain_file = generator.resolve("wan-vace-Q8_0"), generator.resolve("wan-plain-Q8_0")
    assert vace_file.config_dir == vace_models / "tiny-wan-vace"
    assert plain_file.config_dir == vace_models / "tiny-wan-plain"
    assert main(["models", "list", "--models-dir", str(vace_models)]) == 0
    lines = {line.split("\t")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "\twan\tmodel (Wan (VACE): video to video with a control)" in lines["tiny-wan-vace"]
    assert "Wan (VACE)" in lines["wan-vace-Q8_0"] and "Wan (VACE)" not in lines["wan-plain-Q8_0"]
    _, result = app_frames(generator, model="wan-vace-Q8_0", control=str(inputs["folder"] / "frames"))
    transformer = generator.resident_pipeline.transformer
    assert type(transformer).__name__ == "WanVACETransformer3DModel" and result.frames_written == FRAMES
    assert "GGUFParameter" in {type(weight).__name__ for weight in transformer.vace_blocks.parameters()}


def test_a_vace_module_alone_is_listed_as_unsupported(tmp_path, vace_models, capsys):
    from video_gen.checkpoints import tensor_shapes
    from video_gen.tiny.common import save_gguf

    shapes = tensor_shapes(vace_models / "wan-vace-Q8_0.gguf")
    import torch

    save_gguf({name: torch.zeros(shape[::-1] if len(shape) > 1 else shape) for name, shape in shapes.items()
               if name.startswith("vace_")}, tmp_path / "Wan2_1-VACE_module_14B.gguf", architecture="wan")
    assert main(["models", "list", "--models-dir", str(tmp_path)]) == 0
    line = capsys.readouterr().out.strip()
    assert "\tunsupported (VACE's blocks alone" in line and "not a whole transformer" in line


def test_the_memory_estimate_holds_vaces_hints(generator, vace_models):
    from video_gen import memory

    vace = memory.ModelWeights.from_model(generator.resolve("tiny-wan-vace"))
    plain = memory.ModelWeights.from_model(generator.resolve("tiny-wan-plain"))
    assert vace.denoise_extra_bytes_per_token == (2 + 1) * 24 * 2 and plain.denoise_extra_bytes_per_token == 0
    shape = memory.JobShape("wan", 81, 832, 480, 4)
    plan = memory.MemoryPlan("cuda:0", "bfloat16")
    extra = memory.estimate_stages(plan, vace, shape)["denoising"] - memory.estimate_stages(
        plan, memory.ModelWeights(vace.numel, vace.largest_block, vace.largest_tensor), shape)["denoising"]
    assert extra == 3 * 24 * 2 * 32_760  # 21 latent frames of 30 x 52 tokens
    # the real models, from their configs: (VACE layers + 1) x width x 2 bytes a token
    assert wan_vace.hint_bytes_per_token({"num_attention_heads": 12, "attention_head_dim": 128,
                                          "vace_layers": list(range(0, 30, 2))}) == 49_152
    assert wan_vace.hint_bytes_per_token({"num_attention_heads": 40, "attention_head_dim": 128,
                                          "vace_layers": list(range(0, 40, 5))}) == 92_160


def test_the_annotators_download_into_models_annotators(serve_hub, tmp_path, capsys):
    from video_gen.tiny.annotators import build_tiny_depth_anything

    depth = build_tiny_depth_anything(tmp_path / "depth-repo")
    pose = tmp_path / "pose-repo"
    pose.mkdir()
    for name in ("yolox_l.onnx", "dw-ll_ucoco_384.onnx", "dw-ll_ucoco_384.pth"):
        (pose / name).write_bytes(name.encode())
    fetched = serve_hub({annotators.DEPTH_REPO: {path.name: path for path in depth.iterdir()},
                         annotators.POSE_REPO: {path.name: path for path in pose.iterdir()}})
    models = tmp_path / "models"
    for name in ("depth-anything-v2-small", "dwpose"):
        assert main(["models", "download", name, "--models-dir", str(models)]) == 0
    assert sorted(fetched) == ["config.json", "dw-ll_ucoco_384.onnx", "model.safetensors", "preprocessor_config.json",
                               "yolox_l.onnx"]  # only the listed files: no .pth
    assert annotators.annotator_folder("depth", models / "annotators") == models / "annotators" / "depth-anything-v2-small"
    capsys.readouterr()
    assert main(["models", "list", "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert "dwpose\t-\tannotator (DWPose" in out and "depth-anything-v2-small\t-\tannotator (Depth Anything" in out


# ---- long videos: each segment its own frames of the control ----------------------------------------------
def test_each_segment_takes_its_own_frames_and_continues_the_one_before(inputs):
    made = control.prepare_control(inputs["mp4"], num_frames=13, fps=16, width=SIZE, height=SIZE)
    inputs_ = control.ControlInputs(made, None)
    frames, mask = inputs_.segment(8, 9)  # the second of two segments of 9 (model frames 8-16): 13 are there
    assert np.array_equal(frames[:5], made.frames[8:13]) and all(np.array_equal(f, made.frames[12]) for f in frames[5:])
    assert mask is None

    class Job:
        control = (frames, None)
        segment = (2, 2)

    request = GenerationRequest(num_frames=9, width=SIZE, height=SIZE)
    last = Image.fromarray(np.full((SIZE, SIZE, 3), 7, np.uint8))  # the segment before's last frame
    arguments, references = wan_vace.run_arguments(request, last, Job(), width=SIZE, height=SIZE)
    assert references == 0 and len(arguments["video"]) == len(arguments["mask"]) == 9
    assert np.array_equal(np.asarray(arguments["video"][0]), np.asarray(last))  # kept: mask black there
    assert np.asarray(arguments["mask"][0]).max() == 0 and np.asarray(arguments["mask"][1]).min() == 255
    assert np.array_equal(np.asarray(arguments["video"][1]), frames[1])


def test_the_pages_preview_is_the_first_frame_with_the_mask_in_red(inputs):
    frames = inputs["frames"]
    plain = np.asarray(control.preview(inputs["folder"] / "frames"))
    assert np.array_equal(plain, frames[0])
    masked = np.asarray(control.preview(inputs["folder"] / "frames", inputs["mask"])).astype(int)
    assert np.array_equal(masked[:, :SIZE // 2], frames[0][:, :SIZE // 2])  # kept: as it is
    expected = (frames[0][:, SIZE // 2:] * 0.5 + np.array([255, 0, 0]) * 0.5).astype(int)
    assert np.abs(masked[:, SIZE // 2:] - expected).max() <= 1  # generated: half red
    edges = np.asarray(control.preview(inputs["mp4"], kind="edges"))
    assert set(np.unique(edges)) <= {0, 255} and edges.shape == (48, 64, 3)


def test_a_long_video_takes_the_control_over_every_segment(generator, tmp_path):
    source = control.write_control_video(np.random.default_rng(3).integers(0, 256, (90, SIZE, SIZE, 3), np.uint8),
                                         tmp_path / "long.mp4", fps=16)
    frames, result = app_frames(generator, control=str(source), num_frames=85, output_path=str(tmp_path / "long"))
    assert result.plan.segments == 2 and len(frames) == 85  # two segments of 43 frames sharing their seam
    assert result.metadata["control"]["frames"] == 85 and result.metadata["control"]["source_indices"] == list(range(85))
    kept = control.read_clip(tmp_path / "long_control.mp4", num_frames=85, fps=16)
    assert kept.source_frames == 85
