"""The web page's jobs: each Generate click runs in a worker thread that talks to the page by messages.

FramePack's pattern (its `demo_gradio.py`): a worker thread calls `Generator.generate` and puts what happens on
the job's queue — the engine's own typed events (`StageEvent`, `StepEvent`, `PreviewEvent`), then
exactly one `JobEnded` — and the Gradio handler only reads that queue and turns messages into page
updates. This module imports neither torch nor gradio.

Cancelling is per browser session: a tab's Cancel button (or the tab closing) stops that tab's job
and never another's. The stop is checked at every event the engine sends, which is every denoising
step, every decoded chunk and every stage change, the same points where `Generator.cancel` is
checked; at that moment the job's own thread calls `Generator.cancel()` (so the running engine job
is certainly this one) and raises `Cancelled`, and the engine frees the job's memory on the way out.

The queue is the board's own, not Gradio's: a Generate handler submits at once and then only watches
its job, so every waiting job is known here, runs in submission order (one at a time: the next job's
thread starts when the last one ends) and is written to the history (`history.History`) the moment
it is submitted. Jobs still queued when the app stops are run again when it starts
(`JobBoard.resume`), and a job found running then was cut off and is marked interrupted.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import history as job_history
from ..errors import Cancelled, InvalidRequest, VideoGenError, first_line
from ..events import DoneEvent
from ..request import GenerationRequest

log = logging.getLogger(__name__)

DONE, CANCELLED, FAILED = "done", "cancelled", "failed"
RESUMED = "resumed"  # the session of jobs run again after a restart: nobody is watching them


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
class Waiting:
    """The job waits for its turn: `ahead` jobs run or wait before it."""

    ahead: int
    kind: str = "waiting"


class QueueFull(InvalidRequest):
    """More jobs wait than the app allows (`--queue-size`)."""


@dataclass(frozen=True)
class OutputRecord:
    """One finished video, as the page shows it (player, download button, info panel, gallery)."""

    path: Path  # what the engine wrote: a video file, or a folder of PNG frames
    playable: Path  # a file a <video> element can play
    download: Path  # one file to save (the video itself, or a zip of the PNG frames)
    info: dict[str, Any]
    caption: str
    seed: int
    history_id: int | None = None  # its job's row in the history


class WebJob:
    """One Generate click: its request, its message queue and its cancel flag."""

    def __init__(self, job, session: str, preview_every: int, history_id: int | None = None):
        """`job`: the engine's `PreparedJob`, or the request as given when it did not pass the checks (it then
        fails with their message when its turn comes)."""
        self.job = job
        self.request: GenerationRequest = getattr(job, "request", job)
        self.session = session
        self.preview_every = preview_every
        self.history_id = history_id  # its row in the history
        self.notes = list(getattr(job, "notes", ()))  # what was done to the picture that the user should know
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
    """Queues web jobs and runs them one at a time on the shared `Generator`, in submission order; cancels
    them per session; records every job in the history."""

    def __init__(self, generator, work_dir: str | Path, history: job_history.History | None = None,
                 max_waiting: int | None = None):
        """`history`: the store whose queued jobs `resume` runs (None: the generator's own, `history.sqlite3`
        in its outputs folder); the engine writes every job to it. `max_waiting`: more waiting jobs are
        refused with `QueueFull`."""
        self.generator = generator
        self.work_dir = Path(work_dir)  # derived files (previews of PNG frames, zips); not the outputs
        if history is not None:
            generator.history = history  # the engine records every job; the board reads the same store
        self.history = generator.history
        self.max_waiting = max_waiting
        self._lock = threading.Lock()
        self._jobs: list[WebJob] = []  # not yet finished
        self._pending: list[WebJob] = []  # waiting for their turn, in submission order
        self._running: WebJob | None = None
        self._records: list[OutputRecord] = []
        self._derived: dict[str, tuple[Path, Path]] = {}  # PNG folder -> (playable preview, zip)
        self._cancelled_at: dict[str, float] = {}  # session -> when a job of it was last asked to stop
        self._closed: dict[str, float] = {}  # session -> when its tab was closed

    # ---- jobs ---------------------------------------------------------------------------
    def submit(self, request, session: str, preview_every: int = 0, *,
               rerun_of: int | None = None, history_id: int | None = None) -> WebJob:
        """Queue `request` (a `GenerationRequest`, or the engine's `PreparedJob` of one, which is then not checked
        again) for `session`; it runs when the jobs before it have ended. Its messages arrive
        on `job.batches()`: `Waiting` while it waits, then the engine's events, then one `JobEnded`.

        Each job runs in a fresh thread, started when its turn comes and ending with it: on the CPU,
        torch is about 2x slower in a process where two long-lived threads take turns running it (each
        keeps an OpenMP team that spins; measured on 2 cores, a 10-step 64x64 job went from 0.49 s to
        0.91 s), while a thread that ends takes its team with it.
        """
        with self._lock:
            waiting = len(self._pending)
        if self.max_waiting is not None and waiting >= self.max_waiting:
            raise QueueFull("queue", f"{waiting} jobs are already waiting (at most {self.max_waiting}, "
                                     f"--queue-size); try again when one has finished")
        try:
            request = self.generator.prepare(request)  # the seed is drawn now, so a re-run repeats it
        except InvalidRequest:
            pass  # the job fails with this message when it runs, and its row says so
        if history_id is None:
            history_id = self.generator.record(request, rerun_of=rerun_of)
        job = WebJob(request, session, preview_every, history_id)
        with self._lock:
            # One step with the queueing (`close_session` marks, then cancels): a job of a tab closed meanwhile is
            # refused here, never left queued to run for nobody (issue 29)
            closed = session in self._closed
            if not closed:
                self._jobs.append(job)
                self._pending.append(job)
        if closed:
            job.cancel_requested.set()
            self._end(job, JobEnded(CANCELLED, "cancelled: its tab was closed"))
            return job
        self._dispatch()
        return job

    def resume(self) -> list[WebJob]:
        """At start-up: jobs left running by the last process become interrupted, and jobs it left
        queued are run, oldest first, with nobody watching (their results go to the history)."""
        self.history.mark_interrupted()
        jobs = []
        for entry in self.history.queued():
            try:
                request = GenerationRequest.from_dict(entry.request)
            except InvalidRequest as error:
                self.history.finished(entry.id, job_history.FAILED, error=str(error))
                continue
            jobs.append(self.submit(request, RESUMED, history_id=entry.id))
        return jobs

    def rerun(self, job_id: int, session: str = RESUMED) -> WebJob:
        """Queue a past job again with its stored settings, picture and seed."""
        entry = self.history.get(job_id)
        if entry is None:
            raise InvalidRequest("job", f"no job {job_id} in the history")
        request = GenerationRequest.from_dict(entry.request).replace(output_path=None)
        return self.submit(request, session, rerun_of=job_id)

    def delete(self, job_id: int) -> job_history.HistoryEntry | None:
        """Forget a finished job and delete its output; a queued or running job is left alone."""
        entry = self.history.get(job_id)
        if entry is None:
            return None
        if entry.status in (job_history.QUEUED, job_history.RUNNING):
            raise InvalidRequest("job", f"job {job_id} is {entry.status}; cancel it first")
        with self._lock:
            self._records = [record for record in self._records if record.history_id != job_id]
        return self.history.delete(job_id)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)

    def _dispatch(self) -> None:
        """Start the next job if none runs, and tell the waiting ones their place."""
        with self._lock:
            start = None
            if self._running is None and self._pending:
                start = self._running = self._pending.pop(0)
                if start.session in self._closed:  # its tab is gone: it ends at once (`_work`), nobody watches
                    start.cancel_requested.set()
            places = [(job, index + (self._running is not None)) for index, job in enumerate(self._pending)]
        for job, ahead in places:
            job.messages.put(Waiting(ahead))
        if start is not None:
            threading.Thread(target=self._work, args=(start,), name=f"video-gen-web-{start.session[:8]}",
                             daemon=True).start()

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
            waiting = job in self._pending
            if waiting:  # never started: it leaves the queue now
                self._pending.remove(job)
        if waiting:
            self._end(job, JobEnded(CANCELLED, "cancelled"))
            self._dispatch()

    def close_session(self, session: str) -> None:
        """The session's tab is gone: stop its jobs, and any job of it that starts later ends at once.

        Gradio keeps a closed tab's queued event and starts it when its turn comes; only its handler
        can then tell that nobody is watching (`is_closed`)."""
        now = time.monotonic()
        with self._lock:  # first: a job submitted from now on is refused (`submit`)
            self._closed[session] = now
            for old, at in list(self._closed.items()):
                if now - at > 24 * 3600:  # a session hash is never reused; a day covers any queue
                    del self._closed[old]
        self.cancel(session)

    def wait_for_session(self, session: str, timeout_s: float) -> bool:
        """Wait until no job of `session` is left unfinished (at most `timeout_s`); whether none is."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                jobs = [job for job in self._jobs if job.session == session]
            if not jobs or not jobs[0].finished.wait(max(0.0, deadline - time.monotonic())) and \
                    time.monotonic() >= deadline:
                return not jobs

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

        result = None
        try:
            if job.cancel_requested.is_set():
                raise Cancelled()
            result = self.generator.generate(job.job, on_event=on_event, preview_every=job.preview_every,
                                             history_id=job.history_id, cancel=job.cancel_requested)
            record = self._record(job, result)
            ended = JobEnded(DONE, f"done in {result.elapsed_s:.1f} s, seed {result.seed}", record)
        except Cancelled:
            ended = JobEnded(CANCELLED, "cancelled")
        except InvalidRequest as error:
            ended = JobEnded(FAILED, str(error))
        except VideoGenError as error:
            ended = JobEnded(FAILED, first_line(error))
        except Exception as error:  # noqa: BLE001 - the page gets one line, the log the traceback
            log.exception("web job failed")
            ended = JobEnded(FAILED, f"unexpected error: {first_line(error)} (details in the server log)")
        # Before the job is seen as ended: whoever looks next sees the settled size.
        _return_freed_memory(collect=ended.outcome != DONE)
        try:
            self._end(job, ended, result)
        finally:
            with self._lock:
                self._running = None
            self._dispatch()

    def _end(self, job: WebJob, ended: JobEnded, result=None) -> None:
        """Send the job's last message. The engine has recorded how it ended; a job that ended before the
        engine saw it (cancelled while waiting) is recorded here."""
        if ended.outcome != DONE:
            try:
                entry = self.history.get(job.history_id)
                if entry is not None and entry.status in (job_history.QUEUED, job_history.RUNNING):
                    status = job_history.CANCELLED if ended.outcome == CANCELLED else job_history.FAILED
                    self.history.finished(job.history_id, status, elapsed_s=job.elapsed_s,
                                          error=None if status == job_history.CANCELLED else ended.message)
            except Exception:  # noqa: BLE001 - a history that cannot be written must not hide the job's result
                log.exception("could not record job %s in the history", job.history_id)
        with self._lock:
            if job in self._jobs:
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
            self._derived[str(path)] = (playable, download)
        info = result.info()
        request = result.request
        caption = f"seed {result.seed} · {request.width}×{request.height} · {result.frames_written} frames"
        return OutputRecord(path, playable, download, info, caption, result.seed, job.history_id)

    # ---- past outputs, from the history -----------------------------------------------------
    def past_outputs(self, limit: int | None = None) -> list[OutputRecord]:
        """Every finished job whose output is still there, newest first, across restarts.

        A PNG-frames output shows its first frame until it is opened (`playable_record` makes its preview)."""
        records = []
        for entry in self.history.entries(status=job_history.DONE):
            record = self.record_of(entry)
            if record is None:
                continue
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
        return records

    def record_of(self, entry: job_history.HistoryEntry) -> OutputRecord | None:
        return record_of(entry, self._derived)

    def still(self, record: OutputRecord) -> Path:
        """A still of an output for its gallery tile (`still_of`), kept in the work folder."""
        return still_of(record, self._derived_dir() / "stills")

    def playable_record(self, record: OutputRecord) -> OutputRecord:
        """The record with a playable video and one file to download (PNG frames: made now, then kept)."""
        if not record.path.is_dir():
            return record
        if str(record.path) not in self._derived:
            fps = int(record.info.get("fps") or 8)
            self._derived[str(record.path)] = (self._png_preview(record.path, fps), self._zip(record.path))
        playable, download = self._derived[str(record.path)]
        return OutputRecord(record.path, playable, download, record.info, record.caption, record.seed,
                            record.history_id)

    def _png_preview(self, folder: Path, fps: int) -> Path:
        return png_preview(folder, fps, self._derived_dir())

    def _zip(self, folder: Path) -> Path:
        return zip_folder(folder, self._derived_dir() / f"{folder.name}.zip")

    def _derived_dir(self) -> Path:
        folder = self.work_dir / "derived"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def record_of(entry: job_history.HistoryEntry, derived: dict) -> OutputRecord | None:
    """A finished job of the history as the page shows it (None: its output is gone; `derived`: the playable
    previews and zips made of PNG folders). Its caption is short (a gallery tile has room for a few words): the
    job's number, which a click on the tile is read back by."""
    if entry.status != job_history.DONE or not entry.output_exists:
        return None
    path = Path(entry.output)
    playable, download = derived.get(str(path), (None, None))
    if playable is None:
        frames = sorted(path.glob("frame_*.png")) if path.is_dir() else []
        playable = download = frames[0] if frames else path
    info = dict(entry.info or {})
    seed = int(entry.request.get("seed") or info.get("seed") or 0)
    return OutputRecord(path, playable, download, info, f"#{entry.id} · seed {seed}", seed, entry.id)


def png_preview(folder: Path, fps: int, derived: Path) -> Path:
    """A playable MP4 of a folder of PNG frames (and its audio.wav, played with them) in `derived`."""
    from .. import video_io
    from ..audio import Sound

    frames, _ = video_io.read_video(folder)
    target = video_io.unique_path(derived / f"{folder.name}.preview.mp4")
    sound = Sound.read(folder)
    return video_io.write_video(frames, target, fps=fps, format="mp4",
                                audio=None if sound is None else sound.fitted(len(frames), fps))


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for file in sorted(folder.iterdir()):
            if file.is_file():
                archive.write(file, f"{folder.name}/{file.name}")
    return target


def still_of(record: OutputRecord, folder: Path) -> Path:
    """A still picture of an output for its gallery tile, made once per file version in `folder` (the file itself
    when no still can be made)."""
    from .. import video_io

    try:
        stat = record.path.stat()
    except OSError:
        return record.playable
    target = folder / f"{record.history_id}-{stat.st_mtime_ns}.jpg"
    if not target.is_file():
        try:
            video_io.write_still(record.path, target)
        except (VideoGenError, OSError):
            return record.playable
    return target


def _return_freed_memory(collect: bool) -> None:
    """Give the memory a finished job freed back to the system, so that a page left running for a week
    stays at the size it had after its first job.

    glibc keeps freed memory in its heaps (one per thread that allocated, and every job runs in a new
    thread), so without this the server's RSS wandered upward: measured on 2 cores, 20 tiny jobs in one
    process went 532 -> 576 MB with swings of 40 MB, and 614 -> 723 MB (+18 %) behind the web page;
    with gc + malloc_trim after each job it stayed at 463 MB from the first job to the 20th.

    `collect`: run a full garbage collection first. Only for a job that did not finish: its traceback holds
    the frames of the failed step (their arrays and tensors) in reference cycles. After a finished job a
    full collection found ~40 objects but cost 280 ms with the GIL held (540k objects tracked once torch,
    diffusers and gradio are loaded; 2 cores), just before the result went out: most of what a web
    request added to the job's own time (bench/overhead.py). malloc_trim alone takes ~4 ms.
    """
    if collect:
        import gc

        gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl, say): nothing to trim
            pass


__all__ = ["JobBoard", "WebJob", "JobEnded", "Tick", "Waiting", "QueueFull", "OutputRecord", "DONE", "CANCELLED", "FAILED"]
