"""What a first-time user sees on the Generate tab before and around a job (issues 18 and 29):

- `CostLine`: under the length, how long the job should take on this machine before Generate is pressed
  (`timing.Estimator`: the history's measured times for this model, size and plan, else a short test run of the
  model that the page starts in the background (`Estimator.probe_in_background`); until one of them exists it
  says the time is not known rather than a wrong number), the memory plan, and on a CPU a warning with one
  click to the fast settings. The same check says, as the settings are typed, what is wrong with them (a size
  the model cannot make, a length out of range) where the estimate was, and keeps Generate disabled with the
  reason under it: Generate is enabled only when a picture (for families that need one), a model and valid
  settings are there (the page's `panel.ResultPanel` does the rest: Cancel, clearing, one error line);
- `DemoButton`: on the empty page, installs the demo models (`demo.py`: the tiny SVD, and the tiny AnimateDiff
  with its LoRA) and selects the first;
- `download_of`: the download button after a job.

Imports no torch (the demos are built through `downloads`, which imports it when pressed).
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from ..errors import InvalidRequest, VideoGenError, first_line
from ..families.spec import REQUIRED
from ..request import GenerationRequest
from ..timing import duration_text
from ..planner import frames_for_seconds
from .components import file_path
from .fields import FPS_CHOICES, MATCH_IMAGE, match_image_size, parse_resolution, picture_size
from .panel import PRIVATE, on_latest

# On a CPU a job estimated longer than this gets the warning and the fast-settings button.
SLOW_ON_CPU_S = 60.0
FAST_RESOLUTION = (512, 512)  # the "512×512 and 10 steps"
FAST_STEPS = 10
# The Generate form's fields the estimate and the checks depend on.
COST_FIELDS = ("model", "duration", "fps", "resolution", "num_inference_steps", "loop", "interpolation",
               "memory_plan", "decode_chunk_size", "image")
# Checked as they are typed (their own field checks, then the request's and the family's)
TYPED_FIELDS = ("duration", "fps", "resolution", "num_inference_steps", "decode_chunk_size")


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
    """The estimate line under the length, its fast-settings button, and whether Generate can run, for the Generate
    tab `tab` (its `panel`: the run button and the reason under it)."""

    def __init__(self, tab):
        self.tab = tab
        self.generator = tab.generator
        self.estimator = tab.web.estimator  # one per page: its test runs are shared by every tab

    def build(self) -> None:
        self.box = gr.Markdown("", elem_id="vg-cost")
        self.fast_button = gr.Button("Use fast settings", size="sm", visible=False, elem_id="vg-fast")
        self.seen = gr.State(-1)  # the estimator's version the line was drawn with (a test run ends: redraw)

    def request(self, named: dict[str, Any]) -> GenerationRequest:
        """The form's job without its picture (a picture sets only the size, for "match image")."""
        model = named.get("model") or None
        size = parse_resolution(named.get("resolution"))
        if size is None:
            own = self.tab.picker.model_defaults(model)
            path = file_path(named.get("image"))
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

    def checked_job(self, named: dict[str, Any]):
        """The form's job (no picture) checked as far as it can be without one: each typed field's own range,
        the request's limits and the family's sizes and frame rule. Raises InvalidRequest naming the field."""
        spec = self.tab.picker.spec(named.get("model"))
        form = self.tab.form
        for name in TYPED_FIELDS:
            if named.get(name) is not None:
                form.field[name].check(named[name], spec)
        job = self.generator.plan_job(self.request(named))
        # The family's checks, with the picture and prompt taken as given (their absence is Generate's reason)
        job.spec.check_request(job.request.replace(image="picture" if job.spec.image == REQUIRED else None,
                                                   prompt=job.request.prompt or "prompt"))
        return job

    def estimate(self, named: dict[str, Any]):
        """(TimeEstimate, MemoryPlan) of the form's job now."""
        job = self.checked_job(named)
        plan = self.generator.memory_plan(job)
        return self.estimator.estimate(job, memory_plan=plan.label()), plan

    def job_estimate(self, job):
        """The time estimate of a prepared job (for the whole job's ETA), or None when it cannot be made or is not
        known on this machine yet."""
        try:
            estimate = self.estimator.estimate(job)
        except (VideoGenError, ValueError, OSError):
            return None
        return estimate if estimate.known else None

    def text(self, named: dict[str, Any]) -> tuple[str, bool, str]:
        """The line's Markdown, whether the fast-settings button shows, and what is wrong with the settings ("":
        nothing)."""
        model = named.get("model")
        if not model or all(info.name != model for info in self.tab.picker.models()):
            return "", False, ""
        try:
            estimate, plan = self.estimate(named)
        except InvalidRequest as error:  # said here, as it is typed; Generate stays disabled until it is fixed
            return f"⚠ **{html.escape(str(error))}**", False, str(error)
        except (VideoGenError, ValueError, OSError) as error:
            return f"Time and memory: not available ({html.escape(first_line(error))})", False, ""
        memory = f"Memory: {html.escape(plan.label())}."
        if not estimate.known:  # a number from constants alone was 5x off (issue 29): say it is not known yet
            if self.tab.web.probe and self.estimator.probe_in_background(model) or self.estimator.probing(model):
                return (f"Time: measuring this machine with a short test run of {html.escape(model)}… {memory}",
                        False, "")
            return f"Time: not known yet (no job of this model has run on this machine). {memory}", False, ""
        on_cpu = estimate.device.split(":")[0] == "cpu"
        where = "this CPU" if on_cpu else "this GPU" if estimate.device.startswith("cuda") else estimate.device
        line = f"**Takes {duration_text(estimate.total_s)} on {where}** ({estimate.basis_text()}). {memory}"
        if not on_cpu or estimate.total_s <= SLOW_ON_CPU_S:
            return line, False, ""
        spec = self.tab.picker.spec(model)
        fast = fast_values(named.get("resolution"), named.get("num_inference_steps"), spec)
        if not fast:
            return line, False, ""
        try:
            quick, _ = self.estimate({**named, **fast})
        except (VideoGenError, ValueError, OSError):
            return line, False, ""
        settings = " and ".join(filter(None, [
            fast.get("resolution", "").replace("x", "×"),
            f"{fast['num_inference_steps']} steps" if "num_inference_steps" in fast else ""]))
        verb = "take" if " and " in settings else "takes"
        return (f"⚠ **{duration_text(estimate.total_s).capitalize()} on this CPU**; {settings} {verb} "
                f"{duration_text(quick.total_s)} ({estimate.basis_text()}). {memory}", True, "")

    def reason_text(self, named: dict[str, Any], problem: str = "") -> str:
        """Why Generate is disabled, or "" when it is enabled."""
        model = named.get("model")
        if not model or all(info.name != model for info in self.tab.picker.models()):
            return "Generate needs a model: install one (or the demo model) first."
        spec = self.tab.picker.spec(model)
        if not named.get("image") and spec is not None and spec.image == REQUIRED:
            return "Generate needs a picture: drop, paste or browse for one."
        if problem:
            return "Generate needs settings the model can make: see the line under the length."
        return ""

    def update(self, values: dict) -> dict:
        named = self.tab.form.named(values)
        version = self.estimator.version
        text, slow, problem = self.text(named)
        reason = self.reason_text(named, problem)
        panel = self.tab.panel
        return {self.box: text, self.fast_button: gr.update(visible=slow), self.seen: version,
                panel.run_button: gr.update(interactive=not reason), panel.reason: reason}

    def follow(self, values: dict) -> dict:
        """The page's timer: redraw the line when a test run has ended since it was drawn."""
        if values.get(self.seen) == self.estimator.version:
            return {self.box: gr.skip()}
        return self.update(values)

    def use_fast(self, values: dict) -> dict:
        named = self.tab.form.named(values)
        fast = fast_values(named.get("resolution"), named.get("num_inference_steps"), self.tab.picker.spec(named.get("model")))
        return self.tab.form.updates(fast)

    def outputs(self) -> list:
        return [self.box, self.fast_button, self.seen, self.tab.panel.run_button, self.tab.panel.reason]

    def wire(self, demo: gr.Blocks, after=(), timer=None) -> None:
        """Recompute the line and Generate's state whenever a field they depend on changes, after each job
        (`after`: events whose end adds a measured job to the history), when the page opens, and when a test
        run ends (`timer`)."""
        form = self.tab.form
        # preprocess=False: a picture Gradio cannot read is reported once, by Generate, not again from here
        private = dict(PRIVATE, preprocess=False)
        inputs = {form[name] for name in COST_FIELDS}
        on_latest([*(form[name].change for name in COST_FIELDS), demo.load], self.update, inputs, self.outputs(),
                  preprocess=False)
        for event in after:
            event.then(self.update, inputs, self.outputs(), **private)
        if timer is not None:
            timer.tick(self.follow, {*inputs, self.seen}, self.outputs(), **private)
        self.fast_button.click(self.use_fast, {form["model"], form["resolution"], form["num_inference_steps"]},
                               [form["resolution"], form["num_inference_steps"]], **PRIVATE)


def download_of(video, download):
    """The download button after a job: the job's own file to save (a zip of PNG frames), else the video played."""
    return gr.update(value=download or video, interactive=bool(video))


class DemoButton:
    """On the empty page: install the demo models and choose the first."""

    def __init__(self, tab):
        self.tab = tab

    def build(self, visible: bool) -> None:
        self.button = gr.Button("Install the demo models (tiny models with random weights: they make noise, not "
                                "video, but show every step, the LoRA panel too, without a download)", visible=visible,
                                variant="primary", elem_id="vg-install-demo")

    def install(self, values: dict) -> dict:
        from ..downloads import install_demo, install_lora_demo

        try:
            path = install_demo(self.tab.generator.models_dir)
            install_lora_demo(self.tab.generator.models_dir)
        except (OSError, VideoGenError, RuntimeError) as error:
            raise gr.Error(f"Could not install the demo model: {first_line(error)}", print_exception=False) from None
        updates = self.tab.refresh({**values, self.tab.form["model"]: None})
        chosen = path.name
        updates[self.tab.form["model"]] = gr.update(choices=self.tab.picker.model_choices(), value=chosen)
        updates.update(self.tab.defaults_for(chosen, self.tab.form.named(values)))
        updates[self.button] = gr.update(visible=False)
        return updates

    def wire(self, inputs, outputs):
        return self.button.click(self.install, inputs, [*outputs, self.button], queue=False, api_visibility="private",
                                 show_progress="full")


__all__ = ["CostLine", "DemoButton", "download_of", "fast_values", "SLOW_ON_CPU_S"]
