"""Typed messages from a running job to whoever watches it (the page, the CLI's progress bar).

Nothing flows back up the pipeline except these (as FramePack's worker sends `progress`/`file`/`end`
messages to its page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

# Stages in the order a job passes through them (enhancing and upscaling only when the job asks for them).
ENHANCING = "enhancing"
LOADING_MODEL = "loading_model"
ENCODING_IMAGE = "encoding_image"
DENOISING = "denoising"
DECODING = "decoding"
INTERPOLATING = "interpolating"
UPSCALING = "upscaling"
WRITING = "writing"

STAGE_LABELS = {
    ENHANCING: "enhancing the prompt",
    LOADING_MODEL: "loading model",
    ENCODING_IMAGE: "encoding image",
    DENOISING: "denoising",
    DECODING: "decoding frames",
    INTERPOLATING: "interpolating frames",
    UPSCALING: "upscaling frames",
    WRITING: "writing video",
}


@dataclass(frozen=True)
class StageEvent:
    """A job entered a new stage."""

    stage: str
    message: str
    segment: int = 1  # long videos are made of chained segments
    segments: int = 1
    kind: str = "stage"


@dataclass(frozen=True)
class StepEvent:
    """One unit of a stage finished: a denoising step, or a chunk of decoded frames."""

    stage: str
    index: int  # 1-based
    total: int
    elapsed_s: float  # since the job started
    eta_s: float  # estimated seconds until this stage ends (of the current segment)
    segment: int = 1  # long videos are made of chained segments
    segments: int = 1
    # A pipeline that makes one generation section by section (FramePack): the section this step is in, of how
    # many (0: no sections); `index` and `total` then count the steps of the whole generation
    section: int = 0
    sections: int = 0
    kind: str = "step"


@dataclass(frozen=True)
class PreviewEvent:
    """A cheap look at the video while it is denoised (a PIL image of one frame)."""

    image: Any
    index: int
    total: int
    kind: str = "preview"


@dataclass(frozen=True)
class DoneEvent:
    result: Any  # the job's `results.GenerationResult` (this ground-floor module imports nothing above it)
    kind: str = "done"


Event = Union[StageEvent, StepEvent, PreviewEvent, DoneEvent]
EventCallback = Callable[[Event], None]
