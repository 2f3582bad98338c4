"""Batches: many jobs from a JSONL file, a folder of pictures or a list of pictures; resumable.

A batch is a list of `GenerationRequest`s, one per line:

- a JSONL file: one request per line, the keys of JSON mode (`video-gen json`); the command line's options are
  the defaults of every line, and a line's own keys win. A picture's relative path is looked up beside the JSONL
  file first, then in the current folder. Blank lines are skipped but keep their number.
- a folder (its pictures, by name) or a list of pictures, all with the command line's options.

It runs on the resident `Generator`, one job at a time (`run_local`), or on Ray (`batch_ray.run_ray`). Each
finished line is recorded in the results JSONL (`Results`): `{"line": n, "status": "success"|"error", "output",
"seed", "error", "sha256", "request_sha256", ...}`, rewritten atomically in line order after every job, so a
killed batch leaves a whole file. The resume rule (`Results.done`): a line is skipped when its last entry is a
success for the same request (`request_sha256`) and its output is still there with the recorded `sha256`; every
other line (errors included) runs again. A bad line is recorded with its line number and the batch goes on.

This module imports no torch: the engine is only touched through the `Generator` passed in.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import Cancelled, InvalidRequest, VideoGenError, first_line
from .request import GenerationRequest

log = logging.getLogger(__name__)

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PICTURE_FIELDS = ("image", "last_image")  # request fields that name a picture file
SUCCESS, ERROR = "success", "error"
BAD_INPUT, FAILED = "bad_input", "failed"  # an error entry's `kind`: the line's fault, or the run's


@dataclass(frozen=True)
class BatchLine:
    """One line of a batch: its request, or why it could not be read."""

    line: int  # 1-based: the JSONL file's line number, or the picture's place in the list
    request: GenerationRequest | None
    error: str | None = None  # the line could not be read (not JSON, an unknown key, ...)
    source: str = ""  # the picture or the JSONL file it came from

    @property
    def fingerprint(self) -> str | None:
        """The request's hash: a line whose request changed since its recorded success runs again."""
        if self.request is None:
            return None
        return hashlib.sha256(self.request.to_json().encode()).hexdigest()


# ---- reading a batch ---------------------------------------------------------------------------------------
def read_batch(sources: Sequence[str | os.PathLike], options: dict[str, Any] | None = None) -> list[BatchLine]:
    """The lines of a batch: one JSONL file, or pictures and folders of pictures, each with `options` (request
    fields) as defaults. Raises InvalidRequest only for a batch that cannot be read at all; a bad line becomes a
    `BatchLine` with its error."""
    options = dict(options or {})
    if not sources:
        raise InvalidRequest("batch", "give a JSONL file, a folder of pictures, or pictures")
    paths = [Path(source) for source in sources]
    jsonl = [path for path in paths if path.suffix.lower() in JSONL_SUFFIXES]
    if jsonl:
        if len(paths) > 1:
            raise InvalidRequest("batch", f"a JSONL file must be the only source, got {len(paths)} sources")
        return read_jsonl(jsonl[0], options)
    pictures: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = folder_pictures(path)
            if not found:
                raise InvalidRequest("batch", f"no pictures ({', '.join(PICTURE_SUFFIXES)}) in the folder {path}")
            pictures += found
        else:
            pictures.append(path)  # a missing picture is that line's error, found when it is checked
    lines = []
    for number, picture in enumerate(pictures, 1):
        try:
            lines.append(BatchLine(number, GenerationRequest.from_dict({**options, "image": str(picture)}),
                                   source=str(picture)))
        except InvalidRequest as error:
            lines.append(BatchLine(number, None, str(error), str(picture)))
    return lines


def folder_pictures(folder: Path) -> list[Path]:
    """A folder's pictures by name (not hidden ones, not sub-folders)."""
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in PICTURE_SUFFIXES)


def read_jsonl(path: Path, options: dict[str, Any]) -> list[BatchLine]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRequest("batch", f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidRequest("batch", f"cannot read {path}: {first_line(error)}") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            lines.append(BatchLine(number, _line_request(raw, path.parent, options), source=str(path)))
        except InvalidRequest as error:
            lines.append(BatchLine(number, None, str(error), str(path)))
    if not lines:
        raise InvalidRequest("batch", f"{path} holds no requests (one JSON object per line)")
    return lines


def _line_request(raw: str, base: Path, options: dict[str, Any]) -> GenerationRequest:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidRequest("request", f"not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request", f"must be a JSON object, got {type(data).__name__}")
    request = GenerationRequest.from_dict({**options, **data})
    beside = {name: str(base / value) for name in PICTURE_FIELDS
              if isinstance(value := getattr(request, name), str) and value and not os.path.isabs(value)
              and (base / value).is_file()}
    return request.replace(**beside)


def default_results_path(sources: Sequence[str | os.PathLike], outputs_dir: str | os.PathLike) -> Path:
    """Where the results go without `--results`: beside a JSONL file (`shots.jsonl` -> `shots.results.jsonl`),
    else in the outputs folder, named after the folder (or `batch` for a list of pictures)."""
    first = Path(sources[0])
    if len(sources) == 1 and first.suffix.lower() in JSONL_SUFFIXES:
        return first.with_name(f"{first.stem}.results.jsonl")
    name = first.resolve().name if len(sources) == 1 and first.is_dir() else "batch"
    return Path(outputs_dir) / f"{name}.results.jsonl"


# ---- the results file and the resume rule ----------------------------------------------------------------
class Results:
    """A batch's results JSONL: the latest entry of each line, rewritten atomically in line order after each job."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[int, dict[str, Any]] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        for raw in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line edited by hand: that line simply runs again
            if isinstance(entry, dict) and isinstance(entry.get("line"), int):
                self.entries[entry["line"]] = entry

    def done(self, item: BatchLine) -> dict[str, Any] | None:
        """The line's recorded success, if it still holds: the same request, its output there with its hash."""
        entry = self.entries.get(item.line)
        if (entry is None or entry.get("status") != SUCCESS or item.fingerprint is None
                or entry.get("request_sha256") != item.fingerprint or not entry.get("output")):
            return None
        output = Path(entry["output"])
        if not output.exists() or output_sha256(output) != entry.get("sha256"):
            return None
        return entry

    def record(self, entry: dict[str, Any]) -> None:
        self.entries[entry["line"]] = entry
        self._write()

    def _write(self) -> None:
        """All entries, in line order, to a temporary file that replaces the results file once it is on disk:
        a batch killed at any moment leaves either the old file or the new one, never half a line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        try:
            with open(temporary, "w", encoding="utf-8") as file:
                for line in sorted(self.entries):
                    file.write(json.dumps(self.entries[line], sort_keys=True) + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def output_sha256(path: str | os.PathLike) -> str:
    """The hash of an output: a video file's bytes, or a PNG folder's file names and bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(file for file in path.iterdir() if file.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def success_entry(item: BatchLine, output: str | os.PathLike, seed: int, elapsed_s: float, **extra) -> dict:
    return {"line": item.line, "status": SUCCESS, "output": str(output), "seed": seed, "error": None,
            "sha256": output_sha256(output), "request_sha256": item.fingerprint, "source": item.source,
            "elapsed_s": round(elapsed_s, 3), "finished_at": _now(), **extra}


def error_entry(item: BatchLine, message: str, kind: str, **extra) -> dict:
    seed = item.request.seed if item.request is not None else None
    return {"line": item.line, "status": ERROR, "output": None, "seed": seed, "error": message, "kind": kind,
            "request_sha256": item.fingerprint, "source": item.source, "finished_at": _now(), **extra}


def _now() -> str:
    return datetime.now().isoformat(timespec="milliseconds")


# ---- running ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchEvent:
    """What a batch runner reports: a line started, was skipped, or finished (with its results entry); `job`
    carries the engine's own events of the running line (local runs only)."""

    kind: str  # "started", "skipped", "finished" or "job"
    line: int
    done: int  # lines finished or skipped so far
    total: int
    entry: dict[str, Any] | None = None
    job: Any = None  # the engine's StageEvent / StepEvent for kind "job"


BatchCallback = Callable[[BatchEvent], None]


@dataclass
class BatchSummary:
    total: int
    results_path: Path
    ran: list[int] = field(default_factory=list)  # lines run now, successfully, in line order
    skipped: list[int] = field(default_factory=list)  # lines done by an earlier run
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)  # line -> its error entry
    retries: int = 0  # Ray: jobs run again because their worker died

    @property
    def exit_code(self) -> int:
        """0: every line succeeded; 1: only bad lines failed; 2: a job failed while running."""
        if not self.errors:
            return 0
        return 2 if any(entry.get("kind") == FAILED for entry in self.errors.values()) else 1

    def line(self) -> str:
        text = f"{self.total} lines: {len(self.ran)} made"
        if self.skipped:
            text += f", {len(self.skipped)} already done"
        if self.errors:
            text += f", {len(self.errors)} failed (lines {', '.join(map(str, sorted(self.errors)))})"
        if self.retries:
            text += f", {self.retries} run again after their worker died"
        return text + f"; results in {self.results_path}"


class Tally:
    """A runner's bookkeeping: records entries, counts lines and reports events (shared by local and Ray)."""

    def __init__(self, lines: Sequence[BatchLine], results: Results, on_event: BatchCallback | None):
        self.results = results
        self.summary = BatchSummary(len(lines), results.path)
        self.on_event = on_event
        self.done = 0

    def emit(self, kind: str, line: int, entry: dict | None = None, job: Any = None) -> None:
        if self.on_event is not None:
            self.on_event(BatchEvent(kind, line, self.done, self.summary.total, entry, job))

    def pending(self, lines: Iterable[BatchLine]) -> list[BatchLine]:
        """The lines to run: lines that could not be read are recorded as errors, lines done earlier skipped."""
        todo = []
        for item in lines:
            if item.error is not None:
                self.finish(item, error_entry(item, item.error, BAD_INPUT))
            elif self.results.done(item) is not None:
                self.done += 1
                self.summary.skipped.append(item.line)
                self.emit("skipped", item.line, self.results.entries[item.line])
            else:
                todo.append(item)
        return todo

    def finish(self, item: BatchLine, entry: dict[str, Any]) -> None:
        self.results.record(entry)
        self.done += 1
        if entry["status"] == SUCCESS:
            bisect.insort(self.summary.ran, item.line)  # line order, whatever order the workers finish in
        else:
            self.summary.errors[item.line] = entry
        self.emit("finished", item.line, entry)


def execute(generator, request: GenerationRequest, duration_s: float | None = None, on_event=None):
    """One line on a resident `Generator` (locally, or inside a Ray worker). `duration_s` (the command line's
    --duration) becomes frames at the line's rate, which its model's defaults may decide."""
    if duration_s is not None and request.num_frames is None:
        request = generator.with_duration(request, duration_s)
    job = generator.prepare(request)
    if request.image and not request.output_path:  # the picture's name in the output's (issue 29)
        job = dataclasses.replace(job, label=Path(request.image).stem)
    return generator.generate(job, on_event=on_event)


def run_line(generator, item: BatchLine, duration_s: float | None = None, on_event=None) -> dict[str, Any]:
    """Run one line and return its results entry; an error of the line or of its run becomes an error entry."""
    try:
        result = execute(generator, item.request, duration_s, on_event)
    except InvalidRequest as error:
        return error_entry(item, first_line(error), BAD_INPUT)
    except Cancelled:
        raise
    except VideoGenError as error:
        return error_entry(item, first_line(error), FAILED)
    except Exception as error:  # one job's failure must not lose the rest of the batch; its traceback is logged
        log.exception("batch line %s failed", item.line)
        return error_entry(item, f"{type(error).__name__}: {first_line(error)}", FAILED)
    return success_entry(item, result.path, result.seed, result.elapsed_s, job=result.job_id)


def run_local(lines: Sequence[BatchLine], generator, results: Results, *, duration_s: float | None = None,
              on_event: BatchCallback | None = None) -> BatchSummary:
    """Run a batch on one resident `Generator`, one line at a time, in line order. Ctrl+C (KeyboardInterrupt)
    or `generator.cancel()` stops it after recording every finished line; the same call resumes it."""
    tally = Tally(lines, results, on_event)
    for item in tally.pending(lines):
        tally.emit("started", item.line)
        entry = run_line(generator, item, duration_s, lambda event, line=item.line: tally.emit("job", line, job=event))
        tally.finish(item, entry)
    return tally.summary


class BatchProgress:
    """The command line's progress: a bar over the batch's lines and, below it, one over the running job's steps."""

    def __init__(self, total: int, bars: bool = True):
        """`bars` False (--quiet): only the bad lines are said, one line each. When stderr is not a terminal (a
        log file, a pipe) bars would write their carriage returns and escape codes into it: one plain line per
        finished line instead (issue 29)."""
        from tqdm import tqdm

        self._tqdm = tqdm
        self._lines_only = bars and not sys.stderr.isatty()
        bars = bars and not self._lines_only
        self.lines = tqdm(total=total, desc="batch", unit="line", file=sys.stderr, position=0, disable=not bars)
        self._bars = bars
        self._job = None
        self._stage = None

    def __call__(self, event: BatchEvent) -> None:
        if event.kind == "finished" and event.entry["status"] == ERROR:
            self._tqdm.write(f"video-gen: batch line {event.line}: {event.entry['error']}", file=sys.stderr)
        elif self._lines_only and event.kind in ("finished", "skipped"):
            what = "already done" if event.kind == "skipped" else f"done: {event.entry.get('output')}"
            print(f"video-gen: batch line {event.line} ({event.done} of {event.total}) {what}", file=sys.stderr)
        if not self._bars:
            return
        if event.kind in ("finished", "skipped"):
            self._close_job()
            self.lines.update(event.done - self.lines.n)
        elif event.kind == "started":
            self.lines.set_postfix_str(f"line {event.line}")
        elif event.kind == "job" and getattr(event.job, "kind", None) == "step":
            from .events import STAGE_LABELS

            step = event.job
            if self._stage != step.stage:
                self._close_job()
                self._job = self._tqdm(total=step.total, desc=f"  line {event.line}: {STAGE_LABELS[step.stage]}",
                                       file=sys.stderr, unit="step", position=1, leave=False)
                self._stage = step.stage
            self._job.update(step.index - self._job.n)

    def _close_job(self) -> None:
        if self._job is not None:
            self._job.close()
        self._job, self._stage = None, None

    def close(self) -> None:
        self._close_job()
        self.lines.close()


__all__ = ["BatchLine", "BatchEvent", "BatchSummary", "Results", "read_batch", "run_local", "run_line",
           "default_results_path", "output_sha256"]
