"""The engine on a tiny REAL SVD model: faithful to the pipeline, resident, ordered, cancellable."""

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FAST, TINY_MODEL, video_files
from video_gen import Cancelled, GenerationFailed, GenerationRequest, Generator, InvalidRequest, ModelNotFound
from video_gen import video_io
from video_gen.events import PreviewEvent, StageEvent, StepEvent
from video_gen.images import fit_to_size, open_image


def test_frames_equal_the_pipeline_called_directly(generator, tiny_model_path, photo, tmp_path):
    from diffusers import StableVideoDiffusionPipeline

    params = dict(width=96, height=64, num_frames=6, num_inference_steps=3, fps=12, motion_bucket_id=40,
                  noise_aug_strength=0.1, min_guidance_scale=1.5, max_guidance_scale=2.5, decode_chunk_size=4)
    # interpolation=1: the model itself makes every frame at 12 fps (no planner rate change)
    result = generator.generate(GenerationRequest(image=str(photo), seed=1234, output_format="png", interpolation=1,
                                                  output_path=str(tmp_path / "frames"), **params))
    ours = video_io.read_video(result.path)[0]

    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_model_path, local_files_only=True, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    image = fit_to_size(open_image(photo), 96, 64)
    reference = pipe(image, generator=torch.Generator().manual_seed(1234), **params).frames[0]
    reference = np.stack([np.asarray(frame) for frame in reference])

    assert ours.shape == reference.shape == (6, 64, 96, 3)
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1
    # and the parameters matter: another motion bucket gives other frames
    other = pipe(image, generator=torch.Generator().manual_seed(1234), **{**params, "motion_bucket_id": 200})
    assert np.abs(np.stack([np.asarray(f) for f in other.frames[0]]).astype(int) - reference).max() > 1


def test_mp4_has_requested_frames_fps_size_and_codec(generator, photo):
    result = generator.generate(GenerationRequest(image=str(photo), seed=3, fps=12, **{**FAST, "width": 96}))
    info = video_io.probe_video(result.path)
    assert (info.frames, info.width, info.height) == (8, 96, 64)
    assert info.fps == pytest.approx(12)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert result.path.parent == generator.outputs_dir
    assert result.path.name.endswith(f"_{TINY_MODEL}_3.mp4")
    assert video_io.read_metadata(result.path)["request"]["seed"] == 3


def test_random_seed_is_reported_and_reproduces(generator, photo, tmp_path):
    first = generator.generate(GenerationRequest(image=str(photo), seed=-1, output_format="png",
                                                 output_path=str(tmp_path / "a"), **FAST))
    assert first.seed > 0 and first.request.seed == first.seed
    again = generator.generate(first.request.replace(output_path=str(tmp_path / "b")))
    assert np.array_equal(video_io.read_video(first.path)[0], video_io.read_video(again.path)[0])


def test_second_job_does_not_reload_and_default_names_never_overwrite(models_dir, outputs_dir, photo):
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    request = GenerationRequest(image=str(photo), seed=11, **FAST)
    stages = []
    paths = [generator.generate(request, on_event=lambda e: stages.append(e)).path for _ in range(2)]
    assert generator.loads == 1
    assert [e.stage for e in stages if isinstance(e, StageEvent)].count("loading_model") == 1
    assert paths[0] != paths[1] and all(p.exists() for p in paths)  # same second, same seed: a new name


def test_two_threads_both_finish_one_at_a_time(generator, photo):
    spans, errors = {}, []

    def job(name):
        def on_event(event):
            spans.setdefault(name, [time.perf_counter(), None])[1] = time.perf_counter()
        try:
            generator.generate(GenerationRequest(image=str(photo), seed=5, **FAST), on_event=on_event)
        except Exception as error:  # collected and reported below
            errors.append(error)

    threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and set(spans) == {"a", "b"}
    (a_start, a_end), (b_start, b_end) = spans["a"], spans["b"]
    assert a_end <= b_start or b_end <= a_start  # never overlapping


def test_waiters_are_served_in_arrival_order(generator, photo):
    order, started = [], threading.Event()
    holder = threading.Thread(target=lambda: generator.generate(
        GenerationRequest(image=str(photo), seed=1, **{**FAST, "num_inference_steps": 8}),
        on_event=lambda e: started.set()))
    holder.start()
    started.wait(60)
    threads = []
    for name in "abcd":
        thread = threading.Thread(target=lambda n=name: (generator.generate(
            GenerationRequest(image=str(photo), seed=2, **FAST)), order.append(n)))
        thread.start()
        threads.append(thread)
        while generator.waiting < len(threads):  # make arrival order certain
            time.sleep(0.005)
    for thread in [holder, *threads]:
        thread.join(timeout=120)
    assert order == list("abcd")


def test_cancel_ends_within_one_step_and_next_job_succeeds(models_dir, outputs_dir, photo):
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    steps, outcome = [], {}
    first_step = threading.Event()

    def on_event(event):
        if isinstance(event, StepEvent) and event.stage == "denoising":
            steps.append(event.index)
            first_step.set()
            time.sleep(0.05)  # give the cancelling thread time to act within this step

    def run():
        try:
            generator.generate(GenerationRequest(image=str(photo), seed=9, **{**FAST, "num_inference_steps": 30}),
                               on_event=on_event)
        except Cancelled as error:
            outcome["cancelled"] = error

    worker = threading.Thread(target=run)
    worker.start()
    assert first_step.wait(60)
    cancelled_at = len(steps)
    assert generator.cancel() is True
    worker.join(timeout=60)
    assert "cancelled" in outcome
    assert len(steps) <= cancelled_at + 1 < 30
    assert video_files(outputs_dir) == []  # no output, no temporary left behind
    assert generator.cancel() is False  # nothing running now
    result = generator.generate(GenerationRequest(image=str(photo), seed=9, **FAST))
    assert result.path.exists() and generator.loads == 1


def test_events_are_typed_ordered_and_carry_eta_and_previews(generator, photo):
    events = []
    generator.generate(GenerationRequest(image=str(photo), seed=2, **{**FAST, "decode_chunk_size": 3}),
                       on_event=events.append, preview_every=1)
    steps = [e for e in events if isinstance(e, StepEvent) and e.stage == "denoising"]
    assert [s.index for s in steps] == [1, 2, 3] and all(s.total == 3 and s.eta_s >= 0 for s in steps)
    decoding = [e for e in events if isinstance(e, StepEvent) and e.stage == "decoding"]
    assert [d.index for d in decoding] == [1, 2, 3]  # 8 frames, 3 at a time
    previews = [e for e in events if isinstance(e, PreviewEvent)]
    assert len(previews) == 3 and isinstance(previews[0].image, Image.Image)
    assert events[-1].kind == "done" and events[-1].result.frames_written == 8
    stages = [e.stage for e in events if isinstance(e, StageEvent)]
    assert stages[-3:] == ["encoding_image", "decoding", "writing"]


def test_fp16_only_folder_loads_in_fp32_on_cpu(copy_model, photo, outputs_dir):
    folder = copy_model("half")
    for plain in folder.glob("*/*.safetensors"):
        if ".fp16." not in plain.name:
            plain.unlink()
    generator = Generator(models_dir=folder.parent, outputs_dir=outputs_dir)
    result = generator.generate(GenerationRequest(image=str(photo), seed=4, **FAST))
    assert result.dtype == "float32" and result.frames_written == 8
    assert next(generator.resident_pipeline.unet.parameters()).dtype == torch.float32


def test_validation_happens_before_loading(models_dir, outputs_dir, photo, tmp_path):
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    for request in (GenerationRequest(image=str(photo), motion_bucket_id=300),
                    GenerationRequest(image=str(bad)),
                    GenerationRequest(image=str(tmp_path / "missing.png")),
                    GenerationRequest(image=None)):
        with pytest.raises(InvalidRequest):
            generator.generate(request)
    with pytest.raises(ModelNotFound):
        generator.generate(GenerationRequest(image=str(photo), model="svd-xt"))
    assert generator.loads == 0 and generator._device is None  # nothing loaded, no device probed


def test_out_of_memory_is_a_clear_failure_and_the_generator_survives(models_dir, outputs_dir, photo, monkeypatch):
    from video_gen.families import svd

    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    real_run = svd.run

    def out_of_memory(pipe, request, image, job):  # fault injection: what a small GPU does at decode
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(svd, "run", out_of_memory)
    with pytest.raises(GenerationFailed, match="decode_chunk_size"):
        generator.generate(GenerationRequest(image=str(photo), seed=1, **FAST))
    assert video_files(outputs_dir) == []
    monkeypatch.setattr(svd, "run", real_run)
    assert generator.generate(GenerationRequest(image=str(photo), seed=1, **FAST)).path.exists()


def test_output_path_is_overwritten_only_when_named(generator, photo, tmp_path):
    target = tmp_path / "mine.mp4"
    target.write_bytes(b"old")
    result = generator.generate(GenerationRequest(image=str(photo), seed=8, output_path=str(target), **FAST))
    assert result.path == target and video_io.probe_video(target).frames == 8


def test_fp16_files_are_chosen_for_half_precision_and_fp32_for_the_cpu(copy_model, models_dir):
    from video_gen.families.common import fp16_variant
    from video_gen.catalog import resolve_model

    model = resolve_model(TINY_MODEL, models_dir)
    assert fp16_variant(model.path / "unet", torch.float16) == "fp16"  # what a GPU loads: half the bytes to read
    assert fp16_variant(model.path / "unet", torch.float32) is None
    plain_only = copy_model("plain")
    for half in plain_only.glob("*/*.fp16.safetensors"):
        half.unlink()
    assert fp16_variant(resolve_model(str(plain_only), models_dir).path / "unet", torch.float16) is None
