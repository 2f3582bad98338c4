"""`video-gen`: the command line. stdout carries only results (a path, or one JSON line); progress,
messages and errors go to stderr. Exit codes: 0 success, 1 bad input, 2 failure while running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from . import __version__, cli_extend
from .errors import Cancelled, InvalidRequest, VideoGenError
from .planner import DEFAULT_FPS, LOOPS
from .families import specs
from .families.speed import SPEEDS
from .request import FORMATS, RESIZE_MODES, UPSCALES, GenerationRequest, Keyframe, schedulers

EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130

# The request field behind each `generate` flag: the flags are the CLI's names for GenerationRequest.
FLAG_FIELDS = {
    "model": "model", "frames": "num_frames", "fps": "fps", "width": "width", "height": "height",
    "motion": "motion_bucket_id", "noise_aug": "noise_aug_strength", "steps": "num_inference_steps",
    "min_guidance": "min_guidance_scale", "max_guidance": "max_guidance_scale", "seed": "seed",
    "decode_chunk": "decode_chunk_size", "format": "output_format", "output": "output_path", "crf": "crf",
    "resize": "resize_mode", "prompt": "prompt", "negative_prompt": "negative_prompt",
    "interpolation": "interpolation", "loop": "loop",
    "image_strength": "image_strength", "scheduler": "scheduler", "motion_adapter": "motion_adapter",
    "memory_plan": "memory_plan", "last_frame": "last_image", "speed": "speed", "lora": "loras",
    "keyframe": "keyframes", "upscale": "upscale",
}
FIELD_FLAGS = {field: "--" + flag.replace("_", "-") for flag, field in FLAG_FIELDS.items()}


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on a bad flag; for us that is bad input: exit 1, one line."""

    def error(self, message: str) -> None:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", help="folder of installed models (default $VIDEO_GEN_MODELS_DIR or ./models)")
    common.add_argument("--outputs-dir", help="where videos go (default $VIDEO_GEN_OUTPUTS_DIR or ./outputs)")
    common.add_argument("--device", help="cuda, cuda:N, mps or cpu (default: the best available)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument("--extra-models-dir", action="append", metavar="DIR",
                        help="another folder to find models in, e.g. a ComfyUI or A1111 folder (repeatable)")
    common.add_argument("--allow-pickle", action="store_true",
                        help="also load .ckpt/.pt/.bin files (read with torch.load(weights_only=True)); "
                             "off by default because a pickle can run code")

    parser = _Parser(prog="video-gen", description="Offline image-to-video generation.")
    parser.add_argument("--version", action="version", version=f"video-gen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    generate = commands.add_parser("generate", parents=[common], help="make a video from a picture")
    generate.add_argument("image", nargs="?", help="the picture to animate (optional with --from, and for text-to-video models)")
    generate.add_argument("--from", dest="from_video", metavar="VIDEO",
                          help="re-run the settings stored in an output (or its .json); other flags override them")
    generate.add_argument("--model", help="folder name under the models dir, or a path (default: the only one)")
    length = generate.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, help="number of frames (default: the model's, 25 for SVD-XT)")
    length.add_argument("--duration", type=float, help="length in seconds; frames = round(duration x fps)")
    generate.add_argument("--fps", type=int, help=f"frames per second of the video (default {DEFAULT_FPS}, as on the page)")
    generate.add_argument("--width", type=int, help="multiple of 8 (default 1024)")
    generate.add_argument("--height", type=int, help="multiple of 8 (default 576)")
    generate.add_argument("--motion", type=int, help="motion bucket 1..255: more is more movement (default 127)")
    generate.add_argument("--noise-aug", type=float, help="noise added to the picture 0..1 (default 0.02)")
    generate.add_argument("--steps", type=int, help="denoising steps (default 25)")
    generate.add_argument("--min-guidance", type=float, help="guidance at the first frame (default 1.0)")
    generate.add_argument("--max-guidance", type=float, help="guidance at the last frame (default 3.0)")
    generate.add_argument("--seed", type=int, help="-1 or 0 for random, the default (the seed used is reported)")
    generate.add_argument("--decode-chunk", type=int, help="frames decoded at a time: less uses less memory")
    generate.add_argument("--format", choices=FORMATS, help="mp4 (default), webm, gif, or png (a folder of frames)")
    generate.add_argument("--output", help="file (or folder for png) to write; overwritten if it exists")
    generate.add_argument("--crf", type=int, help="quality 0..51, lower is better (default 18, visually lossless)")
    generate.add_argument("--resize", choices=RESIZE_MODES, help="crop (default) or fit the picture to the size")
    generate.add_argument("--interpolation", type=int, help="frame interpolation: 0 auto (default), 1 off, 2-4 forced")
    generate.add_argument("--loop", choices=LOOPS, help="none (default), pingpong, or crossfade (seamless)")
    generate.add_argument("--prompt", help="text prompt (for text-driven families)")
    generate.add_argument("--negative-prompt", help="what to avoid (for text-driven families)")
    generate.add_argument("--image-strength", type=float,
                          help="text families with a picture: how much it shapes the video, 0..1 (default 0.5)")
    generate.add_argument("--scheduler", choices=schedulers(),
                          help="sampler, for families that offer a choice: "
                               + "; ".join(f"{spec.label}: {', '.join(spec.schedulers)}" for spec in specs()
                                           if len(spec.schedulers) > 1))
    generate.add_argument("--last-frame", help="a picture to end on, for families that take one")
    generate.add_argument("--speed", choices=SPEEDS,
                          help="transformer families (Wan, LTX): a cache hook that skips work on steps that change "
                               "little, off (default), first-block-cache or taylorseer")
    generate.add_argument("--keyframe", action="append", type=_keyframe_flag, metavar="PATH@FRAME",
                          help="LTX-Video: a picture the video passes through at FRAME (repeatable; placed on "
                               "LTX's 8-frame grid, the frame used is reported)")
    generate.add_argument("--upscale", choices=UPSCALES,
                          help="LTX-Video: 2x makes the video at half size, upsamples it 2x with the installed "
                               "latent upsampler and refines it (default off)")
    generate.add_argument("--motion-adapter", help="AnimateDiff: motion adapter name or path (default: installed)")
    generate.add_argument("--memory-plan", metavar="PLAN",
                          help="auto (default: the fastest plan that fits), or force none|model|group|sequential "
                               "offload; add +fp8 to store the UNet's weights in fp8 (changes the frames)")
    generate.add_argument("--lora", action="append", metavar="NAME[:STRENGTH]",
                          help="a LoRA from models/loras (or a path) at a strength from -2 to 2 (default 1); "
                               "repeatable, up to 8")
    generate.add_argument("--quiet", action="store_true", help="no progress bar")

    json_mode = commands.add_parser("json", parents=[common], help="run one request given as JSON; prints one JSON line")
    json_mode.add_argument("request", help="the request as a JSON object, or - to read it from stdin")

    models = commands.add_parser("models", parents=[common], help="installed models")
    models_commands = models.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    models_commands.add_parser("list", parents=[common],
                               help="list models in the models dir, the Hugging Face cache and --extra-models-dir")
    download = models_commands.add_parser("download", parents=[common], help="download a known model (resumable)")
    download.add_argument("name", help="one of: " + ", ".join(download.name for spec in specs()
                                                                for download in spec.downloads))
    download.add_argument("--quant", default=None,
                          help="for GGUF downloads (names ending in -gguf): the quantisation, such as Q4_K_M "
                               "(default), Q5_K_M, Q8_0")
    import_parser = models_commands.add_parser("import", parents=[common],
                                               help="check a model folder or file and link it into the models dir")
    import_parser.add_argument("path", help="a diffusers folder, a .safetensors file, or a motion adapter")
    import_parser.add_argument("--name", help="the name to install it under (default: from the path)")
    import_parser.add_argument("--copy", action="store_true", help="copy instead of linking")

    inspect = commands.add_parser("inspect", parents=[common], help="print the parameters stored in an output")
    inspect.add_argument("video")

    history = commands.add_parser("history", parents=[common], help="list the web app's jobs, newest first")
    history.add_argument("--status", choices=["queued", "running", "done", "failed", "cancelled", "interrupted"],
                         help="only jobs with this status")
    history.add_argument("--limit", type=int, default=50, help="at most this many jobs (default 50)")
    history.add_argument("--json", action="store_true", help="one JSON object per line")

    cli_extend.add_parsers(commands, generate, common)  # extend VIDEO, sweep IMAGE --vary (generate's options)

    info = commands.add_parser("info", parents=[common],
                               help="describe this machine's device and the longest videos that fit its memory")
    info.add_argument("--vram", type=float, metavar="GB",
                      help="plan for a GPU with this much memory instead of this machine's (e.g. 12)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    models_commands.add_parser("demo", parents=[common],
                               help="install a tiny random-weight demo model (makes noise, not video) to try "
                                    "everything without a download")
    selftest = commands.add_parser("selftest", parents=[common],
                                   help="generate with a tiny built-in model to check the install")
    selftest.add_argument("--keep", action="store_true",
                          help="keep the tiny model in the models folder as the demo model (demo-svd-tiny)")
    _add_batch_parser(commands, common, generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.debug and (args.command in ("generate", "json", "selftest", "info")
                           or getattr(args, "models_command", None) == "demo"):
        from .console import quiet_libraries

        quiet_libraries()  # these import diffusers: its chatter and progress bars are not the user's concern
    handler = {"generate": _generate, "json": _json, "models": _models, "inspect": _inspect, "history": _history,
               "info": _info, "selftest": _selftest, "extend": cli_extend.extend_command,
               "sweep": cli_extend.sweep_command, "batch": _batch}[args.command]
    if args.command == "json":
        return handler(args)  # reports its own errors as JSON
    try:
        return handler(args)
    except InvalidRequest as error:
        return _fail(args, error, EXIT_BAD_INPUT)
    except Cancelled as error:
        return _fail(args, error, EXIT_INTERRUPTED)
    except VideoGenError as error:
        return _fail(args, error, EXIT_FAILED)
    except KeyboardInterrupt:
        print("video-gen: interrupted; no partial output was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # a bug: one line for users, the traceback with --debug
        return _fail(args, error, EXIT_FAILED, unexpected=True)


def _fail(args, error: BaseException, code: int, unexpected: bool = False) -> int:
    if args.debug:
        traceback.print_exc()
    message = _user_message(error)
    if unexpected:
        message = f"{type(error).__name__}: {message} (run with --debug for the traceback)"
    print(f"video-gen: error: {message}", file=sys.stderr)
    return code


def _user_message(error: BaseException) -> str:
    """One line; request fields are called by their flag names on the command line."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    field = getattr(error, "field", None)
    if field in FIELD_FLAGS and text.startswith(f"{field}:"):
        text = f"{FIELD_FLAGS[field]} ({field}){text[len(field):]}"
    return text


def _keyframe_flag(text: str) -> Keyframe:
    """--keyframe PATH@FRAME (the last @ splits: a path may hold one)."""
    path, separator, frame = text.rpartition("@")
    if not separator or not path or not frame.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be PATH@FRAME, e.g. middle.png@48, got {text!r}")
    return Keyframe(image=path, frame=int(frame))


def _generator(args):
    from .engine import Generator

    return Generator(models_dir=args.models_dir, outputs_dir=args.outputs_dir, device=args.device,
                     extra_models_dirs=args.extra_models_dir or (), allow_pickle=args.allow_pickle)


# ---- generate ----------------------------------------------------------------------------
def _generate(args) -> int:
    values = {field: getattr(args, flag) for flag, field in FLAG_FIELDS.items() if getattr(args, flag) is not None}
    if "loras" in values:
        from .loras import coerce

        values["loras"] = coerce(values["loras"])
    if not args.from_video:
        values.setdefault("fps", DEFAULT_FPS)  # the page's default too
    if "keyframes" in values:
        values["keyframes"] = tuple(values["keyframes"])  # the request is frozen: a tuple of Keyframe
    if args.image is not None:
        values["image"] = args.image
    if args.from_video:
        stored = _stored_request(Path(args.from_video))
        if args.duration is not None:  # the length comes from --duration below
            stored.pop("num_frames", None)
        request = GenerationRequest.from_dict({**stored, "output_path": None, **values})
    else:  # without a picture only text families run: the model's family checks that
        request = GenerationRequest(**values)
    generator = _generator(args)
    if args.duration is not None:
        if not args.duration > 0:
            raise InvalidRequest("duration", f"must be more than 0 seconds, got {args.duration}")
        planned = generator.prepare(request)
        fps = planned.request.fps
        frames = max(1, round(args.duration * fps))
        request = request.replace(num_frames=planned.spec.valid_frames(frames) if planned.spec.exact_frames else frames)
    prepared = generator.prepare(request)
    for note in prepared.notes:
        if note.startswith("loras:"):  # a LoRA that changed since a stored video was made
            print(f"video-gen: warning: {note}", file=sys.stderr)
    progress = None if args.quiet else _ProgressBar()
    try:
        result = generator.generate(prepared, on_event=progress)
    finally:
        if progress:
            progress.close()
    print(f"seed {result.seed}, {result.frames_written} frames at {result.request.fps} fps, "
          f"{result.elapsed_s:.1f} s on {result.device}; memory plan: {result.memory_plan.label()}"
          + (f" after {len(result.retries)} out-of-memory retr{'y' if len(result.retries) == 1 else 'ies'}"
             if result.retries else ""), file=sys.stderr)
    print(result.path)
    return EXIT_OK


class _ProgressBar:
    """A tqdm bar on stderr per stage that has steps, and a line per stage."""

    def __init__(self) -> None:
        self._bar = None
        self._stage = None

    def __call__(self, event) -> None:
        from tqdm import tqdm

        from .events import STAGE_LABELS

        if event.kind == "stage":
            self.close()
            print(f"{event.message}…", file=sys.stderr)
        elif event.kind == "step":
            if self._stage != event.stage:
                self.close()
                self._bar = tqdm(total=event.total, desc=STAGE_LABELS[event.stage], file=sys.stderr, unit="step")
                self._stage = event.stage
            self._bar.update(event.index - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._stage = None, None


def _stored_request(video: Path) -> dict:
    """The request stored in an output, checked against the picture it was made from."""
    from . import video_io
    from .models import file_sha256

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
    return stored


# ---- json --------------------------------------------------------------------------------
def _json(args) -> int:
    """Exactly one JSON line on stdout, whatever happens."""
    try:
        text = sys.stdin.read() if args.request == "-" else args.request
        request = GenerationRequest.from_json(text)
        result = _generator(args).generate(request)
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


# ---- models, inspect, info, selftest -----------------------------------------------------
def _models(args) -> int:
    from .models import default_models_dir

    folder = Path(args.models_dir) if args.models_dir else default_models_dir()
    if args.models_command == "download":
        from .model_store import DEFAULT_QUANT, download, known_models

        known = known_models().get(args.name)
        if args.quant and known is not None and not any("{quant}" in pattern for pattern in known.files):
            raise InvalidRequest("quant", f"{args.name} comes in one precision only; --quant goes with the -gguf "
                                          f"downloads")
        path = download(args.name, folder, quant=args.quant or DEFAULT_QUANT)
        if known is not None and known.files:
            print(f"{known.name}: use it with --model {path.stem} (the {known.folder} folder beside it gives its "
                  f"other parts: text encoder, configs)", file=sys.stderr)
        print(path)
        return EXIT_OK
    if args.models_command == "demo":
        from .console import command
        from .demo import DEMO_NOTE, install_demo

        path = install_demo(folder)
        where = f" --models-dir {args.models_dir}" if args.models_dir else ""
        print(f"demo model installed ({DEMO_NOTE}): try it with "
              f"`{command(f'generate PICTURE --model {path.name}{where}')}`, or choose it on the page "
              f"(press Refresh if the page is open)", file=sys.stderr)
        print(path)
        return EXIT_OK
    if args.models_command == "import":
        from .model_store import import_model

        info = import_model(args.path, folder, name=args.name, copy=args.copy, allow_pickle=args.allow_pickle)
        print(f"imported {info.note} as {info.name!r}: {info.path}", file=sys.stderr)
        print(info.path)
        return EXIT_OK
    return _models_list(folder, args.extra_models_dir or ())


def _models_list(folder: Path, extra_dirs) -> int:
    """One line per model found anywhere, tab-separated for scripts: name, family (its module name: svd,
    animatediff, modelscope; "-" when none; for a LoRA the families it fits), kind (model, motion-adapter,
    lora with its kind, or unsupported with the reason),
    precision, size, source (models, hf-cache, or the extra folder), path."""
    from .models import discover

    found = discover(folder, extra_dirs)
    if not found:
        from .console import command

        print(f"no model installed in {folder.resolve()}, the Hugging Face cache or the extra folders; "
              f"see models/README.md (`{command('models download svd-xt')}`), or try everything with a tiny demo "
              f"model that makes noise, not video: `{command('models demo')}`", file=sys.stderr)
        return EXIT_OK
    for model in found:
        family = model.family or "-"
        kind = model.role + (f" ({model.note})" if model.note else "")
        if model.role == "lora":  # the families it fits, and its kind (loras.py)
            from .loras import describe_entry

            family, kind = describe_entry(model)
        print(f"{model.name}\t{family}\t{kind}\t{model.precision or '-'}\t{_human_size(model.size_bytes)}\t"
              f"{model.source}\t{model.path}")
    return EXIT_OK


def _human_size(size: int) -> str:
    return f"{size / 2**30:.2f} GB" if size >= 2**30 else f"{size / 2**20:.1f} MB"


def _inspect(args) -> int:
    from . import video_io

    path = Path(args.video)
    if not path.exists():
        raise InvalidRequest("video", f"not found: {path}")
    metadata = video_io.read_metadata(path)
    if metadata is None:
        raise InvalidRequest("video", f"{path} carries no video-gen parameters")
    print(json.dumps(metadata, indent=2, sort_keys=True))
    return EXIT_OK


def _history(args) -> int:
    from . import history as job_history

    outputs = Path(args.outputs_dir or os.environ.get("VIDEO_GEN_OUTPUTS_DIR") or "outputs")
    database = job_history.history_path(outputs)
    if not database.is_file():
        print(f"no jobs yet: {database} does not exist (the web app writes it)", file=sys.stderr)
        return EXIT_OK
    store = job_history.History(database)
    try:
        entries = store.entries(status=args.status, limit=max(1, args.limit))
    finally:
        store.close()
    if not entries:
        only = f" with status {args.status}" if args.status else ""
        print(f"no jobs{only} in {database}", file=sys.stderr)
    for entry in entries:
        request = entry.request
        if args.json:
            print(json.dumps({"id": entry.id, "status": entry.status, "queued_at": entry.queued_at,
                              "started_at": entry.started_at, "finished_at": entry.finished_at,
                              "elapsed_s": entry.elapsed_s, "output": entry.output, "error": entry.error,
                              "rerun_of": entry.rerun_of, "request": request}, sort_keys=True))
            continue
        where = entry.output if entry.status == job_history.DONE else (entry.error or "")
        print(f"{entry.id}\t{entry.queued_at.replace('T', ' ')[:19]}\t{entry.status}\t{request.get('model') or '-'}\t"
              f"seed {request.get('seed')}\t{request.get('num_frames')} frames\t"
              f"{request.get('width')}x{request.get('height')}\t{where}")
    return EXIT_OK


def _info(args) -> int:
    """The device report, and for each installed model and preset size the most frames that fit."""
    import platform

    import torch

    from . import memory

    if args.vram is not None and not 0.5 <= args.vram <= 1024:
        raise InvalidRequest("vram", f"must be between 0.5 and 1024 GB, got {args.vram:g}")
    generator = _generator(args)
    report = generator.device_report()
    rows = generator.length_table(args.vram)
    from .demo import DEMO_NOTE, is_demo

    demos = [model.name for model in generator.list_models() if is_demo(model)]
    if args.json:
        print(json.dumps({"version": __version__, "device": report.to_dict(), "vram_gb": args.vram,
                          "max_length": [row.to_dict() for row in rows], "demo_models": demos}))
        return EXIT_OK
    print(f"video-gen {__version__}, Python {platform.python_version()}, torch {torch.__version__}")
    for line in report.lines():
        print(line)
    print(f"CUDA available: {torch.cuda.is_available()}, MPS available: {torch.backends.mps.is_available()}")
    planned = f"a {args.vram:g} GB GPU (--vram)" if args.vram else f"{memory.gigabytes(report.budget())} usable now"
    print(f"\nlongest video of one pass, planning for {planned}:")
    for line in memory.format_length_table(rows):
        print(f"  {line}")
    for name in demos:
        print(f"  {name} is a demo model ({DEMO_NOTE}): its lengths say nothing about a real model's")
    return EXIT_OK


def _selftest(args) -> int:
    """Build a tiny random model, generate with it, encode, read the video back: checks torch, diffusers,
    ffmpeg and the disk in seconds, without downloading anything. One line per stage; exit 0, or 2."""
    import tempfile

    import numpy as np
    from PIL import Image

    from . import memory, video_io
    from .engine import Generator
    from .testing import build_tiny_svd

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()  # the tiny model's save/load chatter is not the newcomer's concern
    transformers_logging.set_verbosity_error()
    stage, times = "starting", {}

    def timed(name: str, function):
        nonlocal stage
        stage = name
        started = time.perf_counter()
        value = function()
        times[name] = time.perf_counter() - started
        print(f"selftest: {name:<22} {times[name]:6.2f} s", flush=True)
        return value

    try:
        with tempfile.TemporaryDirectory(prefix="video-gen-selftest-") as folder:
            folder = Path(folder)
            generator = Generator(models_dir=folder / "models", outputs_dir=folder / "outputs", device=args.device)
            report = timed("probe device", generator.device_report)
            print(f"selftest: {'; '.join(report.lines())}")
            if args.keep:  # the tiny model stays as the demo model (`video-gen models demo`)
                from .demo import install_demo
                from .models import default_models_dir

                models_dir = Path(args.models_dir) if args.models_dir else default_models_dir()
                model = str(timed("build tiny model", lambda: install_demo(models_dir)).resolve())
            else:
                model = str(timed("build tiny model", lambda: build_tiny_svd(folder / "models" / "selftest")))
            picture = folder / "picture.png"
            Image.fromarray(np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)).save(picture)
            request = GenerationRequest(image=str(picture), model=model, width=64, height=64, num_frames=8,
                                        num_inference_steps=2, seed=1)
            result = timed("generate and encode", lambda: generator.generate(request))
            for name, seconds in result.timings.items():
                print(f"selftest:   {name:<20} {seconds:6.2f} s")
            frames, info = timed("read back", lambda: video_io.read_video(result.path))
            if (len(frames), info.width, info.height, info.codec) != (8, 64, 64, "h264"):
                raise video_io.FFmpegError(f"the video read back is {len(frames)} frames of {info}, "
                                           "expected 8 frames of 64x64 h264")
    except (VideoGenError, OSError, RuntimeError, ValueError, ImportError) as error:
        message = str(error).strip().splitlines()
        print(f"selftest FAILED while {stage}: {type(error).__name__}: {message[0] if message else ''}",
              file=sys.stderr)
        return EXIT_FAILED
    peak = result.peak_memory_bytes
    print(f"selftest OK on {result.device} ({result.dtype}, {result.memory_plan.label()})"
          f"{f', peak {peak / memory.GiB:.2f} GB' if peak else ''}: {sum(times.values()):.1f} s in all")
    if args.keep:
        from .console import command

        print(f"selftest: kept the tiny model as the demo model {model} (it makes noise, not video); "
              f"`{command('models list')}` shows it")
    return EXIT_OK


# ---- batch -------------------------------------------------------------------------------
def _add_batch_parser(commands, common, generate) -> None:
    """`video-gen batch`: takes every option of `generate` (the defaults of each line) but the picture,
    --from and --output."""
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
    taken = {action.dest for action in batch._actions}
    for action in generate._actions:  # the same Action objects: one definition of every generate option
        if action.option_strings and action.dest not in taken | {"help", "from_video", "output"}:
            batch._add_action(action)


def _batch(args) -> int:
    from . import batch as batches

    if args.output:
        raise InvalidRequest("output_path", "a batch makes one video per line: set output_path on JSONL lines instead")
    values = {field: getattr(args, flag) for flag, field in FLAG_FIELDS.items()
              if hasattr(args, flag) and getattr(args, flag) is not None}
    if args.duration is not None and not args.duration > 0:
        raise InvalidRequest("duration", f"must be more than 0 seconds, got {args.duration}")
    outputs_dir = Path(args.outputs_dir or os.environ.get("VIDEO_GEN_OUTPUTS_DIR") or "outputs")
    lines = batches.read_batch(args.sources, values)
    results_path = Path(args.results) if args.results else batches.default_results_path(args.sources, outputs_dir)
    results = batches.Results(results_path)
    batch_ray, owns_ray = None, False
    if args.ray:
        try:
            from . import batch_ray
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
                lines, results, address=args.ray, models_dir=args.models_dir, outputs_dir=outputs_dir,
                device=args.device, extra_models_dirs=args.extra_models_dir or (), allow_pickle=args.allow_pickle,
                cpus_per_worker=args.ray_cpus_per_worker, max_workers=args.ray_workers,
                worker_outputs_dir=args.worker_outputs_dir, duration_s=args.duration, on_event=progress)
        else:
            generator = _generator(args)
            summary = batches.run_local(lines, generator, results, duration_s=args.duration, on_event=progress)
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
