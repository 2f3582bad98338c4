"""Which device and precision a job runs on. Imported lazily: nothing here runs at import time."""

from __future__ import annotations

import os

DEVICES = ("cuda", "mps", "cpu")


def pick_device(preferred: str | None = None) -> str:
    """`preferred` (or $VIDEO_GEN_DEVICE) if given, else CUDA, then Apple MPS, then the CPU."""
    import torch

    from .errors import InvalidRequest

    choice = preferred or os.environ.get("VIDEO_GEN_DEVICE") or None
    if choice is not None:
        name = choice.split(":")[0]
        if name not in DEVICES:
            raise InvalidRequest("device", f"must be one of {', '.join(DEVICES)}, got {choice!r}")
        if name == "cuda" and not torch.cuda.is_available():
            raise InvalidRequest("device", "CUDA was asked for but this PyTorch sees no CUDA GPU (see README: GPU setup)")
        if name == "mps" and not torch.backends.mps.is_available():
            raise InvalidRequest("device", "MPS was asked for but is not available on this machine")
        return choice
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str):
    """Half precision on GPUs (the models are trained and shipped in fp16), fp32 on the CPU (fp16 is slow there)."""
    import torch

    return torch.float32 if device == "cpu" else torch.float16


def describe(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        total = torch.cuda.get_device_properties(index).total_memory / 2**30
        return f"{torch.cuda.get_device_name(index)} ({total:.0f} GB)"
    return device


def free_memory(device: str) -> None:
    """Return cached blocks to the driver after a job, so the next one (or another program) can use them."""
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device == "mps":
        torch.mps.empty_cache()


def peak_memory_bytes(device: str) -> int | None:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    return None


def reset_peak_memory(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


# Below this much GPU memory, SVD-XT at 1024x576 does not fit resident in fp16 (UNet 3 GB + VAE + CLIP
# + activations peak near 13 GB in diffusers' own measurements), so components take turns on the GPU
# with `enable_model_cpu_offload`. The memory planner (issue 5) replaces this single threshold.
RESIDENT_MIN_GPU_BYTES = 16 * 2**30


def place_pipeline(pipe, device: str):
    """Put a loaded pipeline on `device`, offloading idle components on small GPUs; xformers when installed."""
    import importlib.util

    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        if torch.cuda.get_device_properties(index).total_memory < RESIDENT_MIN_GPU_BYTES:
            pipe.enable_model_cpu_offload(gpu_id=index)
        else:
            pipe.to(device)
        if importlib.util.find_spec("xformers") is not None:
            pipe.enable_xformers_memory_efficient_attention()
    else:
        pipe.to(device)
    return pipe
