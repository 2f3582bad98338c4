"""LTX-2's sound on the page, in a real browser (Debian's chromium through Playwright, as tests/test_browser.py):
the Sound control is shown for a family that makes sound, the player plays the video's audio track, the info
panel gives its sample rate and length, and the Download button's file carries the same track."""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import pytest  # noqa: E402
from test_browser import CHROMIUM, browser, page  # noqa: E402, F401  (the shared browser fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not at /usr/bin/chromium (.ci/run installs it with apt)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (extra: test)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from test_app import start_server

    from video_gen.tiny.ltx2 import build_tiny_ltx2

    root = tmp_path_factory.mktemp("ltx2-browser")
    build_tiny_ltx2(root / "models" / "tiny-ltx2", upsampler=False)
    demo, _ = start_server(root / "models", root, root / "gradio-temp")
    yield demo
    demo.close()


def test_the_player_plays_the_videos_sound_and_the_download_has_it(page, server, photo, tmp_path):
    from test_browser import choose_fps

    from video_gen import audio

    page.goto(server.local_url)
    page.wait_for_selector("#vg-generate")
    assert page.locator("#vg-model input").input_value().split(" · ")[0] == "tiny-ltx2"
    page.wait_for_selector("#vg-audio", state="visible")  # shown for a family that makes sound
    assert page.locator("#vg-audio input[type=radio]:checked").input_value() == "on"  # the model's default
    page.locator("#vg-image input[type=file]").set_input_files(str(photo))
    page.wait_for_selector("#vg-image img")
    choose_fps(page, 8)
    resolution = page.locator("#vg-resolution input")
    resolution.click()
    resolution.fill("64x64")
    resolution.press("Enter")
    for box, value in (("#vg-num-inference-steps", "2"), ("#vg-duration", "1")):
        field = page.locator(f"{box} input[type=number]")
        field.fill(value)
        field.press("Enter")
    page.click("#vg-generate")
    page.wait_for_selector("#vg-status >> text=Done", timeout=120_000)

    # The player: its video plays, and the browser decodes its audio track
    page.wait_for_function("() => { const v = document.querySelector('#vg-player video');"
                           " return v && v.currentSrc && v.readyState >= 2 && v.duration > 0 }", timeout=60_000)
    page.evaluate("() => { const v = document.querySelector('#vg-player video'); v.muted = true; v.loop = true;"
                  " return v.play() }")
    page.wait_for_function("() => document.querySelector('#vg-player video').webkitAudioDecodedByteCount > 0",
                           timeout=30_000)
    info = "".join(page.locator("#vg-info").inner_text().split())  # the JSON panel, one token a line
    assert '"audio":{"sample_rate":24000,"duration_s":1.125' in info  # 9 frames at 8 fps
    # The download: the same file, with its audio stream
    with page.expect_download() as started:
        page.click("#vg-download")
    saved = tmp_path / started.value.suggested_filename
    started.value.save_as(saved)
    found = audio.probe_audio(saved)
    assert found is not None and found.streams == 1 and found.sample_rate == 24000
    assert abs(found.duration_s - 9 / 8) < 1e-3
    assert page.outside_requests == [], f"the page tried to reach the network: {page.outside_requests}"
