"""video_gen: offline image-to-video generation on your own GPU (the model families are the modules of
`video_gen.families`: Stable Video Diffusion, AnimateDiff, ModelScope, Wan, LTX-Video, …).

Importing this package loads no model, imports no torch and probes no GPU: the names below are
imported on first use. The layers of the package, and what each may import, are in the README
("How the code is laid out"); no module of the package imports this one.
"""

from __future__ import annotations

from .version import __version__

_EXPORTS = {
    "Generator": "engine",
    "GenerationResult": "results",
    "PreparedJob": "results",
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
