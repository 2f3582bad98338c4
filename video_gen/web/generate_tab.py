"""The Generate tab: the form (built from the field table) and its result panel (`panel.ResultPanel`: Generate and
Cancel, the status line with the progress, the player, the download, the info); its model list is
`model_picker.py`, its Load settings `settings.py`, its cost line and demo button `firstrun.py`.

The Generate button's event is the API endpoint `/generate`: its inputs are the form's fields (`fields.Form`,
from the request's field table), by name and in order, and its handler turns them into one checked job (one
model lookup, one `Generator.prepare`), hands that job to the board and relays what the board says (FramePack's
pattern). Cancel is `/cancel`, Load settings `/load_settings`.
"""

from __future__ import annotations

import html
import secrets
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import InvalidRequest, VideoGenError, first_line
from ..events import PreviewEvent
from ..families import spec_for
from .batch_box import BatchBox
from .components import file_input, session_of, user_error
from .control_box import ControlBox
from .enhance_panel import EnhancePanel
from .fields import FPS_CHOICES, Form, api_handler, default_values, length_note, length_plan, request_from_values
from .firstrun import CostLine, DemoButton, download_of
from .jobs import CANCELLED, DONE, JobEnded
from .loras_panel import LoraPanel
from .model_picker import ModelPicker
from .panel import NOTICE, PRIVATE, ResultPanel, on_latest
from .settings import StoredSettings
from .progress import UPDATE_EVERY_S, ProgressView, status_cancelled, status_done, status_error

MAX_RANDOM_SEED = 2**32 - 1
# Fields the layout places after the form's columns have begun (the live preview sits beside the preview).
PLACED_LATER = ("live_preview",)


class GenerateTab:
    """The Generate tab's controls and handlers, bound to the page's `WebApp` (its generator and job board)."""

    def __init__(self, web):
        self.web = web
        self.generator = web.generator
        self.board = web.board
        self.form = Form()
        self.picker = ModelPicker(self.generator)
        self.settings = StoredSettings(self)  # Load settings, and the form filling Re-run shares
        # What choosing a model may set (`fields.default_values`): its length, rate, size and each field its
        # defaults name.
        self.defaulted = ["duration", "fps", "resolution"] + [
            field.name for field in self.form.fields
            if field.request and field.stored and field.name not in ("fps", "model")]
        self.lora_panel = LoraPanel(self)
        self.enhance_panel = EnhancePanel(self)  # the prompt enhancer's button under the prompt
        self.cost = CostLine(self)  # the time estimate under the length, and whether Generate can run
        self.demo = DemoButton(self)
        self.control_box = ControlBox(self)  # Wan VACE's control video, mask and preview
        # The ids the page has always had (tests and users' scripts find them)
        self.panel = ResultPanel(web, "generate", verb="generate", ids={
            "run": "vg-generate", "cancel": "vg-cancel", "reason": "vg-generate-reason", "status": "vg-status",
            "player": "vg-player", "download": "vg-download", "info": "vg-info"})

    # ---- the job from the form ----------------------------------------------------------------
    def request_from_values(self, values: dict[str, Any]):
        """The page's (or an API client's) values, by field name, as a checked `GenerationRequest` for the
        installed model they name (raises InvalidRequest); missing values take the fields' start values."""
        info = self.picker.installed_model(self.form.field["model"].check(values.get("model"), None))
        spec = spec_for(info.family)
        checked = self.form.checked({**values, "model": info.name}, spec)
        if "control" not in (self.picker.spec(info.name) or spec).controls:  # hidden here (a Wan that is not VACE)
            checked.update(control_video=None, control_mask=None)
        return request_from_values(checked, self.form.fields, spec, lambda: self.picker.model_defaults(info.name))

    def prepare(self, values: dict[str, Any]):
        """The values as the engine's `PreparedJob`: checked completely (model, picture, sizes, disk), with
        the model's defaults and the seed filled in, before it is queued. One lookup, one `prepare`."""
        return self.generator.prepare(self.request_from_values(values))

    # ---- handlers -----------------------------------------------------------------------------
    def generate(self, http: gr.Request | None, **values):
        # The event function is `api_handler(generate)` (every input optional for API clients); its docstring
        # is the API's (`api_docstring`).
        session = session_of(http)
        skip = gr.skip()
        if self.board.is_closed(session):  # queued by a tab that has been closed since: nobody is watching
            yield None, {"cancelled": True}, None, status_cancelled(), None, None
            return
        try:
            prepared = self.prepare(values)
            preview_every = (1 if prepared.request.num_inference_steps <= 30 else 2) if values["live_preview"] else 0
            job = self.board.submit(prepared, session, preview_every)
        except InvalidRequest as error:  # a bad value, or the queue is full
            yield skip, skip, skip, status_error(str(error)), skip, skip
            raise user_error(str(error), toast=False) from None  # shown once: in the status line
        for note in job.notes:
            gr.Warning(note if note.startswith("loras:") else f"image: {note}")
        view = ProgressView(segments=prepared.length.segments, estimate=self.cost.job_estimate(prepared))
        yield skip, skip, skip, view.html(), None, skip
        ended: JobEnded | None = None
        last_preview = None
        try:
            for batch in job.batches(every_s=UPDATE_EVERY_S):
                new_preview = skip
                for message in batch:
                    if isinstance(message, JobEnded):
                        ended = message
                    elif isinstance(message, PreviewEvent):
                        new_preview = last_preview = message.image
                    else:
                        view.update(message)
                if ended is None:
                    yield skip, skip, skip, view.html(), new_preview, skip
        finally:
            if ended is None:  # Gradio closed us (Cancel pressed, tab closed): stop the engine job too
                self.board.cancel_job(job)

        if ended.outcome == DONE:
            record = ended.record
            # Plain values, not updates, so that API clients get paths and numbers. The video is sent once: the
            # download is only a file of its own (PNG frames' zip); the page's button takes the player's file
            # otherwise (firstrun.ButtonStates), so an API client does not fetch the MP4 twice.
            download = None if record.download == record.playable else str(record.download)
            yield (str(record.playable), record.info, str(record.seed), status_done(record), last_preview, download)
        elif ended.outcome == CANCELLED:
            yield None, {"cancelled": True}, None, status_cancelled(), last_preview, None
        else:
            yield skip, skip, skip, status_error(ended.message), skip, skip
            raise user_error(ended.message, toast=False)

    def closed(self, http: gr.Request) -> None:
        """The tab was closed or reloaded: its running job stops, and a queued one ends when it starts."""
        self.board.close_session(session_of(http))

    def refresh(self, values: dict) -> dict:
        """Scan the model folders again (Refresh, and each time the page is opened): the dropdown lists what is
        installed now, and when the chosen model is gone, the first one is chosen and its defaults set."""
        named = self.form.named(values)
        current = named.get("model")
        try:
            models = self.picker.models(refresh=True)
        except (OSError, VideoGenError) as error:
            where = Path(self.generator.models_dir).resolve()
            text = f"**Could not list the models:** {html.escape(first_line(error))} (in `{where}`)"
            return {self.model_message: gr.update(value=text, visible=True)}
        names = [info.name for info in models]
        chosen = current if current in names else (names[0] if names else None)
        updates = {self.form["model"]: gr.update(choices=self.picker.model_choices(models), value=chosen),
                   self.model_message: gr.update(value=self.picker.empty_state(), visible=not names),
                   self.demo.button: gr.update(visible=not names)}
        if self.web.probe and chosen:  # its time on this machine, measured in the background (timing.py)
            self.cost.estimator.probe_in_background(chosen)
        if chosen != current and chosen is not None:  # model.input does not fire for a value set here
            updates.update(self.defaults_for(chosen, named))
        return updates

    def model_chosen(self, values: dict) -> dict:
        """The user chose a model: its defaults (model.input, so that Load settings' values stay)."""
        named = self.form.named(values)
        return self.defaults_for(named["model"], named)

    def defaults_for(self, model: str | None, named: dict) -> dict:
        """Choosing a model sets its own defaults on every control they name (what every door fills in)."""
        own = self.picker.model_defaults(model)
        values = default_values(own, self.form.fields, self.picker.spec(model))
        note = self.note(model, values["duration"], values["fps"], named.get("loop"), named.get("interpolation"))
        return {**self.form.updates(values), self.note_box: note}

    def family_controls(self, model: str | None) -> dict:
        """Show the controls the chosen model's family uses (prompt, motion, last frame, …) with its ranges."""
        return self.form.family_updates(self.picker.spec(model))

    def frames_note(self, values: dict) -> str:
        named = self.form.named(values)
        return self.note(named["model"], named["duration"], named["fps"], named["loop"], named["interpolation"])

    def note(self, model, duration, fps, loop="none", interpolation=0) -> str:
        clip, spec = self.picker.model_defaults(model), self.picker.spec(model)
        plan = length_plan(float(duration or 1), int(fps or FPS_CHOICES[0]), clip, interpolation, loop,
                           frame_step=spec.frame_step if spec else 1, exact_frames=bool(spec and spec.exact_frames),
                           spec=spec)
        return length_note(plan, clip, spec)

    # ---- layout -------------------------------------------------------------------------------
    def build(self) -> None:
        """The tab's controls (inside `gr.Tab`); `wire` connects them."""
        models = self.picker.models()
        model = models[0].name if models else None
        spec = self.picker.spec(model) if models else None  # narrowed to the model (a Wan T2V: no control)
        start = {**self.form.start_values(), "model": model}
        start.update(default_values(self.picker.model_defaults(model), self.form.fields, spec))  # the model's own
        form = self.form

        def field(name, **layout):
            return form.build(name, start[name], spec, **layout)

        def the_rest(section: str) -> None:
            """The fields of `section` that this layout does not place itself (a field added to the table)."""
            for other in form.fields:
                if other.section == section and other.name not in form.controls and other.name not in PLACED_LATER:
                    field(other.name)

        with gr.Row():
            with gr.Column(scale=5):
                with gr.Accordion("Load settings from a video", open=False, elem_id="vg-load-box"):
                    self.settings_file = file_input("settings_file", label="A video made by this app, or its .json",
                                                    height=120)
                    self.settings_message = gr.Markdown("Drop a video made here: every control below is set to "
                                                        "the values that made it.", elem_id="vg-settings-message")
                field("image", height=300)
                field("last_image", height=200)
                self.control_box.build(field, spec)
                self.batch = BatchBox(self)  # several pictures at once: one job each
                self.batch.build()
                field("keyframe_images", height=120)
                field("keyframe_frames")
                with gr.Row(equal_height=True):
                    field("model", choices=self.picker.model_choices(models), scale=8)
                    self.refresh_button = gr.Button("Refresh", scale=1, min_width=80, elem_id="vg-refresh")
                self.demo.build(visible=not models)  # first: the one click that makes the page usable offline
                self.model_message = gr.Markdown(self.picker.empty_state(), visible=not models, elem_id="vg-empty")
                field("prompt")
                self.enhance_panel.build(spec)
                field("negative_prompt")
                field("image_strength")
                self.lora_panel.build(model, spec)
                with gr.Row():
                    field("duration")
                    field("fps", rates=[self.picker.model_defaults(info.name)["fps"] for info in models])
                self.note_box = gr.Markdown(self.note(model, start["duration"], start["fps"]),
                                            elem_id="vg-frames-note")
                self.cost.build()
                field("resolution")
                field("motion_bucket_id")
                field("num_inference_steps")
                with gr.Row(equal_height=True):
                    field("seed", scale=6)
                    self.dice = gr.Button("Random", scale=1, min_width=80, elem_id="vg-dice")
                    self.reuse = gr.Button("Reuse last", scale=1, min_width=80, elem_id="vg-reuse")
                the_rest("main")
                with gr.Accordion("Advanced", open=False):
                    for name in ("noise_aug_strength", "min_guidance_scale", "max_guidance_scale",
                                 "decode_chunk_size", "memory_plan", "output_format", "crf", "resize_mode", "loop",
                                 "interpolation", "speed", "upscale"):
                        field(name)
                    the_rest("advanced")
            with gr.Column(scale=6):
                panel = self.panel
                panel.build_buttons("Generate")  # enabled once a picture, a model and good settings are there
                panel.build_status()
                with gr.Row():
                    self.preview = gr.Image(label="Preview", interactive=False, height=220, format="jpeg",
                                            elem_id="vg-preview", buttons=[])
                    field("live_preview")
                panel.build_player("Video")
                with gr.Row(equal_height=True):
                    panel.build_download()
                    self.seed_used = gr.Textbox(label="Seed used", interactive=False, placeholder="(after a run)",
                                                elem_id="vg-seed-used")
                    # wired by extend_tab.py and upscale_panel.py: the shown video goes to their tab
                    self.continue_button = gr.Button("Continue this video", size="md", elem_id="vg-continue")
                    self.upscale_button = gr.Button("Upscale this video", size="md", elem_id="vg-upscale-result")
                panel.build_info(open=True)
                # Each tile is a still of its video; a click shows that job's video (history_tab.py)
                self.gallery = gr.Gallery(label="All outputs, newest first (click one to show it)", columns=6,
                                          fit_columns=False, height=220, object_fit="cover", allow_preview=False,
                                          elem_id="vg-gallery")
                panel.clears = {self.seed_used: "", self.preview: None}
        # The old names, for the handlers and the other tabs
        self.generate_button, self.cancel_button, self.status = panel.run_button, panel.cancel_button, panel.status
        self.video, self.download, self.info = panel.player, panel.download, panel.info

    def wire(self, demo: gr.Blocks, timer=None):
        """The tab's events; returns the Generate event (the history tab refreshes after it)."""
        form, panel = self.form, self.panel
        # The gallery is refreshed by a separate step (history_tab.py), not returned by /generate: it holds every
        # video of this run, and gradio_client downloads every file of a response, so an API call would
        # cost more with each job made before it (measured: HTTP/bare 1.09 after 5 jobs, 1.19 after 7).
        outputs = [self.video, self.info, self.seed_used, self.status, self.preview, self.download]
        # The busy frame shows on the player. Not on the status panel: the Cancel handler writes that panel,
        # and Gradio 6.31 then sometimes paints "Error" over a tracker that a cancelled event left on the same
        # component. No Gradio concurrency limit: a handler only submits its job to the board's queue (one job
        # at a time, in order, persisted in the history) and shows its place. preprocess=False: the field
        # table checks every value (one line per mistake, whatever the type), and reads the pictures itself.
        # The panel first turns Cancel on and clears the old result, then runs the job (a chain: Cancel is on
        # before the job can end; a listener registered beside it ran only when the job had ended, in Gradio
        # 6.31's page), then turns Cancel off however it ended.
        inputs = form.api_inputs()
        generate_event = panel.wire_run(
            self.generate_button, api_handler(self.generate, list(inputs), doc=api_docstring(form.fields)),
            inputs_kwargs=inputs, outputs=outputs, api_name="generate", concurrency_limit=None,
            concurrency_id="watch", show_progress="full", show_progress_on=[self.video], preprocess=False)
        self.generate_event = generate_event
        demo.unload(self.closed)
        self.batch.wire(demo)
        # Cancel stops this tab's jobs: a Generate job and the several-pictures box's
        self.cancel_event = panel.wire_cancel([generate_event, self.batch.event], api_name="cancel")

        model_inputs = {form["model"], form["fps"], form["loop"], form["interpolation"]}
        defaulted = [form[name] for name in self.defaulted] + [self.note_box]
        refreshed = [form["model"], self.model_message, self.demo.button, *defaulted]
        self.refresh_event = self.refresh_button.click(self.refresh, model_inputs, refreshed, **PRIVATE)
        # A model (or a LoRA) added while no page was open: the lists as they are now
        self.load_event = demo.load(self.refresh, model_inputs, refreshed, **PRIVATE)
        # The page's one scan of the model folders (opening the page, Refresh): the other lists that read the
        # catalog (LoRAs, enhancers, upscalers, Continue's and Sweep's models) chain after it, so that they read
        # it once it is rescanned, and do not scan again
        self.scanned = (self.load_event, self.refresh_event)
        # .change: the family's controls follow the model however it is set (picked, refreshed, loaded).
        family = list(form.family_updates(None))
        form["model"].change(self.family_controls, [form["model"]], family, **PRIVATE)
        # .input, not .change: Load settings sets the model too, and its values must stay.
        form["model"].input(self.model_chosen, model_inputs, defaulted, **PRIVATE)
        note_inputs = {form["model"], form["duration"], form["fps"], form["loop"], form["interpolation"]}
        on_latest([form[name].change for name in ("duration", "fps", "loop", "interpolation")], self.frames_note,
                  note_inputs, [self.note_box])
        loaded = self.settings_file.upload(self.settings.load_settings, [self.settings_file],
                                           self.settings.stored_outputs(self.settings_message, pictures=False),
                                           api_name="load_settings", show_progress="hidden")
        # The picture too, when the app kept a copy of it (issue 29): a step of its own, so that /load_settings'
        # answer stays what API clients read
        loaded.success(self.settings.load_picture, [self.settings_file, self.settings_message],
                       [form["image"], self.settings_message], **PRIVATE)
        self.dice.click(lambda: secrets.randbelow(MAX_RANDOM_SEED) + 1, None, [form["seed"]], **PRIVATE)
        self.reuse.click(_reuse_seed, [self.seed_used], [form["seed"]], **NOTICE)  # its warning shows on the page
        self.lora_panel.wire(self.scanned)
        self.control_box.wire()
        self.enhance_panel.wire(demo)
        self.demo_event = self.demo.wire(model_inputs, [form["model"], self.model_message, *defaulted])
        self.cost.wire(demo, after=[generate_event], timer=timer)
        # Download: on when the player holds a video (a finished job, or one chosen in the gallery); it saves the
        # player's file unless the job gave one of its own (PNG frames' zip).
        generate_event.then(download_of, [self.video, self.download], [self.download], **PRIVATE)
        self.video.change(lambda video: gr.update(interactive=bool(video)), [self.video], [self.download], **PRIVATE)
        return generate_event


def api_docstring(fields) -> str:
    """/generate's description for API clients: its inputs (the form's `fields`) and outputs."""
    lines = ["Make a video from a picture (or, for text families, a prompt); streams progress, ends with the video.",
             "", "Parameters:"]
    notes = {"image": "the picture to animate (PNG, JPEG, WebP, …); with gradio_client, handle_file(path); None for "
                      "a text family's text to video",
             "model": "an installed model's name (a folder under the models dir); empty for the only installed one",
             "resolution": 'WIDTHxHEIGHT (multiples of 8), such as 1024x576, or "match image"',
             "last_image": "families that take one: the picture the video ends on (handle_file(path)); else None",
             "loras": 'families that take LoRAs: [{"name": NAME, "strength": -2..2}] (names from models/loras); '
                      'else None',
             "control_video": "Wan VACE: the control video (handle_file(path)); else None",
             "control_type": 'Wan VACE: "as-is" (the control as it is), or depth, pose, edges or gray (made from it)',
             "control_mask": "Wan VACE: the mask, a video or one picture (handle_file(path)); else None"}
    for field in fields:
        lines.append(f"    {field.name}: {notes.get(field.name) or field.info or field.label}")
    lines += ["Returns:",
              "    video: the MP4/WebM to play (for PNG frames, an MP4 made from them)",
              "    info: model, seed, plan, parameters, elapsed_s, peak_memory, timings_s, output (path on the server)",
              "    seed_used: the seed actually used, as text",
              "    status: the status panel (HTML)",
              "    preview: the last live preview picture",
              "    download: the file to save (the video, or a zip of the PNG frames)"]
    return "\n".join(lines)


def _reuse_seed(seed_used):
    text = str(seed_used or "").strip()
    if not text.isdigit():
        gr.Warning("No seed yet: generate a video first.")
        return gr.skip()
    return int(text)


__all__ = ["GenerateTab", "api_docstring"]
