"""The page: a `gr.Blocks` of four tabs (one module each, A1111's layout), the job board and the queue.

`build_ui(generator, ...)` returns the page; the repository's `app.py` launches it. The page never loads or
touches a model and imports no torch: jobs go to the shared `Generator` through `jobs.JobBoard` (a worker
thread per job, typed messages back), and the handlers only turn those messages into page updates
(FramePack's `demo_gradio.py` pattern).

    generate_tab.py   the form (fields.py's table), /generate, /cancel, progress, player, Load settings
    history_tab.py    every job across restarts, the gallery, /rerun_settings, /rerun, /delete_job, /history
    smooth_tab.py     finish any video: upscale (upscale_panel.py: /upscale), smooth, loop (/smooth_preview, /smooth)
    extend_tab.py     continue any video from its last frame: /extend, /cancel_extend
    sweep_tab.py      one or two settings varied over lists, a comparison grid: /sweep, /cancel_sweep
    about_tab.py      the device, the memory plan, the longest video per model
"""

from __future__ import annotations

import os
from pathlib import Path

# Before gradio is imported: no telemetry, ever (Blocks(analytics_enabled=False) covers the rest).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ..checkpoints import default_models_dir  # noqa: E402
from ..console import command  # noqa: E402
from ..demo import describe_model  # noqa: E402
from ..errors import VideoGenError  # noqa: E402
from ..timing import Estimator  # noqa: E402
from .about_tab import AboutTab  # noqa: E402
from .generate_tab import GenerateTab  # noqa: E402
from .history_tab import LIVE_EVERY_S, HistoryTab  # noqa: E402
from .jobs import JobBoard  # noqa: E402
from .panel import CSS as PANEL_CSS  # noqa: E402
from .smooth_tab import SmoothTab  # noqa: E402
from .extend_tab import ExtendTab  # noqa: E402
from .sweep_tab import SweepTab  # noqa: E402

CSS = """
/* The gallery's captions are short (the job and its seed); show them whole */
#vg-gallery .caption-label { white-space: nowrap; overflow: visible; }
""" + PANEL_CSS
# Whether the page times a short test run of a model it shows when this machine has no time for it yet
# (`timing.Estimator.probe_in_background`). $VIDEO_GEN_PROBE=0 turns it off (the test suite does, but where it
# tests the estimates themselves).
PROBE_ENV = "VIDEO_GEN_PROBE"


class WebApp:
    """The page's tabs, bound to one `Generator` and one `JobBoard`."""

    def __init__(self, generator, work_dir: str | Path, history=None, queue_size: int | None = None,
                 probe: bool | None = None):
        """`history`: the app's `history.History` (None: the generator's own, in its outputs folder). `probe`:
        time a short test run of a model when this machine has no time for it yet (None: unless
        $VIDEO_GEN_PROBE is 0)."""
        self.generator = generator
        self.board = JobBoard(generator, work_dir, history, max_waiting=queue_size)
        self.estimator = Estimator(generator)  # shared by the tabs: one test run per model serves them all
        self.probe = os.environ.get(PROBE_ENV, "1") != "0" if probe is None else probe
        self.generate_tab = GenerateTab(self)
        self.history_tab = HistoryTab(self)
        self.smooth_tab = SmoothTab(self)
        self.extend_tab = ExtendTab(self)
        self.sweep_tab = SweepTab(self)
        self.about_tab = AboutTab(self)

    def build(self) -> gr.Blocks:
        with gr.Blocks(title="Video generator", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
            gr.Markdown("## Video generator\nDrop a picture, press **Generate**, watch it work, download the "
                        "video. Everything runs on this computer.")
            with gr.Tabs() as tabs:
                with gr.Tab("Generate", id="generate-tab", elem_id="vg-generate-tab"):
                    self.generate_tab.build()
                with gr.Tab("History", id="history-tab", elem_id="vg-history-tab"):
                    self.history_tab.build()
                with gr.Tab("Finish a video (upscale, smooth, loop)", id="tools-tab", elem_id="vg-tools-tab"):
                    self.smooth_tab.build()
                with gr.Tab("Continue a video", id="extend-tab", elem_id="vg-extend-tab"):
                    self.extend_tab.build()
                with gr.Tab("Sweep", id="sweep-tab", elem_id="vg-sweep-tab"):
                    self.sweep_tab.build()
                with gr.Tab("About this machine", id="about-tab", elem_id="vg-about-tab") as about:
                    self.about_tab.build()
            # Lists that follow the history and the estimates that follow a test run (issue 29); a tick is one small
            # query when nothing changed
            self.timer = gr.Timer(LIVE_EVERY_S)
            generate_event = self.generate_tab.wire(demo, self.timer)
            self.smooth_tab.wire(demo, tabs)
            self.extend_tab.wire(demo, tabs)
            self.sweep_tab.wire(demo)
            self.history_tab.wire(demo, tabs, generate_event, self.timer)  # last: it follows the others' Cancels
            self.about_tab.wire(about)
        return demo

    def cancel_events(self) -> list:
        """The Cancel clicks of the tabs that run jobs on the board (the history is redrawn after each)."""
        return [tab.panel.cancel_event for tab in (self.generate_tab, self.extend_tab, self.sweep_tab)
                if getattr(tab.panel, "cancel_event", None) is not None]

    # ---- shortcuts for scripts and tests ------------------------------------------------------
    def model_choices(self) -> list[tuple[str, str]]:
        return self.generate_tab.picker.model_choices()

    def family_controls(self, model: str | None) -> dict[str, dict]:
        """What the chosen model's family shows: each family-dependent field's properties, by name."""
        from .fields import follows_family

        spec = self.generate_tab.picker.spec(model)
        return {field.name: field.update(spec) for field in self.generate_tab.form.fields if follows_family(field)}

    def text_controls(self, model: str | None):
        """(prompt, negative prompt, image strength, picture) properties for `model`'s family."""
        shown = self.family_controls(model)
        return shown["prompt"], shown["negative_prompt"], shown["image_strength"], shown["image"]

    def about(self, *settings) -> str:
        """The About tab's report for (model, resolution, duration, fps, decode_chunk_size)."""
        return self.about_tab.report(*settings)


def startup_lines(generator, url: str, *, where: str) -> list[str]:
    """What `app.py` prints once the page is up: its URL, the device and its memory, the models found (the demo
    labelled as one) and where outputs go. Probes the device (initialises CUDA), so only at start-up."""
    lines = [f"Video generator running at {url}  ({where}; Ctrl+C to stop)"]
    try:
        report = generator.device_report()
        lines += [f"  {line}" for line in report.lines()[:2]]
    except (RuntimeError, OSError) as error:
        lines.append(f"  device: could not be checked ({error})")
    try:
        models = generator.list_models(refresh=True)
    except (OSError, VideoGenError) as error:
        models, problem = [], str(error)
    else:
        problem = ""
    folder = Path(generator.models_dir).resolve()
    if models:
        lines.append(f"  models ({folder}): " + ", ".join(describe_model(info) for info in models))
    else:
        where = "" if default_models_dir().resolve() == folder else f" --models-dir {folder}"
        lines.append(f"  models: none in {folder}{f' ({problem})' if problem else ''}; to try the app without a "
                     f"download, press 'Install the demo model' on the page or run "
                     f"`{command('models demo' + where)}`")
    lines.append(f"  outputs: {Path(generator.outputs_dir).resolve()}")
    return lines


def build_ui(generator, *, work_dir: str | Path, queue_size: int = 20, history=None) -> gr.Blocks:
    """The page for `generator`, its Generate jobs run one at a time, at most `queue_size` waiting.

    `work_dir` holds the files made for the page (previews of PNG frames, zips), not the outputs.
    `history`: the app's `history.History`; its queued jobs are run again (`JobBoard.resume`).
    The page's `WebApp` is `demo.video_gen_web`.
    """
    web = WebApp(generator, work_dir, history, queue_size=queue_size)
    demo = web.build()
    demo.video_gen_web = web
    if history is not None:
        web.board.resume()
    if web.probe:  # the model the page opens with: its time on this machine, measured before it is asked for
        models = generator.list_models()
        if models:
            web.estimator.probe_in_background(models[0].name)
    # Gradio's own queue only holds events for a moment: Generate handlers start at once and wait in the
    # board's queue (one job at a time, persisted), so max_size here is only a bound on a burst of clicks.
    return demo.queue(max_size=max(queue_size * 2, 8), default_concurrency_limit=1)


__all__ = ["build_ui", "startup_lines", "WebApp", "CSS"]
