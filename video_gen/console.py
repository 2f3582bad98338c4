"""What the console shows a newcomer: commands spelled the way they run from where the user is, and library
chatter the user cannot act on turned off (at the start of the app and the CLI, not at import). Imports
nothing of the package (it is on the ground floor) and no torch.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import warnings
from pathlib import Path

# Messages a user cannot act on, matched at the start of the message (warnings filters match from the start).
# transformers 5 says this for every CLIPImageProcessor when torchvision is missing (SVD's feature extractor);
# the PIL fallback it then uses gives the same pixels, so there is nothing to install.
_UNACTIONABLE_WARNINGS = (
    r".*requires torchvision",
    # diffusers, when a tiny or fp16 model's modules are cast with .to(): ours are cast on purpose.
    r"There are modules in .* that should be kept in float32",
)


def command(arguments: str) -> str:
    """`video-gen ARGUMENTS` as the user can type it from the current folder: plain `video-gen` when it is on
    PATH (an activated venv, pipx), else the script's path in this Python's environment (relative when it lies
    under the current folder, e.g. `.venv/bin/video-gen`), else `python -m video_gen`."""
    on_path = shutil.which("video-gen")
    script = Path(sys.prefix) / ("Scripts/video-gen.exe" if os.name == "nt" else "bin/video-gen")
    if on_path and Path(on_path).resolve() == script.resolve():
        return f"video-gen {arguments}"
    if script.is_file():
        try:
            shown = script.relative_to(Path.cwd())
        except ValueError:
            shown = script
        return f"{shown} {arguments}"
    if on_path:
        return f"video-gen {arguments}"
    return f"{Path(sys.executable).name} -m video_gen {arguments}"


def quiet_libraries() -> None:
    """Turn off library output the user cannot act on: diffusers' and transformers' info logs and progress bars
    (our own progress replaces them), huggingface_hub's, and the warnings in `_UNACTIONABLE_WARNINGS`.

    Called once by `app.py` and `video-gen` at start-up; through the libraries' own logging verbosity and
    warnings filters (no patching): errors still show, and `--debug` (CLI) shows everything.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Fetching files" bars of local snapshots
    for pattern in _UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging
    except ImportError:  # a broken install says so when a job runs, with its own message
        return
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()  # "Loading pipeline components…"
    # Also the CLIP image processor's notice that torchvision is missing (transformers' logger, warning_once).
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()  # "Loading weights…", "Writing model shards…"


def spell(text: str) -> str:
    """A message with each `video-gen …` command in it spelled as the user can type it here (`command`): errors
    carry their own hint as plain `video-gen …`, and the console and the page show it so."""
    if "`video-gen " not in text:
        return text
    return text.replace("`video-gen ", "`" + command("").rstrip() + " ")


__all__ = ["command", "quiet_libraries", "spell"]
