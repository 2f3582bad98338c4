"""`Generator`: the engine's front. It checks requests, keeps one job at a time in arrival order, and records every
job in the outputs folder's history (`history.History`), whoever asked for it: the page, the command line, JSON
mode or Python.

The path of a job: `prepare` checks the request completely (no GPU work) into a `PreparedJob` → wait for its turn
→ plan its memory → `running.JobRunner` loads the model unless it is resident, makes the frames (the family's
`run`, segment by segment) and writes the video → `GenerationResult`. What the engine reports beside its jobs (the
device, memory plans, the length table) is `reports.Reports`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from . import control, devices, finishing, memory
from . import history as job_history
from . import loras as lora_support
from .annotators import annotators_dir
from .catalog import Catalog
from .checkpoints import ModelInfo, default_models_dir
from .errors import Cancelled, InvalidRequest, VideoGenError, first_line
from .events import DoneEvent, EventCallback
from .families import load_family
from .images import check_image_file, fit_to_size, open_image
from .memory import MemoryPlan
from .planner import LengthPlan, frames_for_seconds
from .reports import Reports
from .request import GenerationRequest
from .results import GenerationResult, PreparedJob, model_defaults, picture_defaults, plan_job_length
from .running import JobRunner, RunningJob, check_free_space, check_writable


class FifoLock:
    """A lock that is granted in the order it was asked for (threading.Lock promises no order)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._waiting: collections.deque[object] = collections.deque()
        self._busy = False

    def __enter__(self) -> None:
        ticket = object()
        with self._condition:
            self._waiting.append(ticket)
            try:
                while self._busy or self._waiting[0] is not ticket:
                    self._condition.wait()
            except BaseException:
                self._waiting.remove(ticket)
                self._condition.notify_all()
                raise
            self._waiting.popleft()
            self._busy = True

    def __exit__(self, *exc_info: object) -> None:
        with self._condition:
            self._busy = False
            self._condition.notify_all()

    @property
    def waiting(self) -> int:
        return len(self._waiting)


class Generator:
    """The engine. Cheap to create: nothing loads and no GPU is probed until the first job."""

    def __init__(self, models_dir: str | os.PathLike | None = None, outputs_dir: str | os.PathLike | None = None,
                 device: str | None = None, vram_gb: float | None = None, extra_models_dirs=(),
                 allow_pickle: bool = False, history: job_history.History | None = None):
        """`history`: where jobs are recorded; None opens `history.sqlite3` in the outputs folder on the first
        job (`History(":memory:")` keeps it in memory only)."""
        self.models_dir = Path(models_dir) if models_dir else default_models_dir()
        # More places to find models (a ComfyUI or A1111 tree); the Hugging Face cache is always searched.
        self.extra_models_dirs = tuple(Path(folder) for folder in extra_models_dirs or ())
        self.catalog = Catalog(self.models_dir, self.extra_models_dirs)
        self.allow_pickle = allow_pickle  # load .ckpt/.pt/.bin/.pth (with weights_only=True) only when asked
        self.outputs_dir = Path(outputs_dir or os.environ.get("VIDEO_GEN_OUTPUTS_DIR") or "outputs")
        self._history = history
        self._device_choice = device
        self._device: str | None = None
        self._queue = FifoLock()
        self._lock = threading.Lock()  # guards _running and _history
        self._running: RunningJob | None = None
        self._runner: JobRunner | None = None
        self._kept_inputs: dict[tuple, str] = {}  # (picture, size, mtime) -> its copy kept for the history
        # Plan for this much device memory instead of what is free ($VIDEO_GEN_VRAM_GB; the benchmark's cap)
        vram_gb = vram_gb or (float(os.environ["VIDEO_GEN_VRAM_GB"]) if os.environ.get("VIDEO_GEN_VRAM_GB") else None)
        self.reports = Reports(lambda: self.device, self.catalog, vram_gb)

    # ---- what it is ---------------------------------------------------------------------------
    @property
    def device(self) -> str:
        if self._device is None:
            self._device = devices.pick_device(self._device_choice)
        return self._device

    @property
    def vram_gb(self) -> float | None:
        return self.reports.vram_gb

    @property
    def runner(self) -> JobRunner:
        """Runs the jobs on the device (created with the device, on first use)."""
        if self._runner is None:
            self._runner = JobRunner(self.device, self.outputs_dir, annotators_dir(self.models_dir))
        return self._runner

    @property
    def resident_pipeline(self):
        """The pipeline kept loaded between jobs (None before the first job or after `unload`)."""
        return self._runner.resident.pipe if self._runner else None

    @property
    def loaded_model(self) -> str | None:
        return self._runner.resident.model.name if self._runner and self._runner.resident.model else None

    @property
    def loads(self) -> int:
        """How many times a model was loaded from disk (residency: a second job of the same model loads none)."""
        return self._runner.resident.loads if self._runner else 0

    @property
    def busy(self) -> bool:
        return self._running is not None

    @property
    def waiting(self) -> int:
        """Jobs waiting for their turn (not counting the running one)."""
        return self._queue.waiting

    @property
    def history(self) -> job_history.History:
        """The job history (opened on first use: `history.sqlite3` in the outputs folder)."""
        with self._lock:
            if self._history is None:
                self._history = job_history.History(job_history.history_path(self.outputs_dir),
                                                    outputs_dir=self.outputs_dir)
            return self._history

    @history.setter
    def history(self, store: job_history.History) -> None:
        """Record jobs in `store` from now on (the app opens the outputs folder's own at start-up)."""
        with self._lock:
            self._history = store

    # ---- models -------------------------------------------------------------------------------
    def list_models(self, refresh: bool = False) -> list[ModelInfo]:
        """The runnable models, from the catalog (scanned once; `refresh` scans the folders again)."""
        if refresh:
            self.catalog.refresh()
        return self.catalog.models()

    def resolve(self, name: str | None, motion_adapter: str | None = None) -> ModelInfo:
        """The model a name or path means, searched in every place this generator knows."""
        return self.catalog.resolve(name, motion_adapter=motion_adapter, allow_pickle=self.allow_pickle)

    def defaults(self, model: str | None = None, loras=()) -> dict[str, Any]:
        """The request defaults of an installed model (reads its configs only); with `loras` (LoraChoices),
        those of a step-distill LoRA among them (its steps, guidance and scheduler) on top."""
        info = self.resolve(model)
        family = load_family(info.family)
        resolved, _ = lora_support.resolve(tuple(loras), self.catalog, family, info, models_dir=self.models_dir,
                                           allow_pickle=self.allow_pickle)
        return model_defaults(family, info, resolved)

    # ---- checking a request -------------------------------------------------------------------
    def prepare(self, request: GenerationRequest | PreparedJob) -> PreparedJob:
        """Check a request completely and fill in the model's defaults and the seed; loads nothing.
        A prepared job is returned as it is."""
        if isinstance(request, PreparedJob):
            return request
        job = self.plan_job(request)
        family_notes = tuple(job.family.check(job.request, job.model) or ())  # e.g. where LTX put a keyframe
        job.spec.check_request(job.request)
        job.request.check_for_family(job.spec)
        notes = job.notes + tuple(note for picture in (job.request.image, job.request.last_image) if picture
                                  for note in check_image_file(picture)) + family_notes
        # A control video (VACE) is read now, at the rate and length the model makes frames, so a short or unreadable
        # one, a mask that does not fit it or a missing annotator is refused before the job is queued
        notes += control.check_request(job.request, frames=job.length.model_frames, fps=job.length.generation_fps,
                                       annotators_dir=annotators_dir(self.models_dir))
        if job.request.audio == "on" and job.request.output_format == "gif":
            notes += ("gif has no sound: the video's sound is not written (mp4, webm and png keep it)",)
        job = finishing.prepare(job, self.catalog, allow_pickle=self.allow_pickle)  # its upscaler and enhancer
        return dataclasses.replace(job, notes=notes)

    def plan_job(self, request: GenerationRequest | PreparedJob) -> PreparedJob:
        """A request's model, defaults, seed and length plan, without the checks that need the whole request (its
        picture may still be missing): what `prepare` completes, and what the page's estimates are made from."""
        if isinstance(request, PreparedJob):
            return request
        if not isinstance(request, GenerationRequest):
            raise InvalidRequest("request", f"must be a GenerationRequest, got {type(request).__name__}")
        request = request.validate()
        model = self.resolve(request.model, request.motion_adapter)
        family = load_family(model.family)
        loras, lora_notes = lora_support.resolve(request.loras, self.catalog, family, model,
                                                 models_dir=self.models_dir, allow_pickle=self.allow_pickle)
        defaults = picture_defaults(family, model, request, model_defaults(family, model, loras))  # read once
        request = request.replace(model=request.model or model.name, loras=tuple(lora.choice for lora in loras))
        request = request.with_defaults(defaults).with_seed().validate()
        return PreparedJob(request, model, family.SPEC, plan_job_length(request, family.SPEC, defaults),
                           notes=lora_notes, loras=loras)

    def with_duration(self, request: GenerationRequest, seconds: float) -> GenerationRequest:
        """`request` with its length given in seconds (the page's Length, `--duration`) at its frame rate (or the
        model's): the frame count the model makes nearest to seconds x fps."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise InvalidRequest("duration", f"must be more than 0 seconds, got {seconds!r}")
        job = self.plan_job(request.replace(num_frames=None))
        return request.replace(num_frames=frames_for_seconds(seconds, job.request.fps, job.spec.frame_step,
                                                             job.spec.exact_frames))

    def length_plan(self, request: GenerationRequest, model: ModelInfo) -> LengthPlan:
        """How a request with its defaults filled in becomes model work (segments, interpolation, loop)."""
        family = load_family(model.family)
        return plan_job_length(request, family.SPEC, model_defaults(family, model))

    # ---- reports (reports.py) -----------------------------------------------------------------
    def device_report(self) -> memory.DeviceReport:
        return self.reports.device_report()

    def memory_ladder(self, request: GenerationRequest | PreparedJob) -> list[MemoryPlan]:
        """A request's memory plans on this device, fastest first."""
        return self.reports.memory_ladder(self.plan_job(request))

    def memory_plan(self, request: GenerationRequest | PreparedJob) -> MemoryPlan:
        """The plan a request would run with now (its picture may be missing): shown on the page beforehand."""
        return self.reports.memory_plan(self.plan_job(request))[1]

    def length_table(self, vram_gb: float | None = None) -> list[memory.LengthRow]:
        return self.reports.length_table(vram_gb)

    # ---- running ------------------------------------------------------------------------------
    def record(self, request: GenerationRequest | PreparedJob, *, rerun_of: int | None = None) -> int:
        """Add a queued job to the history (before its turn comes); pass its number to `generate`."""
        if isinstance(request, PreparedJob):
            request = request.request
        return self.history.add(self._stored(request).to_json(), rerun_of=rerun_of)

    def generate(self, request: GenerationRequest | PreparedJob, on_event: EventCallback | None = None, *,
                 preview_every: int = 0, history_id: int | None = None,
                 cancel: threading.Event | None = None, keep_partial: bool = False) -> GenerationResult:
        """Run one job and return where its video is. Waits its turn behind earlier jobs.

        `preview_every` > 0 sends a `PreviewEvent` every that many denoising steps. `history_id`: its row
        from `record`; without one, a job that passes the checks is added to the history when it starts.
        `cancel`: the caller's own stop flag (also checked as the file takes its name). `keep_partial`: a job stopped
        part-way keeps its finished segments (`errors.PartialKept`, `running.JobRunner.keep_partial`). Raises InvalidRequest (bad input, nothing ran), Cancelled, or GenerationFailed.
        """
        submitted, submitted_at = time.perf_counter(), datetime.now()
        try:
            # 1. Check inputs: the whole request, the model folder and the picture, before any GPU work
            job = self.prepare(request)
            target_dir = Path(job.request.output_path).parent if job.request.output_path else self.outputs_dir
            check_writable(target_dir)
            check_free_space(target_dir, job.request, job.length, scale=job.upscaler.scale if job.upscaler else 1)
            image = None  # text-to-video families run without a picture (their spec decides)
            if job.request.image:
                image = fit_to_size(open_image(job.request.image), job.request.width, job.request.height,
                                    job.request.resize_mode)
        except VideoGenError as error:
            if history_id is not None:
                self.history.finished(history_id, job_history.FAILED, error=first_line(error))
            raise
        if history_id is None:
            history_id = self.history.add(self._stored(job.request).to_json(), status=job_history.RUNNING)

        # 2. Wait for our turn
        with self._queue:
            started_at = datetime.now()
            self.history.started(history_id)
            running = RunningJob(on_event, preview_every, job.spec.latent_rgb_factors, cancel)
            running.keep_partial = keep_partial
            with self._lock:
                self._running = running
            try:
                # 3. Plan memory for this job on this device now (free memory changes between jobs), then run it
                memory.reset_peak_memory(self.device)
                plans, plan = self.reports.memory_plan(job)
                path, frames, metadata = self.runner.run(job, image, running, plans, plan, submitted_at)
            except Cancelled as error:  # a partial file kept (PartialKept) is its output
                kept = getattr(error, "path", None)
                self.history.finished(history_id, job_history.CANCELLED, elapsed_s=time.perf_counter() - submitted,
                                      output=kept and str(kept), error=kept and str(error))
                raise
            except BaseException as error:
                self.history.finished(history_id, job_history.FAILED, error=first_line(error),
                                      elapsed_s=time.perf_counter() - submitted)
                raise
            finally:
                with self._lock:
                    self._running = None
            # What made the frames: the enhanced prompt, the decode chunk the plan ended on
            request = (running.request or job.request).replace(decode_chunk_size=running.plan.decode_chunk_size)
            result = GenerationResult(
                path=path, seed=request.seed, frames_written=len(frames), elapsed_s=time.perf_counter() - submitted,
                request=request, model=job.model.name, device=self.device, dtype=running.plan.dtype,
                plan=job.length, metadata=metadata, timings=dict(running.timings),
                peak_memory_bytes=memory.peak_memory_bytes(self.device), memory_plan=running.plan,
                retries=list(running.retries), job_id=history_id, notes=job.notes, started_at=started_at,
                finished_at=datetime.now(),
            )
            # Recorded before the next job's turn, so the history's order is the order jobs ran in
            self.history.finished(history_id, job_history.DONE, output=str(path), info=result.info(),
                                  elapsed_s=result.elapsed_s, request_json=self._stored(request).to_json())
        running.emit(DoneEvent(result))
        return result

    def probe(self, request: GenerationRequest | PreparedJob, on_event: EventCallback | None = None
              ) -> dict[str, float]:
        """A test run of `request` that writes and records nothing (`probe_job`): seconds per stage."""
        return probe_job(self, request, on_event)

    def cancel(self) -> bool:
        """Ask the running job to stop; it ends at its next step boundary. False if nothing is running."""
        with self._lock:
            running = self._running
        if running is None:
            return False
        running.cancelled.set()
        return True

    @contextlib.contextmanager
    def job_turn(self, on_event: EventCallback | None = None, cancelled: threading.Event | None = None):
        """Wait for the one-at-a-time slot and hold it with a `RunningJob` (its stages, steps and ETA go to
        `on_event`) that `cancel()` reaches, or `cancelled` when given: for work besides generating (upscaling a
        video, enhancing a prompt: finishing.py)."""
        with self._queue:
            running = RunningJob(on_event, 0, None)
            if cancelled is not None:
                running.cancelled = cancelled
            with self._lock:
                self._running = running
            try:
                running.check_cancelled()  # cancelled while it waited
                yield running
            finally:
                with self._lock:
                    self._running = None

    @contextlib.contextmanager
    def turn(self):
        """Wait for the one-at-a-time slot, behind the jobs already waiting, and hold it while the block runs:
        for other heavy work that must not run beside a job (the page's smoothing tool)."""
        with self._queue:
            yield

    def unload(self) -> None:
        """Free the resident model (the next job loads again)."""
        with self._queue:
            if self._runner is not None:
                self._runner.resident.drop()

    def _stored(self, request: GenerationRequest) -> GenerationRequest:
        """The request as the history keeps it: its picture, control video and mask (files, not folders) copied into
        the outputs folder (once per content), so that a queued job or a re-run still has them after an upload or a
        temporary file is gone."""
        kept = {name: _kept(self, getattr(request, name)) for name in ("image", "control", "control_from", "mask")
                if getattr(request, name)}
        return request.replace(**kept) if kept else request


def _kept(generator: Generator, image: str) -> str:
    """A file of a request as the history keeps it (`Generator._stored`): copied once per content."""
    if not os.path.isfile(image):
        return image
    status = os.stat(image)
    key = (image, status.st_size, status.st_mtime_ns)
    kept = generator._kept_inputs.get(key)
    if kept is None or not os.path.isfile(kept):  # a job is stored twice (queued, then done): hash it once
        if len(generator._kept_inputs) >= 1024:  # a server that runs for weeks forgets old pictures' copies
            generator._kept_inputs.clear()
        kept = generator._kept_inputs[key] = job_history.keep_input(image, generator.history)
    return kept


def probe_job(generator: Generator, request: GenerationRequest | PreparedJob, on_event: EventCallback | None = None
              ) -> dict[str, float]:
    """Run `request` without writing a file or recording a job: the time estimates' test run on this machine
    (`timing.Estimator.probe`). A family that needs a picture gets a plain grey one of the job's size. Takes its
    turn like a job and leaves the model loaded (the next job does not load it again). Returns the seconds of each
    stage; `on_event` sees its events (the step times)."""
    from .families.spec import REQUIRED

    job = generator.plan_job(request)
    image = None
    if job.spec.image == REQUIRED and job.request.image is None:
        from PIL import Image

        image = Image.new("RGB", (job.request.width, job.request.height), (128, 128, 128))
    elif job.request.image:
        image = fit_to_size(open_image(job.request.image), job.request.width, job.request.height,
                            job.request.resize_mode)
    with generator.turn():
        running = RunningJob(on_event, 0, None)
        plans, plan = generator.reports.memory_plan(job)
        generator.runner.probe(job, image, running, plans, plan)
    return dict(running.timings)
