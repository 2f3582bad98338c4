"""The Generate form's field table: one row per input, read by the form, the API, Load settings and Re-run.

A1111's pattern (one field table for the form, the API and "load settings"): each `Field` says what its control is, its start value, which model families
show it (from their `FamilySpec`, never from a family's name), how a value from the page or an API client
is checked (one line, `field: what is allowed`), and how a stored `GenerationRequest` fills it again. So:

- the Generate tab builds its controls from it (`Form.build`), in its own layout;
- `/generate` takes `FIELDS` as its inputs, by name and in this order (`Form.api_inputs`): the order is
  the public API's, so a new input is appended at the end, and the handler checks every value here
  (`Form.checked`) before `request_from_values` turns them into one `GenerationRequest`;
- Load settings and Re-run set every stored field from a request (`stored_values`), and choosing a
  model sets the fields its defaults name (`default_values`) and shows the fields its family uses
  (`Field.update`).

This module imports gradio but no torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from PIL import Image

from ..errors import InvalidRequest
from ..families.spec import NONE, OPTIONAL, REQUIRED, FamilySpec
from ..planner import DEFAULT_FPS, LengthPlan, plan_length, valid_frames
from ..request import LIMITS, UPSCALES, GenerationRequest, Keyframe
from .components import elem_id, file_input, picture, radio

# ---- the controls' ranges and choices (narrower than request.LIMITS: what makes sense on a page) ---------
DURATION_RANGE = (1, 10)  # seconds
FPS_CHOICES = (8, 12, 16, 24)
STEPS_RANGE = (10, 50)  # until a model is chosen; then its family's `steps_range`
MOTION_RANGE = (1, 255)
GUIDANCE_RANGE = (0.0, 15.0)
DECODE_CHUNK_RANGE = (1, 32)
CRF_RANGE = (0, 51)
MATCH_IMAGE = "match image"
RESOLUTIONS = [
    ("1024×576 (landscape)", "1024x576"),
    ("576×1024 (portrait)", "576x1024"),
    ("768×768 (square)", "768x768"),
    ("512×512 (square, fastest)", "512x512"),
    ("match image (its shape, rounded to multiples of 64)", MATCH_IMAGE),
]
FORMATS = [("MP4 (H.264)", "mp4"), ("WebM (VP9)", "webm"), ("PNG frames (lossless, zipped)", "png")]
RESIZE_MODES = [("crop to fill", "crop"), ("fit with black bars", "fit")]
LOOPS = [("none", "none"), ("ping-pong (forward, then back)", "pingpong"),
         ("seamless crossfade (end flows into start)", "crossfade")]
MEMORY_PLAN_CHOICES = [("auto (fastest that fits)", "auto"), ("everything on the GPU", "none"),
                       ("model offload", "model"), ("group offload", "group"),
                       ("sequential offload (least memory)", "sequential"),
                       ("model offload + fp8 weights", "model+fp8")]  # memory.MEMORY_PLANS, and one fp8 choice
SPEED_CHOICES = [("off", "off"), ("first block cache (about 1.5-2x)", "first-block-cache"),
                 ("TaylorSeer", "taylorseer")]  # families/speed.SPEEDS
INTERPOLATIONS = [("auto", 0), ("off", 1), ("2×", 2), ("3×", 3), ("4×", 4)]  # GenerationRequest.interpolation

# What the page shows until a model is installed: neutral values, not any family's. Choosing a model
# replaces them with its own defaults (`default_values`); the length note assumes one generation makes
# NEUTRAL_CLIP frames at NEUTRAL_CLIP's rate (FamilySpec's own defaults).
NEUTRAL_CLIP = {"num_frames": FamilySpec.__dataclass_fields__["native_frames"].default,
                "fps": FamilySpec.__dataclass_fields__["native_fps"].default}
NEUTRAL_RESOLUTION = "512x512"

Shown = Callable[[FamilySpec | None], bool]


# ---- which families show a field --------------------------------------------------------------------
def always(spec: FamilySpec | None) -> bool:
    return True


def family_control(name: str) -> Shown:
    """Shown for the families whose spec lists `name` among its `controls`."""
    return lambda spec: spec is not None and name in spec.controls


def takes_prompt(spec: FamilySpec | None) -> bool:
    return spec is not None and spec.prompt


def takes_picture(spec: FamilySpec | None) -> bool:
    return spec is None or spec.image != NONE


def takes_last_picture(spec: FamilySpec | None) -> bool:
    return spec is not None and spec.last_image


# ---- the fields ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One input of the Generate form (see the module's docstring)."""

    name: str  # the /generate input; unless `request` is False, also the GenerationRequest field it fills
    label: str
    info: str = ""  # shown under the control: what it does to the video
    default: Any = None  # the control's value before a model sets it
    shown: Shown = always  # which families' forms show it (and put it into their requests)
    request: bool = True  # copied into the request under `name` (False: the page's own, or computed below)
    stored: bool = True  # Load settings and Re-run set it from a stored request
    # Added to the form after /load_settings and /rerun_settings were published: their answers list it after
    # the frames note and the message, so that clients that read those by position keep working.
    late: bool = False

    def build(self, value: Any, spec: FamilySpec | None, **layout) -> gr.components.Component:
        raise NotImplementedError

    def check(self, value: Any, spec: FamilySpec | None) -> Any:
        """A value from the page or an API client, checked for the chosen model's family."""
        return value

    def fit(self, value: Any, spec: FamilySpec | None, notes: list[str]) -> Any:
        """A stored value as this control can show it; what had to change goes to `notes`."""
        return value

    def update(self, spec: FamilySpec | None) -> dict[str, Any]:
        """The control's properties that follow the chosen model."""
        return {"visible": self.shown(spec)}

    def error(self, message: str) -> InvalidRequest:
        return InvalidRequest(self.name, message)


@dataclass(frozen=True)
class NumberField(Field):
    """A slider from `low` to `high` (whole numbers when `whole`); `bounds` may depend on the family."""

    low: float = 0
    high: float = 1
    step: float = 1
    whole: bool = True
    family_bounds: Callable[[FamilySpec], tuple[float, float]] | None = None

    def bounds(self, spec: FamilySpec | None) -> tuple[float, float]:
        return self.family_bounds(spec) if spec is not None and self.family_bounds else (self.low, self.high)

    def build(self, value, spec, **layout):
        low, high = self.bounds(spec)
        return gr.Slider(low, high, value=_clamp(value, (low, high)), step=self.step, label=self.label, info=self.info,
                         visible=self.shown(spec), elem_id=elem_id(self.name), **layout)

    def check(self, value, spec):
        low, high = self.bounds(spec)
        kind = "a whole number" if self.whole else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(f"must be {kind} from {_num(low)} to {_num(high)}, got {value!r}")
        if self.whole and not float(value).is_integer():
            raise self.error(f"must be {kind} from {_num(low)} to {_num(high)}, got {value!r}")
        if not low <= value <= high:
            raise self.error(f"must be from {_num(low)} to {_num(high)}, got {_num(value)}")
        return int(value) if self.whole else float(value)

    def fit(self, value, spec, notes):
        fitted = _clamp(value, self.bounds(spec))
        if fitted != value:
            low, high = self.bounds(spec)
            notes.append(f"{self.name} {_num(value)} is outside the page's {_num(low)}-{_num(high)}: {_num(fitted)}")
        return fitted

    def update(self, spec):
        low, high = self.bounds(spec)
        return {"visible": self.shown(spec), "minimum": low, "maximum": high}


@dataclass(frozen=True)
class ChoiceField(Field):
    """Radio buttons: one of `choices` ((label, value) pairs)."""

    choices: tuple = ()

    @property
    def values(self) -> list:
        return [value for _, value in self.choices]

    def build(self, value, spec, **layout):
        return radio(list(self.choices), value=value, field=self.name, label=self.label, info=self.info,
                     visible=self.shown(spec), **layout)

    def check(self, value, spec):
        # `True in (0, 1)` holds in Python, so booleans are refused first.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value not in self.values:
            raise self.error(f"must be one of {', '.join(map(str, self.values))}, got {value!r}")
        return self.values[self.values.index(value)]  # the choice's own type (8, not 8.0)

    def fit(self, value, spec, notes):
        if value in self.values:
            return value
        notes.append(f"{self.name} {value} is not on the page: {self.default}")
        return self.default


@dataclass(frozen=True)
class FpsField(ChoiceField):
    def fit(self, value, spec, notes):
        if value in self.values:
            return value
        nearest = min(self.values, key=lambda choice: abs(choice - value))
        notes.append(f"{value} fps is not on the page: {nearest} fps")
        return nearest


@dataclass(frozen=True)
class TextField(Field):
    lines: int = 1

    def build(self, value, spec, **layout):
        return gr.Textbox(value, label=self.label, info=self.info, lines=self.lines, visible=self.shown(spec),
                          elem_id=elem_id(self.name), **layout)

    def check(self, value, spec):
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(f"must be text, got {value!r}")
        return value


@dataclass(frozen=True)
class FlagField(Field):
    def build(self, value, spec, **layout):
        return gr.Checkbox(value, label=self.label, info=self.info, visible=self.shown(spec),
                           elem_id=elem_id(self.name), **layout)

    def check(self, value, spec):
        if value is None:
            return self.default
        if not isinstance(value, bool):
            raise self.error(f"must be true or false, got {value!r}")
        return value


@dataclass(frozen=True)
class SeedField(Field):
    def build(self, value, spec, **layout):
        return gr.Number(value, label=self.label, info=self.info, precision=0, elem_id=elem_id(self.name), **layout)

    def check(self, value, spec):
        if value is None or value == "":
            return -1
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                not float(value).is_integer()):
            raise self.error(f"must be a whole number (-1 for random), got {value!r}")
        return int(value)


@dataclass(frozen=True)
class ModelField(Field):
    def build(self, value, spec, *, choices=(), **layout):
        return gr.Dropdown(list(choices), value=value, label=self.label, info=self.info, allow_custom_value=True,
                           elem_id=elem_id(self.name), **layout)

    def check(self, value, spec):
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(f"must be the name of an installed model, got {value!r}")
        return value


@dataclass(frozen=True)
class ResolutionField(Field):
    def build(self, value, spec, **layout):
        return gr.Dropdown(RESOLUTIONS, value=value, label=self.label, info=self.info, allow_custom_value=True,
                           elem_id=elem_id(self.name), **layout)

    def check(self, value, spec):
        if value is not None and not isinstance(value, str):
            raise self.error(f"expected WIDTHxHEIGHT such as 1024x576, or {MATCH_IMAGE!r}; got {value!r}")
        parse_resolution(value)
        return value or MATCH_IMAGE


@dataclass(frozen=True)
class PictureField(Field):
    """A picture. The page's value arrives as Gradio's payload and is read by the control (`Form.checked`)."""

    def build(self, value, spec, **layout):
        return picture(self.name, label=picture_label(self, spec), visible=self.shown(spec), **layout)

    def check(self, value, spec):
        if value is not None and not isinstance(value, str):
            raise self.error(f"must be a picture (gradio_client: handle_file(path)), got {value!r}")
        return value or None

    def fit(self, value, spec, notes):
        return value if value and Path(value).is_file() else None  # only while its file is still there

    def update(self, spec):
        return {"visible": self.shown(spec), "label": picture_label(self, spec)}


@dataclass(frozen=True)
class LorasField(Field):
    """The request's LoRAs: [{"name": ..., "strength": ...}] (JSON, or "NAME:STRENGTH" text). On the page a hidden
    JSON value that the LoRA panel (loras_panel.py: a multi-select and a strength slider per LoRA) keeps."""

    def build(self, value, spec, **layout):
        return gr.JSON(self.fit(value or (), spec, []), visible=False, elem_id=elem_id(self.name), **layout)

    def check(self, value, spec):
        from ..loras import check_choices, coerce

        if value is None or value == "" or value == []:
            return ()
        if isinstance(value, str) and value.strip().startswith(("[", "{")):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                raise self.error(f"not valid JSON ({error.msg}); expected [{{\"name\": ..., \"strength\": ...}}]") from None
        choices = coerce(value)
        check_choices(choices)
        return choices

    def fit(self, value, spec, notes):
        return [{"name": choice.name, "strength": choice.strength, "sha256": choice.sha256} for choice in value]

    def update(self, spec):
        return {"visible": False}  # the panel shows the choice


class PicturesField(Field):
    """Several pictures (a file list). The page's payload is read by the control (`Form.checked`)."""

    def build(self, value, spec, **layout):
        return file_input(self.name, label=self.label, file_count="multiple", file_types=["image"],
                          visible=self.shown(spec), **layout)

    def check(self, value, spec):
        if value is None or value == []:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise self.error(f"must be pictures (gradio_client: [handle_file(path), …]), got {value!r}")
        return tuple(value)


def picture_label(field: Field, spec: FamilySpec | None) -> str:
    if field.name == "last_image":
        return "Last frame (optional: the picture the video ends on)"
    if spec is not None and spec.image == OPTIONAL:
        return "Picture (optional: drives the video when given)"
    return "Picture (drop, paste or browse)"


# In the order of /generate's inputs (the public API: append only).
FIELDS: tuple[Field, ...] = (
    PictureField("image", "Picture", shown=takes_picture, stored=False),
    ModelField("model", "Model", info="Installed models and their family. Each has its own defaults."),
    NumberField("duration", "Length (seconds)", low=DURATION_RANGE[0], high=DURATION_RANGE[1], default=2,
                request=False, info="How long the video plays. More seconds = more frames to generate."),
    FpsField("fps", "Frame rate (fps)", choices=tuple((str(fps), fps) for fps in FPS_CHOICES), default=DEFAULT_FPS,
             info="Frames per second: higher is smoother but each second costs more frames."),
    ResolutionField("resolution", "Resolution (width × height)", default=NEUTRAL_RESOLUTION, request=False,
                    info="Size of the video; the picture is cropped (or fitted) to it. Bigger = slower, more memory."),
    NumberField("motion_bucket_id", "Motion intensity", low=MOTION_RANGE[0], high=MOTION_RANGE[1], default=127,
                shown=family_control("motion_bucket_id"),
                info="How much moves: low keeps the scene calm, high gives big camera and subject motion."),
    NumberField("num_inference_steps", "Inference steps", low=STEPS_RANGE[0], high=STEPS_RANGE[1], default=25,
                family_bounds=lambda spec: spec.steps_range,
                info="Denoising steps: more is slower and a little cleaner."),
    SeedField("seed", "Seed", default=-1, info="-1 = random. The same seed and settings give the same video."),
    NumberField("noise_aug_strength", "Noise augmentation", low=0.0, high=1.0, step=0.01, whole=False, default=0.0,
                shown=family_control("noise_aug_strength"),
                info="Noise added to the picture: more lets the video drift from it and move more."),
    NumberField("min_guidance_scale", "Min guidance", low=GUIDANCE_RANGE[0], high=GUIDANCE_RANGE[1], step=0.1,
                whole=False, default=1.0, shown=family_control("min_guidance_scale"),
                info="How closely the first frames follow the picture."),
    NumberField("max_guidance_scale", "Max guidance", low=GUIDANCE_RANGE[0], high=GUIDANCE_RANGE[1], step=0.1,
                whole=False, default=5.0,
                info="How closely the video follows the picture or the prompt (where a family has a min guidance: "
                     "at the last frame); too high looks burnt."),
    NumberField("decode_chunk_size", "Decode chunk size", low=DECODE_CHUNK_RANGE[0], high=DECODE_CHUNK_RANGE[1],
                default=8, info="Frames decoded at once: lower uses less GPU memory, higher is a bit smoother."),
    ChoiceField("output_format", "Output format", choices=tuple(FORMATS), default="mp4",
                info="MP4 plays everywhere; PNG frames are lossless, for editing."),
    NumberField("crf", "Quality (CRF)", low=CRF_RANGE[0], high=CRF_RANGE[1], default=18,
                info="Lower = better quality and bigger file; 18 is visually lossless."),
    ChoiceField("resize_mode", "Fit the picture", choices=tuple(RESIZE_MODES), default="crop",
                info="Crop fills the frame; fit shows the whole picture with bars."),
    FlagField("live_preview", "Live preview", default=True, request=False, stored=False,
              info="A rough look at the video while it is denoised (costs almost nothing)."),
    ChoiceField("loop", "Loop", choices=tuple(LOOPS), default="none",
                info="Ping-pong plays the clip forward, then backward. Seamless crossfade makes a few extra frames "
                     "and blends them into the start, so the end flows into the beginning. The length stays the same."),
    ChoiceField("interpolation", "Frame interpolation", choices=tuple(INTERPOLATIONS), default=0,
                info="Auto: the model makes frames near its own rate and the ones in between are computed (fast, "
                     "smooth). Off: the model makes every frame (slower). 2×-4×: the model makes 1 frame in 2-4 "
                     "(fastest; more is invented)."),
    TextField("prompt", "Prompt", lines=2, default="", shown=takes_prompt, late=True,
              info="What the video shows."),
    TextField("negative_prompt", "Negative prompt", default="", shown=takes_prompt, late=True,
              info="What to avoid."),
    NumberField("image_strength", "Image strength", low=LIMITS["image_strength"][0], high=LIMITS["image_strength"][1],
                step=0.05, whole=False, default=0.5, shown=family_control("image_strength"), late=True,
                info="With a picture: how much it shapes the video (0 ignores it, near 1 keeps it)."),
    ChoiceField("memory_plan", "Memory plan", choices=tuple(MEMORY_PLAN_CHOICES), default="auto", late=True,
                info="auto: the fastest plan that fits the GPU's free memory (see About this machine); or force an "
                     "offload level. Out of memory always steps down."),
    PictureField("last_image", "Last frame", shown=takes_last_picture, stored=False, late=True),
    ChoiceField("speed", "Speed (cache)", choices=tuple(SPEED_CHOICES), default="off", shown=family_control("speed"),
                late=True, info="Skips work on steps that change little: faster, slightly different frames. "
                                "Off reproduces the model exactly."),
    LorasField("loras", "LoRAs", default=(), late=True,
               info='LoRAs and their strengths, [{"name": ..., "strength": -2..2}] (families that take LoRAs)'),
    ChoiceField("upscale", "Two-stage 2× upscale", choices=tuple((value, value) for value in UPSCALES), default="off",
                shown=family_control("upscale"), late=True,
                info="2x: make the video at half size, upsample it with the installed latent upsampler and refine "
                     "it (needs an upsampler model; sizes in multiples of 64)."),
    PicturesField("keyframe_images", "Keyframes (pictures the video passes through)", request=False, stored=False,
                  shown=family_control("keyframes"), late=True),
    TextField("keyframe_frames", "Keyframe frames", default="", request=False, stored=False,
              shown=family_control("keyframes"), late=True,
              info="One frame number per keyframe picture, in order, e.g. 40, 80. Each is placed on the model's "
                   "8-frame grid; the info says where."),
)
FIELD = {field.name: field for field in FIELDS}


# ---- the form -----------------------------------------------------------------------------------------
class Form:
    """The Generate form's controls by field name: built by the Generate tab, read by every handler."""

    def __init__(self) -> None:
        self.controls: dict[str, gr.components.Component] = {}

    def build(self, name: str, value: Any, spec: FamilySpec | None, **layout) -> gr.components.Component:
        control = self.controls[name] = FIELD[name].build(value, spec, **layout)
        return control

    def __getitem__(self, name: str) -> gr.components.Component:
        return self.controls[name]

    def api_inputs(self) -> dict[str, gr.components.Component]:
        """/generate's inputs, by name, in the API's order."""
        return {field.name: self.controls[field.name] for field in FIELDS}

    def named(self, by_control: dict) -> dict[str, Any]:
        """Gradio's values of a set of inputs (keyed by control) keyed by field name."""
        names = {control: name for name, control in self.controls.items()}
        return {names.get(control, control): value for control, value in by_control.items()}

    def stored_outputs(self, *, pictures: bool) -> tuple[list, list]:
        """The controls that Load settings (`pictures` False) or Re-run (True: the pictures too) set: the
        first ones, and the late ones (listed after the note and the message)."""
        chosen = [field for field in FIELDS if sets(field, pictures)]
        return ([self.controls[field.name] for field in chosen if not field.late],
                [self.controls[field.name] for field in chosen if field.late])

    def family_updates(self, spec: FamilySpec | None) -> dict:
        """The controls that follow the chosen model's family (shown or not, their range, their label)."""
        return {self.controls[field.name]: gr.update(**field.update(spec)) for field in FIELDS
                if field.name in self.controls and follows_family(field)}

    def updates(self, values: dict[str, Any]) -> dict:
        """`values` by field name (a missing or None value leaves its control alone) as Gradio's output dict."""
        return {self.controls[name]: value for name, value in values.items()
                if name in self.controls and value is not None}

    def checked(self, values: dict[str, Any], spec: FamilySpec | None) -> dict[str, Any]:
        """Every field's value from `values` (missing: its default), read and checked for `spec`'s family."""
        checked = {}
        for field in FIELDS:
            value = values.get(field.name, field.default)
            if isinstance(field, PictureField) and isinstance(value, dict) and field.name in self.controls:
                value = self.read_picture(field.name, value)
            if isinstance(field, PicturesField) and field.name in self.controls and isinstance(value, (list, dict)) \
                    and any(isinstance(item, dict) for item in (value if isinstance(value, list) else [value])):
                control = self.controls[field.name]
                value = control.preprocess(control.data_model.model_validate(value))
            checked[field.name] = field.check(value, spec)
        return checked

    def read_picture(self, name: str, payload: dict) -> str | None:
        """Gradio's payload of a picture (the /generate event skips Gradio's preprocessing) as a file path."""
        control = self.controls[name]
        return control.preprocess(control.data_model(**payload))


def sets(field: Field, pictures: bool) -> bool:
    """Whether Load settings (`pictures` False) or Re-run (True) sets `field` from a stored request."""
    return field.stored or pictures and isinstance(field, PictureField)


def follows_family(field: Field) -> bool:
    return (field.shown is not always or isinstance(field, PictureField)
            or isinstance(field, NumberField) and field.family_bounds is not None)


def defaults() -> dict[str, Any]:
    """Every field's start value (before a model sets its own)."""
    return {field.name: field.default for field in FIELDS}


# ---- values <-> GenerationRequest ---------------------------------------------------------------------
def request_from_values(values: dict[str, Any], spec: FamilySpec, model_defaults: Callable[[], dict[str, Any]]
                        ) -> GenerationRequest:
    """Checked values (`Form.checked`) as the request they ask for. Fields the family does not show are left
    to the model's defaults; `model_defaults()` is asked only when the size must come from the model."""
    if values["image"] is None and spec.image == REQUIRED:
        raise InvalidRequest("image", "missing: drop, paste or browse for a picture first")
    picture = values["image"] if spec.image != NONE else None
    size = parse_resolution(values["resolution"])
    if size is None:
        own = model_defaults()
        if picture is None:
            size = (own["width"], own["height"])
        else:
            size = match_image_size(*picture_size(picture), own["width"] * own["height"])
    elif picture is not None:
        picture_size(picture)  # an unreadable picture fails here, not after the model has loaded
    chosen = {field.name: values[field.name] for field in FIELDS if field.request and field.shown(spec)}
    frames = values["duration"] * values["fps"]
    if spec.exact_frames:  # LTX makes 8k+1 frames: 2 s at 24 fps is 49
        frames = spec.valid_frames(frames)
    chosen.update(image=picture, num_frames=frames, width=size[0], height=size[1])
    if "keyframes" in spec.controls and values.get("keyframe_images"):
        chosen["keyframes"] = keyframes_from_values(values["keyframe_images"], values.get("keyframe_frames", ""))
    return GenerationRequest(**chosen)


def keyframes_from_values(images: tuple[str, ...], frames_text: str) -> tuple[Keyframe, ...]:
    """The page's keyframe pictures and their frame numbers ("8, 16": one per picture, in order)."""
    words = [word for word in frames_text.replace(",", " ").split() if word]
    if len(words) != len(images) or not all(word.isdigit() for word in words):
        raise InvalidRequest("keyframe_frames", f"give one frame number per keyframe picture, separated by commas "
                                                f"({len(images)} picture{'s' if len(images) != 1 else ''}), "
                                                f"got {frames_text!r}")
    return tuple(Keyframe(image=image, frame=int(word)) for image, word in zip(images, words))


def stored_values(request: GenerationRequest, spec: FamilySpec | None, *, pictures: bool = False
                  ) -> tuple[dict[str, Any], list[str]]:
    """A stored request's values as the form shows them (fitted to its ranges), and what had to change."""
    notes: list[str] = []
    fps = FIELD["fps"].fit(request.fps or FPS_CHOICES[0], spec, notes)
    frames = request.num_frames or fps
    duration = _clamp(max(1, round(frames / (request.fps or fps))), DURATION_RANGE)
    if duration * fps != frames:
        notes.append(f"{frames} frames became {duration} s at {fps} fps")
    values: dict[str, Any] = {"model": request.model, "duration": duration, "fps": fps,
                              "resolution": f"{request.width}x{request.height}" if request.width and request.height
                              else None}
    for field in FIELDS:
        if field.name in values or not field.request or not sets(field, pictures):
            continue
        value = getattr(request, field.name)
        values[field.name] = None if value is None else field.fit(value, spec, notes)
    return values, notes


def default_values(own: dict[str, Any], spec: FamilySpec | None, fps: int) -> dict[str, Any]:
    """What choosing a model sets: the longest whole number of seconds it makes in one generation at `fps`,
    its size, and each field its defaults name (fitted to the page)."""
    values = {"duration": _clamp(int(own["num_frames"]) // int(fps), DURATION_RANGE),
              "resolution": f"{own['width']}x{own['height']}"}
    for field in FIELDS:
        if field.request and field.stored and field.name in own and field.name not in ("fps", "model"):
            values[field.name] = field.fit(own[field.name], spec, [])
    return values


# ---- the page's arithmetic (pure; tested directly) ----------------------------------------------------
def length_plan(duration_s: int, fps: int, clip: dict[str, Any], interpolation: int = 0, loop: str = "none",
                frame_step: int = 1, exact_frames: bool = False) -> LengthPlan:
    """How `duration_s` seconds at `fps` become model work: the engine's own planner, on the model's native
    clip length and rate (`clip`'s num_frames and fps: the model's defaults; the same call as `Generator.plan`).
    `exact_frames`: the family's `exact_frames`, whose lengths in seconds round up to its frame rule."""
    frames = int(duration_s) * int(fps)
    if exact_frames:
        frames = valid_frames(frames, frame_step)
    return plan_length(frames, int(fps), native_frames=int(clip["num_frames"]),
                       native_fps=int(clip["fps"]), interpolation=int(interpolation or 0), loop=loop or "none",
                       frame_step=frame_step)


def length_note(plan: LengthPlan, clip: dict[str, Any]) -> str:
    """What the length and frame rate controls will give, in words, shown under them."""
    note = f"**{plan.frames} frames at {plan.fps} fps = {plan.frames / plan.fps:.1f} s.** "
    work = []
    if plan.segments > 1:
        work.append(f"this model makes at most {clip['num_frames']} frames at a time, so the video is "
                    f"{plan.segments} chained segments ({plan.segments}× the work of one)")
    if plan.factor > 1:
        work.append(f"the model works at {plan.generation_fps} fps and the frames in between are interpolated "
                    f"{plan.factor}×")
    if not work:
        work.append(f"one generation of {plan.model_frames} frames")
    if plan.loop == "pingpong":
        work.append(f"ping-pong loop: {plan.loop_frames} frames play forward, then back")
    elif plan.loop == "crossfade":
        work.append(f"seamless loop: {plan.loop_frames - plan.frames} extra frames are made and cross-faded "
                    f"into the start")
    text = "; ".join(work)
    return note + text[:1].upper() + text[1:] + "."


def parse_resolution(choice: str | None) -> tuple[int, int] | None:
    """'1024x576' (or '1024×576') to (1024, 576); None for 'match image'; InvalidRequest otherwise."""
    text = (choice or "").strip().lower()
    if text in ("", MATCH_IMAGE):
        return None
    parts = text.replace("×", "x").replace("*", "x").split("x")
    if len(parts) == 2 and all(part.strip().isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    raise InvalidRequest("resolution", f"expected WIDTHxHEIGHT such as 1024x576, or {MATCH_IMAGE!r}; got {choice!r}")


def match_image_size(width: int, height: int, pixels: int) -> tuple[int, int]:
    """The picture's shape at about `pixels` pixels (the model's own size), sides multiples of 64.

    A photo's own size is rarely what the model can make (a 12-megapixel photo would not fit in any
    GPU), so "match image" keeps the aspect ratio and the model's pixel count.
    """
    scale = math.sqrt(pixels / (width * height))
    low, high = 64, int(LIMITS["width"][1])
    return (min(high, max(low, round(width * scale / 64) * 64)), min(high, max(low, round(height * scale / 64) * 64)))


def picture_size(path: str) -> tuple[int, int]:
    """The picture's displayed size (EXIF rotation applied), without decoding its pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)  # 5-8: rotated by 90 degrees
    except (OSError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest("image", f"not a picture this app can read (PNG, JPEG, WebP, …): {Path(path).name}"
                             ) from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _clamp(value, bounds):
    return min(bounds[1], max(bounds[0], value))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


__all__ = ["FIELDS", "FIELD", "Field", "Form", "request_from_values", "stored_values", "default_values", "defaults",
           "length_plan", "length_note", "parse_resolution", "match_image_size", "picture_size", "FPS_CHOICES",
           "DURATION_RANGE", "STEPS_RANGE", "MATCH_IMAGE", "NEUTRAL_CLIP"]
