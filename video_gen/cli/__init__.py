"""`video-gen`: the command line, one module per group of commands (each adds its parsers and handles its
command). stdout carries only results (a path, or one JSON line); progress, messages and errors go to stderr.
Exit codes: 0 success, 1 bad input, 2 failure while running, 130 interrupted.
"""

from __future__ import annotations

import sys
import traceback

from ..console import spell
from ..errors import Cancelled, InvalidRequest, VideoGenError
from ..version import __version__
from . import batch, extend, finishing, generate, models, sweep, system
from .checks import precheck
from .common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Parser, common_options, user_message

HANDLERS = {"generate": generate.generate_command, "json": generate.json_command, "models": models.models_command,
            "inspect": models.inspect_command, "history": models.history_command, "info": system.info_command,
            "selftest": system.selftest_command, "extend": extend.extend_command, "sweep": sweep.sweep_command,
            "batch": batch.batch_command, "upscale": finishing.upscale_command, "prompt": finishing.prompt_command}
# Commands that import diffusers or transformers: their chatter and progress bars are not the user's concern
_QUIETED = ("generate", "json", "selftest", "info", "extend", "sweep", "batch", "upscale", "prompt")


def build_parser() -> Parser:
    common = common_options()
    parser = Parser(prog="video-gen", description="Offline image-to-video generation.")
    parser.add_argument("--version", action="version", version=f"video-gen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in (generate, models, extend, sweep, system, batch, finishing):
        group.add_parsers(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe can still be told apart from a failure
        return code
    except BrokenPipeError:
        # `video-gen history | head`: the reader is gone, which is not an error (Python's own recipe: point stdout
        # at devnull, so the interpreter's last flush does not fail again).
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handler = HANDLERS[args.command]
    if args.command == "json":
        return handler(args)  # reports its own errors as JSON
    try:
        precheck(args)  # before anything heavy is imported: a mistake is said in a fraction of a second
    except InvalidRequest as error:
        return _fail(args, error, EXIT_BAD_INPUT)
    if not args.debug and (args.command in _QUIETED or getattr(args, "models_command", None) in ("demo", "list")):
        from ..console import quiet_libraries

        quiet_libraries()
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
    except BrokenPipeError:  # the reader of stdout has gone (`| head`): `main` ends quietly
        raise
    except Exception as error:  # a bug: one line for users, the traceback with --debug
        return _fail(args, error, EXIT_FAILED, unexpected=True)


def _fail(args, error: BaseException, code: int, unexpected: bool = False) -> int:
    if args.debug:
        traceback.print_exc()
    message = spell(user_message(error))
    if unexpected:
        message = f"{type(error).__name__}: {message} (run with --debug for the traceback)"
    print(f"video-gen: error: {message}", file=sys.stderr)
    return code


__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED"]
