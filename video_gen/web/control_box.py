"""The Generate tab's "Control video" section, shown only for models that take one (Wan VACE): the upload, its kind
(as it is, or depth, pose, edges or gray made from it), the mask, and a preview of the control's first frame with
the mask over it (red where the model generates). Its three inputs are the form's (`fields.PAGE_OWN`: they stand
for the request's `control`, `control_from`, `control_kind` and `mask`, and are /generate inputs like the others);
the preview is the page's alone. Imports gradio but no torch."""

from __future__ import annotations

import gradio as gr

from ..control import preview
from ..errors import InvalidRequest
from .fields import AS_IT_IS, takes_control
from .panel import PRIVATE, on_latest

NAMES = ("control_video", "control_type", "control_mask")


class ControlBox:
    """Built and wired by `GenerateTab`."""

    def __init__(self, tab):
        self.tab = tab

    def build(self, field, spec) -> None:
        """`field(name, **layout)` builds one of the form's controls where it is called."""
        with gr.Group(visible=takes_control(spec), elem_id="vg-control-box") as self.box:
            gr.Markdown("**Control video**: drive the video with another one (motion, depth, pose, edges), keep "
                        "part of it with a mask; the picture above, when given, is a reference picture.")
            with gr.Row():
                with gr.Column(scale=3):
                    field("control_video", height=120)
                    field("control_type")
                    field("control_mask", height=120)
                with gr.Column(scale=2):
                    self.preview = gr.Image(label="First frame (red: where the mask generates)", interactive=False,
                                            height=260, elem_id="vg-control-preview", buttons=[])
                    self.message = gr.Markdown("", elem_id="vg-control-message")

    def wire(self) -> None:
        form = self.tab.form
        form["model"].change(self.shown, [form["model"]], [self.box], **PRIVATE)
        inputs = [form[name] for name in NAMES]
        on_latest([form[name].change for name in NAMES], self.look, inputs, [self.preview, self.message])

    def shown(self, model: str | None):
        return gr.update(visible=takes_control(self.tab.picker.spec(model)))

    def look(self, video: str | None, kind: str | None, mask: str | None):
        """The preview of the control's first frame as the model will see it (edges and gray made here; depth and
        pose when the job runs), the mask over it; a bad file says why in one line instead."""
        if not video:
            return None, ""
        try:
            picture = preview(video, mask, kind)
        except InvalidRequest as error:
            return None, f"**{error}**"
        note = "" if kind in (None, AS_IT_IS, "edges", "gray") else f"The {kind} control is made when the job runs."
        return picture, note
