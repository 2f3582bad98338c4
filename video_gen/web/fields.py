"""The Generate form, built from the request's one field table (`request.FIELDS`), and the page's own inputs.

A1111's pattern (one field table for the form, the API and "load settings"): each request field that the table
gives a page `Control` becomes one control here, with the table's label, help (under the control), start value,
range and choices, and it is shown for the families that use it (the field's `uses`, read from their
`FamilySpec`, never from a family's name). The page adds the inputs that stand for request fields another way:
the length in seconds (`num_frames`), the resolution (`width`, `height`), the keyframe pictures and their frame
numbers (`keyframes`), and the live preview. So:

- the Generate tab builds its controls from `Form.fields` (`Form.build`), in its own layout, and puts the fields
  its layout does not name in their `section`;
- `/generate` takes every page field as an input, by name and in this order (`Form.api_inputs`): the request
  table's order, each page input after the field it follows. The order is the public API's, so a new field is
  appended at the end of the table; the handler (`api_handler`) makes every input optional for API clients, and
  checks every value here (`Form.checked`) before `request_from_values` turns them into one `GenerationRequest`;
- Load settings and Re-run set every stored field from a request (`stored_values`), and choosing a model sets
  every field its defaults name (`default_values`), so that a field left alone on the page gets the same value as
  through every other door, and shows the fields its family uses (`Field.update`).

This module imports gradio but no torch.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from PIL import Image

from .. import request as request_table
from ..errors import InvalidRequest
from ..families import specs
from ..families.spec import NONE, REQUIRED, FamilySpec
from ..images import displayed_size
from ..planner import LengthPlan, frames_for_seconds, plan_length
from ..request import MODELS_OWN, GenerationRequest, Keyframe, Whole
from .controls import (MATCH_IMAGE, ChoiceField, Field, FlagField, FpsField, LorasField, ModelField, NumberField,
                       PictureField, PicturesField, ResolutionField, SeedField, Shown, TextField, VideoField, clamp,
                       number_text, always, parse_resolution)

# ---- the page's own ranges and choices -----------------------------------------------------------------------
DURATION_RANGE = (1, 10)  # seconds
DURATION_STEP = 0.1
FPS_CHOICES = tuple(value for _, value in request_table.FIELD["fps"].page.choices)
# The last field published with /load_settings and /rerun_settings: the fields after it are "late", listed after
# the frames note and the message in those answers, so that clients that read them by position keep working.
LAST_EARLY_FIELD = "interpolation"

# What the page shows until a model is installed: neutral values, not any family's. Choosing a model
# replaces them with its own defaults (`default_values`); the length note assumes one generation makes
# NEUTRAL_CLIP frames at NEUTRAL_CLIP's rate (FamilySpec's own defaults).
NEUTRAL_CLIP = {"num_frames": FamilySpec.__dataclass_fields__["native_frames"].default,
                "fps": FamilySpec.__dataclass_fields__["native_fps"].default}
NEUTRAL_RESOLUTION = "512x512"

# ---- the form's fields: the request table's, and the page's own -----------------------------------------------
def from_request(field: request_table.Field) -> Field:
    """The page control of a request field, from its `Control`."""
    control = field.page
    start = control.start if control.start is not None else (None if field.default is MODELS_OWN else field.default)
    shown = _shown_for(field)
    common = dict(name=field.name, label=field.label or field.name, info=_sentence(field.help), default=start,
                  shown=shown, section=control.section)
    kind = control.kind
    if kind == "slider":
        return NumberField(**common, low=field.kind.low if control.low is None else control.low,
                           high=field.kind.high if control.high is None else control.high, step=control.step,
                           whole=isinstance(field.kind, Whole), family_range=control.family_range)
    if kind == "fps":
        return FpsField(**common, choices=control.choices, low=int(field.kind.low), high=int(field.kind.high))
    if kind == "radio":
        choices = control.choices or tuple((value, value) for value in field.kind.allowed())
        return ChoiceField(**common, choices=choices)
    if kind == "text":
        return TextField(**common, lines=control.lines)
    if kind == "picture":
        return PictureField(**common, stored=False)  # Re-run sets pictures, Load settings does not
    if kind == "pictures":
        return PicturesField(**common)
    if kind == "model":
        return ModelField(**common)
    if kind == "seed":
        return SeedField(**common)
    if kind == "loras":
        return LorasField(**common)
    if kind == "flag":
        return FlagField(**common)
    raise ValueError(f"request field {field.name}: unknown page control {kind!r}")


def _shown_for(field: request_table.Field) -> Shown:
    """Which families' forms show a request field: those that use it; before a model is chosen, the fields every
    family uses (and the picture, which most need)."""
    if field.uses is None:
        return always
    if field.name == "image":
        return lambda spec: spec is None or field.uses(spec)
    return lambda spec: spec is not None and field.uses(spec)


def takes_control(spec: FamilySpec | None) -> bool:
    """Whether a model takes a control video (Wan VACE: its spec, narrowed per model, lists "control")."""
    return spec is not None and "control" in spec.controls


AS_IT_IS = "as-is"  # the control kind that gives the upload to the model unchanged (the request's `control`)
CONTROL_TYPES = (("as it is", AS_IT_IS), ("depth", "depth"), ("pose", "pose"), ("edges", "edges"), ("gray", "gray"))

# The page's own inputs, each after the request field it follows (by name): the length in seconds, the resolution,
# the keyframe pictures and the "Control video" section (one upload and its kind for `control` or `control_from`
# with `control_kind`, and the mask) stand for request fields; the live preview is the page's alone.
PAGE_OWN: tuple[tuple[str, Field], ...] = (
    ("model", NumberField("duration", "Length (seconds)", low=DURATION_RANGE[0], high=DURATION_RANGE[1],
                          step=DURATION_STEP, whole=False, default=2, request=False, section="main",
                          family_range="duration_range",  # a family of long videos (FramePack) allows more
                          info="How long the video plays. More seconds = more frames to generate.")),
    ("fps", ResolutionField("resolution", "Resolution (width × height)", default=NEUTRAL_RESOLUTION, request=False,
                            section="main", info="Size of the video; the picture is cropped (or fitted) to it. "
                                                 "Bigger = slower, more memory.")),
    ("resize_mode", FlagField("live_preview", "Live preview", default=True, request=False, stored=False,
                              info="A rough look at the video while it is denoised (costs almost nothing).")),
    ("upscale", PicturesField("keyframe_images", "Keyframes (pictures the video passes through)", request=False,
                              stored=False, shown=lambda spec: spec is not None and "keyframes" in spec.controls,
                              section="main")),
    ("upscale", TextField("keyframe_frames", "Keyframe frames", default="", request=False, stored=False,
                          shown=lambda spec: spec is not None and "keyframes" in spec.controls, section="main",
                          info="One frame number per keyframe picture, in order, e.g. 40, 80. Each is placed on the "
                               "model's 8-frame grid; the info says where.")),
    ("control_kind", VideoField("control_video", "Control video", request=False, stored=False, shown=takes_control,
                                section="control", info="The video that drives the motion: its frames at the video's "
                                "rate, fitted to its size; the picture, when given, is a reference picture.")),
    ("control_kind", ChoiceField("control_type", "Kind", default=AS_IT_IS, choices=CONTROL_TYPES, request=False,
                                 stored=False, shown=takes_control, section="control",
                                 info="As it is, or what to make from it: depth, pose (annotators in "
                                      "models/annotators), edges or gray. The control used is saved beside the "
                                      "video.")),
    ("control_kind", VideoField("control_mask", "Mask (optional)", request=False, stored=False, shown=takes_control,
                                section="control", pictures=True,
                                info="White = generate, black = keep the control's pixels: a video of the "
                                     "control's length and size, or one picture for every frame.")),
)


def page_fields() -> tuple[Field, ...]:
    """The Generate form's fields in /generate's input order, from the request table as it is now."""
    fields: list[Field] = []
    for field in request_table.FIELDS:
        if field.page is not None:
            fields.append(from_request(field))
        fields += [own for after, own in PAGE_OWN if after == field.name]
    return tuple(fields)


# ---- the form -----------------------------------------------------------------------------------------
class Form:
    """The Generate form's fields (the table as it was when the page was built) and their controls by name: built
    by the Generate tab, read by every handler."""

    def __init__(self) -> None:
        self.fields = page_fields()
        self.field = {field.name: field for field in self.fields}
        self.controls: dict[str, gr.components.Component] = {}

    def build(self, name: str, value: Any, spec: FamilySpec | None, **layout) -> gr.components.Component:
        control = self.controls[name] = self.field[name].build(value, spec, **layout)
        return control

    def __getitem__(self, name: str) -> gr.components.Component:
        return self.controls[name]

    def api_inputs(self) -> dict[str, gr.components.Component]:
        """/generate's inputs, by name, in the API's order."""
        return {field.name: self.controls[field.name] for field in self.fields}

    def named(self, by_control: dict) -> dict[str, Any]:
        """Gradio's values of a set of inputs (keyed by control) keyed by field name."""
        names = {control: name for name, control in self.controls.items()}
        return {names.get(control, control): value for control, value in by_control.items()}

    def stored_outputs(self, *, pictures: bool) -> tuple[list, list]:
        """The controls that Load settings (`pictures` False) or Re-run (True: the pictures too) set: the
        first ones, and the late ones (listed after the note and the message)."""
        names = [field.name for field in self.fields]
        last_early = names.index(LAST_EARLY_FIELD)
        chosen = [(index, field) for index, field in enumerate(self.fields) if sets(field, pictures)]
        return ([self.controls[field.name] for index, field in chosen if index <= last_early],
                [self.controls[field.name] for index, field in chosen if index > last_early])

    def family_updates(self, spec: FamilySpec | None) -> dict:
        """The controls that follow the chosen model's family (shown or not, their range, their label)."""
        return {self.controls[field.name]: gr.update(**field.update(spec)) for field in self.fields
                if field.name in self.controls and follows_family(field)}

    def updates(self, values: dict[str, Any]) -> dict:
        """`values` by field name (a missing or None value leaves its control alone) as Gradio's output dict."""
        return {self.controls[name]: self.field[name].value_update(value, self.controls[name])
                for name, value in values.items() if name in self.controls and value is not None}

    def checked(self, values: dict[str, Any], spec: FamilySpec | None) -> dict[str, Any]:
        """Every field's value from `values` (missing or None: its start value), read and checked for `spec`'s
        family."""
        checked = {}
        for field in self.fields:
            value = values.get(field.name)
            if value is None and not isinstance(field, (PictureField, PicturesField, ModelField)):
                value = field.default
            if isinstance(field, PictureField) and isinstance(value, dict) and field.name in self.controls:
                value = self.read_picture(field.name, value)
            if isinstance(field, VideoField) and isinstance(value, dict) and field.name in self.controls:
                value = self.read_picture(field.name, value)  # a file's payload, as a picture's
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

    def start_values(self) -> dict[str, Any]:
        """Every field's start value (before a model sets its own)."""
        return {field.name: field.default for field in self.fields}


def api_handler(handler: Callable[..., Any], names: list[str], *, doc: str | None = None) -> Callable[..., Any]:
    """`handler(http, **values)` as a Gradio event function whose every input (`names`) is a parameter that defaults
    to None, so that API clients may leave any of them out (Gradio makes an input without a start value optional
    only when its parameter defaults to None); `http` is Gradio's request, `doc` the API's description."""
    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for name in names]
    parameters.append(inspect.Parameter("http", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                        annotation=gr.Request))
    signature = inspect.Signature(parameters)

    def arguments(args, kwargs) -> dict[str, Any]:
        return dict(signature.bind(*args, **kwargs).arguments)

    if inspect.isgeneratorfunction(handler):  # Gradio streams what a generator function yields
        def event(*args, **kwargs):
            values = arguments(args, kwargs)
            yield from handler(values.pop("http", None), **values)
    else:
        def event(*args, **kwargs):
            values = arguments(args, kwargs)
            return handler(values.pop("http", None), **values)

    event.__signature__ = signature
    event.__annotations__ = {"http": gr.Request}
    event.__name__ = getattr(handler, "__name__", "event")
    event.__doc__ = doc or handler.__doc__
    return event


def sets(field: Field, pictures: bool) -> bool:
    """Whether Load settings (`pictures` False) or Re-run (True) sets `field` from a stored request."""
    return field.stored or pictures and isinstance(field, PictureField)


def follows_family(field: Field) -> bool:
    return (field.shown is not always or isinstance(field, (PictureField, ResolutionField))
            or isinstance(field, NumberField) and (bool(field.family_range) or any(
                field.name in dict(spec.control_help) for spec in specs())))


# ---- values <-> GenerationRequest ---------------------------------------------------------------------
def request_from_values(values: dict[str, Any], fields: tuple[Field, ...], spec: FamilySpec,
                        model_defaults: Callable[[], dict[str, Any]]) -> GenerationRequest:
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
        elif spec.sizes:  # a family of size buckets: the engine asks it for the picture's (`picture_size`)
            picture_size(picture)  # an unreadable picture fails here
            size = (None, None)
        else:
            size = match_image_size(*picture_size(picture), own["width"] * own["height"])
    elif picture is not None:
        picture_size(picture)  # an unreadable picture fails here, not after the model has loaded
    chosen = {field.name: values[field.name] for field in fields if field.request and field.shown(spec)}
    frames = frames_for_seconds(values["duration"], values["fps"], spec.frame_step, spec.exact_frames)
    chosen.update(image=picture, num_frames=frames, width=size[0], height=size[1])
    if "keyframes" in spec.controls and values.get("keyframe_images"):
        chosen["keyframes"] = keyframes_from_values(values["keyframe_images"], values.get("keyframe_frames", ""))
    if takes_control(spec):
        chosen.update(control_from_values(values))
    return GenerationRequest(**chosen)


def control_from_values(values: dict[str, Any]) -> dict[str, Any]:
    """The Control video section's values as request fields: the upload as it is (`control`), or the video to make
    the control from (`control_from`) with its kind; and the mask."""
    video, kind = values.get("control_video"), values.get("control_type") or AS_IT_IS
    fields: dict[str, Any] = {"mask": values.get("control_mask")}
    if not video:
        return fields
    if kind == AS_IT_IS:
        return {**fields, "control": video}
    return {**fields, "control_from": video, "control_kind": kind}


def keyframes_from_values(images: tuple[str, ...], frames_text: str) -> tuple[Keyframe, ...]:
    """The page's keyframe pictures and their frame numbers ("8, 16": one per picture, in order)."""
    words = [word for word in frames_text.replace(",", " ").split() if word]
    if len(words) != len(images) or not all(word.isdigit() for word in words):
        raise InvalidRequest("keyframe_frames", f"give one frame number per keyframe picture, separated by commas "
                                                f"({len(images)} picture{'s' if len(images) != 1 else ''}), "
                                                f"got {frames_text!r}")
    return tuple(Keyframe(image=image, frame=int(word)) for image, word in zip(images, words))


def seconds(frames: int, fps: int) -> float:
    """A length in frames as the page's seconds: to two decimals, which `frames_for_seconds` turns back into
    exactly `frames` at any page rate (the rounding error is at most 0.005 x 60 = 0.3 frames)."""
    return round(frames / fps, 2)


def stored_values(request: GenerationRequest, fields: tuple[Field, ...], spec: FamilySpec | None, *,
                  pictures: bool = False) -> tuple[dict[str, Any], list[str]]:
    """A stored request's values as the form shows them (fitted to its ranges), and what had to change."""
    notes: list[str] = []
    fps = request.fps or FPS_CHOICES[0]
    frames = request.num_frames or fps
    duration = clamp(seconds(frames, fps), spec.duration_range if spec is not None else DURATION_RANGE)
    if duration != seconds(frames, fps):
        notes.append(f"{frames} frames became {number_text(duration)} s at {fps} fps")
    values: dict[str, Any] = {"model": request.model, "duration": duration, "fps": fps,
                              "resolution": f"{request.width}x{request.height}" if request.width and request.height
                              else None}
    for field in fields:
        if field.name in values or not field.request or not sets(field, pictures):
            continue
        value = getattr(request, field.name)
        values[field.name] = None if value is None else field.fit(value, spec, notes)
    return values, notes


def default_values(own: dict[str, Any], fields: tuple[Field, ...], spec: FamilySpec | None) -> dict[str, Any]:
    """What choosing a model sets: its own defaults, every one the page has a control for (its length and rate,
    its size, and each field its defaults name, fitted to the page), so that the form left alone asks for what
    every other door gives."""
    values = {"duration": clamp(seconds(int(own["num_frames"]), int(own["fps"])),
                                spec.duration_range if spec is not None else DURATION_RANGE),
              "fps": int(own["fps"]), "resolution": f"{own['width']}x{own['height']}"}
    for field in fields:
        if field.request and field.stored and field.name in own and field.name not in ("fps", "model"):
            values[field.name] = field.fit(own[field.name], spec, [])
    return values


# ---- the page's arithmetic (pure; tested directly) ----------------------------------------------------
def length_plan(duration_s: float, fps: int, clip: dict[str, Any], interpolation: int = 0, loop: str = "none",
                frame_step: int = 1, exact_frames: bool = False, spec: FamilySpec | None = None) -> LengthPlan:
    """How `duration_s` seconds at `fps` become model work: the engine's own planner, on the model's native
    clip length and rate (`clip`'s num_frames and fps: the model's defaults; the same call as
    `Generator.length_plan`). `exact_frames`: the family's `exact_frames` (its lengths keep to its frame rule);
    `spec`: the family's (a family of sections makes any length in one generation)."""
    frames = frames_for_seconds(float(duration_s), int(fps), frame_step, exact_frames)
    native = spec.generation_frames(int(clip["num_frames"])) if spec is not None else int(clip["num_frames"])
    return plan_length(frames, int(fps), native_frames=native,
                       native_fps=int(clip["fps"]), interpolation=int(interpolation or 0), loop=loop or "none",
                       frame_step=frame_step)


def length_note(plan: LengthPlan, clip: dict[str, Any], spec: FamilySpec | None = None) -> str:
    """What the length and frame rate controls will give, in words, shown under them."""
    note = f"**{plan.frames} frames at {plan.fps} fps = {plan.frames / plan.fps:.1f} s.** "
    work = []
    if spec is not None and spec.section_frames and plan.segments == 1:
        sections = spec.sections(plan.generated_frames[0])
        work.append(f"one generation of {plan.model_frames} frames, made by the model in {sections} section"
                    f"{'s' if sections > 1 else ''} of {spec.section_frames} frames (its memory does not grow with "
                    f"the length)")
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


def match_image_size(width: int, height: int, pixels: int) -> tuple[int, int]:
    """The picture's shape at about `pixels` pixels (the model's own size), sides multiples of 64.

    A photo's own size is rarely what the model can make (a 12-megapixel photo would not fit in any
    GPU), so "match image" keeps the aspect ratio and the model's pixel count.
    """
    scale = math.sqrt(pixels / (width * height))
    low, high = 64, int(request_table.limits("width")[1])
    return (min(high, max(low, round(width * scale / 64) * 64)), min(high, max(low, round(height * scale / 64) * 64)))


def picture_size(path: str) -> tuple[int, int]:
    """The picture's displayed size (EXIF rotation applied), without decoding its pixels."""
    try:
        with Image.open(path) as image:
            return displayed_size(image)
    except (OSError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest("image", f"not a picture this app can read (PNG, JPEG, WebP, …): {Path(path).name}"
                             ) from None


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else ""


__all__ = ["Field", "Form", "page_fields", "api_handler", "request_from_values", "stored_values", "default_values",
           "length_plan", "length_note", "parse_resolution", "match_image_size", "picture_size", "seconds",
           "FPS_CHOICES", "DURATION_RANGE", "MATCH_IMAGE", "NEUTRAL_CLIP"]
