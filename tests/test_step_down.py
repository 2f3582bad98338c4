"""The engine's one owner of out-of-memory step-down (`Job.retry_out_of_memory`), and what a failed job frees.

Out of memory is injected where a small GPU runs out (a fault at the network edge of the device, as the
guide allows); the pipelines are the real tiny ones.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

from conftest import FAST
from video_gen import GenerationRequest, Generator, memory
from video_gen.families import svd
from video_gen.video_io import read_video


def test_a_retry_in_segment_k_keeps_the_segments_before_it(models_dir, photo, outputs_dir, monkeypatch):
    """Two segments; the second runs out of memory once: only it is made again, on the cheaper plan."""
    request = GenerationRequest(image=str(photo), seed=31, interpolation=1, output_format="png",
                                **{**FAST, "num_frames": 14})
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    calls: list[int] = []
    real_run = svd.run

    def second_segment_runs_out_once(pipe, segment_request, image, job):
        calls.append(job.segment[0])
        if job.segment[0] == 2 and calls.count(2) == 1:
            job.enter("denoising")
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_run(pipe, segment_request, image, job)

    monkeypatch.setattr(svd, "run", second_segment_runs_out_once)
    result = generator.generate(request)
    assert result.plan.segments == 2 and calls == [1, 2, 2]  # segment 1 is not made again
    assert [(retry["segment"], retry["stage"]) for retry in result.retries] == [(2, "denoising")]
    assert result.memory_plan != generator.memory_ladder(generator.prepare(request))[0]  # the second segment ran on a cheaper plan

    monkeypatch.setattr(svd, "run", real_run)
    uninterrupted = generator.generate(request)
    first_segment = result.plan.segment_frames[0]
    np.testing.assert_array_equal(read_video(result.path)[0][:first_segment],
                                  read_video(uninterrupted.path)[0][:first_segment])


def test_a_retry_drops_the_failed_pipeline_before_the_cheaper_one_loads(models_dir, photo, outputs_dir,
                                                                         monkeypatch):
    """Stepping down to a plan placed another way loads the model again: the failed pipeline (held by the
    traceback's frames until the `except` ends) must be gone by then, or a GPU holds both."""
    monkeypatch.setattr(memory, "offloads_for", lambda device: memory.OFFLOADS)  # as on a GPU
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    request = GenerationRequest(image=str(photo), seed=32, output_format="png", **FAST)
    generator.generate(request.replace(num_inference_steps=1, memory_plan="none"))
    failed = weakref.ref(generator.resident_pipeline)
    alive_at_load: list[bool] = []
    real_load, real_run = svd.load, svd.run

    def load(model, device, dtype):
        gc.collect()
        alive_at_load.append(failed() is not None)
        return real_load(model, device, dtype)

    def runs_out(pipe, segment_request, image, job):
        if job.plan.offload == "none":
            job.enter("denoising")
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(pipe, segment_request, image, job)

    monkeypatch.setattr(svd, "load", load)
    monkeypatch.setattr(svd, "run", runs_out)
    result = generator.generate(request)
    assert result.memory_plan.offload != "none" and generator.loads == 2
    assert alive_at_load == [False]


def test_a_failure_before_the_job_starts_frees_the_generator(generator, photo, monkeypatch):
    """`--device cuda:0` used to fail in `reset_peak_memory` before the job's `try`, leaving the generator
    marked busy for good; now any failure there ends the job and the next one runs."""
    def fails(device):
        raise RuntimeError("CUDA call failed lazily")

    monkeypatch.setattr(memory, "reset_peak_memory", fails)
    with pytest.raises(RuntimeError, match="CUDA call failed"):
        generator.generate(GenerationRequest(image=str(photo), seed=33, **FAST))
    assert not generator.busy
    monkeypatch.undo()
    assert generator.generate(GenerationRequest(image=str(photo), seed=33, **FAST)).path.is_file()
