"""The one place the benchmarks reach for the package's tiny random-weight model builders.

The builders live in the package `video_gen/tiny/` (one module per family); when one moves, `HOMES` below is the
only edit the benchmarks need. Every bench script imports them from here
(`from tiny_models import build_tiny_svd`, with `bench/` on `sys.path`, as it is for `python bench/x.py`).
Imports are lazy (PEP 562): importing this module imports neither torch nor the package.
"""

from __future__ import annotations

import importlib

# name -> the module that defines it
HOMES = {
    "build_tiny_svd": "video_gen.tiny.sd",
    "build_tiny_sd15": "video_gen.tiny.sd",
    "build_tiny_lora": "video_gen.tiny.sd",
    "build_tiny_motion_adapter": "video_gen.tiny.sd",
    "build_tiny_t5_tokenizer": "video_gen.tiny.common",
    "SVD_SCHEDULER_CONFIG": "video_gen.tiny.sd",
    "build_tiny_wan": "video_gen.tiny.wan",
    "build_tiny_wan_vace": "video_gen.tiny.wan_vace",
    "build_tiny_ltx": "video_gen.tiny.ltx",
    "build_tiny_ltx_upsampler": "video_gen.tiny.ltx",
    "build_tiny_ltx2": "video_gen.tiny.ltx2",
    "build_tiny_gemma_tokenizer": "video_gen.tiny.ltx2",
    "LTX2_MODEL_INDEX": "video_gen.tiny.ltx2",
    "LTX2_SCHEDULER_CONFIG": "video_gen.tiny.ltx2",
    "build_tiny_esrgan": "video_gen.tiny.upscalers",
}

__all__ = list(HOMES)


def __getattr__(name: str):
    if name in HOMES:
        return getattr(importlib.import_module(HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
