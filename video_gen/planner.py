"""How a requested length and frame rate become model work: one pure function, `plan_length`.

A request for N frames at F fps gives exactly N frames played at F fps. The model generates at its
native rate (SVD was trained around 7 fps) and at most its native length per generation (14 or 25
frames); longer videos are chained segments that share their seam frame, and higher frame rates are
reached by frame interpolation. Loops change how many frames must be generated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

LOOPS = ("none", "pingpong", "crossfade")
# The most frames a request may ask for: a minute at 30 fps (FramePack's own rate, whose sections make a long
# video in one generation; other families chain segments up to it)
MAX_FRAMES = 1801
MAX_FACTOR = 4  # interpolation beyond 4x invents most of the motion; see video_gen/interpolate.py


@dataclass(frozen=True)
class LengthPlan:
    frames: int  # what the viewer gets
    fps: int  # the rate it plays at
    generation_fps: int  # the fps the model is conditioned on
    factor: int  # frame interpolation factor (1: none)
    segment_frames: tuple[int, ...]  # frames generated per segment; segments after the first share a seam
    loop: str
    loop_frames: int  # frames before the loop is applied (= frames when loop is "none")
    frame_step: int = 1  # the model's frame rule: one generation makes frame_step*k + 1 frames

    @property
    def generated_frames(self) -> tuple[int, ...]:
        """What each segment asks the model for: its frames rounded up to the frame rule (the extra are dropped)."""
        return tuple(valid_frames(count, self.frame_step) for count in self.segment_frames)

    @property
    def segments(self) -> int:
        return len(self.segment_frames)

    @property
    def model_frames(self) -> int:
        """Distinct frames the model generates (seams counted once)."""
        return self.segment_frames[0] + sum(n - 1 for n in self.segment_frames[1:])

    def to_dict(self) -> dict:
        return {**asdict(self), "segments": self.segments, "model_frames": self.model_frames}

    def describe(self) -> str:
        parts = [f"{self.frames} frames at {self.fps} fps"]
        if self.segments > 1:
            parts.append(f"{self.segments} segments of {'/'.join(map(str, self.segment_frames))} frames")
        else:
            parts.append(f"{self.model_frames} generated frames")
        parts.append(f"model at {self.generation_fps} fps")
        if self.factor > 1:
            parts.append(f"interpolated {self.factor}x")
        if self.loop != "none":
            parts.append(f"{self.loop} loop")
        return ", ".join(parts)


def valid_frames(frames: int, step: int) -> int:
    """The fewest frames one generation can make that hold `frames`, under the rule step*k + 1 (1: any count)."""
    if step <= 1 or frames <= 1:
        return max(1, frames)
    return -(-(frames - 1) // step) * step + 1


def frames_for_seconds(seconds: float, fps: int, frame_step: int = 1, exact: bool = False) -> int:
    """The frames of a length given in seconds (the page's Length, `--duration`): seconds x fps, rounded; for a
    family that makes only frame_step*k + 1 frames (`exact`), the nearest such count (the longer one on a tie), so
    that a length shown as 5.06 s at 16 fps gives Wan's 81 frames, not 85."""
    frames = max(1, round(seconds * fps))
    if not exact or frame_step <= 1:
        return frames
    lower = max(1, (frames - 1) // frame_step * frame_step + 1)
    upper = valid_frames(frames, frame_step)
    return lower if frames - lower < upper - frames else upper


def loop_source_frames(frames: int, loop: str) -> int:
    """Frames needed before looping so that the loop yields exactly `frames`."""
    if frames < 3 or loop == "none":
        return frames
    if loop == "pingpong":  # f0 … f(B-1) f(B-2) … f1: 2B - 2 frames
        return math.ceil((frames + 2) / 2)
    if loop == "crossfade":  # the last `overlap` frames are blended into the first ones
        return frames + crossfade_overlap(frames)
    raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")


def crossfade_overlap(frames: int) -> int:
    """A sixth of the clip (at least 2 frames): long enough to hide the seam, short enough to keep motion."""
    return max(2, frames // 6)


def choose_factor(fps: int, native_fps: int) -> int:
    """The interpolation factor whose generation rate fps/factor is nearest the model's own (ties: less)."""
    return min(range(1, MAX_FACTOR + 1), key=lambda factor: (abs(fps / factor - native_fps), factor))


def plan_length(frames: int, fps: int, *, native_frames: int, native_fps: int, interpolation: int = 0,
                loop: str = "none", frame_step: int = 1) -> LengthPlan:
    """Plan `frames` output frames at `fps`.

    interpolation: 0 picks the factor automatically, 1 turns interpolation off, 2-4 force that factor.
    native_frames: the most frames one generation makes (the UNet's training length).
    frame_step: the model's frame rule (Wan 4: 4k+1 frames); a segment of another length is generated at the
    next valid length and cut.
    """
    needed = loop_source_frames(frames, loop)
    factor = choose_factor(fps, native_fps) if interpolation == 0 else interpolation
    if needed < 3:
        factor = 1
    model_frames = math.ceil((needed - 1) / factor) + 1
    transitions = model_frames - 1
    segments = max(1, math.ceil(transitions / max(1, native_frames - 1)))
    base, extra = divmod(transitions, segments)
    segment_frames = tuple(base + (1 if index < extra else 0) + 1 for index in range(segments))
    if model_frames == 1:
        segment_frames = (1,)
    return LengthPlan(frames=frames, fps=fps, generation_fps=max(1, round(fps / factor)), factor=factor,
                      segment_frames=segment_frames, loop=loop, loop_frames=needed, frame_step=frame_step)
