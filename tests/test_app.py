"""The web app over real HTTP: a Gradio server on a free loopback port, driven with gradio_client.

Every server here runs the tiny real SVD model from conftest.py through the same `app.launch` as
`python app.py`. Jobs use the page's smallest settings (64x64, 1 s at 8 fps = 8 frames, 10 steps).
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio or gradio_client is imported

import httpx  # noqa: E402
import pytest  # noqa: E402
from conftest import FAST, TINY_MODEL  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGE_MIN_STEPS = 10  # SVD's steps range on the page is 10-50 (its spec)
# The page's controls for conftest's FAST job: 64x64, 1 s at 8 fps = 8 frames.
WEB_FAST = dict(model=TINY_MODEL, duration=1, fps=FAST["num_frames"], resolution=f"{FAST['width']}x{FAST['height']}",
                num_inference_steps=PAGE_MIN_STEPS)
LONG_STEPS = 50  # a job long enough to cancel in the middle


def load_app():
    """app.py as a module (the repository root need not be on sys.path)."""
    spec = importlib.util.spec_from_file_location("video_gen_web_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    generator: object
    outputs: Path
    temp: Path
    models: Path
    demo: object


def start_server(models_dir: Path, root: Path, temp: Path, *extra: str, host: str = "127.0.0.1"):
    """`app.launch` in this process. Servers that run at the same time share `temp`: Gradio reads
    GRADIO_TEMP_DIR from the environment of the process when it checks an upload."""
    from video_gen import Generator

    app = load_app()
    outputs = root / "outputs"
    generator = Generator(models_dir=models_dir, outputs_dir=outputs)
    args = app.parse_args(["--host", host, "--port", str(free_port()), "--models-dir", str(models_dir),
                           "--outputs-dir", str(outputs), "--temp-dir", str(temp), *extra])
    demo = app.launch(args, generator=generator, block=False, quiet=True)
    return demo, Server(demo.local_url, generator, outputs, temp, models_dir, demo)


@pytest.fixture(scope="module")
def web_temp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gradio-temp")


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory, web_temp):
    demo, running = start_server(models_dir, tmp_path_factory.mktemp("web"), web_temp)
    yield running
    demo.close()


@pytest.fixture()
def client(server, tmp_path):
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=str(tmp_path))


def generate(client, photo, **changes):
    from gradio_client import handle_file

    values = {**WEB_FAST, **changes}
    return client.predict(image=handle_file(str(photo)), **values, api_name="/generate")


def submit(client, photo, **changes):
    from gradio_client import handle_file

    values = {**WEB_FAST, **changes}
    return client.submit(image=handle_file(str(photo)), **values, api_name="/generate")


def wait_until(condition, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def denoising_steps(job) -> list[int]:
    """The denoising steps the job's status panel has shown so far."""
    found = (re.search(r"Denoising · step (\d+) of", str(outputs[3])) for outputs in job.outputs())
    return [int(match.group(1)) for match in found if match]


def wait_for_denoising(job, timeout: float = 60) -> int:
    """Wait until the job's status panel shows a denoising step; returns the latest one."""
    return wait_until(lambda: max(denoising_steps(job), default=None), timeout, "the job to reach denoising")


# ---- the UI module stays free of torch and models ---------------------------------------------
def test_ui_modules_import_no_torch():
    code = ("import sys, video_gen.web.app, video_gen.web.jobs, video_gen.smoothing; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, f"importing the UI imported {done.stdout.strip()} {done.stderr[-2000:]}"


# ---- the page's arithmetic, without a server -------------------------------------------------------
def test_length_and_frame_rate_give_frames_and_a_note_on_how_they_are_made():
    from video_gen.web.fields import length_note, length_plan

    svd_xt = {"num_frames": 25, "fps": 7}  # SVD-XT's clip: 25 frames at 7 fps per generation
    plan = length_plan(3, 8, svd_xt)
    assert (plan.frames, plan.fps, plan.segments, plan.factor) == (24, 8, 1, 1)
    assert length_note(plan, svd_xt).startswith("**24 frames at 8 fps = 3.0 s.**")
    plan = length_plan(10, 24, svd_xt)  # longer than one generation and faster than the model's rate
    assert plan.frames == 240 and plan.segments > 1 and plan.factor > 1
    note = length_note(plan, svd_xt)
    assert "240 frames at 24 fps = 10.0 s" in note and f"{plan.segments} chained segments" in note
    assert f"interpolated {plan.factor}×" in note


def test_progress_shows_stage_step_segment_elapsed_and_eta_and_only_moves_forward():
    from video_gen.events import StageEvent, StepEvent
    from video_gen.web.progress import ProgressView

    view = ProgressView(segments=2)
    events = [StageEvent("loading_model", "loading tiny-svd")]
    for segment in (1, 2):
        events.append(StageEvent("encoding_image", f"segment {segment} of 2: encoding image"))
        events += [StepEvent("denoising", i, 10, i * 1.0, (10 - i) * 1.0, segment, 2) for i in range(1, 11)]
        events += [StepEvent("decoding", i, 2, 10.0 + i, 2.0 - i, segment, 2) for i in (1, 2)]
    events.append(StageEvent("writing", "writing mp4"))
    fractions = []
    for event in events:
        view.update(event)
        fractions.append(view.fraction)
        if isinstance(event, StepEvent) and event.stage == "denoising" and event.index == 5:
            text = view.html()
            assert f"Denoising · segment {event.segment} of 2 · step 5 of 10" in text
            assert "elapsed" in text and "ETA 5.0 s" in text
    assert fractions == sorted(fractions) and fractions[-1] >= 0.98


def test_resolutions_parse_and_match_image_keeps_shape_in_multiples_of_64():
    from video_gen.errors import InvalidRequest
    from video_gen.web.fields import match_image_size, parse_resolution

    assert parse_resolution("1024x576") == (1024, 576)
    assert parse_resolution("576×1024") == (576, 1024)
    assert parse_resolution("match image") is None
    with pytest.raises(InvalidRequest, match="resolution"):
        parse_resolution("big")
    width, height = match_image_size(4000, 3000, 1024 * 576)  # a 4:3 photo at SVD's pixel count
    assert width % 64 == 0 and height % 64 == 0
    assert abs(width / height - 4 / 3) < 0.1 and 0.8 < width * height / (1024 * 576) < 1.2
    assert match_image_size(3000, 4000, 1024 * 576) == (height, width)


def page_values(**changes):
    """The Generate form's values by field name: its start values, changed."""
    from video_gen.web.fields import Form

    return {**Form().start_values(), "num_inference_steps": 25, "motion_bucket_id": 127, "noise_aug_strength": 0.02,
            "min_guidance_scale": 1.0, "max_guidance_scale": 3.0, "decode_chunk_size": 8, **changes}


def test_controls_become_one_request_with_the_models_defaults(generator, photo, tmp_path):
    from video_gen.errors import InvalidRequest
    from video_gen.web.app import WebApp

    tab = WebApp(generator, tmp_path).generate_tab
    request = tab.request_from_values(page_values(image=str(photo), model=TINY_MODEL, duration=3, fps=24,
                                                  resolution="match image"))
    assert request.num_frames == 72 and request.fps == 24  # 3 s x 24 fps; the engine plans the segments
    assert request.width % 64 == 0 and request.height % 64 == 0 and request.width > request.height  # 4:3 photo
    with pytest.raises(InvalidRequest, match="model: 'elsewhere' is not installed"):
        tab.request_from_values(page_values(image=str(photo), model="elsewhere", duration=1, resolution="64x64"))
    with pytest.raises(InvalidRequest, match="^image: missing"):
        tab.request_from_values(page_values(image=None, model=TINY_MODEL, duration=1, resolution="64x64"))


def test_no_model_installed_is_a_clear_empty_state_and_refresh_finds_a_new_one(tmp_path, copy_model, photo):
    from video_gen import Generator
    from video_gen.errors import InvalidRequest
    from video_gen.web.app import WebApp

    models = tmp_path / "models"
    web = WebApp(Generator(models_dir=models, outputs_dir=tmp_path / "outputs"), tmp_path / "work")
    demo = web.build()
    config = demo.get_config_file()
    empty = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "vg-empty")
    assert empty["props"]["visible"] is True and "No model installed" in empty["props"]["value"]
    assert str(models.resolve()) in empty["props"]["value"] and "video-gen models download" in empty["props"]["value"]
    tab = web.generate_tab
    with pytest.raises(InvalidRequest, match="^model: no model installed"):
        tab.request_from_values(page_values(image=str(photo), model=None, duration=1, resolution="64x64"))

    copy_model("new-model")  # installed while the page is open
    form = tab.form
    updates = tab.refresh({form["model"]: None, form["fps"]: 8, form["loop"]: "none", form["interpolation"]: 0})
    dropdown, message = updates[form["model"]], updates[tab.model_message]
    assert [value for _, value in dropdown["choices"]] == ["new-model"] and dropdown["value"] == "new-model"
    assert message["visible"] is False
    # the new model's own defaults are set with it, on every machine (issue 23: one source of defaults; a CPU
    # shows the estimate's warning and the one-click fast settings instead)
    assert updates[form["resolution"]] == "1024x576"
    own = web.generator.defaults("new-model")
    assert updates[form["fps"]]["value"] == own["fps"] == 7
    assert updates[form["duration"]] == round(own["num_frames"] / own["fps"], 2)


# ---- a real server --------------------------------------------------------------------------------
def test_gradio_client_gets_an_mp4_with_the_requested_frames(server, client, photo):
    from video_gen import video_io

    video, info, seed_used, status, preview, download = generate(client, photo, seed=1234)

    assert Path(video).suffix == ".mp4"
    probe = video_io.probe_video(video)
    assert (probe.frames, probe.width, probe.height, probe.fps) == (8, 64, 64, 8)
    assert probe.codec == "h264"
    written = Path(info["output"])
    assert written.parent == server.outputs and written.read_bytes() == Path(video).read_bytes()
    assert download is None  # the MP4 is sent once: `video` is the file to save (a PNG job's zip comes as download)
    assert seed_used == "1234" and info["seed"] == 1234 and info["parameters"]["seed"] == 1234
    assert info["model"] == TINY_MODEL and info["frames"] == 8 and info["resolution"] == "64x64"
    assert info["parameters"]["num_inference_steps"] == PAGE_MIN_STEPS
    assert info["elapsed_s"] > 0 and "peak_memory" in info and info["timings_s"]["denoising"] > 0
    assert "Done" in status and "seed 1234" in status
    assert preview is not None  # the last live preview picture
    # (the page's gallery is refreshed by its own step; test_browser sees the new video in it)
    # The upload went to the app's own temporary folder, not Gradio's shared one.
    assert Path(info["parameters"]["image"]).resolve().is_relative_to(server.temp.resolve())


def test_random_seed_is_drawn_and_reported(client, photo):
    _, info, seed_used, *_ = generate(client, photo, seed=-1, live_preview=False)
    assert int(seed_used) == info["seed"] > 0


def test_png_frames_come_as_a_playable_preview_and_a_zip(client, photo):
    video, info, _, _, _, download = generate(client, photo, output_format="png")
    folder = Path(info["output"])
    assert folder.is_dir() and len(list(folder.glob("frame_*.png"))) == 8
    assert Path(video).suffix == ".mp4"
    with zipfile.ZipFile(download) as archive:
        assert len([name for name in archive.namelist() if name.endswith(".png")]) == 8


def test_a_long_video_is_chained_segments_with_progress_for_each(client, photo):
    from video_gen import video_io

    # 16 frames: more than the tiny model's 8 in one generation. 20 steps keep each segment longer than
    # the page's update interval, so that each one is seen.
    job = submit(client, photo, duration=2, num_inference_steps=20)
    video, info, *_ = job.result(timeout=120)
    assert video_io.probe_video(video).frames == 16 and info["frames"] == 16
    segments = int(re.search(r"(\d+) segments", info["plan"]).group(1))
    assert segments >= 2
    statuses = " ".join(str(outputs[3]) for outputs in job.outputs())
    for segment in range(1, segments + 1):
        assert f"segment {segment} of {segments}" in statuses


def test_three_jobs_from_two_clients_finish_in_order_one_at_a_time(server, photo, tmp_path):
    from gradio_client import Client

    first, second = (Client(server.url, verbose=False, download_files=str(tmp_path / name)) for name in "ab")
    jobs = []
    for number, client in enumerate((first, second, first)):
        job = submit(client, photo, seed=100 + number)
        # The next job is submitted only once the server has queued this one (its status panel has been
        # sent), so the submission order is known.
        wait_until(lambda: job.outputs(), 30, "the job to be queued")
        jobs.append(job)
    results = [job.result(timeout=240) for job in jobs]
    # The board's queue, not Gradio's: the place shows on the job's status panel.
    ranks = [int(found.group(1)) for outputs in jobs[2].outputs()
             if (found := re.search(r"Waiting for its turn: (\d+) jobs? ahead", str(outputs[3])))]

    infos = [result[1] for result in results]
    assert [info["seed"] for info in infos] == [100, 101, 102]
    started = [datetime.fromisoformat(info["started_at"]) for info in infos]
    finished = [datetime.fromisoformat(info["finished_at"]) for info in infos]
    assert started == sorted(started), "jobs ran out of submission order"
    for earlier_end, later_start in zip(finished, started[1:]):
        assert earlier_end <= later_start, "two jobs ran at the same time"
    assert ranks and max(ranks) >= 1, "the third job never saw its place in the queue"
    for info in infos:
        assert Path(info["output"]).is_file() and info["frames"] == 8


def test_cancel_stops_the_running_job_within_a_step_and_the_next_job_succeeds(server, client, photo):
    generator = server.generator
    before = set(server.outputs.iterdir())
    job = submit(client, photo, num_inference_steps=LONG_STEPS)
    wait_for_denoising(job)
    # Count the UNet's forward passes (one per denoising step) that start after the Cancel has returned.
    forwards: list[float] = []
    hook = generator.resident_pipeline.unet.register_forward_pre_hook(lambda module, inputs: forwards.append(time.monotonic()))
    try:
        status = client.predict(api_name="/cancel")  # the Cancel button's endpoint, same session
        cancelled_at = time.monotonic()
        assert "Cancelled" in status
        result = job.result(timeout=60)
        wait_until(lambda: not generator.busy, 30, "the engine to be free")
    finally:
        hook.remove()
    assert len([started for started in forwards if started > cancelled_at]) == 0, "a step began after the cancel"
    assert result[0] is None and result[1] == {"cancelled": True} and "Cancelled" in result[3]
    assert max(denoising_steps(job)) < LONG_STEPS
    assert set(server.outputs.iterdir()) == before, "a cancelled job left a file behind"

    video, info, *_ = generate(client, photo)  # the next job runs normally
    assert Path(video).is_file() and info["frames"] == 8


def test_closing_the_connection_cancels_the_job(server, client, photo):
    """gradio_client's job.cancel() is what the browser's Cancel and a closed tab do: Gradio closes
    the handler, which must stop the engine job too, not leave it running for nobody."""
    generator = server.generator
    before = set(server.outputs.iterdir())
    job = submit(client, photo, num_inference_steps=LONG_STEPS)
    wait_for_denoising(job)
    assert job.cancel()
    wait_until(lambda: not generator.busy, 30, "the engine to stop the job")
    assert set(server.outputs.iterdir()) == before


def test_bad_inputs_are_one_line_errors_and_the_server_keeps_serving(client, photo, tmp_path):
    from gradio_client.exceptions import AppError

    not_a_picture = tmp_path / "holiday.png"
    not_a_picture.write_text("this is not a picture")
    cases = [
        (dict(photo=not_a_picture), "image: not a picture this app can read"),
        (dict(motion_bucket_id=999), "motion_bucket_id: must be from 1 to 255, got 999"),
        (dict(num_inference_steps=3), "num_inference_steps: must be from 10 to 50, got 3"),
        (dict(resolution="65x64"), "width: must be a multiple of 8"),
        (dict(resolution="huge"), "resolution: expected WIDTHxHEIGHT"),
        (dict(model="svd-xt"), "model: 'svd-xt' is not installed"),
        (dict(fps=61), "fps: must be a whole number from 1 to 60, got 61"),
        (dict(output_format="avi"), "output_format: must be one of mp4, webm, png, got 'avi'"),
    ]
    for changes, expected in cases:
        picture = changes.pop("photo", photo)
        with pytest.raises(AppError) as caught:
            generate(client, picture, **changes)
        message = str(caught.value)
        assert expected in message, message
        assert "Traceback" not in message and "\n" not in message.strip()
    video, info, *_ = generate(client, photo)
    assert Path(video).is_file() and info["frames"] == 8


def test_only_the_outputs_are_served_never_the_models(server, client, photo):
    _, info, *_ = generate(client, photo)
    output = Path(info["output"])
    served = httpx.get(f"{server.url}gradio_api/file={output}")
    assert served.status_code == 200 and served.content == output.read_bytes()
    model_file = server.models / TINY_MODEL / "model_index.json"
    assert httpx.get(f"{server.url}gradio_api/file={model_file}").status_code == 403
    assert httpx.get(f"{server.url}gradio_api/file={ROOT / 'app.py'}").status_code == 403
    assert httpx.get(f"{server.url}monitoring").status_code == 403  # Gradio's monitoring page is off
    # Nothing from the models folder may be served, even if a handler returned one of its files.
    assert server.demo.allowed_paths == [str(server.outputs.resolve())]
    assert str(server.models.resolve()) in server.demo.blocked_paths
    assert server.demo.share is False and server.demo.analytics_enabled is False


def test_the_page_lists_models_and_the_api_names_generate(server):
    config = httpx.get(f"{server.url}config").json()
    names = [dependency.get("api_name") for dependency in config["dependencies"]]
    assert "generate" in names and "cancel" in names
    generate = next(d for d in config["dependencies"] if d.get("api_name") == "generate")
    assert generate["trigger_mode"] == "once" and generate["types"]["generator"]  # streamed
    # Jobs wait in the board's queue (persisted, in order, one at a time), at most --queue-size of them.
    assert server.demo.video_gen_web.board.max_waiting == 20
    dropdowns = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "vg-model"]
    assert [choice[1] for choice in dropdowns[0]["props"]["choices"]] == [TINY_MODEL]


# ---- listening off loopback ------------------------------------------------------------------------
def test_listening_on_all_addresses_without_auth_is_refused():
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--host", "0.0.0.0", "--port", str(free_port())],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on 0.0.0.0 without --auth" in lines[0]
    assert "Traceback" not in done.stderr


def test_auth_refuses_strangers_and_limits_hold(models_dir, tmp_path, photo, web_temp):
    """On 0.0.0.0 with --auth: no page data or API without the password; small upload and queue limits."""
    from gradio_client import Client, handle_file

    demo, running = start_server(models_dir, tmp_path, web_temp, "--auth", "ann:secret", "--max-file-size", "20KB",
                                 "--queue-size", "1", host="0.0.0.0")
    port = running.url.rstrip("/").rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}/"
    try:
        assert httpx.get(f"{url}config").status_code == 401
        assert httpx.get(f"{url}gradio_api/info").status_code == 401
        with pytest.raises(Exception):
            Client(url, verbose=False, download_files=str(tmp_path / "stranger"))
        client = Client(url, auth=("ann", "secret"), verbose=False, download_files=str(tmp_path / "ann"))

        big = tmp_path / "big.png"
        big.write_bytes(photo.read_bytes() + b"\0" * 30_000)  # still a PNG, but 30 KB over a 20 KB limit
        with pytest.raises(Exception, match="413|[Ff]ile size|too large"):
            client.predict(image=handle_file(str(big)), **WEB_FAST, api_name="/generate")

        # --queue-size 1: one job runs, one waits, a third is refused.
        running_job = submit(client, photo, num_inference_steps=LONG_STEPS)
        wait_for_denoising(running_job)
        waiting = submit(client, photo)
        board = running.demo.video_gen_web.board
        wait_until(lambda: board.waiting == 1, 30, "the second job to wait")
        refused = submit(client, photo)
        with pytest.raises(Exception, match="[Qq]ueue"):
            refused.result(timeout=30)
        waiting.cancel()
        client.predict(api_name="/cancel")
        wait_until(lambda: not running.generator.busy, 30, "the engine to be free")
    finally:
        demo.close()
