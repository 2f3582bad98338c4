"""`Generator`: keeps pipelines resident, runs one job at a time in arrival order, reports events.

The path of a job: `prepare` checks the request completely (no GPU work) into a `PreparedJob` → wait for
its turn → load the model if it is not resident → the family's `run`, segment by segment → 
`video_io.write_video` → `GenerationResult`. Every job is recorded in the outputs folder's history
(`history.History`), whoever asked for it: the page, the command line, JSON mode or Python.
"""

from __future__ import annotations

import collections
import dataclasses
import contextlib
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import __version__, demo, devices, memory, video_io
from . import loras as lora_support
from . import history as job_history
from .errors import Cancelled, GenerationFailed, InvalidRequest, ModelNotFound, VideoGenError, first_line
from .events import (
    INTERPOLATING,
    LOADING_MODEL,
    STAGE_LABELS,
    WRITING,
    DoneEvent,
    EventCallback,
    PreviewEvent,
    StageEvent,
    StepEvent,
)
from .families import load_family
from .families.spec import FamilySpec
from .frames import apply_loop, channel_stats, match_colors
from .images import check_image_file, fit_to_size, open_image
from .memory import MemoryPlan
from .models import HOW_TO_GET, Catalog, ModelInfo, default_models_dir, file_sha256, weights_sha256
from .planner import LengthPlan, plan_length
from .request import GenerationRequest


@dataclass(frozen=True)
class PreparedJob:
    """A request checked completely, with the model's defaults and the seed filled in: what `generate`, the
    page's job board and the command line all take, so that validation, defaults and the seed happen once."""

    request: GenerationRequest
    model: ModelInfo
    spec: FamilySpec
    length: LengthPlan  # how its length and rate become model work (segments, interpolation, loop)
    notes: tuple[str, ...] = ()  # what will be done to the picture that the user might not expect
    # Jobs whose output is more than the frames they make (extend.py: a source video, then these frames):
    # `finish(frames) -> (frames, fps, source)` gives the frames to write, the rate to write them at and what
    # they were added to (stored in the metadata and the info as "source"). None: the frames as made.
    finish: Callable[[Any], tuple[Any, float, dict[str, Any]]] | None = None
    loras: tuple[lora_support.ResolvedLora, ...] = ()  # its LoRAs, found and checked for the family

    @property
    def family(self):
        """The family's module (its `load` and `run`)."""
        return load_family(self.spec.name)


@dataclass(frozen=True)
class GenerationResult:
    path: Path
    seed: int
    frames_written: int
    elapsed_s: float
    request: GenerationRequest  # with the model's defaults and the seed actually used filled in
    model: str
    device: str
    dtype: str
    plan: LengthPlan | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # what is stored in the output and beside it
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    peak_memory_bytes: int | None = None  # GPU only
    memory_plan: MemoryPlan | None = None  # the plan that succeeded
    retries: list[dict[str, Any]] = field(default_factory=list)  # out-of-memory step-downs on the way
    job_id: int | None = None  # its number in the history
    notes: tuple[str, ...] = ()
    started_at: datetime | None = None  # when its turn came
    finished_at: datetime | None = None

    def info(self) -> dict[str, Any]:
        """What the page's info panel shows and the history keeps: model, seed, every parameter, times, memory."""
        request = self.request
        info: dict[str, Any] = {
            "model": self.model,
            "seed": self.seed,
            "frames": self.frames_written,
            "fps": request.fps,
            "duration_s": round(self.frames_written / request.fps, 2) if request.fps else None,
            "resolution": f"{request.width}x{request.height}",
            "plan": self.plan.describe() if self.plan else None,
            "output": str(self.path),
            "elapsed_s": round(self.elapsed_s, 2),
            "peak_memory": format_bytes(self.peak_memory_bytes) if self.peak_memory_bytes else "n/a (CPU)",
            "memory_plan": self.memory_plan.label() if self.memory_plan else None,
            "out_of_memory_retries": list(self.retries),
            "device": self.device,
            "dtype": self.dtype,
            "timings_s": {stage: round(seconds, 3) for stage, seconds in self.timings.items()},
            "parameters": request.to_dict(),
        }
        if self.metadata.get("run"):
            info["run"] = dict(self.metadata["run"])  # the family's own: attention backend, speed hook
        if self.notes:
            info["notes"] = list(self.notes)
        if self.metadata.get("source"):  # what this job's frames were added to (an extended video's source)
            info["source"] = self.metadata["source"]
        if self.metadata.get("loras"):
            info["loras"] = self.metadata["loras"]  # each one's name, SHA-256 and strength
        if self.metadata.get("demo"):
            info["demo"] = self.metadata["demo"]
        if self.job_id is not None:
            info["job"] = self.job_id
        if self.started_at is not None:
            info["started_at"] = self.started_at.isoformat(timespec="milliseconds")
        if self.finished_at is not None:
            info["finished_at"] = self.finished_at.isoformat(timespec="milliseconds")
        return info


def format_bytes(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


class _FifoLock:
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


class Job:
    """What a family's `run` talks to: stages, steps (where cancel is checked), previews, the seed."""

    def __init__(self, on_event: EventCallback | None, preview_every: int, latent_rgb_factors):
        self.generator = None  # the job's torch.Generator, seeded once; a retried segment restores its state
        self.cancelled = threading.Event()
        self._on_event = on_event
        # No preview for a family without a latent-to-RGB map (its spec's latent_rgb_factors is None).
        self._preview_every = preview_every if latent_rgb_factors is not None else 0
        self._latent_rgb_factors = latent_rgb_factors
        self._started = time.perf_counter()
        self._stage: str | None = None
        self._stage_started = self._started
        self._first_step_at: float | None = None
        self.segment = (1, 1)  # (number, of how many), for long videos made of chained segments
        self.timings: dict[str, float] = {}
        self.plans: list[MemoryPlan] = []  # the memory ladder of this job, fastest first
        self.plan: MemoryPlan | None = None  # the rung it runs on now
        self.retries: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}  # what the family reports about how it ran (attention backend, speed hook)

    @property
    def decode_chunk_size(self) -> int:
        return self.plan.decode_chunk_size

    @property
    def current_stage(self) -> str:
        return self._stage or LOADING_MODEL

    # ---- out of memory: the one place that steps down --------------------------------------------
    def retry_out_of_memory(self, attempt: Callable[[], Any], *, decode_only: bool = False,
                            recover: Callable[[], None] = lambda: None) -> Any:
        """Run `attempt()`; when the device runs out of memory, step down to the next cheaper plan for the
        stage that ran out, `recover()`, free memory and try again; fail saying what to reduce when no cheaper
        plan is left (ComfyUI's model_management: one owner of out-of-memory).

        `decode_only`: only plans that decode in smaller chunks (a family's decode loop keeps its latents);
        without one, the error goes up to the segment's own retry, which may place the pipeline more cheaply.
        Memory is freed after the `except` block has ended, when the traceback and the frames it held (the
        failed attempt's tensors and pipeline) are gone.
        """
        while True:
            try:
                return attempt()
            except RuntimeError as error:  # torch.OutOfMemoryError is one
                if not memory.is_out_of_memory(error):
                    raise
                cheaper = memory.next_cheaper(self.plans, self.plan, self.current_stage, decode_only=decode_only)
                if cheaper is None and decode_only:
                    raise
                self.step_down(error, cheaper)
            recover()
            memory.free_memory(self.plan.device)

    def step_down(self, error: BaseException, cheaper: MemoryPlan | None) -> None:
        """Out of memory: record it and move to `cheaper`, or fail saying what to reduce when none is left."""
        stage = self.current_stage
        if cheaper is None:
            raise GenerationFailed(
                f"out of {self.plan.device} memory while {STAGE_LABELS.get(stage, stage).lower()}, on the "
                f"cheapest plan ({self.plan.label()}); lower the resolution, the number of frames or "
                f"decode_chunk_size (now {self.plan.decode_chunk_size})"
            ) from error
        self.retries.append({"stage": stage, "error": first_line(error), "from": self.plan.label(),
                             "to": cheaper.label(), "segment": self.segment[0]})
        self.plan = cheaper
        self.emit(StageEvent(stage, f"out of memory; retrying with {cheaper.label(with_device=False)}",
                             *self.segment))

    def decode_with_retries(self, decode: Callable[[int], Any]) -> Any:
        """Run `decode(chunk_size)`; out of memory decodes again in smaller chunks. The denoised latents stay
        where they are (the caller's), so only decoding is redone."""
        return self.retry_out_of_memory(lambda: decode(self.decode_chunk_size), decode_only=True)

    # ---- progress ---------------------------------------------------------------------------------
    def emit(self, event) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled()

    def stage(self, stage: str, message: str | None = None) -> None:
        self.check_cancelled()
        self._enter(stage)
        message = message or STAGE_LABELS[stage]
        if self.segment[1] > 1:
            message = f"segment {self.segment[0]} of {self.segment[1]}: {message}"
        self.emit(StageEvent(stage, message, *self.segment))

    def step(self, stage: str, index: int, total: int, preview: Callable[[], Any] | None = None) -> None:
        """Report that unit `index` of `total` of `stage` is done; raises `Cancelled` if cancel was asked."""
        self.check_cancelled()
        unit_started = self._stage_started  # the first unit of a stage began when the stage before it did
        self._enter(stage)
        now = time.perf_counter()
        if index == 1 or self._first_step_at is None:
            # The first unit's time includes the stage's setup (encoding the image), so the estimate is
            # high at first and taken from step 2 on afterwards.
            self._first_step_at = now
            eta = (now - unit_started) * (total - index)
        else:
            eta = (now - self._first_step_at) / (index - 1) * (total - index)
        self.emit(StepEvent(stage, index, total, now - self._started, eta, *self.segment))
        if preview is not None and self._preview_every and (index % self._preview_every == 0 or index == total):
            self.emit(PreviewEvent(latent_to_rgb(preview(), self._latent_rgb_factors), index, total))
        self.check_cancelled()

    def finish(self) -> None:
        self._enter(None)

    def enter(self, stage: str) -> None:
        """Mark that `stage` has begun without reporting a unit (so out-of-memory is blamed on the right stage)."""
        self._enter(stage)

    def _enter(self, stage: str | None) -> None:
        if stage == self._stage:
            return
        now = time.perf_counter()
        if self._stage is not None:
            self.timings[self._stage] = self.timings.get(self._stage, 0.0) + now - self._stage_started
        self._stage, self._stage_started, self._first_step_at = stage, now, None


def latent_to_rgb(latent, factors):
    """A (C, H, W) latent to a small PIL picture with a fixed linear map: microseconds, not a VAE decode."""
    import torch
    from PIL import Image

    weights = torch.tensor(factors, dtype=torch.float32, device=latent.device)
    rgb = torch.einsum("chw,cr->hwr", latent.float(), weights)
    rgb = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
    return Image.fromarray(rgb).resize((rgb.shape[1] * 4, rgb.shape[0] * 4), Image.Resampling.BILINEAR)


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
        self.allow_pickle = allow_pickle  # load .ckpt/.pt/.bin (with weights_only=True) only when asked
        self.outputs_dir = Path(outputs_dir or os.environ.get("VIDEO_GEN_OUTPUTS_DIR") or "outputs")
        self._history = history
        self._device_choice = device
        self._device: str | None = None
        self._queue = _FifoLock()
        self._lock = threading.Lock()  # guards _job and _history
        self._job: Job | None = None
        self._pipe = None
        self._loaded: ModelInfo | None = None
        self._weights_sha256: str | None = None
        self._placement: tuple | None = None  # MemoryPlan.placement of the resident pipeline
        self._weights: dict[ModelInfo, memory.ModelWeights] = {}
        self._kept_inputs: dict[tuple, str] = {}  # (picture, size, mtime) -> its copy kept for the history
        # Plan for this much device memory instead of what is free ($VIDEO_GEN_VRAM_GB; the benchmark's cap)
        self.vram_gb = vram_gb or (float(os.environ["VIDEO_GEN_VRAM_GB"]) if os.environ.get("VIDEO_GEN_VRAM_GB")
                                   else None)
        self.loads = 0  # how many times a model was loaded from disk (tests check residency with it)

    # ---- public -------------------------------------------------------------------------
    @property
    def device(self) -> str:
        if self._device is None:
            self._device = devices.pick_device(self._device_choice)
        return self._device

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

    def _stored(self, request: GenerationRequest) -> GenerationRequest:
        """The request as the history keeps it: its picture copied into the outputs folder (once per content),
        so that a queued job or a re-run still has it after an upload or a temporary file is gone."""
        image = request.image
        if not image or not os.path.isfile(image):
            return request
        status = os.stat(image)
        key = (image, status.st_size, status.st_mtime_ns)
        kept = self._kept_inputs.get(key)
        if kept is None or not os.path.isfile(kept):  # a job is stored twice (queued, then done): hash it once
            if len(self._kept_inputs) >= 1024:  # a server that runs for weeks forgets old pictures' copies
                self._kept_inputs.clear()
            kept = self._kept_inputs[key] = job_history.keep_input(image, self.history)
        return request.replace(image=kept)

    @property
    def loaded_model(self) -> str | None:
        return self._loaded.name if self._loaded else None

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def waiting(self) -> int:
        """Jobs waiting for their turn (not counting the running one)."""
        return self._queue.waiting

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
        resolved, _ = lora_support.resolve(tuple(loras), self.catalog, family.SPEC, model_name=info.name,
                                           models_dir=self.models_dir, allow_pickle=self.allow_pickle)
        return _lora_defaults(family, info, resolved)

    def prepare(self, request: GenerationRequest | PreparedJob) -> PreparedJob:
        """Check a request completely and fill in the model's defaults and the seed; loads nothing.
        A prepared job is returned as it is."""
        if isinstance(request, PreparedJob):
            return request
        job = self._planned(request)
        family_notes = tuple(job.family.check(job.request, job.model) or ())  # e.g. where LTX put a keyframe
        job.spec.check_request(job.request)
        notes = job.notes + tuple(note for picture in (job.request.image, job.request.last_image) if picture
                                  for note in check_image_file(picture)) + family_notes
        return dataclasses.replace(job, notes=notes)

    def _planned(self, request: GenerationRequest | PreparedJob) -> PreparedJob:
        """A request with the model's defaults and the seed filled in and its length planned, without the
        family's checks (the page shows plans before its form is complete: the picture may still be missing)."""
        if isinstance(request, PreparedJob):
            return request
        if not isinstance(request, GenerationRequest):
            raise InvalidRequest("request", f"must be a GenerationRequest, got {type(request).__name__}")
        request = request.validate()
        model = self.resolve(request.model, request.motion_adapter)
        family = load_family(model.family)
        loras, lora_notes = lora_support.resolve(request.loras, self.catalog, family.SPEC, model_name=model.name,
                                                 models_dir=self.models_dir, allow_pickle=self.allow_pickle)
        # read once: the request's defaults and the planner's native length
        defaults = _lora_defaults(family, model, loras)
        request = request.replace(model=request.model or model.name, loras=tuple(lora.choice for lora in loras))
        request = request.with_defaults(defaults).with_seed().validate()
        return PreparedJob(request, model, family.SPEC, _plan_length(request, family.SPEC, defaults),
                           notes=lora_notes, loras=loras)

    def plan_job(self, request: GenerationRequest | PreparedJob) -> PreparedJob:
        """A request's model, defaults, seed and length plan, without the checks that need the whole request (its
        picture may still be missing): what the page's time estimate and memory plan are computed from."""
        return self._planned(request)

    def record(self, request: GenerationRequest | PreparedJob, *, rerun_of: int | None = None) -> int:
        """Add a queued job to the history (before its turn comes); pass its number to `generate`."""
        if isinstance(request, PreparedJob):
            request = request.request
        return self.history.add(self._stored(request).to_json(), rerun_of=rerun_of)

    def generate(self, request: GenerationRequest | PreparedJob, on_event: EventCallback | None = None, *,
                 preview_every: int = 0, history_id: int | None = None) -> GenerationResult:
        """Run one job and return where its video is. Waits its turn behind earlier jobs.

        `preview_every` > 0 sends a `PreviewEvent` every that many denoising steps. `history_id`: its row
        from `record`; without one, a job that passes the checks is added to the history when it starts.
        Raises InvalidRequest (bad input, nothing ran), Cancelled, or GenerationFailed.
        """
        submitted = time.perf_counter()
        submitted_at = datetime.now()
        try:
            # 1. Check inputs: the whole request, the model folder and the picture, before any GPU work
            job = self.prepare(request)
            target_dir = Path(job.request.output_path).parent if job.request.output_path else self.outputs_dir
            _check_writable(target_dir)
            _check_free_space(target_dir, job.request, job.length)
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
            try:
                path, frames, metadata, running = self._run(job, image, on_event, preview_every, submitted_at)
            except Cancelled:
                self.history.finished(history_id, job_history.CANCELLED, elapsed_s=time.perf_counter() - submitted)
                raise
            except BaseException as error:
                self.history.finished(history_id, job_history.FAILED, error=first_line(error),
                                      elapsed_s=time.perf_counter() - submitted)
                raise
            request = job.request.replace(decode_chunk_size=running.plan.decode_chunk_size)  # what made the frames
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

    def _run(self, job: PreparedJob, image, on_event, preview_every: int, submitted_at: datetime):
        """A job's turn: plan memory, load, make the frames, write the video. Frees everything on failure."""
        running = Job(on_event, preview_every, job.spec.latent_rgb_factors)
        with self._lock:
            self._job = running
        finished = False
        try:
            import torch

            memory.reset_peak_memory(self.device)
            # 3. Plan memory for this job on this device now (free memory changes between jobs)
            report = self.device_report()
            running.plans = self.memory_plans(job, report=report)
            running.plan = memory.choose(running.plans, report.budget(self.vram_gb))
            running.generator = torch.Generator("cpu").manual_seed(job.request.seed)

            # 4. Load the model unless it is resident, and generate the frames (segments, interpolation, loop)
            frames = self._frames(job, image, running)
            request = job.request.replace(decode_chunk_size=running.plan.decode_chunk_size)
            fps, source = request.fps, None
            if job.finish is not None:  # e.g. the source video's frames before these (extend.py)
                frames, fps, source = job.finish(frames)

            # 5. Write the video under its final name only when complete, and its settings beside it
            running.stage(WRITING, f"writing {request.output_format}")
            metadata = {
                "app": "video-gen", "version": __version__, "model": job.model.name, "family": job.spec.name,
                "model_sha256": self._weights_sha256,
                "image_sha256": file_sha256(request.image) if request.image else None, "device": self.device,
                "dtype": running.plan.dtype, "fps": fps, "plan": job.length.to_dict(),
                "request": request.to_dict(), "memory": {"plan": running.plan.to_dict(), "retries": running.retries},
                **demo.metadata(job.model),  # a demo model's output says it is noise
            }
            if source:
                metadata["source"] = source
            if running.info:
                metadata["run"] = dict(running.info)
            if job.loras:
                metadata["loras"] = [lora.metadata() for lora in job.loras]
            path = video_io.write_video(frames, self._output_path(request, job.model, submitted_at), fps=fps,
                                        format=request.output_format, crf=request.crf, metadata=metadata)
            video_io.write_sidecar(path, metadata)
            running.finish()
            finished = True
            return path, frames, metadata, running
        finally:
            with self._lock:
                self._job = None
            if not finished:
                memory.free_memory(self.device)  # a failed or cancelled job leaves nothing behind

    def plan(self, request: GenerationRequest, model: ModelInfo) -> LengthPlan:
        """How a request with its defaults filled in becomes model work (segments, interpolation, loop)."""
        family = load_family(model.family)
        return _plan_length(request, family.SPEC, model_defaults(family, model))

    def device_report(self) -> memory.DeviceReport:
        """What the device has now (initialises CUDA on first use)."""
        return memory.probe(self.device)

    def memory_plans(self, request: GenerationRequest | PreparedJob,
                     report: memory.DeviceReport | None = None) -> list[MemoryPlan]:
        """The memory ladder of a request on this device, fastest plan first."""
        job = self._planned(request)
        request, report = job.request, report or self.device_report()
        shape = memory.JobShape(job.spec.name, job.length.generated_frames[0], request.width, request.height,
                                request.decode_chunk_size)
        weights = self._model_weights(job.model)
        if job.loras:  # their adapters sit beside the denoiser's weights for the whole job
            weights = weights.plus(weights.denoiser, lora_support.lora_numel(job.loras))
        try:
            return memory.ladder(self.device, devices.dtype_name(self.device, job.spec.dtype), weights, shape,
                                 choice=request.memory_plan,
                                 attention=memory.default_attention(report), total_bytes=report.capacity(self.vram_gb))
        except ValueError as error:
            raise InvalidRequest("memory_plan", str(error)) from None

    def length_table(self, vram_gb: float | None = None) -> list[memory.LengthRow]:
        """For each installed model and preset size, the most frames that fit (SVD-XT's if none is installed)."""
        report = self.device_report()
        vram_gb = vram_gb or self.vram_gb
        # --vram plans for another card: a CUDA one, with every offload level, whatever this machine has
        device = "cuda:0" if vram_gb and not self.device.startswith(("cuda", "mps")) else self.device
        models = []
        for model in self.list_models():
            try:
                family = load_family(model.family)
                models.append((model.name, family.SPEC, self._model_weights(model), model_defaults(family, model)))
            except (OSError, ValueError, KeyError, VideoGenError):
                continue  # an unreadable model is reported when it is used, not here
        if not models:  # the families' best-known models, as they would be once downloaded
            from .families import specs

            models += [(f"{spec.reference_model.name} (not installed)", spec,
                        memory.ModelWeights(spec.reference_model.numel, spec.reference_model.largest_block,
                                            spec.reference_model.largest_tensor), spec.reference_model.defaults)
                       for spec in specs() if spec.reference_model is not None]
        rows = []
        for name, spec, weights, defaults in models:
            rows += memory.length_rows(name, spec.name, weights, defaults, device=device,
                                       dtype=devices.dtype_name(device, spec.dtype), budget_bytes=report.budget(vram_gb),
                                       total_bytes=report.capacity(vram_gb),
                                       attention=memory.default_attention(report))
        return rows

    def memory_plan(self, request: GenerationRequest | PreparedJob) -> MemoryPlan:
        """The plan a request would run with now (its picture may be missing): shown on the page beforehand."""
        report = self.device_report()
        return memory.choose(self.memory_plans(request, report=report), report.budget(self.vram_gb))

    def _model_weights(self, model: ModelInfo) -> memory.ModelWeights:
        """A model's parameter counts from its safetensors headers, read once per model."""
        weights = self._weights.get(model)
        if weights is None:
            try:
                weights = self._weights[model] = memory.ModelWeights.from_model(model)
            except (ValueError, KeyError, OSError) as error:
                raise ModelNotFound(f"{model.path} could not be loaded ({first_line(error)}); download it again "
                                    f"({HOW_TO_GET})") from None
        return weights

    def cancel(self) -> bool:
        """Ask the running job to stop; it ends at its next step boundary. False if nothing is running."""
        with self._lock:
            job = self._job
        if job is None:
            return False
        job.cancelled.set()
        return True

    @contextlib.contextmanager
    def turn(self):
        """Wait for the one-at-a-time slot, behind the jobs already waiting, and hold it while the block runs:
        for other heavy work that must not run beside a job (the page's smoothing tool)."""
        with self._queue:
            yield

    def unload(self) -> None:
        """Free the resident model (the next job loads again)."""
        with self._queue:
            self._drop_pipeline()

    # ---- internals ----------------------------------------------------------------------
    def _pipeline(self, job: PreparedJob, running: Job):
        """The resident pipeline, loaded and placed under the job's memory plan unless it already is."""
        plan, model = running.plan, job.model
        if (self._loaded is not None and self._loaded == model and self._pipe is not None
                and self._placement == plan.placement):
            memory.set_job_options(self._pipe, plan)
            lora_support.apply(self._pipe, job.loras)  # switches adapters; never reloads the base model
            return self._pipe
        self._drop_pipeline()  # never hold two models (or one model placed twice) at once
        running.stage(LOADING_MODEL, f"loading {model.name} ({plan.label(with_device=False)})")
        import torch

        self._pipe = memory.apply_plan(job.family.load(model, self.device, getattr(torch, plan.dtype)), plan)
        self._placement = plan.placement
        self._weights_sha256 = weights_sha256(model)  # cached on disk: slow only the first time
        self._loaded = model
        self.loads += 1
        lora_support.apply(self._pipe, job.loras)
        return self._pipe

    def _frames(self, job: PreparedJob, image, running: Job):
        """Run the plan: chained segments, colour-matched to the first, then interpolation, then the loop.

        Out of memory in a segment steps down and makes that segment again, from the same noise (the seed's
        state at its start); the segments before it are kept."""
        import numpy as np
        from PIL import Image

        length, request = job.length, job.request
        pieces, reference = [], None
        for number, (count, generated) in enumerate(zip(length.segment_frames, length.generated_frames), 1):
            running.segment = (number, length.segments)
            start = image if number == 1 else Image.fromarray(pieces[-1][-1])  # lossless, from memory
            # A last frame ends the video, so only the last segment is asked to end on it
            segment = request.replace(num_frames=generated, fps=length.generation_fps,
                                      last_image=request.last_image if number == length.segments else None)
            seed_state = running.generator.get_state()

            def run_segment():
                return job.family.run(self._pipeline(job, running), segment, start, running)

            def recover():
                if self._pipe is not None:
                    lora_support.drop_unused(self._pipe, job.loras)  # memory is short: only this job's LoRAs stay
                if running.plan.placement != self._placement:
                    self._drop_pipeline()  # placed again, the cheaper way, on the next try
                running.generator.set_state(seed_state)  # the same noise as an uninterrupted run of that plan

            frames = running.retry_out_of_memory(run_segment, recover=recover)[:count]
            if reference is None:
                reference = channel_stats(frames)
            else:
                frames = match_colors(frames, *reference)[1:]  # its first frame is the previous one's last
            pieces.append(frames)
        frames = np.concatenate(pieces)
        if length.factor > 1:
            from .interpolate import interpolate

            running.segment = (1, 1)  # interpolation runs once, over the whole clip
            running.stage(INTERPOLATING, f"interpolating {length.factor}x to {length.fps} fps")
            frames = interpolate(frames, length.factor,
                                 on_progress=lambda done, total: running.step(INTERPOLATING, done, total))
        return apply_loop(frames[:length.loop_frames], length.loop, length.frames)

    def _drop_pipeline(self) -> None:
        if self._pipe is not None:
            self._pipe, self._loaded, self._placement = None, None, None
            memory.free_memory(self.device)

    def _output_path(self, request: GenerationRequest, model: ModelInfo, submitted_at: datetime) -> Path:
        if request.output_path:
            return Path(request.output_path)  # named by the user: overwritten if it exists
        safe_model = re.sub(r"[^A-Za-z0-9._-]+", "-", model.name).strip("-") or "model"
        stem = f"{submitted_at:%Y%m%d-%H%M%S}_{safe_model}_{request.seed}"
        return video_io.unique_path(self.outputs_dir / f"{stem}{video_io.SUFFIXES[request.output_format]}")


def model_defaults(family, model: ModelInfo) -> dict[str, Any]:
    """A model's request defaults: its family's, with a demo model's own small ones over them (`demo.py`)."""
    return {**family.defaults(model), **demo.demo_defaults(model)}


def _plan_length(request: GenerationRequest, spec: FamilySpec, defaults: dict[str, Any]) -> LengthPlan:
    """The length plan of a request whose defaults are filled in, for a model of `spec` with `defaults`."""
    return plan_length(request.num_frames, request.fps, native_frames=defaults["num_frames"],
                       native_fps=defaults["fps"], interpolation=request.interpolation, loop=request.loop,
                       frame_step=spec.frame_step)


def _lora_defaults(family, model: ModelInfo, loras) -> dict[str, Any]:
    """A model's defaults (`model_defaults`), with those its family gives a step-distill LoRA among `loras` on top."""
    defaults = model_defaults(family, model)
    hook = getattr(family, "lora_defaults", None)
    if hook is not None and loras:
        defaults = {**defaults, **hook(model, loras)}
    return defaults


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidRequest("output_path", f"cannot create the folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise InvalidRequest("output_path", f"the folder {folder} is not writable")


# Room kept free beyond the video itself: ffmpeg's buffers, the sidecar, the history database's WAL.
MIN_FREE_BYTES = 64 * 2**20


def _check_free_space(folder: Path, request: GenerationRequest, plan: LengthPlan) -> None:
    """Refuse before any work when the disk cannot hold the result (a full disk found after a 10-minute job
    loses the job). The need is bounded by the raw frames for PNG, a tenth of them for a compressed video."""
    raw_bytes = plan.frames * request.width * request.height * 3
    needed = MIN_FREE_BYTES + (raw_bytes if request.output_format == "png" else raw_bytes // 10)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # a folder whose free space cannot be read (some network drives): the write reports itself
    if free < needed:
        raise InvalidRequest("output_path", f"not enough free disk space in {folder}: {free / 2**20:.0f} MB free, "
                                            f"this video needs about {needed / 2**20:.0f} MB; free some space")
