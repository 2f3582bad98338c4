"""How long a job should take on this machine, before it runs: the line under the length on the page, and the
whole job's ETA while it runs (`web/progress.py`).

A job is amounts of work per stage (`job_work`): denoising is steps x latent tokens of every segment, decoding
and writing are frames x pixels, encoding is one per segment, loading is once unless the model is resident.
The seconds per unit come from the history of this machine (`history.py` keeps every finished job's request
and its `timings_s` per stage), best first: jobs of the same model at the same size and memory plan, then the
same model at any size, then a short test run of the model on this machine (`Estimator.probe`: two denoising
steps of one segment, timed per stage, the later steps' median taken as the steady step time; it loads the model, which
stays loaded for the first job). Without either, per-device constants times the model's parameter counts give a
rough figure, which the page does not show as a time (issue 29: it said 3 s for a 15.9 s first job: the load,
the imports and the first calls' warm-up are what it cannot know); the command line uses it only to decide
whether a test run is worth it. Imports no torch.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .events import DECODING, DENOISING, ENCODING_IMAGE, INTERPOLATING, LOADING_MODEL, WRITING

STAGES = (LOADING_MODEL, ENCODING_IMAGE, DENOISING, DECODING, INTERPOLATING, WRITING)
SEGMENT_STAGES = (ENCODING_IMAGE, DENOISING, DECODING)
# How many recent jobs a rate is the median of: enough to shrug off one slow first job (its kernels warm up),
# few enough to follow a machine whose load changes.
RECENT_JOBS = 5
HISTORY_LIMIT = 200

# Rough seconds per (parameter x latent token) of one denoising step, per device kind, used only until this
# machine has finished a job. Not measured here (no GPU has been lent to this project yet): SVD-XT at
# 1024x576 x 25 frames is 1.5e9 parameters x 460,800 tokens (CFG batch 2) per step; ~5 s a step on an RTX
# 3060 (community reports) gives 7e-15; a desktop CPU is taken as ~70x slower, Apple's MPS as ~4x.
ROUGH_DENOISE_S = {"cuda": 7e-15, "mps": 3e-14, "cpu": 5e-13}
ROUGH_DECODE_FACTOR = 1.5  # per (VAE parameter x frame x latent pixel), relative to the denoiser's rate
ROUGH_STEP_OVERHEAD_S = {"cuda": 0.02, "mps": 0.05, "cpu": 0.1}  # per step: launches, scheduler, callbacks
ROUGH_ENCODE_S = 1.0  # per segment: the picture through the image encoder and the VAE
ROUGH_WRITE_S_PER_PIXEL = 2e-8  # libx264 at ~50 Mpixel/s
ROUGH_INTERPOLATE_S_PER_PIXEL = 1e-7  # video_gen.interpolate on the CPU
ROUGH_LOAD_S_PER_BYTE = 1 / 400e6  # reading safetensors at ~400 MB/s and placing them


@dataclass(frozen=True)
class JobWork:
    """A job's work per stage, in units that carry over between sizes and lengths (see the module)."""

    units: dict[str, float]  # stage -> units for the whole job
    segments: int
    params: dict[str, int] = field(default_factory=dict)  # denoiser / vae parameters, to scale across models


@dataclass(frozen=True)
class TimeEstimate:
    """Seconds per stage of a job on this machine, and what they are based on."""

    stages: dict[str, float]
    segments: int
    basis: str  # "measured", "measured-other-sizes" or "rough"
    jobs: int  # how many finished jobs the rates come from
    device: str

    @property
    def total_s(self) -> float:
        return sum(self.stages.values())

    def remaining_after(self, stage: str | None, segment: int) -> float:
        """Estimated seconds of the stages after `stage` of segment `segment` (None: before the job starts)."""
        if stage is None:
            return self.total_s
        per_segment = {name: self.stages.get(name, 0.0) / max(self.segments, 1) for name in SEGMENT_STAGES}
        later = 0.0
        if stage in SEGMENT_STAGES:
            later += sum(per_segment[name] for name in SEGMENT_STAGES[SEGMENT_STAGES.index(stage) + 1:])
            later += sum(per_segment.values()) * max(self.segments - max(segment, 1), 0)
            later += self.stages.get(INTERPOLATING, 0.0) + self.stages.get(WRITING, 0.0)
        elif stage == LOADING_MODEL:
            later += sum(seconds for name, seconds in self.stages.items() if name != LOADING_MODEL)
        elif stage == INTERPOLATING:
            later += self.stages.get(WRITING, 0.0)
        return later

    @property
    def known(self) -> bool:
        """Whether the time comes from this machine (its history or a test run), not only from constants."""
        return self.basis != "rough"

    def basis_text(self) -> str:
        return {
            "measured": f"from {self.jobs} earlier job{'s' if self.jobs != 1 else ''} of this model at this size",
            "measured-other-sizes": f"from {self.jobs} earlier job{'s' if self.jobs != 1 else ''} of this model, "
                                    f"scaled to this size",
            "probe": "from a short test run of this model on this machine",
        }.get(self.basis, "rough: no job has finished on this machine yet")


def job_work(request, length, spec, *, load: bool = False, params: dict[str, int] | None = None) -> JobWork:
    """The work of a job whose defaults are filled in (`request`), planned as `length` (a `LengthPlan`), for a
    model of `spec` (its `FamilySpec`: its memory constants, and its sections where it has them)."""
    memory_constants = spec.memory
    pixels = request.width * request.height
    latent_pixels = (request.width // memory_constants.spatial_compression) * (
        request.height // memory_constants.spatial_compression)
    frames = length.generated_frames
    # A family of sections (FramePack) runs its transformer on one section's tokens, section after section
    tokens = sum(memory_constants.latent_tokens(count, request.width, request.height) * spec.sections(count)
                 for count in frames)
    steps = request.num_inference_steps or 0
    units = {
        LOADING_MODEL: 1.0 if load else 0.0,
        ENCODING_IMAGE: float(length.segments),
        DENOISING: float(steps * tokens),
        DECODING: float(sum(frames) * latent_pixels),
        INTERPOLATING: float(length.frames * pixels) if length.factor > 1 else 0.0,
        WRITING: float(length.frames * pixels),
    }
    return JobWork(units, length.segments, dict(params or {}))


def rough_rates(work: JobWork, device: str, size_bytes: int = 0) -> dict[str, float]:
    """Seconds per unit of each stage from the per-device constants (no history)."""
    kind = device.split(":")[0]
    denoiser, vae = work.params.get("denoiser", 0), work.params.get("vae", 0)
    tokens_per_step = work.units[DENOISING] / max(1.0, _steps(work))
    step_overhead = ROUGH_STEP_OVERHEAD_S.get(kind, 0.1) / max(tokens_per_step, 1.0)
    return {
        LOADING_MODEL: size_bytes * ROUGH_LOAD_S_PER_BYTE + 1.0,
        ENCODING_IMAGE: ROUGH_ENCODE_S,
        DENOISING: denoiser * ROUGH_DENOISE_S.get(kind, ROUGH_DENOISE_S["cpu"]) + step_overhead,
        DECODING: vae * ROUGH_DENOISE_S.get(kind, ROUGH_DENOISE_S["cpu"]) * ROUGH_DECODE_FACTOR,
        INTERPOLATING: ROUGH_INTERPOLATE_S_PER_PIXEL,
        WRITING: ROUGH_WRITE_S_PER_PIXEL,
    }


def _steps(work: JobWork) -> float:
    return float(work.params.get("steps", 1) or 1)


@dataclass(frozen=True)
class PastJob:
    """A finished job of the history as work and seconds (`Estimator.past_jobs`)."""

    model: str
    size: tuple[int, int]
    memory_plan: str | None
    device: str
    work: JobWork
    seconds: dict[str, float]


def rates_from(jobs: list[PastJob]) -> dict[str, float]:
    """Median seconds per unit of each stage over `jobs` (newest first, at most RECENT_JOBS of them with that
    stage)."""
    rates = {}
    for stage in STAGES:
        samples = [job.seconds[stage] / job.work.units[stage] for job in jobs
                   if job.work.units.get(stage) and stage in job.seconds][:RECENT_JOBS]
        if samples:
            rates[stage] = statistics.median(samples)
    return rates


def combine(work: JobWork, rates: dict[str, float], fallback: dict[str, float]) -> dict[str, float]:
    return {stage: work.units[stage] * rates.get(stage, fallback[stage]) for stage in STAGES if work.units[stage]}


PROBE_STEPS = 3  # the test run's denoising steps: the first pays the warm-up, the median of the others is steady
# A test run is not worth it for a job that the constants put under this (the command line's choice): the
# demo's 4 s job; a real model's job on a CPU (minutes) or a GPU (tens of seconds, its load needed anyway) is over.
PROBE_WORTH_S = 10.0
# Nor one that the constants put over this itself (a big model on a CPU): it would hold the engine that long
PROBE_MAX_S = 60.0


class Estimator:
    """Estimates for one `Generator` from its history (read again whenever it changed: a job that just finished
    counts at once) and from test runs (`probe`). The page, the command line and the tests use it."""

    def __init__(self, generator):
        self.generator = generator
        self._weights: dict[Any, dict[str, int]] = {}
        self._probes: dict[tuple[str, str], PastJob] = {}  # (model, device kind) -> its test run as a job
        self._probing: set[str] = set()
        self._lock = threading.Lock()
        self.version = 0  # grows when a test run ends (the page redraws its estimate)
        self.failures: dict[str, str] = {}  # model -> why its test run failed
        self._past: tuple[tuple, tuple[PastJob, ...]] | None = None  # (history and catalog state, its past jobs)

    # ---- test runs -----------------------------------------------------------------------------
    def probe_request(self, request):
        """The test run of `request`: its model, size and first segment's frames, `PROBE_STEPS` steps."""
        job = self.generator.plan_job(request)
        return job.request.replace(num_frames=job.length.generated_frames[0], interpolation=1, loop="none",
                                   num_inference_steps=PROBE_STEPS, output_path=None)

    def probe_plan(self, request):
        """The test run of `request`, planned (`probe_request`'s job): what runs it and what its cost is read from."""
        return self.generator.plan_job(self.probe_request(request))

    def probe_cost(self, request) -> float:
        """What the per-device constants say a test run of `request` takes (loading the model included)."""
        return self.estimate(self.probe_plan(request), load=None).total_s

    def probe(self, request) -> PastJob | None:
        """Run `request` (its model, size and frames; `PROBE_STEPS` steps, one segment, nothing written) and keep
        its stage times as evidence for that model on this device. Returns it (None: it failed, see `failures`)."""
        from .events import StepEvent
        from .errors import VideoGenError, first_line

        probed = self.probe_plan(request)  # planned once: the run and its evidence use this job
        step_times: list[float] = []

        def on_event(event) -> None:
            if isinstance(event, StepEvent) and event.stage == DENOISING:
                step_times.append(time.perf_counter())

        name = probed.model.name
        with self._lock:
            self._probing.add(name)
        try:
            loaded = self.generator.loaded_model == name
            timings = self.generator.probe(probed, on_event=on_event)
        except (VideoGenError, OSError, RuntimeError, ValueError) as error:
            with self._lock:
                self.failures[name] = first_line(error)
            return None
        finally:
            with self._lock:
                self._probing.discard(name)
                self.version += 1
        params = {**self.params(probed.model), "steps": 1}
        work = job_work(probed.request.replace(num_inference_steps=1), probed.length, probed.spec,
                        load=LOADING_MODEL in timings and not loaded, params=params)
        seconds = {stage: value for stage, value in timings.items() if stage != DENOISING}
        steady = [later - earlier for earlier, later in zip(step_times, step_times[1:])]
        seconds[DENOISING] = statistics.median(steady) if steady else timings.get(DENOISING, 0.0) / PROBE_STEPS
        device = self.generator.device
        evidence = PastJob(name, (probed.request.width, probed.request.height), None, device, work, seconds)
        with self._lock:
            self._probes[(name, device.split(":")[0])] = evidence
            self.failures.pop(name, None)
        return evidence

    def probe_in_background(self, model: str | None) -> bool:
        """Start a test run of `model` at its own defaults in a thread, unless this machine already has evidence
        for it (a finished job, a test run) or one is running. Returns whether one was started."""
        if not model or self.has_evidence(model):
            return False
        with self._lock:
            if model in self._probing or model in self.failures:
                return False
            self._probing.add(model)

        def run() -> None:
            from .errors import VideoGenError
            from .request import GenerationRequest

            try:
                request = GenerationRequest(model=model)
                cost = self.probe_cost(request)
                if cost > PROBE_MAX_S:  # a big model on a CPU: the time stays "not known" until a job has run
                    with self._lock:
                        self.failures[model] = f"a test run would take {duration_text(cost)}"
                        self.version += 1
                    return
                self.probe(request)
            except (VideoGenError, OSError, ValueError) as error:
                with self._lock:
                    self.failures[model] = str(error)
            finally:
                with self._lock:
                    self._probing.discard(model)

        threading.Thread(target=run, name=f"video-gen-probe-{model[:16]}", daemon=True).start()
        return True

    def probing(self, model: str | None) -> bool:
        with self._lock:
            return model in self._probing

    def has_evidence(self, model: str) -> bool:
        """Whether a time for `model` can come from this machine: a test run, or a finished job in the history."""
        kind = self.generator.device.split(":")[0]
        with self._lock:
            if (model, kind) in self._probes:
                return True
        return any(entry.model == model and entry.device.split(":")[0] == kind for entry in self.past_jobs())

    def params(self, model) -> dict[str, int]:
        """The denoiser's and the VAE's parameter counts, from the safetensors headers (read once per model)."""
        if model not in self._weights:
            from .memory import ModelWeights

            try:
                weights = ModelWeights.from_model(model)
                self._weights[model] = {"denoiser": weights.numel.get(weights.denoiser, 0),
                                        "vae": weights.numel.get("vae", 0)}
            except (OSError, ValueError, KeyError):
                self._weights[model] = {}
        return self._weights[model]

    def work(self, job, *, load: bool | None = None) -> JobWork:
        """The work of a `PreparedJob` (or one from `Generator.plan_job`)."""
        if load is None:
            load = self.generator.loaded_model != job.model.name
        params = {**self.params(job.model), "steps": job.request.num_inference_steps or 1}
        return job_work(job.request, job.length, job.spec, load=load, params=params)

    def past_jobs(self) -> tuple[PastJob, ...]:
        """The history's finished jobs, newest first, as work and seconds (jobs of models no longer installed, or
        without timings, are left out). Read again only when the history (`History.signature`: a job added, ended
        or deleted) or the catalog (a rescan) changed: each row is planned, ~20 ms for 200 rows on the CPU
        machine, and every estimate on the page used to read them all again."""
        state = (self.generator.history.signature(), self.generator.catalog.scans)
        with self._lock:
            if self._past is not None and self._past[0] == state:
                return self._past[1]
        found = self._read_past_jobs()
        with self._lock:
            self._past = (state, found)
        return found

    def _read_past_jobs(self) -> tuple[PastJob, ...]:
        from .families import load_family
        from .history import DONE
        from .request import GenerationRequest

        found = []
        for entry in self.generator.history.entries(status=DONE, limit=HISTORY_LIMIT):
            info = entry.info or {}
            timings = info.get("timings_s")
            model = self.generator.catalog.find(info.get("model") or entry.request.get("model") or "")
            if not isinstance(timings, dict) or model is None:
                continue
            try:
                request = GenerationRequest.from_dict(entry.request)
                family = load_family(model.family)
                length = self.generator.length_plan(request, model)
            except (ValueError, TypeError, KeyError, OSError):
                continue  # a row written by another version, or a model that changed: not evidence
            params = {**self.params(model), "steps": request.num_inference_steps or 1}
            work = job_work(request, length, family.SPEC, load=LOADING_MODEL in timings, params=params)
            seconds = {stage: float(value) for stage, value in timings.items() if isinstance(value, (int, float))}
            found.append(PastJob(model.name, (request.width, request.height), info.get("memory_plan"),
                                 str(info.get("device") or ""), work, seconds))
        return tuple(found)

    def estimate(self, job, *, memory_plan: str | None = None, load: bool | None = None) -> TimeEstimate:
        """Seconds per stage of `job` on this machine now (`memory_plan`: its plan's label, to match jobs by)."""
        device = self.generator.device
        work = self.work(job, load=load)
        fallback = rough_rates(work, device, getattr(job.model, "size_bytes", 0))
        mine = [entry for entry in self.past_jobs()
                if entry.model == job.model.name and entry.device.split(":")[0] == device.split(":")[0]]
        same = [entry for entry in mine if entry.size == (job.request.width, job.request.height)
                and (memory_plan is None or entry.memory_plan in (None, memory_plan))]
        with self._lock:
            probe = self._probes.get((job.model.name, device.split(":")[0]))
        for basis, chosen in (("measured", same), ("measured-other-sizes", mine), ("probe", [probe] if probe else [])):
            # A job that loaded the model also paid its first calls' warm-up (measured on the 2-core CI machine:
            # the demo's first job denoised 3.4x slower than the next ones), so jobs like this one go first.
            chosen = [entry for entry in chosen if entry.work.units[LOADING_MODEL] == work.units[LOADING_MODEL]
                      ] or chosen
            if chosen:
                rates = rates_from(chosen)
                if basis != "probe" and probe is not None:  # a stage the jobs lack (loading) from the test run
                    rates = {**rates_from([probe]), **rates}
                return TimeEstimate(combine(work, rates, fallback), work.segments, basis,
                                    min(len(chosen), RECENT_JOBS), device)
        return TimeEstimate(combine(work, {}, fallback), work.segments, "rough", 0, device)


def whole_job_eta(estimate: TimeEstimate | None, stage: str | None, segment: int, stage_eta_s: float | None,
                  elapsed_s: float | None) -> float | None:
    """Seconds until the whole job ends: the engine's ETA of the running stage plus the estimate of every stage
    still to come, corrected by how fast the job has gone so far compared with the estimate."""
    if estimate is None:
        return None
    remaining = estimate.remaining_after(stage, segment)
    if elapsed_s and elapsed_s > 1.0:
        done_estimated = estimate.total_s - remaining - (stage_eta_s or 0.0)
        if done_estimated > 0.5:  # enough of the job has run to compare
            remaining *= min(4.0, max(0.25, elapsed_s / done_estimated))
    return remaining + (stage_eta_s or 0.0)


def duration_text(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1 h 20 min'."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes:02d} min"


__all__ = ["Estimator", "TimeEstimate", "JobWork", "job_work", "whole_job_eta", "duration_text", "STAGES", "PROBE_STEPS",
           "PROBE_WORTH_S", "PROBE_MAX_S"]
