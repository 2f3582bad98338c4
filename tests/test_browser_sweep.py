"""The Sweep tab and "Continue this video" in a real browser (Debian's chromium through Playwright, the server and
fixtures of tests/test_browser.py), plus their API endpoints through gradio_client."""

from __future__ import annotations

import time

import pytest
from conftest import TINY_MODEL
from test_browser import (  # noqa: F401 - pytest fixtures, used by name
    ARTIFACTS,
    browser,
    open_and_fill,
    page,
    pytestmark,
    server,
    wait_until_free,
)

from video_gen import video_io


def _outputs(server) -> set:
    folder = server.video_gen_outputs
    return {path for path in folder.iterdir() if path.suffix in (".mp4", ".png")} if folder.exists() else set()


def _open_sweep(page, server, photo, *, steps: int) -> None:
    """The Sweep tab with the photo, a 64x64 size and `steps` steps filled in."""
    page.goto(server.local_url)
    page.get_by_role("tab", name="Sweep", exact=True).click()
    page.locator("#vg-sweep-image input[type=file]").set_input_files(str(photo))
    page.wait_for_selector("#vg-sweep-image img")
    page.locator("#vg-sweep-resolution textarea, #vg-sweep-resolution input").first.fill("64x64")
    page.locator("#vg-sweep-steps input").fill(str(steps))


def test_sweep_tab_runs_the_cells_and_shows_the_comparison(page, server, photo):
    before = _outputs(server)
    _open_sweep(page, server, photo, steps=10)
    page.locator("#vg-values-1 textarea, #vg-values-1 input").first.fill("1,2")
    vary = page.locator("#vg-vary-2 input")
    vary.click()
    page.locator("ul.option-list li", has_text="motion_bucket_id").click()
    page.locator("#vg-values-2 textarea, #vg-values-2 input").first.fill("60,200")
    page.click("#vg-sweep-run")

    page.wait_for_selector("#vg-sweep-status >> text=Cell 1 of 4", timeout=60_000)  # "cell k of n"
    page.wait_for_selector("#vg-sweep-status >> text=Cell 4 of 4", timeout=120_000)
    page.wait_for_function(
        "() => { const v = document.querySelector('#vg-sweep-grid video');"
        " return v && v.currentSrc && v.readyState >= 1 && v.duration > 0 }", timeout=120_000)
    page.wait_for_selector("#vg-sweep-sheet img", timeout=10_000)
    assert "Done" in page.locator("#vg-sweep-status").inner_text()
    new = _outputs(server) - before
    assert len([path for path in new if "_sweep_" not in path.name]) == 4  # each cell an ordinary output
    grids = [path for path in new if path.name.endswith("_4cells.mp4")]
    assert len(grids) == 1 and len([path for path in new if path.name.endswith("_sheet.png")]) == 1
    frames, info = video_io.read_video(grids[0])
    assert (info.width, info.height) == (2 * 192, 2 * (192 + 34)) and len(frames) == 7  # 1 s at 7 fps
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-sweep.png"), full_page=True)
    assert page.outside_requests == []


def test_cancel_on_the_sweep_tab_stops_the_rest(page, server, photo):
    generator = server.video_gen_generator
    before = _outputs(server)
    _open_sweep(page, server, photo, steps=50)
    page.locator("#vg-values-1 textarea, #vg-values-1 input").first.fill("1,2,3,4,5,6")
    page.click("#vg-sweep-run")
    page.wait_for_selector("#vg-sweep-status >> text=Cell 2 of 6", timeout=120_000)
    page.click("#vg-sweep-cancel")
    page.wait_for_selector("#vg-sweep-status >> text=Cancelled", timeout=10_000)
    wait_until_free(generator)
    time.sleep(1)
    assert not generator.busy and generator.waiting == 0  # nothing of the sweep is left to run
    assert len(_outputs(server) - before) <= 2  # cell 1 (and cell 2 if it ended first), no comparison
    sweep_jobs = [entry for entry in generator.history.entries(limit=6)
                  if entry.request.get("num_inference_steps") == 50 and entry.request.get("width") == 64]
    assert "cancelled" in [entry.status for entry in sweep_jobs]
    assert not [entry for entry in sweep_jobs if entry.status in ("queued", "running")]
    assert len(sweep_jobs) <= 3  # cells are queued one behind the other: the rest never were


def test_continue_this_video_from_the_generate_tab(page, server, photo):
    open_and_fill(page, server.local_url, photo, steps=10)
    page.click("#vg-generate")
    page.wait_for_selector("#vg-status >> text=Done", timeout=60_000)
    page.click("#vg-continue")  # the shown result goes to the "Continue a video" tab
    page.wait_for_selector("#vg-extend-video a, #vg-extend-video .file-preview", timeout=10_000)
    page.locator("#vg-extend-duration input").fill("1")
    page.click("#vg-extend-run")
    page.wait_for_function(
        "() => { const v = document.querySelector('#vg-extend-player video');"
        " return v && v.currentSrc && v.readyState >= 1 && v.duration > 0 }", timeout=60_000)
    assert "Done" in page.locator("#vg-extend-status").inner_text()
    newest = server.video_gen_generator.history.entries(limit=2)
    assert newest[0].info["source"]["job"] == newest[1].id  # the history links the two jobs
    # +1 s at 8 fps is 8 frames, but the model makes 8 at a time with the video's last among them: 7 new frames in
    # one generation, not a second one for one frame (issue 29)
    assert newest[0].info["frames"] == 8 + 7 and newest[0].output.endswith("_extended.mp4")
    assert page.outside_requests == []


def test_sweep_and_extend_api_refuse_bad_input_in_one_line(server, photo, tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    client = gradio_client.Client(server.local_url, verbose=False)
    image = gradio_client.handle_file(str(photo))
    for kwargs, message in [
        (dict(vary_1="colour", values_1="1,2"), "vary: unknown field 'colour'"),
        (dict(vary_1="motion_bucket_id", values_1="60,999"),
         "motion_bucket_id: cell 2 of 2 (motion_bucket_id=999): must be a whole number from 1 to 255, got 999"),
        (dict(vary_1="seed", values_1=",".join(map(str, range(1, 8))), vary_2="motion_bucket_id",
              values_2="1,2,3,4,5,6"), "vary: 7 x 6 = 42 cells; at most 36"),
        (dict(seed="seven"), "seed: must be a whole number, got 'seven'"),
    ]:
        with pytest.raises(gradio_client.exceptions.AppError, match=message.replace("(", r"\(").replace(")", r"\)")):
            client.predict(image=image, model=TINY_MODEL, resolution="64x64", **kwargs, api_name="/sweep")
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    with pytest.raises(gradio_client.exceptions.AppError, match="video: not a video this app can read"):
        client.predict(video=gradio_client.handle_file(str(notes)), duration=1, api_name="/extend")
