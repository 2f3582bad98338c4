"""Issue 6 on the tiny real model: chained segments, interpolated rates, loops, formats, reproducibility."""

import json

import numpy as np
import pytest

from conftest import FAST, video_files
from video_gen import GenerationRequest, Generator, video_io
from video_gen.cli import main
from video_gen.families import svd
from video_gen.catalog import resolve_model
from video_gen.checkpoints import weights_sha256


def test_three_chained_segments_share_their_seams(models_dir, outputs_dir, photo, monkeypatch):
    starts = []
    real_run = svd.run

    def recording_run(pipe, request, image, job):  # a spy: records each segment's start picture, then runs
        starts.append(np.asarray(image).copy())
        return real_run(pipe, request, image, job)

    monkeypatch.setattr(svd, "run", recording_run)
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    events = []
    # The tiny model makes at most 8 frames per generation: 20 frames need 3 segments (8 + 7 + 7, seams shared).
    result = generator.generate(GenerationRequest(image=str(photo), seed=21, interpolation=1, output_format="png",
                                                  **{**FAST, "num_frames": 20}), on_event=events.append)
    assert result.plan.segment_frames == (8, 7, 7) and result.frames_written == 20
    frames = video_io.read_video(result.path)[0]
    assert frames.shape[0] == 20
    # segment 2 starts from output frame 7 exactly (taken from memory, not re-read), segment 3 from frame 13
    assert np.array_equal(starts[1], frames[7]) and np.array_equal(starts[2], frames[13])
    assert not np.array_equal(frames[7], frames[8])  # the seam frame is not duplicated
    segments = {(e.segment, e.segments) for e in events if e.kind == "step"}
    assert {(1, 3), (2, 3), (3, 3)} <= segments
    assert any(e.kind == "stage" and e.message.startswith("segment 2 of 3") for e in events)


def test_cancel_between_segments(models_dir, outputs_dir, photo):
    from video_gen import Cancelled

    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)

    def cancel_in_second_segment(event):
        if event.kind == "step" and event.segment == 2:
            generator.cancel()

    with pytest.raises(Cancelled):
        generator.generate(GenerationRequest(image=str(photo), seed=2, interpolation=1,
                                             **{**FAST, "num_frames": 20}), on_event=cancel_in_second_segment)
    assert video_files(outputs_dir) == []


@pytest.mark.parametrize("loop", ["pingpong", "crossfade"])
def test_loops_have_the_exact_length(generator, photo, loop):
    result = generator.generate(GenerationRequest(image=str(photo), seed=3, loop=loop, **{**FAST, "num_frames": 10}))
    assert video_io.probe_video(result.path).frames == 10 and result.plan.loop == loop


def test_interpolated_rate_has_exact_frames_and_fps(generator, photo):
    events = []
    result = generator.generate(GenerationRequest(image=str(photo), seed=4, fps=24, **{**FAST, "num_frames": 24}),
                                on_event=events.append)
    # 9 model frames at 8 fps; the tiny model makes at most 8 per generation: 2 segments, then 3x
    assert result.plan.factor == 3 and result.plan.segment_frames == (5, 5)
    interpolating = [e for e in events if e.kind == "stage" and e.stage == "interpolating"]
    assert [e.message for e in interpolating] == ["interpolating 3x to 24 fps"]  # once, for the whole clip
    info = video_io.probe_video(result.path)
    assert info.frames == 24 and info.fps == pytest.approx(24)


@pytest.mark.parametrize("output_format, codec", [("webm", "vp9"), ("gif", "gif"), ("png", "png")])
def test_each_format_reads_back(generator, photo, output_format, codec):
    result = generator.generate(GenerationRequest(image=str(photo), seed=5, output_format=output_format, **FAST))
    info = video_io.probe_video(result.path)
    assert (info.frames, info.width, info.height, info.codec) == (8, 64, 64, codec)


def test_metadata_is_complete_in_the_file_and_beside_it(generator, photo, models_dir):
    result = generator.generate(GenerationRequest(image=str(photo), seed=-1, **FAST))
    stored = video_io.read_metadata(result.path)
    sidecar = json.loads(video_io.sidecar_path(result.path).read_text())
    assert stored == sidecar == json.loads(json.dumps(result.metadata))
    assert stored["request"]["seed"] == result.seed > 0
    assert stored["model_sha256"] == weights_sha256(resolve_model("tiny-svd", models_dir))
    assert stored["plan"]["segment_frames"] == [8] and stored["version"]
    assert GenerationRequest.from_dict(stored["request"]) == result.request


def test_rerun_from_a_video_is_bit_exact(models_dir, outputs_dir, photo, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VIDEO_GEN_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("VIDEO_GEN_OUTPUTS_DIR", str(outputs_dir))
    first = tmp_path / "first"
    assert main(["generate", str(photo), *"--width 64 --height 64 --frames 10 --steps 3 --fps 12 --quiet".split(),
                 "--motion", "90", "--format", "png", "--output", str(first)]) == 0
    capsys.readouterr()
    again = tmp_path / "again"
    assert main(["generate", "--from", str(first), "--output", str(again), "--quiet"]) == 0
    from_json = tmp_path / "from-json"
    assert main(["generate", "--from", str(video_io.sidecar_path(first)), "--output", str(from_json), "--quiet"]) == 0
    original = video_io.read_video(first)[0]
    assert np.array_equal(original, video_io.read_video(again)[0])
    assert np.array_equal(original, video_io.read_video(from_json)[0])
    capsys.readouterr()
    assert main(["inspect", str(again)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["plan"]["factor"] == 2 and shown["request"]["motion_bucket_id"] == 90 and shown["model_sha256"]


def test_rerun_from_something_without_settings_is_bad_input(tmp_path, capsys):
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert main(["generate", "--from", str(plain)]) == 1
    assert "carries no video-gen settings" in capsys.readouterr().err
