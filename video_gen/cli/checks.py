"""The command line's mistakes, said before anything heavy is imported (issue 29: a missing file took 5-11 s to
report because torch and diffusers loaded first): the files a command names exist, lengths are positive, the
request's flags pass the field table's own checks (`GenerationRequest.validate`, pure Python), and a flag that
is not one gets the nearest one that is ("did you mean --seed?"). Imports nothing heavier than the field table.
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from ..errors import InvalidRequest
from ..request import GenerationRequest
from .flags import request_values, vary_field_name


def precheck(args: argparse.Namespace) -> None:
    """Raise InvalidRequest (one line naming the input) for what can be told wrong without loading anything."""
    command, values = args.command, request_values(args)
    if command in ("generate", "sweep"):
        _exists("image", getattr(args, "image", None))
    if command == "generate":
        _exists("from", args.from_video)
    if command in ("extend", "inspect"):
        _exists("video", args.video)
    if command == "batch":  # a batch that cannot be read at all (a bad line is that line's error, later)
        from ..batch import read_batch

        read_batch(args.sources, values)
    if command in ("generate", "sweep", "extend", "batch"):
        duration = getattr(args, "duration", None)
        if duration is not None and not duration > 0:
            raise InvalidRequest("duration", f"must be more than 0 seconds, got {duration:g}")
        if command == "extend" and args.frames is not None and args.frames < 1:
            raise InvalidRequest("frames", f"must be a whole number of new frames from 1 up, got {args.frames}")
        _exists("last_image", values.get("last_image"))
        for keyframe in values.get("keyframes") or ():
            _exists("keyframes", keyframe.image)
        if command != "batch":  # a batch's flags are defaults that its lines may complete
            GenerationRequest(**values).validate()
    if command == "sweep":
        from ..sweep import parse_vary

        for text in args.vary:
            parse_vary(vary_field_name(text))


def _exists(field: str, path) -> None:
    if path is None:
        return
    if not Path(path).exists():
        raise InvalidRequest(field, f"file not found: {path}")


def unrecognized(parser: argparse.ArgumentParser, namespace: argparse.Namespace, extras: list[str]) -> str:
    """argparse's "unrecognized arguments" line, with the nearest flag of the chosen command for each unknown
    one."""
    options = _options(_chosen(parser, namespace))
    hints = []
    for word in extras:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            close = difflib.get_close_matches(flag, options, n=1, cutoff=0.6)
            if close:
                hints.append(f"{flag}: did you mean {close[0]}?")
    message = f"unrecognized arguments: {' '.join(extras)}"
    return message + (f" ({'; '.join(hints)})" if hints else "")


def invalid_choice(parser: argparse.ArgumentParser, message: str) -> str:
    """argparse's "invalid choice: 'genrate'" for a command, with the nearest command."""
    word = message.split("'", 2)[1] if message.count("'") >= 2 else ""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            close = difflib.get_close_matches(word, list(action.choices), n=1, cutoff=0.6)
            if close:
                return f"{message} (did you mean {close[0]}?)"
    return message


def _chosen(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the command (and sub-command) that was given."""
    current = parser
    for key in ("command", "models_command"):
        name = getattr(namespace, key, None)
        action = next((action for action in current._actions if isinstance(action, argparse._SubParsersAction)),
                      None)
        if name is None or action is None or name not in action.choices:
            break
        current = action.choices[name]
    return current


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings if option.startswith("--")]


__all__ = ["precheck", "unrecognized", "invalid_choice"]
