"""The "Finish a video" tab: upscale any video (`upscale_panel.py`: `/upscale`), raise its frame rate by
interpolation and/or make it loop.

Smoothing is `smoothing.py`'s work; it takes the engine's one-at-a-time turn (`Generator.turn`), so it waits
while a video is made instead of taking the CPU (or GPU) that job needs. `/smooth_preview` writes into
the app's work folder and plays it; `/smooth` saves into the outputs folder (video, fps, loop -> video,
info); a preview that is exactly the asked result is copied, not made again.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import gradio as gr

from .. import video_io
from ..errors import InvalidRequest
from ..smoothing import (
    TARGET_FPS_CHOICES,
    check_video,
    copy_atomic,
    plan_dict,
    plan_smooth,
    render_smooth,
    smooth_metadata,
    source_metadata,
)
from .components import file_input, radio, user_error
from .upscale_panel import UpscalePanel
from ..request import FIELD

SMOOTH_FPS_CHOICES = [(f"{fps} fps", fps) for fps in TARGET_FPS_CHOICES] + [("keep (loop only)", 0)]


class SmoothTab:
    def __init__(self, web):
        self.web = web
        self.generator = web.generator
        self.board = web.board
        self._previews: dict[tuple, Path] = {}  # (source, size, mtime, plan) -> its preview in tools_dir()
        self.upscale = UpscalePanel(self)

    def smooth_preview(self, video, fps, loop, progress=gr.Progress()):
        """Smooth and/or loop a video into the app's work folder (not the outputs) and play it.

        Parameters:
            video: the video to smooth (MP4, WebM, MOV, GIF, …; at most 2000 frames, 2048 px a side)
            fps: target frame rate, such as 24, 30, 48 or 60 (the video's rate times 2, 3 or 4 at most); 0 keeps it
            loop: none, pingpong or crossfade
        Returns:
            video: the preview to play (in the app's temporary folder)
            info: what was done: plan, frames, fps, factor, loop
        """
        path, plan, metadata, source = self._checked(video, fps, loop)
        key = self._key(source, plan)
        target = self.tools_dir() / f"{source.stem}{plan.stem_suffix()}.{secrets.token_hex(4)}.preview.mp4"
        with self._turn(progress):
            self._render(path, plan, target, metadata, progress)
        self._previews[key] = target
        return str(target), self._info(plan, target, saved=False)

    def smooth_save(self, video, fps, loop, progress=gr.Progress()):
        """Smooth and/or loop a video and save it into the outputs folder as <name>_smooth<fps>.mp4.

        Parameters:
            video: the video to smooth (MP4, WebM, MOV, GIF, …; at most 2000 frames, 2048 px a side)
            fps: target frame rate, such as 24, 30, 48 or 60 (the video's rate times 2, 3 or 4 at most); 0 keeps it
            loop: none, pingpong or crossfade
        Returns:
            video: the saved video
            info: what was done, and "output": its path on the server
        """
        path, plan, metadata, source = self._checked(video, fps, loop)
        outputs = Path(self.generator.outputs_dir)
        preview = self._previews.get(self._key(source, plan))
        with self._turn(progress):
            target = video_io.unique_path(outputs / f"{source.stem}{plan.stem_suffix()}.mp4")
            if preview is not None and preview.is_file():  # the preview is exactly this result: no second render
                progress(0.5, desc="saving the preview")
                copy_atomic(preview, target)
            else:
                self._render(path, plan, target, metadata, progress)
            video_io.write_sidecar(target, metadata)
        return str(target), self._info(plan, target, saved=True)

    def _turn(self, progress):
        """The engine's turn: wait (saying so) while a video is made."""
        if self.generator.busy or self.generator.waiting:
            progress(0.0, desc="waiting for the video being made")
        return self.generator.turn()

    def _checked(self, video, fps, loop):
        try:
            info = check_video(video)
            plan = plan_smooth(info, fps, loop or "none")
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        source = Path(video)
        return source, plan, smooth_metadata(source_metadata(source), plan, source.name), source

    @staticmethod
    def _key(source: Path, plan) -> tuple:
        stat = source.stat()
        return str(source.resolve()), stat.st_size, stat.st_mtime_ns, plan

    def _render(self, path, plan, target, metadata, progress) -> None:
        try:
            render_smooth(path, plan, target, metadata=metadata,
                          on_progress=lambda fraction, what: progress(fraction, desc=what))
        except InvalidRequest as error:
            raise user_error(str(error)) from None

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
        records = self.board.records
        if not records:
            gr.Warning("No result yet: generate a video first, or upload one.")
            return gr.skip()
        return str(records[-1].playable)

    # ---- layout ----------------------------------------------------------------------------------
    def build(self) -> None:
        gr.Markdown("Finish any video: **upscale** it with an upscaler model, make it smoother (frames computed "
                    "between its frames, no model needed) or make it loop. Results go to the outputs folder "
                    "(smoothing's **Preview** only plays here).")
        with gr.Row():
            with gr.Column(scale=5):
                self.source = file_input("tool_video", label="Video to finish (MP4, WebM, MOV, GIF, …)", height=140)
                self.use_last = gr.Button("Use the last result", size="sm", elem_id="vg-tool-last")
                self.upscale.build()
                gr.Markdown("**Smooth / loop**")
                self.fps = gr.Dropdown(
                    SMOOTH_FPS_CHOICES, value=TARGET_FPS_CHOICES[0], allow_custom_value=True,
                    label="Target frame rate (fps)", elem_id="vg-smooth-fps",
                    info="Frames are computed between the video's own: 2×, 3× or 4× its rate at most (an 8 fps "
                         "video reaches 16, 24 or 32 fps; type any rate). The rate is rounded up to a whole "
                         "multiple, so the motion keeps its speed.")
                self.loop = radio(list(FIELD["loop"].page.choices), value="none", field="smooth_loop", label="Loop",
                                  info="Ping-pong appends the clip backwards; seamless crossfade blends the last "
                                       "frames into the first ones so it loops without a jump (a little shorter).")
                self.loop.field = "loop"  # the API's name for it
                with gr.Row():
                    self.preview_button = gr.Button("Preview", elem_id="vg-tool-preview")
                    self.save_button = gr.Button("Save", variant="primary", elem_id="vg-tool-save")
            with gr.Column(scale=6):
                self.result = gr.Video(label="Result", interactive=False, autoplay=True, loop=True,
                                       elem_id="vg-tool-player", buttons=["download"])
                self.info = gr.JSON(label="What was done", elem_id="vg-tool-info", open=True)

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs | None = None) -> None:
        self.upscale.wire(demo, tabs)
        inputs = [self.source, self.fps, self.loop]
        # One smoothing at a time (concurrency "smooth"), and each waits for the engine's turn.
        for button, handler, api_name in ((self.preview_button, self.smooth_preview, "smooth_preview"),
                                          (self.save_button, self.smooth_save, "smooth")):
            button.click(handler, inputs, [self.result, self.info], api_name=api_name, concurrency_limit=1,
                         concurrency_id="smooth", trigger_mode="once", show_progress="full")
        self.use_last.click(self.last_result, None, [self.source], queue=False, api_visibility="private",
                            show_progress="hidden")


__all__ = ["SmoothTab", "SMOOTH_FPS_CHOICES"]
