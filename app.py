"""The web app: `python app.py` serves the video generator page on http://127.0.0.1:7860/.

    python app.py [--host 127.0.0.1] [--port 7860] [--models-dir DIR] [--outputs-dir DIR]
                  [--auth USER:PASS] [--max-file-size 50MB] [--queue-size 20] [--open-browser]

Safe by default: it listens on this computer only, never makes a public share link, sends no
telemetry, serves only the outputs folder (never the models folder), limits uploads, and keeps
Gradio's temporary files in a folder of its own that it deletes on exit. Listening on anything
but loopback is refused unless a password is set with --auth. Every job is recorded in
outputs/history.sqlite3 (never served); jobs still queued when the app stops run when it starts
again, and a job cut off by a crash shows as interrupted, one click from running again.

The page lives in `video_gen/web/` (one module per tab); this file only reads flags and starts the server.
`build_app(generator, ...)` and `launch(args, ...)` let tests and benchmarks start it in-process.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import ipaddress
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
from pathlib import Path

# Before gradio is imported anywhere: no telemetry.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_FILE_SIZE = "50MB"  # matches video_gen.images.MAX_IMAGE_BYTES: no photo a video model needs is bigger
DEFAULT_QUEUE_SIZE = 20
EXIT_BAD_INPUT, EXIT_FAILURE = 1, 2
_SIZE_UNITS = {"": 1, "b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # bad input exits with 1, like the CLI (README: exit codes)
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="app.py", description="Serve the image-to-video page on this computer.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on (default 127.0.0.1: this computer only; anything else needs --auth)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 7860)")
    parser.add_argument("--models-dir", default=os.environ.get("VIDEO_GEN_MODELS_DIR") or "models",
                        help="folder of installed models (default $VIDEO_GEN_MODELS_DIR or ./models)")
    parser.add_argument("--outputs-dir", default=os.environ.get("VIDEO_GEN_OUTPUTS_DIR") or "outputs",
                        help="where videos are written (default $VIDEO_GEN_OUTPUTS_DIR or ./outputs)")
    parser.add_argument("--auth", metavar="USER:PASS", help="require this user name and password to open the page")
    parser.add_argument("--max-file-size", default=DEFAULT_MAX_FILE_SIZE, metavar="SIZE",
                        help="largest upload, such as 50MB or 500KB (default 50MB)")
    parser.add_argument("--queue-size", type=int, default=DEFAULT_QUEUE_SIZE, metavar="N",
                        help="jobs that may wait for their turn; more are refused (default 20)")
    parser.add_argument("--temp-dir", metavar="DIR",
                        help="Gradio's temporary files: uploads, copies of results "
                             "(default: a new folder, deleted on exit)")
    parser.add_argument("--open-browser", dest="open_browser", action="store_true", default=False,
                        help="open the page in the default browser once the server is up")
    parser.add_argument("--no-browser", dest="open_browser", action="store_false", help="do not open a browser")
    parser.add_argument("--extra-models-dir", action="append", default=[], metavar="DIR",
                        help="another folder to find models in, e.g. a ComfyUI or A1111 folder (repeatable); "
                             "the Hugging Face cache is always searched")
    args = parser.parse_args(argv)
    try:
        args.auth = parse_auth(args.auth)
        args.max_file_size = parse_size(args.max_file_size)
    except ValueError as error:
        parser.error(str(error))
    if not 1 <= args.queue_size <= 10_000:
        parser.error(f"--queue-size must be from 1 to 10000, got {args.queue_size}")
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be from 1 to 65535, got {args.port}")
    problem = binding_problem(args.host, args.auth)
    if problem:
        parser.exit(EXIT_BAD_INPUT, f"app.py: {problem}\n")
    return args


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise ValueError("--auth must be USER:PASS with both parts non-empty")
    return user, password


def parse_size(text: str | int) -> int:
    """'50MB', '500kb', '1GB' or a number of bytes, to bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]?b?)\s*", str(text), re.IGNORECASE)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"--max-file-size must be a size such as 50MB, 500KB or 1GB, got {text!r}")
    unit = match.group(2).lower()
    if unit and not unit.endswith("b"):
        unit += "b"  # "50M" means 50 MB
    return int(match.group(1)) * _SIZE_UNITS[unit]


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def binding_problem(host: str, auth) -> str | None:
    """Why listening on `host` is refused, or None. Off loopback, anyone who can reach the port could
    use the GPU, read the outputs and fill the disk, so a password is required there."""
    if is_loopback(host) or auth:
        return None
    return (f"refusing to listen on {host} without --auth USER:PASS: anyone on your network could use this "
            f"computer's GPU and see its videos; add --auth, or use --host 127.0.0.1 (this computer only)")


def build_app(generator, *, queue_size: int = DEFAULT_QUEUE_SIZE, work_dir: str | os.PathLike | None = None,
              history=None):
    """The page (a `gr.Blocks`) for `generator`, Generate queued one job at a time, at most `queue_size` waiting.

    Gradio's temporary files (uploads, copies of results) go to `work_dir` (made if missing); when
    None, a fresh folder that is deleted when the process exits. `history` (`video_gen.history.History`):
    every job is recorded there, and the jobs it holds as queued are run.
    """
    work_dir = Path(work_dir) if work_dir else _own_temp_dir()
    work_dir.mkdir(parents=True, exist_ok=True)
    # Read when each component is created (gradio.blocks.Block.GRADIO_CACHE) and when the server starts.
    os.environ["GRADIO_TEMP_DIR"] = str(work_dir.resolve())
    from video_gen.web.app import build_ui

    return build_ui(generator, work_dir=work_dir / "video-gen", queue_size=queue_size, history=history)


def launch(args: argparse.Namespace, *, generator=None, block: bool = True, quiet: bool = False):
    """Start the server for `args` (from `parse_args`). Returns the running `gr.Blocks` when `block`
    is False (its `local_url`; stop it with `.close()`); otherwise serves until Ctrl+C."""
    from video_gen import Generator
    from video_gen.web.app import CSS

    problem = binding_problem(args.host, args.auth)
    if problem:
        raise SystemExit(f"app.py: {problem}")
    models_dir = Path(args.models_dir).resolve()
    outputs_dir = Path(args.outputs_dir).resolve()
    for name, folder in (("--outputs-dir", outputs_dir), ("--temp-dir", args.temp_dir)):
        # The models folder is never served, and that block would win over serving these.
        if folder and Path(folder).resolve().is_relative_to(models_dir):
            raise SystemExit(f"app.py: {name} {folder} is inside the models folder {models_dir}; "
                             f"choose another folder")
    history = open_outputs(outputs_dir)
    if generator is None:
        generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir, extra_models_dirs=args.extra_models_dir)
    demo = build_app(generator, queue_size=args.queue_size, work_dir=args.temp_dir, history=history)
    try:
        demo.launch(
            server_name=args.host, server_port=args.port, share=False, auth=args.auth,
            auth_message="Video generator: log in with the user name and password given to app.py --auth.",
            max_file_size=args.max_file_size,
            allowed_paths=[str(Path(generator.outputs_dir).resolve())],  # served: the outputs, nothing else
            blocked_paths=[str(models_dir), str(Path(generator.models_dir).resolve()), *private_paths(outputs_dir)],
            enable_monitoring=False, mcp_server=False, ssr_mode=False, pwa=False, run_history=False,
            footer_links=["api", "settings"], show_error=False, quiet=True, inbrowser=args.open_browser,
            prevent_thread_lock=True, css=CSS,
            # Gradio's own check that the page answers gives up at the first HEAD request slower than 3 s and then
            # refuses to start ("When localhost is not accessible…"): seen on a busy 2-core machine. The check is
            # made here instead, with patience (`answers`).
            _frontend=False,
        )
    except OSError:  # Gradio's "Cannot find empty port": taken, or not ours to use
        raise SystemExit(f"app.py: cannot listen on {args.host}:{args.port}: the port is in use; "
                         f"choose another with --port") from None
    if not answers(demo.local_url):
        demo.close()
        raise SystemExit(f"app.py: the page did not answer at {demo.local_url} within {START_TIMEOUT_S:.0f} s")
    if not quiet:
        url = demo.local_url
        where = "this computer only" if is_loopback(args.host) else f"listening on {args.host}, login required"
        from video_gen.web.app import startup_lines

        # The URL, the device and its memory, the models found (a demo labelled as one) and where outputs go.
        print("\n".join(startup_lines(generator, url, where=where)), flush=True)
    if block:
        try:
            demo.block_thread()
        finally:
            demo.close()
    return demo


# How long a started server may take to answer its first request (a busy machine; the first page is built then)
START_TIMEOUT_S = 60.0


def answers(url: str, timeout_s: float = START_TIMEOUT_S) -> bool:
    """Whether the server at `url` answers (any HTTP status: a login page counts) within `timeout_s`."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=10).close()
            return True
        except urllib.error.HTTPError:
            return True  # it answered, with a status of its own (401 without a login)
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)


def open_outputs(outputs_dir: Path):
    """Start-up of the outputs folder: make it, remove what a killed run left half-written in its
    `.partial` work area, and open the job history (jobs left running become interrupted when the page
    is built). A folder that cannot be written is refused now, not after the first job has run."""
    from video_gen import history as job_history
    from video_gen import video_io

    try:
        outputs_dir.mkdir(parents=True, exist_ok=True)
        video_io.clean_partial(outputs_dir)
        video_io.partial_dir(outputs_dir)
        probe = outputs_dir / video_io.PARTIAL_DIRNAME / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise SystemExit(f"app.py: cannot write to the outputs folder {outputs_dir}: "
                         f"{error.strerror or error}; choose another with --outputs-dir") from None
    try:
        return job_history.History(job_history.history_path(outputs_dir), outputs_dir=outputs_dir)
    except (sqlite3.Error, RuntimeError) as error:
        raise SystemExit(f"app.py: cannot open the job history {job_history.history_path(outputs_dir)}: {error}"
                         ) from None


def private_paths(outputs_dir: Path) -> list[str]:
    """What lies in the outputs folder but is never served: the history database (and SQLite's WAL and
    shared-memory files beside it) and the work area of files being written."""
    from video_gen import history as job_history
    from video_gen import video_io

    database = job_history.history_path(outputs_dir)
    return [str(database), f"{database}-wal", f"{database}-shm", f"{database}-journal",
            str(outputs_dir / video_io.PARTIAL_DIRNAME)]


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Let all threads share a few glibc heaps instead of one per thread (glibc's default: up to 8 per core).

    The page runs every job and every waiting tab's handler in threads of their own; each new thread that
    allocates gets its own heap, which keeps memory no other thread can reuse. Measured with
    tests/test_load.py (20 jobs from 4 clients, `app.py` in its own process, 2 cores): the server's RSS
    grew 6-12 % from the first job to the 20th without this, 0.3 % (twice) with 2 arenas, at the same speed.
    `main` calls it before any thread starts.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(-8, int(arenas))  # -8: M_ARENA_MAX
        except (OSError, AttributeError):  # not glibc
            pass


def _own_temp_dir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="video-gen-gradio-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_malloc_arenas()
    from video_gen.console import quiet_libraries

    quiet_libraries()  # library chatter a user cannot act on (progress bars, the torchvision notice)
    # `kill` (SIGTERM) exits like Ctrl+C does, so atexit removes the app's temp folder.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    launch(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
