"""`video-gen extend VIDEO` and `video-gen sweep IMAGE --vary FIELD=V1,V2`: their parsers take every `generate`
option (copied from its parser, so a flag added there is here too) and their handlers print results on stdout
and progress on stderr, like `generate`."""

from __future__ import annotations

import argparse
import sys

from .request import GenerationRequest

# generate's options that these commands do not copy: the picture and --from (extend's source is the video),
# the length (each defines its own), and the size for extend (the continuation takes the source's).
_NOT_COPIED = {"help", "image", "from_video"}
# extend: its own length; the source's size and rate; no loop and no last frame (the continuation goes on)
_EXTEND_OWN = {"frames", "duration", "width", "height", "fps", "loop", "last_frame"}
# sweep: every cell writes its own file, named like any job's
_SWEEP_OWN = {"output"}


def add_parsers(commands, generate: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """Add `extend` and `sweep` to the subcommands, each with `generate`'s options."""
    extend = commands.add_parser("extend", parents=[common], help="continue a video from its last frame")
    extend.add_argument("video", help="the video to continue (MP4, WebM, MOV, GIF, a folder of PNG frames)")
    length = extend.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, help="seconds to add (default: one generation of the model)")
    length.add_argument("--frames", type=int, help="frames to add")
    _copy_options(generate, extend, skip=_NOT_COPIED | _EXTEND_OWN)

    sweep = commands.add_parser("sweep", parents=[common],
                                help="one job per combination of values, plus a comparison video and sheet")
    sweep.add_argument("image", nargs="?", help="the picture (optional for text-to-video models)")
    sweep.add_argument("--vary", action="append", required=True, metavar="FIELD=V1,V2",
                       help="a request field and its values, such as seed=1,2,3 or motion_bucket_id=60,127,200 "
                            "(once or twice; at most 36 cells)")
    _copy_options(generate, sweep, skip=_NOT_COPIED | _SWEEP_OWN)


def _copy_options(source: argparse.ArgumentParser, target: argparse.ArgumentParser, skip: set[str]) -> None:
    own = {option for action in target._actions for option in action.option_strings}
    for action in source._actions:
        if action.dest in skip or not action.option_strings or own & set(action.option_strings):
            continue
        target._add_action(action)  # what argparse's `parents=` does with each action


def extend_command(args) -> int:
    from .cli import EXIT_OK, FLAG_FIELDS, _generator, _ProgressBar
    from .extend import extend

    overrides = {field: getattr(args, flag) for flag, field in FLAG_FIELDS.items()
                 if flag not in _EXTEND_OWN and getattr(args, flag, None) is not None}
    progress = None if args.quiet else _ProgressBar()
    try:
        result = extend(_generator(args), args.video, frames=args.frames, duration=args.duration,
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


def sweep_command(args) -> int:
    from .cli import EXIT_OK, FLAG_FIELDS, _generator, _ProgressBar
    from .errors import InvalidRequest
    from .sweep import Sweep, parse_vary, plan_sweep

    values = {field: getattr(args, flag) for flag, field in FLAG_FIELDS.items()
              if getattr(args, flag, None) is not None}
    if args.image is not None:
        values["image"] = args.image
    if args.frames is not None and args.duration is not None:
        raise InvalidRequest("duration", "give --frames or --duration, not both")
    request = GenerationRequest(**values)
    generator = _generator(args)
    if args.duration is not None:
        if not args.duration > 0:
            raise InvalidRequest("duration", f"must be more than 0 seconds, got {args.duration}")
        fps = generator.prepare(request).request.fps
        request = request.replace(num_frames=max(1, round(args.duration * fps)))
    plan = plan_sweep(generator, request, [parse_vary(_field_name(text, FLAG_FIELDS)) for text in args.vary])
    for warning in plan.warnings:
        print(f"video-gen: warning: {warning}", file=sys.stderr)
    progress = None if args.quiet else _ProgressBar()

    def on_event(event) -> None:
        if event.kind == "cell":
            if progress:
                progress.close()
            print(f"{event.message}", file=sys.stderr)
        elif progress:
            progress(event)

    try:
        result = Sweep(generator, plan).run(on_event=on_event)
    finally:
        if progress:
            progress.close()
    print(f"{len(result.results)} cells ({plan.rows} x {plan.columns}); comparison video and contact sheet, then "
          f"each cell's output:", file=sys.stderr)
    print(result.grid)
    print(result.sheet)
    for cell in result.results:
        print(cell.path)
    return EXIT_OK


def _field_name(vary: str, flag_fields: dict[str, str]) -> str:
    """`--vary motion=…` (a flag's name) as `motion_bucket_id=…` (the request field's)."""
    name, separator, values = vary.partition("=")
    flag = name.strip().lstrip("-").replace("-", "_")
    return f"{flag_fields[flag]}{separator}{values}" if separator and flag in flag_fields else vary
