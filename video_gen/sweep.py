"""Sweep grids: one picture (or prompt) and one base request, one or two numeric fields varied over lists.

`plan_sweep` checks everything before any work: the fields (any numeric `GenerationRequest` field), their values
(each cell is prepared by the engine, so a value out of range is one line naming the field and the cell), at
most `MAX_CELLS` cells, and which varied fields the chosen model ignores (a warning naming them). Every cell
is an ordinary job: its own output, metadata and history row, reproducible alone; a random base seed is drawn
once, so the cells differ only in what is varied. `Sweep.run` runs the cells one after another on the
resident model ("cell k of n" events; `Sweep.cancel` stops the rest), then `write_comparison` writes the
comparison: a video of every cell playing in sync in a labelled grid (the values under each tile) and a
contact sheet PNG of each cell's middle frame, both in the outputs folder.

Where only seeds vary, the image encoding and prompt embeddings are the same in every cell. Computing them once
was measured (`bench/sweep.py`) and not done: see that script's notes for the numbers. Noise augmentation
draws from the seed's generator before SVD's VAE encodes the picture, so only the CLIP embedding is seed-free.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import video_io
from .audio import Sound
from .errors import Cancelled, InvalidRequest
from .request import FIELD, GenerationRequest, numeric_fields

MAX_CELLS = 36
MAX_AXES = 2
# Fields of the request that are numbers but do not make a picture different: varying them compares nothing.
NOT_VARIED = frozenset({"crf"})
# The comparison grid: tiles at least this wide (small videos are scaled up, by whole factors, so labels fit)
# and the whole grid at most this wide (Full HD; larger cells are scaled down).
MIN_TILE_WIDTH = 192
MAX_GRID_WIDTH = 1920
LINE_HEIGHT = 14  # Pillow's default bitmap font is 11 px high
BACKGROUND = 24


# `lora:NAME` varies the strength of the LoRA NAME (added to the request's LoRAs when it is not among them)
LORA_AXIS = "lora:"


def varied_fields() -> list[str]:
    """The request fields a sweep may vary: every numeric one (and a LoRA's strength, as `lora:NAME`)."""
    return sorted(set(numeric_fields()) - NOT_VARIED)


@dataclass(frozen=True)
class Axis:
    """One varied field and its values, in order."""

    field: str
    values: tuple[Any, ...]

    def label(self, value: Any) -> str:
        return f"{self.field}={_number(value)}"


def parse_vary(text: str) -> Axis:
    """`FIELD=V1,V2,…` (the CLI's --vary) as an `Axis`; InvalidRequest naming `vary` and the field."""
    if not isinstance(text, str) or "=" not in text:
        raise InvalidRequest("vary", f"must be FIELD=V1,V2,… (such as seed=1,2,3), got {text!r}")
    name, _, listed = text.partition("=")
    return make_axis(name.strip(), [value.strip() for value in listed.split(",") if value.strip()])


def make_axis(name: str, values) -> Axis:
    """An `Axis` of `values` (strings or numbers) for the request field `name`, each converted to its type."""
    allowed = varied_fields()
    is_lora = name.startswith(LORA_AXIS) and bool(name[len(LORA_AXIS):].strip())
    if name not in allowed and not is_lora:
        raise InvalidRequest("vary", f"unknown field {name!r}; a sweep varies one of: {', '.join(allowed)}, or "
                                     f"lora:NAME (a LoRA's strength)")
    if not values:
        raise InvalidRequest("vary", f"{name}: give at least one value, such as {name}=1,2,3")
    try:
        converted = tuple(_lora_strength(name, value) if is_lora else FIELD[name].kind.read(name, value)
                          for value in values)
    except InvalidRequest as error:
        raise InvalidRequest("vary", str(error)) from None
    if len(set(converted)) != len(converted):
        raise InvalidRequest("vary", f"{name}: a value is listed twice: {', '.join(map(_number, converted))}")
    return Axis(name, converted)


@dataclass(frozen=True)
class Cell:
    number: int  # 1-based, row by row
    row: int
    column: int
    values: tuple[tuple[str, Any], ...]  # (field, value) per axis
    job: Any  # the engine's PreparedJob

    @property
    def label(self) -> str:
        return ", ".join(f"{name}={_number(value)}" for name, value in self.values)


@dataclass(frozen=True)
class SweepPlan:
    axes: tuple[Axis, ...]
    cells: tuple[Cell, ...]
    rows: int
    columns: int
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"axes": [{"field": axis.field, "values": list(axis.values)} for axis in self.axes],
                "rows": self.rows, "columns": self.columns, "warnings": list(self.warnings),
                "cells": [{"cell": cell.number, "values": dict(cell.values)} for cell in self.cells]}


def check_axes(axes: tuple[Axis, ...] | list[Axis]) -> int:
    """One or two distinct fields, at most MAX_CELLS cells (raises InvalidRequest naming `vary`): the cell count.
    The Sweep tab's cost line checks it as it is typed, before it builds a cell."""
    if not 1 <= len(axes) <= MAX_AXES:
        raise InvalidRequest("vary", f"vary one or two fields, got {len(axes)}")
    if len({axis.field for axis in axes}) != len(axes):
        raise InvalidRequest("vary", f"{axes[0].field} is varied twice; vary two different fields")
    count = math.prod(len(axis.values) for axis in axes)
    if count > MAX_CELLS:
        raise InvalidRequest("vary", f"{' x '.join(str(len(axis.values)) for axis in axes)} = {count} cells; "
                                     f"at most {MAX_CELLS}")
    return count


def plan_sweep(generator, base: GenerationRequest, axes) -> SweepPlan:
    """Check a sweep completely (each cell through `generator.prepare`) before anything runs."""
    axes = tuple(axes)
    count = check_axes(axes)  # 1. The axes
    if not isinstance(base, GenerationRequest):
        raise InvalidRequest("request", f"must be a GenerationRequest, got {type(base).__name__}")
    # 2. One seed for every cell (unless the seed is varied), so that the cells differ only in what is varied
    base = base.validate().with_seed()
    if len(axes) == 2:
        rows, columns = len(axes[0].values), len(axes[1].values)
    else:
        columns = math.ceil(math.sqrt(count))
        rows = math.ceil(count / columns)
    # 3. Each cell is checked as the engine will run it; a bad value names its cell
    cells = []
    for number, values in enumerate(itertools.product(*(axis.values for axis in axes)), 1):
        pairs = tuple((axis.field, value) for axis, value in zip(axes, values))
        label = ", ".join(f"{name}={_number(value)}" for name, value in pairs)
        try:
            job = generator.prepare(cell_request(base, pairs))
        except InvalidRequest as error:
            message = str(error)
            prefix = f"{error.field}: "
            raise InvalidRequest(error.field, f"cell {number} of {count} ({label}): "
                                              f"{message[len(prefix):] if message.startswith(prefix) else message}"
                                 ) from None
        row, column = divmod(number - 1, columns)
        cells.append(Cell(number, row, column, pairs, job))
    spec = cells[0].job.spec
    return SweepPlan(axes, tuple(cells), rows, columns, tuple(ignored_warnings(spec, axes)))


def cell_request(base: GenerationRequest, pairs) -> GenerationRequest:
    """The base request with a cell's values: request fields replaced, a `lora:NAME` value as that LoRA's strength
    (in its place among the request's LoRAs, else added after them)."""
    from .loras import LoraChoice

    request = base.replace(**{name: value for name, value in pairs if not name.startswith(LORA_AXIS)})
    for name, strength in pairs:
        if name.startswith(LORA_AXIS):
            lora = name[len(LORA_AXIS):]
            chosen = LoraChoice(lora, strength)
            loras = tuple(chosen if choice.name == lora else choice for choice in request.loras)
            request = request.replace(loras=loras if chosen in loras else loras + (chosen,))
    return request


def _lora_strength(name: str, value) -> float:
    from .loras import LoraChoice, check_choices

    if isinstance(value, bool):
        raise InvalidRequest("vary", f"{name}: a LoRA's strength must be a number, got {value!r}")
    try:
        strength = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest("vary", f"{name}: a LoRA's strength must be a number, got {value!r}") from None
    check_choices((LoraChoice(name[len(LORA_AXIS):], strength),))
    return strength


def ignored_warnings(spec, axes) -> list[str]:
    """A warning for each varied field that the chosen model's family does not use (its field's `uses`): its cells
    will look alike."""
    return [f"{axis.field}: {spec.label} ignores it, so its cells differ only in the other settings"
            for axis in axes if axis.field in FIELD and not FIELD[axis.field].used_by(spec)]


@dataclass(frozen=True)
class CellEvent:
    """A sweep's cell begins: "cell k of n"."""

    index: int
    total: int
    label: str
    kind: str = "cell"

    @property
    def message(self) -> str:
        return f"cell {self.index} of {self.total} ({self.label})"


@dataclass(frozen=True)
class SweepResult:
    plan: SweepPlan
    results: tuple[Any, ...]  # the engine's GenerationResult per cell
    grid: Path  # the comparison video
    sheet: Path  # the contact sheet PNG
    info: dict[str, Any] = field(default_factory=dict)


class Sweep:
    """Runs a `SweepPlan` on one `Generator`: the cells in order (queued in the history at once), then the
    comparison. `cancel()` (from any thread) stops the running cell within a step and skips the rest."""

    def __init__(self, generator, plan: SweepPlan):
        self.generator = generator
        self.plan = plan
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    def run(self, on_event: Callable[[Any], None] | None = None) -> SweepResult:
        from . import history as job_history

        emit = on_event or (lambda event: None)
        cells = self.plan.cells
        history_ids = [self.generator.record(cell.job) for cell in cells]  # every cell is a queued job now

        def relay(event) -> None:
            if self.cancelled.is_set():
                self.generator.cancel()  # inside this job's own event: the running job is this cell
                raise Cancelled()
            emit(event)

        results = []
        try:
            for cell, history_id in zip(cells, history_ids):
                if self.cancelled.is_set():
                    raise Cancelled()
                emit(CellEvent(cell.number, len(cells), cell.label))
                results.append(self.generator.generate(cell.job, on_event=relay, history_id=history_id))
        except BaseException as error:  # cancelled, failed or Ctrl-C: the cells not run must not stay queued
            for history_id in history_ids[len(results):]:  # (the app would run queued jobs at its next start)
                entry = self.generator.history.get(history_id)
                if entry is not None and entry.status == job_history.QUEUED:
                    self.generator.history.finished(history_id, job_history.CANCELLED)
            if isinstance(error, Cancelled):
                raise Cancelled(f"sweep cancelled in cell {len(results) + 1} of {len(cells)}; the {len(results)} "
                                f"finished cell(s) are kept") from None
            raise
        with self.generator.turn():  # the comparison's decoding and encoding wait like any job
            grid, sheet, info = write_comparison(self.plan, [result.path for result in results],
                                                 self.generator.outputs_dir)
        return SweepResult(self.plan, tuple(results), grid, sheet, info)


# ---- the comparison ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GridLayout:
    """Where each cell's tile and label go in the comparison (the same for the video and the sheet)."""

    rows: int
    columns: int
    tile_width: int
    tile_height: int
    label_height: int

    @property
    def width(self) -> int:
        return self.columns * self.tile_width

    @property
    def height(self) -> int:
        return self.rows * (self.tile_height + self.label_height)

    def tile_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the tile at (row, column); its label is just below it."""
        left, top = column * self.tile_width, row * (self.tile_height + self.label_height)
        return left, top, left + self.tile_width, top + self.tile_height


def grid_layout(plan: SweepPlan, width: int, height: int) -> GridLayout:
    """Tiles the cells' size scaled by a whole factor up to MIN_TILE_WIDTH, or down to fit MAX_GRID_WIDTH."""
    scale = float(max(1, math.ceil(MIN_TILE_WIDTH / width)))
    if plan.columns * width * scale > MAX_GRID_WIDTH:
        scale = MAX_GRID_WIDTH / (plan.columns * width)
    tile_width, tile_height = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
    label_height = (len(plan.axes) * LINE_HEIGHT + 6 + 1) // 2 * 2  # even sizes for yuv420
    return GridLayout(plan.rows, plan.columns, tile_width, tile_height, label_height)


def write_comparison(plan: SweepPlan, outputs, outputs_dir) -> tuple[Path, Path, dict[str, Any]]:
    """The comparison video (every cell in sync, labelled) and the contact sheet (each cell's middle frame) of
    `outputs` (the cells' files, in the plan's order), written atomically into `outputs_dir`."""
    from PIL import Image, PngImagePlugin

    first = plan.cells[0].job.request
    layout = grid_layout(plan, first.width, first.height)
    tiles = [_tiles(path, layout) for path in outputs]
    frames = max(len(clip) for clip in tiles)
    canvas = _labelled_canvas(plan, layout)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = f"{stamp}_sweep_{'_'.join(axis.field for axis in plan.axes)}_{len(plan.cells)}cells"
    folder = Path(outputs_dir)
    info = {"app": "video-gen", "sweep": plan.to_dict(), "fps": first.fps,
            "cells": [{"cell": cell.number, "label": cell.label, "output": str(path),
                       "request": cell.job.request.to_dict()} for cell, path in zip(plan.cells, outputs)],
            "layout": {"rows": layout.rows, "columns": layout.columns, "tile": [layout.tile_width, layout.tile_height],
                       "label_height": layout.label_height}}

    def grid_frames():
        for index in range(frames):
            frame = canvas.copy()
            for cell, clip in zip(plan.cells, tiles):
                left, top, right, bottom = layout.tile_box(cell.row, cell.column)
                frame[top:bottom, left:right] = clip[min(index, len(clip) - 1)]  # a shorter cell holds its end
            yield frame

    # The first cell's sound, in sync with the grid (every cell starts together; a longer cell holds its end)
    sound = Sound.read(outputs[0]) if outputs else None
    if sound is not None:
        sound = sound.fitted(frames, first.fps)
        info["audio"] = {**sound.metadata("mp4"), "from_cell": plan.cells[0].number}
    grid = video_io.write_video(grid_frames(), video_io.unique_path(folder / f"{stem}.mp4"), fps=first.fps,
                                format="mp4", metadata=info, audio=sound)
    video_io.write_sidecar(grid, {**info, "grid": str(grid)})
    sheet_pixels = canvas.copy()
    for cell, clip in zip(plan.cells, tiles):
        left, top, right, bottom = layout.tile_box(cell.row, cell.column)
        sheet_pixels[top:bottom, left:right] = clip[len(clip) // 2]
    sheet = video_io.unique_path(folder / f"{stem}_sheet.png")
    text = PngImagePlugin.PngInfo()
    text.add_text("parameters", json.dumps(info))  # the key video_io uses for PNG frames
    with video_io.atomic_path(sheet, suffix=".png") as temporary:
        Image.fromarray(sheet_pixels).save(temporary, format="PNG", pnginfo=text)
    return grid, sheet, {**info, "grid": str(grid), "sheet": str(sheet)}


def _tiles(path, layout: GridLayout) -> np.ndarray:
    """A cell's frames at the tile size (nearest for whole-factor enlargements, so pixels stay as made)."""
    from PIL import Image

    frames, _ = video_io.read_video(path)
    size = (layout.tile_width, layout.tile_height)
    if frames.shape[1:3] == (layout.tile_height, layout.tile_width):
        return frames
    upscale = layout.tile_width % frames.shape[2] == 0 and layout.tile_height % frames.shape[1] == 0
    method = Image.Resampling.NEAREST if upscale else Image.Resampling.LANCZOS
    return np.stack([np.asarray(Image.fromarray(frame).resize(size, method)) for frame in frames])


def _labelled_canvas(plan: SweepPlan, layout: GridLayout) -> np.ndarray:
    """The grid's background with each cell's values written under its tile, one line per varied field."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("RGB", (layout.width, layout.height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for cell in plan.cells:
        left, _, _, bottom = layout.tile_box(cell.row, cell.column)
        for line, (name, value) in enumerate(cell.values):
            draw.text((left + 4, bottom + 3 + line * LINE_HEIGHT), f"{name}={_number(value)}", fill=(235, 235, 235),
                      font=font)
    return np.asarray(canvas).copy()


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


__all__ = ["Axis", "Cell", "CellEvent", "GridLayout", "Sweep", "SweepPlan", "SweepResult", "MAX_CELLS",
           "grid_layout", "ignored_warnings", "make_axis", "parse_vary", "plan_sweep", "varied_fields",
           "write_comparison"]
