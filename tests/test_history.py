"""The job history (SQLite), the board's persisted queue, the partial folder and the disk checks, in-process.

Jobs run the tiny real SVD model from conftest.py at its smallest settings (64x64, 8 frames, 3 steps).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST, TINY_MODEL

from video_gen import GenerationRequest, InvalidRequest
from video_gen import history as job_history
from video_gen.history import History

ROOT = Path(__file__).resolve().parents[1]


def fast_request(photo, **changes) -> GenerationRequest:
    return GenerationRequest(image=str(photo), model=TINY_MODEL, **{**FAST, **changes})


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def ended(job, timeout: float = 120):
    """The job's last message (JobEnded)."""
    assert job.finished.wait(timeout), "the job never ended"
    last = None
    while not job.messages.empty():
        last = job.messages.get_nowait()
    return last


# ---- the store ------------------------------------------------------------------------------------
def test_store_is_wal_versioned_and_keeps_every_status_across_reopening(tmp_path):
    path = tmp_path / "outputs" / job_history.FILENAME
    store = History(path)
    ids = [store.add(json.dumps({"seed": number})) for number in range(4)]
    assert ids == sorted(ids)
    store.started(ids[0])
    store.finished(ids[0], job_history.DONE, output=str(tmp_path / "a.mp4"), info={"seed": 0}, elapsed_s=1.5)
    store.started(ids[1])
    store.finished(ids[2], job_history.FAILED, error="image: the file is empty")
    store.close()

    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == job_history.SCHEMA_VERSION
    raw.close()

    reopened = History(path)  # the next start-up
    assert reopened.mark_interrupted() == [ids[1]]
    statuses = {entry.id: entry.status for entry in reopened.entries()}
    assert statuses == {ids[0]: "done", ids[1]: "interrupted", ids[2]: "failed", ids[3]: "queued"}
    assert [entry.id for entry in reopened.queued()] == [ids[3]]
    done = reopened.get(ids[0])
    assert done.elapsed_s == 1.5 and done.info == {"seed": 0} and done.started_at <= done.finished_at
    with pytest.raises(ValueError, match="unknown status"):
        reopened.finished(ids[3], "exploded")
    reopened.close()


def test_a_database_from_a_newer_version_is_refused_not_damaged(tmp_path):
    path = tmp_path / job_history.FILENAME
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {job_history.SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(RuntimeError, match="newer video-gen"):
        History(path)


def test_delete_removes_the_output_and_its_settings_but_nothing_outside_outputs(tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    video, sidecar = outputs / "clip.mp4", outputs / "clip.json"
    video.write_bytes(b"video")
    sidecar.write_text("{}")
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(b"keep me")
    store = History(outputs / job_history.FILENAME)
    inside_id, outside_id = store.add("{}"), store.add("{}")
    store.finished(inside_id, job_history.DONE, output=str(video))
    store.finished(outside_id, job_history.DONE, output=str(outputs / ".." / "elsewhere.mp4"))
    store.delete(inside_id)
    store.delete(outside_id)
    assert not video.exists() and not sidecar.exists() and outside.read_bytes() == b"keep me"
    assert store.entries() == []


# ---- the board: every job recorded, its own queue in order, resumed after a restart ----------------
def test_board_records_jobs_runs_them_in_order_and_resumes_the_queue(models_dir, photo, tmp_path):
    from video_gen import Generator
    from video_gen.web.jobs import DONE, JobBoard, Waiting

    outputs = tmp_path / "outputs"
    store = History(outputs / job_history.FILENAME, outputs_dir=outputs)
    generator = Generator(models_dir=models_dir, outputs_dir=outputs)
    board = JobBoard(generator, tmp_path / "work", store, max_waiting=2)
    jobs = [board.submit(fast_request(photo, seed=10 + number), "tab") for number in range(3)]
    with pytest.raises(InvalidRequest, match="^queue: 2 jobs are already waiting"):
        board.submit(fast_request(photo), "tab")
    assert any(isinstance(message, Waiting) and message.ahead == 2 for message in list(jobs[2].messages.queue))
    results = [ended(job) for job in jobs]
    assert [result.outcome for result in results] == [DONE] * 3
    entries = store.entries(newest_first=False)
    assert [entry.status for entry in entries] == ["done"] * 3
    assert [entry.request["seed"] for entry in entries] == [10, 11, 12]
    started = [entry.started_at for entry in entries]
    assert started == sorted(started) and all(a.finished_at <= b.started_at for a, b in zip(entries, entries[1:]))
    # The stored picture is a copy in the outputs folder, so a re-run works after the upload is gone.
    stored_image = Path(entries[0].request["image"])
    assert stored_image.parent == outputs / ".inputs" and stored_image.read_bytes() == photo.read_bytes()
    assert [record.history_id for record in board.past_outputs()] == [entry.id for entry in reversed(entries)]

    # Two jobs are queued behind one that is cut off: a new board on the same store (the next start-up)
    # marks the cut one interrupted and runs the queued ones.
    cut = store.add(fast_request(photo, seed=20).to_json())
    store.started(cut)
    queued = [store.add(fast_request(photo, seed=21 + number).to_json()) for number in range(2)]
    restarted = JobBoard(generator, tmp_path / "work2", History(outputs / job_history.FILENAME, outputs_dir=outputs))
    resumed = restarted.resume()
    assert [job.history_id for job in resumed] == queued
    assert all(ended(job).outcome == DONE for job in resumed)
    assert restarted.history.get(cut).status == "interrupted"
    assert [restarted.history.get(job_id).status for job_id in queued] == ["done", "done"]

    rerun = restarted.rerun(cut)  # one click: the interrupted job again, with its seed
    assert ended(rerun).outcome == DONE
    again = restarted.history.get(rerun.history_id)
    assert again.status == "done" and again.rerun_of == cut and again.request["seed"] == 20

    deleted = restarted.delete(rerun.history_id)
    assert not Path(deleted.output).exists() and restarted.history.get(rerun.history_id) is None


def test_a_waiting_job_that_is_cancelled_leaves_the_queue_and_never_runs(generator, photo, tmp_path):
    from video_gen.web.jobs import CANCELLED, DONE, JobBoard

    board = JobBoard(generator, tmp_path / "work")
    first = board.submit(fast_request(photo, num_inference_steps=20), "a")
    second = board.submit(fast_request(photo), "b")
    board.cancel("b")
    assert ended(second).outcome == CANCELLED and board.history.get(second.history_id).status == "cancelled"
    assert ended(first).outcome == DONE
    assert board.history.get(second.history_id).started_at is None


# ---- partial folder, full disk, unwritable outputs ------------------------------------------------
def test_outputs_are_written_in_the_partial_folder_and_moved_into_place(tmp_path, monkeypatch):
    import numpy as np

    from video_gen import video_io

    outputs = tmp_path / "outputs"
    work = video_io.partial_dir(outputs)
    seen = []
    real_encode = video_io._encode

    def spying_encode(frames, output, **kwargs):  # where the half-written file lives while ffmpeg runs
        seen.append(Path(output))
        return real_encode(frames, output, **kwargs)

    monkeypatch.setattr(video_io, "_encode", spying_encode)
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    target = video_io.write_video(frames, outputs / "clip.mp4", fps=8)
    assert seen[0].parent == work and target.is_file() and list(work.iterdir()) == []
    folder = video_io.write_video(frames, outputs / "frames", fps=8, format="png")
    assert len(list(folder.glob("frame_*.png"))) == 4 and list(work.iterdir()) == []
    elsewhere = video_io.write_video(frames, tmp_path / "mine" / "clip.mp4", fps=8)  # a path the user named
    assert seen[-1].parent == elsewhere.parent

    (work / ".clip2.mp4.partial-dead").write_bytes(b"half")  # what a kill -9 leaves
    (work / ".frames2.partial-dead").mkdir()
    assert video_io.clean_partial(outputs) == 2 and list(work.iterdir()) == []


def test_a_full_disk_is_refused_before_the_job_starts(generator, photo, monkeypatch):
    import shutil as shutil_module

    from video_gen import running

    usage = shutil_module.disk_usage(generator.outputs_dir)
    monkeypatch.setattr(running.shutil, "disk_usage", lambda path: usage._replace(free=10 * 2**20))
    loads, events = generator.loads, []
    with pytest.raises(InvalidRequest, match=r"^output_path: not enough free disk space .* 10 MB free"):
        generator.generate(fast_request(photo), on_event=events.append)
    assert events == [] and generator.loads == loads  # nothing ran, no model was loaded for it


def test_an_unwritable_outputs_folder_is_a_clear_message_at_start_and_before_a_job(models_dir, photo, tmp_path):
    import os

    from video_gen import Generator

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    unwritable = [blocker / "outputs"]  # cannot be created, whoever runs the tests
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root ignores folder permissions
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        unwritable.append(locked)
    try:
        for outputs in unwritable:
            with pytest.raises(InvalidRequest, match=r"^output_path: (the folder .* is not writable|cannot create)"):
                Generator(models_dir=models_dir, outputs_dir=outputs).generate(fast_request(photo))
            done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", "1", "--models-dir",
                                   str(models_dir), "--outputs-dir", str(outputs)],
                                  capture_output=True, text=True, timeout=120, cwd=ROOT)
            assert done.returncode != 0 and "cannot write to the outputs folder" in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
    finally:
        for folder in unwritable[1:]:
            folder.chmod(0o700)


def test_cli_history_lists_the_jobs(tmp_path):
    outputs = tmp_path / "outputs"
    store = History(outputs / job_history.FILENAME)
    first = store.add(json.dumps({"model": TINY_MODEL, "seed": 7, "num_frames": 8, "width": 64, "height": 64}))
    store.finished(first, job_history.DONE, output=str(outputs / "a.mp4"))
    second = store.add(json.dumps({"model": TINY_MODEL, "seed": 8}))
    store.started(second)
    store.mark_interrupted()
    store.close()
    run = [sys.executable, "-m", "video_gen", "history", "--outputs-dir", str(outputs)]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"{second}\t") and "interrupted" in lines[0]
    assert lines[1].startswith(f"{first}\t") and "done" in lines[1] and "seed 7" in lines[1] and "a.mp4" in lines[1]
    done = subprocess.run([*run, "--json", "--status", "done"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["id"] for row in rows] == [first] and rows[0]["request"]["seed"] == 7
    shutil.rmtree(outputs)
