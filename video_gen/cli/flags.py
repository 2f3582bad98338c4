"""The request's flags, from the one field table (`request.FIELDS`): every field with a `flag` becomes an option
of `generate`, `sweep`, `batch` and `extend` (each skips the ones it defines its own way), with the field's help
and where its default comes from; `request_values` reads them back by field name. A field added to the table is a
flag of every command at once."""

from __future__ import annotations

import argparse
from typing import Any

from ..loras import parse_flag
from ..request import FIELD, FIELDS, MODELS_OWN, Choice, Field, Flag, Keyframe, Keyframes, Loras, Number, Whole


def add_request_flags(parser: argparse.ArgumentParser, *, skip: frozenset[str] = frozenset(),
                      duration: bool = True) -> None:
    """Add a flag for every field of the table that has one (but those in `skip`); `--frames` and `--duration`
    (seconds, at the video's frame rate) exclude each other."""
    length = parser.add_mutually_exclusive_group() if duration else parser
    if duration:
        length.add_argument("--duration", type=float, help="length in seconds; frames = duration x fps, to the "
                                                           "nearest count the model makes")
    for field in FIELDS:
        if field.cli_flag is None or field.name in skip:
            continue
        target = length if field.name == "num_frames" else parser
        options = _argparse_options(field)
        metavar = field.metavar or (None if "choices" in options else field.cli_flag[2:].upper().replace("-", "_"))
        target.add_argument(field.cli_flag, dest=dest(field), help=_help(field), metavar=metavar, **options)


def dest(field: Field) -> str:
    return "request_" + field.name


def request_values(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields the command line set, by name (what was left out is not there: the model's default)."""
    values = {}
    for field in FIELDS:
        value = getattr(args, dest(field), None)
        if value is not None:
            values[field.name] = tuple(value) if field.repeat else value
    return values


def field_for_flag(name: str) -> str | None:
    """The field a flag's name stands for ("motion" or "--motion" -> "motion_bucket_id"), or None."""
    flag = "--" + name.strip().lstrip("-").replace("_", "-")
    return next((field.name for field in FIELDS if field.cli_flag == flag), None)


def vary_field_name(vary: str) -> str:
    """`--vary motion=…` (a flag's name) as `motion_bucket_id=…` (the request field's)."""
    name, separator, values = vary.partition("=")
    field = field_for_flag(name) if separator and not name.strip().startswith("lora:") else None
    return f"{field}{separator}{values}" if field else vary


def _help(field: Field) -> str:
    if field.default is MODELS_OWN:
        where = "default: the model's"
    elif field.default in (None, (), "") or isinstance(field.kind, Flag):
        return field.help
    else:
        where = f"default {field.default}"
    return f"{field.help} ({where})"


def _argparse_options(field: Field) -> dict[str, Any]:
    kind = field.kind
    if isinstance(kind, Flag):  # given: on; left out: None, the field's default
        return {"action": "store_const", "const": True}
    if isinstance(kind, Loras):
        return {"action": "append", "type": parse_flag}
    if isinstance(kind, Keyframes):
        return {"action": "append", "type": keyframe_flag}
    if isinstance(kind, Whole):
        return {"type": int}
    if isinstance(kind, Number):
        return {"type": float}
    if isinstance(kind, Choice) and all(isinstance(value, str) for value in kind.allowed()):
        return {"choices": kind.allowed()}
    return {}


def keyframe_flag(text: str) -> Keyframe:
    """--keyframe PATH@FRAME (the last @ splits: a path may hold one)."""
    path, separator, frame = text.rpartition("@")
    if not separator or not path or not frame.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be PATH@FRAME, e.g. middle.png@48, got {text!r}")
    return Keyframe(image=path, frame=int(frame))


__all__ = ["add_request_flags", "request_values", "field_for_flag", "vary_field_name", "keyframe_flag", "FIELD"]
