"""Batches on the resident generator: a JSONL file, a folder, pictures; the results file; the resume rule; the
command line's bad inputs. The tiny real SVD model of conftest.py, 64x64, 8 frames, 3 steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST, TINY_MODEL
from PIL import Image

from video_gen import batch
from video_gen.cli import main

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {**FAST, "model": TINY_MODEL}
FLAGS = ["--width", "64", "--height", "64", "--frames", "8", "--steps", "3", "--quiet"]


def pictures(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        pixels = (np.random.default_rng(number).random((48, 64, 3)) * 255).astype(np.uint8)
        paths.append(folder / f"picture{number}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def engine(models_dir, tmp_path_factory):
    """A resident generator of this module's own (its history counts the jobs that really ran)."""
    from video_gen import Generator

    return Generator(models_dir=models_dir, outputs_dir=tmp_path_factory.mktemp("batch-outputs"))


def jobs_run(generator) -> int:
    return len(generator.history.entries(limit=10_000))


def six_lines(folder: Path) -> Path:
    """A 6-line JSONL: pictures given relative to the file, fixed seeds, PNG frames."""
    pictures(folder / "pics", 6)
    rows = [{"image": f"pics/picture{number}.png", "seed": 10 + number, "output_format": "png",
             "motion_bucket_id": 40 * (number + 1)} for number in range(6)]
    return write_jsonl(folder / "shots.jsonl", rows)


def test_a_jsonl_batch_runs_every_line_and_records_them_in_line_order(engine, tmp_path):
    shots = six_lines(tmp_path)
    lines = batch.read_batch([shots], OPTIONS)
    events = []
    summary = batch.run_local(lines, engine, batch.Results(tmp_path / "results.jsonl"), on_event=events.append)

    assert summary.ran == [1, 2, 3, 4, 5, 6] and not summary.errors and summary.exit_code == 0
    entries = [json.loads(raw) for raw in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [entry["line"] for entry in entries] == [1, 2, 3, 4, 5, 6]
    for number, entry in enumerate(entries):
        assert entry["status"] == "success" and entry["seed"] == 10 + number and entry["error"] is None
        output = Path(entry["output"])
        assert output.is_dir() and len(list(output.glob("frame_*.png"))) == FAST["num_frames"]
        assert entry["sha256"] == batch.output_sha256(output)
        stored = json.loads(output.with_name(output.name + ".json").read_text())["request"]
        assert stored["motion_bucket_id"] == 40 * (number + 1) and stored["image"].endswith(f"picture{number}.png")
    # a bar over the batch and one per job: the engine's own steps arrive, tagged with their line
    assert {event.line for event in events if event.kind == "job" and event.job.kind == "step"} == set(range(1, 7))
    assert [event.done for event in events if event.kind == "finished"] == [1, 2, 3, 4, 5, 6]


def test_a_batch_killed_after_two_jobs_resumes_with_only_the_remaining_lines(engine, tmp_path):
    shots = six_lines(tmp_path)
    results_path = tmp_path / "shots.results.jsonl"

    def interrupt_after_two(event):
        if event.kind == "finished" and event.done == 2:
            raise KeyboardInterrupt  # what Ctrl+C does between two jobs

    before = jobs_run(engine)
    with pytest.raises(KeyboardInterrupt):
        batch.run_local(batch.read_batch([shots], OPTIONS), engine, batch.Results(results_path),
                        on_event=interrupt_after_two)
    first = [json.loads(raw) for raw in results_path.read_text().splitlines()]  # a whole file: every line JSON
    assert [entry["line"] for entry in first] == [1, 2] and jobs_run(engine) == before + 2
    assert not list(tmp_path.glob(".*partial*")), "a temporary results file was left behind"

    summary = batch.run_local(batch.read_batch([shots], OPTIONS), engine, batch.Results(results_path))
    assert summary.skipped == [1, 2] and summary.ran == [3, 4, 5, 6]
    assert jobs_run(engine) == before + 6, "a line done before ran again"
    entries = [json.loads(raw) for raw in results_path.read_text().splitlines()]
    assert [entry["line"] for entry in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[:2] == first  # the lines done before keep their outputs and entries

    # The rule: a line runs again when its output is gone or changed, or when its request changed
    import shutil

    shutil.rmtree(entries[2]["output"])
    frame = Path(entries[3]["output"]) / "frame_00000.png"
    frame.write_bytes(frame.read_bytes() + b"\0")
    rows = [json.loads(raw) for raw in shots.read_text().splitlines()]
    rows[4]["seed"] = 99
    write_jsonl(shots, rows)
    summary = batch.run_local(batch.read_batch([shots], OPTIONS), engine, batch.Results(results_path))
    assert summary.ran == [3, 4, 5] and summary.skipped == [1, 2, 6]
    assert json.loads(results_path.read_text().splitlines()[4])["seed"] == 99


def test_bad_lines_are_reported_with_their_number_and_the_batch_goes_on(engine, tmp_path):
    pictures(tmp_path / "pics", 2)
    shots = write_jsonl(tmp_path / "bad.jsonl", [
        {"image": "pics/picture0.png", "seed": 5},
        "{this is not json",
        {"image": "pics/picture1.png", "colour": "red"},
        "",
        {"image": "pics/missing.png"},
        {"image": "pics/picture1.png", "model": "not-installed"},
        {"image": "pics/picture1.png", "motion_bucket_id": 999},
        {"image": "pics/picture1.png", "seed": 6},
    ])
    results_path = tmp_path / "bad.results.jsonl"
    summary = batch.run_local(batch.read_batch([shots], OPTIONS), engine, batch.Results(results_path))

    assert summary.ran == [1, 8] and sorted(summary.errors) == [2, 3, 5, 6, 7]  # line 4 is blank
    assert summary.exit_code == 1  # only bad input
    errors = {line: entry["error"] for line, entry in summary.errors.items()}
    assert errors[2].startswith("request: not valid JSON")
    assert errors[3].startswith("colour: unknown key")
    assert errors[5] == f"image: file not found: {Path('pics/missing.png')}"
    assert errors[6].startswith("model:") and "not-installed" in errors[6]
    assert errors[7] == "motion_bucket_id: must be a whole number from 1 to 255, got 999"
    assert all("\n" not in message for message in errors.values())
    entries = [json.loads(raw) for raw in results_path.read_text().splitlines()]
    assert [(entry["line"], entry["status"]) for entry in entries] == [
        (1, "success"), (2, "error"), (3, "error"), (5, "error"), (6, "error"), (7, "error"), (8, "success")]
    assert all(entry["kind"] == "bad_input" for entry in entries if entry["status"] == "error")


def test_a_folder_of_five_pictures_with_one_bad_file_makes_four_videos_and_one_error(models_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    pictures(folder, 4)
    (folder / "picture2b.png").write_bytes(b"this is not a picture")  # the bad one, third by name
    (folder / "notes.txt").write_text("not a picture: not part of the batch")
    outputs = tmp_path / "outputs"
    code = main(["batch", str(folder), "--models-dir", str(models_dir), "--outputs-dir", str(outputs),
                 "--seed", "7", *FLAGS])
    captured = capsys.readouterr()

    assert code == 1  # one line was bad input
    results_path = outputs / "photos.results.jsonl"
    assert captured.out.strip() == str(results_path)
    entries = [json.loads(raw) for raw in results_path.read_text().splitlines()]
    assert [entry["status"] for entry in entries] == ["success", "success", "success", "error", "success"]
    assert entries[3]["error"] == "image: not a picture this app can read (PNG, JPEG, WebP, BMP, …): picture2b.png"
    assert sorted(path.suffix for path in outputs.iterdir() if path.is_file()
                  and path.suffix == ".mp4") == [".mp4"] * 4
    assert "batch line 4: image: not a picture this app can read" in captured.err
    assert "Traceback" not in captured.err
    # the same command again: nothing runs, the bad file is tried again (and fails again)
    main(["batch", str(folder), "--models-dir", str(models_dir), "--outputs-dir", str(outputs), "--seed", "7", *FLAGS])
    assert "5 lines: 0 made, 4 already done, 1 failed (lines 4)" in capsys.readouterr().err


def test_pictures_given_one_by_one_with_the_generate_options(models_dir, tmp_path, capsys):
    first, second = pictures(tmp_path / "pics", 2)
    results = tmp_path / "mine.jsonl"
    code = main(["batch", str(first), str(second), "--models-dir", str(models_dir), "--outputs-dir",
                 str(tmp_path / "out"), "--results", str(results), "--format", "webm", "--seed", "3",
                 "--duration", "1", "--fps", "6", *[flag for flag in FLAGS if flag != "--frames" and flag != "8"]])
    assert code == 0, capsys.readouterr().err
    entries = [json.loads(raw) for raw in results.read_text().splitlines()]
    assert [Path(entry["output"]).suffix for entry in entries] == [".webm", ".webm"]
    stored = json.loads(Path(entries[0]["output"]).with_suffix(".json").read_text())["request"]
    assert (stored["num_frames"], stored["fps"], stored["seed"]) == (6, 6, 3)  # --duration 1 at 6 fps


@pytest.mark.parametrize("argv, message", [
    (["batch", "nowhere.jsonl"], "batch: file not found: nowhere.jsonl"),
    (["batch", "a.jsonl", "b.png"], "batch: a JSONL file must be the only source, got 2 sources"),
    (["batch", "x.png", "--output", "one.mp4"], "--output (output_path): a batch makes one video per line"),
    (["batch", "x.png", "--ray", "127.0.0.1:1"], "ray: cannot reach a Ray cluster at 127.0.0.1:1 (Connection refused)"),
    (["batch", "x.png", "--ray", "nonsense"], "ray: must be auto, local or HOST:PORT"),
])
def test_bad_batch_input_is_one_line_and_exit_1(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main([*argv, "--models-dir", str(tmp_path), "--outputs-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and message in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err


def test_ray_without_ray_installed_says_how_to_install_the_extra(tmp_path):
    """Ray hidden from the import system, as if the extra were not installed: one line, exit 1."""
    picture = pictures(tmp_path, 1)[0]
    script = (
        "import sys\n"
        "class NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoRay())\n"
        "from video_gen.cli import main\n"
        f"sys.exit(main(['batch', {str(picture)!r}, '--ray', 'auto', '--outputs-dir', {str(tmp_path / 'out')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == 'video-gen: error: ray: Ray is not installed; install the extra: pip install "video-gen[ray]"'
    assert "Traceback" not in done.stderr


def test_a_batch_killed_with_sigkill_resumes_from_its_results_file(models_dir, tmp_path):
    """The real thing: `video-gen batch` in its own process, killed (-9) once two lines are recorded; the same
    command then runs only the other lines, and the results file was whole at every moment we read it."""
    import os
    import signal
    import time

    pictures(tmp_path / "pics", 4)
    shots = write_jsonl(tmp_path / "shots.jsonl", [{"image": f"pics/picture{number}.png", "seed": 20 + number}
                                                   for number in range(4)])
    results_path = tmp_path / "shots.results.jsonl"
    command = [sys.executable, "-m", "video_gen", "batch", str(shots), "--models-dir", str(models_dir),
               "--outputs-dir", str(tmp_path / "outputs"), *FLAGS]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    recorded: list = []
    deadline = time.monotonic() + 240
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if results_path.exists():
                recorded = [json.loads(raw)["line"] for raw in results_path.read_text().splitlines()]  # whole lines
                if len(recorded) >= 2:
                    break
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    recorded = [json.loads(raw)["line"] for raw in results_path.read_text().splitlines()]
    assert 2 <= len(recorded) < 4, f"the batch was not killed in the middle: {recorded}"

    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert f"4 lines: {4 - len(recorded)} made, {len(recorded)} already done" in done.stderr
    assert [json.loads(raw)["status"] for raw in results_path.read_text().splitlines()] == ["success"] * 4
