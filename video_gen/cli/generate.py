"""`video-gen generate IMAGE [options]` and `video-gen json 'REQUEST'`: one job each, from the request's flags (the
field table's) or from JSON."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from ..errors import Cancelled, InvalidRequest, VideoGenError
from ..request import GenerationRequest
from .common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, generator, progress_bar
from .flags import add_request_flags, request_values


def add_parsers(commands, common) -> None:
    generate = commands.add_parser("generate", parents=[common], help="make a video from a picture")
    generate.add_argument("image", nargs="?",
                          help="the picture to animate (optional with --from, and for text-to-video models)")
    generate.add_argument("--from", dest="from_video", metavar="VIDEO",
                          help="re-run the settings stored in an output (or its .json); other flags override them")
    add_request_flags(generate)
    generate.add_argument("--quiet", action="store_true", help="no progress bar")

    json_mode = commands.add_parser("json", parents=[common], help="run one request given as JSON; prints one JSON line")
    json_mode.add_argument("request", help="the request as a JSON object, or - to read it from stdin")


def generate_command(args) -> int:
    values = request_values(args)
    if args.image is not None:
        values["image"] = args.image
    if args.from_video:
        stored = stored_request(Path(args.from_video), args.models_dir)
        if args.duration is not None:  # the length comes from --duration below
            stored.pop("num_frames", None)
        request = GenerationRequest.from_dict({**stored, "output_path": None})
        request = request.replace(**values)
    else:  # without a picture only text families run: the model's family checks that
        request = GenerationRequest(**values)
    engine = generator(args)
    if args.duration is not None:
        request = engine.with_duration(request, args.duration)
    prepared = engine.prepare(request)
    for note in prepared.notes:
        if note.startswith("loras:"):  # a LoRA that changed since a stored video was made
            print(f"video-gen: warning: {note}", file=sys.stderr)
    if not args.quiet:
        say_estimate(engine, prepared)
    progress = progress_bar(args)
    try:
        # Ctrl+C keeps the finished segments of a long video as <name>_partial.mp4 (or says why it cannot)
        result = engine.generate(prepared, on_event=progress, keep_partial=True)
    except Cancelled as stopped:
        if progress:
            progress.close()
        print(f"video-gen: {stopped}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if progress:
            progress.close()
    print(f"seed {result.seed}, {result.frames_written} frames at {result.request.fps} fps, "
          f"{result.elapsed_s:.1f} s on {result.device}; memory plan: {result.memory_plan.label()}"
          + (f" after {len(result.retries)} out-of-memory retr{'y' if len(result.retries) == 1 else 'ies'}"
             if result.retries else ""), file=sys.stderr)
    print(result.path)
    return EXIT_OK


LONG_JOB_S = 60.0  # a job estimated longer than this is announced with its time before it starts


def say_estimate(engine, prepared) -> None:
    """Before a job over a minute: how long it should take here (issue 29: a 30 s video ran 35 segments with no
    word of its time). From this machine's history of the model, else a short test run of it (which loads the
    model the job then uses), when the per-device constants say the job is long enough to be worth one."""
    from ..timing import PROBE_MAX_S, PROBE_WORTH_S, Estimator, duration_text

    try:
        estimator = Estimator(engine)
        estimate = estimator.estimate(prepared)
        if not estimate.known and estimate.total_s >= PROBE_WORTH_S:
            if estimator.probe_cost(prepared.request) > PROBE_MAX_S:  # too long itself: say the constants' figure
                print(f"video-gen: this job may take {duration_text(estimate.total_s)} on {engine.device} (rough: no "
                      f"job of this model has run on this machine yet)", file=sys.stderr)
                return
            print("video-gen: timing a short test run of the model to estimate the job…", file=sys.stderr)
            estimator.probe(prepared.request)
            estimate = estimator.estimate(prepared)
    except (VideoGenError, OSError, ValueError):
        return  # an estimate that cannot be made does not stop the job
    if estimate.known and estimate.total_s > LONG_JOB_S:
        segments = prepared.length.segments
        print(f"video-gen: this job should take {duration_text(estimate.total_s)} on {engine.device} "
              f"({estimate.basis_text()}){f'; {segments} segments, Ctrl+C keeps the finished ones' if segments > 1 else ''}",
              file=sys.stderr)


def stored_request(video: Path, models_dir=None) -> dict:
    """The request stored in an output, checked against the picture, control video, mask and annotator it was made
    from (a warning for each that changed)."""
    from .. import video_io
    from ..checkpoints import file_sha256

    if not video.exists():
        raise InvalidRequest("from", f"not found: {video}")
    metadata = video_io.read_metadata(video)
    if metadata is None or not isinstance(metadata.get("request"), dict):
        raise InvalidRequest("from", f"{video} carries no video-gen settings (nor a .json beside it)")
    stored = dict(metadata["request"])
    image = stored.get("image")
    if image and Path(image).is_file() and metadata.get("image_sha256") not in (None, file_sha256(image)):
        print(f"video-gen: warning: {image} has changed since {video.name} was made; the result will differ",
              file=sys.stderr)
    for warning in _changed_control(stored, metadata, models_dir):
        print(f"video-gen: warning: {warning} since {video.name} was made; the result will differ", file=sys.stderr)
    return stored


def _changed_control(stored: dict, metadata: dict, models_dir) -> list[str]:
    """What differs from the control video, mask and annotator a stored video was made with (their hashes)."""
    from ..annotators import CONTROL_KINDS, annotator_folder, annotator_sha256, annotators_dir
    from ..checkpoints import default_models_dir
    from ..control import file_sha256 as input_sha256

    changed = []
    recorded = metadata.get("control") or {}
    for name, record in (("control", recorded), ("control_from", recorded), ("mask", metadata.get("mask") or {})):
        path = stored.get(name)
        if path and Path(path).exists() and record.get("sha256") not in (None, input_sha256(path)):
            changed.append(f"{path} ({name}) has changed")
    annotator = recorded.get("annotator") or {}
    if annotator.get("sha256") and annotator.get("kind") in CONTROL_KINDS:
        try:
            folder = annotator_folder(annotator["kind"], annotators_dir(models_dir or default_models_dir()))
        except InvalidRequest:
            folder = None  # the job itself says that it is missing
        if folder is not None and annotator_sha256(folder) != annotator["sha256"]:
            changed.append(f"the {annotator['kind']} annotator in {folder} has changed")
    return changed


def json_command(args) -> int:
    """Exactly one JSON line on stdout, whatever happens."""
    try:
        text = sys.stdin.read() if args.request == "-" else args.request
        request = GenerationRequest.from_json(text)
        result = generator(args).generate(request)
    except InvalidRequest as error:
        return _json_error(args, error, EXIT_BAD_INPUT)
    except Exception as error:  # anything else is a failure while generating; still one JSON line
        return _json_error(args, error, EXIT_FAILED)
    print(json.dumps({
        "status": "success", "output": str(result.path), "seed": result.seed, "frames": result.frames_written,
        "fps": result.request.fps, "elapsed_s": round(result.elapsed_s, 3), "model": result.model,
        "device": result.device, "plan": result.plan.to_dict(), "request": result.request.to_dict(),
        **({"notes": list(result.notes)} if result.notes else {}),  # e.g. a LoRA that changed since it was stored
    }))
    return EXIT_OK


def _json_error(args, error: BaseException, code: int) -> int:
    if args.debug:
        traceback.print_exc()
    # In JSON the fields go by their JSON keys, which the message already starts with.
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else type(error).__name__
    if not isinstance(error, VideoGenError):
        message = f"{type(error).__name__}: {message}"
    print(json.dumps({"status": "error", "error": message}))
    return code
