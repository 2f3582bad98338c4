"""The page's own components: Gradio's, with one-line errors that name the input.

An API client can send anything for any input (a number for a picture, words for a job number). Gradio's
own components turn some of that into a server error that the client sees only as "the upstream app has
raised an exception"; these answer `field: what is allowed` instead, like every other bad input
(`gradio_client` raises it as `AppError`). The Generate form's values are checked by its field table
(`fields.py`); what is checked here is what Gradio does before any handler runs.
"""

from __future__ import annotations

import html
from abc import ABCMeta
from pathlib import Path

import gradio as gr
from gradio.component_meta import ComponentMeta
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from ..console import spell
from ..errors import InvalidRequest
from ..images import check_image_file


def session_of(http: gr.Request | None) -> str:
    """The browser tab (Gradio session) an event came from; API calls without one share "no-session"."""
    return (getattr(http, "session_hash", None) or "no-session") if http is not None else "no-session"


def file_path(value):
    """The file a file input's value names: the path of a gradio_client FileData, or of the page's payload (an
    event with preprocess=False), else the value itself (a path, or None)."""
    if isinstance(value, dict):
        return value.get("path")
    return value


def send_shown_result(tab_id: str):
    """A click handler taking the Generate tab's info and answering (its shown video, the tab `tab_id` selected),
    or a warning and nothing changed when no video is shown yet."""
    def send(info):
        output = (info or {}).get("output") if isinstance(info, dict) else None
        if not output:
            gr.Warning("No video yet: generate one, or click one in the gallery.")
            return gr.skip(), gr.skip()
        return output, gr.Tabs(selected=tab_id)

    return send


def user_error(message: str, *, toast: bool = True) -> gr.Error:
    """A one-line message for the page and for API clients (gradio_client raises it as AppError).

    Gradio renders the message as HTML, so <, > and & are escaped; quotes are left as they are. `toast=False`
    when the page already shows the message (the Generate tab's status line): API clients still get it, the
    page shows it once.
    """
    return gr.Error(html.escape(spell(message), quote=False), print_exception=False, visible=toast)


class _NoStubs(ComponentMeta):
    """Gradio's component metaclass without its type-stub writer.

    `ComponentMeta.__new__` writes (or rewrites) a `.pyi` beside the module of every component class it
    creates (gradio/component_meta.py, `create_or_modify_pyi`), so importing this module wrote
    `video_gen/web/components.pyi` into the installed package. For a subclass that declares neither
    `__init__` nor `EVENTS`, everything else `ComponentMeta.__new__` does is a no-op, which is what this
    checks before it creates the class the way `ABCMeta` does.
    """

    def __new__(mcs, name, bases, attrs):
        if "__init__" in attrs or "EVENTS" in attrs:
            raise TypeError(f"{name}: a component with its own __init__ or EVENTS needs gradio's ComponentMeta")
        return ABCMeta.__new__(mcs, name, bases, attrs)


def checked_data_model(data_model, field: str, allowed: str):
    """`data_model` whose validation failure (a number sent for a file, say) is one line naming `field`.

    Gradio validates an input's payload against its component's data model before any handler (or
    `preprocess`) runs, and a pydantic error there reaches the client as a bare server error."""

    class Checked(data_model):
        __doc__ = data_model.__doc__  # the same API schema (title, description) as Gradio's own
        model_config = {"title": data_model.__name__}

        @classmethod
        def model_validate(cls, obj, **kwargs):
            try:
                return super().model_validate(obj, **kwargs)
            except ValidationError:
                raise user_error(f"{field}: must be {allowed}, got {_short(obj)}") from None

    return Checked


class PictureInput(gr.Image, metaclass=_NoStubs):
    """gr.Image whose unreadable uploads and wrongly typed payloads come back as one readable line."""

    is_template = True  # rendered by gr.Image's frontend
    field = "image"

    def preprocess(self, payload):
        path = getattr(payload, "path", None)
        if path and not str(getattr(payload, "url", "") or "").startswith("data:"):
            try:  # before Gradio's Image.open: sizes and bombs get our message, not Pillow's warning
                check_image_file(path)
            except InvalidRequest as error:
                name = getattr(payload, "orig_name", None) or Path(path).name
                raise user_error(f"{self.field}: {str(error).split(': ', 1)[1]}".replace(str(path), name)) from None
        try:
            return super().preprocess(payload)
        except (OSError, ValueError, Image.DecompressionBombError, UnidentifiedImageError):
            name = getattr(payload, "orig_name", None) or "the upload"
            raise user_error(f"{self.field}: not a picture this app can read (PNG, JPEG, WebP, …): {name}") from None


class FileInput(gr.File, metaclass=_NoStubs):
    """gr.File whose wrongly typed payloads come back as one line naming the input."""

    is_template = True


class NamedRadio(gr.Radio, metaclass=_NoStubs):
    """gr.Radio whose values outside its choices are refused with the control's name and the choices."""

    is_template = True
    field = "value"

    def preprocess(self, payload):
        allowed = [value for _, value in self.choices]
        if payload not in allowed or isinstance(payload, bool):
            raise user_error(f"{self.field}: must be one of {', '.join(map(str, allowed))}, got {payload!r}")
        return super().preprocess(payload)


class WholeNumber(gr.Number, metaclass=_NoStubs):
    """gr.Number for whole numbers (a job's number): anything else is refused in one line, not a server error."""

    is_template = True
    field = "value"

    def preprocess(self, payload):
        if payload is None:
            return None
        if isinstance(payload, bool) or not isinstance(payload, (int, float)) or not float(payload).is_integer():
            raise user_error(f"{self.field}: must be a whole number, got {payload!r}")
        return int(payload)


def picture(field: str, **kwargs) -> PictureInput:
    """A PictureInput for the request field `field` (its elem_id "vg-<field>")."""
    control = PictureInput(type="filepath", image_mode=None, sources=["upload", "clipboard"], elem_id=elem_id(field),
                           **kwargs)
    control.field = field  # after construction: Gradio builds a component's config from its __init__ signature
    control.data_model = checked_data_model(control.data_model, field, "a picture (gradio_client: handle_file(path))")
    return control


def file_input(field: str, **kwargs) -> FileInput:
    control = FileInput(elem_id=elem_id(field), **kwargs)
    control.data_model = checked_data_model(control.data_model, field, "a file (gradio_client: handle_file(path))")
    return control


def radio(choices, *, field: str, **kwargs) -> NamedRadio:
    """A NamedRadio for `field`, its elem_id "vg-<field>" (the tests find controls by it)."""
    control = NamedRadio(choices, elem_id=elem_id(field), **kwargs)
    control.field = field
    return control


def whole_number(*, field: str, **kwargs) -> WholeNumber:
    control = WholeNumber(precision=0, **kwargs)
    control.field = field
    return control


def elem_id(field: str) -> str:
    return "vg-" + field.replace("_", "-")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["user_error", "PictureInput", "FileInput", "NamedRadio", "WholeNumber", "picture", "file_input", "radio",
           "whole_number", "elem_id"]
