"""`GenerationRequest`: the one schema of a job.

The page, the command line, the JSON mode, the metadata written into every video and the
history all use this class; nothing else lists parameter names. A field left at `None` takes
the model's default (see `families.*.defaults`), filled in by `Generator` before anything loads.
This module imports no torch, so the UI can use it freely.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
from dataclasses import dataclass, fields
from typing import Any

from .errors import InvalidRequest
from .families.speed import SPEEDS
from .loras import LoraChoice, check_choices, coerce as coerce_loras
from .memory import parse_plan_choice
from .planner import LOOPS

FORMATS = ("mp4", "webm", "gif", "png")
RESIZE_MODES = ("crop", "fit")
UPSCALES = ("off", "2x")  # two-stage output with a latent upsampler (LTX-Video): off, or half size then 2x

# Seed values that mean "draw a random seed" (-1 by convention; 0 as some UIs use it).
RANDOM_SEEDS = (-1, 0)
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts any unsigned 64-bit value

# Allowed ranges, (low, high) inclusive; the messages quote them.
LIMITS: dict[str, tuple[float, float]] = {
    "num_frames": (1, 720),  # 30 s at 24 fps, made of chained segments
    "fps": (1, 60),
    "width": (64, 2048),
    "height": (64, 2048),
    "motion_bucket_id": (1, 255),
    "noise_aug_strength": (0.0, 1.0),
    "decode_chunk_size": (1, 128),
    "num_inference_steps": (1, 150),
    "min_guidance_scale": (0.0, 30.0),
    "max_guidance_scale": (0.0, 30.0),
    "crf": (0, 51),
    "interpolation": (0, 4),
    "image_strength": (0.0, 1.0),  # how much the picture shapes a text family's video (0 ignores it)
}
INT_FIELDS = {"num_frames", "fps", "width", "height", "motion_bucket_id", "decode_chunk_size",
              "num_inference_steps", "crf", "seed", "interpolation"}
FLOAT_FIELDS = {"noise_aug_strength", "min_guidance_scale", "max_guidance_scale", "image_strength"}

# Older names accepted in JSON (the first version's request keys: image_path, guidance_scale, format, output).
ALIASES = {
    "image_path": "image",
    "guidance_scale": "max_guidance_scale",
    "format": "output_format",
    "output": "output_path",
}


@dataclass(frozen=True)
class Keyframe:
    """A picture the video passes through at output frame `frame` (families whose controls list "keyframes")."""

    image: str
    frame: int


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides a video. `None` means "the model's default"."""

    image: str | None = None
    model: str | None = None
    num_frames: int | None = None
    fps: int | None = None
    width: int | None = None
    height: int | None = None
    motion_bucket_id: int | None = None
    noise_aug_strength: float | None = None
    decode_chunk_size: int | None = None
    num_inference_steps: int | None = None
    min_guidance_scale: float | None = None
    max_guidance_scale: float | None = None
    seed: int = -1
    output_format: str | None = None  # None: from output_path's suffix, else mp4
    output_path: str | None = None
    crf: int = 18  # x264/VP9 constant rate factor; 18 is visually lossless for H.264
    resize_mode: str = "crop"  # crop: cover the target and centre-crop; fit: letterbox with padding
    interpolation: int = 0  # frame interpolation factor: 0 automatic, 1 off, 2-4 forced (see planner.py)
    loop: str = "none"  # none, pingpong, or crossfade (a seamless loop)
    prompt: str = ""
    negative_prompt: str = ""
    image_strength: float | None = None  # text families with a picture: 0 ignores it, near 1 keeps it as is
    scheduler: str | None = None  # text families: euler, ddim or lcm (None: the model's default)
    motion_adapter: str | None = None  # AnimateDiff: a motion adapter's name or path (None: the installed one)
    last_image: str | None = None  # families that take one (their spec's `last_image`): the picture to end on
    memory_plan: str = "auto"  # auto (the planner picks), or force none|model|group|sequential, optionally +fp8
    speed: str = "off"  # transformer families: a cache hook, "first-block-cache" or "taylorseer" (families/speed.py)
    # LoRAs and their strengths (loras.py); JSON: [{"name": ..., "strength": ...}], "sha256" filled in by the engine
    loras: tuple[LoraChoice, ...] = ()
    keyframes: tuple[Keyframe, ...] = ()  # LTX-Video: pictures at chosen frames; JSON [{"image": PATH, "frame": N}]
    upscale: str = "off"  # LTX-Video: "2x" makes the video at half size, upsamples its latents 2x and refines

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """Build from JSON-like data, accepting the older key names (ALIASES); unknown keys are errors."""
        if not isinstance(data, dict):
            raise InvalidRequest("request", f"must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = ALIASES.get(key, key)
            if name not in names:
                raise InvalidRequest(key, f"unknown key; allowed keys: {', '.join(sorted(names | set(ALIASES)))}")
            values[name] = _coerce(name, value)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> GenerationRequest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidRequest("request", f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["loras"] = list(data["loras"])  # JSON's list of {"name", "strength", "sha256"}
        data["keyframes"] = [dict(keyframe) for keyframe in data["keyframes"]]  # JSON's list of {image, frame}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any) -> GenerationRequest:
        return dataclasses.replace(self, **changes)

    # ---- defaults, seed, validation ----------------------------------------------------
    def with_defaults(self, defaults: dict[str, Any]) -> GenerationRequest:
        """Fill every `None` field that the model has a default for."""
        filled = {name: value for name, value in defaults.items() if getattr(self, name) is None}
        request = self.replace(**filled)
        if request.output_format is None:
            request = request.replace(output_format=format_for_path(request.output_path) or "mp4")
        return request

    def with_seed(self) -> GenerationRequest:
        """Draw a seed if this request asks for a random one, so every result can be reproduced."""
        if self.seed in RANDOM_SEEDS:
            return self.replace(seed=secrets.randbelow(2**32 - 1) + 1)
        return self

    def validate(self) -> GenerationRequest:
        """Check every field that is set; raise `InvalidRequest` naming the first bad one."""
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                kind = "a whole number" if name in INT_FIELDS else "a number"
                raise InvalidRequest(name, f"must be {kind} from {_fmt(low)} to {_fmt(high)}, got {_fmt(value)}")
        multiple = size_multiple()
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value % multiple:
                raise InvalidRequest(
                    name, f"must be a multiple of {multiple} (the VAE works on {multiple}x{multiple} pixel blocks), "
                    f"got {value}; try {max(64, round(value / multiple) * multiple)}"
                )
        if self.seed not in RANDOM_SEEDS and not 1 <= self.seed <= MAX_SEED:
            raise InvalidRequest("seed", f"must be -1 or 0 (random) or from 1 to {MAX_SEED}, got {self.seed}")
        if (self.min_guidance_scale is not None and self.max_guidance_scale is not None
                and self.min_guidance_scale > self.max_guidance_scale):
            raise InvalidRequest(
                "min_guidance_scale",
                f"must not exceed max_guidance_scale ({self.max_guidance_scale}), got {self.min_guidance_scale}",
            )
        if self.output_format is not None and self.output_format not in FORMATS:
            raise InvalidRequest("output_format", f"must be one of {', '.join(FORMATS)}, got {self.output_format!r}")
        if self.loop not in LOOPS:
            raise InvalidRequest("loop", f"must be one of {', '.join(LOOPS)}, got {self.loop!r}")
        try:
            parse_plan_choice(self.memory_plan)
        except ValueError as error:
            raise InvalidRequest("memory_plan", str(error)) from None
        if self.scheduler is not None and self.scheduler not in schedulers():
            raise InvalidRequest("scheduler", f"must be one of {', '.join(schedulers())}, got {self.scheduler!r}")
        if self.speed not in SPEEDS:
            raise InvalidRequest("speed", f"must be one of {', '.join(SPEEDS)}, got {self.speed!r}")
        check_choices(self.loras)
        if self.upscale not in UPSCALES:
            raise InvalidRequest("upscale", f"must be one of {', '.join(UPSCALES)}, got {self.upscale!r}")
        _check_keyframes(self.keyframes)
        if self.resize_mode not in RESIZE_MODES:
            raise InvalidRequest("resize_mode", f"must be one of {', '.join(RESIZE_MODES)}, got {self.resize_mode!r}")
        if self.output_path is not None and self.output_format is not None:
            implied = format_for_path(self.output_path)
            if implied is not None and implied != self.output_format:
                raise InvalidRequest(
                    "output_path", f"suffix says {implied} but output_format is {self.output_format}; make them agree"
                )
        return self


def schedulers() -> tuple[str, ...]:
    """Every scheduler some family accepts (a family's spec says which are its own): the CLI's choices."""
    from .families import specs

    return tuple(dict.fromkeys(name for spec in specs() for name in spec.schedulers))


def size_multiple() -> int:
    """The multiple every family's sizes share (each family's spec may ask for a larger one: Wan 16, LTX 32)."""
    from .families import specs

    return math.gcd(*(spec.size_multiple for spec in specs())) or 8


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def format_for_path(path: str | None) -> str | None:
    """The container a file name's suffix asks for (".mp4" -> "mp4"), or None when it names none."""
    if not path:
        return None
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    return suffix if suffix in FORMATS and suffix != "png" else None


KEYFRAMES_SHAPE = 'a list of {"image": PATH, "frame": N}'


def _keyframe(value: Any) -> Keyframe:
    """One keyframe from JSON ({"image": PATH, "frame": N}) or a `Keyframe`."""
    if isinstance(value, Keyframe):
        return value
    if not isinstance(value, dict) or set(value) != {"image", "frame"}:
        raise InvalidRequest("keyframes", f"must be {KEYFRAMES_SHAPE}, got {value!r}")
    image, frame = value["image"], value["frame"]
    if not isinstance(image, str) or not image:
        raise InvalidRequest("keyframes", f"each keyframe's image must be a picture's path, got {image!r}")
    if isinstance(frame, float) and frame.is_integer():
        frame = int(frame)
    if isinstance(frame, str) and frame.strip().lstrip("-").isdigit():
        frame = int(frame)
    if isinstance(frame, bool) or not isinstance(frame, int):
        raise InvalidRequest("keyframes", f"each keyframe's frame must be a whole number, got {frame!r}")
    return Keyframe(image=image, frame=frame)


def _check_keyframes(keyframes: Any) -> None:
    if not isinstance(keyframes, tuple) or not all(isinstance(keyframe, Keyframe) for keyframe in keyframes):
        raise InvalidRequest("keyframes", f"must be {KEYFRAMES_SHAPE}, got {keyframes!r}")
    for keyframe in keyframes:
        if not 1 <= keyframe.frame <= LIMITS["num_frames"][1] - 1:
            raise InvalidRequest("keyframes", f"a keyframe's frame must be from 1 to {int(LIMITS['num_frames'][1]) - 1} "
                                              f"(frame 0 is the picture), got {keyframe.frame}")


def _coerce(name: str, value: Any) -> Any:
    """Turn JSON values into the field's type, or say which field is wrong and why."""
    if name == "loras":
        return coerce_loras(value)
    if name == "keyframes":
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise InvalidRequest("keyframes", f"must be {KEYFRAMES_SHAPE}, got {value!r}")
        return tuple(_keyframe(item) for item in value)
    if value is None:
        if name == "seed":
            return -1
        return None
    if name in INT_FIELDS:
        if isinstance(value, bool):
            raise InvalidRequest(name, f"must be a whole number, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        if isinstance(value, int):
            return value
        raise InvalidRequest(name, f"must be a whole number, got {value!r}")
    if name in FLOAT_FIELDS:
        if isinstance(value, bool):
            raise InvalidRequest(name, f"must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidRequest(name, f"must be a number, got {value!r}") from None
    if not isinstance(value, str):
        raise InvalidRequest(name, f"must be a string, got {value!r}")
    return value


__all__ = ["GenerationRequest", "Keyframe", "FORMATS", "LIMITS", "RESIZE_MODES", "UPSCALES"]
