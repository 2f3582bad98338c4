"""`video-gen info` (this machine's device and the longest videos that fit its memory) and `video-gen selftest` (a
tiny model made, run, encoded and read back: the install checked in seconds, without a download)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .. import memory
from ..demo import DEMO_NOTE, is_demo
from ..errors import InvalidRequest, VideoGenError
from ..request import GenerationRequest
from ..version import __version__
from .common import EXIT_FAILED, EXIT_OK, generator


def add_parsers(commands, common) -> None:
    info = commands.add_parser("info", parents=[common],
                               help="describe this machine's device and the longest videos that fit its memory")
    info.add_argument("--vram", type=float, metavar="GB",
                      help="plan for a GPU with this much memory instead of this machine's (e.g. 12)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    selftest = commands.add_parser("selftest", parents=[common],
                                   help="generate with a tiny built-in model to check the install")
    selftest.add_argument("--keep", action="store_true",
                          help="keep the tiny model in the models folder as the demo model (demo-svd-tiny)")


def info_command(args) -> int:
    """The device report, and for each installed model and preset size the most frames that fit."""
    import platform

    import torch

    if args.vram is not None and not 0.5 <= args.vram <= 1024:
        raise InvalidRequest("vram", f"must be between 0.5 and 1024 GB, got {args.vram:g}")
    engine = generator(args)
    report = engine.device_report()
    rows = engine.length_table(args.vram)
    demos = [model.name for model in engine.list_models() if is_demo(model)]
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


def selftest_command(args) -> int:
    """Build a tiny random model, generate with it, encode, read the video back: checks torch, diffusers,
    ffmpeg and the disk in seconds, without downloading anything. One line per stage; exit 0, or 2."""
    import tempfile

    import numpy as np
    from PIL import Image

    from .. import video_io
    from ..engine import Generator
    from ..tiny.sd import build_tiny_svd

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
                from ..downloads import install_demo
                from ..checkpoints import default_models_dir

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
        from ..console import command

        print(f"selftest: kept the tiny model as the demo model {model} (it makes noise, not video); "
              f"`{command('models list')}` shows it")
    return EXIT_OK
