"""What every `video-gen` command shares: exit codes, the parser that exits with 1 on a bad flag, the options
of every command (`--models-dir`, `--device`, …), the engine built from them, the progress bar, and the one-line
error a failure prints. stdout carries only results (a path, or one JSON line); the rest goes to stderr."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..request import FIELD

EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse exits with 2 on a bad flag; for us that is bad input: exit 1, one line, with the nearest flag or
    command when the word given is none ("did you mean --seed?")."""

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            from .checks import unrecognized

            self.error(unrecognized(self, parsed, extras))
        return parsed

    def error(self, message: str) -> None:
        if message.startswith("argument command: invalid choice"):
            from .checks import invalid_choice

            message = invalid_choice(self, message)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see --help)\n")


def common_options() -> argparse.ArgumentParser:
    """The options every command takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", help="folder of installed models (default $VIDEO_GEN_MODELS_DIR or ./models)")
    common.add_argument("--outputs-dir", help="where videos go (default $VIDEO_GEN_OUTPUTS_DIR or ./outputs)")
    common.add_argument("--device", help="cuda, cuda:N, mps or cpu (default: the best available)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument("--extra-models-dir", action="append", metavar="DIR",
                        help="another folder to find models in, e.g. a ComfyUI or A1111 folder (repeatable)")
    common.add_argument("--allow-pickle", action="store_true",
                        help="also load .ckpt/.pt/.bin/.pth files (read with torch.load(weights_only=True)); "
                             "off by default because a pickle can run code")
    return common


def generator(args):
    """The engine for a command's options."""
    from ..engine import Generator

    return Generator(models_dir=args.models_dir, outputs_dir=args.outputs_dir, device=args.device,
                     extra_models_dirs=args.extra_models_dir or (), allow_pickle=args.allow_pickle)


def outputs_dir(args) -> Path:
    return Path(args.outputs_dir or os.environ.get("VIDEO_GEN_OUTPUTS_DIR") or "outputs")


def user_message(error: BaseException) -> str:
    """One line; request fields are called by their flag names on the command line."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    name = getattr(error, "field", None)
    flag = FIELD[name].cli_flag if name in FIELD else None
    if flag and text.startswith(f"{name}:"):
        text = f"{flag} ({name}){text[len(name):]}"
    return text


class ProgressBar:
    """A tqdm bar on stderr per stage that has steps, and a line per stage. When stderr is not a terminal (a log
    file, a pipe) a bar's carriage returns and escape codes would be noise: one line per stage instead."""

    def __init__(self) -> None:
        self._bar = None
        self._stage = None
        self.terminal = sys.stderr.isatty()

    def __call__(self, event) -> None:
        from ..events import STAGE_LABELS

        if event.kind == "stage":
            self.close()
            print(f"{event.message}…", file=sys.stderr)
        elif event.kind == "step" and not self.terminal:
            if self._stage != event.stage:  # one line as a stage with steps begins
                self._stage = event.stage
                segment = f" (segment {event.segment} of {event.segments})" if event.segments > 1 else ""
                print(f"{STAGE_LABELS[event.stage]}{segment}: {event.total} steps…", file=sys.stderr)
        elif event.kind == "step":
            from tqdm import tqdm

            if self._stage != event.stage:
                self.close()
                self._bar = tqdm(total=event.total, desc=STAGE_LABELS[event.stage], file=sys.stderr, unit="step")
                self._stage = event.stage
            self._bar.update(event.index - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._stage = None, None


def progress_bar(args) -> ProgressBar | None:
    return None if getattr(args, "quiet", False) else ProgressBar()
