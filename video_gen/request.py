"""`GenerationRequest` and its one field table.

Every request field is declared once, in `FIELDS`: its name, its type and limits (`Kind`), where its default
comes from (`MODELS_OWN`: the model's, from its family's `defaults(model)`; else a constant), its help text, its
command-line flag, how the page shows it (`Control`) and which families use it. Everything else reads this
table: the request's own checks, the CLI's flags (`cli/flags.py`), the page's form and its `/generate` and
`/generate_batch` inputs (`web/fields.py`), JSON mode, Load settings, sweeps (which fields may vary) and the
metadata written into every video and the history. A new field is one entry here plus the family code that
uses it (`add_field` adds one from elsewhere, as a test does).

A field left unset (None) takes the model's default, filled in by the engine before anything loads, whichever
door the request came through. This module imports no torch, so the UI can use it freely.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .annotators import CONTROL_KINDS
from .errors import InvalidRequest
from .families import specs
from .families.speed import SPEEDS
from .loras import check_choices, coerce as coerce_loras
from .memory import MEMORY_PLANS, parse_plan_choice
from .planner import LOOPS, MAX_FRAMES

FORMATS = ("mp4", "webm", "gif", "png")
RESIZE_MODES = ("crop", "fit")
UPSCALES = ("off", "2x")
SWITCH = ("on", "off")  # a field that is on or off  # two-stage output with a latent upsampler (LTX-Video): off, or half size then 2x
# Seed values that mean "draw a random seed" (-1 by convention; 0 as some UIs use it).
RANDOM_SEEDS = (-1, 0)
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts any unsigned 64-bit value


class _ModelsOwn:
    """The default of a field whose value comes from the model (its family's `defaults(model)`)."""

    def __repr__(self) -> str:
        return "the model's"


MODELS_OWN = _ModelsOwn()


# ---- kinds: how a value is read and checked --------------------------------------------------------------
class Kind:
    """A field's type: `read` turns a value from JSON, a flag's text or the page into it (InvalidRequest naming the
    field otherwise), `check` says whether a value of that type is allowed."""

    python_type: type = str

    def read(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidRequest(name, f"must be text, got {value!r}")
        return value

    def check(self, name: str, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(name, f"must be text, got {value!r}")

    def to_json(self, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class Whole(Kind):
    low: int
    high: int
    python_type = int

    def read(self, name, value):
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InvalidRequest(name, f"must be a whole number, got {value!r}")

    def check(self, name, value):
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            raise InvalidRequest(name, f"must be a whole number from {_fmt(self.low)} to {_fmt(self.high)}, "
                                       f"got {_fmt(value)}")


@dataclass(frozen=True)
class Number(Kind):
    low: float
    high: float
    python_type = float

    def read(self, name, value):
        if value is None:
            return None
        if isinstance(value, bool):
            raise InvalidRequest(name, f"must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidRequest(name, f"must be a number, got {value!r}") from None

    def check(self, name, value):
        if value is None:
            return
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or not self.low <= value <= self.high):
            raise InvalidRequest(name, f"must be a number from {_fmt(self.low)} to {_fmt(self.high)}, "
                                       f"got {_fmt(value)}")


@dataclass(frozen=True)
class Choice(Kind):
    """One of `values` (a callable for choices that the families decide, such as their schedulers)."""

    values: tuple[str, ...] | Callable[[], tuple[str, ...]]

    def allowed(self) -> tuple[str, ...]:
        return self.values() if callable(self.values) else self.values

    def check(self, name, value):
        if value is not None and value not in self.allowed():
            raise InvalidRequest(name, f"must be one of {', '.join(self.allowed())}, got {value!r}")


class Flag(Kind):
    """On or off: true/false in JSON, a flag without a value on the command line (`--enhance-prompt`)."""

    python_type = bool

    def read(self, name, value):
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "on", "off", "1", "0"):
            return value.strip().lower() in ("true", "on", "1")
        raise InvalidRequest(name, f"must be true or false, got {value!r}")

    def check(self, name, value):
        if value is not None and not isinstance(value, bool):
            raise InvalidRequest(name, f"must be true or false, got {value!r}")


class MemoryPlanChoice(Kind):
    """auto, or an offload level forced, optionally with +fp8 (memory.parse_plan_choice)."""

    def check(self, name, value):
        super().check(name, value)
        try:
            parse_plan_choice(value)
        except ValueError as error:
            raise InvalidRequest(name, str(error)) from None


class Seed(Whole):
    def read(self, name, value):
        return -1 if value is None else super().read(name, value)

    def check(self, name, value):
        if isinstance(value, bool) or not isinstance(value, int) or (
                value not in RANDOM_SEEDS and not 1 <= value <= MAX_SEED):
            raise InvalidRequest(name, f"must be -1 or 0 (random) or from 1 to {MAX_SEED}, got {value!r}")


class Loras(Kind):
    """[{"name": ..., "strength": ...}] in JSON; a tuple of `loras.LoraChoice` in the request."""

    python_type = tuple

    def read(self, name, value):
        return coerce_loras(value)

    def check(self, name, value):
        check_choices(value)

    def to_json(self, value):
        return [{"name": choice.name, "strength": choice.strength, "sha256": choice.sha256} for choice in value]


@dataclass(frozen=True)
class Keyframe:
    """A picture the video passes through at output frame `frame` (families whose controls list "keyframes")."""

    image: str
    frame: int


KEYFRAMES_SHAPE = 'a list of {"image": PATH, "frame": N}'


class Keyframes(Kind):
    python_type = tuple

    def read(self, name, value):
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise InvalidRequest(name, f"must be {KEYFRAMES_SHAPE}, got {value!r}")
        return tuple(_keyframe(item) for item in value)

    def check(self, name, value):
        if not isinstance(value, tuple) or not all(isinstance(keyframe, Keyframe) for keyframe in value):
            raise InvalidRequest(name, f"must be {KEYFRAMES_SHAPE}, got {value!r}")
        most = FIELD["num_frames"].kind.high - 1
        for keyframe in value:
            if not 1 <= keyframe.frame <= most:
                raise InvalidRequest(name, f"a keyframe's frame must be from 1 to {most} (frame 0 is the picture), "
                                           f"got {keyframe.frame}")

    def to_json(self, value):
        return [{"image": keyframe.image, "frame": keyframe.frame} for keyframe in value]


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


# ---- which families use a field ---------------------------------------------------------------------------
def control(name: str) -> Callable[[Any], bool]:
    """Used by the families whose spec lists `name` among its `controls`."""
    return lambda spec: name in spec.controls


# ---- the fields ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Control:
    """How the page shows a field (`web/fields.py` builds its Gradio component). `kind`: slider, radio, fps (a
    radio of rates that takes the model's own too), text, flag, picture, pictures, model (the dropdown), seed,
    loras (the LoRA panel). `low`/`high`/`step` and `choices` ((label, value) pairs) are the page's, narrower than
    the field's own where a page needs it, and `family_range` names a `FamilySpec` attribute that narrows them per
    family (`steps_range`); `start` is its value before a model sets one (None: the field's default). `section`:
    where the Generate tab puts a control its layout does not place itself ("main", or "advanced")."""

    kind: str
    low: float | None = None
    high: float | None = None
    step: float = 1
    choices: tuple[tuple[str, Any], ...] = ()
    start: Any = None
    lines: int = 1
    section: str = "advanced"
    family_range: str = ""


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    help: str  # what it does to the video: the CLI's --help, the page's note under the control, the API's docs
    label: str = ""  # its name for people (the page's label)
    default: Any = MODELS_OWN  # MODELS_OWN: the model's; else this value (None: no value)
    flag: str | None = ""  # the CLI's flag; "": --NAME with dashes; None: not a flag (the picture is an argument)
    metavar: str | None = None
    repeat: bool = False  # the flag may be given several times (--lora, --keyframe)
    page: Control | None = None  # None: not a control of the page (the page may stand for it another way)
    uses: Callable[[Any], bool] | None = None  # which families use it, from their FamilySpec; None: every family
    # Why a family that does not use the field refuses a value other than its default (None: it is ignored)
    unused: str | None = None
    aliases: tuple[str, ...] = ()  # older JSON keys

    @property
    def cli_flag(self) -> str | None:
        return None if self.flag is None else (self.flag or "--" + self.name.replace("_", "-"))

    def used_by(self, spec) -> bool:
        return self.uses is None or spec is None or self.uses(spec)

    def start(self) -> Any:
        """The value the request has when nothing set it."""
        if self.default is MODELS_OWN:
            return () if self.kind.python_type is tuple else None
        return self.default


_NO_CONTROL = "takes no control video (Wan VACE models do); leave it out"

FIELDS: list[Field] = [
    Field("image", Kind(), "the picture to animate (optional for text-to-video models)", label="Picture",
          default=None, flag=None, page=Control("picture", section="main"),
          uses=lambda spec: spec.takes_image, aliases=("image_path",)),
    Field("model", Kind(), "folder name under the models dir, or a path (default: the only one installed)",
          label="Model", default=None, page=Control("model", section="main")),
    Field("num_frames", Whole(1, MAX_FRAMES), "number of frames (at most a minute at 30 fps; longer than the model "
          "makes at once: chained segments, or FramePack's own sections)",
          label="Frames", flag="--frames"),
    Field("fps", Whole(1, 60), "frames per second of the video", label="Frame rate (fps)",
          page=Control("fps", choices=tuple((str(fps), fps) for fps in (8, 12, 16, 24)), start=8, section="main")),
    Field("width", Whole(64, 2048), "width in pixels (a multiple of the family's size multiple)", label="Width"),
    Field("height", Whole(64, 2048), "height in pixels", label="Height"),
    Field("motion_bucket_id", Whole(1, 255), "how much moves: low keeps the scene calm, high gives big camera "
          "and subject motion", label="Motion intensity", flag="--motion",
          page=Control("slider", start=127, section="main"), uses=control("motion_bucket_id")),
    Field("num_inference_steps", Whole(1, 150), "denoising steps: more is slower and a little cleaner",
          label="Inference steps", flag="--steps",
          page=Control("slider", low=10, high=50, start=25, section="main", family_range="steps_range")),
    Field("seed", Seed(-1, MAX_SEED), "-1 or 0 = random; the same seed and settings give the same video",
          label="Seed", default=-1, page=Control("seed", section="main")),
    Field("noise_aug_strength", Number(0.0, 1.0), "noise added to the picture: more lets the video drift from it "
          "and move more", label="Noise augmentation", flag="--noise-aug",
          page=Control("slider", step=0.01, start=0.0), uses=control("noise_aug_strength")),
    Field("min_guidance_scale", Number(0.0, 30.0), "how closely the first frames follow the picture",
          label="Min guidance", flag="--min-guidance", page=Control("slider", high=15.0, step=0.1, start=1.0),
          uses=control("min_guidance_scale")),
    Field("max_guidance_scale", Number(0.0, 30.0), "how closely the video follows the picture or the prompt "
          "(where a family has a min guidance: at the last frame); too high looks burnt", label="Max guidance",
          flag="--max-guidance", page=Control("slider", high=15.0, step=0.1, start=5.0), aliases=("guidance_scale",)),
    Field("decode_chunk_size", Whole(1, 128), "frames decoded at once: lower uses less memory, higher is a bit "
          "smoother", label="Decode chunk size", flag="--decode-chunk", page=Control("slider", high=32, start=8)),
    Field("output_format", Choice(FORMATS), "mp4, webm, gif, or png (a folder of lossless frames); default: from "
          "--output's suffix, else mp4", label="Output format", default=None, flag="--format",
          page=Control("radio", choices=(("MP4 (H.264)", "mp4"), ("WebM (VP9)", "webm"),
                                         ("PNG frames (lossless, zipped)", "png")), start="mp4"),
          aliases=("format",)),
    Field("crf", Whole(0, 51), "quality: lower is better and bigger; 18 is visually lossless", label="Quality (CRF)",
          default=18, page=Control("slider")),
    Field("resize_mode", Choice(RESIZE_MODES), "crop fills the frame; fit shows the whole picture with bars",
          label="Fit the picture", default="crop", flag="--resize",
          page=Control("radio", choices=(("crop to fill", "crop"), ("fit with black bars", "fit")))),
    Field("loop", Choice(LOOPS), "none, pingpong (forward, then back), or crossfade (the end flows into the start; "
          "the length stays the same)", label="Loop", default="none",
          page=Control("radio", choices=(("none", "none"), ("ping-pong (forward, then back)", "pingpong"),
                                         ("seamless crossfade (end flows into start)", "crossfade")))),
    Field("interpolation", Whole(0, 4), "frame interpolation: 0 auto (the model makes frames near its own rate, the "
          "ones between are computed), 1 off, 2-4 forced", label="Frame interpolation", default=0,
          page=Control("radio", choices=(("auto", 0), ("off", 1), ("2×", 2), ("3×", 3), ("4×", 4)))),
    Field("prompt", Kind(), "what the video shows (text-driven families)", label="Prompt", default="",
          page=Control("text", lines=2, section="main"), uses=lambda spec: spec.prompt),
    Field("negative_prompt", Kind(), "what to avoid (text-driven families)", label="Negative prompt", default="",
          page=Control("text", section="main"), uses=lambda spec: spec.prompt),
    Field("image_strength", Number(0.0, 1.0), "with a picture: how much it shapes the video (0 ignores it, near 1 "
          "keeps it)", label="Image strength", page=Control("slider", step=0.05, start=0.5, section="main"),
          uses=control("image_strength")),
    Field("memory_plan", MemoryPlanChoice(), "auto: the fastest plan that fits the GPU's free memory; or force "
          f"{'|'.join(MEMORY_PLANS[1:])} offload, with +fp8 to store the denoiser's weights in fp8 (changes the "
          "frames). Out of memory always steps down", label="Memory plan", default="auto", metavar="PLAN",
          page=Control("radio", choices=(("auto (fastest that fits)", "auto"), ("everything on the GPU", "none"),
                                         ("model offload", "model"), ("group offload", "group"),
                                         ("sequential offload (least memory)", "sequential"),
                                         ("model offload + fp8 weights", "model+fp8")))),
    Field("last_image", Kind(), "a picture to end on, for families that take one", label="Last frame", default=None,
          flag="--last-frame", page=Control("picture", section="main"), uses=lambda spec: spec.last_image,
          unused="cannot take a last frame; leave it out"),
    Field("speed", Choice(SPEEDS), "transformer families (Wan, LTX): a cache hook that skips work on steps that "
          "change little (faster, slightly different frames); off reproduces the model exactly",
          label="Speed (cache)", default="off",
          page=Control("radio", choices=(("off", "off"), ("first block cache (about 1.5-2x)", "first-block-cache"),
                                         ("TaylorSeer", "taylorseer"))),
          uses=control("speed"), unused="has no cache hooks (they work on transformer models such as Wan and LTX); "
                                        "use off"),
    Field("loras", Loras(), 'LoRAs and their strengths, [{"name": ..., "strength": -2..2}]; on the command line '
          "NAME[:STRENGTH] from models/loras (or a path), repeatable, up to 8", label="LoRAs", default=(),
          flag="--lora", metavar="NAME[:STRENGTH]", repeat=True, page=Control("loras", section="main")),
    Field("upscale", Choice(UPSCALES), "LTX-Video: 2x makes the video at half size, upsamples its latents 2x with "
          "the installed latent upsampler and refines it", label="Two-stage 2× upscale", default="off",
          page=Control("radio"), uses=control("upscale"),
          unused="has no latent upsampler (LTX-Video has); use off"),
    Field("keyframes", Keyframes(), "LTX-Video: a picture the video passes through at FRAME (placed on LTX's 8-frame "
          "grid; the frame used is reported)", label="Keyframes", default=(), flag="--keyframe",
          metavar="PATH@FRAME", repeat=True, uses=control("keyframes"),
          unused="cannot take keyframes (LTX-Video can); leave them out"),
    Field("output_path", Kind(), "file (or folder for png) to write; overwritten if it exists", label="Output",
          default=None, flag="--output", aliases=("output",)),
    Field("scheduler", Choice(lambda: schedulers()), "the sampler, for families that offer a choice (AnimateDiff: "
          "euler, ddim, lcm)", label="Scheduler"),
    Field("motion_adapter", Kind(), "AnimateDiff: a motion adapter's name or path (default: the installed one)",
          label="Motion adapter", default=None),
    # Wan VACE's inputs. The page stands for them with its "Control video" section (web/control_box.py): one upload
    # and a kind ("as it is" fills `control`, a kind fills `control_from` and `control_kind`), and the mask.
    Field("control", Kind(), "Wan VACE: a control video given to the model as it is (a video file or a folder of "
          "frames), its frames taken at the video's rate and fitted to its size like the picture; the picture, when "
          "given, is a reference picture", label="Control video", default=None, metavar="VIDEO|FOLDER",
          uses=control("control"), unused=_NO_CONTROL),
    Field("mask", Kind(), "Wan VACE: white = generate, black = keep the control's pixels; a video or folder of the "
          "control's length and size, or one picture for every frame", label="Mask", default=None,
          metavar="VIDEO|FOLDER|IMAGE", uses=control("control"), unused=_NO_CONTROL),
    Field("control_from", Kind(), "Wan VACE: any video to make the control from, by --control-kind (the control "
          "used is saved beside the output as NAME_control.mp4)", label="Make the control from", default=None,
          metavar="VIDEO|FOLDER", uses=control("control"), unused=_NO_CONTROL),
    Field("control_kind", Choice(CONTROL_KINDS), "what --control-from makes: depth, pose (annotators in "
          "models/annotators), edges (Canny, thresholds 100 and 200) or gray", label="Control kind", default=None,
          uses=control("control"), unused=_NO_CONTROL),
    Field("audio", Choice(SWITCH), "the video's own sound, for families that make it (LTX-2; on by default there): "
          "off writes no audio stream at all (and no audio.wav beside PNG frames)", label="Sound",
          page=Control("radio", choices=(("on (the model's own sound)", "on"), ("off (silent video)", "off")),
                       start="on", section="main"),
          uses=lambda spec: spec.sound),
    Field("model_enhancer", Choice(SWITCH), "LTX-2: on lets the model's own Gemma 3 rewrite the prompt from the "
          "picture before generating (where its folder has processor/); the metadata keeps both prompts",
          label="Enhance the prompt (the model's own)", default="off", page=Control("radio"),
          uses=control("model_enhancer"), unused="has no prompt enhancement of its own; use off"),
    # Finishing (finishing.py). The page stands for them another way: its Enhance button writes the enhanced prompt
    # into the prompt box, and its Finish tab upscales any video (the result's "Upscale this video" too).
    Field("upscaler", Kind(), "upscale the finished video with this upscaler (a file in models/upscalers, or a "
          "path) as the job's last stage; frame count, frame rate and sound are kept", label="Upscaler",
          default=None, metavar="NAME"),
    Field("enhance_prompt", Flag(), "rewrite the prompt from the picture with the local prompt enhancer "
          "(models/enhancers) before the video model loads; the video's settings keep both prompts",
          label="Enhance the prompt", default=False, uses=lambda spec: spec.prompt,
          unused="takes no prompt, so there is nothing to enhance; leave it off"),
    Field("enhancer", Kind(), "the prompt enhancer: a folder in models/enhancers or a path (default: the only one "
          "installed); implies enhance_prompt", label="Prompt enhancer", default=None, metavar="NAME",
          uses=lambda spec: spec.prompt, unused="takes no prompt, so there is nothing to enhance; leave it out"),
]
FIELD: dict[str, Field] = {field.name: field for field in FIELDS}
ALIASES: dict[str, str] = {alias: field.name for field in FIELDS for alias in field.aliases}


def add_field(field: Field) -> Callable[[], None]:
    """Add a field to the table (at the end: /generate's inputs grow at the end); returns what removes it again."""
    if field.name in FIELD:
        raise ValueError(f"request field {field.name!r} exists")
    FIELDS.append(field)
    FIELD[field.name] = field
    ALIASES.update({alias: field.name for alias in field.aliases})

    def remove() -> None:
        FIELDS.remove(field)
        FIELD.pop(field.name, None)
        for alias in field.aliases:
            ALIASES.pop(alias, None)

    return remove


def limits(name: str) -> tuple[float, float]:
    """A numeric field's allowed range (low, high), inclusive."""
    kind = FIELD[name].kind
    return kind.low, kind.high


# ---- the request ---------------------------------------------------------------------------------------------
class GenerationRequest:
    """Everything that decides a video: one attribute per field of `FIELDS` (`request.num_frames`, …). A field
    left unset (or None) takes its default: a constant, or None (an empty tuple for lists) until the engine fills
    in the model's. Immutable and hashable; `replace` makes a
    changed copy. Built from keywords (Python), `from_dict` (JSON, with the older key names) or `from_json`."""

    __slots__ = ("_values",)

    def __init__(self, **values: Any):
        unknown = set(values) - FIELD.keys()
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidRequest(name, f"unknown field; allowed: {', '.join(FIELD)}")
        # None means "unset" everywhere: the field's default (the model's, filled in by the engine, or a constant)
        object.__setattr__(self, "_values", {field.name: _stored(field, values.get(field.name)) for field in FIELDS})

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "_values")[name]
        except KeyError:
            if name in FIELD:  # a field added since this request was made
                return FIELD[name].start()
            raise AttributeError(f"GenerationRequest has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("GenerationRequest is immutable; use .replace(...)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GenerationRequest) and self._items() == other._items()

    def __hash__(self) -> int:
        return hash(self._items())

    def __repr__(self) -> str:
        return "GenerationRequest(" + ", ".join(f"{name}={value!r}" for name, value in self._items()) + ")"

    def __reduce__(self):
        return _rebuild, (dict(self._items()),)

    def _items(self) -> tuple[tuple[str, Any], ...]:
        return tuple((field.name, getattr(self, field.name)) for field in FIELDS)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """Build from JSON-like data, accepting the older key names (aliases); unknown keys are errors."""
        if not isinstance(data, dict):
            raise InvalidRequest("request", f"must be a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = ALIASES.get(key, key)
            if name not in FIELD:
                raise InvalidRequest(key, f"unknown key; allowed keys: {', '.join(sorted([*FIELD, *ALIASES]))}")
            values[name] = FIELD[name].kind.read(name, value)  # null: unset
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> GenerationRequest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidRequest("request", f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {field.name: field.kind.to_json(getattr(self, field.name)) for field in FIELDS}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any) -> GenerationRequest:
        return GenerationRequest(**{**dict(self._items()), **changes})

    # ---- defaults, seed, validation ----------------------------------------------------
    def with_defaults(self, defaults: dict[str, Any]) -> GenerationRequest:
        """Fill every unset field that the model has a default for."""
        filled = {name: value for name, value in defaults.items() if name in FIELD and getattr(self, name) is None}
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
        """Check every field (its type and limits) and how they go together; raise `InvalidRequest` naming the
        first bad one."""
        for field in FIELDS:
            field.kind.check(field.name, getattr(self, field.name))
        multiple = size_multiple()
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value % multiple:
                raise InvalidRequest(
                    name, f"must be a multiple of {multiple} (the VAE works on {multiple}x{multiple} pixel blocks), "
                    f"got {value}; try {max(64, round(value / multiple) * multiple)}")
        if (self.min_guidance_scale is not None and self.max_guidance_scale is not None
                and self.min_guidance_scale > self.max_guidance_scale):
            raise InvalidRequest("min_guidance_scale", f"must not exceed max_guidance_scale ({self.max_guidance_scale}), "
                                                       f"got {self.min_guidance_scale}")
        self._check_control()
        if self.output_path is not None and self.output_format is not None:
            implied = format_for_path(self.output_path)
            if implied is not None and implied != self.output_format:
                raise InvalidRequest("output_path", f"suffix says {implied} but output_format is "
                                                    f"{self.output_format}; make them agree")
        return self

    def _check_control(self) -> None:
        """A control comes as it is (`control`) or made from a video (`control_from` with its `control_kind`); a
        mask goes with either."""
        if self.control and self.control_from:
            raise InvalidRequest("control_from", "give the control as it is (control) or a video to make it from "
                                                 "(control_from), not both")
        if self.control_from and not self.control_kind:
            raise InvalidRequest("control_kind", f"missing: control_from needs a kind ({', '.join(CONTROL_KINDS)})")
        if self.control_kind and not self.control_from:
            raise InvalidRequest("control_kind", "goes with control_from (the video to make the control from); give "
                                                 "that too, or leave the kind out")
        if self.mask and not (self.control or self.control_from):
            raise InvalidRequest("mask", "needs a control video (control, or control_from with control_kind)")

    def check_for_family(self, spec) -> None:
        """Refuse a value the family cannot use (its field's `unused` reason), naming the field."""
        for field in FIELDS:
            value = getattr(self, field.name)
            if field.unused and not field.used_by(spec) and value not in (None, (), field.default):
                raise InvalidRequest(field.name, f"{spec.label} {field.unused}, got {_shown(value)}")


def _stored(field: Field, value: Any) -> Any:
    """A value as the request keeps it: None is the field's default; a list is kept as a tuple (immutable)."""
    if value is None:
        return field.start()
    return tuple(value) if isinstance(value, list) else value


def _rebuild(values: dict[str, Any]) -> GenerationRequest:
    return GenerationRequest(**{name: value for name, value in values.items() if name in FIELD})


def schedulers() -> tuple[str, ...]:
    """Every scheduler some family accepts (a family's spec says which are its own)."""
    return tuple(dict.fromkeys(name for spec in specs() for name in spec.schedulers))


def size_multiple() -> int:
    """The multiple every family's sizes share (each family's spec may ask for a larger one: Wan 16, LTX 32)."""
    return math.gcd(*(spec.size_multiple for spec in specs())) or 8


def format_for_path(path: str | None) -> str | None:
    """The container a file name's suffix asks for (".mp4" -> "mp4"), or None when it names none."""
    if not path:
        return None
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    return suffix if suffix in FORMATS and suffix != "png" else None


def numeric_fields() -> list[str]:
    """The fields whose values are numbers (what a sweep may vary)."""
    return [field.name for field in FIELDS if isinstance(field.kind, (Whole, Number))]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return repr(value)
    return str(int(value)) if math.isfinite(value) and float(value).is_integer() else str(value)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


LIMITS: dict[str, tuple[float, float]] = {field.name: limits(field.name) for field in FIELDS
                                          if isinstance(field.kind, (Whole, Number)) and field.name != "seed"}

__all__ = ["GenerationRequest", "Field", "Control", "FIELDS", "FIELD", "Flag", "Keyframe", "MODELS_OWN", "add_field",
           "FORMATS", "LIMITS", "RESIZE_MODES", "UPSCALES"]
