"""What a demo model is: a tiny Stable Video Diffusion with random weights (built from the real diffusers classes
by `tiny.sd.build_tiny_svd`, installed by `downloads.install_demo`), so that the whole path (upload, progress,
preview, player, download, history, smoothing) can be tried offline without a 4.5 GB download. It makes noise,
not video, and says so wherever a model is named: `models list`, the page's model dropdown, the About tab,
`video-gen info`, the result's info and the video's metadata.

The second demo (`downloads.install_lora_demo`, `video-gen models demo --lora`, and the page's demo button) is a
tiny AnimateDiff (an SD1.5 base with its motion adapter inside, `LORA_DEMO_NAME`) and a tiny LoRA that fits it
(`models/loras/LORA_DEMO_FILE`, its safetensors metadata carrying `DEMO_LORA_KEY`), so that the prompt, the LoRA
panel and a family without a required picture can be tried offline too; labelled as noise the same way.

A demo folder is a diffusers folder like any other plus `DEMO_FILE`, which marks it and carries its defaults
(small sizes: its job takes seconds on a CPU). `video-gen models demo` and the page's button install it;
`video-gen selftest --keep` keeps its tiny model as the demo. Imports nothing of the package, so that discovery
can label demo models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEMO_NAME = "demo-svd-tiny"
DEMO_FILE = "video-gen-demo.json"
DEMO_NOTE = "demo: random weights, makes noise, not video"
# Its defaults: one second at 8 fps (the UNet's 8 frames), 128x128 and the page's fewest steps (10): on the
# 2-core CI machine a job takes about 4 s unloaded (`tests/test_browser_firstrun.py` measures it).
DEMO_DEFAULTS = {"width": 128, "height": 128, "num_inference_steps": 10, "decode_chunk_size": 8}
LORA_DEMO_NAME = "demo-tiny-animatediff"  # sorts after DEMO_NAME: the page still opens on the SVD demo
LORA_DEMO_FILE = "demo-lora-tiny.safetensors"  # in models/loras
DEMO_LORA_KEY = "video_gen_demo"  # a demo LoRA's safetensors metadata carries this key (its value: DEMO_NOTE)
# The AnimateDiff demo's own: 8 frames (the tiny motion adapter's) at 8 fps, 128x128, 10 steps.
LORA_DEMO_DEFAULTS = {"width": 128, "height": 128, "num_inference_steps": 10, "decode_chunk_size": 8,
                      "num_frames": 8}
_DEFAULT_KEYS = {*DEMO_DEFAULTS, *LORA_DEMO_DEFAULTS}


def is_demo(model) -> bool:
    """Whether a model (a `ModelInfo`, or a folder) is a demo model."""
    path = Path(getattr(model, "path", model))
    return path.is_dir() and (path / DEMO_FILE).is_file()


def demo_card(model) -> dict[str, Any]:
    """The demo marker's content ({} for a model that is not a demo, or whose marker cannot be read)."""
    if not is_demo(model):
        return {}
    try:
        card = json.loads((Path(getattr(model, "path", model)) / DEMO_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {"demo": True}
    return card if isinstance(card, dict) else {"demo": True}


def demo_defaults(model) -> dict[str, Any]:
    """The request defaults a demo model sets over its family's (its small size and steps); {} for others."""
    defaults = demo_card(model).get("defaults", {})
    return {key: value for key, value in defaults.items() if key in _DEFAULT_KEYS} if isinstance(defaults, dict) else {}


def describe_model(info) -> str:
    """A model's name for lists, with the demo label when it is one."""
    return f"{info.name} ({DEMO_NOTE})" if is_demo(info) else info.name


def metadata(model) -> dict[str, Any]:
    """What a demo model adds to an output's metadata and info: {"demo": DEMO_NOTE}, or nothing."""
    return {"demo": DEMO_NOTE} if is_demo(model) else {}


__all__ = ["DEMO_NAME", "DEMO_FILE", "DEMO_NOTE", "DEMO_DEFAULTS", "LORA_DEMO_NAME", "LORA_DEMO_FILE", "DEMO_LORA_KEY",
           "LORA_DEMO_DEFAULTS", "is_demo", "demo_card", "demo_defaults",
           "describe_model", "metadata"]
