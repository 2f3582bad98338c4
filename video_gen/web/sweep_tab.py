"""The Sweep tab: one picture (or prompt) and one base request, one or two fields varied over lists of values.

`/sweep` checks the whole sweep first (`sweep.plan_sweep`: one line naming the field and the cell), then runs the
cells on the job board, each an ordinary job with its own output, metadata and history row, queued when the one
before it starts, and says "Cell k of n" above each cell's own progress. When the last cell is done it
writes the comparison video (every cell in sync, its values under each tile) and the contact sheet (each
cell's middle frame) into the outputs folder and shows both. Cancel (or closing the tab) stops the running
cell and drops the rest from the queue. The model stays resident: the cells run back to back on it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import InvalidRequest, VideoGenError, first_line
from ..request import GenerationRequest
from ..sweep import MAX_CELLS, make_axis, plan_sweep, varied_fields, write_comparison
from .components import picture, session_of, user_error, whole_number
from .fields import DURATION_RANGE  # the Generate tab's length range
from .jobs import CANCELLED, DONE, JobEnded
from .progress import UPDATE_EVERY_S, ProgressView, status_box, status_cancelled, status_error, status_idle

NO_FIELD = ""


class SweepTab:
    def __init__(self, web):
        self.web = web
        self.generator = web.generator
        self.board = web.board

    # ---- the handler (the API's /sweep) -----------------------------------------------------------
    def sweep(self, image, model=None, prompt=None, resolution=None, duration=None, num_inference_steps=None,
              seed=None, vary_1=None, values_1=None, vary_2=None, values_2=None, http: gr.Request = None):
        # Every parameter but the picture defaults to None, so that API clients may leave it out (Gradio makes
        # an input optional only when its parameter defaults to None).
        """Run one job per combination of values, then write a comparison video and a contact sheet.

        Parameters:
            image: the picture (handle_file(path)); None for a text family's text to video
            model: an installed model's name; empty for the only installed one
            prompt: text families: what the video shows
            resolution: WIDTHxHEIGHT (multiples of 8); empty for the model's own size
            duration: seconds (1-10, default 1), at the model's own frame rate
            num_inference_steps: denoising steps; None for the model's default
            seed: the seed of every cell (unless the seed is varied); -1 draws one for all
            vary_1: the first varied field (any numeric request field: seed, motion_bucket_id, …)
            values_1: its values, separated by commas (such as "1,2,3")
            vary_2: a second varied field, or "" for none
            values_2: its values
        Returns:
            grid: the comparison video (every cell in sync, its values under its tile)
            sheet: the contact sheet PNG (each cell's middle frame)
            info: the sweep: its axes, its cells (values, output, request), the grid's layout and files
            status: the status panel (HTML)
        """
        session = session_of(http)
        skip = gr.skip()
        try:
            plan = self.plan(image, model, prompt, resolution, duration, num_inference_steps, seed,
                             vary_1, values_1, vary_2, values_2)
        except InvalidRequest as error:
            yield skip, skip, skip, status_error(str(error))
            raise user_error(str(error)) from None
        for warning in plan.warnings:
            gr.Warning(warning)
        # Each cell is queued when the one before it starts, so it runs right after it on the resident model,
        # and a sweep of 36 cells fits a queue of 20 (--queue-size) like any other job.
        try:
            jobs = [self.board.submit(plan.cells[0].job, session)]
        except InvalidRequest as error:  # the queue is full
            yield skip, skip, skip, status_error(str(error))
            raise user_error(str(error)) from None
        records, ended, queue_error = [], None, None
        try:
            for index, cell in enumerate(plan.cells):
                job, view, ended = jobs[index], ProgressView(segments=cell.job.length.segments), None
                heading = (f'<b class="vg-cell">Cell {cell.number} of {len(plan.cells)}</b> '
                           f'({html.escape(cell.label)}) · ')
                for batch in job.batches(every_s=UPDATE_EVERY_S):
                    for message in batch:
                        if isinstance(message, JobEnded):
                            ended = message
                            continue
                        if message.kind in ("stage", "step") and len(jobs) == index + 1 < len(plan.cells) \
                                and queue_error is None:  # this cell runs: queue the next behind it
                            try:
                                jobs.append(self.board.submit(plan.cells[index + 1].job, session))
                            except InvalidRequest as error:
                                queue_error = error
                        if message.kind != "preview":
                            view.update(message)
                    if ended is None:
                        stage = '<b class="vg-stage">'
                        yield skip, skip, skip, view.html().replace(stage, heading + stage, 1)
                if ended.outcome != DONE:
                    break
                records.append(ended.record)
                if queue_error is not None:
                    break
        finally:
            for job in jobs:  # cancelled, failed or closed: the rest of the sweep does not run
                if not job.finished.is_set():
                    self.board.cancel_job(job)
        if queue_error is not None and ended is not None and ended.outcome == DONE:
            message = f"cell {len(records) + 1} of {len(plan.cells)}: {queue_error}"
            yield skip, skip, skip, status_error(message)
            raise user_error(message)
        if ended is None or ended.outcome == CANCELLED:
            yield None, None, {"cancelled": True, "cells_done": len(records)}, status_cancelled(
                f"Cancelled in cell {len(records) + 1} of {len(plan.cells)}; the {len(records)} finished cell(s) "
                f"are in the history.")
            return
        if ended.outcome != DONE:
            message = f"cell {len(records) + 1} of {len(plan.cells)}: {ended.message}"
            yield skip, skip, skip, status_error(message)
            raise user_error(message)
        yield skip, skip, skip, status_box("<b class='vg-stage'>Writing the comparison video and contact sheet</b>", "busy")
        try:
            with self.generator.turn():
                grid, sheet, info = write_comparison(plan, [record.path for record in records],
                                                     self.generator.outputs_dir)
        except (VideoGenError, OSError) as error:
            yield skip, skip, skip, status_error(first_line(error))
            raise user_error(f"comparison: {first_line(error)}") from None
        done = status_box(f"<b>Done</b>: {len(records)} cells ({plan.rows} × {plan.columns})<br>"
                    f"<small>{html.escape(str(grid))}<br>{html.escape(str(sheet))}</small>", "done")
        yield str(grid), str(sheet), info, done

    def plan(self, image, model, prompt, resolution, duration, steps, seed, vary_1, values_1, vary_2, values_2):
        """The page's values as a checked `SweepPlan` (raises InvalidRequest naming the input)."""
        info = self.web.generate_tab.picker.installed_model(model or None)
        defaults = self.generator.defaults(info.name)
        values: dict[str, Any] = {"model": info.name, "image": _path(image), "prompt": _text("prompt", prompt)}
        if resolution not in (None, ""):
            width, height = _size(resolution)
            values.update(width=width, height=height)
        duration = 1 if duration is None else duration
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or \
                not DURATION_RANGE[0] <= duration <= DURATION_RANGE[1]:
            raise InvalidRequest("duration", f"must be from {DURATION_RANGE[0]} to {DURATION_RANGE[1]} seconds, "
                                             f"got {duration!r}")
        values["num_frames"] = max(1, round(duration * defaults["fps"]))
        if steps not in (None, ""):
            values["num_inference_steps"] = steps
        values["seed"] = -1 if seed in (None, "") else seed
        request = GenerationRequest.from_dict(values)
        if not _text("vary_1", vary_1):
            raise InvalidRequest("vary_1", f"missing: the field to vary, one of {', '.join(varied_fields())}")
        axes = [make_axis(_text("vary_1", vary_1), _values("values_1", values_1))]
        if _text("vary_2", vary_2):
            axes.append(make_axis(_text("vary_2", vary_2), _values("values_2", values_2)))
        return plan_sweep(self.generator, request, axes)

    def cancel(self, http: gr.Request) -> str:
        self.board.cancel(session_of(http))
        return status_cancelled("Cancelled: the running cell stops within one step; the rest of the sweep does "
                                "not run.")

    # ---- layout ----------------------------------------------------------------------------------
    def build(self) -> None:
        generate = self.web.generate_tab
        models = generate.picker.models()
        fields = [(name, name) for name in varied_fields()]
        gr.Markdown(f"Try one setting at several values, or two against each other (at most {MAX_CELLS} "
                    "videos): each combination is an ordinary job, and when all are done a comparison video "
                    "plays them side by side with their values under each one.")
        with gr.Row():
            with gr.Column(scale=5):
                self.image = picture("sweep_image", label="Picture", height=220)
                # allow_custom_value: an API client's unknown name gets our one line, not Gradio's choices error
                self.model = gr.Dropdown(generate.picker.model_choices(models), value=models[0].name if models else None,
                                         label="Model", elem_id="vg-sweep-model", allow_custom_value=True)
                self.prompt = gr.Textbox(label="Prompt (text families)", lines=1, elem_id="vg-sweep-prompt")
                with gr.Row():
                    self.resolution = gr.Textbox(label="Resolution", placeholder="the model's own, or e.g. 512x512",
                                                 elem_id="vg-sweep-resolution")
                    self.duration = whole_number(field="duration", value=1, label="Seconds",
                                                 minimum=DURATION_RANGE[0], maximum=DURATION_RANGE[1],
                                                 elem_id="vg-sweep-duration")
                    self.steps = whole_number(field="num_inference_steps", value=None,
                                              label="Steps (empty: the model's)", elem_id="vg-sweep-steps")
                    self.seed = whole_number(field="seed", value=-1, label="Seed (-1: one random seed for all)",
                                             elem_id="vg-sweep-seed")
                with gr.Row():
                    self.vary_1 = gr.Dropdown(fields, value="seed", label="Vary", elem_id="vg-vary-1",
                                              allow_custom_value=True)
                    self.values_1 = gr.Textbox("1,2,3", label="Values (comma-separated)", elem_id="vg-values-1")
                with gr.Row():
                    self.vary_2 = gr.Dropdown([("(nothing)", NO_FIELD)] + fields, value=NO_FIELD, label="Against",
                                              elem_id="vg-vary-2", allow_custom_value=True)
                    self.values_2 = gr.Textbox("", label="Values (comma-separated)", elem_id="vg-values-2")
                with gr.Row():
                    self.run_button = gr.Button("Run sweep", variant="primary", elem_id="vg-sweep-run")
                    self.cancel_button = gr.Button("Cancel", variant="stop", elem_id="vg-sweep-cancel")
            with gr.Column(scale=6):
                self.status = gr.HTML(status_idle("Ready: choose what to vary and press Run sweep."),
                                      elem_id="vg-sweep-status")
                self.grid = gr.Video(label="Comparison", interactive=False, autoplay=True, loop=True,
                                     elem_id="vg-sweep-grid", buttons=["download"])
                self.sheet = gr.Image(label="Contact sheet (middle frames)", interactive=False, type="filepath",
                                      elem_id="vg-sweep-sheet")
                self.info = gr.JSON(label="Sweep", elem_id="vg-sweep-info", open=False)

    def wire(self, demo: gr.Blocks) -> None:
        inputs = [self.image, self.model, self.prompt, self.resolution, self.duration, self.steps, self.seed,
                  self.vary_1, self.values_1, self.vary_2, self.values_2]
        event = self.run_button.click(self.sweep, inputs, [self.grid, self.sheet, self.info, self.status],
                                      api_name="sweep", concurrency_limit=None, concurrency_id="watch",
                                      trigger_mode="once", show_progress="full", show_progress_on=[self.grid])
        self.cancel_button.click(self.cancel, None, [self.status], api_name="cancel_sweep", queue=False,
                                 cancels=[event], show_progress="hidden")


def _path(value) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, (str, Path)):
        raise InvalidRequest("image", f"must be a picture (gradio_client: handle_file(path)), got {value!r}")
    return str(value)


def _text(name: str, value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(name, f"must be text, got {value!r}")
    return value.strip()


def _values(name: str, value) -> list[str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    return [part.strip() for part in _text(name, value).split(",") if part.strip()]


def _size(resolution) -> tuple[int, int]:
    text = _text("resolution", resolution).lower().replace("×", "x")
    width, separator, height = text.partition("x")
    if not separator or not width.strip().isdigit() or not height.strip().isdigit():
        raise InvalidRequest("resolution", f"must be WIDTHxHEIGHT such as 512x512, got {resolution!r}")
    return int(width), int(height)


__all__ = ["SweepTab"]
