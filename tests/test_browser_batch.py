"""Several pictures at once on the page: dropped in a real browser (Debian's chromium through Playwright, as in
test_browser.py), and sent to the `/generate_batch` API with gradio_client. Each picture is one queued job."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import TINY_MODEL
from test_browser import ARTIFACTS, browser, open_and_fill, page, pytestmark, server  # noqa: F401 - fixtures

PAGE_STEPS = 10  # SVD's lowest on the page


def batch_pictures(folder: Path, photo: Path) -> list[Path]:
    """Two good pictures and, between them, a file that is not one."""
    folder.mkdir(parents=True, exist_ok=True)
    first, broken, second = folder / "first.png", folder / "broken.png", folder / "second.png"
    shutil.copyfile(photo, first)
    broken.write_bytes(b"this is not a picture")
    shutil.copyfile(photo, second)
    return [first, broken, second]


def mp4s(folder: Path) -> set[Path]:
    return {path for path in folder.iterdir() if path.suffix == ".mp4"} if folder.exists() else set()


def test_several_pictures_dropped_at_once_make_one_queued_job_each(page, server, photo, tmp_path):  # noqa: F811
    outputs = server.video_gen_outputs
    before = mp4s(outputs)
    open_and_fill(page, server.local_url, photo, steps=PAGE_STEPS)  # the settings every picture gets
    page.get_by_text("Several pictures: one video each").click()
    page.locator("#vg-batch-images input[type=file]").set_input_files(
        [str(path) for path in batch_pictures(tmp_path, photo)])
    page.wait_for_function(  # all three uploaded (the list shows a name's stem and suffix apart)
        "() => (document.querySelector('#vg-batch-images')?.textContent || '').includes('second')", timeout=60_000)
    page.click("#vg-batch-queue")

    page.wait_for_selector("#vg-batch-status >> text=3 of 3 finished", timeout=120_000)
    rows = page.locator("#vg-batch-status tr").all_inner_texts()[1:]
    assert [row.split("\t")[0] for row in rows] == ["first.png", "broken.png", "second.png"]
    assert [row.split("\t")[2] for row in rows] == ["done", "error", "done"]
    assert "image: not a picture this app can read" in rows[1] and "broken.png" in rows[1]
    assert len(mp4s(outputs) - before) == 2
    finished = [entry for entry in server.video_gen_generator.history.entries(limit=10) if entry.status == "done"]
    assert {entry.request["width"] for entry in finished[:2]} == {64}  # the form's settings, each
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-batch.png"), full_page=True)
    assert page.outside_requests == [], f"the page tried to reach the network: {page.outside_requests}"


def test_the_generate_batch_api_takes_a_list_of_pictures(server, photo, tmp_path):  # noqa: F811
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.local_url, verbose=False)
    pictures = batch_pictures(tmp_path, photo)
    settings = dict(model=TINY_MODEL, duration=1, fps=8, resolution="64x64", num_inference_steps=PAGE_STEPS, seed=5)
    status, result = client.predict([handle_file(str(path)) for path in pictures], **settings,
                                    api_name="/generate_batch")
    assert [(row["picture"], row["status"]) for row in result] == [
        ("first.png", "done"), ("broken.png", "error"), ("second.png", "done")]
    assert all(Path(row["output"]).is_file() and row["job"] for row in (result[0], result[2]))
    assert result[1]["error"].startswith("image: not a picture this app can read") and result[1]["job"] is None
    assert "3 of 3 finished" in status

    with pytest.raises(AppError, match="images: must be a list of pictures"):
        client.predict(5, **settings, api_name="/generate_batch")
    with pytest.raises(AppError, match="motion_bucket_id: must be"):  # a bad setting: one line for the batch
        client.predict([handle_file(str(pictures[0]))], **settings, motion_bucket_id=999, api_name="/generate_batch")
