"""A job's turn: the running job's context (`RunningJob`, what a family's `run` talks to), the resident pipeline
(one model at a time, placed under the job's memory plan, kept between jobs) and `JobRunner`, which makes a
prepared job's frames (its prompt enhanced first when asked, then segment by segment, interpolation and the loop)
and writes its video (through its upscaler when it has one: finishing.py). The engine's
front (`engine.Generator`) checks requests and hands each job here when its turn comes.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import control, demo, finishing, memory, video_io
from . import loras as lora_support
from .checkpoints import ModelInfo, file_sha256, weights_sha256
from .errors import Cancelled, GenerationFailed, InvalidRequest, PartialKept, VideoGenError, first_line
from .events import (ENCODING_IMAGE, INTERPOLATING, LOADING_MODEL, STAGE_LABELS, WRITING, EventCallback, PreviewEvent,
                     StageEvent, StepEvent)
from .frames import apply_loop, channel_stats, match_colors
from .memory import MemoryPlan
from .planner import LengthPlan
from .request import GenerationRequest
from .results import PreparedJob
from .version import __version__


class RunningJob:
    """The running job as a family's `run` sees it: stages, steps (where cancel is checked), previews, the seed,
    and the one place that steps down when the device runs out of memory."""

    def __init__(self, on_event: EventCallback | None, preview_every: int, latent_rgb_factors,
                 cancelled: threading.Event | None = None):
        """`cancelled`: the caller's own stop flag for this job (the page's per-job one), else a new one."""
        self.generator = None  # the job's torch.Generator, seeded once; a retried segment restores its state
        self.cancelled = cancelled if cancelled is not None else threading.Event()
        self._on_event = on_event
        # No preview for a family without a latent-to-RGB map (its spec's latent_rgb_factors is None).
        self._preview_every = preview_every if latent_rgb_factors is not None else 0
        self._latent_rgb_factors = latent_rgb_factors
        self._started = time.perf_counter()
        self._stage: str | None = None
        self._stage_started = self._started
        self._first_step_at: float | None = None
        self.segment = (1, 1)  # (number, of how many), for long videos made of chained segments
        # This segment's control video and mask (VACE): (frames (F, H, W, 3), mask (F, H, W) or None) at the
        # segment's size and length, or None without a control
        self.control = None
        self.section = (0, 0)  # (number, of how many) of a pipeline's own sections (FramePack); (0, 0): none
        self.timings: dict[str, float] = {}
        self.plans: list[MemoryPlan] = []  # the memory ladder of this job, fastest first
        self.plan: MemoryPlan | None = None  # the rung it runs on now
        self.retries: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}  # what the family reports about how it ran (attention backend, speed hook)
        self.keep_partial = False  # on a stop (Ctrl+C, cancel) keep the finished segments (`JobRunner.keep_partial`)
        self.pieces: list = []  # the finished segments' frames, in order
        self.request: GenerationRequest | None = None  # the request that made the frames (an enhanced prompt)

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
        self.emit(StepEvent(stage, index, total, now - self._started, eta, *self.segment, *self.section))
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


class ResidentPipeline:
    """The pipeline kept loaded between jobs: one model at a time, placed under a memory plan; a job for the same
    model and placement reuses it (switching LoRAs, never reloading)."""

    def __init__(self, device: str):
        self.device = device
        self.pipe = None
        self.model: ModelInfo | None = None
        self.placement: tuple | None = None  # MemoryPlan.placement of the pipeline
        self.weights_sha256: str | None = None
        self.loads = 0  # how many times a model was loaded from disk (tests check residency with it)

    def get(self, job: PreparedJob, running: RunningJob):
        """The resident pipeline, loaded and placed under the job's memory plan unless it already is."""
        plan, model = running.plan, job.model
        if self.model is not None and self.model == model and self.pipe is not None and self.placement == plan.placement:
            memory.set_job_options(self.pipe, plan)
            lora_support.apply(self.pipe, job.loras)  # switches adapters; never reloads the base model
            return self.pipe
        self.drop()  # never hold two models (or one model placed twice) at once
        running.stage(LOADING_MODEL, f"loading {model.name} ({plan.label(with_device=False)})")
        import torch

        self.pipe = memory.apply_plan(job.family.load(model, self.device, getattr(torch, plan.dtype)), plan,
                                      apart=job.spec.memory.apart)
        self.placement = plan.placement
        self.weights_sha256 = weights_sha256(model)  # cached on disk: slow only the first time
        self.model = model
        self.loads += 1
        lora_support.apply(self.pipe, job.loras)
        return self.pipe

    def drop(self) -> None:
        if self.pipe is not None:
            self.pipe, self.model, self.placement = None, None, None
            memory.free_memory(self.device)


class JobRunner:
    """Runs prepared jobs on one device, one at a time (the engine's queue decides whose turn it is)."""

    def __init__(self, device: str, outputs_dir: Path, annotators_dir: Path | None = None):
        self.device = device
        self.outputs_dir = outputs_dir
        self.annotators_dir = annotators_dir  # models/annotators: what makes a control from a video
        self.resident = ResidentPipeline(device)

    def run(self, job: PreparedJob, image, running: RunningJob, plans: list[MemoryPlan], plan: MemoryPlan,
            submitted_at: datetime):
        """A job's turn on its memory plan (`plan`, on the ladder `plans`): load, make the frames, write the video.
        Returns (path, frames, metadata). Frees everything on failure."""
        finished = False
        try:
            import torch

            running.plans, running.plan = plans, plan
            running.generator = torch.Generator("cpu").manual_seed(job.request.seed)

            # 4. Enhance the prompt (the enhancer is unloaded before the video model loads)
            enhancement = None
            if job.enhancer is not None:
                request, enhancement = finishing.enhance_in_job(job, self.device, running, self.resident.drop)
                job = dataclasses.replace(job, request=request)
            running.request = job.request

            # 5. The control video (VACE) over every frame the model makes, before the model loads; then load the
            # model unless it is resident, and generate the frames (segments, interpolation, loop) and their sound
            # (families that make it, when the request has it on); a stop part-way keeps the finished segments
            # when asked (`keep_partial`)
            inputs = self.control_inputs(job, running)
            try:
                frames, sound = self.frames(job, image, running, inputs)
            except (Cancelled, KeyboardInterrupt) as stop:
                if not running.keep_partial:
                    raise
                raise self.keep_partial(job, running, submitted_at, stop) from None
            request = job.request.replace(decode_chunk_size=running.plan.decode_chunk_size)
            fps, source = request.fps, None
            if request.audio != "on":
                sound = None
            if job.finish is not None:  # e.g. the source video's frames and sound before these (extend.py)
                frames, fps, source, sound = job.finish(frames, sound)

            # 6. Write the video under its final name only when complete (upscaled on the way, when asked), and
            # its settings beside it
            if job.upscaler is None:
                running.stage(WRITING, f"writing {request.output_format}")
            metadata = {
                "app": "video-gen", "version": __version__, "model": job.model.name, "family": job.spec.name,
                "model_sha256": self.resident.weights_sha256,
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
            if sound is not None:
                sound = sound.fitted(len(frames), fps)  # one stream of exactly the video's length
                metadata["audio"] = sound.metadata(request.output_format)
            elif job.spec.sound:
                metadata["audio"] = {"made": False}
            if enhancement:
                metadata["prompt_enhancement"] = enhancement  # the user's prompt and the one that was used
            output = self._output_path(request, job.model, submitted_at, job.label)
            if inputs is not None:  # the control's and mask's hashes, frames and annotator: what --from re-makes
                metadata.update(inputs.metadata())
                metadata["control"]["video"] = str(control.control_path(output))
            if job.upscaler is None:
                # A cancel that arrives while the file is written still saves nothing: checked again just before
                # the file takes its name (issue 29: a job cancelled in its last moments wrote its video).
                path = video_io.write_video(frames, output, fps=fps, format=request.output_format, crf=request.crf,
                                            metadata=metadata, audio=sound, before_commit=running.check_cancelled)
            else:  # the last stage: each frame through the upscaler on its way to the writer
                height, width = frames[0].shape[:2]
                metadata["upscaled"] = finishing.upscaled_entry(job.upscaler, width, height, self.device)
                path = finishing.write_upscaled(frames, job.upscaler, output, fps=fps, format=request.output_format,
                                                crf=request.crf, metadata=metadata, device=self.device,
                                                running=running, make_room=self.resident.drop, audio=sound)
            video_io.write_sidecar(path, metadata)
            if inputs is not None:  # what the model saw, beside the output (NAME_control.mp4)
                control.write_control_video(inputs.control.frames, control.control_path(path),
                                            fps=job.length.generation_fps)
            running.finish()
            finished = True
            return path, frames, metadata
        finally:
            if not finished:
                memory.free_memory(self.device)  # a failed or cancelled job leaves nothing behind

    def probe(self, job: PreparedJob, image, running: RunningJob, plans: list[MemoryPlan], plan: MemoryPlan) -> None:
        """Make `job`'s frames and write nothing (the estimator's test run: `Generator.probe`); the model stays
        loaded for the jobs after it."""
        import torch

        running.plans, running.plan = plans, plan
        running.generator = torch.Generator("cpu").manual_seed(job.request.seed or 1)
        try:
            self.frames(job, image, running)
            running.finish()
        except BaseException:
            memory.free_memory(self.device)
            raise

    def control_inputs(self, job: PreparedJob, running: RunningJob) -> control.ControlInputs | None:
        """A request's control video (as it is, or made by its annotator on the device) and mask, over every frame
        the model makes at the rate it makes them, fitted to the video's size; None without one."""
        request = job.request
        if not (request.control or request.control_from):
            return None
        running.stage(ENCODING_IMAGE, f"making the {request.control_kind} control" if request.control_from
                      else "reading the control video")
        return control.prepare_inputs(request, frames=job.length.model_frames, fps=job.length.generation_fps,
                                      annotators_dir=self.annotators_dir, device=self.device)

    def frames(self, job: PreparedJob, image, running: RunningJob, inputs: control.ControlInputs | None = None):
        """Run the plan: chained segments, colour-matched to the first, then interpolation, then the loop. Each
        segment gets its own frames of the control (`inputs`): the model's frames from its first (the seam it
        shares with the segment before) on. Returns (frames, sound): the sound (`audio.Sound`, or None when the
        family made none) joined segment by segment as their frames are, then cut or padded with silence to the
        final video's length from its start (interpolation adds frames between frames, so the sound is not moved;
        a loop plays it once).

        Out of memory in a segment steps down and makes that segment again, from the same noise (the seed's
        state at its start); the segments before it are kept."""
        import numpy as np
        from PIL import Image

        length, request = job.length, job.request
        pieces, reference, sounds = [], None, []
        first_frame = 0  # the segment's first model frame
        for number, (count, generated) in enumerate(zip(length.segment_frames, length.generated_frames), 1):
            running.segment = (number, length.segments)
            running.control = inputs.segment(first_frame, generated) if inputs is not None else None
            first_frame += count - 1
            start = image if number == 1 else Image.fromarray(pieces[-1][-1])  # lossless, from memory
            # A last frame ends the video, so only the last segment is asked to end on it
            segment = request.replace(num_frames=generated, fps=length.generation_fps,
                                      last_image=request.last_image if number == length.segments else None)
            seed_state = running.generator.get_state()

            def run_segment():
                return job.family.run(self.resident.get(job, running), segment, start, running)

            def recover():
                if self.resident.pipe is not None:
                    lora_support.drop_unused(self.resident.pipe, job.loras)  # memory is short: only this job's LoRAs stay
                if running.plan.placement != self.resident.placement:
                    self.resident.drop()  # placed again, the cheaper way, on the next try
                running.generator.set_state(seed_state)  # the same noise as an uninterrupted run of that plan

            frames, sound = split_sound(running.retry_out_of_memory(run_segment, recover=recover))
            frames = frames[:count]
            first = 0 if reference is None else 1  # a later segment's first frame is the previous one's last
            sounds.append(None if sound is None else sound.frames(first, count, segment.fps))
            if reference is None:
                reference = channel_stats(frames)
            else:
                frames = match_colors(frames, *reference)[1:]
            pieces.append(frames)
            running.pieces = list(pieces)
        frames = np.concatenate(pieces)
        sound = None
        if sounds and all(piece is not None for piece in sounds):
            sound = sounds[0]
            for piece in sounds[1:]:
                sound = sound.then(piece)
        if length.factor > 1:
            from .interpolate import interpolate

            running.segment = (1, 1)  # interpolation runs once, over the whole clip
            running.stage(INTERPOLATING, f"interpolating {length.factor}x to {length.fps} fps")
            frames = interpolate(frames, length.factor,
                                 on_progress=lambda done, total: running.step(INTERPOLATING, done, total))
        frames = apply_loop(frames[:length.loop_frames], length.loop, length.frames)
        return frames, (None if sound is None else sound.fitted(len(frames), length.fps))

    def keep_partial(self, job: PreparedJob, running: RunningJob, submitted_at: datetime,
                     stop: BaseException) -> Cancelled:
        """A long job stopped part-way (issue 29: Ctrl+C at segment 35 of a 30 s video kept nothing): its finished
        segments as a playable file named `<name>_partial.mp4`, at the model's rate (no interpolation, no loop),
        with the request in its metadata under `partial`. Returns the `PartialKept` to raise, or a `Cancelled`
        that says plainly why nothing was kept."""
        length, done = job.length, len(running.pieces)
        where = f"in segment {min(done + 1, length.segments)} of {length.segments}"
        if not running.pieces:
            return Cancelled(f"interrupted {where}, before any segment was finished: nothing to keep")
        import numpy as np

        frames = np.concatenate(running.pieces)
        final = self._output_path(job.request.replace(output_format="mp4"), job.model, submitted_at, job.label)
        target = video_io.unique_path(final.with_name(f"{final.stem}_partial.mp4"))
        metadata = {"app": "video-gen", "version": __version__, "model": job.model.name, "family": job.spec.name,
                    "fps": length.generation_fps, "request": job.request.to_dict(), **demo.metadata(job.model),
                    "partial": {"segments": done, "of": length.segments, "frames": int(len(frames)),
                                "note": "stopped part-way: the finished segments only, at the model's own rate"}}
        try:
            path = video_io.write_video(frames, target, fps=length.generation_fps, format="mp4", crf=job.request.crf,
                                        metadata=metadata)
            video_io.write_sidecar(path, metadata)
        except (OSError, VideoGenError) as error:
            return Cancelled(f"interrupted {where}; the {done} finished segment(s) could not be kept: "
                             f"{first_line(error)}")
        seconds = len(frames) / length.generation_fps
        return PartialKept(f"interrupted {where}: kept the {done} finished segment{'s' if done != 1 else ''} "
                           f"({len(frames)} frames, {seconds:.1f} s at {length.generation_fps} fps) as {path}",
                           path=path, segments_done=done, segments=length.segments)

    def _output_path(self, request: GenerationRequest, model: ModelInfo, submitted_at: datetime,
                     label: str = "") -> Path:
        if request.output_path:
            return Path(request.output_path)  # named by the user: overwritten if it exists
        safe_model = re.sub(r"[^A-Za-z0-9._-]+", "-", model.name).strip("-") or "model"
        safe_label = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.")[:60]
        stem = f"{submitted_at:%Y%m%d-%H%M%S}_{safe_model}_{safe_label + '_' if safe_label else ''}{request.seed}"
        return video_io.unique_path(self.outputs_dir / f"{stem}{video_io.SUFFIXES[request.output_format]}")


def split_sound(made) -> tuple[Any, Any]:
    """A family's `run` result as (frames, sound): it returns frames alone, or (frames, `audio.Sound` or None)."""
    if isinstance(made, tuple):
        frames, sound = made
        return frames, sound
    return made, None


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidRequest("output_path", f"cannot create the folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise InvalidRequest("output_path", f"the folder {folder} is not writable")


# Room kept free beyond the video itself: ffmpeg's buffers, the sidecar, the history database's WAL.
MIN_FREE_BYTES = 64 * 2**20


def check_free_space(folder: Path, request: GenerationRequest, plan: LengthPlan, scale: int = 1) -> None:
    """Refuse before any work when the disk cannot hold the result (a full disk found after a 10-minute job
    loses the job). The need is bounded by the raw frames for PNG, a tenth of them for a compressed video;
    `scale`: the upscaler's, when the job ends with one."""
    raw_bytes = plan.frames * request.width * request.height * 3 * scale * scale
    needed = MIN_FREE_BYTES + (raw_bytes if request.output_format == "png" else raw_bytes // 10)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # a folder whose free space cannot be read (some network drives): the write reports itself
    if free < needed:
        raise InvalidRequest("output_path", f"not enough free disk space in {folder}: {free / 2**20:.0f} MB free, "
                                            f"this video needs about {needed / 2**20:.0f} MB; free some space")
