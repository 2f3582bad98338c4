"""Issue 29 away from the browser: the job board's two races (a closed tab's job, a cancel while the file is
written), paths in the history, the command line's manners (mistakes before the heavy imports, "did you mean",
a header, the picture's name, a closed pipe, no escape codes in a log), the estimate before a long job and the
finished segments kept on Ctrl+C, the second demo, and the lengths and rates the tabs offer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST, TINY_MODEL

from video_gen import GenerationRequest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "video_gen"]
QUICK = dict(width=64, height=64, num_frames=8, num_inference_steps=2)


def run_cli(*args, cwd=ROOT, **options) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, **options)


# ---- the job board's races (the closed tab's queued job that still ran) -----------------------------------------
@pytest.fixture()
def board(models_dir, tmp_path):
    from video_gen import Generator
    from video_gen.web.jobs import JobBoard

    return JobBoard(Generator(models_dir=models_dir, outputs_dir=tmp_path / "outputs"), tmp_path / "work")


def test_a_job_submitted_as_its_tab_closes_never_runs(board, photo):
    """The handler checks that its tab is open, reads the picture, and submits: a tab closed in between left the
    job queued, to run for nobody after the job before it (what tests/test_browser.py saw as one video more)."""
    from video_gen.web.jobs import CANCELLED

    board.close_session("tab")
    job = board.submit(GenerationRequest(image=str(photo), model=TINY_MODEL, **QUICK), "tab")
    assert job.finished.wait(60)
    ended = [message for batch in job.batches() for message in batch][-1]
    assert ended.outcome == CANCELLED
    row = board.history.get(job.history_id)
    assert row.status == "cancelled" and row.started_at is None  # it never started
    assert not list((board.generator.outputs_dir).glob("*.mp4"))


def test_a_cancel_that_arrives_while_the_video_is_written_saves_nothing(board, photo, monkeypatch):
    """The cancel flag was checked at every step but not after the last: a job cancelled while its file was
    being encoded wrote it anyway, while the page said "Cancelled … saves nothing"."""
    from video_gen import video_io
    from video_gen.web.jobs import CANCELLED

    encode = video_io._encode

    def encode_then_cancel(*args, **kwargs):  # the fault: the cancel comes while the file is written
        encode(*args, **kwargs)
        board.cancel("tab")

    monkeypatch.setattr(video_io, "_encode", encode_then_cancel)
    job = board.submit(GenerationRequest(image=str(photo), model=TINY_MODEL, **QUICK), "tab")
    assert job.finished.wait(120)
    ended = [message for batch in job.batches() for message in batch][-1]
    assert ended.outcome == CANCELLED
    assert board.history.get(job.history_id).status == "cancelled"
    outputs = board.generator.outputs_dir
    assert not list(outputs.glob("*.mp4")) and not list(outputs.glob("*.json"))
    assert not [path for path in outputs.rglob("*") if path.suffix == ".mp4"]  # nothing half-written left either


# ---- paths in the history (item 3) -----------------------------------------------------------------------------
def test_a_relative_outputs_dir_is_stored_absolute_and_the_page_finds_the_videos(models_dir, photo, tmp_path,
                                                                                 monkeypatch):
    """`video-gen batch … --outputs-dir repo/outputs` from another folder stored relative paths: the page, started
    elsewhere, lost those videos and "Run again now" said the kept picture was not found."""
    from video_gen import Generator
    from video_gen.cli import main
    from video_gen.web.jobs import JobBoard

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "repo").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert main(["batch", str(photo), "--models-dir", str(models_dir), "--outputs-dir", "repo/outputs", "--width",
                 "64", "--height", "64", "--frames", "8", "--steps", "2", "--quiet"]) == 0
    monkeypatch.chdir(tmp_path)  # the page, started from another folder
    outputs = elsewhere / "repo" / "outputs"
    board = JobBoard(Generator(models_dir=models_dir, outputs_dir=outputs), tmp_path / "work")
    [entry] = board.history.entries()
    assert os.path.isabs(entry.output) and os.path.isabs(entry.request["image"])
    assert [record.history_id for record in board.past_outputs()] == [entry.id]  # in the gallery
    again = board.rerun(entry.id)
    assert again.finished.wait(120) and board.history.get(again.history_id).status == "done"


def test_old_relative_rows_are_read_against_the_folder_they_were_made_in(tmp_path, photo, monkeypatch):
    from video_gen.history import History

    repo = tmp_path / "made-in" / "repo" / "outputs"
    (repo / ".inputs").mkdir(parents=True)
    shutil.copyfile(photo, repo / ".inputs" / "abc.png")
    (repo / "old.mp4").write_bytes(b"a video")
    store = History(repo / "history.sqlite3")
    job = store.add(json.dumps({"image": str(repo / ".inputs" / "abc.png")}))
    store.close()
    with sqlite3.connect(repo / "history.sqlite3") as connection:  # as an older version wrote it, from made-in/
        connection.execute("UPDATE jobs SET status = 'done', output = ?, request = ? WHERE id = ?",
                           ("repo/outputs/old.mp4", json.dumps({"image": "repo/outputs/.inputs/abc.png"}), job))
    monkeypatch.chdir(tmp_path)
    entry = History(repo / "history.sqlite3").get(job)
    assert entry.output == str(repo / "old.mp4") and entry.output_exists
    assert entry.request["image"] == str(repo / ".inputs" / "abc.png")


# ---- the command line's manners (items 13, 14, 15) --------------------------------------------------------------
def test_command_line_mistakes_are_said_before_the_heavy_imports(tmp_path, photo):
    """A missing file or `--duration 0` took 5-11 s to report: torch and diffusers were imported first."""
    timings = {}
    for name, args, expected in (
            ("missing file", ["generate", tmp_path / "missing.png"], "image: file not found"),
            ("zero duration", ["generate", photo, "--duration", "0"], "duration: must be more than 0 seconds"),
            ("misspelt flag", ["generate", photo, "--sead", "7"], "--sead: did you mean --seed?"),
            ("misspelt command", ["genrate", photo], "did you mean generate?")):
        started = time.perf_counter()
        done = run_cli(*args, "--models-dir", tmp_path)
        timings[name] = time.perf_counter() - started
        assert done.returncode == 1 and expected in done.stderr and len(done.stderr.strip().splitlines()) == 1, \
            done.stderr
    print("seconds to the error: " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in timings.items()))
    assert timings["missing file"] < 1.0, timings  # what the issue asks for, on this machine as it is


def test_models_list_has_a_header_and_history_ends_quietly_when_its_reader_does(demo_pair, tmp_path, capsys):
    from video_gen.cli import main
    from video_gen.history import History

    assert main(["models", "list", "--models-dir", str(demo_pair)]) == 0
    listed = capsys.readouterr()
    assert listed.err.splitlines()[0].split("\t")[:3] == ["NAME", "FAMILY", "KIND"]  # for a person (stderr)
    assert listed.out.splitlines()[0].startswith("demo-svd-tiny\tsvd\t")  # rows only, for scripts

    store = History(tmp_path / "outputs" / "history.sqlite3")
    for seed in range(2000):  # more than a pipe holds, so the reader is gone before the last write
        store.add(json.dumps({"model": "m", "seed": seed}))
    store.close()
    command = f"{sys.executable} -m video_gen history --outputs-dir {tmp_path / 'outputs'} --limit 2000 | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and done.stdout.startswith("2000\t") and done.stderr == "", done.stderr


def test_a_batch_names_its_videos_after_their_pictures_and_logs_plain_lines(models_dir, photo, tmp_path, capsys):
    from video_gen.cli import main

    pictures = tmp_path / "shots"
    pictures.mkdir()
    shutil.copyfile(photo, pictures / "harbour at dawn.png")
    assert not sys.stderr.isatty()  # as in a log file (captured)
    assert main(["batch", str(pictures), "--models-dir", str(models_dir), "--outputs-dir", str(tmp_path / "outputs"),
                 "--width", "64", "--height", "64", "--frames", "8", "--steps", "2"]) == 0
    err = capsys.readouterr().err
    [video] = (tmp_path / "outputs").glob("*.mp4")
    assert f"_{TINY_MODEL}_harbour-at-dawn_" in video.name
    assert "\r" not in err and "\x1b[" not in err, repr(err)  # a log, not a terminal
    assert "batch line 1 (1 of 1) done" in err


def test_a_long_job_says_its_time_first_and_ctrl_c_keeps_the_finished_segments(models_dir, photo, tmp_path):
    """Item 13: a 35-segment job ran with no estimate, and Ctrl+C at segment 35 kept nothing."""
    from video_gen import Generator
    from video_gen.cli.generate import say_estimate

    # The estimate, before a job over a minute (from a short test run: this machine has no history yet)
    engine = Generator(models_dir=models_dir, outputs_dir=tmp_path / "estimate")
    long_job = engine.prepare(GenerationRequest(image=str(photo), model=TINY_MODEL, width=64, height=64,
                                                num_frames=720, num_inference_steps=50))
    process = subprocess.Popen([*CLI, "generate", str(photo), "--models-dir", str(models_dir), "--outputs-dir",
                                str(tmp_path / "outputs"), "--width", "64", "--height", "64", "--frames", "24",
                                "--steps", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    import contextlib
    import io

    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        say_estimate(engine, long_job)
    assert "this job should take about" in said.getvalue() and "Ctrl+C keeps the finished ones" in said.getvalue()
    seen = []
    for line in process.stderr:  # the event: the third segment has begun
        seen.append(line)
        if "segment 3 of" in line:
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=120)
    err = "".join(seen) + err
    assert process.returncode == 130 and out == "", err
    [partial] = (tmp_path / "outputs").glob("*_partial.mp4")
    from video_gen import video_io

    kept = video_io.read_metadata(partial)["partial"]
    assert kept["segments"] == 2 and f"kept the 2 finished segments ({kept['frames']} frames" in err, err
    assert str(partial.name) in err
    assert video_io.probe_video(partial).frames == kept["frames"] > 8  # playable: both segments, seam shared
    for chatter in ("Loading pipeline components", "%|", "torchvision"):  # quiet libraries
        assert chatter not in err, err


# ---- the second demo (item 16) -----------------------------------------------------------------------------------
def test_the_lora_demo_runs_its_lora_and_says_it_is_noise(demo_pair, tmp_path, capsys):
    from video_gen import Generator, video_io
    from video_gen.demo import DEMO_NOTE, LORA_DEMO_NAME
    from video_gen.loras import LoraChoice

    generator = Generator(models_dir=demo_pair, outputs_dir=tmp_path / "outputs")
    result = generator.generate(GenerationRequest(model=LORA_DEMO_NAME, prompt="a lighthouse", num_inference_steps=4,
                                                  loras=(LoraChoice("demo-lora-tiny", 0.8),), seed=3))
    stored = video_io.read_metadata(result.path)
    assert stored["demo"] == DEMO_NOTE and stored["loras"][0]["name"] == "demo-lora-tiny"
    assert (result.request.width, result.request.num_frames) == (128, 8)  # its own small defaults
    from video_gen.cli import main

    assert main(["models", "list", "--models-dir", str(demo_pair)]) == 0
    listed = capsys.readouterr().out
    assert f"demo-lora-tiny\tanimatediff\tlora (diffusers; {DEMO_NOTE}; fits {LORA_DEMO_NAME})" in listed


# ---- what the tabs offer (items 10, 12) --------------------------------------------------------------------------
def test_smooth_offers_the_rates_a_video_can_reach():
    from video_gen.smoothing import reachable_rates

    assert [rate for _, rate in reachable_rates(8)] == [16, 24, 32, 0]
    assert [rate for _, rate in reachable_rates(7)] == [14, 21, 28, 0]


def test_each_offered_rate_plans_its_own_factor_at_23_976_fps():
    """23.976 × 3 offered as 71.93 (rounded up to 2 decimals) planned 4×: ceil(71.93 / 23.976) is 4."""
    from video_gen.smoothing import plan_smooth, reachable_rates
    from video_gen.video_io import VideoInfo

    info = VideoInfo(frames=9, fps=23.976, width=64, height=48, codec="h264", pix_fmt="yuv420p", duration_s=0.375)
    offered = reachable_rates(info.fps)[:-1]  # the last is "keep"
    assert [plan_smooth(info, rate, "none").factor for _, rate in offered] == [2, 3, 4]
    assert [label for label, _ in offered] == ["47.952 fps (2×)", "71.928 fps (3×)", "95.904 fps (4×)"]


def test_one_more_second_is_one_generation_not_two(generator, photo, tmp_path):
    """Item 12: +1 s at 8 fps on a model that makes 8 frames at a time cost two segments (twice the source)."""
    from video_gen.extend import prepare_extension

    source = generator.generate(GenerationRequest(image=str(photo), model=TINY_MODEL, fps=8, **FAST))
    job = prepare_extension(generator, source.path, duration=1.0)
    assert job.length.segments == 1 and job.finish.new_frames == 7
    assert any("7 new frames instead of 8" in note for note in job.notes)
