"""The job's progress on the page: the status panel's boxes and the progress bar with stage, step, segment,
elapsed time and ETA, drawn from the engine's typed events (`events.py`) as the job board relays them."""

from __future__ import annotations

import html

from ..events import (
    DECODING,
    DENOISING,
    ENCODING_IMAGE,
    ENHANCING,
    INTERPOLATING,
    LOADING_MODEL,
    STAGE_LABELS,
    UPSCALING,
    WRITING,
    StageEvent,
    StepEvent,
)
from ..timing import whole_job_eta
from .jobs import OutputRecord, Tick, Waiting

# At most ~5 progress updates a second: a step of a real model takes longer, so each one is shown, while
# tiny fast jobs do not spend their time on page updates (see jobs.WebJob.batches).
UPDATE_EVERY_S = 0.2

# Where each stage sits on the one progress bar. The segments of a long video share SEGMENTS_SPAN
# equally, each split by SEGMENT_STAGE_SPANS (denoising is by far the longest part of a segment).
JOB_STAGE_SPANS = {ENHANCING: (0.0, 0.02), LOADING_MODEL: (0.0, 0.03), INTERPOLATING: (0.90, 0.98),
                   UPSCALING: (0.90, 0.99), WRITING: (0.98, 1.0)}
SEGMENTS_SPAN = (0.03, 0.90)
SEGMENT_STAGE_SPANS = {ENCODING_IMAGE: (0.0, 0.04), DENOISING: (0.04, 0.90), DECODING: (0.90, 1.0)}


def status_box(body: str, tone: str = "neutral") -> str:
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


def status_idle(text: str = "Ready: press Generate.") -> str:
    return status_box(html.escape(text))


def status_error(message: str, verb: str = "generate") -> str:
    """A failed job or a refused input, in one line: "Could not <verb>: <message>"."""
    return status_box(f"<b>Could not {html.escape(verb)}:</b> {html.escape(message)}", "error")


def status_cancelled(text: str = "Cancelled. Nothing was saved; ready for the next job.") -> str:
    return status_box(html.escape(text), "cancelled")


def status_done(record: OutputRecord) -> str:
    info = record.info
    text = (f"<b>Done</b> in {info['elapsed_s']:.1f} s · seed {record.seed} · {info['frames']} frames at "
            f"{info['fps']} fps · {info['resolution']}<br><small>{html.escape(str(record.path))}</small>")
    for note in info.get("notes", []):  # what was done to the picture (first frame of an animation, …)
        text += f"<br><small>Note: {html.escape(note)}</small>"
    return status_box(text, "done")


class ProgressView:
    """Renders the job's latest event as a bar, the stage, the elapsed time and the ETA."""

    def __init__(self, segments: int = 1, estimate=None) -> None:
        """`estimate`: the job's `timing.TimeEstimate`, for the whole job's ETA (None: the stage's ETA only)."""
        self.estimate = estimate
        self.stage: str | None = None
        self.message = "starting"
        self.index = 0
        self.total = 0
        self.segment, self.segments = 0, segments  # 0 until the first segment starts
        self.section, self.sections = 0, 0  # a pipeline's own sections (FramePack), from its step events
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
            self.section, self.sections = message.section, message.sections
            self.index, self.total = message.index, message.total
            self.elapsed_s, self.eta_s = message.elapsed_s, message.eta_s
        elif isinstance(message, Tick) and message.elapsed_s is not None:
            self.elapsed_s = message.elapsed_s

    def stage_eta(self) -> float | None:
        """The engine's ETA of the running stage once it has a step time to go by (else the estimate's share)."""
        if self.eta_s is not None and self.total and 1 < self.index <= self.total:
            return self.eta_s
        if self.estimate is not None and self.stage is not None:
            share = self.estimate.stages.get(self.stage, 0.0)
            if self.stage in SEGMENT_STAGE_SPANS:
                share /= max(self.segments, 1)
            return share * (1 - (self.index / self.total if self.total else 0.0))
        return None

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
        elif self.stage == DENOISING and self.total and self.sections:
            # the step events count the whole generation's steps; the headline counts the section's
            per_section = max(1, self.total // self.sections)
            step = self.index - (self.section - 1) * per_section
            headline = f"Denoising{segment} · section {self.section} of {self.sections} · step {step} of {per_section}"
        elif self.stage == DENOISING and self.total:
            headline = f"Denoising{segment} · step {self.index} of {self.total}"
        elif self.stage == DECODING and self.total:
            headline = f"Decoding frames{segment} · chunk {self.index} of {self.total}"
        elif self.stage == INTERPOLATING and self.total:
            headline = f"Interpolating frames · {self.index} of {self.total}"
        elif self.stage == UPSCALING and self.total:
            headline = f"Upscaling frames · {self.index} of {self.total}"
        else:
            headline = self.message[:1].upper() + self.message[1:]
        times = []
        if self.elapsed_s is not None:
            times.append(f"{_seconds(self.elapsed_s)} elapsed")
        # From the second step on: the engine's first estimate of a stage has no step time to go by.
        if self.eta_s is not None and self.total and 1 < self.index < self.total:
            times.append(f"ETA {_seconds(self.eta_s)} ({STAGE_LABELS.get(self.stage, self.stage)})")
        whole = whole_job_eta(self.estimate, self.stage, self.segment, self.stage_eta(), self.elapsed_s)
        if whole is not None and self.stage is not None:
            # (not "done": the tests and users look for "Done" as the end of a job)
            times.append(f'<span class="vg-job-eta">whole job: ~{_seconds(whole)} left</span>')
        percent = round(100 * self.fraction)
        bar = (f'<div style="height:10px;border-radius:5px;background:var(--neutral-200);margin:6px 0">'
               f'<div class="vg-bar" style="height:10px;border-radius:5px;width:{percent}%;'
               f'background:var(--color-accent);transition:width .2s"></div></div>')
        body = (f'<b class="vg-stage">{html.escape(headline)}</b>{bar}'
                f'<small class="vg-times">{" · ".join(times) or "&nbsp;"}</small>')
        return status_box(body, "busy")


def _seconds(value: float) -> str:
    value = max(0.0, value)
    return f"{value:.1f} s" if value < 60 else f"{int(value // 60)} min {int(value % 60):02d} s"


__all__ = ["ProgressView", "status_idle", "status_error", "status_cancelled", "status_done", "status_box", "UPDATE_EVERY_S"]
