"""Smooth and loop any video (no model needed), and read the settings stored in a video made here.

Pure functions over files (no gradio, no torch at import): `check_video` and `plan_smooth` validate
before any work, `render_smooth` decodes, loops, interpolates and writes atomically, `stored_request`
reads the `GenerationRequest` that the engine wrote into a video (or its `.json`), which smoothing
carries over into its result. The page's "Smooth / loop a video" tab and "Load settings"
(`web/smooth_tab.py`, `web/generate_tab.py`) wire them to buttons.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import video_io
from .audio import Sound
from .errors import InvalidRequest, VideoGenError
from .frames import apply_loop
from .interpolate import MAX_FACTOR
from .planner import crossfade_overlap
from .request import GenerationRequest

# Input limits: 2000 frames is 83 s at 24 fps; 2048 px is request.LIMITS' largest side.
MAX_FRAMES = 2000
MAX_SIDE = 2048
# Every decoded and synthesised frame is held in memory at once (interpolate() returns one array):
# 4 GiB is 2300 frames of 1024x576, well within the 128 GiB machines and most desktops.
MAX_OUTPUT_BYTES = 4 * 2**30
TARGET_FPS_CHOICES = (24, 30, 48, 60)
KEEP_FPS = 0  # "keep the frame rate": loop only
LOOP_LABELS = {"none": "no loop", "pingpong": "ping-pong", "crossfade": "seamless crossfade"}

ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class SmoothPlan:
    """What smoothing a video will do: its source, the interpolation factor and the loop."""

    source_frames: int
    source_fps: float
    width: int
    height: int
    fps: float  # the result's rate: source_fps * factor
    factor: int  # 1: no interpolation
    loop: str
    loop_frames: int  # frames after looping, before interpolation
    frames: int  # the result's frame count

    def describe(self) -> str:
        parts = [f"{self.source_frames} frames at {_rate(self.source_fps)} fps → {self.frames} frames at "
                 f"{_rate(self.fps)} fps"]
        if self.factor > 1:
            parts.append(f"interpolated {self.factor}×")
        if self.loop != "none":
            parts.append(f"{LOOP_LABELS[self.loop]} loop")
        return ", ".join(parts)

    def stem_suffix(self) -> str:
        parts = ([f"smooth{_rate(self.fps)}"] if self.factor > 1 else []) + ([self.loop] if self.loop != "none" else [])
        return "_" + "_".join(parts)


def reachable_rates(fps: float) -> list[tuple[str, float]]:
    """The rates smoothing can make from a video at `fps`, as (label, rate): 2-4x its own (interpolation's
    factors), then "keep" (0: a loop only)."""
    rates = [(f"{_rate(fps * factor)} fps ({factor}×)", _fps_value(fps * factor))
             for factor in range(2, MAX_FACTOR + 1)]
    return rates + [("keep (loop only)", KEEP_FPS)]


def check_video(path: str | os.PathLike | None) -> video_io.VideoInfo:
    """The video's description, or InvalidRequest("video", …) in one line if it is not one we can smooth."""
    if not path:
        raise InvalidRequest("video", "missing: upload a video, or press “Use the last result”")
    name = Path(path).name
    try:
        info = video_io.probe_video(path)
    except (VideoGenError, OSError, ValueError, RuntimeError):
        raise InvalidRequest("video", f"not a video this app can read (MP4, WebM, MOV, GIF, …): {name}") from None
    if info.frames < 2:
        raise InvalidRequest("video", f"{name} has {info.frames} frame(s); smoothing needs at least 2")
    if info.frames > MAX_FRAMES:
        raise InvalidRequest("video", f"{name} has {info.frames} frames; at most {MAX_FRAMES} can be smoothed")
    if max(info.width, info.height) > MAX_SIDE:
        raise InvalidRequest("video", f"{name} is {info.width}x{info.height}; at most {MAX_SIDE} px a side")
    if not info.fps or not math.isfinite(info.fps) or info.fps <= 0:
        raise InvalidRequest("video", f"{name} has no frame rate this app can read")
    return info


def plan_smooth(info: video_io.VideoInfo, target_fps: float | None, loop: str) -> SmoothPlan:
    """The factor (smallest of 2-4 reaching `target_fps`) and loop for `info`; InvalidRequest when impossible."""
    if loop not in LOOP_LABELS:
        raise InvalidRequest("loop", f"must be one of {', '.join(LOOP_LABELS)}, got {loop!r}")
    try:
        target = float(target_fps or KEEP_FPS)
    except (TypeError, ValueError):
        raise InvalidRequest("fps", f"must be a frame rate such as 24, got {target_fps!r}") from None
    source = float(info.fps)
    if target == KEEP_FPS or target <= source * (1 + 1e-6):
        factor = 1
    else:
        factor = math.ceil(target / source - 1e-6)
        if factor > MAX_FACTOR:
            reachable = ", ".join(_rate(source * f) for f in range(2, MAX_FACTOR + 1))
            raise InvalidRequest("fps", f"{_rate(target)} fps is more than {MAX_FACTOR}× this video's "
                                        f"{_rate(source)} fps; interpolation makes 2–{MAX_FACTOR}× only "
                                        f"({reachable} fps)")
    if factor == 1 and loop == "none":
        raise InvalidRequest("fps", f"the video already plays at {_rate(source)} fps; choose a higher rate "
                                    f"(up to {_rate(source * MAX_FACTOR)} fps) or a loop")
    frames = info.frames
    if loop != "none" and frames < 3:
        raise InvalidRequest("loop", f"the video has {frames} frames; a loop needs at least 3")
    if loop == "pingpong":
        loop_frames = 2 * frames - 2
    elif loop == "crossfade":
        loop_frames = crossfade_length(frames)
    else:
        loop_frames = frames
    if loop == "none":
        out = (loop_frames - 1) * factor + 1
    else:  # the wrap from the last frame back to the first is interpolated too: seamless at the new rate
        out = loop_frames * factor
    if out * info.width * info.height * 3 > MAX_OUTPUT_BYTES:
        raise InvalidRequest("video", f"the result would be {out} frames of {info.width}x{info.height}, more "
                                      f"than this app holds in memory; use a shorter or smaller video")
    return SmoothPlan(frames, source, info.width, info.height, source * factor, factor, loop, loop_frames, out)


def crossfade_length(frames: int) -> int:
    """The longest seamless loop `frames` frames make: L frames plus the overlap(L) blended into the start."""
    length = frames
    while length > 3 and length + crossfade_overlap(length) > frames:
        length -= 1
    return length


def render_smooth(path, plan: SmoothPlan, target: Path, *, metadata: dict | None = None,
                  on_progress: ProgressCallback | None = None) -> Path:
    """Decode `path`, loop and interpolate it as `plan` says, and write an MP4 to `target` atomically."""
    from .interpolate import interpolate

    report = on_progress or (lambda fraction, what: None)
    report(0.0, "decoding the video")
    frames, _ = video_io.read_video(path)
    frames = frames[:plan.source_frames]
    # 1. The loop, at the source rate (apply_loop is the engine's own).
    if plan.loop != "none":
        frames = apply_loop(frames, plan.loop, plan.loop_frames)
    # 2. Interpolation; a loop's wrap-around pair too, so that the loop stays seamless.
    if plan.factor > 1:
        pairs = np.concatenate([frames, frames[:1]]) if plan.loop != "none" else frames
        frames = interpolate(pairs, plan.factor, on_progress=lambda done, total: report(
            0.1 + 0.8 * done / total, f"interpolating frames · {done} of {total}"))
        if plan.loop != "none":
            frames = frames[:-1]
    # 3. The source's sound from its start, cut or padded with silence to the new length: interpolation adds frames
    # between frames, so no sample moves (a loop plays it once)
    sound = Sound.read(path)
    if sound is not None:
        sound = sound.fitted(len(frames), _fps_value(plan.fps))
    # 4. Write under a temporary name, then move into place (write_video does that).
    report(0.9, "writing the video")
    return video_io.write_video(frames, target, fps=_fps_value(plan.fps), format="mp4", crf=18, metadata=metadata,
                                audio=sound)


def smooth_metadata(source_metadata: dict | None, plan: SmoothPlan, source_name: str) -> dict[str, Any]:
    """The source's metadata (if any) plus a `postprocess` entry; `fps` describes the new file."""
    metadata = dict(source_metadata or {})
    entry = {"fps": _fps_value(plan.fps), "factor": plan.factor, "loop": plan.loop, "source": source_name,
             "source_fps": _fps_value(plan.source_fps), "frames": plan.frames}
    if "postprocess" in metadata:  # smoothing a smoothed video: keep the chain
        entry["previous"] = metadata["postprocess"]
    metadata["postprocess"] = entry
    metadata["fps"] = _fps_value(plan.fps)
    metadata.setdefault("app", "video-gen")
    return metadata


def source_metadata(path) -> dict | None:
    try:
        return video_io.read_metadata(path)
    except (VideoGenError, OSError, ValueError):
        return None


def copy_atomic(source: Path, target: Path) -> Path:
    """Copy `source` to `target` under a temporary name first, so `target` is never half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with video_io.atomic_path(target, suffix=target.suffix) as temporary:
        shutil.copyfile(source, temporary)
    return target


def stored_request(path) -> GenerationRequest:
    """The `GenerationRequest` stored in a video made by this app (or in its `.json`); InvalidRequest if none."""
    if not path:
        raise InvalidRequest("settings", "missing: drop a video made by this app, or its .json")
    name = Path(path).name
    metadata = source_metadata(path)
    stored = metadata.get("request") if metadata else None
    if not isinstance(stored, dict):
        raise InvalidRequest("settings", f"{name} carries no settings of this app (only its videos and their "
                                         f".json files do)")
    try:
        return GenerationRequest.from_dict(stored)
    except InvalidRequest as error:
        raise InvalidRequest("settings", f"{name} has settings this version cannot read ({error})") from None


def plan_dict(plan: SmoothPlan) -> dict[str, Any]:
    return asdict(plan)


def _fps_value(fps: float) -> float | int:
    return int(round(fps)) if abs(fps - round(fps)) < 1e-6 else round(fps, 3)


def _rate(fps: float) -> str:
    value = _fps_value(fps)
    return str(value) if isinstance(value, int) else f"{value:g}"


__all__ = ["SmoothPlan", "check_video", "plan_smooth", "render_smooth", "smooth_metadata", "stored_request",
           "copy_atomic", "MAX_FRAMES", "MAX_SIDE", "TARGET_FPS_CHOICES", "LOOP_LABELS", "reachable_rates"]
