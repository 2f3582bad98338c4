"""`video-gen extend VIDEO`: continue a video from its end. Takes every request flag (the field table's) but its
own length (seconds or frames to add) and what the continuation takes from the source (size, rate, no loop and no
last frame)."""

from __future__ import annotations

import sys

from .common import EXIT_OK, generator, progress_bar
from .flags import add_request_flags, request_values

# The source's size and rate; no loop and no last frame (the continuation goes on); its own length
SOURCE_FIELDS = frozenset({"num_frames", "width", "height", "fps", "loop", "last_image"})


def add_parsers(commands, common) -> None:
    extend = commands.add_parser("extend", parents=[common], help="continue a video from its last frame")
    extend.add_argument("video", help="the video to continue (MP4, WebM, MOV, GIF, a folder of PNG frames)")
    length = extend.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, help="seconds to add (default: one generation of the model)")
    length.add_argument("--frames", type=int, help="frames to add")
    add_request_flags(extend, skip=SOURCE_FIELDS, duration=False)
    extend.add_argument("--quiet", action="store_true", help="no progress bar")


def extend_command(args) -> int:
    from ..extend import extend

    overrides = {name: value for name, value in request_values(args).items() if name not in SOURCE_FIELDS}
    progress = progress_bar(args)
    try:
        result = extend(generator(args), args.video, frames=args.frames, duration=args.duration,
                        overrides=overrides, on_event=progress)
    finally:
        if progress:
            progress.close()
    for note in result.notes:
        print(f"video-gen: note: {note}", file=sys.stderr)
    source = result.metadata["source"]
    print(f"{source['frames']} frames of {args.video} + {source['continuation_frames']} new (seed {result.seed}), "
          f"{result.frames_written} frames at {source['fps']:g} fps, {result.elapsed_s:.1f} s on {result.device}",
          file=sys.stderr)
    print(result.path)
    return EXIT_OK
