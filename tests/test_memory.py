"""The memory planner, out-of-memory recovery, and jobs leaving nothing behind.

Out-of-memory is injected by wrapping a REAL model's forward (the tiny SVD's UNet or VAE decoder) so
that it raises `torch.cuda.OutOfMemoryError` once, exactly what PyTorch raises on a full GPU.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, video_files
from video_gen import GenerationRequest, Generator, memory
from video_gen.errors import GenerationFailed, InvalidRequest
from video_gen.video_io import read_video

BUDGETS_GB = (4, 8, 12, 24, 80)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def svd_xt_weights() -> memory.ModelWeights:
    """The full-size SVD-XT architecture's parameter counts, from modules built on the meta device (no memory)."""
    sys.path.insert(0, str(REPO / "bench"))
    from gpu_svd import svd_xt_image_encoder, svd_xt_unet, svd_xt_vae

    with torch.device("meta"):
        modules = {"unet": svd_xt_unet(), "vae": svd_xt_vae(), "image_encoder": svd_xt_image_encoder()}
    return memory.ModelWeights.from_modules(modules)


def svd_xt_plan(weights, budget_gb: float, frames: int = 25, width: int = 1024, height: int = 576):
    shape = memory.JobShape("svd", frames, width, height, decode_chunk_size=8)
    plans = memory.ladder("cuda:0", "float16", weights, shape, total_bytes=int(budget_gb * memory.GiB))
    return plans, memory.choose(plans, int(budget_gb * memory.GiB * (1 - memory.HEADROOM)))


def test_svd_xt_weights_match_the_published_sizes(svd_xt_weights):
    # stabilityai/stable-video-diffusion-img2vid-xt: UNet 1.52 B parameters (3.05 GB in fp16), the
    # temporal VAE 97.7 M, the CLIP ViT-H image encoder 632 M.
    assert svd_xt_weights.numel["unet"] == pytest.approx(1.5246e9, rel=0.01)
    assert svd_xt_weights.numel["vae"] == pytest.approx(97.7e6, rel=0.01)
    assert svd_xt_weights.numel["image_encoder"] == pytest.approx(632e6, rel=0.01)
    # ... and the SVD family's reference model (the table before any download) carries exactly these counts
    from video_gen.families import spec_for

    reference = spec_for("svd").reference_model
    assert (reference.numel, reference.largest_block, reference.largest_tensor) == (
        svd_xt_weights.numel, svd_xt_weights.largest_block, svd_xt_weights.largest_tensor)


def test_more_memory_never_picks_a_slower_plan(svd_xt_weights):
    positions, labels = [], []
    for budget in BUDGETS_GB:
        plans, chosen = svd_xt_plan(svd_xt_weights, budget)
        positions.append(next(i for i, plan in enumerate(plans) if memory._same(plan, chosen)))
        labels.append(chosen.label())
    assert positions == sorted(positions, reverse=True), labels
    assert positions[-1] == 0  # 80 GB: the fastest plan
    assert positions[0] > positions[2] > 0, labels  # 4 GB needs more saving than 12 GB, which needs some


def test_the_chosen_plan_fits_and_the_ladder_gets_cheaper_at_every_stage(svd_xt_weights):
    for budget in BUDGETS_GB[1:]:  # at 4 GB even the cheapest plan is estimated over budget
        plans, chosen = svd_xt_plan(svd_xt_weights, budget)
        assert chosen.estimate_bytes <= budget * memory.GiB * (1 - memory.HEADROOM)
        assert chosen.label().startswith(f"{budget} GB GPU: ")
    plans, _ = svd_xt_plan(svd_xt_weights, 80)
    for stage in memory.STAGES:
        assert min(plan.stage_bytes[stage] for plan in plans) <= plans[0].stage_bytes[stage]
    # every plan but the first saves memory somewhere compared with each faster one
    for index, plan in enumerate(plans):
        for faster in plans[:index]:
            assert any(plan.stage_bytes[s] < faster.stage_bytes[s] for s in memory.STAGES)


def test_a_12_gb_card_decodes_in_smaller_chunks(svd_xt_weights):
    # Decoding 8 frames of 1024x576 at once needs ~9.7 GB of activations: 12 GB cards run out there.
    _, chosen = svd_xt_plan(svd_xt_weights, 12)
    assert chosen.decode_chunk_size < 8
    _, roomy = svd_xt_plan(svd_xt_weights, 80)
    assert (roomy.offload, roomy.decode_chunk_size, roomy.forward_chunking) == ("none", 8, False)


def test_max_frames_grows_with_memory_and_with_cheaper_plans(svd_xt_weights):
    counts = []
    for budget in BUDGETS_GB:
        plans, _ = svd_xt_plan(svd_xt_weights, budget)
        fastest, cheapest = plans[0], min(plans, key=lambda plan: plan.estimate_bytes)
        fast = memory.max_frames(svd_xt_weights, "svd", 1024, 576, int(budget * memory.GiB * 0.9), fastest)
        cheap = memory.max_frames(svd_xt_weights, "svd", 1024, 576, int(budget * memory.GiB * 0.9), cheapest)
        assert cheap >= fast
        counts.append(cheap)
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_forcing_a_plan(models_dir, photo, outputs_dir):
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    with pytest.raises(InvalidRequest, match="memory_plan.*needs a GPU"):
        generator.generate(GenerationRequest(image=str(photo), memory_plan="model", **FAST))
    with pytest.raises(InvalidRequest, match="memory_plan: must be one of auto, none, model"):
        GenerationRequest(image=str(photo), memory_plan="fast").validate()
    result = generator.generate(GenerationRequest(image=str(photo), memory_plan="none", seed=3, **FAST))
    assert result.memory_plan.offload == "none" and result.retries == []
    assert result.metadata["memory"]["plan"]["label"] == result.memory_plan.label()
    assert " GB RAM: on the CPU, decode 8 frames at a time, ~" in result.memory_plan.label()


# ---- out-of-memory recovery -----------------------------------------------------------------------
def fail_once(module, method: str, *, on_call: int, calls: list):
    """Make `module.method` raise torch.cuda.OutOfMemoryError on its `on_call`-th call, once."""
    original = getattr(module, method)

    def wrapped(*args, **kwargs):
        calls.append(method)
        if len(calls) == on_call:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return original(*args, **kwargs)

    setattr(module, method, wrapped)
    return lambda: delattr(module, method)


def frames_of(result) -> np.ndarray:
    return read_video(result.path)[0]


def test_out_of_memory_at_a_unet_step_retries_on_a_cheaper_plan(models_dir, photo, outputs_dir):
    request = GenerationRequest(image=str(photo), seed=11, output_format="png", **FAST)
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    plain = generator.generate(request)
    calls: list = []
    restore = fail_once(generator.resident_pipeline.unet, "forward", on_call=2, calls=calls)  # the second step
    events = []
    try:
        retried = generator.generate(request, on_event=events.append)
    finally:
        restore()
    assert [retry["stage"] for retry in retried.retries] == ["denoising"]
    assert retried.memory_plan.stage_bytes["denoising"] < plain.memory_plan.stage_bytes["denoising"]
    assert retried.memory_plan.forward_chunking and not plain.memory_plan.forward_chunking
    assert any("out of memory; retrying with" in getattr(event, "message", "") for event in events)
    assert retried.metadata["memory"]["retries"][0]["to"] == retried.memory_plan.label()
    assert generator.loads == 1  # same placement on the CPU: no reload
    # the same frames as an uninterrupted run of that plan (feed-forward chunking is the same arithmetic)
    uninterrupted = generator.generate(request)
    assert uninterrupted.memory_plan.forward_chunking is False
    np.testing.assert_array_equal(frames_of(retried), frames_of(uninterrupted))
    assert len(calls) == 2 + request.num_inference_steps  # step 1, the failed step 2, then a whole run


def test_out_of_memory_at_decode_keeps_the_latents(models_dir, photo, outputs_dir):
    request = GenerationRequest(image=str(photo), seed=12, output_format="png", decode_chunk_size=8, **FAST)
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    generator.generate(request.replace(num_inference_steps=1))  # load
    unet_calls: list = []
    decode_calls: list = []
    restore_unet = fail_once(generator.resident_pipeline.unet, "forward", on_call=0, calls=unet_calls)  # counts only
    restore_vae = fail_once(generator.resident_pipeline.vae, "decode", on_call=1, calls=decode_calls)
    try:
        retried = generator.generate(request)
    finally:
        restore_unet()
        restore_vae()
    assert len(unet_calls) == request.num_inference_steps  # denoising ran once: the latents were kept
    assert [retry["stage"] for retry in retried.retries] == ["decoding"]
    assert retried.memory_plan.decode_chunk_size == 4
    assert retried.request.decode_chunk_size == 4  # what made these frames, stored for a re-run
    assert retried.metadata["request"]["decode_chunk_size"] == 4
    uninterrupted = generator.generate(request.replace(decode_chunk_size=4))
    assert uninterrupted.retries == []
    np.testing.assert_array_equal(frames_of(retried), frames_of(uninterrupted))


def test_out_of_memory_on_every_plan_fails_clearly_and_the_generator_survives(models_dir, photo, outputs_dir):
    request = GenerationRequest(image=str(photo), seed=13, **FAST)
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    generator.generate(request.replace(num_inference_steps=1))
    unet = generator.resident_pipeline.unet
    original = unet.forward

    def always(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    unet.forward = always
    before = video_files(outputs_dir)
    try:
        with pytest.raises(GenerationFailed, match=r"out of cpu memory while denoising.*lower the resolution"):
            generator.generate(request)
    finally:
        unet.forward = original
    assert video_files(outputs_dir) == before  # nothing written
    assert generator.generate(request).frames_written == FAST["num_frames"]


def test_an_unrelated_runtime_error_is_not_retried(models_dir, photo, outputs_dir):
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    request = GenerationRequest(image=str(photo), seed=14, **FAST)
    generator.generate(request.replace(num_inference_steps=1))
    unet = generator.resident_pipeline.unet

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch (injected)")

    unet.forward = broken
    try:
        with pytest.raises(RuntimeError, match="shape mismatch"):
            generator.generate(request)
    finally:
        del unet.forward


# ---- nothing left behind ----------------------------------------------------------------------------
def live_tensors() -> int:
    gc.collect()
    count = 0
    for thing in gc.get_objects():
        try:
            if isinstance(thing, torch.Tensor):
                count += 1
        except ReferenceError:
            pass
    return count


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_ten_jobs_leave_nothing_behind(models_dir, photo, outputs_dir):
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    request = GenerationRequest(image=str(photo), **FAST)
    generator.generate(request)  # the model is now resident: that memory is meant to stay
    generator.generate(request)
    tensors, rss = live_tensors(), rss_bytes()
    allocated = memory.allocated_bytes(generator.device)
    for seed in range(10):
        generator.generate(request.replace(seed=seed + 1))
    assert live_tensors() == tensors  # no tensor of any job survives it
    if allocated is not None:
        assert memory.allocated_bytes(generator.device) == allocated
    grown = rss_bytes() - rss
    assert grown < max(0.05 * rss, 64 * 2**20), f"RSS grew {grown / 2**20:.0f} MB over 10 jobs"


# ---- info, selftest, the benchmark (all run in CI on the CPU) ------------------------------------------
def run_cli(*args, env=None):
    import os
    import subprocess

    return subprocess.run([sys.executable, "-m", "video_gen", *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env={**os.environ, **(env or {})})


def test_info_prints_the_device_and_a_max_length_table(models_dir):
    done = run_cli("info", "--models-dir", str(models_dir))
    assert done.returncode == 0, done.stderr
    assert "device: cpu" in done.stdout and "attention: sdpa" in done.stdout
    assert "longest video of one pass" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.strip().startswith("tiny-svd")]
    assert len(rows) == len(memory.PRESET_RESOLUTIONS)
    for row, (width, height) in zip(rows, memory.PRESET_RESOLUTIONS):
        assert f"{width}x{height}" in row and "frames (" in row


def test_info_for_a_12_gb_gpu_lists_svd_xt_before_any_download(tmp_path):
    import json

    done = run_cli("info", "--vram", "12", "--json", "--models-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {(row["width"], row["height"]): row for row in report["max_length"]}
    row = rows[(1024, 576)]
    assert row["model"] == "svd-xt (not installed)"
    assert row["fastest_plan"].startswith("12 GB GPU: everything on the GPU, decode 8 frames")
    assert row["cheapest_plan"].startswith("12 GB GPU: sequential offload")
    assert 0 < row["fastest_frames"] < 25 <= row["cheapest_frames"]  # 25 frames need a cheaper plan than the fastest
    assert rows[(512, 512)]["cheapest_frames"] > row["cheapest_frames"]
    bad = run_cli("info", "--vram", "0")
    assert bad.returncode == 1 and "vram: must be between" in bad.stderr


def test_selftest_passes_and_reports_each_stage():
    done = run_cli("selftest")
    assert done.returncode == 0, done.stderr
    for stage in ("probe device", "build tiny model", "generate and encode", "denoising", "decoding", "read back"):
        assert f"selftest: {stage}" in done.stdout or f"selftest:   {stage}" in done.stdout
    assert "selftest OK on cpu" in done.stdout


def test_selftest_fails_with_exit_2_when_ffmpeg_is_broken(tmp_path):
    broken = tmp_path / "ffmpeg"
    broken.write_text("#!/bin/sh\necho 'ffmpeg: broken on purpose' >&2\nexit 1\n")
    broken.chmod(0o755)
    done = run_cli("selftest", env={"IMAGEIO_FFMPEG_EXE": str(broken)})
    assert done.returncode == 2
    assert "selftest FAILED while generate and encode" in done.stderr


def test_gpu_benchmark_runs_small_on_the_cpu(tmp_path):
    import json
    import subprocess

    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_svd.py"), "--tiny", "--device", "cpu",
                           "--cases", "seed,plans,default", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    cases = [row["case"] for row in result["rows"]]
    assert cases == ["seed", "plan:none", "default"]
    assert all(row["seconds"] > 0 and row["seconds_per_step"] > 0 for row in result["rows"])
    assert result["flops"]["unet_flops"] > 0 and result["flops"]["decode_flops"] > 0
    assert result["summary"]["speedup_default_vs_seed"] > 0


def test_the_page_about_tab_shows_the_device_the_plan_and_the_table(models_dir, tmp_path):
    from video_gen.web.app import WebApp

    page = WebApp(Generator(models_dir=models_dir, outputs_dir=tmp_path / "outputs"), tmp_path / "work")
    text = page.about("tiny-svd", "512x512", 2, 8, 4)
    assert "device: cpu" in text
    assert "**Memory plan for the Generate tab's settings:** " in text and "decode 4 frames at a time, ~" in text
    assert "| tiny-svd | 1024×576 |" in text and "| tiny-svd | 512×512 |" in text
    missing = page.about("no-such-model", "512x512", 2, 8, 4)
    assert "Memory plan for the Generate tab's settings: not available (model: 'no-such-model'" in missing


def test_the_activation_tracker_behind_the_constants_counts_live_tensors():
    """bench/memory_constants.py measures the estimator's constants with this tracker: check it on known sizes."""
    sys.path.insert(0, str(REPO / "bench"))
    from memory_constants import PeakTracker

    conv = torch.nn.Conv2d(16, 16, 3, padding=1)
    x = torch.randn(2, 16, 32, 32)
    one = 2 * 16 * 32 * 32 * 4
    with torch.no_grad(), PeakTracker() as tracker:
        y = conv(x)
        del y  # freed: the next output reuses the budget
        z = conv(x)
        w = conv(z)  # z and w alive together
    assert tracker.peak == 2 * one
    assert tracker.live == 2 * one  # z, w
    del z, w
    assert tracker.live == 0


@pytest.mark.parametrize("offload", ["model", "group"])
def test_offload_plans_place_the_real_pipeline_and_make_the_same_frames(offload, models_dir, photo, outputs_dir,
                                                                        monkeypatch):
    """The CPU has nothing to offload to, so the planner never offers these there; placing the pipeline with
    diffusers' offload hooks on the CPU still runs every hook, which is what this checks."""
    request = GenerationRequest(image=str(photo), seed=21, output_format="png", **FAST)
    resident = Generator(models_dir=models_dir, outputs_dir=outputs_dir).generate(request.replace(memory_plan="none"))
    monkeypatch.setattr(memory, "offloads_for", lambda device: memory.OFFLOADS)
    offloaded = Generator(models_dir=models_dir, outputs_dir=outputs_dir).generate(request.replace(memory_plan=offload))
    assert offloaded.memory_plan.offload == offload
    difference = np.abs(frames_of(offloaded).astype(int) - frames_of(resident).astype(int))
    assert difference.max() <= 1  # the same arithmetic; at most a rounding step apart


def test_out_of_memory_can_step_down_to_an_offload_plan_and_places_the_pipeline_again(models_dir, photo, outputs_dir,
                                                                                       monkeypatch):
    monkeypatch.setattr(memory, "offloads_for", lambda device: memory.OFFLOADS)  # as on a GPU
    request = GenerationRequest(image=str(photo), seed=22, output_format="png", **FAST)
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    generator.generate(request.replace(num_inference_steps=1))
    assert generator.runner.resident.placement[2] == "none"
    calls: list = []
    restore = fail_once(generator.resident_pipeline.unet, "forward", on_call=1, calls=calls)
    try:
        retried = generator.generate(request)
    finally:
        restore()
    assert retried.memory_plan.offload == "model" and generator.loads == 2  # placed again, the cheaper way
    assert retried.retries[0]["from"].split(": ", 1)[1].startswith("on the CPU, decode 8")
    assert retried.retries[0]["to"].split(": ", 1)[1].startswith("model offload, decode 8")
    uninterrupted = generator.generate(request.replace(memory_plan="model"))
    assert generator.loads == 2  # the same placement: resident
    np.testing.assert_array_equal(frames_of(retried), frames_of(uninterrupted))


def test_fp8_weight_storage_is_opt_in_and_recorded(models_dir, photo, outputs_dir):
    request = GenerationRequest(image=str(photo), seed=23, output_format="png", **FAST)
    generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir)
    plain = generator.generate(request)
    assert not plain.memory_plan.fp8_weights
    stored = generator.generate(request.replace(memory_plan="none+fp8"))
    assert stored.memory_plan.fp8_weights and "fp8 weights" in stored.memory_plan.label()
    assert generator.resident_pipeline.unet.conv_in.weight.dtype == torch.float8_e4m3fn
    assert stored.memory_plan.stage_bytes["denoising"] < plain.memory_plan.stage_bytes["denoising"]
    assert stored.metadata["request"]["memory_plan"] == "none+fp8"  # a re-run asks for the same weights
    assert frames_of(stored).shape == frames_of(plain).shape
