"""`Generator`: keeps pipelines resident, runs one job at a time in arrival order, reports events.

The path of a job: check the request completely (no GPU work) → wait for its turn → load the model
if it is not resident → the family's `run` → `video_io.write_video` → `GenerationResult`.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import __version__, devices, video_io
from .errors import Cancelled, GenerationFailed, InvalidRequest
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
from .frames import apply_loop, channel_stats, match_colors
from .images import fit_to_size, open_image
from .models import ModelInfo, default_models_dir, file_sha256, list_models, resolve_model, weights_sha256
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

    def __init__(self, on_event: EventCallback | None, generator, preview_every: int, latent_rgb_factors):
        self.generator = generator
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
                 device: str | None = None):
        self.models_dir = Path(models_dir) if models_dir else default_models_dir()
        self.outputs_dir = Path(outputs_dir or os.environ.get("VIDEO_GEN_OUTPUTS_DIR") or "outputs")
        self._device_choice = device
        self._device: str | None = None
        self._queue = _FifoLock()
        self._lock = threading.Lock()  # guards _job
        self._job: Job | None = None
        self._pipe = None
        self._loaded: ModelInfo | None = None
        self._weights_sha256: str | None = None
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
        return list_models(self.models_dir)

    def defaults(self, model: str | None = None) -> dict[str, Any]:
        """The request defaults of an installed model (reads its configs only)."""
        info = resolve_model(model, self.models_dir)
        return load_family(info.family).defaults(info)

    def prepare(self, request: GenerationRequest) -> tuple[GenerationRequest, ModelInfo]:
        """Check a request completely and fill in the model's defaults and the seed; loads nothing."""
        request = request.validate()
        model = resolve_model(request.model, self.models_dir)
        family = load_family(model.family)
        request = request.replace(model=request.model or model.name)
        request = request.with_defaults(family.defaults(model)).with_seed().validate()
        family.check(request)
        return request, model

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
        image = fit_to_size(open_image(request.image), request.width, request.height, request.resize_mode)
        image_sha256 = file_sha256(request.image)
        target_dir = Path(request.output_path).parent if request.output_path else self.outputs_dir
        _check_writable(target_dir)

        # 2. Wait for our turn
        with self._queue:
            import torch

            job = Job(on_event, torch.Generator("cpu").manual_seed(request.seed), preview_every,
                      getattr(family, "LATENT_RGB_FACTORS", None))
            with self._lock:
                self._job = job
            devices.reset_peak_memory(self.device)
            finished = False
            try:
                # 3. Load the model unless it is already resident
                pipe = self._pipeline(model, family, job)
                dtype = str(devices.pick_dtype(self.device)).removeprefix("torch.")

                # 4. Generate the frames: segments, interpolation, loop
                frames = self._frames(family, pipe, request, plan, image, job)

                # 5. Write the video under its final name only when complete, and its settings beside it
                job.stage(WRITING, f"writing {request.output_format}")
                output = self._output_path(request, model, submitted_at)
                metadata = {
                    "app": "video-gen", "version": __version__, "model": model.name, "family": model.family,
                    "model_sha256": self._weights_sha256, "image_sha256": image_sha256, "device": self.device,
                    "dtype": dtype, "fps": request.fps, "plan": plan.to_dict(), "request": request.to_dict(),
                }
                path = video_io.write_video(frames, output, fps=request.fps, format=request.output_format,
                                            crf=request.crf, metadata=metadata)
                video_io.write_sidecar(path, metadata)
                job.finish()
                finished = True
            except torch.OutOfMemoryError as error:
                raise GenerationFailed(
                    f"out of {self.device} memory ({_first_line(error)}); lower the resolution, the number of "
                    f"frames or decode_chunk_size (now {request.decode_chunk_size})"
                ) from error
            finally:
                with self._lock:
                    self._job = None
                if not finished:
                    devices.free_memory(self.device)  # a failed or cancelled job leaves nothing behind

        result = GenerationResult(
            path=path, seed=request.seed, frames_written=len(frames), elapsed_s=time.perf_counter() - submitted,
            request=request, model=model.name, device=self.device, dtype=dtype, plan=plan, metadata=metadata,
            timings=dict(job.timings), peak_memory_bytes=devices.peak_memory_bytes(self.device),
        )
        job.emit(DoneEvent(result))
        return result

    def plan(self, request: GenerationRequest, model: ModelInfo) -> LengthPlan:
        """How a prepared request's length and rate become model work (segments, interpolation, loop)."""
        native = load_family(model.family).defaults(model)
        return plan_length(request.num_frames, request.fps, native_frames=native["num_frames"],
                           native_fps=native["fps"], interpolation=request.interpolation, loop=request.loop)

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
        if self._loaded is not None and self._loaded.path == model.path and self._pipe is not None:
            return self._pipe
        self._drop_pipeline()  # never hold two models at once
        job.stage(LOADING_MODEL, f"loading {model.name}")
        self._pipe = family.load(model, self.device, devices.pick_dtype(self.device))
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
            self._pipe, self._loaded = None, None
            devices.free_memory(self.device)

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


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
