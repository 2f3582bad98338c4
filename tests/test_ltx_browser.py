"""LTX-Video's keyframes on the page, in a real browser (Debian's chromium through Playwright, as
tests/test_browser.py): a keyframe picture and its frame go into the job, placed on LTX's 8-frame grid."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from test_browser import CHROMIUM, ROOT, browser, free_port, page  # noqa: E402, F401  (the shared browser fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not at /usr/bin/chromium (.ci/run installs it with apt)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (extra: test)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from video_gen import Generator
    from video_gen.tiny.ltx import build_tiny_ltx

    root = tmp_path_factory.mktemp("ltx-browser")
    models = root / "models"
    build_tiny_ltx(models / "tiny-ltx")
    spec = importlib.util.spec_from_file_location("video_gen_web_app_ltx", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    generator = Generator(models_dir=models, outputs_dir=root / "outputs")
    args = app.parse_args(["--port", str(free_port()), "--models-dir", str(models), "--outputs-dir",
                           str(root / "outputs"), "--temp-dir", str(root / "gradio-temp")])
    demo = app.launch(args, generator=generator, block=False, quiet=True)
    demo.video_gen_outputs = root / "outputs"
    yield demo
    demo.close()




def open_with_picture(page, server, photo) -> None:
    page.goto(server.local_url)
    page.wait_for_selector("#vg-generate")
    assert page.locator("#vg-model input").input_value().split(" · ")[0] == "tiny-ltx"
    page.locator("#vg-image input[type=file]").set_input_files(str(photo))
    page.wait_for_selector("#vg-image img")


def generate_fast(page, server) -> dict:
    """64x64, 4 steps, 1 second at 8 fps; Generate; the job's request as its sidecar stores it."""
    from test_browser import choose_fps

    choose_fps(page, 8)
    resolution = page.locator("#vg-resolution input")
    resolution.click()
    resolution.fill("64x64")
    resolution.press("Enter")
    for box, value in (("#vg-num-inference-steps", "4"), ("#vg-duration", "1")):
        field = page.locator(f"{box} input[type=number]")
        field.fill(value)
        field.press("Enter")
    before = set(Path(server.video_gen_outputs).glob("*.json"))
    page.click("#vg-generate")
    page.wait_for_selector("#vg-status >> text=Done", timeout=120_000)
    sidecar, = set(Path(server.video_gen_outputs).glob("*.json")) - before
    return json.loads(sidecar.read_text())["request"]


def test_keyframe_from_the_page_is_placed_on_the_grid(page, server, photo, tmp_path):
    keyframe = tmp_path / "middle.png"
    Image.new("RGB", (80, 60), (240, 240, 10)).save(keyframe)
    open_with_picture(page, server, photo)
    page.wait_for_selector("#vg-keyframe-images", state="visible")  # shown for LTX's family
    page.locator("#vg-keyframe-images input[type=file]").set_input_files([str(keyframe)])
    page.wait_for_selector("#vg-keyframe-images >> text=middle.png")
    frames = page.locator("#vg-keyframe-frames textarea, #vg-keyframe-frames input").first
    frames.fill("7")
    stored = generate_fast(page, server)

    info = page.locator("#vg-info").inner_text()
    assert "keyframe 1 (middle.png) at frame 8" in info  # 1 s at 8 fps: 9 frames (8k+1), the last is 8
    assert stored["num_frames"] == 9 and [item["frame"] for item in stored["keyframes"]] == [7]
    assert Path(stored["keyframes"][0]["image"]).name.endswith("middle.png")
    assert page.outside_requests == [], f"the page tried to reach the network: {page.outside_requests}"


def test_the_speed_choice_on_the_page_reaches_the_job(page, server, photo):
    """The Advanced section's Speed control (shown for LTX, whose spec lists "speed"): its choice is the job's."""
    open_with_picture(page, server, photo)
    page.get_by_text("Advanced", exact=True).first.click()
    page.wait_for_selector("#vg-speed", state="visible")
    page.locator("#vg-speed label").filter(has_text="first block cache").click()
    assert page.locator("#vg-speed input[type=radio]:checked").input_value() == "first-block-cache"
    assert generate_fast(page, server)["speed"] == "first-block-cache"
    assert page.outside_requests == [], f"the page tried to reach the network: {page.outside_requests}"
