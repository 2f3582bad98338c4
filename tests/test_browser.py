"""The page in a real browser: Debian's chromium, headless, driven by Playwright (never a downloaded browser).

Uploads a picture, presses Generate, watches the progress stream, waits for the <video> to play and
saves a screenshot under test-artifacts/. The browser may reach only the loopback server: any other
request is blocked and fails the test (the page must work offline).
"""

from __future__ import annotations

import re

import importlib.util
import os
import socket
import time
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import pytest  # noqa: E402
from conftest import FAST, TINY_MODEL, video_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
LOOPBACK = ("http://127.0.0.1", "http://localhost", "data:", "blob:")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not at /usr/bin/chromium (.ci/run installs it with apt)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (extra: test)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    from video_gen import Generator

    root = tmp_path_factory.mktemp("browser-web")
    spec = importlib.util.spec_from_file_location("video_gen_web_app", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    # A closed tab is noticed at the next heartbeat: 15 s by default, half a second here.
    previous = os.environ.get("GRADIO_HEARTBEAT_INTERVAL")
    os.environ["GRADIO_HEARTBEAT_INTERVAL"] = "0.5"
    generator = Generator(models_dir=models_dir, outputs_dir=root / "outputs")
    args = app.parse_args(["--port", str(free_port()), "--models-dir", str(models_dir),
                           "--outputs-dir", str(root / "outputs"), "--temp-dir", str(root / "gradio-temp")])
    demo = app.launch(args, generator=generator, block=False, quiet=True)
    demo.video_gen_generator = generator
    demo.video_gen_outputs = root / "outputs"
    yield demo
    demo.close()
    if previous is None:
        os.environ.pop("GRADIO_HEARTBEAT_INTERVAL", None)
    else:
        os.environ["GRADIO_HEARTBEAT_INTERVAL"] = previous


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.outside_requests = []

    def only_loopback(route):
        if route.request.url.startswith(LOOPBACK):
            route.continue_()
        else:
            page.outside_requests.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    yield page
    context.close()


def choose_fps(page, fps: int) -> None:
    """Click a frame rate (the page starts with the model's own: the tiny SVD's 7)."""
    page.locator("#vg-fps label").filter(has_text=re.compile(rf"^\s*{fps}\s*$")).click()


def open_and_fill(page, url: str, photo: Path, steps: int, seconds: int = 1, size: str = "") -> None:
    """Load the page, upload the picture and pick fast settings (64x64 or `size`, `seconds` at 8 frames a second)."""
    page.goto(url)
    page.wait_for_selector("#vg-generate")
    page.locator("#vg-image input[type=file]").set_input_files(str(photo))
    page.wait_for_selector("#vg-image img")  # the upload is shown as a preview
    resolution = page.locator("#vg-resolution input")
    resolution.click()
    resolution.fill(size or f"{FAST['width']}x{FAST['height']}")
    resolution.press("Enter")
    step_box = page.locator("#vg-num-inference-steps input[type=number]")
    step_box.fill(str(steps))
    step_box.press("Enter")
    assert page.locator("#vg-model input").input_value().split(" · ")[0] == TINY_MODEL
    page.wait_for_selector("#vg-frames-note >> text=at 7 fps")  # the model's own rate and length, set on load
    choose_fps(page, 8)
    length = page.locator("#vg-duration input[type=number]")
    length.fill(str(seconds))
    length.press("Enter")
    page.wait_for_selector(f"#vg-frames-note >> text={8 * seconds} frames at 8 fps")


def watch_status(page, selector: str = "#vg-status") -> None:
    """Keep every text the status line shows (`shown_statuses`): a fast job's progress may last a moment only."""
    page.evaluate("(selector) => { window.__vgSeen = []; new MutationObserver(() => {"
                  " const status = document.querySelector(selector);"
                  " if (status) window.__vgSeen.push(status.innerText); })"
                  ".observe(document.body, {subtree: true, childList: true, characterData: true}); }", selector)


def shown_statuses(page) -> list[str]:
    return page.evaluate("() => window.__vgSeen")


def test_upload_generate_watch_and_play(page, server, photo):
    open_and_fill(page, server.local_url, photo, steps=10)
    watch_status(page)
    page.click("#vg-generate")

    page.wait_for_function(
        "() => { const v = document.querySelector('#vg-player video');"
        " return v && v.currentSrc && v.readyState >= 1 && v.duration > 0 }", timeout=60_000)
    video = page.evaluate("() => { const v = document.querySelector('#vg-player video');"
                          " return {src: v.currentSrc, duration: v.duration, loop: v.loop} }")
    assert video["src"].startswith(server.local_url) and video["src"].endswith(".mp4")
    assert video["duration"] > 0 and video["loop"]
    status = page.locator("#vg-status").inner_text()
    assert "Done" in status
    assert any("Denoising · step" in shown for shown in shown_statuses(page)), "the progress was not streamed"
    seed = page.locator("#vg-seed-used textarea, #vg-seed-used input").first.input_value()
    assert seed.isdigit() and seed in status
    assert TINY_MODEL in page.locator("#vg-info").inner_text()  # the info panel
    page.wait_for_function(  # this run's outputs, each a still of its video
        "() => { const i = document.querySelector('#vg-gallery img'); return i && i.complete && i.naturalWidth > 0 }",
        timeout=30_000)

    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(900, 600)  # over the player, so its controls show in the picture
    page.screenshot(path=str(ARTIFACTS / "browser-generate.png"), full_page=True)
    assert page.outside_requests == [], f"the page tried to reach the network: {page.outside_requests}"


def wait_until_free(generator, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while generator.busy and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not generator.busy, "the engine is still running the job"


def test_cancel_button_stops_the_job_and_the_page_is_ready_again(page, server, photo):
    generator, outputs = server.video_gen_generator, server.video_gen_outputs
    # Three segments of 50 steps: long enough that Cancel lands mid-job even when the page's updates lag
    open_and_fill(page, server.local_url, photo, steps=50, seconds=3)
    page.click("#vg-generate")
    page.wait_for_selector("#vg-status >> text=Denoising", timeout=60_000)
    before = set(video_files(outputs))
    page.click("#vg-cancel")
    page.wait_for_selector("#vg-status >> text=Cancelled", timeout=10_000)
    wait_until_free(generator)
    assert set(video_files(outputs)) == before, "the cancelled job still wrote a video"
    # No error stays on the page. (Gradio 6.31 may flash "Error" on the player for a moment when it
    # closes a cancelled generator; it must be gone at once.)
    page.wait_for_function("() => ![...document.querySelectorAll('*')].some(el => el.childElementCount === 0"
                           " && el.textContent.trim() === 'Error' && el.offsetParent)", timeout=3_000)

    step_box = page.locator("#vg-num-inference-steps input[type=number]")
    step_box.fill("10")
    step_box.press("Enter")
    page.click("#vg-generate")
    page.wait_for_selector("#vg-status >> text=Done", timeout=60_000)
    assert len([path for path in set(video_files(outputs)) - before if path.suffix == ".mp4"]) == 1


def test_closing_the_tab_cancels_its_job(page, server, photo):
    generator, outputs = server.video_gen_generator, server.video_gen_outputs
    before = set(video_files(outputs)) if outputs.exists() else set()
    open_and_fill(page, server.local_url, photo, steps=50, seconds=10)  # long enough to close the tab mid-job
    page.click("#vg-generate")
    page.wait_for_selector("#vg-status >> text=Denoising", timeout=60_000)
    assert generator.busy
    page.close()
    wait_until_free(generator)
    assert set(video_files(outputs)) == before, "the closed tab's job still wrote a video"


def wait_for(condition, what: str, timeout: float = 300):
    """Wait for an event (`condition()` true), polling; `timeout` only stops a test that would hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def test_closing_a_tab_drops_its_queued_job(browser, page, server, photo):
    """Issue 29: on a quiet machine this found one video more. Each step waits for the event it needs: the
    closed tab's own job leaving the queue (its history row), the cancelled job's row, the board going idle."""
    generator, outputs = server.video_gen_generator, server.video_gen_outputs
    history, board = generator.history, server.video_gen_web.board
    before = {path for path in outputs.iterdir() if path.suffix == ".mp4"}
    # 80 frames of 256x256 in 10 segments of 50 steps: still running when Cancel is pressed, however fast the
    # machine or slow the second tab's start (each step is short: the cancel lands within one)
    open_and_fill(page, server.local_url, photo, steps=50, seconds=10, size="256x256")
    page.click("#vg-generate")
    page.wait_for_selector("#vg-status >> text=Denoising · segment 1", timeout=60_000)
    running = history.entries(status="running")[0].id

    waiting = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    waiting.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOOPBACK) else route.abort())
    open_and_fill(waiting, server.local_url, photo, steps=10)
    waiting.click("#vg-generate")
    waiting.wait_for_selector("#vg-status >> text=Waiting for its turn: 1 job ahead", timeout=10_000)  # its place
    queued = history.entries(status="queued")[0].id
    waiting.context.close()
    # A closed tab is noticed at the next heartbeat (0.5 s here; seconds on a loaded machine)
    wait_for(lambda: history.get(queued).status == "cancelled", "the closed tab's queued job to leave the queue")

    assert history.get(running).status == "running", "the first job ended too soon for this test"
    page.click("#vg-cancel")
    wait_for(lambda: history.get(running).status == "cancelled", "the running job to stop")
    wait_for(lambda: not generator.busy and board.waiting == 0 and board._running is None, "the board to go idle")
    assert history.get(queued).status == "cancelled" and history.get(queued).started_at is None, "it ran"
    assert {path for path in outputs.iterdir() if path.suffix == ".mp4"} == before


def test_a_model_added_while_the_page_is_open_appears_on_refresh_and_makes_a_video(browser, page, models_dir, photo,
                                                                                  tmp_path):
    """The guard of Refresh in a running server: a model folder copied into the models folder after the page
    was opened is listed when Refresh is pressed, can be chosen, and makes the video."""
    import shutil

    from test_app import start_server

    models = tmp_path / "models"
    shutil.copytree(models_dir / TINY_MODEL, models / "first-model")
    demo, server = start_server(models, tmp_path / "web", tmp_path / "gradio-temp")
    try:
        page.goto(server.url)
        page.wait_for_selector("#vg-generate")
        assert page.locator("#vg-model input").input_value() == "first-model · Stable Video Diffusion"
        shutil.copytree(models_dir / TINY_MODEL, models / "added-model")  # while the page is open
        page.click("#vg-refresh")
        model = page.locator("#vg-model input")
        model.click()
        option = page.locator("ul.option-list li", has_text="added-model")  # listed now
        option.wait_for(timeout=10_000)
        option.click()
        page.wait_for_function("() => document.querySelector('#vg-model input').value.startsWith('added-model')",
                               timeout=10_000)
        # the model's own defaults are set: its 8 frames at its 7 fps
        page.wait_for_selector("#vg-frames-note >> text=8 frames at 7 fps", timeout=10_000)
        page.locator("#vg-image input[type=file]").set_input_files(str(photo))
        page.wait_for_selector("#vg-image img")
        resolution = page.locator("#vg-resolution input")
        resolution.click()
        resolution.fill(f"{FAST['width']}x{FAST['height']}")
        resolution.press("Enter")
        steps = page.locator("#vg-num-inference-steps input[type=number]")
        steps.fill("10")
        steps.press("Enter")
        choose_fps(page, 8)
        length = page.locator("#vg-duration input[type=number]")
        length.fill("1")
        length.press("Enter")
        page.wait_for_selector("#vg-frames-note >> text=8 frames at 8 fps")
        page.click("#vg-generate")
        page.wait_for_function(
            "() => { const v = document.querySelector('#vg-player video');"
            " return v && v.currentSrc && v.readyState >= 1 && v.duration > 0 }", timeout=60_000)
        assert "Done" in page.locator("#vg-status").inner_text()
        assert '"added-model"' in page.locator("#vg-info").inner_text()  # made by the model added while open

        shutil.copytree(models_dir / TINY_MODEL, models / "later-model")  # and one added with no Refresh:
        page.reload()  # opening the page lists it
        page.wait_for_selector("#vg-generate")
        page.locator("#vg-model input").click()
        page.locator("ul.option-list li", has_text="later-model").wait_for(timeout=10_000)
        assert page.outside_requests == []
    finally:
        demo.close()
