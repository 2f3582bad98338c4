"""Extend a video: the source's frames, then a continuation from its last frame, in one file.

Tiny real SVD (conftest's `models_dir`), loaded through the user's path. A 12-frame source is extended by 8
frames; the output is checked frame by frame against the source and against the continuation made again from
the output's own metadata (`generate --from`), which proves the seam frame is dropped and the colours matched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from conftest import TINY_MODEL
from PIL import Image

from video_gen import Generator, GenerationRequest, video_io
from video_gen.errors import InvalidRequest
from video_gen.extend import extend, extensions_of, join, read_source

STEPS = 2


@pytest.fixture(scope="module")
def engine(models_dir, tmp_path_factory):
    return Generator(models_dir=models_dir, outputs_dir=tmp_path_factory.mktemp("extend-outputs"))


@pytest.fixture(scope="module")
def own_video(engine, photo):
    """A 12-frame video made here (mp4, with our metadata), and its job."""
    result = engine.generate(GenerationRequest(image=str(photo), model=TINY_MODEL, width=64, height=64, num_frames=12,
                                               fps=8, num_inference_steps=STEPS, seed=5, output_format="png"))
    return result


def test_extend_own_12_frame_video_by_8_frames(engine, own_video, tmp_path):
    from video_gen.cli import main

    source_frames, _ = video_io.read_video(own_video.path)
    result = extend(engine, own_video.path, frames=8)

    frames, info = video_io.read_video(result.path)  # PNG frames: lossless, so every check is exact
    assert len(frames) == 20 and result.frames_written == 20
    assert (info.width, info.height, info.fps) == (64, 64, 8)
    assert np.array_equal(frames[:12], source_frames)  # the source, untouched

    # The settings came from the source (its steps, size, format); only the picture, length and seed differ
    request = result.request
    assert (request.num_inference_steps, request.width, request.height, request.fps) == (STEPS, 64, 64, 8)
    assert request.num_frames == 9 and request.seed != own_video.seed  # 8 new frames + the seam frame
    start = np.asarray(Image.open(request.image).convert("RGB"))
    assert np.array_equal(start, source_frames[-1])  # the continuation starts from the source's last frame

    # Metadata: the source (path, SHA-256, its job) and the continuation's request, which --from makes again
    metadata = video_io.read_metadata(result.path)
    source = metadata["source"]
    assert source["path"] == str(own_video.path.resolve()) and source["frames"] == 12
    assert source["sha256"] == read_source(own_video.path).sha256
    assert source["job"] == own_video.job_id and metadata["request"]["num_frames"] == 9
    again = tmp_path / "continuation"
    assert main(["generate", "--from", str(result.path), "--output", str(again), "--format", "png", "--quiet",
                 "--models-dir", str(engine.models_dir), "--outputs-dir", str(tmp_path / "out")]) == 0
    continuation, _ = video_io.read_video(again)
    assert len(continuation) == 9
    # The output's tail is exactly the continuation without its first (seam) frame, colour-matched
    assert np.array_equal(frames, join(source_frames, continuation, 8))
    assert not any(np.array_equal(frame, continuation[0]) for frame in frames[12:])
    for tail in (frames[12:], join(source_frames, np.clip(continuation.astype(int) + 40, 0, 255).astype(np.uint8),
                                   8)[12:]):  # a continuation that drifted in colour is matched back too
        assert np.allclose(tail.reshape(-1, 3).mean(axis=0), source_frames.reshape(-1, 3).mean(axis=0), atol=1.0)
        assert np.allclose(tail.reshape(-1, 3).std(axis=0), source_frames.reshape(-1, 3).std(axis=0), atol=1.0)

    # The history links the two jobs
    assert engine.history.get(result.job_id).info["source"]["job"] == own_video.job_id
    assert extensions_of(engine.history, own_video.job_id) == [result.job_id]


def test_extend_a_foreign_video_without_metadata_and_an_odd_size(engine, tmp_path, capsys):
    from video_gen.cli import main

    """A 12-frame 100x60 MP4 at 10 fps made elsewhere: the model's defaults; made at 104x64 (multiples of 8,
    at least 64 a side) and fitted back."""
    y, x = np.mgrid[0:60, 0:100]
    clip = np.stack([np.stack([(x * 2 + 9 * index) % 256, y * 4, np.full_like(x, 90 + index)], -1)
                     for index in range(12)]).astype(np.uint8)
    foreign = video_io.write_video(clip, tmp_path / "foreign.mp4", fps=10)
    assert video_io.read_metadata(foreign) is None
    source_frames, _ = video_io.read_video(foreign)

    # From the command line this time: `video-gen extend VIDEO --frames 8 [generate options]`
    code = main(["extend", str(foreign), "--frames", "8", "--steps", str(STEPS), "--seed", "3", "--quiet",
                 "--models-dir", str(engine.models_dir), "--outputs-dir", str(engine.outputs_dir)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "made at 104x64" in printed.err  # the note about fitting, said to the user
    path = Path(printed.out.strip())
    metadata = video_io.read_metadata(path)
    result = engine.history.get(engine.history.entries(limit=1)[0].id)
    frames, info = video_io.read_video(path)
    assert len(frames) == 20 and (info.width, info.height) == (100, 60) and info.fps == 10
    assert path.name == "foreign_extended.mp4" and path.parent == engine.outputs_dir
    assert np.abs(frames[:12].astype(int) - source_frames).mean() < 3  # the source, re-encoded once
    assert (metadata["request"]["width"], metadata["request"]["height"]) == (104, 64)  # the model's grid
    assert any("made at 104x64" in note and "100x60" in note for note in result.info["notes"])
    assert result.output == str(path) and result.info["source"]["path"] == str(foreign.resolve())
    assert metadata["source"]["request"] is None and metadata["source"]["fitted"] is True
    assert metadata["source"]["job"] is None and metadata["fps"] == 10
    assert metadata["request"]["model"] == TINY_MODEL and metadata["request"]["num_frames"] == 9


def _audio_only(path):
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5",
                    str(path)], check=True)
    return path


@pytest.mark.parametrize("make, expected", [
    (lambda folder: folder / "missing.mp4", "video: file not found"),
    (lambda folder: (folder / "notes.mp4").write_text("not a video") and folder / "notes.mp4",
     "video: not a video this app can read"),
    (lambda folder: _audio_only(folder / "sound.m4a"), "video: sound.m4a is audio only"),
    (lambda folder: video_io.write_video(np.zeros((1, 64, 64, 3), np.uint8), folder / "one.mp4", fps=8),
     "video: one.mp4 has 1 frame; at least 2"),
    (lambda folder: (folder / "empty").mkdir() or folder / "empty", "video: empty has no frames"),
])
def test_bad_sources_are_one_line_naming_the_video(engine, tmp_path, make, expected):
    before = sorted(engine.outputs_dir.iterdir())
    with pytest.raises(InvalidRequest) as error:
        extend(engine, make(tmp_path), frames=8)
    assert str(error.value).startswith(expected) and "\n" not in str(error.value)
    assert sorted(engine.outputs_dir.iterdir()) == before  # nothing started, nothing written
