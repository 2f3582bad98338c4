"""One request, every door (issue 23): the same picture, model and settings, with the rest left unset, give the same
frames and the same stored request through the Python API, `video-gen generate`, a one-cell `video-gen sweep`, a
`video-gen batch` line, JSON mode and the page's `/generate` through gradio_client: every door fills an unset
field with the model's own default. And a field added to the one field table is at once a flag of `generate`, an
input of the page's `/generate` and a key of JSON mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from video_gen import Generator, GenerationRequest, video_io
from video_gen.cli import main
from conftest import TINY_MODEL
from test_app import client, server, web_temp  # noqa: F401 (the page's server, started once for this module)

# What every door is given; everything else (frames, fps, motion, noise augmentation, guidance, decode chunk) is
# left to the model. 10 steps: the fewest the page's slider takes for this family.
GIVEN = dict(width=64, height=64, num_inference_steps=10, seed=5)
FLAGS = ["--width", "64", "--height", "64", "--steps", "10", "--seed", "5", "--model", TINY_MODEL, "--quiet"]
# What differs by door on purpose: where the video went, and where the picture came from (an upload's copy)
DOOR_OWN = ("output_path", "image")


def stored(video: Path) -> dict:
    request = dict(video_io.read_metadata(video)["request"])
    return {key: value for key, value in request.items() if key not in DOOR_OWN}


def frames(video: Path) -> np.ndarray:
    return video_io.read_video(video)[0]


@pytest.fixture(scope="module")
def doors(models_dir, photo, tmp_path_factory) -> dict[str, Path]:
    """The video each door made of the same request."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("doors")
    common = ["--models-dir", str(models_dir)]

    def cli(*arguments: str, outputs: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main([*arguments, *common, "--outputs-dir", str(root / outputs)]) == 0
        return out.getvalue().split()

    made = {}
    api = Generator(models_dir=models_dir, outputs_dir=root / "api")
    made["python"] = api.generate(GenerationRequest(image=str(photo), model=TINY_MODEL, **GIVEN)).path
    made["generate"] = Path(cli("generate", str(photo), *FLAGS, outputs="generate")[-1])
    made["sweep"] = Path(cli("sweep", str(photo), "--vary", "seed=5", *FLAGS, outputs="sweep")[-1])
    lines = root / "lines.jsonl"
    lines.write_text(json.dumps({"image": str(photo), "model": TINY_MODEL, **GIVEN}) + "\n")
    results = Path(cli("batch", str(lines), "--quiet", outputs="batch")[-1])
    made["batch"] = Path(json.loads(results.read_text().splitlines()[0])["output"])
    reply = json.loads("".join(cli("json", json.dumps({"image": str(photo), "model": TINY_MODEL, **GIVEN}),
                                   outputs="json")))
    made["json"] = Path(reply["output"])
    return made


def test_every_door_gives_the_same_frames_and_the_same_stored_request(doors):
    reference = doors["python"]
    request = stored(reference)
    assert request["fps"] == 7 and request["num_frames"] == 8  # the tiny SVD's own (its UNet's 8 frames)
    for door, video in doors.items():
        assert stored(video) == request, door
        assert np.array_equal(frames(video), frames(reference)), door


def test_the_page_and_gradio_client_fill_the_same_defaults(doors, server, client, photo):
    """The page's inputs start at the installed model's own defaults: an API client that leaves them out gets
    the same video as every other door."""
    from gradio_client import handle_file

    video, info, *_ = client.predict(image=handle_file(str(photo)), model=TINY_MODEL, resolution="64x64",
                                     num_inference_steps=10, seed=5, api_name="/generate")
    output = Path(info["output"])
    assert stored(output) == stored(doors["python"])
    assert np.array_equal(frames(output), frames(doors["python"]))


# ---- a new field is one entry -----------------------------------------------------------------------------
@pytest.fixture()
def new_field():
    """A field added to the table the way the next issues add theirs (`audio`, `control`, …)."""
    from video_gen import request

    remove = request.add_field(request.Field(
        "grain", request.Whole(0, 10), "film grain added to every frame", label="Film grain", default=0,
        page=request.Control("slider")))
    yield
    remove()


def test_a_new_field_is_a_flag_an_api_input_and_a_json_key(new_field, models_dir, tmp_path, capsys):
    from video_gen.cli import build_parser
    from video_gen.web.app import WebApp

    generate_help = build_parser()._subparsers._group_actions[0].choices["generate"].format_help()
    assert "--grain" in generate_help and "film grain added to every frame (default 0)" in generate_help
    for command in ("sweep", "batch", "extend"):
        assert "--grain" in build_parser()._subparsers._group_actions[0].choices[command].format_help(), command
    web = WebApp(Generator(models_dir=models_dir, outputs_dir=tmp_path), tmp_path / "work")
    demo = web.build()
    names = [parameter["parameter_name"] for parameter in
             demo.get_api_info()["named_endpoints"]["/generate"]["parameters"]]
    assert names[-1] == "grain" and names[:2] == ["image", "model"]  # appended: the published order is kept
    batch_names = [parameter["parameter_name"] for parameter in
                   demo.get_api_info()["named_endpoints"]["/generate_batch"]["parameters"]]
    assert batch_names[0] == "images" and "grain" in batch_names
    assert "grain" in web.generate_tab.form.controls  # a control of the page, in its section
    request = GenerationRequest.from_json('{"grain": 3}')
    assert request.grain == 3 and json.loads(request.to_json())["grain"] == 3
    with pytest.raises(Exception, match=r"^grain: must be a whole number from 0 to 10, got 11$"):
        GenerationRequest(grain=11).validate()
    assert main(["generate", "--grain", "11", "--models-dir", str(models_dir), "--outputs-dir", str(tmp_path),
                 "--quiet"]) == 1
    assert "--grain (grain): must be a whole number from 0 to 10, got 11" in capsys.readouterr().err
