"""FramePack on the page in a real browser (Debian's chromium through Playwright, as tests/test_browser.py): a
video of two sections is made from the page as one job, its progress says "section k of n", and the guidance
control says it is FramePack's distilled guidance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import test_browser

CHROMIUM = test_browser.CHROMIUM
browser, page = test_browser.browser, test_browser.page  # the shared browser fixtures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium"),
]


def test_a_framepack_video_of_two_sections_is_one_job_with_section_progress(page, tmp_path):
    from test_app import start_server

    from video_gen.tiny.framepack import build_tiny_framepack

    models = tmp_path / "models"
    build_tiny_framepack(models / "framepack-f1", variant="f1", layout="combined")
    picture = tmp_path / "first.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(picture)
    demo, server = start_server(models, tmp_path / "web", tmp_path / "gradio-temp")
    try:
        page.goto(server.url)
        page.wait_for_selector("#vg-generate")
        assert page.locator("#vg-model input").input_value().startswith("framepack-f1")
        page.wait_for_selector("#vg-frames-note >> text=at 30 fps")  # the model's own rate, set on load
        page.get_by_text("Advanced", exact=True).first.click()
        page.wait_for_selector("#vg-max-guidance-scale", state="visible")
        assert "distilled guidance" in page.locator("#vg-max-guidance-scale").inner_text()
        page.locator("#vg-image input[type=file]").set_input_files(str(picture))
        page.wait_for_selector("#vg-image img")
        page.locator("#vg-prompt textarea").fill("a red cat walks")
        resolution = page.locator("#vg-resolution input")
        resolution.click()
        resolution.fill("64x64")
        resolution.press("Enter")
        for box, value in (("#vg-num-inference-steps", "20"), ("#vg-duration", "1.5")):
            field = page.locator(f"{box} input[type=number]")
            field.fill(value)
            field.press("Enter")
        # 1.5 s at 30 fps: 45 frames, one generation in two sections of 36
        page.wait_for_selector("#vg-frames-note >> text=in 2 sections of 36 frames")
        page.click("#vg-generate")
        page.wait_for_selector("#vg-status >> text=/section [12] of 2/", timeout=60_000)
        page.wait_for_selector("#vg-status >> text=Done", timeout=120_000)
        sidecar, = Path(server.outputs).glob("*.json")
        stored = json.loads(sidecar.read_text())
        assert stored["request"]["num_frames"] == 45 and stored["plan"]["segments"] == 1
        assert "45 frames at 30 fps" in page.locator("#vg-status").inner_text()
        assert page.outside_requests == []
    finally:
        demo.close()
