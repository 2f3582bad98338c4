"""The "Continue a video" tab: any video (an upload, the Generate tab's result through its "Continue this video"
button, or a history entry shown there) continues from its last frame (`extend.py`): one file with the source's
frames and then the continuation, at the source's size and rate. `/extend` (video, duration, seed, model →
video, info, status); the job runs on the job board like any other (queue, history, cancel).
"""

from __future__ import annotations

import gradio as gr

from ..errors import InvalidRequest
from ..extend import prepare_extension
from .components import file_input, session_of, user_error, whole_number
from .fields import DURATION_RANGE  # the Generate tab's length range
from .jobs import CANCELLED, DONE, JobEnded
from .progress import UPDATE_EVERY_S, ProgressView, status_cancelled, status_done, status_error, status_idle


class ExtendTab:
    def __init__(self, web):
        self.web = web
        self.generator = web.generator
        self.board = web.board

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
        duration = 2 if duration is None else duration
        try:
            if isinstance(duration, bool) or not isinstance(duration, (int, float)) or \
                    not DURATION_RANGE[0] <= duration <= DURATION_RANGE[1]:
                raise InvalidRequest("duration", f"must be from {DURATION_RANGE[0]} to {DURATION_RANGE[1]} seconds, "
                                                 f"got {duration!r}")
            if model not in (None, "") and not isinstance(model, str):
                raise InvalidRequest("model", f"must be an installed model's name, got {model!r}")
            overrides = {"seed": seed if seed not in (None, "") else -1}
            if model:
                overrides["model"] = self.web.generate_tab.picker.installed_model(model).name
            if isinstance(video, dict):  # a gradio_client FileData
                video = video.get("path")
            job = self.board.submit(prepare_extension(self.generator, video, duration=float(duration),
                                                      overrides=overrides), session)
        except InvalidRequest as error:
            yield skip, skip, status_error(str(error))
            raise user_error(str(error)) from None
        for note in job.notes:
            gr.Warning(note)
        view, ended = ProgressView(segments=job.job.length.segments), None
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
            yield skip, skip, status_error(ended.message)
            raise user_error(ended.message)

    def cancel(self, http: gr.Request) -> str:
        self.board.cancel(session_of(http))
        return status_cancelled("Cancelled: the job stops within one step and saves nothing.")

    @staticmethod
    def from_result(info):
        """The Generate tab's shown result (its info's output) as this tab's video."""
        output = (info or {}).get("output") if isinstance(info, dict) else None
        if not output:
            gr.Warning("No video yet: generate one, or click one in the gallery.")
            return gr.skip(), gr.skip()
        return output, gr.Tabs(selected="extend-tab")

    # ---- layout ----------------------------------------------------------------------------------
    def build(self) -> None:
        gr.Markdown("Continue any video from its last frame: the result is the video, then the new part, "
                    "colour-matched and at the video's size and frame rate. A video made here keeps its settings; "
                    "any other gets the model's defaults.")
        with gr.Row():
            with gr.Column(scale=5):
                self.source = file_input("extend_video", label="Video to continue (MP4, WebM, MOV, GIF)", height=140)
                with gr.Row():
                    self.duration = whole_number(field="duration", value=2, label="Seconds to add",
                                                 minimum=DURATION_RANGE[0], maximum=DURATION_RANGE[1],
                                                 elem_id="vg-extend-duration")
                    self.seed = whole_number(field="seed", value=-1, label="Seed (-1: random)",
                                             elem_id="vg-extend-seed")
                self.model = gr.Textbox("", label="Model (empty: the one that made the video)",
                                        elem_id="vg-extend-model")
                with gr.Row():
                    self.run_button = gr.Button("Continue", variant="primary", elem_id="vg-extend-run")
                    self.cancel_button = gr.Button("Cancel", variant="stop", elem_id="vg-extend-cancel")
            with gr.Column(scale=6):
                self.status = gr.HTML(status_idle("Ready: drop a video and press Continue."),
                                      elem_id="vg-extend-status")
                self.result = gr.Video(label="Continued video", interactive=False, autoplay=True, loop=True,
                                       elem_id="vg-extend-player", buttons=["download"])
                self.info = gr.JSON(label="Info", elem_id="vg-extend-info", open=False)

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs) -> None:
        event = self.run_button.click(self.extend, [self.source, self.duration, self.seed, self.model],
                                      [self.result, self.info, self.status], api_name="extend",
                                      concurrency_limit=None, concurrency_id="watch", trigger_mode="once",
                                      show_progress="full", show_progress_on=[self.result])
        self.cancel_button.click(self.cancel, None, [self.status], api_name="cancel_extend", queue=False,
                                 cancels=[event], show_progress="hidden")
        generate = self.web.generate_tab
        continue_button = getattr(generate, "continue_button", None)
        if continue_button is not None:
            continue_button.click(self.from_result, [generate.info], [self.source, tabs], queue=False,
                                  api_visibility="private", show_progress="hidden")


__all__ = ["ExtendTab"]
