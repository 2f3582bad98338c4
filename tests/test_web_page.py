"""The page's package (`video_gen/web/`): the form follows each family's spec, one Generate click looks
the model up once and prepares the job once, smoothing waits for the engine's turn, Refresh failures are shown,
and importing the page writes nothing into the package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from conftest import TINY_MODEL
from test_app import ROOT, generate, start_server, submit, wait_for_denoising

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def test_the_web_package_imports_no_torch_and_writes_no_type_stubs(tmp_path):
    """Gradio writes a .pyi beside every module that defines a component class (component_meta.py); building
    the whole page must leave the package as it is."""
    before = sorted((ROOT / "video_gen").rglob("*.pyi"))
    code = ("import sys; from video_gen import Generator; from video_gen.web.app import WebApp; "
            f"WebApp(Generator(models_dir={str(tmp_path / 'models')!r}, outputs_dir={str(tmp_path / 'out')!r}), "
            f"{str(tmp_path / 'work')!r}).build(); "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, f"building the page imported {done.stdout.strip()} {done.stderr[-2000:]}"
    assert sorted((ROOT / "video_gen").rglob("*.pyi")) == before == [], "a type stub was written into the package"


# ---- the form follows the family's spec ---------------------------------------------------------------
@pytest.fixture(scope="module")
def family_page(family_models, models_dir, tmp_path_factory):
    """A page over the text families' folder plus conftest's tiny SVD (as an extra models folder)."""
    from video_gen import Generator
    from video_gen.web.app import WebApp

    outputs = tmp_path_factory.mktemp("family-page")
    generator = Generator(models_dir=family_models, outputs_dir=outputs / "outputs", extra_models_dirs=[models_dir])
    return WebApp(generator, outputs / "work")


def test_the_form_shows_what_each_family_uses_with_its_ranges(family_page):
    from video_gen.families import spec_for
    labels = dict((name, label) for label, name in family_page.model_choices())
    assert labels[TINY_MODEL] == f"{TINY_MODEL} · {spec_for('svd').label}"
    assert labels["tiny-sd15"] == f"tiny-sd15 · {spec_for('animatediff').label}"
    svd, animatediff, modelscope = (family_page.family_controls(name) for name in (TINY_MODEL, "tiny-sd15",
                                                                                  "tiny-modelscope"))
    for name in ("motion_bucket_id", "noise_aug_strength", "min_guidance_scale"):  # SVD's own controls
        assert svd[name]["visible"] and not animatediff[name]["visible"] and not modelscope[name]["visible"], name
    for name in ("prompt", "negative_prompt", "image_strength"):  # the text families'
        assert not svd[name]["visible"] and animatediff[name]["visible"] and modelscope[name]["visible"], name
    assert "optional" in animatediff["image"]["label"] and "optional" not in svd["image"]["label"]
    # The steps slider's range is the family's (AnimateLCM's 6 steps fit AnimateDiff's).
    assert (animatediff["num_inference_steps"]["minimum"], animatediff["num_inference_steps"]["maximum"]) == \
        spec_for("animatediff").steps_range == (4, 50)
    assert (svd["num_inference_steps"]["minimum"], svd["num_inference_steps"]["maximum"]) == spec_for("svd").steps_range
    # The last frame shows for a family that takes one, and for no family here.
    assert not any(shown["last_image"]["visible"] for shown in (svd, animatediff, modelscope))
    last_image = family_page.generate_tab.form.field["last_image"]
    assert last_image.update(replace(spec_for("svd"), last_image=True))["visible"] is True


def test_each_family_gets_its_own_fields_and_ranges_in_the_request(family_page, photo):
    from test_app import page_values

    from video_gen.errors import InvalidRequest

    tab = family_page.generate_tab
    common = dict(duration=1, resolution="64x64", prompt="a cat", negative_prompt="blur", motion_bucket_id=200)
    text = tab.request_from_values(page_values(model="tiny-sd15", image=None, num_inference_steps=6, **common))
    assert text.num_inference_steps == 6 and text.prompt == "a cat" and text.image_strength == 0.5
    assert text.motion_bucket_id is None and text.min_guidance_scale is None  # not AnimateDiff's: its defaults
    picture = tab.request_from_values(page_values(model=TINY_MODEL, image=str(photo), num_inference_steps=20,
                                                  **common))
    assert picture.motion_bucket_id == 200 and picture.prompt == "" and picture.image_strength is None
    with pytest.raises(InvalidRequest, match=r"^num_inference_steps: must be from 10 to 50, got 6$"):
        tab.request_from_values(page_values(model=TINY_MODEL, image=str(photo), num_inference_steps=6, **common))


def test_a_refresh_that_fails_says_so_on_the_page(family_page, monkeypatch):
    tab = family_page.generate_tab
    family_page.build()

    def unreadable():
        raise PermissionError(13, "Permission denied", str(tab.generator.models_dir))

    monkeypatch.setattr(tab.generator.catalog, "refresh", unreadable)
    form = tab.form
    updates = tab.refresh({form["model"]: TINY_MODEL, form["fps"]: 8, form["loop"]: "none", form["interpolation"]: 0})
    message = updates[tab.model_message]
    assert message["visible"] is True and "Could not list the models" in message["value"]
    assert "Permission denied" in message["value"] and form["model"] not in updates


# ---- a real server ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    demo, running = start_server(models_dir, tmp_path_factory.mktemp("web-page"), tmp_path_factory.mktemp("temp"))
    yield running
    demo.close()


@pytest.fixture()
def client(server, tmp_path):
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=str(tmp_path))


def test_one_generate_click_scans_the_models_at_most_once_and_prepares_once(server, client, photo, monkeypatch):
    from video_gen.engine import PreparedJob

    generator = server.generator
    generate(client, photo)  # the model is resident, the catalog read
    prepares = []
    real_prepare = generator.prepare

    def counting_prepare(request):
        if not isinstance(request, PreparedJob):  # a prepared job is passed through unchanged: no work
            prepares.append(request)
        return real_prepare(request)

    monkeypatch.setattr(generator, "prepare", counting_prepare)
    scans = generator.catalog.scans
    _, info, *_ = generate(client, photo, seed=77)
    assert info["seed"] == 77
    assert generator.catalog.scans - scans <= 1 and len(prepares) == 1, (generator.catalog.scans - scans, prepares)
    print(f"one /generate call: {generator.catalog.scans - scans} scan(s), {len(prepares)} prepare")


def test_smoothing_waits_for_the_running_job(server, client, photo, tmp_path):
    """Interpolation takes the CPU (or GPU) a job needs: a smooth started while a video is made runs after it."""
    from gradio_client import handle_file

    from video_gen import video_io

    _, info, *_ = generate(client, photo, seed=5)
    source = Path(info["output"])
    job = submit(client, photo, num_inference_steps=50, seed=6)
    wait_for_denoising(job)
    smoothed: dict = {}

    def smooth():
        smoothed["result"] = client.predict(video=handle_file(str(source)), fps=16, loop="none",
                                            api_name="/smooth_preview")
        smoothed["at"] = datetime.now()

    thread = threading.Thread(target=smooth)
    thread.start()
    _, job_info, *_ = job.result(timeout=300)
    thread.join(timeout=120)
    assert smoothed["at"] >= datetime.fromisoformat(job_info["finished_at"]), "the smooth ran beside the job"
    assert video_io.probe_video(smoothed["result"][1]["preview"]).fps == 16
    assert smoothed["result"][1]["preview"] and not server.generator.busy
