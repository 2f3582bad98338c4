"""The Generate form's controls, one class per kind of input: each builds its Gradio component, checks a value from
the page or an API client for the chosen family (one line naming the field and what is allowed), fits a stored
value to what the page can show, and follows the chosen model. `fields.py` makes them from the request's field
table. Imports gradio but no torch."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from ..errors import InvalidRequest
from ..families.spec import OPTIONAL, FamilySpec
from .components import elem_id, file_input, picture, radio

MATCH_IMAGE = "match image"
RESOLUTIONS = [
    ("1024×576 (landscape)", "1024x576"),
    ("576×1024 (portrait)", "576x1024"),
    ("768×768 (square)", "768x768"),
    ("512×512 (square, fastest)", "512x512"),
    ("match image (its shape, rounded to multiples of 64)", MATCH_IMAGE),
]

Shown = Callable[[FamilySpec | None], bool]


def always(spec: FamilySpec | None) -> bool:
    return True


# ---- the controls --------------------------------------------------------------------------------------
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
    section: str = "advanced"  # where the Generate tab puts it when its layout does not name it

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

    def info_for(self, spec: FamilySpec | None) -> str:
        """What the control says under it: the family's own words for its field (`FamilySpec.control_help`), or
        the field's help."""
        own = dict(spec.control_help).get(self.name) if spec is not None else None
        return own[:1].upper() + own[1:] + "." if own else self.info

    def value_update(self, value: Any, control: gr.components.Component) -> Any:
        """What sets `control` to `value`: the value itself (what API clients read), or an update that also widens
        a choice control's choices when they lack it."""
        return value

    def error(self, message: str) -> InvalidRequest:
        return InvalidRequest(self.name, message)


@dataclass(frozen=True)
class NumberField(Field):
    """A slider from `low` to `high` (whole numbers when `whole`); a family may narrow it (`family_range`: the name
    of a `FamilySpec` attribute holding (low, high), such as `steps_range`)."""

    low: float = 0
    high: float = 1
    step: float = 1
    whole: bool = True
    family_range: str = ""

    def bounds(self, spec: FamilySpec | None) -> tuple[float, float]:
        return getattr(spec, self.family_range) if spec is not None and self.family_range else (self.low, self.high)

    def build(self, value, spec, **layout):
        low, high = self.bounds(spec)
        return gr.Slider(low, high, value=clamp(value, (low, high)), step=self.step, label=self.label,
                         info=self.info_for(spec), visible=self.shown(spec), elem_id=elem_id(self.name), **layout)

    def check(self, value, spec):
        low, high = self.bounds(spec)
        kind = "a whole number" if self.whole else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(f"must be {kind} from {number_text(low)} to {number_text(high)}, got {value!r}")
        if self.whole and not float(value).is_integer():
            raise self.error(f"must be {kind} from {number_text(low)} to {number_text(high)}, got {value!r}")
        if not low <= value <= high:
            raise self.error(f"must be from {number_text(low)} to {number_text(high)}, got {number_text(value)}")
        return int(value) if self.whole else float(value)

    def fit(self, value, spec, notes):
        fitted = clamp(value, self.bounds(spec))
        if fitted != value:
            low, high = self.bounds(spec)
            notes.append(f"{self.name} {number_text(value)} is outside the page's {number_text(low)}-{number_text(high)}: {number_text(fitted)}")
        return fitted

    def update(self, spec):
        low, high = self.bounds(spec)
        return {"visible": self.shown(spec), "minimum": low, "maximum": high, "info": self.info_for(spec)}


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
    """The frame rate: the page's usual rates and the installed models' own (SVD's 7), and any other the request
    allows (added to the choices when a stored request or a newly installed model sets it)."""

    low: int = 1
    high: int = 60

    def choices_with(self, *rates: int) -> list[tuple[str, int]]:
        return [(str(value), value) for value in sorted({*self.values, *(int(rate) for rate in rates)})]

    def build(self, value, spec, *, rates=(), **layout):
        return radio(self.choices_with(value, *rates), value=value, field=self.name, label=self.label,
                     info=self.info, visible=self.shown(spec), **layout)

    def check(self, value, spec):
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer()
                or not self.low <= value <= self.high):
            raise self.error(f"must be a whole number from {self.low} to {self.high}, got {value!r}")
        return int(value)

    def fit(self, value, spec, notes):
        return value

    def value_update(self, value, control):
        shown = [choice for _, choice in control.choices]
        return value if value in shown else gr.update(value=value, choices=self.choices_with(value, *shown))


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
    """The size: the page's presets, or for a family that makes only some sizes (its spec's `sizes`: HunyuanVideo
    1.5's buckets) those sizes, with "match image" (the one nearest the picture's shape) first."""

    def build(self, value, spec, **layout):
        return gr.Dropdown(resolution_choices(spec), value=value, label=self.label, info=self.info,
                           allow_custom_value=True, elem_id=elem_id(self.name), **layout)

    def update(self, spec):
        return {"visible": self.shown(spec), "choices": resolution_choices(spec)}

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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class VideoField(Field):
    """A video file (with `pictures`, also one picture: the mask). The page's payload is read by the control
    (`Form.checked`)."""

    pictures: bool = False

    def build(self, value, spec, **layout):
        return file_input(self.name, label=self.label, file_types=["video", "image"] if self.pictures else ["video"],
                          visible=self.shown(spec), **layout)

    def check(self, value, spec):
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            what = "a video or a picture" if self.pictures else "a video"
            raise self.error(f"must be {what} (gradio_client: handle_file(path)), got {value!r}")
        return value


def resolution_choices(spec: FamilySpec | None) -> list[tuple[str, str]]:
    if spec is None or not spec.sizes:
        return RESOLUTIONS
    return [(f"{MATCH_IMAGE} (the size nearest the picture's shape)", MATCH_IMAGE)] + [
        (f"{width}×{height}", f"{width}x{height}") for width, height in sorted(spec.sizes, key=lambda size: (
            -size[0] * size[1], -size[0] / size[1]))]


def picture_label(field: Field, spec: FamilySpec | None) -> str:
    if field.name == "last_image":
        return "Last frame (optional: the picture the video ends on)"
    if spec is not None and "control" in spec.controls:  # Wan VACE
        return "Reference picture (optional: a character or a style the video takes)"
    if spec is not None and spec.image == OPTIONAL:
        return "Picture (optional: drives the video when given)"
    return "Picture (drop, paste or browse)"


def parse_resolution(choice: str | None) -> tuple[int, int] | None:
    """'1024x576' (or '1024×576') to (1024, 576); None for 'match image'; InvalidRequest otherwise."""
    text = (choice or "").strip().lower()
    if text in ("", MATCH_IMAGE):
        return None
    parts = text.replace("×", "x").replace("*", "x").split("x")
    if len(parts) == 2 and all(part.strip().isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    raise InvalidRequest("resolution", f"expected WIDTHxHEIGHT such as 1024x576, or {MATCH_IMAGE!r}; got {choice!r}")


def clamp(value, bounds):
    return min(bounds[1], max(bounds[0], value))


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
