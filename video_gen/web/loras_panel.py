"""The Generate tab's LoRA panel: a multi-select of the installed LoRAs that fit the chosen model, and a strength
slider for each chosen one (MAX_LORAS slots, shown and hidden).

What /generate takes is the field table's `loras` input (a hidden JSON value, `fields.LorasField`); the panel
only keeps it: choosing LoRAs or moving a slider (`.input`: a person did it) writes the JSON, and a JSON set
from outside (Load settings, Re-run, a model that does not take them) redraws the panel (`.change`). Choosing a
step-distill LoRA sets its steps and guidance, as choosing a model sets the model's. Imports no torch (judging
which LoRAs fit a model does, once per LoRA file).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from .. import loras as lora_support
from ..errors import VideoGenError
from ..families import load_family
from ..loras import MAX_LORAS, STRENGTH_RANGE
from .panel import PRIVATE, on_latest

STRENGTH_STEP = 0.05


class LoraPanel:
    def __init__(self, tab):
        self.tab = tab
        self.form = tab.form

    # ---- what fits ---------------------------------------------------------------------------------
    def choices(self, model: str | None) -> list[str]:
        """The installed LoRAs that fit `model` (loras.py: its modules, with their shapes)."""
        spec = self.tab.picker.spec(model)
        if spec is None or not spec.lora_loader:
            return []
        try:
            info = self.tab.generator.resolve(model)
        except VideoGenError:
            return []  # a model that cannot be resolved says why when it is used
        return lora_support.installed_for(self.tab.generator.catalog, info, load_family(info.family))

    # ---- layout --------------------------------------------------------------------------------------
    def build(self, model: str | None, spec) -> None:
        takes = bool(spec is not None and spec.lora_loader)
        with gr.Group(visible=takes, elem_id="vg-loras-box") as self.box:
            self.picker = gr.Dropdown(self.choices(model), value=[], multiselect=True, max_choices=MAX_LORAS,
                                      label="LoRAs", elem_id="vg-loras-picker",
                                      info="From models/loras: the ones that fit this model. Each gets a strength.")
            self.sliders = [
                gr.Slider(STRENGTH_RANGE[0], STRENGTH_RANGE[1], value=1.0, step=STRENGTH_STEP, visible=False,
                          label=f"LoRA {slot + 1} strength", elem_id=f"vg-lora-strength-{slot}",
                          info="0 turns it off; negative inverts it")
                for slot in range(MAX_LORAS)]
            self.summary = gr.Markdown(summary([]), elem_id="vg-loras-summary")
        self.form.build("loras", (), spec)

    def wire(self, scanned=()) -> None:
        """`scanned`: the Generate tab's events that rescan the model folders; the LoRA list is read after them."""
        value = self.form["loras"]
        steps, guidance = self.form["num_inference_steps"], self.form["max_guidance_scale"]
        self.picker.input(self.picked, [self.picker, value, self.form["model"]], [value, steps, guidance], **PRIVATE)
        # Every slider's value is read, not only the one moved, and in one always_last listener: two quick moves
        # must not undo each other (an older call, with the other slider's old value, landing last).
        on_latest([slider.input for slider in self.sliders], from_sliders, [self.picker, value, *self.sliders],
                  [value])
        value.change(self.shown, [value], [self.picker, *self.sliders, self.summary], **PRIVATE)
        self.form["model"].change(self.model_changed, [self.form["model"], value], [self.box, self.picker, value],
                                  **PRIVATE)
        for event in scanned:  # after the rescan, with the model it chose (not the one shown when it began)
            event.then(self.model_changed, [self.form["model"], value], [self.box, self.picker, value], **PRIVATE)

    # ---- handlers ------------------------------------------------------------------------------------
    def picked(self, names, current, model):
        """LoRAs chosen or removed: the JSON value (each keeps its strength), and a distill LoRA's defaults."""
        kept = {entry["name"]: entry for entry in entries(current)}
        chosen = [kept.get(name, {"name": name, "strength": 1.0, "sha256": None}) for name in (names or [])]
        steps = guidance = gr.skip()
        if chosen:
            try:
                own = self.tab.generator.defaults(model, loras=lora_support.coerce(chosen))
            except (VideoGenError, OSError, ValueError):
                own = {}  # a LoRA that cannot be read says so when the job is checked
            plain = self.tab.picker.model_defaults(model)
            if own and own.get("num_inference_steps") != plain.get("num_inference_steps"):  # a distill LoRA's
                steps, guidance = own["num_inference_steps"], own.get("max_guidance_scale", guidance)
        return chosen, steps, guidance

    def shown(self, current):
        chosen = entries(current)
        sliders = [gr.update(visible=slot < len(chosen),
                             label=f"{chosen[slot]['name']} strength" if slot < len(chosen) else f"LoRA {slot + 1} strength",
                             value=chosen[slot]["strength"] if slot < len(chosen) else 1.0)
                   for slot in range(MAX_LORAS)]
        return [gr.update(value=[entry["name"] for entry in chosen]), *sliders, summary(chosen)]

    def model_changed(self, model, current):
        """Another model (or Refresh): the LoRAs that fit it; chosen ones that do not fit are dropped."""
        spec = self.tab.picker.spec(model)
        fitting = self.choices(model)
        chosen = [entry for entry in entries(current) if entry["name"] in fitting]
        return (gr.update(visible=bool(spec is not None and spec.lora_loader)),
                gr.update(choices=fitting, value=[entry["name"] for entry in chosen]),
                chosen if chosen != entries(current) else gr.skip())


def entries(current: Any) -> list[dict]:
    """The JSON value as a list of {"name", "strength", "sha256"} (anything else: empty)."""
    if not isinstance(current, list):
        return []
    return [{"name": entry["name"], "strength": float(entry.get("strength", 1.0)), "sha256": entry.get("sha256")}
            for entry in current if isinstance(entry, dict) and isinstance(entry.get("name"), str)]


def from_sliders(names, current: Any, *strengths: float) -> list[dict]:
    """The JSON value from the chosen names and the slots' strengths (slot i shows the i-th chosen LoRA)."""
    hashes = {entry["name"]: entry["sha256"] for entry in entries(current)}
    return [{"name": name, "strength": float(strength), "sha256": hashes.get(name)}
            for name, strength in zip(names or [], strengths)]


def summary(chosen: list[dict]) -> str:
    if not chosen:
        return "No LoRA chosen."
    return "LoRAs: " + ", ".join(f"**{entry['name']}** ×{entry['strength']:.2f}" for entry in chosen)


__all__ = ["LoraPanel"]
