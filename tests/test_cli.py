"""The command line: `generate` prints a path, `json` prints one JSON line, errors are one line with exit 1."""

import json
import os
import subprocess
import sys

import pytest

from video_gen import video_io
from video_gen.cli import main

FAST_FLAGS = ["--width", "64", "--height", "64", "--frames", "8", "--steps", "3"]
FAST_JSON = {"width": 64, "height": 64, "num_frames": 8, "num_inference_steps": 3}

# (CLI flags, JSON keys, the words the message must contain)
BAD_INPUTS = [
    (["--frames", "0"], {"num_frames": 0}, "from 1 to 1801"),
    (["--fps", "0"], {"fps": 0}, "from 1 to 60"),
    (["--motion", "300"], {"motion_bucket_id": 300}, "from 1 to 255"),
    (["--width", "100"], {"width": 100}, "multiple of 8"),
    (["--steps", "0"], {"num_inference_steps": 0}, "from 1 to 150"),
    (["--model", "svd-xt"], {"model": "svd-xt"}, "'svd-xt' is not installed"),
]


@pytest.fixture()
def env(models_dir, outputs_dir, monkeypatch):
    monkeypatch.setenv("VIDEO_GEN_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("VIDEO_GEN_OUTPUTS_DIR", str(outputs_dir))
    return {**os.environ}


def _one_line_error(text: str, words: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert words in lines[0] and "Traceback" not in text


@pytest.mark.parametrize("flags, keys, words", BAD_INPUTS)
def test_bad_input_through_cli_and_json(env, photo, capsys, flags, keys, words):
    assert main(["generate", str(photo), *flags]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_line_error(captured.err, words)

    assert main(["json", json.dumps({"image_path": str(photo), **keys})]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    reply = json.loads(out[0])
    assert reply["status"] == "error" and words in reply["error"]


@pytest.mark.parametrize("image, words", [("missing.png", "file not found"), ("notes.txt", "not a picture"),
                                          (None, "missing")])
def test_bad_image_through_cli_and_json(env, tmp_path, capsys, image, words):
    (tmp_path / "notes.txt").write_text("not an image")
    path = str(tmp_path / image) if image else ""
    if image is not None:
        assert main(["generate", path]) == 1
        _one_line_error(capsys.readouterr().err, words)
    request = {"image_path": path} if image is not None else {}
    assert main(["json", json.dumps(request)]) == 1
    reply = json.loads(capsys.readouterr().out)
    assert reply["status"] == "error" and reply["error"].startswith("image: ") and words in reply["error"]


def test_cli_names_fields_by_their_flags(env, photo, capsys):
    main(["generate", str(photo), "--motion", "300"])
    assert capsys.readouterr().err.startswith("video-gen: error: --motion (motion_bucket_id): must be")


def test_unparseable_flags_are_bad_input(env, photo, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["generate", str(photo), "--frames", "many"])
    assert caught.value.code == 1
    _one_line_error(capsys.readouterr().err, "invalid int value")


def test_generate_prints_the_path_and_duration_means_frames(env, photo, capsys):
    assert main(["generate", str(photo), "--duration", "1.5", "--fps", "6", "--width", "64", "--height", "64",
                 "--steps", "2", "--seed", "5", "--quiet"]) == 0
    path = capsys.readouterr().out.strip()
    info = video_io.probe_video(path)
    assert info.frames == 9 and info.fps == pytest.approx(6)  # round(1.5 x 6)


def test_png_format_and_inspect(env, photo, capsys, tmp_path):
    target = tmp_path / "frames"
    assert main(["generate", str(photo), *FAST_FLAGS, "--format", "png", "--output", str(target), "--quiet",
                 "--seed", "77"]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert sorted(p.name for p in target.iterdir())[:2] == ["frame_00000.png", "frame_00001.png"]
    assert main(["inspect", str(target)]) == 0
    assert json.loads(capsys.readouterr().out)["request"]["seed"] == 77


def test_models_list(env, capsys):
    assert main(["models", "list"]) == 0
    name, family, *_ = capsys.readouterr().out.split("\t")
    assert (name, family) == ("tiny-svd", "svd")


def test_real_processes_keep_stdout_machine_readable(env, photo):
    """The installed entry points as a user runs them: `python -m video_gen` and exit codes."""
    run = dict(capture_output=True, text=True, env=env, timeout=300)
    generate = subprocess.run([sys.executable, "-m", "video_gen", "generate", str(photo), *FAST_FLAGS,
                               "--seed", "4"], **run)
    assert generate.returncode == 0, generate.stderr
    path = generate.stdout.strip()
    assert generate.stdout.count("\n") == 1 and video_io.probe_video(path).frames == 8
    assert "denoising" in generate.stderr  # the progress bar is on stderr

    request = json.dumps({"image_path": str(photo), "seed": 9, "guidance_scale": 2.0, **FAST_JSON})
    good = subprocess.run([sys.executable, "-m", "video_gen", "json", "-"], input=request, **run)
    assert good.returncode == 0, good.stderr
    reply = json.loads(good.stdout)
    assert len(good.stdout.strip().splitlines()) == 1
    assert reply["status"] == "success" and reply["seed"] == 9 and reply["request"]["max_guidance_scale"] == 2.0
    assert video_io.probe_video(reply["output"]).frames == 8

    bad = subprocess.run([sys.executable, "-m", "video_gen", "json", json.dumps({"fps": 0})], **run)
    assert bad.returncode == 1 and json.loads(bad.stdout)["status"] == "error"
    assert "Traceback" not in bad.stderr
