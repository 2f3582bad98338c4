"""`Generator`: keeps pipelines resident, runs one job at a time in arrival order, reports events.

The path of a job: check the request completely (no GPU work) → wait for its turn → load the model
if it is not resident → the family's `run` → `video_io.write_video` → `GenerationResult`.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import __version__, devices, memory, video_io
from .errors import Cancelled, GenerationFailed, InvalidRequest, ModelNotFound, VideoGenError, first_line
from .events import (
    DECODING,
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
from .frames import apply_loop, channel_stats, match_colors
from .images import fit_to_size, open_image
from .memory import MemoryPlan
from .models import HOW_TO_GET, ModelInfo, default_models_dir, file_sha256, list_models, resolve_model, weights_sha256
from .planner import LengthPlan, plan_length
from .request import GenerationRequest


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
        self.generator = None  # the job's torch.Generator, seeded afresh for every attempt
        self.cancelled = threading.Event()
        self._on_event = on_event
        self._preview_every = preview_every
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

    @property
    def decode_chunk_size(self) -> int:
        return self.plan.decode_chunk_size

    @property
    def current_stage(self) -> str:
        return self._stage or LOADING_MODEL

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
                             "to": cheaper.label()})
        self.plan = cheaper
        self.emit(StageEvent(stage, f"out of memory; retrying with {cheaper.label(with_device=False)}",
                             *self.segment))

    def decode_with_retries(self, decode: Callable[[int], Any]) -> Any:
        """Run `decode(chunk_size)`; on out-of-memory free memory and retry with a smaller chunk.

        The denoised latents stay where they are (the caller's), so only decoding is redone.
        """
        while True:
            try:
                return decode(self.decode_chunk_size)
            except RuntimeError as error:  # torch.OutOfMemoryError is one
                if not memory.is_out_of_memory(error):
                    raise
                cheaper = memory.next_cheaper(self.plans, self.plan, DECODING, decode_only=True)
                if cheaper is None:
                    raise  # the engine steps down to a plan placed more cheaply and starts again
                memory.free_memory(self.plan.device)
                self.step_down(error, cheaper)

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
                 allow_pickle: bool = False):
        self.models_dir = Path(models_dir) if models_dir else default_models_dir()
        # More places to find models (a ComfyUI or A1111 tree); the Hugging Face cache is always searched.
        self.extra_models_dirs = tuple(Path(folder) for folder in extra_models_dirs or ())
        self.allow_pickle = allow_pickle  # load .ckpt/.pt/.bin (with weights_only=True) only when asked
        self.outputs_dir = Path(outputs_dir or os.environ.get("VIDEO_GEN_OUTPUTS_DIR") or "outputs")
        self._device_choice = device
        self._device: str | None = None
        self._queue = _FifoLock()
        self._lock = threading.Lock()  # guards _job
        self._job: Job | None = None
        self._pipe = None
        self._loaded: ModelInfo | None = None
        self._weights_sha256: str | None = None
        self._placement: tuple | None = None  # MemoryPlan.placement of the resident pipeline
        self._weights: dict[ModelInfo, memory.ModelWeights] = {}
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
    def loaded_model(self) -> str | None:
        return self._loaded.name if self._loaded else None

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def waiting(self) -> int:
        """Jobs waiting for their turn (not counting the running one)."""
        return self._queue.waiting

    def list_models(self) -> list[ModelInfo]:
        return list_models(self.models_dir, self.extra_models_dirs)

    def resolve(self, name: str | None, motion_adapter: str | None = None) -> ModelInfo:
        """The model a name or path means, searched in every place this generator knows."""
        return resolve_model(name, self.models_dir, self.extra_models_dirs, motion_adapter=motion_adapter,
                             allow_pickle=self.allow_pickle)

    def defaults(self, model: str | None = None) -> dict[str, Any]:
        """The request defaults of an installed model (reads its configs only)."""
        info = self.resolve(model)
        return load_family(info.family).defaults(info)

    def prepare(self, request: GenerationRequest) -> tuple[GenerationRequest, ModelInfo]:
        """Check a request completely and fill in the model's defaults and the seed; loads nothing."""
        request, model = self._with_defaults(request)
        load_family(model.family).check(request)
        return request, model

    def _with_defaults(self, request: GenerationRequest) -> tuple[GenerationRequest, ModelInfo]:
        request = request.validate()
        model = self.resolve(request.model, request.motion_adapter)
        request = request.replace(model=request.model or model.name)
        return request.with_defaults(load_family(model.family).defaults(model)).with_seed().validate(), model

    def generate(self, request: GenerationRequest, on_event: EventCallback | None = None, *,
                 preview_every: int = 0) -> GenerationResult:
        """Run one job and return where its video is. Waits its turn behind earlier jobs.

        `preview_every` > 0 sends a `PreviewEvent` every that many denoising steps.
        Raises InvalidRequest (bad input, nothing ran), Cancelled, or GenerationFailed.
        """
        submitted = time.perf_counter()
        submitted_at = datetime.now()

        # 1. Check inputs: the whole request, the model folder and the picture, before any GPU work
        request, model = self.prepare(request)
        family = load_family(model.family)
        plan = self.plan(request, model)
        image = image_sha256 = None  # text-to-video families run without a picture (their `check` decides)
        if request.image:
            image = fit_to_size(open_image(request.image), request.width, request.height, request.resize_mode)
            image_sha256 = file_sha256(request.image)
        target_dir = Path(request.output_path).parent if request.output_path else self.outputs_dir
        _check_writable(target_dir)
        _check_free_space(target_dir, request, plan)

        # 2. Wait for our turn
        with self._queue:
            import torch

            job = Job(on_event, preview_every, getattr(family, "LATENT_RGB_FACTORS", None))
            with self._lock:
                self._job = job
            memory.reset_peak_memory(self.device)
            finished = False
            try:
                # 3. Plan memory for this job on this device now (free memory changes between jobs)
                report = self.device_report()
                job.plans = self.memory_plans(request, model, report)
                job.plan = memory.choose(job.plans, report.budget(self.vram_gb))
                dtype = job.plan.dtype

                # 4. Load the model unless it is resident, and generate the frames (segments, interpolation,
                #    loop); out of memory anywhere steps down to the next cheaper plan and starts again
                while True:
                    job.generator = torch.Generator("cpu").manual_seed(request.seed)  # as an uninterrupted run
                    try:
                        pipe = self._pipeline(model, family, job)
                        frames = self._frames(family, pipe, request, plan, image, job)
                        break
                    except RuntimeError as error:  # torch.OutOfMemoryError is one
                        if not memory.is_out_of_memory(error):
                            raise
                        job.step_down(error, memory.next_cheaper(job.plans, job.plan, job.current_stage))
                        if job.plan.placement != self._placement:
                            self._drop_pipeline()  # placed again, the cheaper way, on the next try
                        memory.free_memory(self.device)
                request = request.replace(decode_chunk_size=job.plan.decode_chunk_size)  # what made these frames

                # 5. Write the video under its final name only when complete, and its settings beside it
                job.stage(WRITING, f"writing {request.output_format}")
                output = self._output_path(request, model, submitted_at)
                metadata = {
                    "app": "video-gen", "version": __version__, "model": model.name, "family": model.family,
                    "model_sha256": self._weights_sha256, "image_sha256": image_sha256, "device": self.device,
                    "dtype": dtype, "fps": request.fps, "plan": plan.to_dict(), "request": request.to_dict(),
                    "memory": {"plan": job.plan.to_dict(), "retries": job.retries},
                }
                path = video_io.write_video(frames, output, fps=request.fps, format=request.output_format,
                                            crf=request.crf, metadata=metadata)
                video_io.write_sidecar(path, metadata)
                job.finish()
                finished = True
            finally:
                with self._lock:
                    self._job = None
                if not finished:
                    memory.free_memory(self.device)  # a failed or cancelled job leaves nothing behind

        result = GenerationResult(
            path=path, seed=request.seed, frames_written=len(frames), elapsed_s=time.perf_counter() - submitted,
            request=request, model=model.name, device=self.device, dtype=dtype, plan=plan, metadata=metadata,
            timings=dict(job.timings), peak_memory_bytes=memory.peak_memory_bytes(self.device),
            memory_plan=job.plan, retries=list(job.retries),
        )
        job.emit(DoneEvent(result))
        return result

    def plan(self, request: GenerationRequest, model: ModelInfo) -> LengthPlan:
        """How a prepared request's length and rate become model work (segments, interpolation, loop)."""
        native = load_family(model.family).defaults(model)
        return plan_length(request.num_frames, request.fps, native_frames=native["num_frames"],
                           native_fps=native["fps"], interpolation=request.interpolation, loop=request.loop)

    def device_report(self) -> memory.DeviceReport:
        """What the device has now (initialises CUDA on first use)."""
        return memory.probe(self.device)

    def memory_plans(self, request: GenerationRequest, model: ModelInfo | None = None,
                     report: memory.DeviceReport | None = None) -> list[MemoryPlan]:
        """The memory ladder of a prepared request on this device, fastest plan first."""
        model = model or self.resolve(request.model, request.motion_adapter)
        report = report or self.device_report()
        shape = memory.JobShape(model.family, self.plan(request, model).segment_frames[0], request.width,
                                request.height, request.decode_chunk_size)
        weights = self._model_weights(model)
        try:
            return memory.ladder(self.device, devices.dtype_name(self.device), weights, shape,
                                 choice=request.memory_plan, attention=memory.default_attention(report),
                                 total_bytes=report.capacity(self.vram_gb))
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
                models.append((model.name, model.family, self._model_weights(model),
                               load_family(model.family).defaults(model)))
            except (OSError, ValueError, KeyError, VideoGenError):
                continue  # an unreadable model is reported when it is used, not here
        if not models:
            models.append(("svd-xt (not installed)", "svd", memory.SVD_XT_WEIGHTS,
                           {"num_frames": 25, "fps": 7, "decode_chunk_size": 8}))
        rows = []
        for name, family, weights, defaults in models:
            rows += memory.length_rows(name, family, weights, defaults, device=device,
                                       dtype=devices.dtype_name(device), budget_bytes=report.budget(vram_gb),
                                       total_bytes=report.capacity(vram_gb),
                                       attention=memory.default_attention(report))
        return rows

    def memory_plan(self, request: GenerationRequest) -> MemoryPlan:
        """The plan a request would run with now (its picture may be missing): shown on the page beforehand."""
        request, model = self._with_defaults(request)
        report = self.device_report()
        return memory.choose(self.memory_plans(request, model, report), report.budget(self.vram_gb))

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

    def unload(self) -> None:
        """Free the resident model (the next job loads again)."""
        with self._queue:
            self._drop_pipeline()

    # ---- internals ----------------------------------------------------------------------
    def _pipeline(self, model: ModelInfo, family, job: Job):
        """The resident pipeline, loaded and placed under the job's memory plan unless it already is."""
        plan = job.plan
        if (self._loaded is not None and self._loaded == model and self._pipe is not None
                and self._placement == plan.placement):
            memory.set_job_options(self._pipe, plan)
            return self._pipe
        self._drop_pipeline()  # never hold two models (or one model placed twice) at once
        job.stage(LOADING_MODEL, f"loading {model.name} ({plan.label(with_device=False)})")
        import torch

        self._pipe = memory.apply_plan(family.load(model, self.device, getattr(torch, plan.dtype)), plan)
        self._placement = plan.placement
        self._weights_sha256 = weights_sha256(model)  # cached on disk: slow only the first time
        self._loaded = model
        self.loads += 1
        return self._pipe

    def _frames(self, family, pipe, request: GenerationRequest, plan: LengthPlan, image, job: Job):
        """Run the plan: chained segments, colour-matched to the first, then interpolation, then the loop."""
        import numpy as np
        from PIL import Image

        pieces, reference = [], None
        for number, count in enumerate(plan.segment_frames, 1):
            job.segment = (number, plan.segments)
            start = image if number == 1 else Image.fromarray(pieces[-1][-1])  # lossless, from memory
            frames = family.run(pipe, request.replace(num_frames=count, fps=plan.generation_fps), start, job)
            if reference is None:
                reference = channel_stats(frames)
            else:
                frames = match_colors(frames, *reference)[1:]  # its first frame is the previous one's last
            pieces.append(frames)
        frames = np.concatenate(pieces)
        if plan.factor > 1:
            from .interpolate import interpolate

            job.segment = (1, 1)  # interpolation runs once, over the whole clip
            job.stage(INTERPOLATING, f"interpolating {plan.factor}x to {plan.fps} fps")
            frames = interpolate(frames, plan.factor,
                                 on_progress=lambda done, total: job.step(INTERPOLATING, done, total))
        return apply_loop(frames[:plan.loop_frames], plan.loop, plan.frames)

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
