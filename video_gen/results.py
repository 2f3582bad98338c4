"""What a job is before it runs and after: `PreparedJob` (a request checked completely, with its model, defaults,
seed and length plan) and `GenerationResult` (where its video is, and everything that made it); and where a job's
defaults come from (`model_defaults`), the same for every door."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from .checkpoints import ModelInfo
from .demo import demo_defaults
from .enhance import EnhancerInfo
from .families import load_family
from .families.spec import FamilySpec
from .loras import ResolvedLora
from .memory import MemoryPlan
from .planner import LengthPlan, plan_length
from .request import GenerationRequest
from .upscale import UpscalerInfo


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
    # `finish(frames, sound) -> (frames, fps, source, sound)` gives the frames to write, the rate to write them at,
    # what they were added to (stored in the metadata and the info as "source") and the sound to write with them
    # (an `audio.Sound` or None). None: the frames and sound as made.
    finish: Callable[[Any, Any], tuple[Any, float, dict[str, Any], Any]] | None = None
    loras: tuple[ResolvedLora, ...] = ()  # its LoRAs, found and checked for the family
    upscaler: UpscalerInfo | None = None  # its `upscaler`, found and described (architecture, scale)
    enhancer: EnhancerInfo | None = None  # the prompt enhancer when it asks for one (`enhance_prompt`)
    # A word for the output's default name, between the model and the seed (a batch's picture name: issue 29)
    label: str = ""

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
        sound = self.metadata.get("audio")
        if isinstance(sound, dict) and sound.get("made"):  # the page's info panel: its rate and length
            info["audio"] = {"sample_rate": sound["sample_rate"], "duration_s": sound["duration_s"],
                             "channels": sound["channels"], "stream": sound["stream"]}
        if self.metadata.get("loras"):
            info["loras"] = self.metadata["loras"]  # each one's name, SHA-256 and strength
        for name in ("control", "mask"):  # a control video's (VACE) hashes, frames, annotator and kept copy
            if self.metadata.get(name):
                info[name] = self.metadata[name]
        for key in ("prompt_enhancement", "upscaled"):  # both prompts; the upscaler, its SHA-256 and the new size
            if self.metadata.get(key):
                info[key] = self.metadata[key]
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


# ---- a job's defaults and length: the one source every door's request goes through -------------------------
def model_defaults(family, model: ModelInfo, loras=()) -> dict[str, Any]:
    """A model's request defaults: its family's, with a demo model's own small ones over them (`demo.py`) and those
    its family gives a step-distill LoRA among `loras` (resolved LoRAs) on top."""
    defaults = {**family.defaults(model), **demo_defaults(model)}
    hook = getattr(family, "lora_defaults", None)
    if hook is not None and loras:
        defaults = {**defaults, **hook(model, loras)}
    return defaults


def picture_defaults(family, model: ModelInfo, request: GenerationRequest, defaults: dict[str, Any]) -> dict[str, Any]:
    """`defaults` with the size the family makes from the request's picture when the request names none (its
    optional `picture_size(model, width, height)`: HunyuanVideo 1.5's size bucket for the picture's shape)."""
    sized = getattr(family, "picture_size", None)
    if sized is None or not request.image or request.width is not None or request.height is not None:
        return defaults
    from .errors import InvalidRequest
    from .images import image_size

    try:
        return {**defaults, **dict(zip(("width", "height"), sized(model, *image_size(request.image))))}
    except (OSError, ValueError, InvalidRequest):
        return defaults  # an unreadable picture is refused by the engine's `prepare`, which opens it


def plan_job_length(request: GenerationRequest, spec: FamilySpec, defaults: dict[str, Any]) -> LengthPlan:
    """The length plan of a request whose defaults are filled in, for a model of `spec` with `defaults`."""
    # A family of sections (FramePack) makes any length in one generation: its planner never chains segments
    return plan_length(request.num_frames, request.fps, native_frames=spec.generation_frames(defaults["num_frames"]),
                       native_fps=defaults["fps"], interpolation=request.interpolation, loop=request.loop,
                       frame_step=spec.frame_step)
