"""The "About this machine" tab: the device, the memory plan for the Generate tab's settings, and the longest
video each installed model makes in one pass at each preset size (`Generator.length_table`)."""

from __future__ import annotations

import gradio as gr

from ..errors import VideoGenError, first_line
from ..request import GenerationRequest
from .fields import MATCH_IMAGE, parse_resolution

# The Generate tab's fields the memory plan depends on.
PLAN_FIELDS = ("model", "resolution", "duration", "fps", "decode_chunk_size")


class AboutTab:
    def __init__(self, web):
        self.web = web
        self.generator = web.generator

    def report(self, model=None, resolution=None, duration=None, fps=None, decode_chunk_size=None) -> str:
        try:
            report = self.generator.device_report()
            rows = self.generator.length_table()
        except (VideoGenError, RuntimeError, OSError) as error:
            return f"Could not check this machine: {first_line(error)}"
        lines = ["### Device", *[f"- {line}" for line in report.lines()], ""]
        try:
            size = parse_resolution(resolution) if resolution and resolution != MATCH_IMAGE else None
            request = GenerationRequest(
                model=model or None, fps=int(fps) if fps else None, decode_chunk_size=int(decode_chunk_size or 8),
                num_frames=int(duration) * int(fps) if duration and fps else None,
                width=size[0] if size else None, height=size[1] if size else None)
            plan = self.generator.memory_plan(request).label()
            lines.append(f"**Memory plan for the Generate tab's settings:** {plan}")
        except (VideoGenError, ValueError) as error:
            lines.append(f"Memory plan for the Generate tab's settings: not available ({first_line(error)})")
        lines += ["", "### Longest video of one generation pass",
                  "| model | size | fastest plan | cheapest plan |", "|---|---|---|---|"]
        for row in rows:
            lines.append(f"| {row.model} | {row.width}×{row.height} | {row.length_text(row.fastest_frames)} | "
                         f"{row.length_text(row.cheapest_frames)} |")
        from ..demo import DEMO_NOTE, is_demo

        for model in self.generator.list_models():
            if is_demo(model):
                lines += ["", f"**{model.name} is a demo model** ({DEMO_NOTE}): it is there to try the page; "
                              f"its numbers say nothing about a real model's."]
        if rows:
            lines += ["", f"Fastest plan: {rows[0].fastest.label()}. Cheapest: {rows[0].cheapest.label()}. "
                          "Longer videos are made of several passes (see the README's section on length)."]
        return "\n".join(lines)

    def report_for(self, values: dict) -> str:
        named = self.web.generate_tab.form.named(values)
        return self.report(*(named.get(name) for name in PLAN_FIELDS))

    def build(self) -> None:
        self.box = gr.Markdown("Open this tab to check the device.", elem_id="vg-about")
        self.refresh_button = gr.Button("Check again", size="sm", elem_id="vg-about-refresh")

    def wire(self, tab: gr.Tab) -> None:
        form = self.web.generate_tab.form
        inputs = {form[name] for name in PLAN_FIELDS}
        for trigger in (tab.select, self.refresh_button.click):
            trigger(self.report_for, inputs, [self.box], queue=False, api_visibility="private", show_progress="hidden")


__all__ = ["AboutTab"]
