"""video_gen: offline image-to-video generation (Stable Video Diffusion, AnimateDiff).

Importing this package loads no model, imports no torch and probes no GPU: the names below are
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .engine import GenerationResult, Generator, PreparedJob
    from .errors import Cancelled, GenerationFailed, InvalidRequest, ModelNotFound, VideoGenError
    from .request import GenerationRequest

_EXPORTS = {
    "Generator": "engine",
    "GenerationResult": "engine",
    "PreparedJob": "engine",
    "GenerationRequest": "request",
    "VideoGenError": "errors",
    "InvalidRequest": "errors",
    "ModelNotFound": "errors",
    "GenerationFailed": "errors",
    "Cancelled": "errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
