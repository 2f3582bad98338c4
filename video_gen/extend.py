"""Continue any video from its end: the source's frames, then a continuation made from its last frame.

The path: `read_source` checks and decodes the video (one line naming `video` for anything that is not a
usable video) → `prepare_extension` builds the continuation's `GenerationRequest` (the source's own settings
when it carries ours, the model's defaults otherwise; its picture is the source's last frame, saved losslessly
in the outputs folder's `.inputs/`) and returns the engine's `PreparedJob` with a `finish` step →
`Generator.generate` runs it like any job (the queue, the history, cancel, memory plans) and, before writing,
`Continuation` drops the continuation's first frame (the seam: it repeats the source's last one), fits the rest
back to the source's size when the model made them on its own size grid, colour-matches them to the source
(`frames.match_colors`, as chained segments are) and puts the source's frames before them, at the source's fps.
The sound goes the same way: the source's own samples up to the seam, unchanged (sample-exact where the source
keeps them losslessly, as a PNG folder's audio.wav does; an MP4's AAC is decoded), then the continuation's sound
from the end of its first frame on. Where only one side has sound the other is silence.

The output's metadata keeps the continuation's request as `request` (so `video-gen generate --from OUTPUT`
makes the continuation again, exactly) and the source under `source` (path, SHA-256, frames, fps, size, its
job in the history when it has one); the history's row of the job carries the same `source` in its info,
which links the two jobs (`extensions_of`).

Any family whose spec takes a picture can continue a video from its last frame. A family that can condition
on several frames (LTX's keyframes) would continue from the last few: `conditioning_frames` is the seam where
such a family says how many it takes; every family on main takes one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import video_io
from .audio import Sound, sample_at, silence
from .errors import InvalidRequest, VideoGenError, first_line
from .frames import channel_stats, match_colors
from .request import FIELD, LIMITS, GenerationRequest
from .results import model_defaults, plan_job_length

# A video of one frame is a picture (generate from it instead); two frames give the colours to match.
MIN_SOURCE_FRAMES = 2
# Every source frame is held in memory and written again: 2000 frames is 83 s at 24 fps (smoothing's limit).
MAX_SOURCE_FRAMES = 2000
MAX_SOURCE_SIDE = 4096
# Settings of the source that do not carry over to its continuation: its own picture(s), length, seed, loop
# and file name. The seed is drawn afresh (or given): the same seed would repeat the source's noise.
NOT_CARRIED = ("image", "last_image", "keyframes", "num_frames", "seed", "loop", "output_path")
HISTORY_LOOKUP = 500  # newest finished jobs searched for the source's own job


@dataclass(frozen=True)
class SourceVideo:
    """A video to continue, decoded and checked."""

    path: Path
    frames: np.ndarray  # uint8 (F, H, W, 3)
    fps: float
    sha256: str
    metadata: dict[str, Any] | None  # what this app stored in it, if anything
    request: GenerationRequest | None  # its settings, when it was made here
    sound: Sound | None = None  # its sound (an audio stream, or audio.wav in a frames folder)

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])


def read_source(path: str | os.PathLike | None) -> SourceVideo:
    """Decode the video to continue; InvalidRequest("video", …) in one line for anything unusable."""
    if path is None or str(path).strip() == "":
        raise InvalidRequest("video", "missing: give the video to continue (MP4, WebM, MOV, GIF, a PNG-frames folder)")
    path = Path(path)
    name = path.name
    if not path.exists():
        raise InvalidRequest("video", f"file not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise InvalidRequest("video", f"the file is empty (0 bytes): {name}")
    try:
        frames, info = video_io.read_video(path)
    except FileNotFoundError:  # a folder without frame_*.png
        raise InvalidRequest("video", f"{name} has no frames (a folder of frames needs frame_00000.png, …)") from None
    except (VideoGenError, OSError, ValueError) as error:
        text = str(error)
        if "no video stream" in text and "Audio:" in text:
            raise InvalidRequest("video", f"{name} is audio only (no picture to continue); give a video") from None
        if "no video stream" in text:
            raise InvalidRequest("video", f"not a video this app can read (MP4, WebM, MOV, GIF, …): {name}") from None
        raise InvalidRequest("video", f"{name} could not be decoded: {first_line(error)}") from None
    if len(frames) == 0:
        raise InvalidRequest("video", f"{name} has no frames")
    if len(frames) < MIN_SOURCE_FRAMES:
        raise InvalidRequest("video", f"{name} has {len(frames)} frame; at least {MIN_SOURCE_FRAMES} are needed "
                                      f"(for a single picture, use generate)")
    if len(frames) > MAX_SOURCE_FRAMES:
        raise InvalidRequest("video", f"{name} has {len(frames)} frames; at most {MAX_SOURCE_FRAMES} can be continued")
    if max(info.width, info.height) > MAX_SOURCE_SIDE:
        raise InvalidRequest("video", f"{name} is {info.width}x{info.height}; at most {MAX_SOURCE_SIDE} px a side")
    metadata = _metadata(path)
    fps = float(info.fps) if info.fps and math.isfinite(info.fps) and info.fps > 0 else 0.0
    if not fps and metadata and isinstance(metadata.get("fps"), (int, float)) and metadata["fps"] > 0:
        fps = float(metadata["fps"])
    if not fps:
        raise InvalidRequest("video", f"{name} has no frame rate this app can read")
    try:
        sound = Sound.read(path)
    except (VideoGenError, OSError, ValueError) as error:
        raise InvalidRequest("video", f"the sound of {name} could not be decoded: {first_line(error)}") from None
    return SourceVideo(path=path, frames=frames, fps=fps, sha256=_sha256(path), metadata=metadata,
                       request=_stored_request(metadata), sound=sound)


def conditioning_frames(spec) -> int:
    """How many of the source's last frames a family continues from. The seam for families that condition on
    several frames (a spec field such as LTX's keyframes); every family on main takes one picture."""
    return int(getattr(spec, "continue_frames", 1) or 1)


def grid_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    """The size nearest `width`x`height` that a model with sizes in multiples of `multiple` can make, within
    the request's limits (the aspect ratio is kept when a side has to shrink or grow)."""
    low, high = int(LIMITS["width"][0]), int(LIMITS["width"][1])
    scale = 1.0
    if max(width, height) > high:
        scale = high / max(width, height)
    if min(width, height) * scale < low:
        scale = low / min(width, height)

    def snap(side: float) -> int:
        smallest, largest = -(-low // multiple) * multiple, high // multiple * multiple
        return int(min(largest, max(smallest, round(side / multiple) * multiple)))

    return snap(width * scale), snap(height * scale)


def base_request(source: SourceVideo, overrides: dict[str, Any]) -> GenerationRequest:
    """The continuation's settings before the model's defaults: the source's own (when it was made here; all but
    NOT_CARRIED), then `overrides` (the request fields the user gave)."""
    values = source.request.to_dict() if source.request is not None else {}
    for name in NOT_CARRIED:
        values.pop(name, None)
    unknown = set(overrides) - set(FIELD)
    if unknown:
        raise InvalidRequest(sorted(unknown)[0], "not a request field")
    values.update({name: value for name, value in overrides.items() if value is not None})
    return GenerationRequest.from_dict(values)


def plan_extension(generator, video, *, frames: int | None = None, duration: float | None = None,
                   overrides: dict[str, Any] | None = None, source: SourceVideo | None = None):
    """The continuation's job as the engine plans it (model, defaults, length), without its picture and without
    writing anything: what its time estimate is made from (the page's Continue tab). Raises InvalidRequest."""
    request, spec, frames, source, notes = _continuation(generator, video, frames, duration, overrides, source)
    return generator.plan_job(request)


def prepare_extension(generator, video, *, frames: int | None = None, duration: float | None = None,
                      overrides: dict[str, Any] | None = None, source: SourceVideo | None = None):
    """The engine's `PreparedJob` that continues `video` by `frames` new frames (or `duration` seconds at the
    source's fps; neither: one generation of the model). `overrides`: request fields to change (model, seed,
    steps, output_path, …). Checks everything before any work; raises InvalidRequest naming the input."""
    request, spec, frames, source, notes = _continuation(generator, video, frames, duration, overrides, source)
    # 4. The picture: the source's last frame, kept losslessly where the history keeps pictures
    start = _keep_last_frame(source, Path(generator.outputs_dir), conditioning_frames(spec))
    request = request.replace(image=str(start))
    if request.output_path is None:
        suffix = video_io.SUFFIXES[request.output_format or "mp4"]
        stem = source.path.stem if source.path.suffix else source.path.name
        request = request.replace(output_path=str(video_io.unique_path(
            Path(generator.outputs_dir) / f"{stem}_extended{suffix}")))
    job = generator.prepare(request)
    finish = Continuation(source, frames, _source_job(generator, source), tuple(notes), generated_fps=request.fps)
    return dataclasses.replace(job, finish=finish, notes=tuple(job.notes) + tuple(notes))


def _continuation(generator, video, frames, duration, overrides, source):
    """The continuation's request (no picture yet), its family's spec, the new frames, the source and the notes."""
    from .families import load_family

    source = source or read_source(video)
    overrides = dict(overrides or {})
    # 1. The model and its family: it must take a picture (the last frame is one)
    request = base_request(source, overrides)
    model = generator.resolve(request.model, request.motion_adapter)
    family = load_family(model.family)
    spec = family.SPEC
    if not spec.takes_image:
        raise InvalidRequest("model", f"{model.name} ({spec.label}) makes videos from text only; continuing a "
                                      f"video needs a model that takes a picture")
    narrow = getattr(family, "model_spec", None)
    if narrow is not None and "control" in narrow(model).controls:  # Wan VACE: its picture is a reference
        raise InvalidRequest("model", f"{model.name} takes its picture as a reference, not as the first frame, so "
                                      f"it cannot continue a video from its last frame; use an image-to-video model")
    if not spec.sound and "audio" not in overrides:  # the source's sound setting means nothing to a silent model
        request = request.replace(audio=None)
    # 2. Rate and size: the source's, on the model's size grid (fitted back when they differ)
    fps = min(int(LIMITS["fps"][1]), max(1, round(source.fps)))
    width, height = grid_size(source.width, source.height, spec.size_multiple)
    notes = []
    if (width, height) != (source.width, source.height):
        notes.append(f"the continuation is made at {width}x{height} ({spec.label} makes sizes in multiples of "
                     f"{spec.size_multiple}) and fitted back to the video's {source.width}x{source.height}")
    if "width" in overrides or "height" in overrides:
        raise InvalidRequest("width", "is the source video's (the continuation is fitted to it); leave it out")
    # 3. Length: new frames, plus the seam frame the model starts from (dropped again)
    if frames is not None and duration is not None:
        raise InvalidRequest("duration", "give frames or duration, not both")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0:
            raise InvalidRequest("duration", f"must be more than 0 seconds, got {duration!r}")
        frames = max(1, round(duration * source.fps))
    if frames is None:
        frames = max(1, int(family.defaults(model)["num_frames"]) - 1)
    most = int(LIMITS["num_frames"][1]) - 1
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= most:
        raise InvalidRequest("frames", f"must be a whole number of new frames from 1 to {most}, got {frames!r}")
    if duration is not None:
        frames = _within_segments(frames, fps, request, spec, model_defaults(family, model), notes)
    # A family that makes only step*k+1 frames (Wan, LTX) makes the next valid count; `join` keeps `frames` of them
    generated = spec.valid_frames(frames + 1) if spec.exact_frames else frames + 1
    request = request.replace(model=request.model or model.name, last_image=None, num_frames=generated, fps=fps,
                              width=width, height=height, loop="none").validate()  # before anything is written
    return request, spec, frames, source, notes


def _within_segments(frames: int, fps: int, request: GenerationRequest, spec, defaults: dict[str, Any],
                     notes: list[str]) -> int:
    """A length in seconds whose last new frame would need a segment of its own (the model starts from the
    source's last frame, so one generation adds one frame less than it makes) is made a frame shorter: issue 29,
    +1 s at 8 fps on a model that makes 8 frames at a time cost two segments, twice the source's own time."""
    def segments(new: int) -> int:
        generated = spec.valid_frames(new + 1) if spec.exact_frames else new + 1
        return plan_job_length(request.replace(num_frames=generated, fps=fps, loop="none",
                                               interpolation=int(request.interpolation or 0)), spec, defaults).segments

    if frames > 1 and segments(frames) > segments(frames - 1):
        notes.append(f"{frames - 1} new frames instead of {frames}: the model makes {defaults['num_frames']} at a "
                     f"time, one of them the video's last, and one frame more would cost a whole generation more")
        return frames - 1
    return frames


def extend(generator, video, *, frames: int | None = None, duration: float | None = None,
           overrides: dict[str, Any] | None = None, on_event=None, preview_every: int = 0):
    """Continue `video` (see `prepare_extension`) and return the engine's `GenerationResult`: its `path` is
    the one file with the source's frames and then the continuation."""
    job = prepare_extension(generator, video, frames=frames, duration=duration, overrides=overrides)
    return generator.generate(job, on_event=on_event, preview_every=preview_every)


@dataclass(frozen=True)
class Continuation:
    """The `finish` step of an extension job: the source's frames, then the continuation fitted to them."""

    source: SourceVideo
    new_frames: int
    source_job: int | None = None
    notes: tuple[str, ...] = ()
    generated_fps: float = 0.0  # the rate the continuation was made at (the source's, rounded)

    def __call__(self, generated: np.ndarray, sound: Sound | None = None):
        """(frames, fps, what they were added to, sound) to write."""
        frames = join(self.source.frames, generated, self.new_frames)
        joined = join_sound(self.source, sound, self.generated_fps or self.source.fps, len(frames))
        return frames, self.source.fps, self.describe(generated), joined

    def describe(self, generated: np.ndarray) -> dict[str, Any]:
        source = self.source
        return {"kind": "extend", "path": str(source.path.resolve()), "sha256": source.sha256,
                "frames": int(len(source.frames)), "fps": source.fps, "width": source.width, "height": source.height,
                "job": self.source_job, "continuation_frames": self.new_frames,
                "generated_size": f"{generated.shape[2]}x{generated.shape[1]}",
                "fitted": (generated.shape[2], generated.shape[1]) != (source.width, source.height),
                "request": source.request.to_dict() if source.request is not None else None,
                "notes": list(self.notes)}


def join(source: np.ndarray, generated: np.ndarray, new_frames: int) -> np.ndarray:
    """`source`, then `generated` without its first frame (the seam: the model starts from the source's last
    frame), at most `new_frames` of it, fitted to the source's size and colour-matched to the source."""
    continuation = generated[1:1 + new_frames]
    height, width = source.shape[1:3]
    if continuation.shape[1:3] != (height, width):
        continuation = fit_frames(continuation, width, height)
    continuation = match_colors(continuation, *channel_stats(source))
    return np.concatenate([source, continuation])


def join_sound(source: SourceVideo, generated: Sound | None, generated_fps: float, total_frames: int) -> Sound | None:
    """The source's sound for its frames (its samples as they are), then `generated`'s from its second frame on
    (the first is the seam), `total_frames` at the source's fps in all; None when neither has sound."""
    if source.sound is None and generated is None:
        return None
    rate = (generated or source.sound).sample_rate
    count = len(source.frames)
    seam, end = sample_at(count, source.fps, rate), sample_at(total_frames, source.fps, rate)
    if source.sound is not None:
        head = source.sound.resampled(rate).frames(0, count, source.fps)
    else:
        head = silence(seam, rate, generated.channels)
    if generated is not None:
        tail = generated.frames(1, 1 + total_frames - count, generated_fps)
    else:
        tail = silence(end - seam, rate, head.channels)
    return head.then(tail).fitted(total_frames, source.fps)


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize every frame to `width`x`height` (Lanczos; the two sizes differ by at most a grid step in shape)."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.LANCZOS))
                     for frame in frames])


def extensions_of(history, job_id: int) -> list[int]:
    """The jobs in `history` that continued the output of job `job_id` (their info's `source.job`)."""
    return [entry.id for entry in history.entries(newest_first=False)
            if isinstance((entry.info or {}).get("source"), dict) and entry.info["source"].get("job") == job_id]


# ---- internals ----------------------------------------------------------------------------------------
def _metadata(path: Path) -> dict[str, Any] | None:
    try:
        return video_io.read_metadata(path)
    except (VideoGenError, OSError, ValueError):
        return None


def _stored_request(metadata: dict[str, Any] | None) -> GenerationRequest | None:
    stored = (metadata or {}).get("request")
    if not isinstance(stored, dict):
        return None
    try:
        return GenerationRequest.from_dict(stored)
    except InvalidRequest:  # settings of another version: continue with the model's defaults
        return None


def _sha256(path: Path) -> str:
    """The file's SHA-256 (a frames folder: of its frames' bytes, in order)."""
    digest = hashlib.sha256()
    files = sorted(path.glob("frame_*.png")) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _keep_last_frame(source: SourceVideo, outputs_dir: Path, count: int) -> Path:
    """The source's last frame as a PNG in the outputs folder's `.inputs/`, named by its content, so the job
    (and `--from`) still has its picture after the source is gone. `count` > 1 is for families that take
    several frames; none does yet, so the last one is the picture."""
    from PIL import Image

    from .history import INPUTS_DIRNAME

    frame = np.ascontiguousarray(source.frames[-1])
    name = f"lastframe-{hashlib.sha256(frame.tobytes()).hexdigest()[:24]}.png"
    target = outputs_dir / INPUTS_DIRNAME / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with video_io.atomic_path(target, suffix=".png") as temporary:
            Image.fromarray(frame).save(temporary, format="PNG")
    return target


def _source_job(generator, source: SourceVideo) -> int | None:
    """The history's job whose output is the source: the same path, else the same bytes (a copy of an output, as
    the page hands its uploads and results to handlers)."""
    wanted, size = source.path.resolve(), _size(source.path)
    try:
        entries = generator.history.entries(status="done", limit=HISTORY_LOOKUP)
    except (OSError, VideoGenError):
        return None
    for entry in entries:
        if entry.output and Path(entry.output).resolve() == wanted:
            return entry.id
    for entry in entries:  # sizes first: a SHA-256 only of the files that could be the same
        output = Path(entry.output) if entry.output else None
        if output is not None and output.exists() and _size(output) == size and _sha256(output) == source.sha256:
            return entry.id
    return None


def _size(path: Path) -> int:
    files = sorted(path.glob("frame_*.png")) if path.is_dir() else [path]
    return sum(file.stat().st_size for file in files)


__all__ = ["SourceVideo", "Continuation", "read_source", "prepare_extension", "plan_extension", "extend", "join",
           "join_sound", "fit_frames",
           "grid_size", "base_request", "extensions_of", "conditioning_frames", "MIN_SOURCE_FRAMES"]
