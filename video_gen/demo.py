"""The demo model: a tiny Stable Video Diffusion with random weights, built here from the real diffusers classes
(`testing.build_tiny_svd`), so that the whole path (upload, progress, preview, player, download, history,
smoothing) can be tried offline without a 4.5 GB download. It makes noise, not video, and says so wherever a
model is named: `models list`, the page's model dropdown, the About tab, `video-gen info`, the result's info and
the video's metadata.

A demo folder is a diffusers folder like any other plus `DEMO_FILE`, which marks it and carries its defaults
(small sizes: its job takes seconds on a CPU). `video-gen models demo` and the page's button install it;
`video-gen selftest --keep` keeps its tiny model as the demo. Imports no torch until it builds.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

DEMO_NAME = "demo-svd-tiny"
DEMO_FILE = "video-gen-demo.json"
DEMO_NOTE = "demo: random weights, makes noise, not video"
# Its defaults: one second at 8 fps (the UNet's 8 frames), 128x128 and the page's fewest steps (10): on the
# 2-core CI machine a job takes about 4 s unloaded (`tests/test_browser_firstrun.py` measures it).
DEMO_DEFAULTS = {"width": 128, "height": 128, "num_inference_steps": 10, "decode_chunk_size": 8}


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
    return {key: value for key, value in defaults.items() if key in DEMO_DEFAULTS} if isinstance(defaults, dict) else {}


def describe_model(info) -> str:
    """A model's name for lists, with the demo label when it is one."""
    return f"{info.name} ({DEMO_NOTE})" if is_demo(info) else info.name


def metadata(model) -> dict[str, Any]:
    """What a demo model adds to an output's metadata and info: {"demo": DEMO_NOTE}, or nothing."""
    return {"demo": DEMO_NOTE} if is_demo(model) else {}


def install_demo(models_dir: str | os.PathLike, *, name: str = DEMO_NAME) -> Path:
    """Build the demo model into `models_dir/name` and return its folder; an installed one is kept as it is.

    It is built in a hidden folder beside it and renamed when complete, so an interrupted install never leaves
    a half-written model that discovery would list."""
    from .testing import build_tiny_svd

    models_dir = Path(models_dir)
    target = models_dir / name
    if is_demo(target):
        return target
    if target.exists():
        raise FileExistsError(f"{target} exists and is not a demo model; move it away or choose another --name")
    models_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_dir))  # hidden: discovery skips dot-folders
    try:
        build_tiny_svd(building / "model", fp16_variant=False)
        card = {"demo": True, "note": DEMO_NOTE, "built_with": "video_gen.testing.build_tiny_svd (random weights)",
                "defaults": DEMO_DEFAULTS}
        (building / "model" / DEMO_FILE).write_text(json.dumps(card, indent=2) + "\n")
        os.replace(building / "model", target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


__all__ = ["DEMO_NAME", "DEMO_FILE", "DEMO_NOTE", "DEMO_DEFAULTS", "is_demo", "demo_card", "demo_defaults",
           "describe_model", "metadata", "install_demo"]
