"""The first ten minutes from the command line and in the pieces the page uses (issue 18): `video-gen models
demo`, the demo labelled wherever a model is named, the messages, the quiet console, the `--fps` default, the
memory line, the time estimate and the whole job's ETA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from video_gen.demo import DEMO_FILE, DEMO_NAME, DEMO_NOTE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_install(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`video-gen models demo` run in its own process, as a user runs it: the models folder and what it said."""
    folder = tmp_path_factory.mktemp("demo") / "models"
    done = subprocess.run([sys.executable, "-m", "video_gen", "models", "demo", "--models-dir", str(folder)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return folder, done


@pytest.fixture(scope="module")
def demo_models(demo_install) -> Path:
    return demo_install[0]


def test_models_demo_installs_a_labelled_tiny_model_quietly(demo_install):
    demo_models, done = demo_install
    assert done.stdout.strip() == str(demo_models / DEMO_NAME)
    card = json.loads((demo_models / DEMO_NAME / DEMO_FILE).read_text())
    assert card["demo"] is True and card["note"] == DEMO_NOTE
    assert (demo_models / DEMO_NAME / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not [path for path in demo_models.iterdir() if path.name.startswith(".")]  # no build folder left
    stderr = done.stderr
    # One line saying what it is and how to use it from here, and no library chatter
    assert DEMO_NOTE in stderr and f"generate PICTURE --model {DEMO_NAME}" in stderr
    for chatter in ("torchvision", "Writing model shards", "Loading", "%|", "should be kept in float32"):
        assert chatter not in stderr, stderr


def test_models_demo_again_keeps_it_and_models_list_labels_it(demo_models):
    from video_gen.cli import main
    from video_gen.downloads import install_demo

    before = (demo_models / DEMO_NAME / DEMO_FILE).stat().st_mtime_ns
    assert install_demo(demo_models) == demo_models / DEMO_NAME
    assert (demo_models / DEMO_NAME / DEMO_FILE).stat().st_mtime_ns == before
    listed = subprocess.run([sys.executable, "-m", "video_gen", "models", "list", "--models-dir", str(demo_models)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    name, family, kind = listed.stdout.splitlines()[0].split("\t")[:3]
    assert (name, family) == (DEMO_NAME, "svd") and DEMO_NOTE in kind
    (demo_models.parent / "taken").mkdir(exist_ok=True)
    with pytest.raises(FileExistsError, match="not a demo model"):
        install_demo(demo_models.parent, name="taken")
    assert main(["models", "demo", "--models-dir", str(demo_models)]) == 0


def test_a_demo_video_says_it_is_noise_in_its_info_and_metadata(demo_models, photo, tmp_path):
    from video_gen import GenerationRequest, Generator, video_io
    from video_gen.demo import DEMO_DEFAULTS

    generator = Generator(models_dir=demo_models, outputs_dir=tmp_path / "outputs")
    assert generator.defaults(DEMO_NAME)["width"] == DEMO_DEFAULTS["width"]  # its own small defaults
    result = generator.generate(GenerationRequest(image=str(photo), width=64, height=64, num_frames=8,
                                                  num_inference_steps=2, seed=1))
    assert result.info()["demo"] == DEMO_NOTE
    assert video_io.read_metadata(result.path)["demo"] == DEMO_NOTE
    assert json.loads(result.path.with_suffix(".json").read_text())["demo"] == DEMO_NOTE


def test_info_and_the_about_tab_label_the_demo(demo_models, tmp_path, capsys):
    from video_gen import Generator
    from video_gen.cli import main
    from video_gen.web.app import WebApp

    assert main(["info", "--models-dir", str(demo_models)]) == 0
    assert f"{DEMO_NAME} is a demo model ({DEMO_NOTE})" in capsys.readouterr().out
    assert main(["info", "--json", "--models-dir", str(demo_models)]) == 0
    assert json.loads(capsys.readouterr().out)["demo_models"] == [DEMO_NAME]
    web = WebApp(Generator(models_dir=demo_models, outputs_dir=tmp_path / "outputs"), tmp_path / "work")
    assert f"**{DEMO_NAME} is a demo model**" in web.about(DEMO_NAME, "128x128", 1, 8, 8)
    assert web.model_choices() == [(f"{DEMO_NAME} · Stable Video Diffusion · DEMO: makes noise, not video", DEMO_NAME)]


def test_selftest_can_keep_its_model_as_the_demo(demo_models, capsys):
    from video_gen.cli import main

    assert main(["selftest", "--keep", "--models-dir", str(demo_models)]) == 0
    out = capsys.readouterr().out
    assert "selftest OK" in out and f"kept the tiny model as the demo model {(demo_models / DEMO_NAME).resolve()}" in out
    assert (demo_models / DEMO_NAME / DEMO_FILE).is_file()


def test_messages_name_commands_as_runnable_from_here(tmp_path, monkeypatch):
    from video_gen import console
    from video_gen.errors import ModelNotFound
    from video_gen.catalog import resolve_model

    script = Path(sys.prefix) / "bin" / "video-gen"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # not activated: the script's own path
    expected = str(script) if script.is_file() else f"{Path(sys.executable).name} -m video_gen"
    assert console.command("models demo") == f"{expected} models demo"
    monkeypatch.chdir(Path(sys.prefix).parent)  # from the folder that holds the venv: a relative path
    if script.is_file():
        assert console.command("models demo") == f"{Path(sys.prefix).name}/bin/video-gen models demo"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")  # activated: the plain name
    if script.is_file():
        assert console.command("models demo") == "video-gen models demo"
    with pytest.raises(ModelNotFound, match=r"no model installed.*models/README.md.*`video-gen models demo`"):
        resolve_model(None, tmp_path / "empty")


def test_models_list_with_nothing_installed_points_at_the_demo(tmp_path):
    listed = subprocess.run([sys.executable, "-m", "video_gen", "models", "list", "--models-dir", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**__import__("os").environ, "PATH": "/usr/bin:/bin"})
    assert listed.returncode == 0 and "models demo" in listed.stderr and "no model installed" in listed.stderr


def test_fps_default_is_the_models_own_on_the_command_line_and_the_page(models_dir, photo, tmp_path):
    """Issue 23 (one source of defaults): no door fills in a rate of its own; the model's (SVD's 7) is used."""
    from video_gen import Generator, video_io
    from video_gen.cli import build_parser, main
    from video_gen.web.app import WebApp

    assert "default: the model's" in build_parser()._subparsers._group_actions[0].choices["generate"].format_help()
    web = WebApp(Generator(models_dir=models_dir, outputs_dir=tmp_path), tmp_path / "work")
    web.build()
    assert web.generate_tab.form["fps"].value == 7  # the page starts with the installed model's own rate
    out = tmp_path / "clip.mp4"
    assert main(["generate", str(photo), "--models-dir", str(models_dir), "--outputs-dir", str(tmp_path),
                 "--width", "64", "--height", "64", "--frames", "8", "--steps", "2", "--output", str(out),
                 "--quiet"]) == 0
    assert video_io.probe_video(out).fps == pytest.approx(7)


def test_the_plan_line_never_promises_more_memory_than_the_machine_has():
    from video_gen.memory import MemoryPlan

    GiB = 2**30
    over = MemoryPlan(device="cpu", dtype="float32", estimate_bytes=int(26.4 * GiB), total_bytes=24 * GiB)
    assert over.label().startswith("24 GB RAM: on the CPU") and "needs ~26.4 GB, more than the 24 GB RAM" in over.label()
    assert "GPU" not in over.label()
    fits = MemoryPlan(device="cuda:0", dtype="float16", estimate_bytes=int(9.4 * GiB), total_bytes=12 * GiB)
    assert fits.label() == "12 GB GPU: everything on the GPU, decode 8 frames at a time, ~9.4 GB"


def test_startup_lines_say_url_device_models_and_outputs(demo_models, tmp_path):
    from video_gen import Generator
    from video_gen.web.app import startup_lines

    lines = startup_lines(Generator(models_dir=demo_models, outputs_dir=tmp_path / "out"), "http://127.0.0.1:7860/",
                          where="this computer only")
    text = "\n".join(lines)
    assert lines[0].startswith("Video generator running at http://127.0.0.1:7860/")
    assert "device: cpu" in text and "RAM" in text
    assert f"{DEMO_NAME} ({DEMO_NOTE})" in text and f"outputs: {(tmp_path / 'out').resolve()}" in text
    empty = "\n".join(startup_lines(Generator(models_dir=tmp_path / "none", outputs_dir=tmp_path / "out"), "u",
                                    where="here"))
    assert "models: none in" in empty and "models demo --models-dir" in empty


# ---- the time estimate and the whole job's ETA --------------------------------------------------------------
def test_the_estimate_follows_the_history_of_the_same_model_and_size(demo_models, photo, tmp_path):
    from video_gen import GenerationRequest, Generator
    from video_gen.history import History
    from video_gen.timing import Estimator

    generator = Generator(models_dir=demo_models, outputs_dir=tmp_path / "outputs", history=History(":memory:"))
    estimator = Estimator(generator)
    request = GenerationRequest(image=str(photo), width=64, height=64, num_frames=8, num_inference_steps=3, seed=1)
    job = generator.plan_job(request)
    rough = estimator.estimate(job)
    assert rough.basis == "rough" and rough.total_s > 0 and rough.stages["loading_model"] > 0
    generator.generate(request)
    generator.generate(request)  # resident now, like the next one
    measured = estimator.estimate(generator.plan_job(request))
    assert measured.basis == "measured" and measured.jobs == 1  # the resident job, not the one that loaded
    assert "loading_model" not in measured.stages
    last = generator.history.entries(limit=1)[0].info["timings_s"]
    assert measured.stages["denoising"] == pytest.approx(last["denoising"], rel=1e-6)
    bigger = estimator.estimate(generator.plan_job(request.replace(width=128, height=128)))
    assert bigger.basis == "measured-other-sizes"
    assert bigger.stages["denoising"] == pytest.approx(4 * measured.stages["denoising"], rel=1e-6)  # 4x the tokens


def test_the_whole_job_eta_counts_the_segments_and_stages_still_to_come():
    from video_gen.timing import TimeEstimate, whole_job_eta

    estimate = TimeEstimate({"loading_model": 10, "encoding_image": 3, "denoising": 60, "decoding": 15,
                             "interpolating": 8, "writing": 2}, segments=3, basis="rough", jobs=0, device="cpu")
    assert estimate.total_s == 98
    # In segment 1's denoising: its decode (5) + 2 more segments (2 x 26) + interpolation and writing (10)
    assert estimate.remaining_after("denoising", 1) == pytest.approx(5 + 52 + 10)
    assert whole_job_eta(estimate, "denoising", 1, 4.0, elapsed_s=None) == pytest.approx(71)
    assert whole_job_eta(estimate, "writing", 1, 0.5, elapsed_s=None) == pytest.approx(0.5)
    # Running twice as slowly as estimated: what is left takes twice as long too
    done = 98 - 67 - 4.0
    assert whole_job_eta(estimate, "denoising", 1, 4.0, elapsed_s=2 * done) == pytest.approx(2 * 67 + 4.0)


def test_the_progress_panel_shows_the_whole_jobs_eta():
    from video_gen.events import StepEvent
    from video_gen.timing import TimeEstimate
    from video_gen.web.progress import ProgressView

    estimate = TimeEstimate({"encoding_image": 2, "denoising": 40, "decoding": 10, "writing": 1}, segments=2,
                            basis="measured", jobs=1, device="cpu")
    view = ProgressView(segments=2, estimate=estimate)
    view.update(StepEvent("denoising", 5, 10, elapsed_s=11.0, eta_s=10.0, segment=1, segments=2))
    html = view.html()
    assert "whole job: ~" in html and "ETA 10.0 s (denoising)" in html
    assert "done" not in html.lower()  # "Done" marks a finished job


def test_fast_settings():
    from video_gen.families import spec_for
    from video_gen.web.firstrun import fast_values

    svd = spec_for("svd")
    assert fast_values("1024x576", 25, svd) == {"resolution": "512x512", "num_inference_steps": 10}
    assert fast_values("256x256", 10, svd) == {}
