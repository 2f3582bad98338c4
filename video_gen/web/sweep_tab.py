"""The Sweep tab: one picture (or prompt) and one base request, one or two fields varied over lists of values.

`/sweep` checks the whole sweep first (`sweep.plan_sweep`: one line naming the field and the cell), then runs the
cells on the job board, each an ordinary job with its own output, metadata and history row, queued when the one
before it starts, and says "Cell k of n" above each cell's own progress. When the last cell is done it
writes the comparison video (every cell in sync, its values under each tile) and the contact sheet (each
cell's middle frame) into the outputs folder and shows both. Cancel (or closing the tab) stops the running
cell and drops the rest from the queue. The model stays resident: the cells run back to back on it. Its result
panel is the page's one (`panel.ResultPanel`: disabled with a reason until it can run, one error line, Cancel only
while it runs), its model list follows the catalog, its steps start at the model's own, and the line under the
values says what the whole sweep will cost.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import InvalidRequest, VideoGenError, first_line
from ..families.spec import REQUIRED
from ..request import GenerationRequest
from ..sweep import MAX_CELLS, cell_request, check_axes, make_axis, plan_sweep, varied_fields, write_comparison
from ..timing import duration_text
from .components import picture, session_of, user_error, whole_number
from .fields import DURATION_RANGE  # the Generate tab's length range
from .jobs import CANCELLED, DONE, JobEnded
from .panel import PRIVATE, ResultPanel, on_latest
from .progress import UPDATE_EVERY_S, ProgressView, status_box, status_cancelled, status_error

NO_FIELD = ""


class SweepTab:
    def __init__(self, web):
        self.web = web
        self.generator = web.generator
        self.board = web.board
        self.panel = ResultPanel(web, "sweep", verb="sweep", idle="No sweep yet: the comparison shows here.",
                                 ids={"player": "vg-sweep-grid"})

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
            yield skip, skip, skip, status_error(str(error), "sweep")
            raise user_error(str(error), toast=False) from None  # said once: in the status line (issue 29)
        for warning in plan.warnings:
            gr.Warning(warning)
        # Each cell is queued when the one before it starts, so it runs right after it on the resident model,
        # and a sweep of 36 cells fits a queue of 20 (--queue-size) like any other job.
        try:
            jobs = [self.board.submit(plan.cells[0].job, session)]
        except InvalidRequest as error:  # the queue is full
            yield skip, skip, skip, status_error(str(error), "sweep")
            raise user_error(str(error), toast=False) from None
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
            yield skip, skip, skip, status_error(message, "sweep")
            raise user_error(message, toast=False)
        if ended is None or ended.outcome == CANCELLED:
            yield None, None, {"cancelled": True, "cells_done": len(records)}, status_cancelled(
                f"Cancelled in cell {len(records) + 1} of {len(plan.cells)}; the {len(records)} finished cell(s) "
                f"are in the history.")
            return
        if ended.outcome != DONE:
            message = f"cell {len(records) + 1} of {len(plan.cells)}: {ended.message}"
            yield skip, skip, skip, status_error(message, "sweep")
            raise user_error(message, toast=False)
        yield skip, skip, skip, status_box("<b class='vg-stage'>Writing the comparison video and contact sheet</b>", "busy")
        try:
            with self.generator.turn():
                grid, sheet, info = write_comparison(plan, [record.path for record in records],
                                                     self.generator.outputs_dir)
        except (VideoGenError, OSError) as error:
            yield skip, skip, skip, status_error(f"comparison: {first_line(error)}", "sweep")
            raise user_error(f"comparison: {first_line(error)}", toast=False) from None
        done = status_box(f"<b>Done</b>: {len(records)} cells ({plan.rows} × {plan.columns})<br>"
                    f"<small>{html.escape(str(grid))}<br>{html.escape(str(sheet))}</small>", "done")
        yield str(grid), str(sheet), info, done

    def plan(self, image, model, prompt, resolution, duration, steps, seed, vary_1, values_1, vary_2, values_2):
        """The page's values as a checked `SweepPlan` (raises InvalidRequest naming the input)."""
        info = self.web.generate_tab.picker.installed_model(model or None)
        request = self.request(info.name, image, prompt, resolution, duration, steps, seed)
        return plan_sweep(self.generator, request, self.axes(vary_1, values_1, vary_2, values_2))

    def axes(self, vary_1, values_1, vary_2, values_2) -> list:
        if not _text("vary_1", vary_1):
            raise InvalidRequest("vary_1", f"missing: the field to vary, one of {', '.join(varied_fields())}")
        axes = [make_axis(_text("vary_1", vary_1), _values("values_1", values_1))]
        if _text("vary_2", vary_2):
            axes.append(make_axis(_text("vary_2", vary_2), _values("values_2", values_2)))
        return axes

    def request(self, model: str, image, prompt, resolution, duration, steps, seed) -> GenerationRequest:
        """The base request of a sweep for the installed `model` (raises InvalidRequest naming the input)."""
        defaults = self.generator.defaults(model)
        values: dict[str, Any] = {"model": model, "image": _path(image), "prompt": _text("prompt", prompt)}
        if resolution not in (None, ""):
            width, height = _size(resolution)
            values.update(width=width, height=height)
        duration = 1 if duration is None else duration
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or \
                not DURATION_RANGE[0] <= duration <= DURATION_RANGE[1]:
            raise InvalidRequest("duration", f"must be from {DURATION_RANGE[0]} to {DURATION_RANGE[1]} seconds, "
                                             f"got {duration!r}")
        values["num_frames"] = max(1, round(duration * defaults["fps"]))
        if steps not in (None, "", 0):  # an empty number box sends 0 (issue 29): the model's own
            values["num_inference_steps"] = steps
        values["seed"] = -1 if seed in (None, "") else seed
        return GenerationRequest.from_dict(values)

    def cancel(self, http: gr.Request) -> str:
        session = session_of(http)
        if self.board.cancel(session) or self.board.recently_cancelled(session):
            return status_cancelled("Cancelled: the running cell stops within one step; the rest of the sweep does "
                                    "not run.")
        return self.panel.cancel(http)

    # ---- the page's own: what it costs, whether it can run, the model's own steps ---------------------
    def cost(self, image, model, prompt, resolution, duration, steps, seed, vary_1, values_1, vary_2, values_2) -> str:
        """The whole sweep's time (each cell's estimate; the model loads once), or what is wrong with it."""
        try:
            info = self.web.generate_tab.picker.installed_model(model or None)
            base = self.request(info.name, None, prompt, resolution, duration, steps, seed)  # no picture needed
            axes = self.axes(vary_1, values_1, vary_2, values_2)
            check_axes(axes)  # as Run checks it, before a cell is built
            import itertools

            cells = [cell_request(base, tuple(zip((axis.field for axis in axes), values)))
                     for values in itertools.product(*(axis.values for axis in axes))]
            estimator = self.web.estimator
            total, known = 0.0, True
            for number, cell in enumerate(cells):
                job = self.generator.plan_job(cell)
                estimate = estimator.estimate(job, load=None if number == 0 else False)
                total += estimate.total_s
                known = known and estimate.known
        except InvalidRequest as error:
            return f"⚠ **{html.escape(str(error))}**"
        except (VideoGenError, OSError, ValueError) as error:
            return f"Time: not available ({html.escape(first_line(error))})"
        count = f"{len(cells)} cell{'s' if len(cells) != 1 else ''} ({info.name})"
        if not known:
            if self.web.probe:
                estimator.probe_in_background(info.name)
            return f"{count}. Time: not known yet on this machine."
        return f"{count}. **Takes {duration_text(total)}** in all ({estimate.basis_text()})."

    def reason(self, image, model, values_1, cost: str = "") -> str:
        picker = self.web.generate_tab.picker
        if not model or all(info.name != model for info in picker.models()):
            return "Run sweep needs a model: install one (or the demo models) first."
        spec = picker.spec(model)
        if not image and spec is not None and spec.image == REQUIRED:
            return "Run sweep needs a picture: drop, paste or browse for one."
        if not str(values_1 or "").strip():
            return "Run sweep needs values to try: type them beside Vary, such as 1,2,3."
        if cost.startswith("⚠"):
            return "Run sweep needs values the model can take: see the line above."
        return ""

    def state(self, image, model, prompt, resolution, duration, steps, seed, vary_1, values_1, vary_2, values_2):
        """The cost line, and the run button with the reason it is disabled (an error in the line is one)."""
        cost = self.cost(image, model, prompt, resolution, duration, steps, seed, vary_1, values_1, vary_2, values_2)
        reason = self.reason(image, model, values_1, cost)
        return cost, gr.update(interactive=not reason), reason

    def model_steps(self, model):
        """The model's own steps in the Steps box (issue 29: it showed an empty box that sent 0)."""
        picker = self.web.generate_tab.picker
        if not model or all(info.name != model for info in picker.models()):
            return gr.skip()
        return picker.model_defaults(model).get("num_inference_steps") or gr.skip()

    def refresh(self, current=None):
        picker = self.web.generate_tab.picker
        models = picker.models()
        names = [info.name for info in models]
        return gr.update(choices=picker.model_choices(models),
                         value=current if current in names else (names[0] if names else None))

    # ---- layout ----------------------------------------------------------------------------------
    def build(self) -> None:
        generate = self.web.generate_tab
        models = generate.picker.models()
        model = models[0].name if models else None
        fields = [(name, name) for name in varied_fields()]
        panel = self.panel
        gr.Markdown(f"Try one setting at several values, or two against each other (at most {MAX_CELLS} "
                    "videos): each combination is an ordinary job, and when all are done a comparison video "
                    "plays them side by side with their values under each one.")
        with gr.Row():
            with gr.Column(scale=5):
                self.image = picture("sweep_image", label="Picture", height=220)
                # allow_custom_value: an API client's unknown name gets our one line, not Gradio's choices error
                self.model = gr.Dropdown(generate.picker.model_choices(models), value=model,
                                         label="Model", elem_id="vg-sweep-model", allow_custom_value=True)
                self.prompt = gr.Textbox(label="Prompt (text families)", lines=1, elem_id="vg-sweep-prompt")
                with gr.Row():
                    self.resolution = gr.Textbox(label="Resolution", placeholder="the model's own, or e.g. 512x512",
                                                 elem_id="vg-sweep-resolution")
                    self.duration = whole_number(field="duration", value=1, label="Seconds",
                                                 minimum=DURATION_RANGE[0], maximum=DURATION_RANGE[1],
                                                 elem_id="vg-sweep-duration")
                    own_steps = generate.picker.model_defaults(model).get("num_inference_steps") if model else None
                    self.steps = whole_number(field="num_inference_steps", value=own_steps,
                                              label="Steps (the model's own to start)", elem_id="vg-sweep-steps")
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
                self.cost_box = gr.Markdown("", elem_id="vg-sweep-cost")
                panel.build_buttons("Run sweep")
            with gr.Column(scale=6):
                panel.build_status()
                panel.build_player("Comparison")
                self.sheet = gr.Image(label="Contact sheet (middle frames)", interactive=False, type="filepath",
                                      elem_id="vg-sweep-sheet")
                panel.build_info("Sweep")
                panel.clears = {self.sheet: None}
        self.run_button, self.cancel_button, self.status = panel.run_button, panel.cancel_button, panel.status
        self.grid, self.info = panel.player, panel.info

    def wire(self, demo: gr.Blocks) -> None:
        panel = self.panel
        inputs = [self.image, self.model, self.prompt, self.resolution, self.duration, self.steps, self.seed,
                  self.vary_1, self.values_1, self.vary_2, self.values_2]
        event = panel.wire_run(self.run_button, self.sweep, inputs, [self.grid, self.sheet, self.info, self.status],
                               api_name="sweep", concurrency_limit=None, concurrency_id="watch",
                               show_progress="full", show_progress_on=[self.grid])
        panel.wire_cancel([event], api_name="cancel_sweep", handler=self.cancel)
        state = [self.cost_box, panel.run_button, panel.reason]
        on_latest([*(control.change for control in inputs), demo.load], self.state, inputs, state, preprocess=False)
        self.model.input(self.model_steps, [self.model], [self.steps], **PRIVATE)
        generate = self.web.generate_tab
        for event in generate.scanned:  # the catalog as it is now (issue 29): read after Generate's scan
            event.then(self.refresh, [self.model], [self.model], **PRIVATE).then(
                self.model_steps, [self.model], [self.steps], **PRIVATE)
        generate.demo_event.then(self.refresh, [self.model], [self.model], **PRIVATE).then(
            self.model_steps, [self.model], [self.steps], **PRIVATE)


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
