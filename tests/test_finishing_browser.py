"""Finishing on the page in a real browser (Debian's chromium through Playwright, as tests/test_browser.py): the
Enhance button writes the enhancer's prompt into the prompt box (the text `video-gen prompt` gives), and the
Finish tab upscales a video with sound, keeping its frames, rate and sound."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image
from skimage import data

import test_browser

CHROMIUM = test_browser.CHROMIUM
browser, page = test_browser.browser, test_browser.page  # the shared browser fixtures (Playwright, loopback only)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium"),
]
WAN = "tiny-wan-ti2v-5b"
PROMPT = "a cat looks around"


def test_enhance_fills_the_prompt_and_the_finish_tab_upscales(page, tmp_path):
    from test_app import start_server

    from video_gen import video_io
    from video_gen.finishing import audio_codec, enhance_prompt
    from video_gen.tiny.enhancer import build_tiny_qwen2_5_vl
    from video_gen.tiny.upscalers import build_tiny_esrgan
    from video_gen.tiny.wan import build_tiny_wan

    models = tmp_path / "models"
    build_tiny_wan(models / WAN, "ti2v-5b", seed=1)
    build_tiny_esrgan(models / "upscalers" / "tiny-x2.safetensors", scale=2, layout="realesrgan")
    build_tiny_qwen2_5_vl(models / "enhancers" / "tiny-qwen")
    picture = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()[::3, ::3]).save(picture)
    frames = np.stack([np.ascontiguousarray(data.astronaut()[150:190, 100 + 9 * i:164 + 9 * i]) for i in range(4)])
    video_io.write_video(frames, tmp_path / "silent.mp4", fps=8)
    clip = tmp_path / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(tmp_path / "silent.mp4"), "-f",
                    "lavfi", "-i", "sine=duration=1", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                    "-shortest", str(clip)], check=True)
    demo, server = start_server(models, tmp_path / "web", tmp_path / "gradio-temp")
    try:
        page.goto(server.url)
        page.wait_for_selector("#vg-enhance")  # a model that takes a prompt: the button shows
        page.locator("#vg-image input[type=file]").set_input_files(str(picture))
        page.wait_for_selector("#vg-image img")
        prompt = page.locator("#vg-prompt textarea")
        prompt.fill(PROMPT)
        page.click("#vg-enhance")
        page.wait_for_function(f"() => document.querySelector('#vg-prompt textarea').value !== {PROMPT!r}",
                               timeout=60_000)
        enhanced = prompt.input_value()
        assert enhanced == enhance_prompt(server.generator, picture, PROMPT, model=WAN).text  # what the CLI prints
        prompt.fill(enhanced + " edited")  # editable before Generate
        assert prompt.input_value().endswith(" edited")

        page.get_by_role("tab", name="Finish a video (upscale, smooth, loop)").click()
        page.locator("#vg-tool-video input[type=file]").set_input_files(str(clip))
        page.wait_for_selector("#vg-tool-video >> text=clip.mp4")
        assert page.locator("#vg-upscaler input").input_value().startswith("tiny-x2")
        page.click("#vg-upscale-run")
        page.wait_for_function(
            "() => { const v = document.querySelector('#vg-tool-player video');"
            " return v && v.currentSrc && v.readyState >= 1 && v.duration > 0 }", timeout=60_000)
        assert '"tiny-x2"' in page.locator("#vg-tool-info").inner_text()
        output = server.outputs / "clip_x2.mp4"
        probe = video_io.probe_video(output)
        assert (probe.frames, probe.fps, probe.width, probe.height) == (4, 8, 128, 80)
        assert audio_codec(output) == "aac"
        assert page.outside_requests == []
    finally:
        demo.close()
