"""Memory for the finishing stages (finishing.py): whether the prompt enhancer fits beside the resident video
model, and how many bytes an upscaler's run may use (its tile size follows from that, `upscale.plan_tile`).

The enhancer is always unloaded when it has written its prompt, before the video model loads (a 4B enhancer
holds ~9 GB in bf16: on a 12 GB card the video model's memory plan needs that memory back). Whether the video
model that stayed resident from the last job must go first depends on the card: `room_for` says whether
`need` bytes fit in what is free now. Imports no torch until a function runs.
"""

from __future__ import annotations

from .device import HEADROOM, _ram

__all__ = ["available_bytes", "room_for", "enhancer_bytes", "upscale_budget", "ENHANCER_WORKING_BYTES"]

# Beyond its weights, what an enhancer's one rewrite holds: the picture's patches through the vision tower (at
# most enhance.MAX_IMAGE_TOKENS merged tokens), a prompt of ~1,000 tokens and its KV cache, the logits. An
# estimate for a 4B model in bf16, not measured on a GPU (owed with the GPU runner's enhancer case).
ENHANCER_WORKING_BYTES = 1_500_000_000


def available_bytes(device: str) -> int:
    """Bytes the device can give a new model now: CUDA's free memory plus what this process caches but does not
    use; MPS's recommended working set less what the driver holds; the CPU's available RAM."""
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        index = torch.device(device).index or 0
        free, _ = torch.cuda.mem_get_info(index)
        return free + torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
    if kind == "mps":
        return max(int(torch.mps.recommended_max_memory()) - int(torch.mps.driver_allocated_memory()), 0)
    return _ram()[1]


def room_for(device: str, need: int) -> bool:
    """Whether `need` more bytes fit on the device now, keeping the planner's headroom."""
    return need <= available_bytes(device) * (1 - HEADROOM)


def enhancer_bytes(weight_bytes: int, element_size: int, stored_element_size: int = 2) -> int:
    """An enhancer's peak: its weights at the run dtype (stored in bf16: twice the file's bytes in float32 on a
    CPU) plus its working memory."""
    return weight_bytes * element_size // stored_element_size + ENHANCER_WORKING_BYTES


def upscale_budget(device: str, weight_bytes: int, frame_bytes: int) -> int:
    """Bytes one upscaler run may take for its activations: what is available now, less headroom, the upscaler's
    weights and a frame in and out (the writer holds the frame before it)."""
    return max(int(available_bytes(device) * (1 - HEADROOM)) - weight_bytes - 2 * frame_bytes, 0)
