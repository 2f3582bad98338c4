"""What a first-time user sees on the Generate tab before and around a job (issue 18):

- `CostLine`: under the length, how long the job should take on this machine before Generate is pressed
  (`timing.Estimator`: the history's measured times for this model, size and plan, else a rough per-device
  figure), the memory plan, and on a CPU a warning with one click to the fast settings (the form itself starts
  with the model's own defaults on every machine, the same as every other door);
- `ButtonStates`: Generate enabled only when a picture (for families that need one) and a model are there, with
  the reason shown while it is not; Cancel only while a job runs; Download only when there is a file;
- `DemoButton`: on the empty page, installs the demo model (`demo.py`) and selects it;

Imports no torch (the demo is built through `demo.install_demo`, which imports it when pressed).
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from ..errors import InvalidRequest, VideoGenError, first_line
from ..families.spec import REQUIRED
from ..request import GenerationRequest
from ..timing import Estimator, duration_text
from ..planner import frames_for_seconds
from .fields import FPS_CHOICES, MATCH_IMAGE, match_image_size, parse_resolution, picture_size

# On a CPU a job estimated longer than this gets the warning and the fast-settings button.
SLOW_ON_CPU_S = 60.0
FAST_RESOLUTION = (512, 512)  # the "512×512 and 10 steps"
FAST_STEPS = 10
# The Generate form's fields the estimate depends on.
COST_FIELDS = ("model", "duration", "fps", "resolution", "num_inference_steps", "loop", "interpolation",
               "memory_plan", "decode_chunk_size", "image")


def fast_values(resolution: str | None, steps: int | None, spec) -> dict[str, Any]:
    """The fast settings: at most 512×512 and the fewer of `steps` and 10 (or the family's fewest)."""
    size = parse_resolution(resolution) if resolution and resolution != MATCH_IMAGE else None
    fast: dict[str, Any] = {}
    if size is None or size[0] * size[1] > FAST_RESOLUTION[0] * FAST_RESOLUTION[1]:
        fast["resolution"] = "{}x{}".format(*FAST_RESOLUTION)
    fewest = max(FAST_STEPS, spec.steps_range[0]) if spec is not None else FAST_STEPS
    if steps is None or int(steps) > fewest:
        fast["num_inference_steps"] = fewest
    return fast


class CostLine:
    """The estimate line under the length and its fast-settings button, for the Generate tab `tab`."""

    def __init__(self, tab):
        self.tab = tab
        self.generator = tab.generator
        self.estimator = Estimator(tab.generator)

    def build(self) -> None:
        self.box = gr.Markdown("", elem_id="vg-cost")
        self.fast_button = gr.Button("Use fast settings", size="sm", visible=False, elem_id="vg-fast")

    def request(self, named: dict[str, Any]) -> GenerationRequest:
        """The form's job without its picture (a picture sets only the size, for "match image")."""
        model = named.get("model") or None
        size = parse_resolution(named.get("resolution"))
        if size is None:
            own = self.tab.picker.model_defaults(model)
            picture = named.get("image")
            path = picture.get("path") if isinstance(picture, dict) else picture
            size = (match_image_size(*picture_size(path), own["width"] * own["height"]) if path
                    else (own["width"], own["height"]))
        fps = int(named.get("fps") or FPS_CHOICES[0])
        spec = self.tab.picker.spec(model)
        frames = frames_for_seconds(float(named.get("duration") or 1), fps, spec.frame_step if spec else 1,
                                    bool(spec and spec.exact_frames))
        return GenerationRequest(model=model, num_frames=frames, fps=fps,
                                 width=size[0], height=size[1],
                                 num_inference_steps=int(named["num_inference_steps"])
                                 if named.get("num_inference_steps") else None,
                                 loop=named.get("loop") or "none", interpolation=int(named.get("interpolation") or 0),
                                 memory_plan=named.get("memory_plan") or "auto",
                                 decode_chunk_size=int(named["decode_chunk_size"])
                                 if named.get("decode_chunk_size") else None)

    def estimate(self, named: dict[str, Any]):
        """(TimeEstimate, MemoryPlan) of the form's job now."""
        job = self.generator.plan_job(self.request(named))
        plan = self.generator.memory_plan(job)
        return self.estimator.estimate(job, memory_plan=plan.label()), plan

    def job_estimate(self, job):
        """The time estimate of a prepared job (for the whole job's ETA), or None when it cannot be made."""
        try:
            return self.estimator.estimate(job)
        except (VideoGenError, ValueError, OSError):
            return None

    def text(self, named: dict[str, Any]) -> tuple[str, bool]:
        """The line's Markdown and whether the fast-settings button shows."""
        if not named.get("model") or all(info.name != named["model"] for info in self.tab.picker.models()):
            return "", False
        try:
            estimate, plan = self.estimate(named)
        except InvalidRequest:  # a value the form refuses: Generate says so, in the status line, once
            return "", False
        except (VideoGenError, ValueError, OSError) as error:
            return f"Time and memory: not available ({html.escape(first_line(error))})", False
        on_cpu = estimate.device.split(":")[0] == "cpu"
        where = "this CPU" if on_cpu else "this GPU" if estimate.device.startswith("cuda") else estimate.device
        line = (f"**Takes {duration_text(estimate.total_s)} on {where}** ({estimate.basis_text()}). "
                f"Memory: {html.escape(plan.label())}.")
        if not on_cpu or estimate.total_s <= SLOW_ON_CPU_S:
            return line, False
        spec = self.tab.picker.spec(named.get("model"))
        fast = fast_values(named.get("resolution"), named.get("num_inference_steps"), spec)
        if not fast:
            return line, False
        try:
            quick, _ = self.estimate({**named, **fast})
        except (VideoGenError, ValueError, OSError):
            return line, False
        settings = " and ".join(filter(None, [
            fast.get("resolution", "").replace("x", "×"),
            f"{fast['num_inference_steps']} steps" if "num_inference_steps" in fast else ""]))
        verb = "take" if " and " in settings else "takes"
        return (f"⚠ **{duration_text(estimate.total_s).capitalize()} on this CPU**; {settings} {verb} "
                f"{duration_text(quick.total_s)} ({estimate.basis_text()}). Memory: {html.escape(plan.label())}.",
                True)

    def update(self, values: dict) -> dict:
        text, slow = self.text(self.tab.form.named(values))
        return {self.box: text, self.fast_button: gr.update(visible=slow)}

    def small_on_cpu(self, values: dict) -> dict:
        """On a CPU-only machine the page opens with the fast settings (the model's own when smaller)."""
        named = self.tab.form.named(values)
        if self.generator.device.split(":")[0] != "cpu":
            return {}
        return self.tab.form.updates(fast_values(named.get("resolution"), named.get("num_inference_steps"),
                                                 self.tab.picker.spec(named.get("model"))))

    def use_fast(self, values: dict) -> dict:
        named = self.tab.form.named(values)
        fast = fast_values(named.get("resolution"), named.get("num_inference_steps"), self.tab.picker.spec(named.get("model")))
        return self.tab.form.updates(fast)

    def wire(self, demo: gr.Blocks, after=()) -> None:
        """Recompute the line whenever a field it depends on changes, after each job (`after`: events whose end
        adds a measured job to the history) and when the page opens."""
        form = self.tab.form
        # preprocess=False: a picture Gradio cannot read is reported once, by Generate, not again from here
        private = dict(queue=False, api_visibility="private", show_progress="hidden", preprocess=False)
        inputs = {form[name] for name in COST_FIELDS}
        outputs = [self.box, self.fast_button]
        for name in COST_FIELDS:
            form[name].change(self.update, inputs, outputs, **private)
        # Building the page imports no torch, so the device is known only when the page is opened
        small = [form["resolution"], form["num_inference_steps"]]
        demo.load(self.small_on_cpu, {form["model"], *small}, small, **private)
        demo.load(self.update, inputs, outputs, **private)
        for event in after:
            event.then(self.update, inputs, outputs, **private)
        self.fast_button.click(self.use_fast, {form["model"], form["resolution"], form["num_inference_steps"]},
                               [form["resolution"], form["num_inference_steps"]], **private)


class ButtonStates:
    """Generate, Cancel and Download enabled only when they can do something."""

    def __init__(self, tab):
        self.tab = tab

    def build(self) -> None:
        self.reason = gr.Markdown(self.reason_text(None, self.tab.picker.models()[0].name if self.tab.picker.models() else None),
                                  elem_id="vg-generate-reason")

    def reason_text(self, image, model) -> str:
        """Why Generate is disabled, or "" when it is enabled."""
        if not model or all(info.name != model for info in self.tab.picker.models()):
            return "Generate needs a model: install one (or the demo model) first."
        spec = self.tab.picker.spec(model)
        if not image and spec is not None and spec.image == REQUIRED:
            return "Generate needs a picture: drop, paste or browse for one."
        return ""

    def generate_state(self, image, model):
        reason = self.reason_text(image, model)
        return gr.update(interactive=not reason), reason

    def wire(self, demo: gr.Blocks, generate_event) -> None:
        tab, form = self.tab, self.tab.form
        private = dict(queue=False, api_visibility="private", show_progress="hidden")
        ready = [form["image"], form["model"]]
        for trigger in (form["image"].change, form["model"].change, demo.load):  # (a picture's payload is enough)
            trigger(self.generate_state, ready, [tab.generate_button, self.reason], **private, preprocess=False)
        # Cancel is turned on by `before_generate`; off when the job ends or is cancelled.
        cancel_off = lambda: gr.update(interactive=False)  # noqa: E731
        generate_event.then(cancel_off, None, [tab.cancel_button], **private)
        generate_event.failure(cancel_off, None, [tab.cancel_button], **private)  # .then did not run after an error
        tab.cancel_button.click(lambda: gr.update(interactive=False), None, [tab.cancel_button], **private)
        # Download: on when the player holds a video (a finished job, or one chosen in the gallery); it saves the
        # player's file unless the job gave one of its own (PNG frames' zip).
        has_video = lambda video: gr.update(interactive=bool(video))  # noqa: E731
        generate_event.then(download_of, [tab.video, tab.download], [tab.download], **private)
        tab.video.change(has_video, [tab.video], [tab.download], **private)

    def before_generate(self):
        """Generate's click: it turns Cancel on; the Generate tab chains the job's own event after it (`.then`).
        A chain, not a second listener: Gradio 6.31's page ran a listener registered after the job's event only
        when the job had ended, and one registered before it could land after a job that failed at once (both
        tried in a browser), leaving Cancel on with nothing to cancel."""
        tab = self.tab
        return tab.generate_button.click(lambda: gr.update(interactive=True), None, [tab.cancel_button], queue=False,
                                         api_visibility="private", show_progress="hidden", trigger_mode="once")


def download_of(video, download):
    """The download button after a job: the job's own file to save (a zip of PNG frames), else the video played."""
    return gr.update(value=download or video, interactive=bool(video))


class DemoButton:
    """On the empty page: install the demo model and choose it."""

    def __init__(self, tab):
        self.tab = tab

    def build(self, visible: bool) -> None:
        self.button = gr.Button("Install the demo model (a tiny model with random weights: it makes noise, not "
                                "video, but shows every step without a download)", visible=visible,
                                elem_id="vg-install-demo")

    def install(self, values: dict) -> dict:
        from ..downloads import install_demo

        try:
            path = install_demo(self.tab.generator.models_dir)
        except (OSError, VideoGenError, RuntimeError) as error:
            raise gr.Error(f"Could not install the demo model: {first_line(error)}", print_exception=False) from None
        updates = self.tab.refresh({**values, self.tab.form["model"]: None})
        chosen = path.name
        updates[self.tab.form["model"]] = gr.update(choices=self.tab.picker.model_choices(), value=chosen)
        updates.update(self.tab.defaults_for(chosen, self.tab.form.named(values)))
        updates[self.button] = gr.update(visible=False)
        return updates

    def wire(self, inputs, outputs) -> None:
        self.button.click(self.install, inputs, [*outputs, self.button], queue=False, api_visibility="private",
                          show_progress="full")


__all__ = ["CostLine", "ButtonStates", "DemoButton", "fast_values", "SLOW_ON_CPU_S"]
