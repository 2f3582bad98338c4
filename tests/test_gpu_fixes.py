"""GPU correctness that can be checked on the CPU: how a memory plan is applied to the REAL
diffusers classes (the conftest's tiny random models, loaded from their folders by diffusers), and which
errors count as out of memory."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from video_gen import memory


def loaded(models_dir, name: str):
    """A tiny text-to-video model from its folder, on the CPU in float32, as diffusers loads it."""
    from diffusers import AnimateDiffPipeline, MotionAdapter, TextToVideoSDPipeline

    if name == "tiny-sd15":
        adapter = MotionAdapter.from_pretrained(models_dir / "tiny-adapter")
        return AnimateDiffPipeline.from_pretrained(models_dir / name, motion_adapter=adapter, dtype=torch.float32)
    return TextToVideoSDPipeline.from_pretrained(models_dir / name, dtype=torch.float32)


# ---- defect 1: group offload must reach the VAE that the pipeline calls through encode/decode -------------
def test_group_offload_onloads_the_svd_vae_for_encode_and_for_decode(tiny_model_path):
    from diffusers import StableVideoDiffusionPipeline
    from diffusers.hooks.group_offloading import ModuleGroup

    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_model_path, dtype=torch.float32)
    # On the CPU the onload device is the CPU too: the hooks and groups are the ones a GPU gets (minus the stream).
    memory.apply_plan(pipe, memory.MemoryPlan(device="cpu", dtype="float32", offload="group"))
    onloaded: list[ModuleGroup] = []
    original = ModuleGroup.onload_

    def spy(group):
        onloaded.append(group)
        return original(group)

    vae = pipe.vae
    with mock.patch.object(ModuleGroup, "onload_", spy), torch.no_grad():
        vae.encode(torch.randn(1, 3, 64, 64))
        encode_groups = list(onloaded)
        onloaded.clear()
        vae.decode(torch.randn(2, 4, 8, 8), num_frames=2)
        decode_groups = list(onloaded)

    def params(groups):
        return {id(p) for group in groups for module in group.modules for p in module.parameters()} | {
            id(p) for group in groups for p in group.parameters}

    # Before the fix the VAE's only hook sat on `forward`, which the pipeline never calls: 0 onloads.
    assert encode_groups and decode_groups
    assert {id(p) for p in vae.encoder.parameters()} | {id(p) for p in vae.quant_conv.parameters()} <= params(
        encode_groups)
    assert {id(p) for p in vae.decoder.parameters()} <= params(decode_groups)


def test_group_offload_on_cuda_prefetches_on_a_stream_with_record_stream(tiny_model_path):
    """The kwargs reaching diffusers (no GPU here: the calls are recorded, not run)."""
    from diffusers import ModelMixin, StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_model_path, dtype=torch.float32)
    calls = {}

    def record_model(self, **kwargs):
        calls[type(self).__name__] = kwargs

    def record_module(module, **kwargs):
        calls[type(module).__name__] = kwargs

    with mock.patch.object(ModelMixin, "enable_group_offload", record_model), \
            mock.patch("diffusers.hooks.apply_group_offloading", record_module):
        memory.apply_plan(pipe, memory.MemoryPlan(device="cuda:0", dtype="float16", offload="group"))
    assert set(calls) == {"UNetSpatioTemporalConditionModel", "AutoencoderKLTemporalDecoder",
                          "CLIPVisionModelWithProjection"}
    for name, kwargs in calls.items():
        assert kwargs["onload_device"] == torch.device("cuda:0")
        assert kwargs["offload_type"] == "block_level" and kwargs["num_blocks_per_group"] == 1  # streams need 1
        if name != "AutoencoderKLTemporalDecoder":
            assert kwargs["use_stream"] is True and kwargs["record_stream"] is True  # no host sync per block
    vae = calls["AutoencoderKLTemporalDecoder"]
    assert set(vae["block_modules"]) == {"encoder", "decoder", "quant_conv"}
    # The pipeline casts its VAE to float32 and back (force_upcast): streamed offload would copy float16 back in.
    assert vae["use_stream"] is False and vae["record_stream"] is False


# ---- defect 4: feed-forward chunking of temporal blocks along frames, not batch x height x width --------------
# AnimateDiff's motion modules and ModelScope's temporal attention (diffusers 0.42.1).
TEMPORAL_TRANSFORMERS = {"AnimateDiffTransformer3D", "TransformerTemporalModel"}


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-modelscope"])
def test_temporal_blocks_chunk_their_feed_forward_per_frame(family_models, name):
    from diffusers.models.attention import FeedForward

    pipe = loaded(family_models, name)
    plan = memory.MemoryPlan(device="cpu", dtype="float32", forward_chunking=True)
    memory.set_job_options(pipe, plan)
    unet = pipe.unet
    temporal = {id(module) for parent in unet.modules() if type(parent).__name__ in TEMPORAL_TRANSFORMERS
                for module in parent.modules()}
    assert temporal, "no temporal transformer found: the test would prove nothing"
    calls: dict[int, int] = {}
    hooks = [module.register_forward_pre_hook(lambda module, args: calls.__setitem__(id(module), calls.get(
        id(module), 0) + 1)) for module in unet.modules() if isinstance(module, FeedForward)]
    batch, frames = 2, 4  # classifier-free guidance: the UNet runs on a batch of two
    with torch.no_grad():  # one step, stopping at latents: exactly the UNet calls of a real job
        pipe(prompt="a cat", num_frames=frames, height=64, width=64, num_inference_steps=1, guidance_scale=7.5,
             output_type="latent", generator=torch.manual_seed(0))
    for hook in hooks:
        hook.remove()
    temporal_calls = [count for module_id, count in calls.items() if module_id in temporal]
    spatial_calls = [count for module_id, count in calls.items() if module_id not in temporal]
    # Temporal blocks see (batch x height x width, frames, channels): one feed-forward per frame, not one
    # per pixel (before the fix: batch x height x width = 128 at the top level here, ~50,000 a step at 512²).
    assert temporal_calls and set(temporal_calls) == {frames}
    # Spatial blocks see (batch x frames, pixels, channels): one per image, as before.
    assert set(spatial_calls) <= {batch * frames}
    memory.set_job_options(pipe, memory.MemoryPlan(device="cpu", dtype="float32", forward_chunking=False))
    assert all(getattr(module, "_chunk_size", None) is None for module in unet.modules()
               if hasattr(module, "set_chunk_feed_forward"))


# ---- defect 5: cuBLAS/cuDNN allocation failures are out of memory ------------------------------------------
@pytest.mark.parametrize("message", [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at some other API call",
    "MPS backend out of memory (MPS allocated: 17.00 GB)",
])
def test_library_allocation_failures_count_as_out_of_memory(message):
    assert memory.is_out_of_memory(RuntimeError(message))
    accelerator_error = getattr(torch, "AcceleratorError", None)  # what torch >= 2.8 raises for CUDA errors
    if accelerator_error is not None:
        assert memory.is_out_of_memory(accelerator_error(message))


@pytest.mark.parametrize("error", [
    RuntimeError("CUDA error: device-side assert triggered"),
    RuntimeError("CUDNN_STATUS_NOT_SUPPORTED"),
    ValueError("out of memory"),  # only runtime errors come from the device
])
def test_other_errors_are_not_out_of_memory(error):
    assert not memory.is_out_of_memory(error)


# ---- defect 2 (memory.py's half): resetting peak statistics before CUDA is initialised ----------------------
def test_reset_peak_memory_on_cuda_before_cuda_is_initialised_does_nothing():
    with mock.patch("torch.cuda.is_initialized", return_value=False), \
            mock.patch("torch.cuda.reset_peak_memory_stats", side_effect=RuntimeError("no CUDA GPUs")) as reset:
        memory.reset_peak_memory("cuda:0")
    reset.assert_not_called()
    with mock.patch("torch.cuda.is_initialized", return_value=True), \
            mock.patch("torch.cuda.reset_peak_memory_stats") as reset:
        memory.reset_peak_memory("cuda:0")
    reset.assert_called_once_with("cuda:0")
