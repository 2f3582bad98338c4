"""Write generated frames to a video file or a folder of PNG frames, and read them back.

Everything goes through the ffmpeg binary bundled with imageio-ffmpeg (there is no ffprobe), fed raw
RGB frames over a pipe. Writes are atomic: a temporary name in the target's folder (in its `.partial`
work area when it has one, as the app's outputs folder does) is moved into place only once complete,
so a crash, kill -9 or Ctrl-C never leaves a half-written video under the final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import numbers
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image, PngImagePlugin

from video_gen import audio as sound_io
from video_gen.errors import GenerationFailed, InvalidRequest
from video_gen.request import FORMATS

SUFFIXES = {"mp4": ".mp4", "webm": ".webm", "gif": ".gif", "png": ""}  # png = a folder of frames

# libx264 accepts any crf and silently clamps it to 51 (measured: `-crf 999` exits 0), so check here.
CRF_RANGES = {"mp4": (0, 51), "webm": (0, 63)}
_X264_PRESET = "medium"
_PNG_PATTERN = "frame_{index:05d}.png"
_PNG_METADATA_KEY = "parameters"  # the AUTOMATIC1111 convention, read by most image viewers/tools
_STDERR_TAIL_CHARS = 2000
PARTIAL_DIRNAME = ".partial"  # work area inside an outputs folder; see partial_dir

# Tag the output as BT.709 (limited range), what browsers assume for untagged video anyway; without
# setparams, ffmpeg 9 tags only the matrix and leaves primaries/transfer "unknown".
_TO_YUV420_BT709 = (
    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
    "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
)
_GIF_PALETTE = "split[frames][copy];[copy]palettegen[palette];[frames][palette]paletteuse"


class FFmpegError(GenerationFailed):
    """ffmpeg exited with an error; the message ends with the tail of its stderr."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int
    codec: str
    pix_fmt: str
    duration_s: float


def write_video(frames, path, *, fps, format="mp4", crf=18, metadata=None, audio=None, before_commit=None) -> Path:
    """Write `frames` (PIL RGB images or a uint8 (F, H, W, 3) array) atomically to `path`; return it.

    mp4 is H.264 and webm VP9, both yuv420p; an odd width or height is padded to even by repeating
    the last column/row, so such a video reads back one pixel wider/taller. gif uses a per-video
    palette and loops forever. png writes the folder `path` with lossless frame_00000.png, ...
    `metadata` (JSON-serialisable dict) goes in the mp4/webm `comment` tag and in each PNG's
    `parameters` text chunk; gif has nowhere to keep it. Missing parent folders are created, an
    existing file or folder at `path` is replaced. `before_commit()` is called when the file is complete, just
    before it takes its name: raising there (a job cancelled while it was written) leaves nothing behind.

    `audio` (an `audio.Sound`, already as long as the video) becomes the file's one audio stream (AAC in mp4,
    Opus in webm), or `audio.wav` (16-bit PCM at its own rate) inside a png folder; gif has no sound, so it is
    dropped there (the caller says so). Muxed before the file takes its final name.
    """
    # 1. Check inputs before touching the disk.
    if format not in FORMATS:
        raise InvalidRequest("format", f"{format!r} is not one of {', '.join(FORMATS)}")
    if not isinstance(fps, numbers.Real) or isinstance(fps, bool) or not 0 < fps < math.inf:
        raise InvalidRequest("fps", f"must be a positive number, got {fps!r}")
    if format in CRF_RANGES:
        low, high = CRF_RANGES[format]
        if not isinstance(crf, numbers.Real) or isinstance(crf, bool) or not low <= crf <= high:
            raise InvalidRequest("crf", f"must be between {low} and {high} for {format}, got {crf!r}")
    metadata_json = None
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata", f"must be a dict, got {type(metadata).__name__}")
        try:
            # json.dumps escapes control characters, so the text never holds a raw newline or NUL.
            metadata_json = json.dumps(metadata, ensure_ascii=False)
        except (TypeError, ValueError) as error:
            raise InvalidRequest("metadata", f"is not JSON-serialisable: {error}") from error

    # 2. Write under a temporary name next to the target, then move it into place.
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    checked_frames = _checked_frames(frames)
    if audio is not None and not isinstance(audio, sound_io.Sound):
        raise InvalidRequest("audio", f"must be an audio.Sound, got {type(audio).__name__}")
    if format == "png":
        _write_png_folder(checked_frames, target, metadata_json, audio, before_commit)
    else:
        # ffmpeg picks the container from the temporary name's suffix
        with atomic_path(target, suffix=SUFFIXES[format]) as temporary:
            _encode(checked_frames, temporary, fps=fps, format=format, crf=crf, comment=metadata_json)
            if audio is not None and format in sound_io.AUDIO_CODECS:
                sound_io.mux_audio(temporary, audio.pcm, audio.sample_rate, format)
            if before_commit is not None:
                before_commit()
    return target


@contextlib.contextmanager
def atomic_path(target, suffix: str = ""):
    """Yield a temporary file path beside `target`; it becomes `target` only if the block completes.

    On any exception (Ctrl-C included) the temporary is removed, so a reader never sees a half-written
    file under the final name and no stray temporary is left in the folder.
    """
    target = Path(target)
    temporary = _work_path(target, suffix)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def partial_dir(folder) -> Path:
    """The folder's work area for files being written (`<folder>/.partial`), made if missing.

    Once it exists, every write into `folder` works there and is moved into place when complete, so
    cleaning it at start-up (`clean_partial`) removes everything a killed process left half-written,
    and nothing but complete files ever carries a final name in `folder`.
    """
    work = Path(folder) / PARTIAL_DIRNAME
    work.mkdir(parents=True, exist_ok=True)
    return work


def clean_partial(folder) -> int:
    """Remove what a killed process left in `<folder>/.partial`; returns how many entries went."""
    work = Path(folder) / PARTIAL_DIRNAME
    if not work.is_dir() or work.is_symlink():
        return 0
    removed = 0
    for entry in work.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _work_path(target: Path, suffix: str = "") -> Path:
    """A fresh temporary name for `target`: in its folder's `.partial` work area when there is one
    (the outputs folder of the app), else beside it (a file the user named anywhere)."""
    name = f".{target.name}.partial-{secrets.token_hex(8)}{suffix}"
    work = target.parent / PARTIAL_DIRNAME
    if work.is_dir() and not work.is_symlink():
        return work / name
    return target.with_name(name)


def probe_video(path) -> VideoInfo:
    """Describe a video file or a png frames folder; `frames` is counted by decoding."""
    path = _existing(path)
    if path.is_dir():
        return _probe_png_folder(path, _png_files(path))
    header = _read_header(path)
    frame_count, _ = imageio_ffmpeg.count_frames_and_secs(ffmpeg_path(path))
    return _video_info(header, frame_count)


def read_video(path) -> tuple[np.ndarray, VideoInfo]:
    """Decode every frame of a video file or png frames folder to a uint8 (F, H, W, 3) RGB array."""
    path = _existing(path)
    if path.is_dir():
        files = _png_files(path)
        frames = []
        for file in files:
            with Image.open(file) as image:
                frames.append(np.asarray(image.convert("RGB")))
        return np.stack(frames), _probe_png_folder(path, files)
    header = _read_header(path)
    # passthrough: each decoded frame exactly once. By default the rawvideo muxer resamples to a
    # constant rate: a gif with delays of 100, 100, 500, 100, 100 ms decoded to 9 frames, not 5.
    # noautorotate: frames as stored, the size the header reports (a phone's rotation flag is ignored).
    raw = run_ffmpeg(
        ["-noautorotate", "-i", ffmpeg_path(path), "-map", "0:v:0", "-fps_mode", "passthrough"]
        + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        f"decoding {path}",
    )
    width, height = header["width"], header["height"]
    if len(raw) % (width * height * 3):
        raise FFmpegError(f"decoding {path}: {len(raw)} bytes is not a whole number of {width}x{height} frames")
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)
    return frames, _video_info(header, len(frames))


def sidecar_path(path) -> Path:
    """Where the `.json` beside an output lives: clip.mp4 -> clip.json, a frames folder -> frames.json."""
    path = Path(path)
    return path.with_name(f"{path.stem if path.suffix else path.name}.json")


def write_sidecar(path, metadata: dict) -> Path:
    """Write `metadata` as the JSON file beside the output `path`, atomically; return its path."""
    target = sidecar_path(path)
    with atomic_path(target) as temporary:
        temporary.write_text(json.dumps(metadata, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
                             encoding="utf-8")
    return target


def read_metadata(path) -> dict | None:
    """The metadata dict stored in `path` (or in the `.json` beside it, or `path` itself if it is that
    JSON), or None if there is none or it is not JSON."""
    path = _existing(path)
    if path.suffix.lower() == ".json":
        return _json_object(path.read_text(encoding="utf-8", errors="replace"))
    stored = _stored_metadata(path)
    if stored is None and sidecar_path(path).is_file():
        return _json_object(sidecar_path(path).read_text(encoding="utf-8", errors="replace"))
    return stored


def _json_object(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError:
        return None
    return metadata if isinstance(metadata, dict) else None


def _stored_metadata(path: Path) -> dict | None:
    if path.is_dir() or path.suffix.lower() == ".png":
        first_frame = _png_files(path)[0] if path.is_dir() else path
        with Image.open(first_frame) as image:
            text = image.text.get(_PNG_METADATA_KEY)
    else:
        listing = run_ffmpeg(["-i", ffmpeg_path(path), "-f", "ffmetadata", "-"], f"reading metadata of {path}")
        # Matroska stores tag names upper-case (COMMENT), mp4 lower-case.
        tags = {key.lower(): value for key, value in _parse_ffmetadata(listing.decode("utf-8", "replace")).items()}
        text = tags.get("comment")
    return _json_object(text)


def write_still(video, target, *, width: int = 320) -> Path:
    """A JPEG of a video's middle part (ffmpeg's `thumbnail` filter picks the most typical of its first frames),
    `width` pixels wide, written atomically to `target`: the page's gallery tiles. A folder of PNG frames gives
    its first frame."""
    video, target = Path(video), Path(target)
    source = sorted(video.glob("frame_*.png"))[:1] if video.is_dir() else [video]
    if not source:
        raise FFmpegError(f"no frames in {video}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=".jpg") as temporary:
        run_ffmpeg(["-y", "-i", ffmpeg_path(source[0]), "-vf", f"thumbnail=8,scale={int(width)}:-2",
                    "-frames:v", "1", "-q:v", "4", str(temporary)], f"making a still of {video.name}")
    return target


def unique_path(path) -> Path:
    """`path` itself if nothing is there, else the first free `<stem>_1<suffix>`, `_2`, ...

    Racy by nature: another process may take the name before it is used (write_video then replaces).
    """
    path = Path(path)
    candidate, number = path, 0
    while os.path.lexists(candidate):
        number += 1
        candidate = path.with_name(f"{path.stem}_{number}{path.suffix}")
    return candidate


def _checked_frames(frames):
    """Yield each frame as a C-contiguous uint8 (H, W, 3) array, all the size of the first."""
    first_shape = None
    for index, frame in enumerate(frames):
        if isinstance(frame, Image.Image):
            frame = frame if frame.mode == "RGB" else frame.convert("RGB")
        array = np.ascontiguousarray(frame)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            expected = "an RGB image or uint8 (H, W, 3) array"
            raise InvalidRequest("frames", f"frame {index} must be {expected}, got {array.dtype} {array.shape}")
        if first_shape is None:
            first_shape = array.shape
        elif array.shape != first_shape:
            raise InvalidRequest("frames", f"frame {index} has shape {array.shape}, frame 0 has {first_shape}")
        yield array
    if first_shape is None:
        raise InvalidRequest("frames", "there are no frames to write")


def _encode(frames, output: Path, *, fps, format: str, crf, comment: str | None) -> None:
    """Pipe the frames as raw rgb24 into one ffmpeg process writing `output`."""
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    # A rational rate keeps e.g. 24000/1001 exact; each input frame becomes exactly one output frame.
    command = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
    command += ["-r", str(Fraction(float(fps)).limit_denominator()), "-i", "-"]
    if format == "gif":
        command += ["-vf", _GIF_PALETTE, "-loop", "0"]
    else:
        filters = _TO_YUV420_BT709
        if width % 2 or height % 2:
            # yuv420p needs even sizes: add one column/row and smear the edge pixels into it.
            pad_right, pad_bottom = width % 2, height % 2
            filters = (
                f"pad={width + pad_right}:{height + pad_bottom}:0:0,"
                f"fillborders=right={pad_right}:bottom={pad_bottom}:mode=smear,{filters}"
            )
        command += ["-vf", filters, "-pix_fmt", "yuv420p"]
        if format == "mp4":
            command += ["-c:v", "libx264", "-preset", _X264_PRESET, "-crf", str(crf), "-movflags", "+faststart"]
        else:
            command += ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0"]
        if comment is not None:
            command += ["-metadata", f"comment={comment}"]
    command += ["-f", format, ffmpeg_path(output)]

    full_command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *command]
    # stderr goes to a file, not a pipe nobody reads while we write frames (which could deadlock).
    with tempfile.TemporaryFile() as stderr_log:
        process = subprocess.Popen(full_command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr_log)
        pipe_broken = False
        try:
            try:
                process.stdin.write(first)
                for frame in frames:
                    process.stdin.write(frame)
                process.stdin.close()
            except BrokenPipeError:
                pipe_broken = True  # ffmpeg quit early; its stderr says why
            returncode = process.wait()
        finally:
            # Reached with ffmpeg still running only on an error in the frames or Ctrl-C.
            if process.poll() is None:
                process.kill()
                process.wait()
            if not process.stdin.closed:
                try:
                    process.stdin.close()
                except BrokenPipeError:
                    pass  # flushing into a dead ffmpeg; the failure is reported below or already raised
        if returncode != 0 or pipe_broken:
            stderr_log.seek(0)
            raise FFmpegError(f"ffmpeg failed writing {format} (exit code {returncode}):\n{_tail(stderr_log.read())}")


def _write_png_folder(frames, target: Path, metadata_json: str | None, audio=None, before_commit=None) -> None:
    """Write lossless frame_00000.png, ... (and audio.wav when there is sound) into a temporary folder, then swap
    it in for `target`."""
    temporary = _work_path(target)
    token = temporary.name.rsplit("-", 1)[1]
    old_aside = temporary.with_name(f".{target.name}.old-{token}")
    png_info = None
    if metadata_json is not None:
        png_info = PngImagePlugin.PngInfo()
        png_info.add_text(_PNG_METADATA_KEY, metadata_json)  # falls back to iTXt for non-Latin-1 text
    temporary.mkdir()
    moved_old = False
    try:
        for index, frame in enumerate(frames):
            Image.fromarray(frame).save(temporary / _PNG_PATTERN.format(index=index), pnginfo=png_info)
        if audio is not None:
            sound_io.write_wav(temporary / sound_io.WAV_NAME, audio.pcm, audio.sample_rate)
        if before_commit is not None:
            before_commit()
        # A folder cannot be replaced in one step: move the old one aside, then restore it on failure.
        if os.path.lexists(target):
            os.replace(target, old_aside)
            moved_old = True
        os.replace(temporary, target)
    except BaseException:
        if moved_old and not os.path.lexists(target):
            os.replace(old_aside, target)
        # ignore_errors: a cleanup problem must not hide the exception that got us here.
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if moved_old:
        if old_aside.is_dir() and not old_aside.is_symlink():
            shutil.rmtree(old_aside)
        else:
            old_aside.unlink()


def _existing(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no video at {path}")
    return path


def ffmpeg_path(path: Path) -> str:
    # Absolute, so a name like "-x.mp4" or "a:b.mp4" is not taken for an option or a protocol.
    return str(Path(path).absolute())


def _tail(stderr: bytes) -> str:
    return stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL_CHARS:]


def run_ffmpeg(arguments: list[str], what: str) -> bytes:
    """Run ffmpeg with `arguments`, return its stdout, raise FFmpegError with its stderr on failure."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *arguments]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0:
        raise FFmpegError(f"ffmpeg failed {what} (exit code {result.returncode}):\n{_tail(result.stderr)}")
    return result.stdout


# "Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 64x48, ..."
_VIDEO_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: Video: (.*)$", re.MULTILINE)
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_COMMA_OUTSIDE_PARENTHESES = re.compile(r",\s*(?![^()]*\))")
_SIZE = re.compile(r"^(\d+)x(\d+)\b")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(k?) (fps|tbr)$")


def _read_header(path: Path) -> dict:
    """Parse codec, pix_fmt, size, rate and duration from the input summary `ffmpeg -i` prints."""
    # With no output file ffmpeg always exits 1 after printing the summary, so the exit code says nothing.
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", ffmpeg_path(path)]
    log = subprocess.run(command, capture_output=True).stderr.decode("utf-8", "replace")
    stream = _VIDEO_STREAM.search(log)
    if stream is None:
        raise FFmpegError(f"ffmpeg found no video stream in {path}:\n{log.strip()[-_STDERR_TAIL_CHARS:]}")
    fields = _COMMA_OUTSIDE_PARENTHESES.split(stream.group(1))
    header = {"codec": fields[0].split()[0], "pix_fmt": fields[1].split("(")[0].strip(), "fps": 0.0, "duration_s": None}
    rates = {}
    for field in fields[2:]:
        field = field.split(" (")[0].strip()  # "14336 tbn (default)" -> "14336 tbn"
        if (size := _SIZE.match(field)) and "width" not in header:
            header["width"], header["height"] = int(size.group(1)), int(size.group(2))
        elif rate := _RATE.match(field):
            rates[rate.group(3)] = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    if "width" not in header:
        raise FFmpegError(f"could not read the frame size of {path} from: {stream.group(0).strip()}")
    # ffmpeg prints "fps" (average rate) when it knows it, "tbr" (guessed base rate) always.
    header["fps"] = rates.get("fps", rates.get("tbr", 0.0))
    if duration := _DURATION.search(log):
        hours, minutes, seconds = duration.groups()
        header["duration_s"] = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return header


def _video_info(header: dict, frame_count: int) -> VideoInfo:
    duration_s = header["duration_s"]
    if duration_s is None:
        duration_s = frame_count / header["fps"] if header["fps"] else 0.0
    return VideoInfo(
        frames=frame_count,
        fps=header["fps"],
        width=header["width"],
        height=header["height"],
        codec=header["codec"],
        pix_fmt=header["pix_fmt"],
        duration_s=duration_s,
    )


def _png_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("frame_*.png"))
    if not files:
        raise FileNotFoundError(f"no frame_*.png files in {folder}")
    return files


def _probe_png_folder(folder: Path, files: list[Path]) -> VideoInfo:
    with Image.open(files[0]) as image:
        width, height = image.size
    fps = (read_metadata(folder) or {}).get("fps")
    fps = float(fps) if isinstance(fps, numbers.Real) and fps > 0 else 0.0
    return VideoInfo(
        frames=len(files),
        fps=fps,
        width=width,
        height=height,
        codec="png",
        pix_fmt="rgb24",
        duration_s=len(files) / fps if fps else 0.0,
    )


def _parse_ffmetadata(text: str) -> dict[str, str]:
    """Global tags of an ffmetadata listing, where `=`, `;`, `#`, `\\` and newline are backslash-escaped."""
    tags = {}
    # A logical line may span physical lines through an escaped newline.
    for line in re.findall(r"(?:\\.|[^\\\n])+", text, re.DOTALL):
        if line.startswith("["):
            break  # [STREAM] / [CHAPTER] sections follow the global tags
        if line.startswith((";", "#")):
            continue  # comment, including the ";FFMETADATA1" header
        entry = re.fullmatch(r"((?:\\.|[^\\=])*)=(.*)", line, re.DOTALL)
        if entry:
            key, value = (re.sub(r"\\(.)", r"\1", part, flags=re.DOTALL) for part in entry.groups())
            tags[key] = value
    return tags
