"""LTX-Video through the page's /generate API (gradio_client against a real server): keyframes as a list of
files and their frames, appended at the end of /generate's inputs; wrong values are one-line errors."""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio or gradio_client is imported

import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from test_app import start_server  # noqa: E402

LTX_FAST = dict(model="tiny-ltx", duration=1, fps=8, resolution="64x64", num_inference_steps=4)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from video_gen.tiny.ltx import build_tiny_ltx

    root = tmp_path_factory.mktemp("ltx-api")
    build_tiny_ltx(root / "models" / "tiny-ltx")
    demo, running = start_server(root / "models", root, tmp_path_factory.mktemp("ltx-gradio-temp"))
    yield running
    demo.close()


@pytest.fixture(scope="module")
def keyframe(tmp_path_factory):
    path = tmp_path_factory.mktemp("ltx-api-pictures") / "middle.png"
    Image.new("RGB", (80, 60), (240, 240, 10)).save(path)
    return path


def test_keyframes_through_the_api(server, photo, keyframe, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False, download_files=str(tmp_path))
    video, info, *_ = client.predict(image=handle_file(str(photo)), **LTX_FAST,
                                     keyframe_images=[handle_file(str(keyframe))], keyframe_frames="5",
                                     api_name="/generate")
    assert info["frames"] == 9  # 1 s at 8 fps, rounded up to LTX's 8k+1
    assert info["parameters"]["keyframes"][0]["frame"] == 5
    assert any(note.startswith("keyframe 1 (") and "at frame 8 (asked for 5" in note for note in info["notes"])


@pytest.mark.parametrize("values, words", [
    (dict(keyframe_frames="5, 6"), "keyframe_frames: give one frame number per keyframe picture"),
    (dict(keyframe_frames="five"), "keyframe_frames: give one frame number per keyframe picture"),
    (dict(upscale="3x"), "upscale: must be one of off, 2x"),
])
def test_bad_keyframe_values_are_one_line(server, photo, keyframe, tmp_path, values, words):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False, download_files=str(tmp_path))
    with pytest.raises(AppError) as raised:
        client.predict(image=handle_file(str(photo)), **LTX_FAST, keyframe_images=[handle_file(str(keyframe))],
                       **values, api_name="/generate")
    message = str(raised.value)
    assert words in message and "\n" not in message.strip()
