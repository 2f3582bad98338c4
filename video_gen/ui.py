"""The web page: every control, the one-at-a-time queue, streamed progress and preview, cancel, player.

`build_ui(generator, ...)` returns the `gr.Blocks`; `app.py` launches it. The page never loads or
touches a model and imports no torch: jobs go to the shared `Generator` through `ui_jobs.JobBoard`
(a worker thread per job, typed messages back), and the Generate handler only turns those messages
into page updates (FramePack's `demo_gradio.py` pattern, STYLE.md).

The Generate button's event is the API endpoint `/generate` (see `WebApp.generate` for its inputs
and outputs); the Cancel button's is `/cancel`. The "Smooth / loop a video" tab's buttons are
`/smooth_preview` and `/smooth` (video, fps, loop -> video, info; `ui_tools` does the work, in the
same one-at-a-time queue slot as Generate), and "Load settings" is `/load_settings` (a video made
here, or its .json -> every control of the Generate form).
"""

from __future__ import annotations

import html
import math
import os
import secrets
from pathlib import Path
from typing import Any

# Before gradio is imported: no telemetry, ever (Blocks(analytics_enabled=False) covers the rest).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from . import video_io  # noqa: E402
from .errors import InvalidRequest, VideoGenError, first_line  # noqa: E402
from .events import (  # noqa: E402
    DECODING,
    DENOISING,
    ENCODING_IMAGE,
    INTERPOLATING,
    LOADING_MODEL,
    STAGE_LABELS,
    WRITING,
    PreviewEvent,
    StageEvent,
    StepEvent,
)
from .models import HOW_TO_GET  # noqa: E402
from .planner import LengthPlan, plan_length  # noqa: E402
from .request import LIMITS, GenerationRequest  # noqa: E402
from .images import check_image_file  # noqa: E402
from .ui_jobs import CANCELLED, DONE, JobBoard, JobEnded, OutputRecord, Tick, Waiting  # noqa: E402
from .ui_tools import (  # noqa: E402
    TARGET_FPS_CHOICES,
    check_video,
    copy_atomic,
    plan_dict,
    plan_smooth,
    render_smooth,
    smooth_metadata,
    source_metadata,
    stored_request,
)

# ---- the controls' ranges and choices (the issue's, narrower than request.LIMITS) ---------------
DURATION_RANGE = (1, 10)  # seconds
FPS_CHOICES = (8, 12, 16, 24)
STEPS_RANGE = (10, 50)
MOTION_RANGE = (1, 255)
GUIDANCE_RANGE = (0.0, 15.0)
DECODE_CHUNK_RANGE = (1, 32)
CRF_RANGE = (0, 51)
MATCH_IMAGE = "match image"
RESOLUTIONS = [
    ("1024×576 (landscape, what SVD was trained on)", "1024x576"),
    ("576×1024 (portrait)", "576x1024"),
    ("768×768 (square)", "768x768"),
    ("512×512 (square, fastest)", "512x512"),
    ("match image (its shape, rounded to multiples of 64)", MATCH_IMAGE),
]
FORMATS = [("MP4 (H.264)", "mp4"), ("WebM (VP9)", "webm"), ("PNG frames (lossless, zipped)", "png")]
RESIZE_MODES = [("crop to fill", "crop"), ("fit with black bars", "fit")]
LOOPS = [("none", "none"), ("ping-pong (forward, then back)", "pingpong"),
         ("seamless crossfade (end flows into start)", "crossfade")]
MEMORY_PLAN_CHOICES = [("auto (fastest that fits)", "auto"), ("everything on the GPU", "none"),
                       ("model offload", "model"), ("group offload", "group"), ("sequential offload (least memory)",
                                                                              "sequential"),
                       ("model offload + fp8 weights", "model+fp8")]  # memory.MEMORY_PLANS, and one fp8 choice
INTERPOLATIONS = [("auto", 0), ("off", 1), ("2×", 2), ("3×", 3), ("4×", 4)]  # GenerationRequest.interpolation
SMOOTH_FPS_CHOICES = [(f"{fps} fps", fps) for fps in TARGET_FPS_CHOICES] + [("keep (loop only)", 0)]
MAX_RANDOM_SEED = 2**32 - 1
GALLERY_SIZE = 48  # newest outputs shown; each is a <video> element in the page
HISTORY_ROWS = 200  # newest jobs in the history table
HISTORY_HEADERS = ["job", "queued", "status", "model", "seed", "frames", "size", "output or error"]
# At most ~5 progress updates a second: a step of a real model takes longer, so each one is shown, while
# tiny fast jobs do not spend their time on page updates (see ui_jobs.WebJob.batches).
UPDATE_EVERY_S = 0.2

# What the page assumes when no model is installed yet: Stable Video Diffusion XT's own settings.
FALLBACK_DEFAULTS = {
    "num_frames": 25, "fps": 7, "width": 1024, "height": 576, "motion_bucket_id": 127, "noise_aug_strength": 0.02,
    "decode_chunk_size": 8, "num_inference_steps": 25, "min_guidance_scale": 1.0, "max_guidance_scale": 3.0,
}

# Where each stage sits on the one progress bar. The segments of a long video share SEGMENTS_SPAN
# equally, each split by SEGMENT_STAGE_SPANS (denoising is by far the longest part of a segment).
JOB_STAGE_SPANS = {LOADING_MODEL: (0.0, 0.03), INTERPOLATING: (0.90, 0.98), WRITING: (0.98, 1.0)}
SEGMENTS_SPAN = (0.03, 0.90)
SEGMENT_STAGE_SPANS = {ENCODING_IMAGE: (0.0, 0.04), DENOISING: (0.04, 0.90), DECODING: (0.90, 1.0)}

CSS = """
#vg-generate, #vg-cancel { min-height: 3em; }
"""


# ---- pure helpers (no gradio state; tested directly) -------------------------------------------
def model_defaults(generator, name: str | None) -> dict[str, Any]:
    """The request defaults of an installed model, read from its configs (no weights load)."""
    from .families import load_family

    for info in generator.list_models():
        if info.name == name:
            return load_family(info.family).defaults(info)
    return dict(FALLBACK_DEFAULTS)


def length_plan(duration_s: int, fps: int, defaults: dict[str, Any], interpolation: int = 0,
                loop: str = "none") -> LengthPlan:
    """How `duration_s` seconds at `fps` become model work: the engine's own planner, on the model's
    native clip length and rate (the same call as `Generator.plan`)."""
    return plan_length(int(duration_s) * int(fps), int(fps), native_frames=int(defaults["num_frames"]),
                       native_fps=int(defaults["fps"]), interpolation=int(interpolation or 0), loop=loop or "none")


def length_note(plan: LengthPlan, defaults: dict[str, Any]) -> str:
    """What the length and frame rate controls will give, in words, shown under them."""
    note = f"**{plan.frames} frames at {plan.fps} fps = {plan.frames / plan.fps:.1f} s.** "
    work = []
    if plan.segments > 1:
        work.append(f"this model makes at most {defaults['num_frames']} frames at a time, so the video is "
                    f"{plan.segments} chained segments ({plan.segments}× the work of one)")
    if plan.factor > 1:
        work.append(f"the model works at {plan.generation_fps} fps and the frames in between are interpolated "
                    f"{plan.factor}×")
    if not work:
        work.append(f"one generation of {plan.model_frames} frames")
    if plan.loop == "pingpong":
        work.append(f"ping-pong loop: {plan.loop_frames} frames play forward, then back")
    elif plan.loop == "crossfade":
        work.append(f"seamless loop: {plan.loop_frames - plan.frames} extra frames are made and cross-faded "
                    f"into the start")
    return note + "; ".join(work)[:1].upper() + "; ".join(work)[1:] + "."


def parse_resolution(choice: str | None) -> tuple[int, int] | None:
    """'1024x576' (or '1024×576') to (1024, 576); None for 'match image'; InvalidRequest otherwise."""
    text = (choice or "").strip().lower()
    if text in ("", MATCH_IMAGE):
        return None
    parts = text.replace("×", "x").replace("*", "x").split("x")
    if len(parts) == 2 and all(part.strip().isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    raise InvalidRequest("resolution", f"expected WIDTHxHEIGHT such as 1024x576, or {MATCH_IMAGE!r}; got {choice!r}")


def match_image_size(width: int, height: int, pixels: int) -> tuple[int, int]:
    """The picture's shape at about `pixels` pixels (the model's own size), sides multiples of 64.

    A photo's own size is rarely what the model can make (a 12-megapixel photo would not fit in any
    GPU), so "match image" keeps the aspect ratio and the model's pixel count.
    """
    scale = math.sqrt(pixels / (width * height))
    low, high = 64, int(LIMITS["width"][1])
    return (min(high, max(low, round(width * scale / 64) * 64)), min(high, max(low, round(height * scale / 64) * 64)))


def picture_size(path: str) -> tuple[int, int]:
    """The picture's displayed size (EXIF rotation applied), without decoding its pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)  # 5-8: rotated by 90 degrees
    except (OSError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest("image", f"not a picture this app can read (PNG, JPEG, WebP, …): {Path(path).name}"
                             ) from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def seed_value(seed: Any) -> int:
    if seed is None or seed == "":
        return -1
    try:
        number = float(seed)
    except (TypeError, ValueError):
        raise InvalidRequest("seed", f"must be a whole number (-1 for random), got {seed!r}") from None
    if not number.is_integer():
        raise InvalidRequest("seed", f"must be a whole number (-1 for random), got {seed!r}")
    return int(number)


# ---- progress panel ------------------------------------------------------------------------------
def _box(body: str, tone: str = "neutral") -> str:
    colours = {
        "neutral": ("var(--block-border-color)", "transparent"),
        "busy": ("var(--color-accent)", "transparent"),
        "done": ("#16a34a", "rgba(22,163,74,0.08)"),
        "cancelled": ("#ca8a04", "rgba(202,138,4,0.08)"),
        "error": ("#dc2626", "rgba(220,38,38,0.08)"),
    }
    border, background = colours[tone]
    return (f'<div class="vg-status vg-{tone}" style="border:1px solid {border};background:{background};'
            f'border-radius:8px;padding:10px 12px;min-height:3.2em">{body}</div>')


def status_idle(text: str = "Ready: drop a picture and press Generate.") -> str:
    return _box(html.escape(text))


def status_error(message: str) -> str:
    return _box(f"<b>Could not generate:</b> {html.escape(message)}", "error")


def status_cancelled(text: str = "Cancelled. Nothing was saved; ready for the next job.") -> str:
    return _box(html.escape(text), "cancelled")


def status_done(record: OutputRecord) -> str:
    info = record.info
    text = (f"<b>Done</b> in {info['elapsed_s']:.1f} s · seed {record.seed} · {info['frames']} frames at "
            f"{info['fps']} fps · {info['resolution']}<br><small>{html.escape(str(record.path))}</small>")
    for note in info.get("notes", []):  # what was done to the picture (first frame of an animation, …)
        text += f"<br><small>Note: {html.escape(note)}</small>"
    return _box(text, "done")


class ProgressView:
    """Renders the job's latest event as a bar, the stage, the elapsed time and the ETA."""

    def __init__(self, segments: int = 1) -> None:
        self.stage: str | None = None
        self.message = "starting"
        self.index = 0
        self.total = 0
        self.segment, self.segments = 0, segments  # 0 until the first segment starts
        self.elapsed_s: float | None = None
        self.eta_s: float | None = None
        self.ahead: int | None = None  # jobs before this one while it waits its turn

    def update(self, message) -> None:
        if isinstance(message, Waiting):
            self.ahead = message.ahead
        elif isinstance(message, StageEvent):
            if message.stage == ENCODING_IMAGE:  # each segment starts by encoding its first picture
                self.segment = min(self.segment + 1, self.segments)
            self.stage, self.message, self.index, self.total, self.eta_s = message.stage, message.message, 0, 0, None
        elif isinstance(message, StepEvent):
            if message.stage != self.stage:
                self.stage, self.message = message.stage, STAGE_LABELS.get(message.stage, message.stage)
            if message.stage in SEGMENT_STAGE_SPANS:
                self.segment, self.segments = message.segment, message.segments
            self.index, self.total = message.index, message.total
            self.elapsed_s, self.eta_s = message.elapsed_s, message.eta_s
        elif isinstance(message, Tick) and message.elapsed_s is not None:
            self.elapsed_s = message.elapsed_s

    @property
    def fraction(self) -> float:
        if self.stage is None:
            return 0.0
        within = self.index / self.total if self.total else 0.0
        if self.stage in SEGMENT_STAGE_SPANS:
            start, end = SEGMENT_STAGE_SPANS[self.stage]
            done = (max(self.segment, 1) - 1 + start + (end - start) * within) / max(self.segments, 1)
            return SEGMENTS_SPAN[0] + (SEGMENTS_SPAN[1] - SEGMENTS_SPAN[0]) * done
        start, end = JOB_STAGE_SPANS.get(self.stage, (0.0, 1.0))
        return start + (end - start) * within

    def html(self) -> str:
        segment = f" · segment {self.segment} of {self.segments}" if self.segments > 1 and self.segment else ""
        if self.stage is None and self.ahead:
            headline = f"Waiting for its turn: {self.ahead} job{'s' if self.ahead > 1 else ''} ahead"
        elif self.stage is None:
            headline = "Starting… (waiting for the engine)"
        elif self.stage == DENOISING and self.total:
            headline = f"Denoising{segment} · step {self.index} of {self.total}"
        elif self.stage == DECODING and self.total:
            headline = f"Decoding frames{segment} · chunk {self.index} of {self.total}"
        elif self.stage == INTERPOLATING and self.total:
            headline = f"Interpolating frames · {self.index} of {self.total}"
        else:
            headline = self.message[:1].upper() + self.message[1:]
        times = []
        if self.elapsed_s is not None:
            times.append(f"{_seconds(self.elapsed_s)} elapsed")
        # From the second step on: the engine's first estimate of a stage has no step time to go by.
        if self.eta_s is not None and self.total and 1 < self.index < self.total:
            times.append(f"ETA {_seconds(self.eta_s)} ({STAGE_LABELS.get(self.stage, self.stage)})")
        percent = round(100 * self.fraction)
        bar = (f'<div style="height:10px;border-radius:5px;background:var(--neutral-200);margin:6px 0">'
               f'<div class="vg-bar" style="height:10px;border-radius:5px;width:{percent}%;'
               f'background:var(--color-accent);transition:width .2s"></div></div>')
        body = (f'<b class="vg-stage">{html.escape(headline)}</b>{bar}'
                f'<small class="vg-times">{" · ".join(times) or "&nbsp;"}</small>')
        return _box(body, "busy")


def _seconds(value: float) -> str:
    value = max(0.0, value)
    return f"{value:.1f} s" if value < 60 else f"{int(value // 60)} min {int(value % 60):02d} s"


# ---- components with one-line errors that name the control --------------------------------------
def user_error(message: str) -> gr.Error:
    """A one-line message for the page and for API clients (gradio_client raises it as AppError).

    Gradio renders the message as HTML, so <, > and & are escaped; quotes are left as they are.
    """
    return gr.Error(html.escape(message, quote=False), print_exception=False)


class PictureInput(gr.Image):
    """gr.Image whose unreadable uploads come back as one readable line, not a server error."""

    is_template = True  # rendered by gr.Image's frontend

    def preprocess(self, payload):
        path = getattr(payload, "path", None)
        if path and not str(getattr(payload, "url", "") or "").startswith("data:"):
            try:  # before Gradio's Image.open: sizes and bombs get our message, not Pillow's warning
                check_image_file(path)
            except InvalidRequest as error:
                name = getattr(payload, "orig_name", None) or Path(path).name
                raise user_error(str(error).replace(str(path), name)) from None
        try:
            return super().preprocess(payload)
        except (OSError, ValueError, Image.DecompressionBombError, UnidentifiedImageError):
            name = getattr(payload, "orig_name", None) or "the upload"
            raise user_error(f"image: not a picture this app can read (PNG, JPEG, WebP, …): {name}") from None


class NamedSlider(gr.Slider):
    """gr.Slider whose out-of-range values are refused with the control's name and range."""

    is_template = True
    field = "value"  # the GenerationRequest field (or page control) named in errors; set by `slider()`

    def preprocess(self, payload):
        if payload is None or isinstance(payload, bool) or not isinstance(payload, (int, float)):
            raise user_error(f"{self.field}: must be a number from {_num(self.minimum)} to {_num(self.maximum)}, "
                             f"got {payload!r}")
        if not self.minimum <= payload <= self.maximum:
            raise user_error(f"{self.field}: must be from {_num(self.minimum)} to {_num(self.maximum)}, "
                             f"got {_num(payload)}")
        return super().preprocess(payload)


class SeedNumber(gr.Number):
    """gr.Number for the seed whose non-numbers (from API clients) are refused in one line, not a server error."""

    is_template = True

    def preprocess(self, payload):
        if payload is not None and (isinstance(payload, bool) or not isinstance(payload, (int, float))):
            raise user_error(f"seed: must be a whole number (-1 for random), got {payload!r}")
        return super().preprocess(payload)


class NamedRadio(gr.Radio):
    """gr.Radio whose values outside its choices are refused with the control's name and the choices."""

    is_template = True
    field = "value"

    def preprocess(self, payload):
        allowed = [value for _, value in self.choices]
        if payload not in allowed:
            raise user_error(f"{self.field}: must be one of {', '.join(map(str, allowed))}, got {payload!r}")
        return super().preprocess(payload)


def radio(choices, *, field: str, **kwargs) -> NamedRadio:
    """A NamedRadio for `field`, its elem_id "vg-<field>" (the tests find controls by it)."""
    control = NamedRadio(choices, elem_id=_elem_id(field), **kwargs)
    control.field = field  # after construction: Gradio builds a component's config from its __init__ signature
    return control


def slider(minimum: float, maximum: float, *, field: str, **kwargs) -> NamedSlider:
    """A NamedSlider for `field`, its elem_id "vg-<field>"."""
    control = NamedSlider(minimum, maximum, elem_id=_elem_id(field), **kwargs)
    control.field = field
    return control


def _elem_id(field: str) -> str:
    return "vg-" + field.replace("_", "-")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ---- the page ------------------------------------------------------------------------------------
class WebApp:
    """The page's handlers, bound to one `Generator` and one `JobBoard`."""

    def __init__(self, generator, work_dir: str | Path, history=None, queue_size: int | None = None):
        """`history`: the app's `history.History` (None: this page's jobs are remembered in memory only)."""
        self.generator = generator
        self.board = JobBoard(generator, work_dir, history, max_waiting=queue_size)
        self._previews: dict[tuple, Path] = {}  # (source, size, mtime, plan) -> its preview in tools_dir()

    # ---- models ---------------------------------------------------------------------------
    def installed(self) -> list[str]:
        return [info.name for info in self.generator.list_models()]

    def model_choices(self) -> list[tuple[str, str]]:
        """The dropdown's (label, name) pairs: each label names the model's family."""
        from .families import LABELS

        return [(f"{info.name} · {LABELS.get(info.family, info.family)}", info.name)
                for info in self.generator.list_models()]

    def model_family(self, name: str | None) -> str | None:
        return next((info.family for info in self.generator.list_models() if info.name == name), None)

    def text_controls(self, model):
        """Prompt fields and image strength only for the families that use text; the picture's label says
        whether it is needed."""
        from .families import IMAGE_OPTIONAL_FAMILIES, TEXT_FAMILIES

        family = self.model_family(model)
        text = family in TEXT_FAMILIES
        label = ("Picture (optional: drives the video when given)" if family in IMAGE_OPTIONAL_FAMILIES
                 else "Picture (drop, paste or browse)")
        strength = model_defaults(self.generator, model).get("image_strength", 0.5)
        return (gr.update(visible=text), gr.update(visible=text), gr.update(visible=text, value=strength),
                gr.update(label=label))

    def empty_state(self) -> str:
        return (f"**No model installed.** Put a Stable Video Diffusion folder (diffusers layout, with "
                f"`model_index.json`) in `{html.escape(str(Path(self.generator.models_dir).resolve()))}`, for "
                f"example with `video-gen models download svd-xt`, then press Refresh. ({HOW_TO_GET}.)")

    # ---- the request from the controls ---------------------------------------------------
    def request_from_controls(self, image, model, duration, fps, resolution, motion_bucket_id, num_inference_steps,
                              seed, noise_aug_strength, min_guidance_scale, max_guidance_scale, decode_chunk_size,
                              output_format, crf, resize_mode, loop="none", interpolation=0, prompt="",
                              negative_prompt="", image_strength=None, memory_plan="auto") -> GenerationRequest:
        """Turn the page's values into a checked `GenerationRequest` (raises InvalidRequest)."""
        from .families import IMAGE_OPTIONAL_FAMILIES, TEXT_FAMILIES

        family = self.model_family(model) if model else None
        if not image and family not in IMAGE_OPTIONAL_FAMILIES:
            raise InvalidRequest("image", "missing: drop, paste or browse for a picture first")
        installed = self.installed()
        if not installed:
            raise InvalidRequest("model", f"no model installed in {Path(self.generator.models_dir).resolve()}; "
                                          f"{HOW_TO_GET}")
        if model in (None, ""):
            model = installed[0] if len(installed) == 1 else None
            if model is None:
                raise InvalidRequest("model", f"choose one of the installed models: {', '.join(installed)}")
        if model not in installed:  # only models in the models folder: a web client names no paths
            raise InvalidRequest("model", f"{model!r} is not installed (installed: {', '.join(installed)}); "
                                          f"press Refresh after adding one")
        if fps not in FPS_CHOICES:
            raise InvalidRequest("fps", f"must be one of {', '.join(map(str, FPS_CHOICES))}, got {fps!r}")
        if interpolation in (None, ""):
            interpolation = 0
        if interpolation not in [value for _, value in INTERPOLATIONS]:
            raise InvalidRequest("interpolation", f"must be 0 (auto), 1 (off), 2, 3 or 4, got {interpolation!r}")
        defaults = model_defaults(self.generator, model)
        num_frames = int(duration) * int(fps)  # the engine plans segments and interpolation for it
        size = parse_resolution(resolution)
        if size is None and not image:
            size = (defaults["width"], defaults["height"])
        if size is None:
            width, height = picture_size(image)
            size = match_image_size(width, height, defaults["width"] * defaults["height"])
        text = {}
        if self.model_family(model) in TEXT_FAMILIES:  # the prompt fields are hidden (and ignored) for others
            text = dict(prompt=prompt or "", negative_prompt=negative_prompt or "",
                        image_strength=None if image_strength in (None, "") else float(image_strength))
        request = GenerationRequest(
            image=image or None, model=model, num_frames=num_frames, fps=int(fps), width=size[0], height=size[1],
            motion_bucket_id=int(motion_bucket_id), noise_aug_strength=float(noise_aug_strength),
            decode_chunk_size=int(decode_chunk_size), num_inference_steps=int(num_inference_steps),
            min_guidance_scale=float(min_guidance_scale), max_guidance_scale=float(max_guidance_scale),
            seed=seed_value(seed), output_format=output_format, crf=int(crf), resize_mode=resize_mode or "crop",
            loop=loop or "none", interpolation=int(interpolation), memory_plan=memory_plan or "auto", **text,
        )
        self.generator.prepare(request)  # the engine's complete check, before the job is queued
        if image:
            picture_size(image)  # an unreadable picture fails here, not after the model has loaded
        return request

    # ---- handlers -------------------------------------------------------------------------
    def generate(self, image, model, duration, fps, resolution, motion_bucket_id, num_inference_steps, seed,
                 noise_aug_strength, min_guidance_scale, max_guidance_scale, decode_chunk_size, output_format, crf,
                 resize_mode, live_preview, loop="none", interpolation=0, prompt="", negative_prompt="",
                 image_strength=0.5, memory_plan="auto", http: gr.Request = None):
        """Animate a picture into a video with Stable Video Diffusion; streams progress, ends with the video.

        Parameters:
            image: the picture to animate (PNG, JPEG, WebP, …); with gradio_client, handle_file(path)
            model: an installed model's name (a folder under the models dir); empty for the only installed one
            duration: video length in seconds, 1-10; frames = duration x fps (longer than the model makes at
                once: chained segments)
            fps: frame rate, one of 8, 12, 16, 24
            resolution: WIDTHxHEIGHT (multiples of 8), such as 1024x576, or "match image"
            motion_bucket_id: motion intensity, 1-255: higher moves more
            num_inference_steps: denoising steps, 10-50: more is slower and a little cleaner
            seed: -1 for random; the seed actually used is returned
            noise_aug_strength: noise added to the picture, 0-1: more lets the video drift from it
            min_guidance_scale: guidance at the first frame
            max_guidance_scale: guidance at the last frame
            decode_chunk_size: frames decoded at once: lower uses less memory
            output_format: mp4, webm or png (a folder of PNG frames, downloaded as a zip)
            crf: quality, 0-51: lower is better and bigger (18 is visually lossless)
            resize_mode: crop (fill the frame) or fit (black bars)
            live_preview: send a rough preview picture while denoising
            loop: none, pingpong (plays forward then back) or crossfade (a seamless loop: the end is blended
                into the start); the video keeps exactly duration x fps frames
            interpolation: 0 auto (the model works near its own rate, the rest is interpolated), 1 off, or a
                forced factor 2-4
            prompt: text families (AnimateDiff, ModelScope): what the video shows; ignored for SVD
            negative_prompt: text families: what to avoid
            image_strength: text families with a picture: how much it shapes the video, 0-1 (the picture is
                optional for them: None or empty makes text to video)
            memory_plan: auto (the fastest plan that fits this GPU's free memory), or force none, model, group
                or sequential offload, optionally with +fp8 (fp8 weights: less memory, slightly different frames)
        Returns:
            video: the MP4/WebM to play (for PNG frames, an MP4 made from them)
            info: model, seed, plan, parameters, elapsed_s, peak_memory, timings_s, output (path on the server)
            seed_used: the seed actually used, as text
            status: the status panel (HTML)
            preview: the last live preview picture
            download: the file to save (the video, or a zip of the PNG frames)
        (The page's gallery of this run's videos is refreshed by a separate step after this one.)
        """
        session = _session(http)
        skip = gr.skip()
        if self.board.is_closed(session):  # queued by a tab that has been closed since: nobody is watching
            yield None, {"cancelled": True}, None, status_cancelled(), None, None, skip
            return
        try:
            request = self.request_from_controls(
                image, model, duration, fps, resolution, motion_bucket_id, num_inference_steps, seed,
                noise_aug_strength, min_guidance_scale, max_guidance_scale, decode_chunk_size, output_format, crf,
                resize_mode, loop, interpolation, prompt, negative_prompt, image_strength, memory_plan)
        except InvalidRequest as error:
            yield skip, skip, skip, status_error(str(error)), skip, skip
            raise user_error(str(error)) from None

        preview_every = (1 if request.num_inference_steps <= 30 else 2) if live_preview else 0
        try:
            job = self.board.submit(request, session, preview_every)
        except InvalidRequest as error:  # the queue is full
            yield skip, skip, skip, status_error(str(error)), skip, skip
            raise user_error(str(error)) from None
        for note in job.notes:
            gr.Warning(f"image: {note}")
        view = ProgressView(segments=self.generator.plan(*self.generator.prepare(request)).segments)
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
            # Plain values, not updates, so that API clients get paths and numbers.
            yield (str(record.playable), record.info, str(record.seed), status_done(record), last_preview,
                   str(record.download))
        elif ended.outcome == CANCELLED:
            yield None, {"cancelled": True}, None, status_cancelled(), last_preview, None
        else:
            yield skip, skip, skip, status_error(ended.message), skip, skip
            raise user_error(ended.message)

    def cancel(self, http: gr.Request) -> str:
        """Stop this session's job (within one denoising step) and drop it from the queue."""
        session = _session(http)
        if self.board.cancel(session) or self.board.recently_cancelled(session):
            return status_cancelled("Cancelled: the job stops within one step and saves nothing. "
                                    "Ready for the next job.")
        return status_idle("Nothing to cancel: ready.")

    def closed(self, http: gr.Request) -> None:
        """The tab was closed or reloaded: its running job stops, and a queued one ends when it starts."""
        self.board.close_session(_session(http))

    def refresh_models(self, current):
        names = self.installed()
        value = current if current in names else (names[0] if names else None)
        return (gr.Dropdown(choices=self.model_choices(), value=value),
                gr.Markdown(self.empty_state(), visible=not names))

    def refresh_form(self, current, fps, loop="none", interpolation=0):
        """Refresh, and when that picks another model, its defaults (model_box.input does not fire then)."""
        dropdown, message = self.refresh_models(current)
        if dropdown.value == current:
            return (dropdown, message) + (gr.skip(),) * 9
        return (dropdown, message, *self.apply_model_defaults(dropdown.value, fps, loop, interpolation))

    def apply_model_defaults(self, model, fps, loop="none", interpolation=0):
        defaults = model_defaults(self.generator, model)
        fps = int(fps) if fps else FPS_CHOICES[0]
        # The longest whole number of seconds that the model makes in one generation.
        duration = _clamp(defaults["num_frames"] // fps, DURATION_RANGE)
        resolution = f"{defaults['width']}x{defaults['height']}"
        note = length_note(length_plan(duration, fps, defaults, interpolation, loop), defaults)
        steps = _clamp(defaults["num_inference_steps"], STEPS_RANGE)
        # Text families have no motion bucket or noise augmentation: those controls keep SVD's values.
        return (duration, resolution, defaults.get("motion_bucket_id", FALLBACK_DEFAULTS["motion_bucket_id"]), steps,
                defaults.get("noise_aug_strength", FALLBACK_DEFAULTS["noise_aug_strength"]),
                defaults["min_guidance_scale"], defaults["max_guidance_scale"],
                _clamp(defaults["decode_chunk_size"], DECODE_CHUNK_RANGE), note)

    def about(self, model=None, resolution=None, duration=None, fps=None, decode_chunk_size=None) -> str:
        """The "About this machine" tab: the device, the memory plan for the Generate tab's settings, and the
        longest video each installed model makes in one pass at each preset size."""
        try:
            report = self.generator.device_report()
            rows = self.generator.length_table()
        except (VideoGenError, RuntimeError, OSError) as error:
            return f"Could not check this machine: {first_line(error)}"
        lines = ["### Device", *[f"- {line}" for line in report.lines()], ""]
        size = parse_resolution(resolution) if resolution and resolution != MATCH_IMAGE else None
        try:
            request = GenerationRequest(
                model=model or None, fps=int(fps) if fps else None, decode_chunk_size=int(decode_chunk_size or 8),
                num_frames=int(duration) * int(fps) if duration and fps else None,
                width=size[0] if size else None, height=size[1] if size else None)
            lines.append(f"**Memory plan for the Generate tab's settings:** {self.generator.memory_plan(request).label()}")
        except (VideoGenError, ValueError) as error:
            lines.append(f"Memory plan for the Generate tab's settings: not available ({first_line(error)})")
        lines += ["", "### Longest video of one generation pass",
                  "| model | size | fastest plan | cheapest plan |", "|---|---|---|---|"]
        for row in rows:
            lines.append(f"| {row.model} | {row.width}×{row.height} | {row.length_text(row.fastest_frames)} | "
                         f"{row.length_text(row.cheapest_frames)} |")
        if rows:
            lines += ["", f"Fastest plan: {rows[0].fastest.label()}. Cheapest: {rows[0].cheapest.label()}. "
                          "Longer videos are made of several passes (see the README's section on length)."]
        return "\n".join(lines)

    def frames_note(self, model, duration, fps, loop="none", interpolation=0) -> str:
        defaults = model_defaults(self.generator, model)
        return length_note(length_plan(int(duration or 1), int(fps or FPS_CHOICES[0]), defaults, interpolation, loop),
                           defaults)

    def shown_records(self) -> list[OutputRecord]:
        """Past outputs for the gallery, newest first: every finished job in the history whose file is there."""
        return self.board.past_outputs(GALLERY_SIZE)

    def gallery(self) -> list[tuple[str, str]]:
        return [(str(record.playable), record.caption) for record in self.shown_records()]

    def show_output(self, event: gr.SelectData):
        records = self.shown_records()
        if not 0 <= event.index < len(records):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        record = self.board.playable_record(records[event.index])
        return str(record.playable), record.info, str(record.seed), str(record.download)

    # ---- history: every job across restarts, re-run, delete ------------------------------------
    def history_rows(self) -> list[list[Any]]:
        """The history table: newest first."""
        rows = []
        for entry in self.board.history.entries(limit=HISTORY_ROWS):
            request = entry.request
            where = entry.output if entry.status == "done" else (entry.error or "")
            rows.append([entry.id, entry.queued_at.replace("T", " ")[:19], entry.status, request.get("model") or "",
                         request.get("seed"), request.get("num_frames"),
                         f"{request.get('width')}x{request.get('height')}", where])
        return rows

    def history_list(self, limit: int = 100) -> list[dict[str, Any]]:
        """Every job in the history, newest first (the API's /history).

        Parameters:
            limit: at most this many jobs
        Returns:
            jobs: each with id, status, queued_at, started_at, finished_at, elapsed_s, output, error, request
        """
        return [{"id": entry.id, "status": entry.status, "queued_at": entry.queued_at, "started_at": entry.started_at,
                 "finished_at": entry.finished_at, "elapsed_s": entry.elapsed_s, "output": entry.output,
                 "error": entry.error, "rerun_of": entry.rerun_of, "request": entry.request}
                for entry in self.board.history.entries(limit=int(limit))]

    def select_job(self, event: gr.SelectData):
        row = event.row_value if isinstance(getattr(event, "row_value", None), list) else None
        return row[0] if row else gr.skip()

    def select_output_job(self, event: gr.SelectData):
        records = self.shown_records()
        if 0 <= event.index < len(records) and records[event.index].history_id is not None:
            return records[event.index].history_id
        return gr.skip()

    def _entry(self, job_id):
        if job_id in (None, ""):
            raise user_error("job: choose a job first (click a row of the history or a video)")
        entry = self.board.history.get(int(job_id))
        if entry is None:
            raise user_error(f"job: no job {job_id} in the history")
        return entry

    def rerun_settings(self, job_id):
        """Load a past job's picture and settings into the Generate form (re-run with changes).

        Parameters:
            job_id: the job's number in the history
        Returns:
            image and every control of the Generate form, the frames note and a message
        """
        entry = self._entry(job_id)
        try:
            request = GenerationRequest.from_dict(entry.request)
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        picture = request.image if request.image and Path(request.image).is_file() else gr.skip()
        return (picture, *self.form_values(request, f"job {entry.id}"))

    def rerun(self, job_id, http: gr.Request = None):
        """Run a past job again, with its picture, settings and seed, in one click (an interrupted one, say).

        Parameters:
            job_id: the job's number in the history
        Returns:
            message: the new job's number; it runs in the queue and its video appears in the history
            table: the history table
        """
        entry = self._entry(job_id)
        try:
            job = self.board.rerun(entry.id, _session(http))
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        return f"Job {entry.id} queued again as job {job.history_id}.", self.history_rows()

    def delete_job(self, job_id):
        """Delete a past job: its video (and settings file) and its row in the history.

        Parameters:
            job_id: the job's number in the history
        Returns:
            message, table, gallery
        """
        entry = self._entry(job_id)
        try:
            self.board.delete(entry.id)
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        return f"Deleted job {entry.id}.", self.history_rows(), self.gallery()

    # ---- smooth / loop any video -----------------------------------------------------------
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
        path, plan, metadata, source = self._smooth_checked(video, fps, loop)
        key = self._smooth_key(source, plan)
        target = self.tools_dir() / f"{source.stem}{plan.stem_suffix()}.{secrets.token_hex(4)}.preview.mp4"
        self._smooth_render(path, plan, target, metadata, progress)
        self._previews[key] = target
        return str(target), self._smooth_info(plan, target, saved=False)

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
        path, plan, metadata, source = self._smooth_checked(video, fps, loop)
        outputs = Path(self.generator.outputs_dir)
        target = video_io.unique_path(outputs / f"{source.stem}{plan.stem_suffix()}.mp4")
        preview = self._previews.get(self._smooth_key(source, plan))
        if preview is not None and preview.is_file():  # the preview is exactly this result: no second render
            progress(0.5, desc="saving the preview")
            copy_atomic(preview, target)
        else:
            self._smooth_render(path, plan, target, metadata, progress)
        video_io.write_sidecar(target, metadata)
        return str(target), self._smooth_info(plan, target, saved=True)

    def _smooth_checked(self, video, fps, loop):
        try:
            info = check_video(video)
            plan = plan_smooth(info, fps, loop or "none")
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        source = Path(video)
        return source, plan, smooth_metadata(source_metadata(source), plan, source.name), source

    @staticmethod
    def _smooth_key(source: Path, plan) -> tuple:
        stat = source.stat()
        return str(source.resolve()), stat.st_size, stat.st_mtime_ns, plan

    def _smooth_render(self, path, plan, target, metadata, progress) -> None:
        try:
            render_smooth(path, plan, target, metadata=metadata,
                          on_progress=lambda fraction, what: progress(fraction, desc=what))
        except InvalidRequest as error:
            raise user_error(str(error)) from None

    def _smooth_info(self, plan, target: Path, *, saved: bool) -> dict[str, Any]:
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

    # ---- load settings ------------------------------------------------------------------------
    def load_settings(self, file):
        """Fill the Generate form from a video made by this app (or its .json file).

        Parameters:
            file: a video made by this app, or the .json written beside it
        Returns:
            model, duration, fps, resolution, motion_bucket_id, num_inference_steps, seed, noise_aug_strength,
            min_guidance_scale, max_guidance_scale, decode_chunk_size, output_format, crf, resize_mode, loop,
            interpolation: the stored values (fitted to the page's ranges)
            note: the frames note for them
            message: what was loaded, and what had to change to fit the page
        """
        try:
            request = stored_request(file)
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        return self.form_values(request, Path(file).name)

    def form_values(self, request: GenerationRequest, source: str):
        """The Generate form's values for a stored request (fitted to the page's ranges), its frames note and a
        message saying what was loaded and what had to change."""
        notes = []
        fps = request.fps or FPS_CHOICES[0]
        if fps not in FPS_CHOICES:
            fps = min(FPS_CHOICES, key=lambda choice: abs(choice - request.fps))
            notes.append(f"{request.fps} fps is not on the page: {fps} fps")
        frames = request.num_frames or fps
        duration = _clamp(max(1, round(frames / (request.fps or fps))), DURATION_RANGE)
        if duration * fps != frames:
            notes.append(f"{frames} frames became {duration} s at {fps} fps")

        def fit(name, value, bounds):
            if value is None:
                return None
            fitted = _clamp(value, bounds)
            if fitted != value:
                notes.append(f"{name} {value} is outside the page's {_num(bounds[0])}-{_num(bounds[1])}: {fitted}")
            return fitted

        output_format = request.output_format or "mp4"
        if output_format not in [value for _, value in FORMATS]:
            notes.append(f"{output_format} is not on the page: mp4")
            output_format = "mp4"
        if request.model not in self.installed():
            notes.append(f"model {request.model!r} is not installed here")
        resolution = f"{request.width}x{request.height}" if request.width and request.height else gr.skip()
        values = (
            request.model or gr.skip(), duration, fps, resolution,
            fit("motion", request.motion_bucket_id, MOTION_RANGE),
            fit("steps", request.num_inference_steps, STEPS_RANGE), request.seed,
            request.noise_aug_strength, fit("min guidance", request.min_guidance_scale, GUIDANCE_RANGE),
            fit("max guidance", request.max_guidance_scale, GUIDANCE_RANGE),
            fit("decode chunk", request.decode_chunk_size, DECODE_CHUNK_RANGE), output_format,
            fit("crf", request.crf, CRF_RANGE), request.resize_mode, request.loop, request.interpolation,
        )
        values = tuple(gr.skip() if value is None else value for value in values)
        note = self.frames_note(request.model if request.model in self.installed() else None, duration, fps,
                                request.loop, request.interpolation)
        message = (f"Loaded the settings of {source} (seed {request.seed}). Drop the same picture to "
                   f"make the same video.")
        if notes:
            message += " Changed to fit the page: " + "; ".join(notes) + "."
        return (*values, note, message)

    # ---- layout ---------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        names = self.installed()
        model = names[0] if names else None
        fps = FPS_CHOICES[0]
        duration, resolution, motion, steps, noise_aug, min_guidance, max_guidance, decode_chunk, note = (
            self.apply_model_defaults(model, fps))

        with gr.Blocks(title="Video generator", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
            gr.Markdown("## Video generator\nDrop a picture, press **Generate**, watch it work, download the "
                        "video. Everything runs on this computer.")
            with gr.Tabs():
                with gr.Tab("Generate", id="generate-tab", elem_id="vg-generate-tab"):
                    with gr.Row():
                        with gr.Column(scale=5):
                            with gr.Accordion("Load settings from a video", open=False, elem_id="vg-load-box"):
                                settings_file = gr.File(label="A video made by this app, or its .json",
                                                        elem_id="vg-settings-file", height=120)
                                settings_message = gr.Markdown("Drop a video made here: every control below is "
                                                               "set to the values that made it.",
                                                               elem_id="vg-settings-message")
                            image = PictureInput(label="Picture (drop, paste or browse)", type="filepath",
                                                 image_mode=None,
                                                 sources=["upload", "clipboard"], height=300, elem_id="vg-image")
                            with gr.Row(equal_height=True):
                                model_box = gr.Dropdown(
                                    self.model_choices(), value=model, label="Model", allow_custom_value=True, scale=8,
                                    info="Installed models and their family. Each has its own defaults.",
                                    elem_id="vg-model")
                                refresh = gr.Button("Refresh", scale=1, min_width=80, elem_id="vg-refresh")
                            empty = gr.Markdown(self.empty_state(), visible=not names, elem_id="vg-empty")
                            text_shown, _, _, _ = self.text_controls(model)
                            prompt_box = gr.Textbox(
                                "", label="Prompt", lines=2, elem_id="vg-prompt", visible=text_shown["visible"],
                                info="What the video shows (AnimateDiff and ModelScope are driven by text).")
                            negative_box = gr.Textbox("", label="Negative prompt", lines=1, elem_id="vg-negative-prompt",
                                                      visible=text_shown["visible"], info="What to avoid.")
                            strength_box = slider(
                                *LIMITS["image_strength"], value=0.5, step=0.05, field="image_strength",
                                label="Image strength", visible=text_shown["visible"],
                                info="With a picture: how much it shapes the video (0 ignores it, near 1 keeps it).")
                            with gr.Row():
                                duration_box = slider(
                                    *DURATION_RANGE, value=duration, step=1, field="duration", label="Length (seconds)",
                                    info="How long the video plays. More seconds = more frames to generate.")
                                fps_box = radio(
                                    list(FPS_CHOICES), value=fps, field="fps", label="Frame rate (fps)",
                                    info="Frames per second: higher is smoother but each second costs more frames.")
                            note_box = gr.Markdown(note, elem_id="vg-frames-note")
                            resolution_box = gr.Dropdown(
                                RESOLUTIONS, value=resolution, label="Resolution (width × height)",
                                allow_custom_value=True,
                                elem_id="vg-resolution",
                                info="Size of the video; the picture is cropped (or fitted) to it. "
                                     "Bigger = slower, more memory.")
                            motion_box = slider(
                                *MOTION_RANGE, value=motion, step=1, field="motion_bucket_id", label="Motion intensity",
                                info="How much moves: low keeps the scene calm, high gives big camera and subject "
                                     "motion.")
                            steps_box = slider(
                                *STEPS_RANGE, value=steps, step=1, field="num_inference_steps", label="Inference steps",
                                info="Denoising steps: more is slower and a little cleaner; 25 is the usual.")
                            with gr.Row(equal_height=True):
                                seed_box = SeedNumber(-1, label="Seed", precision=0, scale=6, elem_id="vg-seed",
                                                     info="-1 = random. The same seed and settings give the same "
                                                          "video.")
                                dice = gr.Button("Random", scale=1, min_width=80, elem_id="vg-dice")
                                reuse = gr.Button("Reuse last", scale=1, min_width=80, elem_id="vg-reuse")
                            with gr.Accordion("Advanced", open=False):
                                noise_box = slider(
                                    0.0, 1.0, value=noise_aug, step=0.01, field="noise_aug_strength",
                                    label="Noise augmentation",
                                    info="Noise added to the picture: more lets the video drift from it and move more.")
                                min_guidance_box = slider(
                                    *GUIDANCE_RANGE, value=min_guidance, step=0.1, field="min_guidance_scale",
                                    label="Min guidance", info="How closely the first frames follow the picture.")
                                max_guidance_box = slider(
                                    *GUIDANCE_RANGE, value=max_guidance, step=0.1, field="max_guidance_scale",
                                    label="Max guidance",
                                    info="How closely the last frames follow it; too high looks burnt.")
                                decode_box = slider(
                                    *DECODE_CHUNK_RANGE, value=decode_chunk, step=1, field="decode_chunk_size",
                                    label="Decode chunk size",
                                    info="Frames decoded at once: lower uses less GPU memory, higher is a bit "
                                         "smoother.")
                                memory_box = radio(
                                    MEMORY_PLAN_CHOICES, value="auto", field="memory_plan", label="Memory plan",
                                    info="auto: the fastest plan that fits the GPU's free memory (see About this "
                                         "machine); or force an offload level. Out of memory always steps down.")
                                format_box = radio(
                                    FORMATS, value="mp4", field="output_format", label="Output format",
                                    info="MP4 plays everywhere; PNG frames are lossless, for editing.")
                                crf_box = slider(
                                    *CRF_RANGE, value=18, step=1, field="crf", label="Quality (CRF)",
                                    info="Lower = better quality and bigger file; 18 is visually lossless.")
                                resize_box = radio(
                                    RESIZE_MODES, value="crop", field="resize_mode", label="Fit the picture",
                                    info="Crop fills the frame; fit shows the whole picture with bars.")
                                loop_box = radio(
                                    LOOPS, value="none", field="loop", label="Loop",
                                    info="Ping-pong plays the clip forward, then backward. Seamless crossfade makes "
                                         "a few extra frames and blends them into the start, so the end flows into "
                                         "the beginning. The length stays the same.")
                                interpolation_box = radio(
                                    INTERPOLATIONS, value=0, field="interpolation", label="Frame interpolation",
                                    info="Auto: the model makes frames near its own rate and the ones in between "
                                         "are computed (fast, smooth). Off: the model makes every frame (slower). "
                                         "2×-4×: the model makes 1 frame in 2-4 (fastest; more is invented).")
                        with gr.Column(scale=6):
                            with gr.Row():
                                generate_button = gr.Button("Generate", variant="primary", scale=3,
                                                            elem_id="vg-generate")
                                cancel_button = gr.Button("Cancel", variant="stop", scale=1, elem_id="vg-cancel")
                            status = gr.HTML(status_idle(), label="Status", elem_id="vg-status", js_on_load=None)
                            with gr.Row():
                                preview = gr.Image(label="Preview", interactive=False, height=220, format="jpeg",
                                                   elem_id="vg-preview", buttons=[])
                                live_preview = gr.Checkbox(True, label="Live preview", elem_id="vg-live-preview",
                                                           info="A rough look at the video while it is denoised (costs "
                                                                "almost nothing).")
                            video = gr.Video(label="Video", interactive=False, autoplay=True, loop=True,
                                             elem_id="vg-player",
                                             buttons=["download"])
                            with gr.Row(equal_height=True):
                                download = gr.DownloadButton("Download", variant="primary", size="md",
                                                             elem_id="vg-download")
                                seed_used = gr.Textbox(label="Seed used", interactive=False,
                                                       placeholder="(after a run)",
                                                       elem_id="vg-seed-used")
                            info = gr.JSON(label="Info", elem_id="vg-info", open=True)
                            gallery = gr.Gallery(label="All outputs, newest first", columns=6, fit_columns=False, height=200,
                                                 object_fit="contain",
                                                 allow_preview=False, elem_id="vg-gallery")
                            with gr.Accordion("History: every job, across restarts", open=False,
                                              elem_id="vg-history-box"):
                                history_table = gr.Dataframe(
                                    self.history_rows(), headers=HISTORY_HEADERS, interactive=False, wrap=True,
                                    max_height=300, elem_id="vg-history")
                                with gr.Row(equal_height=True):
                                    job_box = gr.Number(label="Job", precision=0, scale=2, elem_id="vg-job",
                                                        info="Click a row or a video to choose it.")
                                    job_load = gr.Button("Re-run: load settings", scale=2, elem_id="vg-job-load")
                                    job_run = gr.Button("Run again now", variant="primary", scale=2,
                                                        elem_id="vg-job-rerun")
                                    job_delete = gr.Button("Delete", variant="stop", scale=1, elem_id="vg-job-delete")
                                    history_refresh = gr.Button("Refresh", scale=1, elem_id="vg-history-refresh")
                                job_message = gr.Markdown(elem_id="vg-job-message")

                with gr.Tab("Smooth / loop a video", id="tools-tab", elem_id="vg-tools-tab"):
                    gr.Markdown("Make any video smoother (frames computed between its frames, no model needed) "
                                "or make it loop. **Preview** plays the result here; **Save** writes it to the "
                                "outputs folder.")
                    with gr.Row():
                        with gr.Column(scale=5):
                            tool_source = gr.File(label="Video to smooth (MP4, WebM, MOV, GIF, …)",
                                                  elem_id="vg-tool-video", height=140)
                            use_last = gr.Button("Use the last result", size="sm", elem_id="vg-tool-last")
                            tool_fps = gr.Dropdown(
                                SMOOTH_FPS_CHOICES, value=TARGET_FPS_CHOICES[0], allow_custom_value=True,
                                label="Target frame rate (fps)", elem_id="vg-smooth-fps",
                                info="Frames are computed between the video's own: 2×, 3× or 4× its rate at most "
                                     "(an 8 fps video reaches 16, 24 or 32 fps; type any rate). The rate is rounded up "
                                     "to a whole multiple, so the motion keeps its speed.")
                            tool_loop = radio(
                                LOOPS, value="none", field="smooth_loop", label="Loop",
                                info="Ping-pong appends the clip backwards; seamless crossfade blends the last "
                                     "frames into the first ones so it loops without a jump (a little shorter).")
                            with gr.Row():
                                tool_preview_button = gr.Button("Preview", elem_id="vg-tool-preview")
                                tool_save_button = gr.Button("Save", variant="primary", elem_id="vg-tool-save")
                        with gr.Column(scale=6):
                            tool_video = gr.Video(label="Result", interactive=False, autoplay=True, loop=True,
                                                  elem_id="vg-tool-player", buttons=["download"])
                            tool_info = gr.JSON(label="What was done", elem_id="vg-tool-info", open=True)

                with gr.Tab("About this machine", id="about-tab", elem_id="vg-about-tab") as about_tab:
                    about_box = gr.Markdown("Open this tab to check the device.", elem_id="vg-about")
                    about_refresh = gr.Button("Check again", size="sm", elem_id="vg-about-refresh")
            about_inputs = [model_box, resolution_box, duration_box, fps_box, decode_box]
            for trigger in (about_tab.select, about_refresh.click):
                trigger(self.about, about_inputs, [about_box], queue=False, api_visibility="private",
                        show_progress="hidden")

            inputs = [image, model_box, duration_box, fps_box, resolution_box, motion_box, steps_box, seed_box,
                      noise_box, min_guidance_box, max_guidance_box, decode_box, format_box, crf_box, resize_box,
                      live_preview, loop_box, interpolation_box, prompt_box, negative_box, strength_box, memory_box]
            # The gallery is refreshed by a separate step below, not returned by /generate: it holds every
            # video of this run, and gradio_client downloads every file of a response, so an API call
            # would cost more with each job made before it (measured: HTTP/bare 1.09 after 5 jobs, 1.19 after 7).
            outputs = [video, info, seed_used, status, preview, download]
            # The busy frame shows on the player. Not on the status panel: the Cancel handler writes that
            # panel, and Gradio 6.31 then sometimes paints "Error" over a tracker that a cancelled event left
            # on the same component. No Gradio concurrency limit: a handler only submits its job to the
            # board's queue (one job at a time, in order, persisted in the history) and shows its place.
            generate_event = generate_button.click(
                self.generate, inputs, outputs, api_name="generate", concurrency_limit=None, concurrency_id="watch",
                trigger_mode="once", show_progress="full", show_progress_on=[video])
            generate_event.then(self.gallery, None, [gallery], queue=False, api_visibility="private",
                                show_progress="hidden").then(
                self.history_rows, None, [history_table], queue=False, api_visibility="private",
                show_progress="hidden")
            history_table.select(self.select_job, None, [job_box], queue=False, api_visibility="private",
                                 show_progress="hidden")
            gallery.select(self.select_output_job, None, [job_box], queue=False, api_visibility="private",
                           show_progress="hidden")
            history_refresh.click(lambda: (self.history_rows(), self.gallery()), None, [history_table, gallery],
                                  queue=False, api_visibility="private", show_progress="hidden")
            job_load.click(self.rerun_settings, [job_box],
                           [image, model_box, duration_box, fps_box, resolution_box, motion_box, steps_box, seed_box,
                            noise_box, min_guidance_box, max_guidance_box, decode_box, format_box, crf_box, resize_box,
                            loop_box, interpolation_box, note_box, job_message],
                           api_name="rerun_settings", show_progress="hidden")
            job_run.click(self.rerun, [job_box], [job_message, history_table], api_name="rerun", queue=False,
                          show_progress="hidden")
            job_delete.click(self.delete_job, [job_box], [job_message, history_table, gallery], api_name="delete_job",
                             queue=False, show_progress="hidden")
            gr.api(self.history_list, api_name="history")
            cancel_button.click(self.cancel, None, [status], api_name="cancel", queue=False,
                                cancels=[generate_event], show_progress="hidden")
            demo.unload(self.closed)

            model_defaults_outputs = [duration_box, resolution_box, motion_box, steps_box, noise_box, min_guidance_box,
                                      max_guidance_box, decode_box, note_box]
            refresh.click(self.refresh_form, [model_box, fps_box, loop_box, interpolation_box],
                          [model_box, empty, *model_defaults_outputs], queue=False, api_visibility="private",
                          show_progress="hidden")
            # .change: the prompt fields follow the model however it is set (picked, refreshed, loaded).
            model_box.change(self.text_controls, [model_box], [prompt_box, negative_box, strength_box, image],
                             queue=False, api_visibility="private", show_progress="hidden")
            # .input, not .change: "Load settings" sets the model too, and its values must stay.
            model_box.input(self.apply_model_defaults, [model_box, fps_box, loop_box, interpolation_box],
                            model_defaults_outputs, queue=False, api_visibility="private", show_progress="hidden")
            for control in (duration_box, fps_box, loop_box, interpolation_box):
                control.change(self.frames_note, [model_box, duration_box, fps_box, loop_box, interpolation_box],
                               [note_box], queue=False, api_visibility="private", show_progress="hidden")
            settings_file.upload(
                self.load_settings, [settings_file],
                [model_box, duration_box, fps_box, resolution_box, motion_box, steps_box, seed_box, noise_box,
                 min_guidance_box, max_guidance_box, decode_box, format_box, crf_box, resize_box, loop_box,
                 interpolation_box, note_box, settings_message],
                api_name="load_settings", show_progress="hidden")
            # The same one-at-a-time slot as Generate: interpolation takes the CPU that a job needs.
            tool_inputs = [tool_source, tool_fps, tool_loop]
            tool_preview_button.click(self.smooth_preview, tool_inputs, [tool_video, tool_info],
                                      api_name="smooth_preview", concurrency_limit=1, concurrency_id="generate",
                                      trigger_mode="once", show_progress="full")
            tool_save_button.click(self.smooth_save, tool_inputs, [tool_video, tool_info], api_name="smooth",
                                   concurrency_limit=1, concurrency_id="generate", trigger_mode="once",
                                   show_progress="full")
            use_last.click(self.last_result, None, [tool_source], queue=False, api_visibility="private",
                           show_progress="hidden")
            dice.click(lambda: secrets.randbelow(MAX_RANDOM_SEED) + 1, None, [seed_box], queue=False,
                       api_visibility="private", show_progress="hidden")
            reuse.click(_reuse_seed, [seed_used], [seed_box], queue=False, api_visibility="private",
                        show_progress="hidden")
            gallery.select(self.show_output, None, [video, info, seed_used, download], queue=False,
                           api_visibility="private", show_progress="hidden")
            demo.load(lambda: self.gallery(), None, [gallery], queue=False, api_visibility="private",
                      show_progress="hidden")
        return demo


def _reuse_seed(seed_used):
    text = str(seed_used or "").strip()
    if not text.isdigit():
        gr.Warning("No seed yet: generate a video first.")
        return gr.skip()
    return int(text)


def _clamp(value, bounds):
    return min(bounds[1], max(bounds[0], value))


def _session(http: gr.Request | None) -> str:
    return (getattr(http, "session_hash", None) or "no-session") if http is not None else "no-session"


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
    # Gradio's own queue only holds events for a moment: Generate handlers start at once and wait in the
    # board's queue (one job at a time, persisted), so max_size here is only a bound on a burst of clicks.
    return demo.queue(max_size=max(queue_size * 2, 8), default_concurrency_limit=1)


__all__ = ["build_ui", "WebApp", "CSS", "length_plan", "length_note", "parse_resolution", "match_image_size",
           "model_defaults"]
