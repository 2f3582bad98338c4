"""Speed options for transformer families (Wan, LTX): a diffusers cache hook and the attention backend.

The request's `speed` field picks the cache hook, off by default because it trades a little quality for time:
- "first-block-cache": diffusers' FirstBlockCache (ParaAttention's dynamic caching): when the first block's
  residual changes by less than the threshold, the rest of the blocks are skipped for that step. 0.05 is
  diffusers' default; ParaAttention reports ~1.5-2x on Wan/HunyuanVideo at 0.05-0.09 with little visible change.
- "taylorseer": diffusers' TaylorSeerCache, a full forward every `cache_interval` steps and first-order Taylor
  predictions in between (arXiv 2503.06923); diffusers' defaults (interval 5, full for the first 3 steps).
The UNet families (SVD, AnimateDiff) cannot take these hooks (diffusers applies them to transformer blocks only):
their specs leave "speed" out of `controls`, and a request asking for one there is refused.

Attention: `set_attention_backend` is honoured by Wan and LTX. We pick SageAttention or FlashAttention when the
package is installed and a CUDA device runs the job, else PyTorch's SDPA ("native"); never a `*_hub` backend,
which downloads kernels (we run offline).
"""

from __future__ import annotations

import importlib.util

OFF = "off"
SPEEDS = (OFF, "first-block-cache", "taylorseer")
FIRST_BLOCK_CACHE_THRESHOLD = 0.05  # diffusers' default; see the module docstring


def cache_config(speed: str):
    """The diffusers cache config for a `speed` value (None for "off")."""
    if speed == OFF:
        return None
    if speed == "first-block-cache":
        from diffusers import FirstBlockCacheConfig

        return FirstBlockCacheConfig(threshold=FIRST_BLOCK_CACHE_THRESHOLD)
    if speed == "taylorseer":
        from diffusers import TaylorSeerCacheConfig

        return TaylorSeerCacheConfig()
    raise ValueError(f"speed must be one of {', '.join(SPEEDS)}, got {speed!r}")


def apply_speed(pipe, speed: str) -> None:
    """Put the cache hook `speed` asks for on every transformer of the pipeline (Wan 2.2 has two), replacing
    the one a previous job put there; "off" removes it. Called before each run: the pipeline stays resident."""
    for transformer in transformers(pipe):
        current = getattr(transformer, "_video_gen_speed", OFF)
        if current == speed:
            continue
        if current != OFF:
            transformer.disable_cache()
        config = cache_config(speed)
        if config is not None:
            transformer.enable_cache(config)
        transformer._video_gen_speed = speed


def transformers(pipe) -> list:
    return [module for module in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None))
            if module is not None]


def attention_backend(device: str) -> str:
    """The fastest installed attention backend for `device`: "sage", "flash" or "native" (PyTorch SDPA)."""
    if device.startswith("cuda"):
        if importlib.util.find_spec("sageattention") is not None:
            return "sage"
        if importlib.util.find_spec("flash_attn") is not None:
            return "flash"
    return "native"


def set_attention(pipe, device: str) -> str:
    """Set every transformer's attention backend for `device`; returns the backend's name (shown in `info`)."""
    backend = attention_backend(device)
    for transformer in transformers(pipe):
        if backend != "native":
            transformer.set_attention_backend(backend)
    return backend
