"""Which device and precision a job runs on (memory policy is in the `memory` package). Nothing runs at import time."""

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


def pick_dtype(device: str, preferred: str = "float16"):
    """The family's preferred precision on CUDA (`FamilySpec.dtype`: fp16 for SVD, bf16 for Wan and LTX), fp16 on
    Apple MPS, fp32 on the CPU (half precision is slow there)."""
    import torch

    return getattr(torch, dtype_name(device, preferred))


def dtype_name(device: str, preferred: str = "float16") -> str:
    """`pick_dtype`'s choice by name ("float16"), as plans and metadata record it; imports no torch."""
    kind = device.split(":")[0]
    return "float32" if kind == "cpu" else preferred if kind == "cuda" else "float16"


def describe(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        total = torch.cuda.get_device_properties(index).total_memory / 2**30
        return f"{torch.cuda.get_device_name(index)} ({total:.0f} GB)"
    return device
