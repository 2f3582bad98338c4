"""The Finish tab's Upscale part: any video (an upload, the last result, or the Generate tab's result through its
"Upscale this video" button) through an installed upscaler (`finishing.upscale_video`), keeping its frame count,
frame rate and sound. It takes the engine's one-at-a-time turn, shows progress per frame with an ETA, and Cancel
stops it within a frame without saving anything. `/upscale` (video, upscaler → video, info), `/cancel_upscale`.
It follows the tab's result panel's rules (`panel.py`, issue 29): Upscale is disabled, with the reason, until
there is a video and an upscaler; Cancel only while it upscales; a new run clears the old result; an error is
said once, on the tab's status line; the upscaler list is read again when the page opens and on Refresh.
"""

from __future__ import annotations

import threading

import gradio as gr

from ..checkpoints import UPSCALER
from ..errors import Cancelled, InvalidRequest, VideoGenError
from ..events import StageEvent, StepEvent
from .components import file_path, send_shown_result, session_of, user_error
from .panel import NOTICE, PRIVATE, wire_ready
from .progress import status_box, status_cancelled

NONE_INSTALLED = ("No upscaler installed: put one in models/upscalers (`video-gen models download realesrgan-x4`), "
                  "then press Refresh.")


class UpscalePanel:
    def __init__(self, tab):
        self.tab = tab
        self.generator = tab.generator
        self._cancels: dict[str, threading.Event] = {}  # session -> its running upscale's cancel flag

    def choices(self, refresh: bool = False) -> list[tuple[str, str]]:
        """(label, name) of each installed upscaler: its architecture and scale."""
        if refresh:
            self.generator.catalog.refresh()
        return [(f"{info.name} · {info.note}", info.name) for info in self.generator.catalog.of_role(UPSCALER)]

    def upscale(self, video, upscaler, http: gr.Request = None, progress=gr.Progress()):
        """Upscale every frame of a video with an installed upscaler; its frame count, rate and sound are kept.

        Parameters:
            video: the video (handle_file(path)): MP4, WebM, MOV, GIF
            upscaler: an installed upscaler's name (the Finish tab lists them with their scale)
        Returns:
            video: the upscaled video, saved in the outputs folder as <name>_x<scale>.mp4
            info: frames, fps, size, and the `upscaled` metadata (upscaler, its SHA-256 and scale, the source's hash)
        """
        video = file_path(video)  # a gradio_client FileData
        session = session_of(http)
        self.tab._errors.pop(session, None)
        cancel = self._cancels[session] = threading.Event()
        if self.generator.busy or self.generator.waiting:
            progress(0.0, desc="waiting for the video being made")

        def on_event(event) -> None:
            if isinstance(event, StepEvent):
                eta = f" · ETA {event.eta_s:.0f} s" if event.index > 1 else ""
                progress((event.index, event.total), desc=f"upscaling · frame {event.index} of {event.total}{eta}",
                         unit="frames")
            elif isinstance(event, StageEvent):
                progress(0.0, desc=event.message)

        from ..finishing import upscale_video

        try:
            if not upscaler:
                raise InvalidRequest("upscaler", "missing: choose an upscaler (" + NONE_INSTALLED + ")")
            result = upscale_video(self.generator, video, upscaler, on_event=on_event, cancel=cancel)
        except Cancelled:
            return None, {"cancelled": True}  # the status line says so
        except VideoGenError as error:  # a bad input (one line), or a failure while running
            self.tab._errors[session] = str(error)
            raise user_error(str(error), toast=False) from None  # said once: on the tab's status line
        finally:
            if self._cancels.get(session) is cancel:
                del self._cancels[session]
        info = {"done": f"{result.frames} frames at {result.fps:g} fps, upscaled to {result.width}x{result.height}",
                "output": str(result.path), "elapsed_s": round(result.elapsed_s, 2),
                "upscaled": result.metadata["upscaled"]}
        return str(result.path), info

    def cancel(self, http: gr.Request = None) -> None:
        """Stop this tab's upscale within a frame (nothing is saved)."""
        flag = self._cancels.get(session_of(http))
        if flag is not None:
            flag.set()

    @staticmethod
    def reason(video, upscaler) -> str:
        if not upscaler:
            return NONE_INSTALLED
        if not video:
            return "Upscale needs a video: drop one above, or press \"Use the last result\"."
        return ""

    def refresh(self, rescan: bool = True):
        """The upscaler list, the folders scanned again (this list's Refresh), or not (after the Generate tab's
        scan: `listed`)."""
        choices = self.choices(refresh=rescan)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def listed(self):
        return self.refresh(rescan=False)

    # ---- layout ----------------------------------------------------------------------------------
    def build(self) -> None:
        choices = self.choices()
        gr.Markdown("**Upscale**: every frame through an upscaler model (Real-ESRGAN and the other architectures "
                    "ComfyUI loads); the frame count, frame rate and sound are kept.")
        with gr.Row(equal_height=True):
            self.upscaler = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Upscaler",
                                        info=None if choices else NONE_INSTALLED, elem_id="vg-upscaler", scale=6)
            self.refresh_button = gr.Button("Refresh", scale=1, min_width=80, elem_id="vg-upscaler-refresh")
        with gr.Row():
            self.run_button = gr.Button("Upscale", variant="primary", elem_id="vg-upscale-run", interactive=False)
            self.cancel_button = gr.Button("Cancel", variant="stop", elem_id="vg-upscale-cancel", interactive=False)
        self.reason_box = gr.Markdown("", elem_id="vg-upscale-reason")

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs | None = None) -> None:
        tab = self.tab
        panel = tab.panel
        # The tab's panel's rules: Cancel on and the old result cleared first, Cancel off at the end, the status
        # line says how it ended (an error once, there)
        start = self.run_button.click(
            lambda: (gr.update(interactive=True), status_box("<b class='vg-stage'>Starting…</b>", "busy"), None, None),
            None, [self.cancel_button, panel.status, tab.result, tab.info], **PRIVATE, trigger_mode="once")
        event = start.then(self.upscale, [tab.source, self.upscaler], [tab.result, tab.info], api_name="upscale",
                           concurrency_limit=1, concurrency_id="upscale", trigger_mode="once",
                           show_progress="full", show_progress_on=[tab.result])
        off = lambda: gr.update(interactive=False)  # noqa: E731
        event.then(off, None, [self.cancel_button], **PRIVATE)
        event.failure(off, None, [self.cancel_button], **PRIVATE)
        event.success(tab.done_status, [tab.info], [panel.status], **PRIVATE)
        event.failure(tab.failed_status, None, [panel.status], **PRIVATE)
        self.cancel_button.click(self.cancel, None, None, api_name="cancel_upscale", queue=False,
                                 show_progress="hidden").then(
            lambda: (gr.update(interactive=False), status_cancelled("Cancelled: the upscale stops within a frame "
                                                                    "and saves nothing.")),
            None, [self.cancel_button, panel.status], **PRIVATE)
        wire_ready([tab.source.change, self.upscaler.change, demo.load], [tab.source, self.upscaler], self.reason,
                   [self.run_button], self.reason_box, preprocess=False)
        generate = tab.web.generate_tab
        self.refresh_button.click(self.refresh, None, [self.upscaler], **PRIVATE)  # the folders scanned again
        for event in generate.scanned:  # the page opened, or Generate's Refresh: read after its scan
            event.then(self.listed, None, [self.upscaler], **PRIVATE)
        button = getattr(generate, "upscale_button", None)
        if button is not None and tabs is not None:
            button.click(self.from_result, [generate.info], [tab.source, tabs], **NOTICE)  # its warning shows

    # The Generate tab's shown result (its info's output) as this tab's video
    from_result = staticmethod(send_shown_result("tools-tab"))


__all__ = ["UpscalePanel"]
