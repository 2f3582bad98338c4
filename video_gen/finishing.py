"""Finishing (issue 27): the prompt enhancer before a job's video model loads, the upscaler after its frames are
made, and both on their own (`video-gen prompt`, `video-gen upscale`, the page's Enhance button and Finish tab).

- `prepare(job, catalog)`: a prepared job's upscaler and enhancer found and checked before anything loads
  (installed, an upscaler at all, a pickle only with --allow-pickle, the output size, a picture to look at).
- `enhance_in_job` / `write_upscaled`: the two stages `running.JobRunner` runs; the enhancer is unloaded when its
  prompt is written, before the video model loads (and the resident video model goes first when both do not fit:
  `memory.room_for`), and upscaled frames go to the video writer one at a time, so that Cancel stops within a
  frame and nothing partial is left (the writer's temporary file goes with it).
- `upscale_video(generator, video, upscaler)` and `enhance_prompt(generator, picture, prompt)`: the same work for
  any video or picture, in the engine's one-at-a-time turn (`Generator.job_turn`: the queue, Cancel).
- The source's sound is copied into an upscaled video with the bundled ffmpeg (`_copy_audio`: its stream as it is
  where the container takes the codec, never decoded to PCM as video_gen/audio.py does with a model's sound), or
  beside PNG frames as the same `audio.wav` (`audio.WAV_NAME`) that generated videos keep.

The same instruction and tidy-up serve every door (`enhance.rewrite`), and the device and dtype are chosen the same
way (the generator's device), so `video-gen prompt` prints what `generate --enhance-prompt` uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import enhance, upscale, video_io
from .audio import WAV_NAME
from .checkpoints import file_sha256
from .errors import InvalidRequest, VideoGenError
from .events import ENHANCING, UPSCALING
from .memory import finishing as memory
from .request import FORMATS, GenerationRequest, format_for_path
from .results import PreparedJob

# A source video is decoded into memory whole (its upscaled frames are not: they stream to the writer).
MAX_SOURCE_BYTES = 4 * 2**30
# Audio codecs each container takes as they are; others are encoded again (AAC for MP4, Opus for WebM).
AUDIO_COPIES = {"mp4": ("aac", "mp3", "alac"), "webm": ("opus", "vorbis")}
AUDIO_ENCODERS = {"mp4": ["-c:a", "aac", "-b:a", "192k"], "webm": ["-c:a", "libopus", "-b:a", "160k"]}


# ---- a job's stages --------------------------------------------------------------------------------------
def prepare(job: PreparedJob, catalog, *, allow_pickle: bool = False) -> PreparedJob:
    """`job` with its upscaler and prompt enhancer found and described, or a one-line refusal (nothing loads)."""
    request, changes = job.request, {}
    if request.upscaler:
        info = catalog.resolve_upscaler(request.upscaler, allow_pickle=allow_pickle)
        upscale.check_output_size(request.width, request.height, info.scale)
        changes["upscaler"] = info
    if request.enhance_prompt or request.enhancer:
        enhance.style_for(job.spec.name)  # a family without a prompt is refused in one line
        if not request.image:
            raise InvalidRequest("enhance_prompt", "the prompt enhancer rewrites the prompt from the picture: give "
                                                   "one, or write the prompt yourself")
        changes["enhancer"] = catalog.resolve_enhancer(request.enhancer, allow_pickle=allow_pickle)
    return dataclasses.replace(job, **changes) if changes else job


def enhance_in_job(job: PreparedJob, device: str, running, make_room: Callable[[], None]
                   ) -> tuple[GenerationRequest, dict[str, Any]]:
    """The job's prompt rewritten by its enhancer: the request that makes the frames (the enhanced prompt, nothing
    left to enhance) and what the metadata and the history keep of it (both prompts)."""
    request, info = job.request, job.enhancer
    style = enhance.style_for(job.spec.name)
    running.stage(ENHANCING, f"enhancing the prompt with {info.name}")
    text = rewrite(info, request.image, request.prompt, style, device, running.check_cancelled, make_room)
    entry = {"user_prompt": request.prompt, "enhanced_prompt": text, "enhancer": info.name,
             "enhancer_model": info.architecture, "style": style.name, "device": device}
    return request.replace(prompt=text, enhance_prompt=False, enhancer=None), entry


def rewrite(info: enhance.EnhancerInfo, image, prompt: str, style: enhance.Style, device: str,
            check_cancel: Callable[[], None], make_room: Callable[[], None]) -> str:
    """Load the enhancer (first unloading the resident video model when both do not fit), rewrite, unload."""
    import torch

    element = torch.empty((), dtype=enhance.dtype_for(device)).element_size()
    if not memory.room_for(device, memory.enhancer_bytes(info.weight_bytes, element)):
        make_room()
    return enhance.enhance(info.path, image, prompt, style, device=device, allow_pickle=info.allow_pickle,
                           check_cancel=check_cancel)


def write_upscaled(frames, info: upscale.UpscalerInfo, target: Path, *, fps: float, format: str, crf: int,
                   metadata: dict, device: str, running, make_room: Callable[[], None],
                   audio_from: Path | None = None, audio=None) -> Path:
    """Upscale `frames` (uint8 (F, H, W, 3)) with the upscaler on `device` and write them to `target` as they come
    (progress per frame, Cancel within a frame, nothing left behind on failure); the sound of a job (`audio`, an
    `audio.Sound` as long as the video) or of a video file (`audio_from`) goes into the video too. Tiles are planned from the memory left beside the resident model; when not even
    the smallest tile fits, the resident model is unloaded first."""
    model = upscale.load_upscaler(info.path, allow_pickle=info.allow_pickle)
    dtype = upscale.run_dtype(model.info, device)
    model.to(device, dtype)
    height, width = frames[0].shape[:2]
    weights = sum(parameter.numel() * parameter.element_size() for parameter in model.descriptor.model.parameters())
    frame_bytes = width * height * 3 * info.scale * info.scale
    per_pixel = (upscale.measure_bytes_per_pixel(model, device, dtype) if device.startswith("cuda")
                 else upscale.bytes_per_pixel(model.info, dtype))
    smallest = (upscale.MIN_TILE + 2 * upscale.TILE_OVERLAP) ** 2 * per_pixel
    budget = memory.upscale_budget(device, weights, frame_bytes)
    if budget < smallest:
        make_room()
        budget = memory.upscale_budget(device, weights, frame_bytes)
    tile = upscale.plan_tile(width, height, per_pixel=per_pixel, budget_bytes=budget, multiple=info.size_multiple,
                             tiling=info.tiling)
    if isinstance(metadata.get("upscaled"), dict):  # how it ran (the tile is halved on out-of-memory from here)
        metadata["upscaled"]["plan"] = {"tile": tile, "bytes_per_pixel": per_pixel, "budget_bytes": budget}
    running.stage(UPSCALING, f"upscaling {len(frames)} frames {info.scale}x with {info.name}"
                             + (f" in tiles of {tile} px" if tile else ""))
    stream = upscale.iter_upscaled(model, frames, tile=tile, per_pixel=per_pixel,
                                   on_frame=lambda done, total: running.step(UPSCALING, done, total),
                                   check_cancel=running.check_cancelled)
    codec = audio_codec(audio_from) if audio_from is not None else None
    if codec is None or format == "gif":
        return video_io.write_video(stream, target, fps=fps, format=format, crf=crf, metadata=metadata, audio=audio)
    if format == "png":
        path = video_io.write_video(stream, target, fps=fps, format=format, crf=crf, metadata=metadata)
        with video_io.atomic_path(path / WAV_NAME, suffix=".wav") as wav:
            video_io.run_ffmpeg(["-y", "-i", video_io.ffmpeg_path(audio_from), "-map", "0:a:0", "-c:a", "pcm_s16le",
                                 video_io.ffmpeg_path(wav)], f"copying the sound of {audio_from.name}")
        return path
    with video_io.atomic_path(target, suffix=video_io.SUFFIXES[format]) as muxed:
        silent = muxed.with_name(f"{muxed.stem}.video{muxed.suffix}")
        try:
            video_io.write_video(stream, silent, fps=fps, format=format, crf=crf, metadata=metadata)
            _copy_audio(silent, audio_from, muxed, format, codec)
        finally:
            silent.unlink(missing_ok=True)
    return target


def upscaled_entry(info: upscale.UpscalerInfo, width: int, height: int, device: str) -> dict[str, Any]:
    """What the metadata keeps of an upscale: the upscaler (name, SHA-256, architecture, scale) and the new size."""
    return {"upscaler": info.name, "upscaler_sha256": file_sha256(info.path), "architecture": info.architecture,
            "scale": info.scale, "width": width * info.scale, "height": height * info.scale,
            "source_width": width, "source_height": height, "device": device,
            "dtype": str(upscale.run_dtype(info, device)).removeprefix("torch.")}


# ---- sound ---------------------------------------------------------------------------------------------
_AUDIO_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: Audio: (\w+)", re.MULTILINE)


def audio_codec(path: Path) -> str | None:
    """The codec of a video file's first audio stream ("aac", "opus", …), None without one (or for PNG frames)."""
    if Path(path).is_dir():
        return None
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", video_io.ffmpeg_path(path)]
    log = subprocess.run(command, capture_output=True).stderr.decode("utf-8", "replace")
    match = _AUDIO_STREAM.search(log)
    return match.group(1) if match else None


def _copy_audio(video: Path, source: Path, target: Path, format: str, codec: str) -> None:
    """`video`'s frames (copied, not encoded again) with `source`'s first audio stream, into `target`."""
    audio = ["-c:a", "copy"] if codec in AUDIO_COPIES[format] else AUDIO_ENCODERS[format]
    options = ["-movflags", "+faststart"] if format == "mp4" else []
    video_io.run_ffmpeg(["-y", "-i", video_io.ffmpeg_path(video), "-i", video_io.ffmpeg_path(source), "-map", "0:v:0",
                         "-map", "1:a:0", "-c:v", "copy", *audio, "-map_metadata", "0", *options, "-f", format,
                         video_io.ffmpeg_path(target)], f"copying the sound of {source.name}")


# ---- on their own: any video, any picture -------------------------------------------------------------------
@dataclass(frozen=True)
class UpscaledVideo:
    path: Path
    frames: int
    fps: float
    width: int
    height: int
    elapsed_s: float
    metadata: dict


def check_source(video) -> video_io.VideoInfo:
    """A video this app can read and hold, or one line naming it (before anything loads)."""
    if not video:
        raise InvalidRequest("video", "missing: give a video to upscale")
    path = Path(video)
    if not path.exists():
        raise InvalidRequest("video", f"not found: {path}")
    try:
        info = video_io.probe_video(path)
    except (VideoGenError, OSError, ValueError, RuntimeError):
        raise InvalidRequest("video", f"{path.name} is not a video this app can read (MP4, WebM, MOV, GIF, a "
                                      "folder of PNG frames)") from None
    if info.frames < 1 or not info.fps or not math.isfinite(info.fps):
        raise InvalidRequest("video", f"{path.name} has no frames or no frame rate this app can read")
    if info.frames * info.width * info.height * 3 > MAX_SOURCE_BYTES:
        raise InvalidRequest("video", f"{path.name} has {info.frames} frames of {info.width}x{info.height}, more "
                                      f"than this app holds in memory ({MAX_SOURCE_BYTES // 2**30} GB); cut it first")
    return info


def output_for(video: Path, scale: int, outputs_dir: Path, output_path: str | None,
               output_format: str | None) -> tuple[Path, str]:
    """Where an upscaled video goes and its format: --output (its suffix says the format), else
    outputs/<name>_x<scale>.mp4 (never over an existing file)."""
    if output_format is not None and output_format not in FORMATS:
        raise InvalidRequest("output_format", f"must be one of {', '.join(FORMATS)}, got {output_format!r}")
    implied = format_for_path(output_path)
    if implied and output_format and implied != output_format:
        raise InvalidRequest("output_path", f"suffix says {implied} but output_format is {output_format}; make "
                                            "them agree")
    format = output_format or implied or "mp4"
    if output_path:
        target = Path(output_path)
    else:  # a free name whose settings file (<name>.json, shared by every format) is free too
        stem, number = (video.stem if video.suffix else video.name) + f"_x{scale}", 0
        target = Path(outputs_dir) / f"{stem}{video_io.SUFFIXES[format]}"
        while target.exists() or video_io.sidecar_path(target).exists():
            number += 1
            target = Path(outputs_dir) / f"{stem}_{number}{video_io.SUFFIXES[format]}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidRequest("output_path", f"cannot create the folder {target.parent}: {error.strerror}") from None
    return target, format


def source_sha256(path: Path) -> str:
    """The file's SHA-256; a folder of PNG frames: one over its frames' (name and hash, in order)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for frame in sorted(path.glob("frame_*.png")):
        digest.update(f"{frame.name}\0{file_sha256(frame)}\n".encode())
    return digest.hexdigest()


def upscale_video(generator, video, upscaler: str, *, output_path: str | None = None,
                  output_format: str | None = None, crf: int = 18, on_event=None, cancel=None,
                  max_side: int = upscale.MAX_OUTPUT_SIDE) -> UpscaledVideo:
    """Upscale every frame of any video with an installed upscaler (or an upscaler file's path), keeping its frame
    count, frame rate and sound, in the engine's turn (`generator.job_turn`: `generator.cancel()` or the `cancel`
    event stops it within a frame). The metadata keeps the source's own (a video made here keeps its settings)
    and an `upscaled` entry: the upscaler's name, SHA-256 and scale and the source's hash."""
    started = time.perf_counter()
    # 1. Check inputs: the upscaler, the video, the size, the output, before anything loads
    info = generator.catalog.resolve_upscaler(upscaler, allow_pickle=generator.allow_pickle)
    source = Path(video)
    probe = check_source(source)
    upscale.check_output_size(probe.width, probe.height, info.scale, max_side=max_side, name=source.name)
    target, format = output_for(source, info.scale, generator.outputs_dir, output_path, output_format)
    # 2. Wait for the engine's turn, then decode, upscale and write
    with generator.job_turn(on_event, cancel) as running:
        running.stage(UPSCALING, f"decoding {source.name}")
        frames, _ = video_io.read_video(source)
        metadata = dict(_source_metadata(source) or {})
        entry = {**upscaled_entry(info, probe.width, probe.height, generator.device), "source": source.name,
                 "source_sha256": source_sha256(source), "frames": len(frames)}
        if "upscaled" in metadata:  # upscaling an upscaled video: keep the chain
            entry["previous"] = metadata["upscaled"]
        metadata.update(app=metadata.get("app", "video-gen"), fps=probe.fps, upscaled=entry)
        path = write_upscaled(frames, info, target, fps=probe.fps, format=format, crf=crf, metadata=metadata,
                              device=generator.device, running=running, make_room=generator.runner.resident.drop,
                              audio_from=source)
        video_io.write_sidecar(path, metadata)
        running.finish()
    return UpscaledVideo(path, len(frames), probe.fps, entry["width"], entry["height"],
                         time.perf_counter() - started, metadata)


def _source_metadata(path: Path) -> dict | None:
    try:
        return video_io.read_metadata(path)
    except (VideoGenError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class EnhancedPrompt:
    text: str
    style: str
    enhancer: str


def enhance_prompt(generator, image, prompt: str, *, enhancer: str | None = None, model: str | None = None,
                   style: str | None = None, on_event=None, cancel=None) -> EnhancedPrompt:
    """`prompt` rewritten from the picture by an installed enhancer (None: the only one), in the style of `model`'s
    family (else `style`, else "long"), on the generator's device, in the engine's turn; what
    `generate --enhance-prompt` would use for the same picture, prompt and model."""
    # 1. Check inputs before anything loads
    info = generator.catalog.resolve_enhancer(enhancer, allow_pickle=generator.allow_pickle)
    chosen = enhance.style_for(generator.resolve(model).family if model else (style or "long"))
    enhance.open_picture(image)  # one line when it is not a picture
    if not isinstance(prompt, str):
        raise InvalidRequest("prompt", f"must be text, got {prompt!r}")
    # 2. The turn: rewrite, then unload
    with generator.job_turn(on_event, cancel) as running:
        running.stage(ENHANCING, f"enhancing the prompt with {info.name}")
        text = rewrite(info, image, prompt, chosen, generator.device, running.check_cancelled,
                       generator.runner.resident.drop)
        running.finish()
    return EnhancedPrompt(text, chosen.name, info.name)


__all__ = ["prepare", "enhance_in_job", "write_upscaled", "upscaled_entry", "audio_codec", "upscale_video",
           "enhance_prompt", "check_source", "UpscaledVideo", "EnhancedPrompt", "MAX_SOURCE_BYTES"]
