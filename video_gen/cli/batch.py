"""`video-gen batch FILE.jsonl|FOLDER|IMAGES…`: many jobs, resumable, locally or on a Ray cluster. Takes every
request flag (the field table's) as the defaults of each line, but --output (one path cannot name many videos)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InvalidRequest
from .common import EXIT_INTERRUPTED, generator, outputs_dir
from .flags import add_request_flags, request_values


def add_parsers(commands, common) -> None:
    batch = commands.add_parser("batch", parents=[common], allow_abbrev=False,
                                help="many jobs from a JSONL file, a folder or pictures; resumable, locally or on a "
                                     "Ray cluster")
    batch.add_argument("sources", nargs="+", metavar="FILE.jsonl|FOLDER|IMAGE",
                       help="a JSONL file (one JSON-mode request per line), or a folder of pictures, or pictures")
    batch.add_argument("--results", metavar="R.jsonl",
                       help="the results file, one line per job; the same command resumes from it "
                            "(default: beside the JSONL file, else in the outputs folder)")
    batch.add_argument("--ray", metavar="auto|local|ADDRESS",
                       help="run on Ray: auto (the cluster this machine joined), local (start one here), or a "
                            "head's HOST:PORT; needs the [ray] extra")
    batch.add_argument("--ray-cpus-per-worker", type=int, metavar="N",
                       help="on nodes without a GPU, one worker per N cores (default 4, at most a node's cores)")
    batch.add_argument("--ray-workers", type=int, metavar="N", help="at most N workers (default: one per GPU)")
    batch.add_argument("--worker-outputs-dir", metavar="DIR",
                       help="Ray: where workers write before the video is sent back, when they cannot see the "
                            "outputs folder (default: the outputs folder's path)")
    batch.add_argument("--output", help=argparse.SUPPRESS)  # refused with a message: one path for many videos
    add_request_flags(batch, skip=frozenset({"output_path"}))
    batch.add_argument("--quiet", action="store_true", help="no progress bars")


def batch_command(args) -> int:
    from .. import batch as batches

    if args.output:
        raise InvalidRequest("output_path", "a batch makes one video per line: set output_path on JSONL lines instead")
    if args.duration is not None and not args.duration > 0:
        raise InvalidRequest("duration", f"must be more than 0 seconds, got {args.duration}")
    outputs = outputs_dir(args)
    lines = batches.read_batch(args.sources, request_values(args))
    results_path = Path(args.results) if args.results else batches.default_results_path(args.sources, outputs)
    results = batches.Results(results_path)
    batch_ray, owns_ray = None, False
    if args.ray:
        try:
            from .. import batch_ray
        except ModuleNotFoundError as error:
            if error.name != "ray":
                raise
            raise InvalidRequest("ray", 'Ray is not installed; install the extra: pip install "video-gen[ray]"') \
                from None
        owns_ray = batch_ray.connect(args.ray)  # an unreachable cluster is one line, before anything starts
    print(f"video-gen: batch of {len(lines)} lines; results in {results_path}", file=sys.stderr)
    progress = batches.BatchProgress(len(lines), bars=not args.quiet)
    try:
        if batch_ray is not None:
            summary = batch_ray.run_ray(
                lines, results, address=args.ray, models_dir=args.models_dir, outputs_dir=outputs,
                device=args.device, extra_models_dirs=args.extra_models_dir or (), allow_pickle=args.allow_pickle,
                cpus_per_worker=args.ray_cpus_per_worker, max_workers=args.ray_workers,
                worker_outputs_dir=args.worker_outputs_dir, duration_s=args.duration, on_event=progress)
        else:
            summary = batches.run_local(lines, generator(args), results, duration_s=args.duration, on_event=progress)
    except KeyboardInterrupt:
        print(f"video-gen: batch interrupted; run the same command to resume (results in {results_path})",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        progress.close()
        if owns_ray:
            batch_ray.disconnect()
    print(f"video-gen: batch: {summary.line()}", file=sys.stderr)
    print(results_path)
    return summary.exit_code
