"""Whole-clip operations on uint8 frames (F, H, W, 3): colour matching between segments and loops."""

from __future__ import annotations

import numpy as np

from .planner import crossfade_overlap


def channel_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over a whole clip."""
    pixels = frames.reshape(-1, frames.shape[-1]).astype(np.float64)
    return pixels.mean(axis=0), pixels.std(axis=0)


def match_colors(frames: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Give `frames` the per-channel statistics (mean, std) of a reference clip.

    Chained segments drift in colour because each starts from a re-encoded frame of the previous one;
    matching every later segment to the first one's statistics removes the drift (Wan2GP #1379 shows
    what happens without it: the palette shifts at every seam).
    """
    own_mean, own_std = channel_stats(frames)
    scale = np.where(own_std > 1e-6, std / np.maximum(own_std, 1e-6), 1.0)
    matched = (frames.astype(np.float64) - own_mean) * scale + mean
    return np.clip(np.rint(matched), 0, 255).astype(np.uint8)


def apply_loop(frames: np.ndarray, loop: str, length: int) -> np.ndarray:
    """Make `frames` loop and return exactly `length` frames (see planner.loop_source_frames)."""
    if loop == "none" or length < 3:
        return frames[:length]
    if loop == "pingpong":
        return np.concatenate([frames, frames[-2:0:-1]])[:length]
    if loop == "crossfade":
        overlap = crossfade_overlap(length)
        body, tail = frames[:length], frames[length:length + overlap]
        # The clip's head fades in from its own tail, so the last frame flows into the first one.
        weights = (np.arange(1, overlap + 1) / (overlap + 1))[:, None, None, None]
        head = tail.astype(np.float64) * (1 - weights) + body[:overlap].astype(np.float64) * weights
        return np.concatenate([np.rint(head).astype(np.uint8), body[overlap:]])
    raise ValueError(f"loop must be none, pingpong or crossfade, got {loop!r}")
