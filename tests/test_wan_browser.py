"""Wan on the page in a real browser (Debian's chromium through Playwright, as tests/test_browser.py): the last
frame input shows only for a model that takes one, and a first-and-last-frame video is made from the page."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from test_browser import CHROMIUM, browser, page, sync_api  # noqa: F401  (the shared browser fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium"),
]


def make_a_small_video(page, prompt: str) -> str:
    """Write `prompt`, choose 64x64, 2 steps and 1 s, press Generate and wait until the player has the video;
    the info panel's text."""
    page.locator("#vg-prompt textarea").fill(prompt)
    resolution = page.locator("#vg-resolution input")
    resolution.click()
    resolution.fill("64x64")
    resolution.press("Enter")
    steps = page.locator("#vg-num-inference-steps input[type=number]")
    steps.fill("2")
    steps.press("Enter")
    length = page.locator("#vg-duration input[type=number]")
    length.fill("1")
    length.press("Enter")
    page.click("#vg-generate")
    page.wait_for_function(
        "() => { const v = document.querySelector('#vg-player video');"
        " return v && v.currentSrc && v.readyState >= 1 && v.duration > 0 }", timeout=120_000)
    return page.locator("#vg-info").inner_text()


def choose_model(page, name: str) -> None:
    model = page.locator("#vg-model input")
    model.click()
    page.locator("ul.option-list li", has_text=name).first.click()
    page.wait_for_function(f"() => document.querySelector('#vg-model input').value.startsWith('{name}')",
                           timeout=10_000)


def test_the_last_frame_shows_for_flf2v_only_and_makes_the_video(page, tmp_path):  # noqa: F811
    from test_app import start_server

    from video_gen.tiny.wan import build_tiny_wan

    models = tmp_path / "models"
    build_tiny_wan(models / "tiny-wan-flf2v", "flf2v", seed=1)
    build_tiny_wan(models / "tiny-wan-ti2v-5b", "ti2v-5b", seed=1)
    rng = np.random.default_rng(0)
    first, last = tmp_path / "first.png", tmp_path / "last.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(first)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(last)
    demo, server = start_server(models, tmp_path / "web", tmp_path / "gradio-temp")
    try:
        page.goto(server.url)
        page.wait_for_selector("#vg-generate")
        choose_model(page, "tiny-wan-ti2v-5b")
        page.wait_for_selector("#vg-last-image", state="hidden", timeout=10_000)
        choose_model(page, "tiny-wan-flf2v")
        page.wait_for_selector("#vg-last-image", state="visible", timeout=10_000)

        page.locator("#vg-image input[type=file]").set_input_files(str(first))
        page.wait_for_selector("#vg-image img")
        page.locator("#vg-last-image input[type=file]").set_input_files(str(last))
        page.wait_for_selector("#vg-last-image img")
        info = make_a_small_video(page, "a cat walks")
        assert "Done" in page.locator("#vg-status").inner_text(), info
        assert '"tiny-wan-flf2v"' in info and '"last_image"' in info and '"last_image": null' not in info
        assert page.outside_requests == []
    finally:
        demo.close()
