"""The web page: every control, the one-at-a-time queue, streamed progress and preview, cancel, player.

`build_ui(generator, ...)` returns the `gr.Blocks`; `app.py` launches it. The page never loads or
touches a model and imports no torch: jobs go to the shared `Generator` through `ui_jobs.JobBoard`
(a worker thread per job, typed messages back), and the Generate handler only turns those messages
into page updates (FramePack's `demo_gradio.py` pattern, STYLE.md).

The Generate button's event is the API endpoint `/generate` (see `WebApp.generate` for its inputs
and outputs); the Cancel button's is `/cancel`.
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

from .errors import InvalidRequest  # noqa: E402
from .events import DECODING, DENOISING, LOADING_MODEL, STAGE_LABELS, WRITING, PreviewEvent, StageEvent, StepEvent  # noqa: E402
from .models import HOW_TO_GET  # noqa: E402
from .request import LIMITS, GenerationRequest  # noqa: E402
from .ui_jobs import CANCELLED, DONE, JobBoard, JobEnded, OutputRecord, Tick  # noqa: E402

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
MAX_RANDOM_SEED = 2**32 - 1

# What the page assumes when no model is installed yet: Stable Video Diffusion XT's own settings.
FALLBACK_DEFAULTS = {
    "num_frames": 25, "fps": 7, "width": 1024, "height": 576, "motion_bucket_id": 127, "noise_aug_strength": 0.02,
    "decode_chunk_size": 8, "num_inference_steps": 25, "min_guidance_scale": 1.0, "max_guidance_scale": 3.0,
}

# Where each stage sits on the one progress bar (denoising is by far the longest part of a job).
STAGE_SPANS = {
    LOADING_MODEL: (0.0, 0.05), "encoding_image": (0.05, 0.08), DENOISING: (0.08, 0.88),
    DECODING: (0.88, 0.98), WRITING: (0.98, 1.0),
}

CSS = """
#vg-generate, #vg-cancel { min-height: 3em; }
#vg-seed-row button { max-width: 4em; }
"""


# ---- pure helpers (no gradio state; tested directly) -------------------------------------------
def model_defaults(generator, name: str | None) -> dict[str, Any]:
    """The request defaults of an installed model, read from its configs (no weights load)."""
    from .families import load_family

    for info in generator.list_models():
        if info.name == name:
            return load_family(info.family).defaults(info)
    return dict(FALLBACK_DEFAULTS)


def frames_plan(duration_s: int, fps: int, max_frames: int) -> tuple[int, str]:
    """Frames for `duration_s` at `fps`, capped at what the model makes in one clip, and a note saying so."""
    requested = int(duration_s) * int(fps)
    frames = max(1, min(requested, int(max_frames)))
    if frames < requested:
        note = (f"**Note:** {duration_s} s at {fps} fps is {requested} frames, but this model makes at most "
                f"{max_frames} frames per clip: you get **{frames} frames = {frames / fps:.1f} s**. "
                f"Longer videos come with long-video support.")
    else:
        note = f"{frames} frames at {fps} fps = {frames / fps:.1f} s (this model makes up to {max_frames} per clip)."
    return frames, note


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
        raise InvalidRequest("image", f"not a picture this app can read (PNG, JPEG, WebP, …): {Path(path).name}") from None
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
    return _box(text, "done")


class ProgressView:
    """Renders the job's latest event as a bar, the stage, the elapsed time and the ETA."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.message = "starting"
        self.index = 0
        self.total = 0
        self.elapsed_s: float | None = None
        self.eta_s: float | None = None

    def update(self, message) -> None:
        if isinstance(message, StageEvent):
            self.stage, self.message, self.index, self.total, self.eta_s = message.stage, message.message, 0, 0, None
        elif isinstance(message, StepEvent):
            if message.stage != self.stage:
                self.stage, self.message = message.stage, STAGE_LABELS.get(message.stage, message.stage)
            self.index, self.total = message.index, message.total
            self.elapsed_s, self.eta_s = message.elapsed_s, message.eta_s
        elif isinstance(message, Tick) and message.elapsed_s is not None:
            self.elapsed_s = message.elapsed_s

    @property
    def fraction(self) -> float:
        if self.stage is None:
            return 0.0
        start, end = STAGE_SPANS.get(self.stage, (0.0, 1.0))
        within = self.index / self.total if self.total else 0.0
        return start + (end - start) * within

    def html(self) -> str:
        if self.stage is None:
            headline = "Starting… (waiting for the engine)"
        elif self.stage == DENOISING and self.total:
            headline = f"Denoising · step {self.index} of {self.total}"
        elif self.stage == DECODING and self.total:
            headline = f"Decoding frames · chunk {self.index} of {self.total}"
        else:
            headline = self.message[:1].upper() + self.message[1:]
        times = []
        if self.elapsed_s is not None:
            times.append(f"{_seconds(self.elapsed_s)} elapsed")
        if self.eta_s is not None and self.total and self.index < self.total:
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
class PictureInput(gr.Image):
    """gr.Image whose unreadable uploads come back as one readable line, not a server error."""

    is_template = True  # rendered by gr.Image's frontend

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (OSError, ValueError, Image.DecompressionBombError, UnidentifiedImageError):
            name = getattr(payload, "orig_name", None) or "the upload"
            raise gr.Error(f"image: not a picture this app can read (PNG, JPEG, WebP, …): {html.escape(name)}",
                           print_exception=False) from None


class NamedSlider(gr.Slider):
    """gr.Slider whose out-of-range values are refused with the control's name and range."""

    is_template = True
    field = "value"  # the GenerationRequest field (or page control) named in errors; set by `slider()`

    def preprocess(self, payload):
        if payload is None or isinstance(payload, bool) or not isinstance(payload, (int, float)):
            raise gr.Error(f"{self.field}: must be a number from {_num(self.minimum)} to {_num(self.maximum)}, "
                           f"got {html.escape(repr(payload))}", print_exception=False)
        if not self.minimum <= payload <= self.maximum:
            raise gr.Error(f"{self.field}: must be from {_num(self.minimum)} to {_num(self.maximum)}, got {_num(payload)}",
                           print_exception=False)
        return super().preprocess(payload)


def slider(minimum: float, maximum: float, *, field: str, **kwargs) -> NamedSlider:
    # Set after construction: Gradio builds a component's config from its __init__ signature.
    control = NamedSlider(minimum, maximum, **kwargs)
    control.field = field
    return control


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ---- the page ------------------------------------------------------------------------------------
class WebApp:
    """The page's handlers, bound to one `Generator` and one `JobBoard`."""

    def __init__(self, generator, work_dir: str | Path):
        self.generator = generator
        self.board = JobBoard(generator, work_dir)

    # ---- models ---------------------------------------------------------------------------
    def installed(self) -> list[str]:
        return [info.name for info in self.generator.list_models()]

    def empty_state(self) -> str:
        return (f"**No model installed.** Put a Stable Video Diffusion folder (diffusers layout, with "
                f"`model_index.json`) in `{html.escape(str(Path(self.generator.models_dir).resolve()))}`, for "
                f"example with `video-gen models download svd-xt`, then press Refresh. ({HOW_TO_GET}.)")

    # ---- the request from the controls ---------------------------------------------------
    def request_from_controls(self, image, model, duration, fps, resolution, motion_bucket_id, num_inference_steps,
                              seed, noise_aug_strength, min_guidance_scale, max_guidance_scale, decode_chunk_size,
                              output_format, crf, resize_mode) -> GenerationRequest:
        """Turn the page's values into a checked `GenerationRequest` (raises InvalidRequest)."""
        if not image:
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
        if fps not in FPS_CHOICES and int(fps) not in FPS_CHOICES:
            raise InvalidRequest("fps", f"must be one of {', '.join(map(str, FPS_CHOICES))}, got {fps!r}")
        defaults = model_defaults(self.generator, model)
        num_frames, _ = frames_plan(int(duration), int(fps), defaults["num_frames"])
        size = parse_resolution(resolution)
        if size is None:
            width, height = picture_size(image)
            size = match_image_size(width, height, defaults["width"] * defaults["height"])
        request = GenerationRequest(
            image=image, model=model, num_frames=num_frames, fps=int(fps), width=size[0], height=size[1],
            motion_bucket_id=int(motion_bucket_id), noise_aug_strength=float(noise_aug_strength),
            decode_chunk_size=int(decode_chunk_size), num_inference_steps=int(num_inference_steps),
            min_guidance_scale=float(min_guidance_scale), max_guidance_scale=float(max_guidance_scale),
            seed=seed_value(seed), output_format=output_format, crf=int(crf), resize_mode=resize_mode or "crop",
        )
        self.generator.prepare(request)  # the engine's complete check, before the job is queued
        picture_size(image)  # an unreadable picture fails here, not after the model has loaded
        return request

    # ---- handlers -------------------------------------------------------------------------
    def generate(self, image, model, duration, fps, resolution, motion_bucket_id, num_inference_steps, seed,
                 noise_aug_strength, min_guidance_scale, max_guidance_scale, decode_chunk_size, output_format, crf,
                 resize_mode, live_preview, http: gr.Request):
        """Animate a picture into a video with Stable Video Diffusion; streams progress, ends with the video.

        Parameters:
            image: the picture to animate (PNG, JPEG, WebP, …); with gradio_client, handle_file(path)
            model: an installed model's name (a folder under the models dir); empty for the only installed one
            duration: video length in seconds, 1-10; frames = duration x fps, capped at the model's maximum per clip
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
        Returns:
            video ({"video": path}), info (dict: model, seed, parameters, elapsed_s, peak_memory, ...),
            seed used, status (HTML), last preview picture, download file, this run's outputs (gallery)
        """
        session = _session(http)
        skip = gr.skip()
        try:
            request = self.request_from_controls(
                image, model, duration, fps, resolution, motion_bucket_id, num_inference_steps, seed,
                noise_aug_strength, min_guidance_scale, max_guidance_scale, decode_chunk_size, output_format, crf,
                resize_mode)
        except InvalidRequest as error:
            yield skip, skip, skip, status_error(str(error)), skip, skip, skip
            raise gr.Error(html.escape(str(error), quote=False), print_exception=False) from None

        preview_every = (1 if request.num_inference_steps <= 30 else 2) if live_preview else 0
        job = self.board.submit(request, session, preview_every)
        view = ProgressView()
        yield skip, skip, skip, view.html(), None, skip, skip
        ended: JobEnded | None = None
        last_preview = None
        try:
            for message in job.stream():
                if isinstance(message, JobEnded):
                    ended = message
                elif isinstance(message, PreviewEvent):
                    last_preview = message.image
                    yield skip, skip, skip, view.html(), last_preview, skip, skip
                else:
                    view.update(message)
                    yield skip, skip, skip, view.html(), skip, skip, skip
        finally:
            if ended is None:  # Gradio closed us (Cancel pressed, tab closed): stop the engine job too
                self.board.cancel_job(job)

        if ended.outcome == DONE:
            record = ended.record
            # Plain values, not updates, so that API clients get paths and numbers.
            yield (str(record.playable), record.info, str(record.seed), status_done(record), last_preview,
                   str(record.download), self.gallery())
        elif ended.outcome == CANCELLED:
            yield None, {"cancelled": True}, None, status_cancelled(), last_preview, None, self.gallery()
        else:
            yield skip, skip, skip, status_error(ended.message), skip, skip, skip
            raise gr.Error(html.escape(ended.message, quote=False), print_exception=False)

    def cancel(self, http: gr.Request) -> str:
        """Stop this session's job (within one denoising step) and drop it from the queue."""
        asked = self.board.cancel(_session(http))
        if asked:
            return status_cancelled("Cancelled: the job stops within one step and saves nothing. Ready for the next job.")
        return status_idle("Nothing to cancel: ready.")

    def closed(self, http: gr.Request) -> None:
        """The tab was closed or reloaded: its jobs stop (Gradio itself drops its queued events)."""
        self.board.cancel(_session(http))

    def refresh_models(self, current):
        names = self.installed()
        value = current if current in names else (names[0] if names else None)
        return gr.Dropdown(choices=names, value=value), gr.Markdown(self.empty_state(), visible=not names)

    def apply_model_defaults(self, model, fps):
        defaults = model_defaults(self.generator, model)
        fps = int(fps) if fps else FPS_CHOICES[0]
        duration = min(DURATION_RANGE[1], max(DURATION_RANGE[0], math.ceil(defaults["num_frames"] / fps)))
        resolution = f"{defaults['width']}x{defaults['height']}"
        _, note = frames_plan(duration, fps, defaults["num_frames"])
        return (duration, resolution, defaults["motion_bucket_id"], _clamp(defaults["num_inference_steps"], STEPS_RANGE),
                defaults["noise_aug_strength"], defaults["min_guidance_scale"], defaults["max_guidance_scale"],
                _clamp(defaults["decode_chunk_size"], DECODE_CHUNK_RANGE), note)

    def frames_note(self, model, duration, fps) -> str:
        defaults = model_defaults(self.generator, model)
        return frames_plan(int(duration or 1), int(fps or FPS_CHOICES[0]), defaults["num_frames"])[1]

    def gallery(self) -> list[tuple[str, str]]:
        return [(str(record.playable), record.caption) for record in reversed(self.board.records)]

    def show_output(self, event: gr.SelectData):
        records = list(reversed(self.board.records))
        if not 0 <= event.index < len(records):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        record = records[event.index]
        return str(record.playable), record.info, str(record.seed), str(record.download)

    # ---- layout ---------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        names = self.installed()
        model = names[0] if names else None
        defaults = model_defaults(self.generator, model)
        fps = FPS_CHOICES[0]
        duration, resolution, motion, steps, noise_aug, min_guidance, max_guidance, decode_chunk, note = (
            self.apply_model_defaults(model, fps))

        with gr.Blocks(title="Video generator", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
            gr.Markdown("## Video generator\nDrop a picture, press **Generate**, watch it work, download the "
                        "video. Everything runs on this computer.")
            with gr.Row():
                with gr.Column(scale=5):
                    image = PictureInput(label="Picture (drop, paste or browse)", type="filepath", image_mode=None,
                                         sources=["upload", "clipboard"], height=300, elem_id="vg-image")
                    with gr.Row(equal_height=True):
                        model_box = gr.Dropdown(
                            names, value=model, label="Model", allow_custom_value=True, scale=8,
                            info="Installed models (folders in the models dir). Each has its own defaults.",
                            elem_id="vg-model")
                        refresh = gr.Button("Refresh", scale=1, min_width=80, elem_id="vg-refresh")
                    empty = gr.Markdown(self.empty_state(), visible=not names, elem_id="vg-empty")
                    with gr.Row():
                        duration_box = slider(
                            *DURATION_RANGE, value=duration, step=1, field="duration", elem_id="vg-duration", label="Length (seconds)",
                            info="How long the video plays. More seconds = more frames to generate.")
                        fps_box = gr.Radio(list(FPS_CHOICES), value=fps, label="Frame rate (fps)", elem_id="vg-fps",
                                           info="Frames per second: higher is smoother but each second costs more frames.")
                    note_box = gr.Markdown(note, elem_id="vg-frames-note")
                    resolution_box = gr.Dropdown(
                        RESOLUTIONS, value=resolution, label="Resolution (width × height)", allow_custom_value=True,
                        elem_id="vg-resolution",
                        info="Size of the video. The picture is cropped (or fitted) to it. Bigger = slower, more memory.")
                    motion_box = slider(
                        *MOTION_RANGE, value=motion, step=1, field="motion_bucket_id", elem_id="vg-motion-bucket-id", label="Motion intensity",
                        info="How much moves: low keeps the scene calm, high gives big camera and subject motion.")
                    steps_box = slider(
                        *STEPS_RANGE, value=steps, step=1, field="num_inference_steps", elem_id="vg-num-inference-steps", label="Inference steps",
                        info="Denoising steps: more is slower and a little cleaner; 25 is the usual.")
                    with gr.Row(equal_height=True, elem_id="vg-seed-row"):
                        seed_box = gr.Number(-1, label="Seed", precision=0, scale=6, elem_id="vg-seed",
                                             info="-1 = random. The same seed and settings give the same video.")
                        dice = gr.Button("Random", scale=1, min_width=80, elem_id="vg-dice")
                        reuse = gr.Button("Reuse last", scale=1, min_width=80, elem_id="vg-reuse")
                    with gr.Accordion("Advanced", open=False):
                        noise_box = slider(
                            0.0, 1.0, value=noise_aug, step=0.01, field="noise_aug_strength", elem_id="vg-noise-aug-strength",
                            label="Noise augmentation",
                            info="Noise added to the picture: more lets the video drift from it and move more.")
                        min_guidance_box = slider(
                            *GUIDANCE_RANGE, value=min_guidance, step=0.1, field="min_guidance_scale", elem_id="vg-min-guidance-scale",
                            label="Min guidance", info="How closely the first frames follow the picture.")
                        max_guidance_box = slider(
                            *GUIDANCE_RANGE, value=max_guidance, step=0.1, field="max_guidance_scale", elem_id="vg-max-guidance-scale",
                            label="Max guidance", info="How closely the last frames follow it; too high looks burnt.")
                        decode_box = slider(
                            *DECODE_CHUNK_RANGE, value=decode_chunk, step=1, field="decode_chunk_size", elem_id="vg-decode-chunk-size",
                            label="Decode chunk size",
                            info="Frames decoded at once: lower uses less GPU memory, higher is a bit smoother.")
                        format_box = gr.Radio(FORMATS, value="mp4", label="Output format", elem_id="vg-format",
                                              info="MP4 plays everywhere; PNG frames are lossless, for editing.")
                        crf_box = slider(
                            *CRF_RANGE, value=18, step=1, field="crf", elem_id="vg-crf", label="Quality (CRF)",
                            info="Lower = better quality and bigger file; 18 is visually lossless.")
                        resize_box = gr.Radio(RESIZE_MODES, value="crop", label="Fit the picture", elem_id="vg-resize",
                                              info="Crop fills the frame; fit shows the whole picture with bars.")
                    with gr.Row():
                        generate_button = gr.Button("Generate", variant="primary", scale=3, elem_id="vg-generate")
                        cancel_button = gr.Button("Cancel", variant="stop", scale=1, elem_id="vg-cancel")
                with gr.Column(scale=6):
                    status = gr.HTML(status_idle(), label="Status", elem_id="vg-status", js_on_load=None)
                    with gr.Row():
                        preview = gr.Image(label="Preview", interactive=False, height=220, format="jpeg",
                                           elem_id="vg-preview", buttons=[])
                        live_preview = gr.Checkbox(True, label="Live preview", elem_id="vg-live-preview",
                                                   info="A rough look at the video while it is denoised (costs "
                                                        "almost nothing).")
                    video = gr.Video(label="Video", interactive=False, autoplay=True, loop=True, elem_id="vg-player",
                                     buttons=["download"])
                    with gr.Row(equal_height=True):
                        download = gr.DownloadButton("Download the video", variant="primary", size="md", elem_id="vg-download")
                        seed_used = gr.Textbox(label="Seed used", interactive=False, placeholder="(after a run)", elem_id="vg-seed-used")
                    info = gr.JSON(label="Info", elem_id="vg-info", open=True)
                    gallery = gr.Gallery(label="Outputs of this run (click one to show it again)", show_label=True, columns=6, height=180,
                                         object_fit="contain",
                                         allow_preview=False, elem_id="vg-gallery")

            inputs = [image, model_box, duration_box, fps_box, resolution_box, motion_box, steps_box, seed_box,
                      noise_box, min_guidance_box, max_guidance_box, decode_box, format_box, crf_box, resize_box,
                      live_preview]
            outputs = [video, info, seed_used, status, preview, download, gallery]
            generate_event = generate_button.click(
                self.generate, inputs, outputs, api_name="generate", concurrency_limit=1, concurrency_id="generate",
                trigger_mode="once", show_progress="full", show_progress_on=[status])
            cancel_button.click(self.cancel, None, [status], api_name="cancel", queue=False,
                                cancels=[generate_event], show_progress="hidden")
            demo.unload(self.closed)

            refresh.click(self.refresh_models, [model_box], [model_box, empty], queue=False, api_visibility="private",
                          show_progress="hidden")
            model_box.change(self.apply_model_defaults, [model_box, fps_box],
                             [duration_box, resolution_box, motion_box, steps_box, noise_box, min_guidance_box,
                              max_guidance_box, decode_box, note_box],
                             queue=False, api_visibility="private", show_progress="hidden")
            for control in (duration_box, fps_box):
                control.change(self.frames_note, [model_box, duration_box, fps_box], [note_box], queue=False,
                               api_visibility="private", show_progress="hidden")
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


def build_ui(generator, *, work_dir: str | Path, queue_size: int = 20) -> gr.Blocks:
    """The page for `generator`, its Generate jobs queued one at a time, at most `queue_size` waiting.

    `work_dir` holds the files made for the page (previews of PNG frames, zips), not the outputs.
    """
    demo = WebApp(generator, work_dir).build()
    return demo.queue(max_size=queue_size, default_concurrency_limit=1)


__all__ = ["build_ui", "WebApp", "CSS", "frames_plan", "parse_resolution", "match_image_size", "model_defaults"]
