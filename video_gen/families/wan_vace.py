"""Wan VACE inside the Wan family (`wan.py` imports this; it is not a family of its own): video to video with a
control (pose, depth, edges, gray, or any video given as it is), a mask (white = generate, black = keep the
control's pixels) and a reference picture, with diffusers' `WanVACEPipeline` (0.42.1).

What a VACE model is: a folder whose model_index.json names `WanVACEPipeline` (Wan-AI/Wan2.1-VACE-1.3B-diffusers,
Wan-AI/Wan2.1-VACE-14B-diffusers; Wan 2.2 VACE-Fun A14B conversions add `transformer_2` and `boundary_ratio`), or a
transformer file (GGUF or .safetensors, QuantStack/Wan2.1_14B_VACE-GGUF) whose tensor names have VACE's blocks
beside Wan's, paired with an installed VACE folder: never with a plain Wan folder of the same width, nor a plain
file with a VACE folder (`wan._transformer_shape` tells them apart).

How it runs (checked on the tiny model, tests/test_vace_core.py): the control and mask are made by the job
runner (`control.prepare_inputs`), fitted to exactly the output size, one slice per segment (`job.control`);
the reference picture is handed over as the user gave it (the pipeline fits it onto a white canvas itself) and is
one more leading latent frame, which `wan.run` strips before decoding. A segment after the first continues the
one before: its control's first frame is the previous segment's last frame, kept (mask black there).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from ..checkpoints import UNSUPPORTED
from .spec import Download, SingleFile

PIPELINE_CLASS = "WanVACEPipeline"
TRANSFORMER_CLASS = "WanVACETransformer3DModel"
# The pipeline's `conditioning_scale`: how strongly the control steers (its default, and VACE's own)
CONDITIONING_SCALE = 1.0
# The gray of a frame without a control (the pipeline's own zeros in [-1, 1]): what a continued segment's frames
# after the kept one hold when the request has no control
NO_CONTROL_GRAY = 128


def _names(keys) -> list[str]:
    return [key.removeprefix("model.diffusion_model.") for key in keys]


def is_vace_transformer(keys: Collection[str]) -> bool:
    """A whole Wan VACE transformer from its tensor names alone (a safetensors header or a GGUF's tensor table):
    Wan's own layout (ComfyUI's, QuantStack's VACE GGUF files: `vace_blocks.N.before_proj` / `after_proj`,
    `vace_patch_embedding`) or diffusers' (`vace_blocks.N.proj_in` / `proj_out`), with or without ComfyUI's
    `model.diffusion_model.` prefix, and the plain Wan blocks beside them. diffusers' single-file loader tells VACE
    apart the same way (`vace_blocks.0.after_proj.bias`, loaders/single_file_utils.py)."""
    names = _names(keys)
    has_vace = any(name.startswith(("vace_blocks.", "vace_patch_embedding.")) for name in names)
    return has_vace and any(name.startswith("blocks.") for name in names)


def is_vace_module_only(keys: Collection[str]) -> bool:
    """VACE's own tensors without the Wan blocks they add to (Kijai's Wan2_1-VACE_module files, meant to be merged
    into a Wan T2V transformer by ComfyUI's wrapper): not a model that runs here."""
    names = _names(keys)
    return any(name.startswith("vace_blocks.") for name in names) and not any(name.startswith("blocks.")
                                                                              for name in names)


SINGLE_FILES = (
    # Asked before Wan's own transformer entry (priority 5), whose names a VACE file also has
    SingleFile("wan-vace-transformer", TRANSFORMER_CLASS, matches=is_vace_transformer, priority=4),
    SingleFile("wan-vace-module", "WanVACEModule", matches=is_vace_module_only, role=UNSUPPORTED, priority=4,
               note="VACE's blocks alone (a module ComfyUI merges into a Wan T2V model), not a whole transformer: "
                    "not supported; use a whole VACE model (video-gen models download wan2.1-vace-1.3b, or "
                    "wan2.1-vace-14b-gguf)"),
)

DOWNLOADS = (
    # Sizes from the repositories' file listings (umT5-XXL alone is ~11 GB of each)
    Download("wan2.1-vace-1.3b", "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
             "Wan 2.1 VACE 1.3B: video to video with a control (pose, depth, edges, gray), a mask and a reference "
             "picture, 832x480 (~24 GB, most of it umT5-XXL)"),
    Download("wan2.1-vace-14b", "Wan-AI/Wan2.1-VACE-14B-diffusers",
             "Wan 2.1 VACE 14B: video to video with a control, a mask and a reference picture, 832x480 or "
             "1280x720 (~75 GB)"),
    # QuantStack's files (converted with city96's tools from Wan-AI/Wan2.1-VACE-14B; Q4_K_M ~11 GB, estimated
    # from the bits per weight), with the 14B folder's other parts
    Download("wan2.1-vace-14b-gguf", "QuantStack/Wan2.1_14B_VACE-GGUF",
             "Wan 2.1 VACE 14B as one GGUF transformer (Q4_K_M ~11 GB), with wan2.1-vace-14b's other parts",
             files=("*{quant}.gguf",), folder="wan2.1-vace-14b"),
)


def is_vace_config(config: dict) -> bool:
    """A transformer config (diffusers' config.json) of VACE's transformer."""
    return config.get("_class_name") == TRANSFORMER_CLASS or "vace_layers" in config


def hint_bytes_per_token(config: dict) -> int:
    """Activation bytes per latent token (16-bit) that VACE's transformer holds for a whole call beyond plain Wan's:
    it computes every VACE block's hint up front (`control_hidden_states_list`, one width-wide vector per token per
    VACE layer, transformer/transformer_wan_vace.py) and keeps them, with the last VACE block's running state,
    until the main blocks have used them. Calculated from the shapes, not measured: (layers + 1) x width x 2 bytes,
    49,152 for the 1.3B (15 layers x 1536), 92,160 for the 14B (8 x 5120), against 55,677 measured for a whole
    14B block's activations (WAN_MEMORY): at 480P, 81 frames (32,760 tokens) 1.6 GB and 3.0 GB more."""
    if not is_vace_config(config):
        return 0
    width = config["num_attention_heads"] * config["attention_head_dim"]
    return (len(config.get("vace_layers") or ()) + 1) * width * 2


def run_arguments(request, image, job, *, width: int, height: int) -> tuple[dict, int]:
    """The VACE pipeline's own arguments for one segment, and how many leading latent frames the reference picture
    adds (stripped before decoding). `job.control` is this segment's (control frames, mask frames) or None;
    `image` is the previous segment's last frame for a segment after the first (for the first: the fitted
    picture, which VACE does not use: it takes the picture as the user gave it, as a reference)."""
    from PIL import Image

    from ..images import open_image

    frames, mask = getattr(job, "control", None) or (None, None)
    number = getattr(job, "segment", (1, 1))[0]
    if number > 1 and image is not None:  # continue the segment before: its last frame, kept
        count = request.num_frames
        frames = (np.full((count, height, width, 3), NO_CONTROL_GRAY, np.uint8) if frames is None
                  else np.array(frames, copy=True))
        frames[0] = np.asarray(image.convert("RGB"))
        mask = np.full((count, height, width), 255, np.uint8) if mask is None else np.array(mask, copy=True)
        mask[0] = 0
    arguments: dict = {"conditioning_scale": CONDITIONING_SCALE}
    if frames is not None:
        arguments["video"] = [Image.fromarray(frame) for frame in frames]
    if mask is not None:
        arguments["mask"] = [Image.fromarray(frame, "L") for frame in mask]
    references = [open_image(request.image)] if request.image else []
    if references:
        arguments["reference_images"] = references
    return arguments, len(references)
