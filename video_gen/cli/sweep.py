"""`video-gen sweep IMAGE --vary FIELD=V1,V2,…`: one job per combination of values, plus a comparison video and a
contact sheet. Takes every request flag (the field table's); each cell writes its own file."""

from __future__ import annotations

import sys

from ..errors import InvalidRequest
from ..request import GenerationRequest
from .common import EXIT_OK, generator, progress_bar
from .flags import add_request_flags, request_values, vary_field_name


def add_parsers(commands, common) -> None:
    sweep = commands.add_parser("sweep", parents=[common],
                                help="one job per combination of values, plus a comparison video and sheet")
    sweep.add_argument("image", nargs="?", help="the picture (optional for text-to-video models)")
    sweep.add_argument("--vary", action="append", required=True, metavar="FIELD=V1,V2",
                       help="a request field and its values, such as seed=1,2,3 or motion_bucket_id=60,127,200 "
                            "(once or twice; at most 36 cells)")
    add_request_flags(sweep, skip=frozenset({"output_path"}))
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")


def sweep_command(args) -> int:
    from ..sweep import Sweep, parse_vary, plan_sweep

    values = request_values(args)
    if args.image is not None:
        values["image"] = args.image
    request = GenerationRequest(**values)
    engine = generator(args)
    if args.duration is not None:
        request = engine.with_duration(request, args.duration)
    plan = plan_sweep(engine, request, [parse_vary(vary_field_name(text)) for text in args.vary])
    for warning in plan.warnings:
        print(f"video-gen: warning: {warning}", file=sys.stderr)
    progress = progress_bar(args)

    def on_event(event) -> None:
        if event.kind == "cell":
            if progress:
                progress.close()
            print(f"{event.message}", file=sys.stderr)
        elif progress:
            progress(event)

    try:
        result = Sweep(engine, plan).run(on_event=on_event)
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


__all__ = ["add_parsers", "sweep_command", "InvalidRequest"]
