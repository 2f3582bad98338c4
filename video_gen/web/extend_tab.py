"""The "Continue a video" tab: any video (an upload, the Generate tab's result through its "Continue this video"
button, or a history entry shown there) continues from its last frame (`extend.py`): one file with the source's
frames and then the continuation, at the source's size and rate. `/extend` (video, duration, seed, model →
video, info, status); the job runs on the job board like any other (queue, history, cancel). Its result panel
is the page's one (`panel.ResultPanel`), and the line under its inputs says what the continuation will cost.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from ..errors import InvalidRequest, VideoGenError, first_line
from ..extend import plan_extension, prepare_extension, read_source
from ..timing import duration_text
from .components import file_input, file_path, send_shown_result, session_of, user_error, whole_number
from .fields import DURATION_RANGE  # the Generate tab's length range
from .jobs import CANCELLED, DONE, JobEnded
from .panel import NOTICE, PRIVATE, ResultPanel, on_latest
from .progress import UPDATE_EVERY_S, ProgressView, status_cancelled, status_done, status_error

FROM_THE_VIDEO = ""  # the model choice that means: the one that made the video (else the only installed one)
SOURCES_KEPT = 4  # decoded sources kept for the cost line (each is read again only when it changes)


class ExtendTab:
    def __init__(self, web):
        self.web = web
        self.generator = web.generator
        self.board = web.board
        self.panel = ResultPanel(web, "extend", verb="continue", idle="No continuation yet: the result shows here.",
                                 ids={"status": "vg-extend-status", "player": "vg-extend-player"})
        self._sources: dict[tuple, object] = {}

    def extend(self, video, duration=None, seed=None, model=None, http: gr.Request = None):
        """Continue a video from its last frame; the result is the video followed by its continuation.

        Parameters:
            video: the video to continue (handle_file(path)): MP4, WebM, MOV, GIF
            duration: seconds to add (1-10, default 2), at the video's own frame rate
            seed: -1 draws one
            model: an installed model that takes a picture; empty: the one that made the video (its settings
                too), else the only installed one
        Returns:
            video: the video with its continuation
            info: model, seed, frames, the source (path, SHA-256, its job) and notes (such as the size fitting)
            status: the status panel (HTML)
        """
        session = session_of(http)
        skip = gr.skip()
        try:
            job = self.board.submit(prepare_extension(self.generator, file_path(video),
                                                      **self.arguments(duration, seed, model)), session)
        except InvalidRequest as error:
            yield skip, skip, status_error(str(error), "continue")
            raise user_error(str(error), toast=False) from None  # said once: in the status line
        for note in job.notes:
            gr.Warning(note)
        view, ended = ProgressView(segments=job.job.length.segments,
                                   estimate=self.web.generate_tab.cost.job_estimate(job.job)), None
        try:
            for batch in job.batches(every_s=UPDATE_EVERY_S):
                for message in batch:
                    if isinstance(message, JobEnded):
                        ended = message
                    elif message.kind != "preview":
                        view.update(message)
                if ended is None:
                    yield skip, skip, view.html()
        finally:
            if ended is None:
                self.board.cancel_job(job)
        if ended.outcome == DONE:
            record = ended.record
            yield str(record.playable), record.info, status_done(record)
        elif ended.outcome == CANCELLED:
            yield None, {"cancelled": True}, status_cancelled()
        else:
            yield skip, skip, status_error(ended.message, "continue")
            raise user_error(ended.message, toast=False)

    def arguments(self, duration, seed, model) -> dict:
        """The API's values as `prepare_extension`'s arguments (raises InvalidRequest naming the input)."""
        duration = 2 if duration is None else duration
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or \
                not DURATION_RANGE[0] <= duration <= DURATION_RANGE[1]:
            raise InvalidRequest("duration", f"must be from {DURATION_RANGE[0]} to {DURATION_RANGE[1]} seconds, "
                                             f"got {duration!r}")
        if model not in (None, "") and not isinstance(model, str):
            raise InvalidRequest("model", f"must be an installed model's name, got {model!r}")
        overrides = {"seed": seed if seed not in (None, "") else -1}
        if model:
            overrides["model"] = self.web.generate_tab.picker.installed_model(model).name
        return {"duration": float(duration), "overrides": overrides}

    # ---- the page's own ------------------------------------------------------------------------------
    def source(self, video):
        """The decoded source for the cost line, read once per file version."""
        path = Path(file_path(video) or "")
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._sources:
            if len(self._sources) >= SOURCES_KEPT:
                self._sources.pop(next(iter(self._sources)))
            self._sources[key] = read_source(path)
        return self._sources[key]

    def cost(self, video, duration, model) -> str:
        """What the continuation will cost, or what is wrong with the inputs (issue 29: Continue showed nothing,
        and +1 s cost two segments)."""
        if not video:
            return ""
        try:
            arguments = self.arguments(duration, -1, model or None)
            source = self.source(video)
            job = plan_extension(self.generator, source.path, source=source, **arguments)
            estimate = self.web.estimator.estimate(job)
        except InvalidRequest as error:
            return f"⚠ **{html.escape(str(error))}**"
        except (VideoGenError, OSError, ValueError) as error:
            return f"Time: not available ({html.escape(first_line(error))})"
        length = job.length
        work = (f"{length.frames} frames made from the video's last frame "
                f"({length.segments} generation{'s' if length.segments > 1 else ''} of {job.model.name})")
        if not estimate.known:
            if self.web.probe:
                self.web.estimator.probe_in_background(job.model.name)
            return f"{work}. Time: not known yet on this machine."
        return f"{work}. **Takes {duration_text(estimate.total_s)}** ({estimate.basis_text()})."

    def reason(self, video, model, cost: str = "") -> str:
        if not any(self.takes_picture(info) for info in self.web.generate_tab.picker.models()):
            return "Continue needs a model that takes a picture: install one (or the demo models) first."
        if not video:
            return "Continue needs a video: drop one above, or press \"Continue this video\" on the Generate tab."
        if cost.startswith("⚠"):
            return "Continue needs a video and settings it can take: see the line above."
        return ""

    def state(self, video, duration, model):
        """The cost line, and the run button with the reason it is disabled (an error in the line is one)."""
        cost = self.cost(video, duration, model)
        reason = self.reason(video, model, cost)
        return cost, gr.update(interactive=not reason), reason

    @staticmethod
    def takes_picture(info) -> bool:
        from ..families import spec_for

        return spec_for(info.family).takes_image

    def model_choices(self, refresh: bool = False):
        """The model list: the video's own model, or an installed model that takes a picture."""
        models = self.web.generate_tab.picker.models(refresh=refresh)
        return [("the one that made the video (else the only one installed)", FROM_THE_VIDEO)] + [
            (label, name) for label, name in self.web.generate_tab.picker.model_choices(models)
            if self.takes_picture(next(info for info in models if info.name == name))]

    def refresh(self, current=None):
        choices = self.model_choices()
        values = [value for _, value in choices]
        return gr.update(choices=choices, value=current if current in values else FROM_THE_VIDEO)

    # The Generate tab's shown result (its info's output) as this tab's video
    from_result = staticmethod(send_shown_result("extend-tab"))

    # ---- layout ----------------------------------------------------------------------------------
    def build(self) -> None:
        gr.Markdown("Continue any video from its last frame: the result is the video, then the new part, "
                    "colour-matched and at the video's size and frame rate. A video made here keeps its settings; "
                    "any other gets the model's defaults.")
        panel = self.panel
        with gr.Row():
            with gr.Column(scale=5):
                self.source_file = file_input("extend_video", label="Video to continue (MP4, WebM, MOV, GIF)",
                                              height=140)
                with gr.Row():
                    self.duration = whole_number(field="duration", value=2, label="Seconds to add",
                                                 minimum=DURATION_RANGE[0], maximum=DURATION_RANGE[1],
                                                 elem_id="vg-extend-duration")
                    self.seed = whole_number(field="seed", value=-1, label="Seed (-1: random)",
                                             elem_id="vg-extend-seed")
                # allow_custom_value: an API client's unknown name gets our one line, not Gradio's choices error
                self.model = gr.Dropdown(self.model_choices(), value=FROM_THE_VIDEO, label="Model",
                                         allow_custom_value=True, elem_id="vg-extend-model")
                self.cost_box = gr.Markdown("", elem_id="vg-extend-cost")
                panel.build_buttons("Continue")
            with gr.Column(scale=6):
                panel.build_status()
                panel.build_player("Continued video")
                panel.build_download()
                panel.build_info(open=False)
        self.run_button, self.cancel_button, self.status = panel.run_button, panel.cancel_button, panel.status
        self.result, self.info = panel.player, panel.info

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs) -> None:
        panel = self.panel
        event = panel.wire_run(self.run_button, self.extend, [self.source_file, self.duration, self.seed, self.model],
                               [self.result, self.info, self.status], api_name="extend", concurrency_limit=None,
                               concurrency_id="watch", show_progress="full", show_progress_on=[self.result])
        event.then(lambda video: gr.update(value=video, interactive=bool(video)), [self.result], [panel.download],
                   **PRIVATE)
        panel.wire_cancel([event], api_name="cancel_extend", handler=self.cancel)
        cost_inputs = [self.source_file, self.duration, self.model]
        state = [self.cost_box, panel.run_button, panel.reason]
        on_latest([self.source_file.change, self.duration.change, self.model.change, demo.load], self.state,
                  cost_inputs, state, preprocess=False)
        generate = self.web.generate_tab
        for event in generate.scanned:  # the catalog as it is now (issue 29): read after Generate's scan
            event.then(self.refresh, [self.model], [self.model], **PRIVATE)
        generate.demo_event.then(self.refresh, [self.model], [self.model], **PRIVATE)
        generate.continue_button.click(self.from_result, [generate.info], [self.source_file, tabs], **NOTICE)

    def cancel(self, http: gr.Request) -> str:
        return self.panel.cancel(http)


__all__ = ["ExtendTab"]
