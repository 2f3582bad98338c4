"""Sweep grids on the tiny real SVD: a 2x3 sweep whose cells are bit-identical to the same requests run alone,
its labelled comparison video and contact sheet, cancelling in cell 3, and the one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_MODEL, video_files
from PIL import Image

from video_gen import Generator, GenerationRequest, video_io
from video_gen.errors import Cancelled, InvalidRequest
from video_gen.events import StepEvent
from video_gen.sweep import CellEvent, Sweep, make_axis, parse_vary, plan_sweep


@pytest.fixture(scope="module")
def engine(models_dir, tmp_path_factory):
    return Generator(models_dir=models_dir, outputs_dir=tmp_path_factory.mktemp("sweep-outputs"))


@pytest.fixture(scope="module")
def base(photo):
    return GenerationRequest(image=str(photo), model=TINY_MODEL, width=64, height=64, num_frames=8, fps=8,
                             num_inference_steps=2, seed=7, output_format="png")


def test_2x3_sweep_cells_equal_the_requests_run_alone_and_the_grid_shows_them(engine, base):
    plan = plan_sweep(engine, base, [parse_vary("seed=1,2"), parse_vary("motion_bucket_id=60,127,200")])
    assert (plan.rows, plan.columns, len(plan.cells), plan.warnings) == (2, 3, 6, ())
    events = []
    result = Sweep(engine, plan).run(on_event=events.append)

    assert [event.message for event in events if isinstance(event, CellEvent)] == [
        f"cell {number} of 6 (seed={seed}, motion_bucket_id={motion})"
        for number, (seed, motion) in enumerate([(s, m) for s in (1, 2) for m in (60, 127, 200)], 1)]
    assert any(isinstance(event, StepEvent) for event in events)  # each cell's own progress comes through
    cell_frames = []
    for cell, cell_result in zip(plan.cells, result.results):
        values = dict(cell.values)
        alone = engine.generate(base.replace(**values))  # the same request, run on its own
        frames, _ = video_io.read_video(cell_result.path)
        assert np.array_equal(frames, video_io.read_video(alone.path)[0]), f"cell {cell.number} differs"
        assert video_io.read_metadata(cell_result.path)["request"]["seed"] == values["seed"]  # its own metadata
        assert engine.history.get(cell_result.job_id).status == "done"
        cell_frames.append(frames)
    assert len({result.path for result in result.results}) == 6
    assert not np.array_equal(cell_frames[0], cell_frames[3])  # the seeds differ

    # The comparison video: 2 rows x 3 columns of 192x192 tiles (64x64 scaled 3x), a label strip under each
    layout = result.info["layout"]
    assert layout == {"rows": 2, "columns": 3, "tile": [192, 192], "label_height": layout["label_height"]}
    label_height = layout["label_height"]
    grid, info = video_io.read_video(result.grid)
    assert len(grid) == 8 and (info.width, info.height) == (3 * 192, 2 * (192 + label_height))
    assert result.grid.parent == engine.outputs_dir and result.sheet.parent == engine.outputs_dir
    for cell, frames in zip(plan.cells, cell_frames):
        top, left = cell.row * (192 + label_height), cell.column * 192
        for index in (0, 7):  # all cells in sync: tile k shows frame k of its cell
            tile = grid[index, top:top + 192, left:left + 192].astype(int)
            assert np.abs(tile[1::3, 1::3] - frames[index]).mean() < 6
        label = grid[0, top + 192:top + 192 + label_height, left:left + 192]
        assert (label > 200).any() and (label < 40).any()  # light text on the dark strip
    # The contact sheet (lossless): each tile is exactly its cell's middle frame, enlarged 3x
    sheet = np.asarray(Image.open(result.sheet).convert("RGB"))
    assert sheet.shape == (2 * (192 + label_height), 3 * 192, 3)
    for cell, frames in zip(plan.cells, cell_frames):
        top, left = cell.row * (192 + label_height), cell.column * 192
        assert np.array_equal(sheet[top:top + 192:3, left:left + 192:3], frames[4])


def test_cancel_in_cell_3_stops_the_rest(engine, base):
    plan = plan_sweep(engine, base, [make_axis("seed", [11, 12, 13, 14, 15, 16])])
    sweep = Sweep(engine, plan)
    before = set(video_files(engine.outputs_dir))
    first_job = engine.history.entries(limit=1)[0].id + 1 if engine.history.entries(limit=1) else 1
    current = []

    def on_event(event):
        if isinstance(event, CellEvent):
            current.append(event.index)
        elif isinstance(event, StepEvent) and current[-1] == 3:
            sweep.cancel()  # mid-denoising of cell 3

    with pytest.raises(Cancelled, match="cell 3 of 6"):
        sweep.run(on_event=on_event)
    assert current == [1, 2, 3] and not engine.busy
    statuses = [engine.history.get(job).status for job in range(first_job, first_job + 6)]
    assert statuses == ["done", "done", "cancelled", "cancelled", "cancelled", "cancelled"]
    new = set(video_files(engine.outputs_dir)) - before
    assert len(new) == 4 and all(not path.name.startswith(".") for path in new)  # two cells and their .json
    assert not any("sweep" in path.name for path in new)  # no comparison of a cancelled sweep
    partial = engine.outputs_dir / ".partial"
    assert not partial.exists() or not any(partial.iterdir())  # nothing half-written


@pytest.mark.parametrize("axes, expected", [
    (["colour=1,2"], "vary: unknown field 'colour'; a sweep varies one of: "),
    (["seed"], "vary: must be FIELD=V1,V2,"),
    (["seed=1,two"], "vary: seed: must be a whole number, got 'two'"),
    (["seed=1,2,3,4,5,6,7", "num_inference_steps=1,2,3,4,5,6"], "vary: 7 x 6 = 42 cells; at most 36"),
    (["seed=1,2", "motion_bucket_id=60,999"],
     "motion_bucket_id: cell 2 of 4 (seed=1, motion_bucket_id=999): must be a whole number from 1 to 255, got 999"),
])
def test_bad_sweeps_are_one_line_before_anything_runs(engine, base, axes, expected):
    jobs_before = len(engine.history.entries())
    with pytest.raises(InvalidRequest) as error:
        plan_sweep(engine, base, [parse_vary(text) for text in axes])
    assert str(error.value).startswith(expected) and "\n" not in str(error.value)
    assert len(engine.history.entries()) == jobs_before


def test_a_field_the_model_ignores_is_named_in_a_warning(engine, base):
    plan = plan_sweep(engine, base, [parse_vary("image_strength=0.2,0.8")])
    assert plan.warnings == ("image_strength: Stable Video Diffusion ignores it, so its cells differ only in the "
                             "other settings",)


def test_the_command_line_says_the_same_in_one_line(engine, photo, capsys):
    from video_gen.cli import main

    folders = ["--models-dir", str(engine.models_dir), "--outputs-dir", str(engine.outputs_dir)]
    # --vary takes the request's field names and the command line's flag names (motion = motion_bucket_id)
    assert main(["sweep", str(photo), "--vary", "seed=1,2,3,4,5,6,7", "--vary", "motion=1,2,3,4,5,6", *folders]) == 1
    assert capsys.readouterr().err == "video-gen: error: vary: 7 x 6 = 42 cells; at most 36\n"
    assert main(["sweep", str(photo), "--vary", "colour=1,2", *folders]) == 1
    assert capsys.readouterr().err.startswith("video-gen: error: vary: unknown field 'colour'; a sweep varies one of")
