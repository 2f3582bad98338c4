"""The LoRA panel in a real browser (Debian's chromium through Playwright, as tests/test_browser.py): it shows only
for a model whose family takes LoRAs, lists the installed ones that fit, gives each chosen one a strength
slider, and the video is made with them; Load settings brings them back."""

from __future__ import annotations

import time

import pytest
from conftest import TINY_MODEL
from test_browser import ARTIFACTS, CHROMIUM, browser, page, sync_api  # noqa: F401  (the shared browser fixtures)
from test_loras import lora_models  # noqa: F401  (the fixture: tiny models and a loras/ folder)

from video_gen import video_io

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def lora_page_server(lora_models, tmp_path_factory):  # noqa: F811
    from test_app import start_server

    demo, server = start_server(lora_models, tmp_path_factory.mktemp("lora-browser"),
                                tmp_path_factory.mktemp("lora-browser-temp"))
    yield server
    demo.close()




def choose(page, control: str, option: str) -> None:
    """Pick `option` (its whole text: "style", not "style-b") from a dropdown's own list (Gradio renders it inside
    the control; a multi-select's list stays open after a pick, and clicking its input again would close it)."""
    items = page.locator(f"{control} ul.option-list li")
    deadline = time.monotonic() + 10
    texts: list[str] = []
    clicked_at = 0.0
    while option not in texts and time.monotonic() < deadline:
        if not items.count() and time.monotonic() - clicked_at > 1:  # closed (or closing): open it
            page.locator(f"{control} input").first.click()
            clicked_at = time.monotonic()
        time.sleep(0.1)  # the list opens a moment after the click
        texts = [text.replace("✓", "").strip() for text in items.all_inner_texts()]
    assert option in texts, texts
    items.nth(texts.index(option)).click()


def set_number(page, selector: str, value) -> None:
    box = page.locator(f"{selector} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_lora_panel_follows_the_model_and_makes_the_video_with_the_chosen_strengths(page, lora_page_server):
    server = lora_page_server
    page.goto(server.url)
    page.wait_for_selector("#vg-generate")
    choose(page, "#vg-model", "tiny-sd15 · AnimateDiff")
    page.wait_for_selector("#vg-loras-picker", state="visible", timeout=10_000)
    page.locator("#vg-loras-picker input").first.click()
    page.locator("#vg-loras-picker ul.option-list li").first.wait_for(timeout=10_000)
    listed = page.locator("#vg-loras-picker ul.option-list li").all_inner_texts()
    assert {"style", "kohya", "motion"} <= {text.strip() for text in listed}
    assert "wan22-high-noise" not in {text.strip() for text in listed}  # a Wan LoRA does not fit AnimateDiff

    choose(page, "#vg-loras-picker", "style")
    choose(page, "#vg-loras-picker", "motion")
    page.wait_for_selector("#vg-lora-strength-1", state="visible", timeout=10_000)
    page.wait_for_selector("#vg-loras-summary >> text=motion ×1.00", timeout=10_000)
    assert "style strength" in page.locator("#vg-lora-strength-0").inner_text()
    assert not page.locator("#vg-lora-strength-2").is_visible()
    set_number(page, "#vg-lora-strength-0", 0.5)
    set_number(page, "#vg-lora-strength-1", -0.25)  # at once: both moves must stay
    page.wait_for_selector("#vg-loras-summary >> text=style ×0.50", timeout=10_000)
    page.wait_for_selector("#vg-loras-summary >> text=motion ×-0.25", timeout=10_000)

    page.locator("#vg-prompt textarea").fill("a cat")
    resolution = page.locator("#vg-resolution input")
    resolution.click()
    resolution.fill("64x64")
    resolution.press("Enter")
    set_number(page, "#vg-num-inference-steps", 4)
    set_number(page, "#vg-duration", 1)
    page.wait_for_selector("#vg-frames-note >> text=8 frames at 8 fps")
    page.click("#vg-generate")
    page.wait_for_selector("#vg-status >> text=Done", timeout=120_000)
    made = sorted(server.outputs.glob("*.mp4"))[-1]
    stored = video_io.read_metadata(made)
    assert [(lora["name"], lora["strength"]) for lora in stored["loras"]] == [("style", 0.5), ("motion", -0.25)]
    assert '"sha256"' in page.locator("#vg-info").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-loras.png"), full_page=True)

    # A model whose family takes no LoRAs hides the panel and drops the choice
    choose(page, "#vg-model", f"{TINY_MODEL} · Stable Video Diffusion")
    page.wait_for_selector("#vg-loras-box", state="hidden", timeout=10_000)

    # Load settings brings the LoRAs back with their strengths
    choose(page, "#vg-model", "tiny-sd15 · AnimateDiff")
    page.wait_for_selector("#vg-loras-picker", state="visible", timeout=10_000)
    page.wait_for_selector("#vg-loras-summary >> text=No LoRA chosen", timeout=10_000)
    page.get_by_text("Load settings from a video").click()  # open its accordion
    page.locator("#vg-settings-file input[type=file]").set_input_files(str(made.with_suffix(".json")))
    page.wait_for_selector("#vg-loras-summary >> text=style ×0.50", timeout=15_000)
    page.wait_for_selector("#vg-lora-strength-1", state="visible", timeout=10_000)
    assert page.outside_requests == []
