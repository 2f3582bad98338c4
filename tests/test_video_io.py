"""video_io against the real bundled ffmpeg: tiny clips written, decoded back and compared."""

from __future__ import annotations

import os
import subprocess
import time

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from video_gen import video_io
from video_gen.errors import InvalidRequest
from video_gen.video_io import FFmpegError, probe_video, read_metadata, read_video, unique_path, write_video

# Every character ffmetadata escapes (= ; # \ newline) plus non-ASCII text.
TRICKY_METADATA = {"prompt": "a=b; c#d \\ e\nsecond line, café 猫", "seed": 42, "fps": 7}


def gradient_frames(count=8, width=64, height=48) -> np.ndarray:
    """Smooth gradients (easy to compress faithfully) that brighten by 16 per frame, so frames differ."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [np.stack([x * 2 + 16 * i, y * 3 + 40, (x + y) + 8 * i], axis=-1) for i in range(count)]
    return np.clip(frames, 0, 255).astype(np.uint8)


def failing_after(frames, count, exception, *, once_exists_in=None):
    """The frames, but raising `exception` instead of producing frame number `count`.

    With `once_exists_in`, first wait until something (the partial output) appears in that folder, so
    the failure really happens with a half-written file on disk.
    """
    for index, frame in enumerate(frames):
        if index == count:
            deadline = time.monotonic() + 10
            while once_exists_in is not None and not os.listdir(once_exists_in):
                assert time.monotonic() < deadline, "no partial output ever appeared"
                time.sleep(0.01)
            raise exception
        yield frame


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("fps, as_pil", [(7, True), (24, False)])
def test_mp4_round_trip(tmp_path, fps, as_pil):
    frames = gradient_frames()
    source = [Image.fromarray(frame) for frame in frames] if as_pil else frames

    path = write_video(source, tmp_path / "clip.mp4", fps=fps)

    assert path == tmp_path / "clip.mp4"
    assert os.listdir(tmp_path) == ["clip.mp4"]
    decoded, info = read_video(path)
    assert info == probe_video(path)
    assert (info.frames, info.fps, info.width, info.height) == (8, fps, 64, 48)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.duration_s == pytest.approx(8 / fps, abs=0.02)
    assert decoded.shape == (8, 48, 64, 3) and decoded.dtype == np.uint8
    for index in range(8):  # per frame: no frame dropped, duplicated or reordered
        assert mean_abs_diff(decoded[index], frames[index]) < 3
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playable while downloading
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not a private temp file's 0600


def test_webm_is_vp9(tmp_path):
    frames = gradient_frames()
    path = write_video(frames, tmp_path / "clip.webm", fps=12, format="webm")

    decoded, info = read_video(path)
    assert (info.frames, info.fps, info.width, info.height) == (8, 12, 64, 48)
    assert (info.codec, info.pix_fmt) == ("vp9", "yuv420p")
    assert mean_abs_diff(decoded, frames) < 3


def test_gif_keeps_every_frame(tmp_path):
    frames = gradient_frames()
    path = write_video(frames, tmp_path / "clip.gif", fps=10, format="gif")

    decoded, info = read_video(path)
    assert (info.frames, info.width, info.height, info.codec) == (8, 64, 48, "gif")
    assert probe_video(path).frames == 8
    assert decoded.shape == (8, 48, 64, 3)
    assert mean_abs_diff(decoded, frames) < 6  # a 256-colour palette, dithered
    with Image.open(path) as image:
        assert image.info["loop"] == 0  # forever


def test_variable_frame_delays_are_read_frame_by_frame(tmp_path):
    frames = [Image.fromarray(frame) for frame in gradient_frames(count=5)]
    path = tmp_path / "uneven.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 100, 500, 100, 100], loop=0)

    decoded, info = read_video(path)
    assert len(decoded) == info.frames == probe_video(path).frames == 5


def test_png_folder_is_lossless(tmp_path):
    frames = gradient_frames(width=63, height=47)  # odd sizes are kept as they are
    path = write_video(frames, tmp_path / "frames", fps=7, format="png", metadata={"fps": 7})

    assert sorted(os.listdir(path)) == [f"frame_{index:05d}.png" for index in range(8)]
    decoded, info = read_video(path)
    assert np.array_equal(decoded, frames)
    assert info == video_io.VideoInfo(
        frames=8, fps=7.0, width=63, height=47, codec="png", pix_fmt="rgb24", duration_s=8 / 7
    )


def test_odd_size_is_padded_with_the_edge_pixels(tmp_path):
    frames = gradient_frames(width=63, height=47)
    decoded, info = read_video(write_video(frames, tmp_path / "odd.mp4", fps=7))

    assert (info.width, info.height) == (64, 48)
    assert mean_abs_diff(decoded[:, :47, :63], frames) < 3
    # The added column/row repeats its neighbour rather than being black.
    assert mean_abs_diff(decoded[:, :, 63], decoded[:, :, 62]) < 3
    assert mean_abs_diff(decoded[:, 47, :], decoded[:, 46, :]) < 3


@pytest.mark.parametrize("format", ["mp4", "webm", "png"])
def test_metadata_round_trip(tmp_path, format):
    path = write_video(
        gradient_frames(count=2), tmp_path / f"clip{video_io.SUFFIXES[format]}", fps=7, format=format,
        metadata=TRICKY_METADATA,
    )
    assert read_metadata(path) == TRICKY_METADATA


def test_metadata_absent(tmp_path):
    assert read_metadata(write_video(gradient_frames(count=2), tmp_path / "plain.mp4", fps=7)) is None
    gif = write_video(gradient_frames(count=2), tmp_path / "clip.gif", fps=7, format="gif", metadata=TRICKY_METADATA)
    assert read_metadata(gif) is None  # gif has no place for it


@pytest.mark.parametrize(
    "comment, expected",
    [
        ("not json", None),
        ("[1, 2]", None),
        # A raw newline is valid JSON whitespace; ffmetadata escapes it with a backslash.
        ('{"a": "x=1",\n "b": 2}', {"a": "x=1", "b": 2}),
    ],
)
def test_metadata_written_by_other_tools(tmp_path, comment, expected):
    path = tmp_path / "other.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=16x16:d=0.2"]
        + ["-metadata", f"comment={comment}", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    assert read_metadata(path) == expected


@pytest.mark.parametrize("format", video_io.FORMATS)
def test_failure_midway_leaves_nothing(tmp_path, format):
    target = tmp_path / f"clip{video_io.SUFFIXES[format]}"
    # ffmpeg creates a gif only at the end (the palette needs every frame), the others at the first frame.
    wait_in = None if format == "gif" else tmp_path
    frames = failing_after(gradient_frames(), 3, RuntimeError("generator broke"), once_exists_in=wait_in)
    with pytest.raises(RuntimeError, match="generator broke"):
        write_video(frames, target, fps=7, format=format)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("format", ["mp4", "png"])
def test_interrupt_keeps_the_previous_output(tmp_path, format):
    target = write_video(gradient_frames(count=2), tmp_path / f"clip{video_io.SUFFIXES[format]}", fps=7, format=format)
    before, _ = read_video(target)

    with pytest.raises(KeyboardInterrupt):
        write_video(failing_after(gradient_frames()[::-1], 3, KeyboardInterrupt()), target, fps=24, format=format)

    assert os.listdir(tmp_path) == [target.name]
    after, _ = read_video(target)
    assert np.array_equal(after, before)


# 64x48 frames all fit in the pipe buffer, so ffmpeg's failure shows in its exit code; 512x512 frames
# make the next write hit the closed pipe instead.
@pytest.mark.parametrize("size", [64, 512])
def test_ffmpeg_failure_reports_stderr_and_leaves_nothing(tmp_path, monkeypatch, size):
    monkeypatch.setattr(video_io, "_X264_PRESET", "no-such-preset")
    with pytest.raises(FFmpegError, match="no-such-preset"):
        write_video(gradient_frames(width=size, height=size), tmp_path / "clip.mp4", fps=7)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "frames, options, field",
    [
        (gradient_frames(), {"format": "avi"}, "format"),
        (gradient_frames(), {"fps": 0}, "fps"),
        (gradient_frames(), {"crf": 52}, "crf"),  # libx264 would silently clamp it to 51
        (gradient_frames(), {"format": "webm", "crf": 64}, "crf"),
        (gradient_frames(), {"metadata": {"when": object()}}, "metadata"),
        ([], {}, "frames"),
        (gradient_frames().astype(np.float32), {}, "frames"),
        # The odd frame comes after ffmpeg has started: it must be stopped and its file removed.
        ([*gradient_frames(count=3), gradient_frames(count=1, width=32)[0]], {}, "frames"),
        ([*gradient_frames(count=3), gradient_frames(count=1, width=32)[0]], {"format": "png"}, "frames"),
    ],
)
def test_invalid_input_is_rejected_and_leaves_nothing(tmp_path, frames, options, field):
    options = {"fps": 7, **options}
    with pytest.raises(InvalidRequest) as raised:
        write_video(frames, tmp_path / "out" / "clip", **options)
    assert raised.value.field == field
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_existing_png_folder_is_replaced(tmp_path):
    target = tmp_path / "frames"
    write_video(gradient_frames(count=5), target, fps=7, format="png")
    (target / "notes.txt").write_text("from the old run")

    write_video(gradient_frames(count=2)[::-1], target, fps=7, format="png")

    assert sorted(os.listdir(target)) == ["frame_00000.png", "frame_00001.png"]
    assert np.array_equal(read_video(target)[0], gradient_frames(count=2)[::-1])
    assert os.listdir(tmp_path) == ["frames"]


def test_failed_png_swap_restores_the_old_folder(tmp_path, monkeypatch):
    target = write_video(gradient_frames(count=2), tmp_path / "frames", fps=7, format="png")
    real_replace = os.replace

    def replace_failing_for_the_new_folder(source, destination):
        if ".partial-" in str(source):
            raise OSError("disk went away")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace_failing_for_the_new_folder)
    with pytest.raises(OSError, match="disk went away"):
        write_video(gradient_frames(count=5), target, fps=7, format="png")

    assert os.listdir(tmp_path) == ["frames"]
    assert np.array_equal(read_video(target)[0], gradient_frames(count=2))


def test_existing_file_is_replaced_and_parents_created(tmp_path):
    target = tmp_path / "a" / "b" / "clip.mp4"
    write_video(gradient_frames(count=2), target, fps=7)
    write_video(gradient_frames(count=5), target, fps=24)

    info = probe_video(target)
    assert (info.frames, info.fps) == (5, 24)
    assert os.listdir(target.parent) == ["clip.mp4"]


def test_unique_path(tmp_path):
    assert unique_path(tmp_path / "clip.mp4") == tmp_path / "clip.mp4"
    (tmp_path / "clip.mp4").touch()
    assert unique_path(tmp_path / "clip.mp4") == tmp_path / "clip_1.mp4"
    (tmp_path / "clip_1.mp4").touch()
    assert unique_path(tmp_path / "clip.mp4") == tmp_path / "clip_2.mp4"
    (tmp_path / "frames").mkdir()
    assert unique_path(tmp_path / "frames") == tmp_path / "frames_1"


def test_reading_a_missing_or_broken_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe_video(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(FFmpegError, match="broken.mp4"):
        read_video(broken)
