"""Wan VACE on the page in a real browser (Debian's chromium through Playwright, as tests/test_browser.py): the
"Control video" section shows only for a model that takes one; a control video and a mask are uploaded, the
preview of the first frame with the mask appears, and the video is made with them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from test_browser import CHROMIUM, browser, page  # noqa: F401  (the shared browser fixtures)
from test_wan_browser import choose_model, make_a_small_video

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium"),
]


def test_upload_a_control_and_a_mask_see_the_preview_and_make_the_video(page, tmp_path):  # noqa: F811
    from test_app import start_server

    from video_gen import control
    from video_gen.tiny.wan_vace import build_tiny_plain_twin, build_tiny_wan_vace

    models = tmp_path / "models"
    vace = build_tiny_wan_vace(models / "tiny-wan-vace", seed=1)
    build_tiny_plain_twin(vace, models / "tiny-wan-plain")
    rng = np.random.default_rng(0)
    source = control.write_control_video(rng.integers(0, 256, (24, 64, 64, 3), dtype=np.uint8),
                                         tmp_path / "dance.mp4", fps=16)
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    demo, server = start_server(models, tmp_path / "web", tmp_path / "gradio-temp")
    try:
        page.goto(server.url)
        page.wait_for_selector("#vg-generate")
        choose_model(page, "tiny-wan-plain")
        page.wait_for_selector("#vg-control-box", state="hidden", timeout=10_000)
        choose_model(page, "tiny-wan-vace")
        page.wait_for_selector("#vg-control-box", state="visible", timeout=10_000)

        page.locator("#vg-control-video input[type=file]").set_input_files(str(source))
        page.locator("#vg-control-mask input[type=file]").set_input_files(str(tmp_path / "mask.png"))
        page.wait_for_selector("#vg-control-preview img", timeout=20_000)
        info = make_a_small_video(page, "a cat dances")
        assert "Done" in page.locator("#vg-status").inner_text(), info
        assert "_control.mp4" in info  # the info shows the control used
        sidecars = [json.loads(path.read_text()) for path in (tmp_path / "web" / "outputs").glob("*.json")]
        assert len(sidecars) == 1, info
        made = sidecars[0]
        assert made["control"]["sha256"] == control.file_sha256(source) and made["control"]["frames"] == 17
        assert made["mask"]["sha256"] == control.file_sha256(tmp_path / "mask.png")
        assert made["request"]["control"] and made["request"]["mask"] and made["request"]["control_kind"] is None
        assert list((tmp_path / "web" / "outputs").glob("*_control.mp4"))
        assert page.outside_requests == []
    finally:
        demo.close()
