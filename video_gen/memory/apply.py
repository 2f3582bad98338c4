"""Applying a `MemoryPlan` to a loaded pipeline with diffusers' own mechanisms (offload hooks, decode chunk,
feed-forward chunking, attention backend, fp8 weight storage). Imports no torch until a function runs."""

from __future__ import annotations

from .estimate import MemoryPlan

# ---- applying a plan ----------------------------------------------------------------------------
def apply_plan(pipe, plan: MemoryPlan, apart: tuple[str, ...] = ()):
    """Place a freshly loaded (CPU) pipeline on the device the way `plan` says, with diffusers' mechanisms.
    `apart` (the family's `MemoryConstants.apart`): components that stay on the CPU when everything else is placed
    on the device; the family moves one in only while it runs, with the denoiser out
    (`families.common.encode_apart`)."""
    import torch

    device = torch.device(plan.device)
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if plan.fp8_weights and denoiser is not None:
        # Wan 2.2 A14B's low-noise expert (`transformer_2`) is stored the same way as the first.
        for model in (denoiser, getattr(pipe, "transformer_2", None)):
            if model is not None and not getattr(model, "is_quantized", False):  # GGUF weights are already small
                model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
                                               compute_dtype=getattr(torch, plan.dtype))
                model._video_gen_compute_dtype = getattr(torch, plan.dtype)  # for adapters loaded later
    if plan.offload == "none" and apart:
        for name, component in pipe.components.items():
            if isinstance(component, torch.nn.Module) and name not in apart:
                component.to(device)
    elif plan.offload == "none":
        pipe.to(device)
    elif plan.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif plan.offload == "group":
        enable_group_offload(pipe, device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    if plan.attention == "xformers":
        pipe.enable_xformers_memory_efficient_attention()
    set_job_options(pipe, plan)
    return pipe


def adapters_in_compute_dtype(pipe) -> None:
    """LoRA adapters loaded into a denoiser whose weights are stored in fp8 (`enable_layerwise_casting`) kept in
    its compute dtype: PEFT creates them in the base layer's storage dtype and casts their inputs to it, which no
    fp8 kernel takes ('"mul_cpu_reduced_float" not implemented for Float8_e4m3fn', found by the GPU runner's CPU
    dry run of Wan with a distill LoRA and fp8 storage). They are small beside the weights they adapt."""
    for name in ("unet", "transformer", "transformer_2"):
        model = getattr(pipe, name, None)
        dtype = getattr(model, "_video_gen_compute_dtype", None)
        if dtype is None:
            continue
        for parameter_name, parameter in model.named_parameters():
            if ".lora_" in parameter_name and parameter.dtype != dtype:
                parameter.data = parameter.data.to(dtype)


def group_offload_options(device, *, streamed: bool = True) -> dict:
    """diffusers' group-offload arguments for `device`: block by block, the next block prefetched on a CUDA
    stream. `record_stream` lets a block's weights be freed without the host waiting for the compute
    stream (with `record_stream=False` diffusers synchronises the host once per block); diffusers 0.42.1
    allows it only with `use_stream`, streams only on an accelerator, and streams only with one block a group."""
    import torch

    streamed = streamed and device.type == "cuda"
    return dict(onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
                num_blocks_per_group=1, use_stream=streamed, record_stream=streamed)


def enable_group_offload(pipe, device) -> None:
    """`pipe.enable_group_offload`, except for models the pipeline calls through `encode`/`decode`
    (autoencoders), which get:
    - every child as a block: diffusers hooks a model's `forward` unless its class names its blocks
      (`_group_offload_block_modules`); SVD's `AutoencoderKLTemporalDecoder` names none (diffusers 0.42.1),
      so its weights never reached the GPU;
    - no stream: SVD's pipeline casts its VAE to float32 to encode and back (`force_upcast`), and streamed
      offload copies the pinned float16 weights it made at setup back in, under float32 inputs. The VAE
      runs a few times a job, on big tensors: a stream would hide nothing worth hiding."""
    import torch
    from diffusers.hooks import apply_group_offloading

    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        if hasattr(component, "decode"):  # an autoencoder (every diffusers one supports group offload)
            options = group_offload_options(device, streamed=False)
            component.enable_group_offload(**options, block_modules=_group_offload_blocks(component))
        elif hasattr(component, "enable_group_offload"):  # the denoiser: called through forward
            component.enable_group_offload(**group_offload_options(device))
        else:  # an image or text encoder from transformers: the pipeline calls its forward
            apply_group_offloading(module=component, **group_offload_options(device))


def _group_offload_blocks(model) -> list[str] | None:
    """The blocks of a model entered through `encode`/`decode`; None leaves diffusers' own choice."""
    if getattr(model, "_group_offload_block_modules", None):
        return None
    return [name for name, child in model.named_children() if next(child.parameters(), None) is not None]


# Temporal transformers see (batch x height x width, frames, channels): AnimateDiff's motion modules and
# ModelScope's temporal attention (diffusers 0.42.1). SVD's `TemporalBasicTransformerBlock` chunks along
# frames by itself, whatever it is told.
TEMPORAL_TRANSFORMERS = frozenset({"AnimateDiffTransformer3D", "TransformerTemporalModel"})


def set_job_options(pipe, plan: MemoryPlan) -> None:
    """What may change between jobs without placing the pipeline again: the UNet's feed-forward chunking."""
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if denoiser is None:
        return
    chunk = 1 if plan.forward_chunking else None
    temporal = {id(block) for parent in denoiser.modules() if type(parent).__name__ in TEMPORAL_TRANSFORMERS
                for block in parent.modules()}
    for module in denoiser.modules():
        if hasattr(module, "set_chunk_feed_forward"):
            # Spatial blocks see (batch x frames, pixels, channels): one feed-forward per image (dim 0).
            # Temporal blocks chunked on dim 0 ran one per latent pixel, ~50,000 tiny feed-forwards a step
            # at 512x512: chunk them per frame (dim 1), as diffusers does for SVD's.
            module.set_chunk_feed_forward(chunk_size=chunk, dim=1 if id(module) in temporal else 0)
