"""The length planner: D seconds at F fps is exactly round(D x F) frames, made within the model's limits."""

import math

import numpy as np
import pytest

from video_gen.frames import apply_loop, channel_stats, match_colors
from video_gen.planner import LOOPS, choose_factor, plan_length


@pytest.mark.parametrize("native_frames", [14, 25])
@pytest.mark.parametrize("fps", [7, 8, 12, 16, 24, 30])
@pytest.mark.parametrize("duration", [0.5, 1, 2.5, 4, 10])
@pytest.mark.parametrize("loop", LOOPS)
def test_plan_invariants(duration, fps, native_frames, loop):
    frames = round(duration * fps)
    plan = plan_length(frames, fps, native_frames=native_frames, native_fps=7, loop=loop)
    assert plan.frames == frames and plan.fps == fps
    assert 1 <= plan.factor <= 4
    assert all(2 <= n <= native_frames for n in plan.segment_frames) or plan.segment_frames == (1,)
    assert (plan.model_frames - 1) * plan.factor + 1 >= plan.loop_frames  # enough frames to cut from
    assert plan.segments == max(1, math.ceil((plan.model_frames - 1) / (native_frames - 1)))  # no spare segment
    assert max(plan.segment_frames) - min(plan.segment_frames) <= 1  # balanced
    assert abs(plan.generation_fps - 7) <= 3 or plan.factor in (1, 4)


@pytest.mark.parametrize(
    "frames, fps, native, expected",
    [  # (segment frames, factor, generation fps)
        (25, 7, 25, ((25,), 1, 7)),          # SVD-XT's own length and rate: the pipeline as it is
        (14, 7, 14, ((14,), 1, 7)),
        (25, 24, 25, ((9,), 3, 8)),          # 24 fps from 9 frames made at 8 fps
        (240, 24, 25, ((21, 21, 21, 21), 3, 8)),  # 10 s at 24 fps: 81 model frames in 4 segments
        (70, 7, 25, ((24, 24, 24), 1, 7)),   # 10 s at 7 fps
        (48, 12, 14, ((13, 13), 2, 6)),
    ],
)
def test_plan_table(frames, fps, native, expected):
    plan = plan_length(frames, fps, native_frames=native, native_fps=7)
    assert (plan.segment_frames, plan.factor, plan.generation_fps) == expected


def test_forced_interpolation_and_factor_choice():
    assert plan_length(25, 24, native_frames=25, native_fps=7, interpolation=1).segment_frames == (25,)
    assert plan_length(25, 24, native_frames=25, native_fps=7, interpolation=2).factor == 2
    assert [choose_factor(fps, 7) for fps in (6, 7, 8, 12, 16, 24, 30)] == [1, 1, 1, 2, 2, 3, 4]


@pytest.mark.parametrize("length", [3, 8, 25, 48])
def test_loops_give_exact_lengths_and_close_seamlessly(length):
    source_frames = plan_length(length, 7, native_frames=1000, native_fps=7, loop="crossfade").loop_frames
    ramp = np.linspace(0, 255, source_frames).round().astype(np.uint8)
    clip = np.broadcast_to(ramp[:, None, None, None], (source_frames, 4, 4, 3)).copy()
    looped = apply_loop(clip, "crossfade", length)
    assert len(looped) == length
    # the last frame flows into the first: the jump at the seam is no bigger than the biggest step inside
    steps = np.abs(np.diff(looped[:, 0, 0, 0].astype(int)))
    seam = abs(int(looped[0, 0, 0, 0]) - int(looped[-1, 0, 0, 0]))
    assert seam <= steps.max() + 1

    pingpong_source = plan_length(length, 7, native_frames=1000, native_fps=7, loop="pingpong").loop_frames
    pingpong = apply_loop(clip[:pingpong_source], "pingpong", length)
    assert len(pingpong) == length and np.array_equal(pingpong[1], pingpong[-1]) == (length % 2 == 0)


def test_match_colors_takes_the_reference_statistics():
    rng = np.random.default_rng(0)
    reference = rng.integers(40, 200, (4, 8, 8, 3)).astype(np.uint8)
    drifted = np.clip(reference.astype(int) * 0.8 + 30, 0, 255).astype(np.uint8)
    matched = match_colors(drifted, *channel_stats(reference))
    assert np.abs(channel_stats(matched)[0] - channel_stats(reference)[0]).max() < 0.6
    assert np.abs(matched.astype(int) - reference).mean() < 1.0
