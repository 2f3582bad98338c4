"""The "Finish a video" tab: upscale any video (`upscale_panel.py`: `/upscale`), raise its frame rate by
interpolation and/or make it loop.

Smoothing is `smoothing.py`'s work; it takes the engine's one-at-a-time turn (`Generator.turn`), so it waits
while a video is made instead of taking the CPU (or GPU) that job needs. `/smooth_preview` writes into
the app's work folder and plays it; `/smooth` saves into the outputs folder (video, fps, loop -> video,
info); a preview that is exactly the asked result is copied, not made again. Its result panel is the page's one
(`panel.ResultPanel`): Preview and Save are disabled until there is a video, the rate list offers only the
rates this video can reach (2-4x its own: issue 29 offered 24-60 for an 8 fps video and refused 60), Cancel stops
the running smoothing at its next frame, and an error is said once, on the status line.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import gradio as gr

import threading

from .. import video_io
from ..errors import Cancelled, InvalidRequest
from ..smoothing import (
    TARGET_FPS_CHOICES,
    check_video,
    copy_atomic,
    plan_dict,
    plan_smooth,
    reachable_rates,
    render_smooth,
    smooth_metadata,
    source_metadata,
)
from .components import file_input, file_path, radio, session_of, user_error
from .panel import NOTICE, PRIVATE, ResultPanel
from .progress import status_box, status_cancelled, status_error
from .upscale_panel import UpscalePanel
from ..request import FIELD

KEEP = ("keep (loop only)", 0)
# Before a video is chosen (and an API client's default: 24 fps)
SMOOTH_FPS_CHOICES = [(f"{fps} fps", fps) for fps in TARGET_FPS_CHOICES] + [KEEP]


class SmoothTab:
    def __init__(self, web):
        self.web = web
        self.generator = web.generator
        self.board = web.board
        self._previews: dict[tuple, Path] = {}  # (source, size, mtime, plan) -> its preview in tools_dir()
        self.panel = ResultPanel(web, "smooth", verb="finish", idle="Nothing finished yet: the result shows here.",
                                 ids={"run": "vg-tool-save", "player": "vg-tool-player", "info": "vg-tool-info",
                                      "status": "vg-tool-status", "cancel": "vg-tool-cancel"})
        self._stops: dict[str, threading.Event] = {}  # session -> its running smoothing's stop flag
        self._errors: dict[str, str] = {}  # session -> the last error (the status line says it)
        self.upscale = UpscalePanel(self)

    def smooth_preview(self, video, fps, loop, progress=gr.Progress(), http: gr.Request = None):
        """Smooth and/or loop a video into the app's work folder (not the outputs) and play it.

        Parameters:
            video: the video to smooth (MP4, WebM, MOV, GIF, …; at most 2000 frames, 2048 px a side)
            fps: target frame rate, such as 24, 30, 48 or 60 (the video's rate times 2, 3 or 4 at most); 0 keeps it
            loop: none, pingpong or crossfade
        Returns:
            video: the preview to play (in the app's temporary folder)
            info: what was done: plan, frames, fps, factor, loop
        """
        session = session_of(http)
        path, plan, metadata, source = self._checked(video, fps, loop, session)
        key = self._key(source, plan)
        target = self.tools_dir() / f"{source.stem}{plan.stem_suffix()}.{secrets.token_hex(4)}.preview.mp4"
        with self._turn(progress):
            self._render(path, plan, target, metadata, progress, session)
        self._previews[key] = target
        return str(target), self._info(plan, target, saved=False)

    def smooth_save(self, video, fps, loop, progress=gr.Progress(), http: gr.Request = None):
        """Smooth and/or loop a video and save it into the outputs folder as <name>_smooth<fps>.mp4.

        Parameters:
            video: the video to smooth (MP4, WebM, MOV, GIF, …; at most 2000 frames, 2048 px a side)
            fps: target frame rate, such as 24, 30, 48 or 60 (the video's rate times 2, 3 or 4 at most); 0 keeps it
            loop: none, pingpong or crossfade
        Returns:
            video: the saved video
            info: what was done, and "output": its path on the server
        """
        session = session_of(http)
        path, plan, metadata, source = self._checked(video, fps, loop, session)
        outputs = Path(self.generator.outputs_dir)
        preview = self._previews.get(self._key(source, plan))
        with self._turn(progress):
            target = video_io.unique_path(outputs / f"{source.stem}{plan.stem_suffix()}.mp4")
            if preview is not None and preview.is_file():  # the preview is exactly this result: no second render
                progress(0.5, desc="saving the preview")
                copy_atomic(preview, target)
            else:
                self._render(path, plan, target, metadata, progress, session)
            video_io.write_sidecar(target, metadata)
        return str(target), self._info(plan, target, saved=True)

    def _turn(self, progress):
        """The engine's turn: wait (saying so) while a video is made."""
        if self.generator.busy or self.generator.waiting:
            progress(0.0, desc="waiting for the video being made")
        return self.generator.turn()

    def _checked(self, video, fps, loop, session: str):
        self._errors.pop(session, None)
        self._stops[session] = threading.Event()
        try:
            info = check_video(video)
            plan = plan_smooth(info, fps, loop or "none")
        except InvalidRequest as error:
            raise self._failed(session, str(error)) from None
        source = Path(video)
        return source, plan, smooth_metadata(source_metadata(source), plan, source.name), source

    def _failed(self, session: str, message: str):
        """The error to raise: said once, on the status line (`failed_status`), none as a toast."""
        self._errors[session] = message
        return user_error(message, toast=False)

    @staticmethod
    def _key(source: Path, plan) -> tuple:
        stat = source.stat()
        return str(source.resolve()), stat.st_size, stat.st_mtime_ns, plan

    def _render(self, path, plan, target, metadata, progress, session: str) -> None:
        stop = self._stops.setdefault(session, threading.Event())

        def on_progress(fraction, what):
            if stop.is_set():  # Cancel: checked at every interpolated frame; nothing is written
                raise Cancelled()
            progress(fraction, desc=what)

        try:
            render_smooth(path, plan, target, metadata=metadata, on_progress=on_progress)
        except Cancelled:
            raise self._failed(session, "cancelled: nothing was saved") from None
        except InvalidRequest as error:
            raise self._failed(session, str(error)) from None

    # ---- the panel's own: the rates this video can reach, Cancel, the status line ------------------------
    def rates(self, video, current):
        """The rate list for a new video: 2-4x its own rate and "keep"; the current choice when it is one of them,
        else twice the video's rate."""
        path = file_path(video)
        if not path:
            return gr.update(choices=SMOOTH_FPS_CHOICES)
        try:
            info = check_video(path)
        except InvalidRequest:
            return gr.skip()  # Preview and Save say what is wrong with it
        choices = reachable_rates(info.fps)
        values = [value for _, value in choices]
        return gr.update(choices=choices, value=current if current in values else values[0])

    def cancel(self, http: gr.Request) -> str:
        stop = self._stops.get(session_of(http))
        if stop is None or stop.is_set():
            return self.panel.cancel(http)
        stop.set()
        return status_cancelled("Cancelled: the smoothing stops at its next frame and saves nothing.")

    def failed_status(self, http: gr.Request = None):
        message = self._errors.get(session_of(http))
        return status_error(message, "smooth") if message else gr.skip()

    @staticmethod
    def done_status(info):
        if isinstance(info, dict) and info.get("cancelled"):
            return status_cancelled("Cancelled: nothing was saved.")
        if not isinstance(info, dict) or not info.get("done"):
            return gr.skip()
        where = info.get("output") or info.get("preview") or ""
        verb = "Saved" if info.get("output") else "Preview (not saved)"
        return status_box(f"<b>Done</b>: {info['done']}<br><small>{verb}: {Path(where).name}</small>", "done")

    @staticmethod
    def _info(plan, target: Path, *, saved: bool) -> dict[str, Any]:
        info = {"done": plan.describe(), **plan_dict(plan)}
        info["output" if saved else "preview"] = str(target)
        return info

    def tools_dir(self) -> Path:
        folder = self.board.work_dir / "tools"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def last_result(self):
        records = self.board.records or self.board.past_outputs(1)  # this run's, else the history's newest
        if not records:
            gr.Warning("No result yet: generate a video first, or upload one.")
            return gr.skip()
        return str(self.board.playable_record(records[-1] if self.board.records else records[0]).playable)

    # ---- layout ----------------------------------------------------------------------------------
    def build(self) -> None:
        gr.Markdown("Finish any video: **upscale** it with an upscaler model, make it smoother (frames computed "
                    "between its frames, no model needed) or make it loop. Results go to the outputs folder "
                    "(smoothing's **Preview** only plays here).")
        panel = self.panel
        with gr.Row():
            with gr.Column(scale=5):
                self.source = file_input("tool_video", label="Video to finish (MP4, WebM, MOV, GIF, …)", height=140)
                self.use_last = gr.Button("Use the last result", size="sm", elem_id="vg-tool-last")
                self.upscale.build()
                gr.Markdown("**Smooth / loop**")
                self.fps = gr.Dropdown(
                    SMOOTH_FPS_CHOICES, value=TARGET_FPS_CHOICES[0], allow_custom_value=True,
                    label="Target frame rate (fps)", elem_id="vg-smooth-fps",
                    info="Frames are computed between the video's own: 2×, 3× or 4× its rate, which the list "
                         "offers once a video is chosen (an 8 fps video reaches 16, 24 or 32 fps). The rate is "
                         "rounded up to a whole multiple, so the motion keeps its speed.")
                self.loop = radio(list(FIELD["loop"].page.choices), value="none", field="smooth_loop", label="Loop",
                                  info="Ping-pong appends the clip backwards; seamless crossfade blends the last "
                                       "frames into the first ones so it loops without a jump (a little shorter).")
                self.loop.field = "loop"  # the API's name for it
                panel.build_buttons("Save", more={"Preview": "vg-tool-preview"})
            with gr.Column(scale=6):
                panel.build_status()
                panel.build_player("Result")
                panel.build_info("What was done", open=True)
        self.preview_button, self.save_button = panel.more_buttons[0], panel.run_button
        self.result, self.info = panel.player, panel.info

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs | None = None) -> None:
        panel = self.panel
        self.upscale.wire(demo, tabs)
        inputs = [self.source, self.fps, self.loop]
        # One smoothing at a time (concurrency "smooth"), and each waits for the engine's turn.
        events = []
        for button, handler, api_name in ((self.preview_button, self.smooth_preview, "smooth_preview"),
                                          (self.save_button, self.smooth_save, "smooth")):
            event = panel.wire_run(button, handler, inputs, [self.result, self.info], api_name=api_name,
                                   concurrency_limit=1, concurrency_id="smooth", show_progress="full")
            event.success(self.done_status, [self.info], [panel.status], **PRIVATE)
            event.failure(self.failed_status, None, [panel.status], **PRIVATE)
            events.append(event)
        panel.wire_cancel(events, api_name="cancel_smooth", handler=self.cancel)
        panel.wire_ready([self.source.change, demo.load], [self.source],
                         lambda video: "" if video else "Drop a video above, or press \"Use the last result\".",
                         preprocess=False)
        self.source.change(self.rates, [self.source, self.fps], [self.fps], **PRIVATE, preprocess=False)
        self.use_last.click(self.last_result, None, [self.source], **NOTICE)  # its warning shows on the page


__all__ = ["SmoothTab", "SMOOTH_FPS_CHOICES"]
