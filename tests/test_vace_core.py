"""Wan VACE's core: the tiny REAL `WanVACEPipeline` (random weights, the official repositories' layout) and what
diffusers 0.42.1 does with a control, a reference picture and a mask; and `video_gen.control`: reading a control,
resampling it by time, refusing a short one, fitting, masks, making a control (edges, gray, depth, pose), writing
the control used and its metadata."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from video_gen import annotators, control
from video_gen.families import wan_vace
from video_gen.errors import InvalidRequest
from video_gen.images import fit_to_size

WIDTH, HEIGHT, FRAMES = 32, 32, 9  # 3 latent frames of 2x2 tokens: ~0.1 s a call on the CPU


# ---- the tiny VACE model ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vace_folder(tmp_path_factory) -> Path:
    from video_gen.tiny.wan_vace import build_tiny_wan_vace

    return build_tiny_wan_vace(tmp_path_factory.mktemp("models") / "tiny-wan-vace", seed=1)


@pytest.fixture(scope="module")
def pipe(vace_folder):
    from diffusers import WanVACEPipeline

    pipeline = WanVACEPipeline.from_pretrained(vace_folder, local_files_only=True)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def control_frames() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)) for _ in range(FRAMES)]


def run(pipe, **arguments):
    """One direct call of the pipeline (2 steps, guidance 5), its frames and the CPU seconds it took."""
    import torch

    call = dict(prompt="a cat walks", height=HEIGHT, width=WIDTH, num_frames=FRAMES, num_inference_steps=2,
                guidance_scale=5.0, max_sequence_length=16, output_type="np",
                generator=torch.Generator().manual_seed(arguments.pop("seed", 7)))
    call.update(arguments)
    started = time.process_time()
    frames = pipe(**call).frames
    return frames, time.process_time() - started


def test_the_tiny_folder_has_the_official_layout_and_loads(vace_folder, pipe):
    index = json.loads((vace_folder / "model_index.json").read_text())
    assert index["_class_name"] == "WanVACEPipeline"
    assert index["transformer"] == ["diffusers", "WanVACETransformer3DModel"]
    assert index["scheduler"] == ["diffusers", "UniPCMultistepScheduler"]
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert index["boundary_ratio"] is None and index["transformer_2"] == [None, None]
    transformer = json.loads((vace_folder / "transformer" / "config.json").read_text())
    assert transformer["vace_layers"] == [0, 2] and transformer["vace_in_channels"] == 96
    assert json.loads((vace_folder / "scheduler" / "scheduler_config.json").read_text())["flow_shift"] == 3.0
    assert type(pipe.transformer).__name__ == "WanVACETransformer3DModel"


def test_the_two_expert_folder_takes_a_second_guidance(tmp_path, control_frames):
    from diffusers import WanVACEPipeline

    from video_gen.tiny.wan_vace import build_tiny_wan_vace

    folder = build_tiny_wan_vace(tmp_path / "tiny-wan-vace-a14b", two_experts=True)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["boundary_ratio"] == 0.875 and index["transformer_2"] == ["diffusers", "WanVACETransformer3DModel"]
    pipe = WanVACEPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    frames, _ = run(pipe, video=control_frames, guidance_scale_2=3.0)
    assert frames.shape == (1, FRAMES, HEIGHT, WIDTH, 3)


def test_vace_transformers_are_told_from_plain_wan_by_their_tensor_names(vace_folder, tmp_path):
    from safetensors import safe_open

    from video_gen.checkpoints import tensor_shapes
    from video_gen.tiny.wan import build_tiny_wan
    from video_gen.tiny.wan_vace import save_wan_vace_gguf

    with safe_open(vace_folder / "transformer" / "diffusion_pytorch_model.safetensors", "pt") as weights:
        diffusers_names = list(weights.keys())
    original_names = list(tensor_shapes(save_wan_vace_gguf(vace_folder / "transformer", tmp_path / "vace.gguf")))
    assert "vace_blocks.0.before_proj.weight" in original_names and "vace_blocks.1.after_proj.bias" in original_names
    plain = build_tiny_wan(tmp_path / "t2v", "t2v")
    with safe_open(plain / "transformer" / "diffusion_pytorch_model.safetensors", "pt") as weights:
        plain_names = list(weights.keys())
    assert wan_vace.is_vace_transformer(diffusers_names)
    assert wan_vace.is_vace_transformer(original_names)
    assert wan_vace.is_vace_transformer(["model.diffusion_model." + name for name in original_names])  # ComfyUI's
    assert not wan_vace.is_vace_transformer(plain_names)
    module_only = [name for name in original_names if name.startswith("vace_")]
    assert not wan_vace.is_vace_transformer(module_only) and wan_vace.is_vace_module_only(module_only)
    assert not wan_vace.is_vace_module_only(original_names)


def test_a_control_alone_runs_and_the_seed_decides_the_noise(pipe, control_frames, capsys):
    first, seconds = run(pipe, video=control_frames)
    again, _ = run(pipe, video=control_frames)
    other_seed, _ = run(pipe, video=control_frames, seed=8)
    assert first.shape == (1, FRAMES, HEIGHT, WIDTH, 3)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other_seed)
    with capsys.disabled():
        print(f"\n  VACE control alone: {seconds:.2f} CPU s ({WIDTH}x{HEIGHT}, {FRAMES} frames, 2 steps)")


def test_a_reference_picture_is_one_more_leading_latent_frame(pipe, control_frames, capsys):
    """The Wan run path stops at latents (output_type="latent") and decodes them itself: with a reference picture
    it must strip one leading latent frame per picture, which is what the pipeline's own decode does."""
    import torch

    from video_gen.families.wan import decode

    reference = Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 40, 3), dtype=np.uint8))
    plain_latents, _ = run(pipe, video=control_frames, output_type="latent")
    latents, _ = run(pipe, video=control_frames, reference_images=[reference], output_type="latent")
    assert latents.shape[2] == plain_latents.shape[2] + 1 == (FRAMES - 1) // 4 + 2
    frames, seconds = run(pipe, video=control_frames, reference_images=[reference])
    without, _ = run(pipe, video=control_frames)
    assert not np.allclose(frames, without)  # the extra latent frame changes the noise: same seed, other video

    class Job:  # what `decode` reports to
        def stage(self, *args, **kwargs):
            pass

        def step(self, *args, **kwargs):
            pass

    with torch.no_grad():
        decoded = decode(pipe, latents[:, :, 1:], 4, Job())
    assert np.array_equal(decoded, (frames[0] * 255).round().astype(np.uint8))
    with capsys.disabled():
        print(f"\n  VACE control + reference picture: {seconds:.2f} CPU s")


def test_a_control_and_a_binarised_mask(pipe, control_frames, capsys):
    """Grey is read two ways by the pipeline (thresholded for the video split, raw for the mask channels), so grey
    100 is not black there; binarised first it is."""
    halves = np.zeros((FRAMES, HEIGHT, WIDTH), np.uint8)
    halves[:, :, WIDTH // 2:] = 255  # generate the right half, keep the left half of the control
    masked, seconds = run(pipe, video=control_frames, mask=[Image.fromarray(frame, "L") for frame in halves])
    unmasked, _ = run(pipe, video=control_frames)
    assert masked.shape == (1, FRAMES, HEIGHT, WIDTH, 3) and not np.allclose(masked, unmasked)
    grey = np.full((FRAMES, HEIGHT, WIDTH), 100, np.uint8)
    black = np.zeros_like(grey)
    as_grey, _ = run(pipe, video=control_frames, mask=[Image.fromarray(frame, "L") for frame in grey])
    as_black, _ = run(pipe, video=control_frames, mask=[Image.fromarray(frame, "L") for frame in black])
    assert not np.array_equal(as_grey, as_black)
    binarised, _ = run(pipe, video=control_frames, mask=[Image.fromarray(frame, "L")
                                                         for frame in control.binarize_mask(grey)])
    assert np.array_equal(binarised, as_black)
    with capsys.disabled():
        print(f"\n  VACE control + mask: {seconds:.2f} CPU s")


def test_the_pipelines_own_rules_that_the_app_must_guard(pipe, control_frames):
    mask = [Image.new("L", (WIDTH, HEIGHT), 255)] * FRAMES
    with pytest.raises(ValueError, match="`mask` can only be passed if `video` is passed"):
        run(pipe, mask=mask)
    with pytest.raises(RuntimeError, match="negative dimension"):  # never cut to num_frames
        run(pipe, video=control_frames + control_frames[:4])
    shorter, _ = run(pipe, video=control_frames[:5])  # padded with zeros, only a logged warning
    assert shorter.shape == (1, FRAMES, HEIGHT, WIDTH, 3)
    with pytest.raises(ValueError, match="guidance_scale_2"):
        run(pipe, video=control_frames, guidance_scale_2=3.0)
    with pytest.raises(ValueError, match="list of prompts"):
        run(pipe, video=control_frames, prompt=["a", "b"])


def test_the_size_comes_from_the_control_frames_so_they_are_fitted_first(pipe, control_frames, tmp_path):
    """A 64x48 control at 32x32 runs without a word, on a 32x16 conditioning padded with zeros; fitted first it is
    the same as giving the fitted frames."""
    wide = [frame.resize((64, 48)) for frame in control_frames]
    silently, _ = run(pipe, video=wide)
    fitted_frames = [fit_to_size(frame, WIDTH, HEIGHT) for frame in wide]
    fitted, _ = run(pipe, video=fitted_frames)
    assert silently.shape == fitted.shape and not np.allclose(silently, fitted)
    folder = tmp_path / "wide"
    folder.mkdir()
    for number, frame in enumerate(wide):
        frame.save(folder / f"frame_{number}.png")
    prepared = control.prepare_control(folder, num_frames=FRAMES, fps=16, width=WIDTH, height=HEIGHT)
    assert prepared.frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    through_the_app, _ = run(pipe, video=control.control_images(prepared))
    assert np.array_equal(through_the_app, fitted)


# ---- control videos ---------------------------------------------------------------------------------
def numbered_frames(count: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Frame i is a flat grey of 10 x i: readable back through H.264 (flat areas survive it within a level or two)."""
    return np.stack([np.full((height, width, 3), 10 * index, np.uint8) for index in range(count)])


def frame_numbers(frames: np.ndarray) -> list[int]:
    return [int(round(frame.mean() / 10)) for frame in frames]


def test_source_indices_take_the_frame_shown_at_each_output_time():
    assert control.source_indices(9, 16, 24) == [0, 1, 3, 4, 6, 7, 9, 10, 12]
    assert control.source_indices(5, 16, 16) == [0, 1, 2, 3, 4]
    assert control.source_indices(5, 16, 8) == [0, 0, 1, 1, 2]  # a slower source: frames repeat, never stretched
    assert control.source_indices(4, 16, None) == [0, 1, 2, 3]  # a folder: one frame per output frame
    assert control.source_indices(4, 30000 / 1001, 30000 / 1001) == [0, 1, 2, 3]


def test_a_24_fps_mp4_taken_at_16_fps(tmp_path):
    source = control.write_control_video(numbered_frames(24), tmp_path / "dance.mp4", fps=24)
    clip = control.read_clip(source, num_frames=9, fps=16)
    assert clip.indices == (0, 1, 3, 4, 6, 7, 9, 10, 12)
    assert frame_numbers(clip.frames) == [0, 1, 3, 4, 6, 7, 9, 10, 12]
    assert clip.source_frames == 24 and clip.source_fps == 24
    assert clip.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert "0, 1, 3, 4, 6, 7, … 12" in control.describe_indices(clip.indices, clip.source_fps, 16)


def test_a_control_shorter_than_the_video_is_refused_in_one_line(tmp_path):
    source = control.write_control_video(numbered_frames(20), tmp_path / "short.mp4", fps=24)
    with pytest.raises(InvalidRequest) as error:
        control.read_clip(source, num_frames=17, fps=16)  # needs source frames up to 24
    message = str(error.value)
    assert error.value.field == "control" and "\n" not in message
    assert "20 frames at 24 fps (0.83 s)" in message and "needs 17 frames at 16 fps (1.06 s" in message
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(3):
        Image.fromarray(numbered_frames(1)[0]).save(folder / f"{number}.png")
    with pytest.raises(InvalidRequest, match=r"^control: is shorter than the video: it has 3 frames, the video "
                                             r"needs 5 frames"):
        control.read_clip(folder, num_frames=5, fps=16)


def test_a_folder_of_frames_is_read_in_natural_order(tmp_path):
    frames = numbered_frames(12)
    for number, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"frame{number}.png")  # frame10 sorts after frame9
    (tmp_path / "notes.txt").write_text("not a frame")
    clip = control.read_clip(tmp_path, num_frames=12, fps=16)
    assert frame_numbers(clip.frames) == list(range(12)) and clip.source_fps is None
    assert np.array_equal(clip.frames, frames)  # PNG: exact


def test_what_is_not_a_control_is_refused_in_one_line(tmp_path, photo):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    empty = tmp_path / "empty"
    empty.mkdir()
    for path, words in ((fake, "is not a video or a folder of frames"), (photo, "is one picture"),
                        (empty, "holds no frames"), (tmp_path / "missing.mp4", "not found")):
        with pytest.raises(InvalidRequest, match=words) as error:
            control.prepare_control(path, num_frames=5, fps=16, width=32, height=32)
        assert error.value.field == "control" and "\n" not in str(error.value)


def test_control_frames_are_fitted_like_pictures(tmp_path, photo):
    folder = tmp_path / "frames"
    folder.mkdir()
    picture = Image.open(photo).convert("RGB")  # 128x96
    for number in range(5):
        picture.save(folder / f"{number}.png")
    for mode in ("crop", "fit"):
        prepared = control.prepare_control(folder, num_frames=5, fps=16, width=64, height=64, resize_mode=mode)
        expected = np.asarray(fit_to_size(picture, 64, 64, mode))
        assert all(np.array_equal(frame, expected) for frame in prepared.frames)
        assert any("128x96 fitted to 64x64" in note for note in prepared.notes)


# ---- masks ------------------------------------------------------------------------------------------
def test_masks_are_binarised_at_half():
    grey = np.array([[[0, 127, 128, 255]]], np.uint8)
    assert control.binarize_mask(grey).tolist() == [[[0, 0, 255, 255]]]
    rgb = np.array([[[[255, 255, 255], [255, 0, 0], [0, 255, 0], [120, 130, 140]]]], np.uint8)
    assert control.binarize_mask(rgb).tolist() == [[[255, 0, 255, 255]]]  # luma 76, 150, 128


def test_one_mask_picture_is_every_frames_mask_fitted_then_binarised(tmp_path):
    source = control.write_control_video(numbered_frames(24, 64, 48), tmp_path / "c.mp4", fps=24)
    prepared = control.prepare_control(source, num_frames=9, fps=16, width=32, height=32)
    picture = np.zeros((48, 64), np.uint8)
    picture[:, 32:] = 200  # light grey: generate the right half
    Image.fromarray(picture, "L").save(tmp_path / "mask.png")
    mask = control.prepare_mask(tmp_path / "mask.png", prepared, width=32, height=32)
    assert mask.frames.shape == (9, 32, 32) and set(np.unique(mask.frames)) == {0, 255}
    expected = control.binarize_mask(np.asarray(fit_to_size(Image.fromarray(picture).convert("RGB"), 32, 32))[None])
    assert all(np.array_equal(frame, expected[0]) for frame in mask.frames)
    assert mask.sha256 == hashlib.sha256((tmp_path / "mask.png").read_bytes()).hexdigest()


def test_a_mask_video_follows_the_controls_frames(tmp_path):
    source = control.write_control_video(numbered_frames(24, 64, 48), tmp_path / "c.mp4", fps=24)
    prepared = control.prepare_control(source, num_frames=9, fps=16, width=32, height=32)
    folder = tmp_path / "mask"
    folder.mkdir()
    for number in range(24):  # white on frames 3 and 9 only
        value = 255 if number in (3, 9) else 0
        Image.new("L", (64, 48), value).save(folder / f"m{number:02d}.png")
    mask = control.prepare_mask(folder, prepared, width=32, height=32)
    assert [int(frame.max()) for frame in mask.frames] == [0, 0, 255, 0, 0, 0, 255, 0, 0]  # indices 0,1,3,…,9,…


def test_a_mask_of_another_size_or_length_is_refused_in_one_line(tmp_path):
    source = control.write_control_video(numbered_frames(24, 64, 48), tmp_path / "c.mp4", fps=24)
    prepared = control.prepare_control(source, num_frames=9, fps=16, width=32, height=32)
    Image.new("L", (32, 32), 255).save(tmp_path / "small.png")
    with pytest.raises(InvalidRequest, match=r"^mask: is 32x32 but the control is 64x48") as error:
        control.prepare_mask(tmp_path / "small.png", prepared, width=32, height=32)
    assert "\n" not in str(error.value)
    longer = control.write_control_video(np.zeros((30, 48, 64, 3), np.uint8), tmp_path / "m.mp4", fps=24)
    with pytest.raises(InvalidRequest, match=r"^mask: has 30 frames but the control has 24"):
        control.prepare_mask(longer, prepared, width=32, height=32)


# ---- making a control from a video ------------------------------------------------------------------
@pytest.fixture(scope="module")
def moving_video(tmp_path_factory) -> Path:
    """Real structure (skimage's astronaut) panning right, 12 frames at 16 fps, 64x64."""
    from skimage import data

    picture = Image.fromarray(data.astronaut()).resize((96, 96))
    frames = np.stack([np.asarray(picture)[16:80, 2 * index:2 * index + 64] for index in range(12)])
    return control.write_control_video(frames, tmp_path_factory.mktemp("sources") / "pan.mp4", fps=16)


def test_edges_are_opencvs_canny_with_the_apps_thresholds_and_survive_the_mp4(moving_video, tmp_path):
    import cv2

    made = control.make_control(moving_video, "edges", num_frames=9, fps=16, width=64, height=64)
    source = control.read_clip(moving_video, num_frames=9, fps=16).frames
    expected = np.stack([cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 100, 200) for frame in source])
    assert (annotators.CANNY_LOW, annotators.CANNY_HIGH) == (100, 200)
    assert np.array_equal(made.frames[..., 0], expected) and expected.any()
    assert np.array_equal(made.frames[..., 0], made.frames[..., 2])
    assert made.annotator == {"kind": "edges", "name": "opencv-canny", "settings": {"low": 100, "high": 200}}
    written = control.write_control_video(made.frames, control.control_path(tmp_path / "clip.mp4"), fps=16)
    assert written.name == "clip_control.mp4"
    back = control.read_clip(written, num_frames=9, fps=16)
    assert np.array_equal(control.binarize_mask(back.frames), expected)  # thresholded, pixel for pixel


def test_gray_is_the_frames_luma(moving_video):
    import cv2

    made = control.make_control(moving_video, "gray", num_frames=5, fps=16, width=64, height=64)
    source = control.read_clip(moving_video, num_frames=5, fps=16).frames
    assert np.array_equal(made.frames[..., 1], np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in source]))


def test_depth_from_a_local_depth_anything_folder(moving_video, tmp_path):
    import torch
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    from video_gen.tiny.annotators import build_tiny_depth_anything

    folder_of_annotators = tmp_path / "annotators"
    folder = build_tiny_depth_anything(folder_of_annotators / annotators.DEPTH_FOLDER)
    made = control.make_control(moving_video, "depth", num_frames=5, fps=16, width=64, height=64,
                                annotators_dir=folder_of_annotators)
    assert made.frames.shape == (5, 64, 64, 3)
    assert made.annotator["name"] == "depth-anything-v2-small" and len(made.annotator["sha256"]) == 64
    # transformers called directly on the same frames, stretched per frame
    frames = control.read_clip(moving_video, num_frames=5, fps=16).frames
    processor = AutoImageProcessor.from_pretrained(folder)
    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        predicted = model(**processor(images=list(frames), return_tensors="pt")).predicted_depth
    predicted = torch.nn.functional.interpolate(predicted[:, None], size=(64, 64), mode="bicubic")[:, 0].numpy()
    for made_frame, values in zip(made.frames, predicted):
        expected = np.rint((values - values.min()) / (values.max() - values.min()) * 255)
        assert np.abs(made_frame[..., 0].astype(int) - expected).max() <= 1
        assert made_frame[..., 0].min() == 0 and made_frame[..., 0].max() == 255


def test_pose_from_local_dwpose_onnx_files(moving_video, tmp_path):
    pytest.importorskip("onnxruntime")  # a dependency; skipped where it could not be installed
    pytest.importorskip("onnx")  # the test extra that builds the tiny ONNX files
    from video_gen.tiny.annotators import build_tiny_dwpose

    folder_of_annotators = tmp_path / "annotators"
    # The nose above the crop's centre, the shoulders either side of it (crop pixels of the 24x32 RTMPose input)
    build_tiny_dwpose(folder_of_annotators / annotators.POSE_FOLDER, {0: (12, 8), 5: (8, 16), 6: (16, 16)})
    made = control.make_control(moving_video, "pose", num_frames=3, fps=16, width=64, height=64,
                                annotators_dir=folder_of_annotators)
    # The person's box is (20, 28)-(36, 44) on the 64x64 frame: grown to 20x26.7 and warped at 1.2x, the crop's
    # centre (12, 16) is the frame's (28, 36) and the nose (12, 8) lands at (28, 29.3)
    for frame in made.frames:
        assert tuple(frame[29, 28]) == annotators.BODY_COLORS[0]  # the nose's red dot
        assert tuple(frame[36, 24]) == annotators.BODY_COLORS[5]  # the left shoulder at (24.7, 36)
        assert not frame[:20].any() and not frame[50:].any()  # nothing outside the person
    assert made.annotator["kind"] == "pose" and len(made.annotator["sha256"]) == 64


def test_a_missing_annotator_names_its_folder_and_download(moving_video, tmp_path):
    for kind, words in (("depth", r"depth needs the Depth Anything V2 annotator in .*depth-anything-v2-small .*"
                                  r"video-gen models download depth-anything-v2-small"),
                        ("pose", r"pose needs the DWPose annotator in .*dwpose \(yolox_l.onnx, "
                                 r"dw-ll_ucoco_384.onnx missing\).*video-gen models download dwpose")):
        with pytest.raises(InvalidRequest, match=words) as error:
            control.make_control(moving_video, kind, num_frames=5, fps=16, width=64, height=64,
                                 annotators_dir=tmp_path)
        assert error.value.field == "control_kind" and "\n" not in str(error.value)
    with pytest.raises(InvalidRequest, match="must be one of depth, pose, edges, gray"):
        control.make_control(moving_video, "canny", num_frames=5, fps=16, width=64, height=64)


def test_the_metadata_holds_hashes_counts_and_the_annotator(moving_video, tmp_path):
    made = control.make_control(moving_video, "edges", num_frames=9, fps=16, width=64, height=64)
    Image.new("L", (64, 64), 255).save(tmp_path / "mask.png")
    mask = control.prepare_mask(tmp_path / "mask.png", made, width=64, height=64)
    record = control.metadata(made, mask)
    assert record["control"]["sha256"] == hashlib.sha256(moving_video.read_bytes()).hexdigest()
    assert record["control"]["source_frames"] == 12 and record["control"]["frames"] == 9
    assert record["control"]["source_indices"] == list(range(9))
    assert record["control"]["annotator"]["name"] == "opencv-canny"
    assert record["mask"] == {"sha256": hashlib.sha256((tmp_path / "mask.png").read_bytes()).hexdigest(),
                              "frames": 9, "source_frames": 1}
    json.dumps(record)  # goes into the sidecar as it is
