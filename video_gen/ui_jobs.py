"""The web page's jobs: each Generate click runs in a worker thread that talks to the page by messages.

FramePack's pattern (STYLE.md): a worker thread calls `Generator.generate` and puts what happens on
the job's queue — the engine's own typed events (`StageEvent`, `StepEvent`, `PreviewEvent`), then
exactly one `JobEnded` — and the Gradio handler only reads that queue and turns messages into page
updates. This module imports neither torch nor gradio.

Cancelling is per browser session: a tab's Cancel button (or the tab closing) stops that tab's job
and never another's. The stop is checked at every event the engine sends, which is every denoising
step, every decoded chunk and every stage change, the same points where `Generator.cancel` is
checked; at that moment the job's own thread calls `Generator.cancel()` (so the running engine job
is certainly this one) and raises `Cancelled`, and the engine frees the job's memory on the way out.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import Cancelled, InvalidRequest, VideoGenError
from .events import DoneEvent
from .request import GenerationRequest

log = logging.getLogger(__name__)

DONE, CANCELLED, FAILED = "done", "cancelled", "failed"


@dataclass(frozen=True)
class JobEnded:
    """The last message of every job."""

    outcome: str  # DONE, CANCELLED or FAILED
    message: str  # one line for the page: what happened, or what was wrong
    record: OutputRecord | None = None  # DONE only
    kind: str = "ended"


@dataclass(frozen=True)
class Tick:
    """Nothing arrived for a while (loading a model, say): lets the page refresh its clock."""

    elapsed_s: float | None  # since the job started running; None while it waits its turn
    kind: str = "tick"


@dataclass(frozen=True)
class OutputRecord:
    """One finished video, as the page shows it (player, download button, info panel, gallery)."""

    path: Path  # what the engine wrote: a video file, or a folder of PNG frames
    playable: Path  # a file a <video> element can play
    download: Path  # one file to save (the video itself, or a zip of the PNG frames)
    info: dict[str, Any]
    caption: str
    seed: int


class WebJob:
    """One Generate click: its request, its message queue and its cancel flag."""

    def __init__(self, request: GenerationRequest, session: str, preview_every: int):
        self.request = request
        self.session = session
        self.preview_every = preview_every
        self.messages: queue.Queue = queue.Queue()
        self.cancel_requested = threading.Event()
        self.finished = threading.Event()
        self.started: float | None = None  # monotonic time of the engine's first event
        self.started_at: datetime | None = None

    @property
    def elapsed_s(self) -> float | None:
        return None if self.started is None else time.monotonic() - self.started

    def batches(self, every_s: float = 0.2, tick_s: float = 0.5) -> Iterator[list[Any]]:
        """The job's messages in order, in batches at most every `every_s`; the last batch ends with `JobEnded`.

        After `tick_s` of silence (loading a model, say) a batch of one `Tick` lets the page refresh its
        clock. Batching matters on small jobs: every page update costs Python time that the engine's own
        Python (diffusers' loop) then waits for; on 2 CPU cores, one update per event made a 10-step
        64x64 job about 25% slower than one update per batch. The short waits also keep the Gradio
        handler responsive: Gradio can close a cancelled generator only between two `next()` calls.
        """
        last_batch = 0.0
        while True:
            try:
                batch = [self.messages.get(timeout=tick_s)]
            except queue.Empty:
                yield [Tick(self.elapsed_s)]
                continue
            deadline = max(time.monotonic(), last_batch + every_s)
            while not isinstance(batch[-1], JobEnded):
                try:
                    batch.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            last_batch = time.monotonic()
            yield batch
            if isinstance(batch[-1], JobEnded):
                return


class JobBoard:
    """Starts web jobs on the shared `Generator`, cancels them per session, keeps this run's outputs."""

    def __init__(self, generator, work_dir: str | Path):
        self.generator = generator
        self.work_dir = Path(work_dir)  # derived files (previews of PNG frames, zips); not the outputs
        self._lock = threading.Lock()
        self._jobs: list[WebJob] = []  # not yet finished
        self._records: list[OutputRecord] = []
        self._cancelled_at: dict[str, float] = {}  # session -> when a job of it was last asked to stop
        self._closed: dict[str, float] = {}  # session -> when its tab was closed

    # ---- jobs ---------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, session: str, preview_every: int = 0) -> WebJob:
        """Start `request` for `session` in a new worker thread; its messages arrive on `job.batches()`.

        A fresh thread per job, ending with it: on the CPU, torch is about 2x slower in a process where
        two long-lived threads take turns running it (each keeps an OpenMP team that spins; measured on
        2 cores, a 10-step 64x64 job went from 0.49 s to 0.91 s), while a thread that ends takes its team
        with it. Jobs never overlap: `Generator.generate` runs one at a time.
        """
        job = WebJob(request, session, preview_every)
        with self._lock:
            self._jobs.append(job)
        threading.Thread(target=self._work, args=(job,), name=f"video-gen-web-{session[:8]}", daemon=True).start()
        return job

    def cancel(self, session: str) -> int:
        """Ask every unfinished job of `session` to stop; returns how many were asked."""
        with self._lock:
            jobs = [job for job in self._jobs if job.session == session]
        for job in jobs:
            self.cancel_job(job)
        return len(jobs)

    def cancel_job(self, job: WebJob) -> None:
        job.cancel_requested.set()
        now = time.monotonic()
        with self._lock:
            self._cancelled_at[job.session] = now
            for session, at in list(self._cancelled_at.items()):
                if now - at > 60:
                    del self._cancelled_at[session]

    def close_session(self, session: str) -> None:
        """The session's tab is gone: stop its jobs, and any job of it that starts later ends at once.

        Gradio keeps a closed tab's queued event and starts it when its turn comes; only its handler
        can then tell that nobody is watching (`is_closed`)."""
        self.cancel(session)
        now = time.monotonic()
        with self._lock:
            self._closed[session] = now
            for old, at in list(self._closed.items()):
                if now - at > 24 * 3600:  # a session hash is never reused; a day covers any queue
                    del self._closed[old]

    def is_closed(self, session: str) -> bool:
        with self._lock:
            return session in self._closed

    def recently_cancelled(self, session: str, within_s: float = 10.0) -> bool:
        """Whether a job of `session` was asked to stop in the last `within_s` seconds.

        The page's Cancel both calls `cancel` and has Gradio close the running handler, which cancels
        the job too; whichever comes second must still say that the job was cancelled.
        """
        with self._lock:
            at = self._cancelled_at.get(session)
        return at is not None and time.monotonic() - at <= within_s

    # ---- outputs of this run --------------------------------------------------------------
    @property
    def records(self) -> list[OutputRecord]:
        with self._lock:
            return list(self._records)

    # ---- the worker -----------------------------------------------------------------------
    def _work(self, job: WebJob) -> None:
        def on_event(event) -> None:
            if isinstance(event, DoneEvent):
                return  # the result comes back from generate(); the video is already written
            if job.started is None:
                job.started, job.started_at = time.monotonic(), datetime.now()
            if job.cancel_requested.is_set():
                # We are inside this job's own event, so the engine's running job is this one.
                self.generator.cancel()
                raise Cancelled()
            job.messages.put(event)

        try:
            result = self.generator.generate(job.request, on_event=on_event, preview_every=job.preview_every)
            record = self._record(job, result)
            ended = JobEnded(DONE, f"done in {result.elapsed_s:.1f} s, seed {result.seed}", record)
        except Cancelled:
            ended = JobEnded(CANCELLED, "cancelled")
        except InvalidRequest as error:
            ended = JobEnded(FAILED, str(error))
        except VideoGenError as error:
            ended = JobEnded(FAILED, _first_line(error))
        except Exception as error:  # noqa: BLE001 - the page gets one line, the log the traceback
            log.exception("web job failed")
            ended = JobEnded(FAILED, f"unexpected error: {_first_line(error)} (details in the server log)")
        with self._lock:
            self._jobs.remove(job)
            if ended.record is not None:
                self._records.append(ended.record)
        job.finished.set()
        job.messages.put(ended)

    def _record(self, job: WebJob, result) -> OutputRecord:
        path = Path(result.path)
        playable = download = path
        if path.is_dir():  # PNG frames: a playable preview and one zip to download
            playable, download = self._png_preview(path, result.request.fps), self._zip(path)
        finished_at = datetime.now()
        info = result_info(result, job, finished_at)
        request = result.request
        caption = f"seed {result.seed} · {request.width}×{request.height} · {result.frames_written} frames"
        return OutputRecord(path, playable, download, info, caption, result.seed)

    def _png_preview(self, folder: Path, fps: int) -> Path:
        from . import video_io

        frames, _ = video_io.read_video(folder)
        target = video_io.unique_path(self._derived_dir() / f"{folder.name}.preview.mp4")
        return video_io.write_video(frames, target, fps=fps, format="mp4")

    def _zip(self, folder: Path) -> Path:
        target = self._derived_dir() / f"{folder.name}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
            for file in sorted(folder.iterdir()):
                if file.is_file():
                    archive.write(file, f"{folder.name}/{file.name}")
        return target

    def _derived_dir(self) -> Path:
        folder = self.work_dir / "derived"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def result_info(result, job: WebJob | None = None, finished_at: datetime | None = None) -> dict[str, Any]:
    """What the info panel shows: model, seed, every parameter, times and memory."""
    request = result.request
    info: dict[str, Any] = {
        "model": result.model,
        "seed": result.seed,
        "frames": result.frames_written,
        "fps": request.fps,
        "duration_s": round(result.frames_written / request.fps, 2) if request.fps else None,
        "resolution": f"{request.width}x{request.height}",
        "plan": result.plan.describe() if getattr(result, "plan", None) else None,
        "output": str(result.path),
        "elapsed_s": round(result.elapsed_s, 2),
        "peak_memory": format_bytes(result.peak_memory_bytes) if result.peak_memory_bytes else "n/a (CPU)",
        "device": result.device,
        "dtype": result.dtype,
        "timings_s": {stage: round(seconds, 3) for stage, seconds in result.timings.items()},
        "parameters": request.to_dict(),
    }
    if job is not None and job.started_at is not None:
        info["started_at"] = job.started_at.isoformat(timespec="milliseconds")
    if finished_at is not None:
        info["finished_at"] = finished_at.isoformat(timespec="milliseconds")
    return info


def format_bytes(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


__all__ = ["JobBoard", "WebJob", "JobEnded", "Tick", "OutputRecord", "result_info", "DONE", "CANCELLED", "FAILED"]
