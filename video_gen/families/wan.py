"""Wan (Wan-AI): image to video with diffusers' `WanImageToVideoPipeline`, text to video with `WanPipeline`.

One module for every Wan variant; which one a model is comes from its configs (`variant`), never its name:
- Wan 2.1 I2V 14B (480P, 720P): a CLIP image encoder beside the transformer (`image_dim` in its config);
  FLF2V 14B is the same with a position table for two pictures (`pos_embed_seq_len`): a first and a last frame;
- Wan 2.2 I2V A14B: two transformers, a high-noise expert (`transformer`) and a low-noise expert
  (`transformer_2`), switched at `boundary_ratio` x 1000 timesteps, each with its own guidance
  (the request's `max_guidance_scale` for the first, `min_guidance_scale` for the second);
- Wan 2.2 TI2V-5B (`expand_timesteps`): a `WanPipeline` folder that also animates a picture (diffusers runs it
  through `WanImageToVideoPipeline` over the same modules); sizes multiple of 32, no last frame;
- Wan 2.1 T2V (1.3B, 14B): text only;
- Wan VACE (2.1 VACE 1.3B and 14B, 2.2 VACE-Fun A14B): video to video with a control video, a mask and a
  reference picture (`wan_vace.py`: what it is, its downloads and single files, its run arguments).
A transformer can also come as a single file (a GGUF, or a .safetensors in Wan's own layout) paired with an
installed diffusers folder of the same architecture that gives the rest (`complete_model`).

The prompt goes through umT5-XXL once per (prompt, negative prompt, options) per resident pipeline
(`prompts.cached`): the next job with the same prompt never runs the text encoder. The pipeline stops at
latents and we decode them with the VAE's own loop, reporting each latent frame (the Wan VAE decodes one latent
frame at a time with a causal cache, so chunks cannot be decoded separately without changing the frames).
The flow shift is the scheduler config's (`flow_shift`/`shift`): the model's own.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import InvalidRequest, ModelNotFound
from ..events import DECODING, DENOISING, ENCODING_IMAGE
from ..checkpoints import HOW_TO_GET, ModelInfo
from .common import loading, read_json
from . import prompts, speed, wan_vace
from .spec import OPTIONAL, Download, FamilySpec, MemoryConstants, SingleFile

MAX_SEQUENCE_LENGTH = 512  # the pipelines' default and what Wan was trained with (umT5, 512 tokens)

# Variants (`variant(model)`).
I2V, A14B, TI2V_5B, T2V, VACE, VACE_A14B = "i2v", "a14b", "ti2v-5b", "t2v", "vace", "vace-a14b"
VACE_VARIANTS = (VACE, VACE_A14B)

# ComfyUI comfy/latent_formats.py, class Wan21 (16 channels; a linear fit of normalised latents to RGB, its bias
# left out). Wan 2.2 TI2V-5B's VAE has 48 channels: no preview there (the Job's map is the spec's).
WAN21_LATENT_RGB_FACTORS = (
    (-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747), (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665), (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364), (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950), (0.1984, 0.0913, 0.1861),
)

# Measured by `python bench/wan_memory_constants.py` (CPU, torch 2.13, float32 halved to bf16) on Wan 2.1 I2V
# 14B's full-size block (width 5120, FFN 13824, CLIP image tokens), fitted through two token counts; the blocks
# run one at a time, so activations do not grow with the 40 blocks (with --blocks 2 the peaks are the same bytes).
# Its output on 2026-11-25: 55,677 B per token of one transformer call (Wan runs CFG as two calls of batch 1:
# cfg_batch 1), base 31.5 MB; the Wan 2.1 VAE decode 2,294 B per (frame in flight x output pixel), 4 frames (one
# latent frame) at a time. So the 14B at 480P, 81 frames (32,760 tokens) needs ~1.8 GB of activations and its
# decode ~3.7 GB. Wan's transformer has no feed-forward chunking (saving 0). Not measured: the image stage (the
# VAE encoder over the conditioning video, 4 frames at a time), estimated as the decoder's bytes x 4 frames, and
# TI2V-5B (its own widths and the 48-channel VAE), which shares these. GPU calibration: bench/gpu_wan.py (owed).
WAN_MEMORY = MemoryConstants(
    denoise_bytes_per_token=55_677, denoise_base_bytes=31_525_481, forward_chunking_saving=0.0,
    decode_bytes_per_pixel=2_294, encode_bytes_per_pixel=4 * 2_294, encode_base_bytes=64_000_000,
    measured="Wan 2.1 I2V 14B block and Wan 2.1 VAE, bench/wan_memory_constants.py on the CPU, 2026-11-25 "
             "(image stage estimated)",
    spatial_compression=16, temporal_compression=4, cfg_batch=1,  # 8x VAE x patch 2; CFG as two calls
)


def _is_wan_transformer(keys) -> bool:
    """A Wan transformer in Wan's own layout (ComfyUI's and city96's GGUF files; diffusers' single-file loader
    detects it by `head.modulation` too), with or without ComfyUI's `model.diffusion_model.` prefix."""
    return any(key.endswith("head.modulation") for key in keys) and any(".self_attn.q." in key for key in keys)


SPEC = FamilySpec(
    name="wan",
    label="Wan",
    class_names=("WanImageToVideoPipeline", "WanPipeline", "WanTransformer3DModel", wan_vace.PIPELINE_CLASS,
                 wan_vace.TRANSFORMER_CLASS),
    memory=WAN_MEMORY,
    image=OPTIONAL,  # TI2V-5B, T2V and VACE run from text; the I2V models need a picture (`check`)
    prompt=True,
    last_image=True,  # I2V, FLF2V and A14B; not TI2V-5B (`check`)
    size_multiple=16,
    frame_step=4,
    exact_frames=True,  # 80 frames is refused naming 81 (issue 13); a length in seconds rounds up to 4k+1
    dtype="bfloat16",
    native_frames=81,
    native_fps=16,
    steps_range=(2, 50),  # step-distilled LoRAs run 4-8 steps
    latent_rgb_factors=WAN21_LATENT_RGB_FACTORS,
    # "control": the VACE models take a control video (`model_spec` narrows it to them)
    controls=frozenset({"speed", "max_guidance_scale", "min_guidance_scale", "control"}),
    lora_loader="WanPipeline",
    downloads=(
        # Sizes from the repositories' file listings (bf16/fp16 safetensors; umT5-XXL alone is ~11 GB).
        Download("wan2.1-i2v-14b-480p", "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
                 "Wan 2.1 image to video 14B, 832x480, 81 frames at 16 fps (~80 GB fp32 download)"),
        Download("wan2.1-i2v-14b-720p", "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers",
                 "Wan 2.1 image to video 14B, 1280x720, 81 frames at 16 fps (~80 GB fp32 download)"),
        Download("wan2.1-flf2v-14b-720p", "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
                 "Wan 2.1 first and last frame to video 14B, 1280x720 (~80 GB fp32 download)"),
        Download("wan2.2-i2v-a14b", "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
                 "Wan 2.2 image to video A14B: two 14B experts, 1280x720 or 832x480 (~126 GB)"),
        Download("wan2.2-ti2v-5b", "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
                 "Wan 2.2 text/image to video 5B, 1280x704, 121 frames at 24 fps (~34 GB)"),
        Download("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
                 "Wan 2.1 text to video 1.3B, 832x480 (~29 GB, most of it umT5-XXL)"),
        # GGUF transformers (repositories named in city96's and Wan's issue threads; the file is chosen from the
        # repository's list by --quant). Sizes estimated from the bits per weight, not read from the listings:
        # Q4_K_M ~10 GB for the 14B transformers (Q8_0 ~18 GB). The folder named comes without its transformer.
        Download("wan2.1-i2v-14b-480p-gguf", "city96/Wan2.1-I2V-14B-480P-gguf",
                 "Wan 2.1 I2V 14B 480P as one GGUF transformer (Q4_K_M ~10 GB), with wan2.1-i2v-14b-480p's other "
                 "parts", files=("*{quant}.gguf",), folder="wan2.1-i2v-14b-480p"),
        Download("wan2.1-i2v-14b-720p-gguf", "city96/Wan2.1-I2V-14B-720P-gguf",
                 "Wan 2.1 I2V 14B 720P as one GGUF transformer (Q4_K_M ~10 GB), with wan2.1-i2v-14b-720p's other "
                 "parts", files=("*{quant}.gguf",), folder="wan2.1-i2v-14b-720p"),
        Download("wan2.2-i2v-a14b-gguf", "QuantStack/Wan2.2-I2V-A14B-GGUF",
                 "Wan 2.2 I2V A14B as two GGUF experts (HighNoise + LowNoise, Q4_K_M ~10 GB each), with "
                 "wan2.2-i2v-a14b's other parts", files=("HighNoise/*{quant}.gguf", "LowNoise/*{quant}.gguf"),
                 folder="wan2.2-i2v-a14b"),
        *wan_vace.DOWNLOADS,
    ),
    single_files=(
        # A transformer alone (GGUF or .safetensors): runs with the other parts of an installed Wan folder.
        SingleFile("wan-transformer", "WanTransformer3DModel", matches=_is_wan_transformer, priority=5),
        *wan_vace.SINGLE_FILES,
    ),
)


# ---- what a model is --------------------------------------------------------------------------------
def _config_folder(model: ModelInfo) -> Path:
    """The diffusers folder whose configs describe `model` (itself, or a single file's paired folder)."""
    if model.path.is_dir():
        return model.path
    if model.config_dir is None:
        raise ModelNotFound(f"{model.path}: no Wan diffusers folder paired with this transformer file ({HOW_TO_GET})")
    return model.config_dir


def index_of(model: ModelInfo) -> dict:
    return read_json(_config_folder(model), "model_index.json")


def transformer_config(model: ModelInfo) -> dict:
    folder = _config_folder(model)
    part = "transformer" if (folder / "transformer" / "config.json").is_file() else "transformer_2"
    return read_json(folder, part, "config.json")


def variant(model: ModelInfo) -> str:
    """Which Wan a model is, from its configs: i2v (2.1 I2V/FLF2V), a14b, ti2v-5b, t2v, vace or vace-a14b."""
    index = index_of(model)
    if index["_class_name"] == wan_vace.PIPELINE_CLASS:  # first: its index has boundary_ratio (None) too
        return VACE_A14B if index.get("boundary_ratio") is not None else VACE
    if index.get("expand_timesteps"):
        return TI2V_5B
    if index.get("boundary_ratio") is not None and index["_class_name"] == "WanImageToVideoPipeline":
        return A14B
    if index["_class_name"] == "WanImageToVideoPipeline":
        return I2V
    return T2V


def defaults(model: ModelInfo) -> dict:
    """The settings of the Wan model cards and diffusers' docs, per variant."""
    kind = variant(model)
    large = "720" in model.name or "720" in str(_config_folder(model).name)
    width, height = (1280, 720) if large else (832, 480)
    settings = {
        "num_frames": 81, "fps": 16, "width": width, "height": height,
        "num_inference_steps": 50, "max_guidance_scale": 5.0, "min_guidance_scale": 5.0,
        # The Wan VAE decodes one latent frame (4 output frames) at a time whatever this says; below 4 the
        # decode is tiled spatially instead (`decode`), which is what lowers its memory.
        "decode_chunk_size": 4,
    }
    if kind == TI2V_5B:  # Wan2.2-TI2V-5B's card: 1280x704, 121 frames at 24 fps, guidance 5
        settings.update(num_frames=121, fps=24, width=1280, height=704)
    elif kind in (A14B, VACE_A14B):  # Wan 2.2's generate.py: 40 steps, guidance 3.5 for both experts (i2v-A14B)
        settings.update(num_inference_steps=40, max_guidance_scale=3.5, min_guidance_scale=3.5)
    return settings


def check(request, model: ModelInfo) -> None:
    """The variant's rules beyond the spec's (sizes of 16, 4k+1 frames, a prompt or a picture)."""
    kind = variant(model)
    if kind in (I2V, A14B) and not request.image:
        raise InvalidRequest("image", f"missing: {model.name} is a Wan image-to-video model; give the first frame")
    if kind == T2V and request.image:
        raise InvalidRequest("image", f"{model.name} is a Wan text-to-video model; leave the picture out or use "
                                      f"an image-to-video model")
    given = next((name for name in ("control", "control_from", "mask") if getattr(request, name, None)), None)
    if given and kind not in VACE_VARIANTS:
        raise InvalidRequest(given, f"{model.name} ({kind}) takes no control video; use a Wan VACE model (video-gen "
                                    f"models download wan2.1-vace-1.3b), or leave it out")
    # Wan 2.1 FLF2V's transformer has a position table for two pictures' CLIP tokens (`pos_embed_seq_len`); the
    # plain 2.1 I2V transformer takes one picture's, so diffusers fails on a last frame there.
    first_and_last = kind == I2V and transformer_config(model).get("pos_embed_seq_len") is not None
    if request.last_image and not (kind == A14B or first_and_last):
        raise InvalidRequest("last_image", f"{model.name} ({kind}) cannot take a last frame; use Wan 2.1 FLF2V or "
                                           f"Wan 2.2 I2V A14B, or leave it out")
    if first_and_last:
        _check_first_and_last(request, model)
    if kind == TI2V_5B:
        for name in ("width", "height"):
            value = getattr(request, name)
            if value is not None and value % 32:
                raise InvalidRequest(name, f"must be a multiple of 32 for Wan 2.2 TI2V-5B, got {value}; "
                                           f"try {max(32, round(value / 32) * 32)}")


def model_spec(model: ModelInfo) -> FamilySpec:
    """The spec narrowed to one model's variant, for the page: whether it needs, takes or refuses a picture, takes
    a last frame, and its size multiple."""
    from .spec import NONE, REQUIRED

    kind = variant(model)
    first_and_last = kind == I2V and transformer_config(model).get("pos_embed_seq_len") is not None
    controls = SPEC.controls if kind in VACE_VARIANTS else SPEC.controls - {"control"}
    return replace(SPEC, image={I2V: REQUIRED, A14B: REQUIRED, T2V: NONE}.get(kind, OPTIONAL),
                   last_image=kind == A14B or first_and_last, size_multiple=32 if kind == TI2V_5B else 16,
                   controls=controls)


def denoise_extra_bytes_per_token(model: ModelInfo) -> int:
    """For the memory estimate: what a VACE transformer holds per token beyond plain Wan (its hints), else 0 (also
    for a transformer file not paired with a folder yet: its configs are unknown)."""
    try:
        return wan_vace.hint_bytes_per_token(transformer_config(model))
    except ModelNotFound:
        return 0


def _check_first_and_last(request, model: ModelInfo) -> None:
    """FLF2V always runs on two pictures (its transformer takes both pictures' CLIP tokens), so it needs the last
    frame, and one pass: in a chained long video only the last segment ends on the last frame."""
    from ..planner import plan_length

    if not request.last_image:
        raise InvalidRequest("last_image", f"missing: {model.name} is a first-and-last-frame model (FLF2V); give "
                                           f"the last frame")
    settings = defaults(model)
    plan = plan_length(request.num_frames or settings["num_frames"], request.fps or settings["fps"],
                       native_frames=settings["num_frames"], native_fps=settings["fps"],
                       interpolation=request.interpolation, loop=request.loop, frame_step=SPEC.frame_step)
    if plan.segments > 1:
        raise InvalidRequest("num_frames", f"{model.name} (FLF2V) makes one pass of at most {settings['num_frames']} "
                                           f"frames between the first and the last frame; ask for fewer frames, "
                                           f"got {request.num_frames}")


def complete_model(model: ModelInfo, catalog, *, models_dir: Path, **_options) -> ModelInfo:
    """A transformer file (GGUF or .safetensors) gets the installed Wan folder of the same architecture that
    supplies its text encoder, VAE, scheduler and configs; a Wan 2.2 high-noise file also its low-noise twin."""
    if model.path.is_dir():
        return model
    from .single_file import pair_with_folder

    high_name = _high_noise_name(model.path)
    if high_name is not None:  # the second expert alone would run as the first
        raise ModelNotFound(f"{model.path.name} is {_low_noise_note(high_name)}")

    # Discovery told a VACE file apart by its tensor names (its `wan-vace-transformer` entry)
    made_from = "wan2.1-vace-14b" if model.class_name == wan_vace.TRANSFORMER_CLASS else "wan2.2-i2v-a14b"
    folder = pair_with_folder(model, catalog, family=SPEC.name, shape_of=_transformer_shape, describe=_describe_shape,
                              download_hint=f"video-gen models download {made_from} (or the model the file was "
                                            f"made from)")
    second = _low_noise_twin(model.path) if "transformer_2" in index_of(replace(model, config_dir=folder)) else None
    return replace(model, config_dir=folder, component="transformer", transformer_2=second)


def _transformer_shape(keys_and_shapes: dict[str, list[int]]) -> tuple | None:
    """(width, blocks, input channels, has an image projection, takes two pictures (FLF2V), is VACE) of a Wan
    transformer, from a file's tensors (Wan's layout) or from a diffusers config (a dict with `num_layers`). VACE
    is part of it: a VACE file must never pair with a plain folder of the same width (its VACE tensors would be
    dropped) nor a plain file with a VACE folder (diffusers fails on the missing ones)."""
    if "num_layers" in keys_and_shapes:  # a diffusers config
        config = keys_and_shapes
        return (config["num_attention_heads"] * config["attention_head_dim"], config["num_layers"],
                config["in_channels"], config.get("image_dim") is not None,
                config.get("pos_embed_seq_len") is not None, wan_vace.is_vace_config(config))
    shapes = {key.removeprefix("model.diffusion_model."): shape for key, shape in keys_and_shapes.items()}
    patch = shapes.get("patch_embedding.weight")
    if patch is None:
        return None
    blocks = len({key.split(".")[1] for key in shapes if key.startswith("blocks.")})
    return (patch[0], blocks, patch[1], any(key.startswith("img_emb.") for key in shapes),
            any(key.endswith(("emb_pos", "image_embedder.pos_embed")) for key in shapes),
            wan_vace.is_vace_transformer(shapes))


def _describe_shape(shape: tuple) -> str:
    width, blocks, channels, image, two_pictures, vace = shape
    return (f"width {width}, {blocks} blocks, {channels} input channels" + (", an image projection" if image else "")
            + (", first and last frame" if two_pictures else "") + (", VACE" if vace else ""))


LOW_NOISE_NAMES = (("high_noise", "low_noise"), ("high-noise", "low-noise"), ("HighNoise", "LowNoise"))


def describe_file(info: ModelInfo) -> ModelInfo:
    """A Wan 2.2 low-noise expert file beside its high-noise twin is that pair's second half, not a model of its
    own: listed as a part, so that only the pair's high-noise file is offered. A VACE model (folder or file) is
    named as Wan (VACE) in `models list`."""
    from ..checkpoints import MODEL, PARTS

    high_name = _high_noise_name(info.path) if info.path.is_file() else None
    if high_name is not None and info.path.with_name(high_name).is_file():
        return replace(info, role=PARTS, note=_low_noise_note(high_name))
    if info.role == MODEL and info.class_name in (wan_vace.PIPELINE_CLASS, wan_vace.TRANSFORMER_CLASS):
        return replace(info, note="; ".join(filter(None, ("Wan (VACE): video to video with a control", info.note))))
    return info


def _high_noise_name(path: Path) -> str | None:
    """The file name of a low-noise expert's high-noise twin; None when `path` is no low-noise expert."""
    return next((path.name.replace(low, high) for high, low in LOW_NOISE_NAMES if low in path.name), None)


def _low_noise_note(high_name: str) -> str:
    return (f"the low-noise expert of a Wan 2.2 A14B pair; choose its high-noise file ({high_name}) with --model, "
            f"and keep this one beside it")


def _low_noise_twin(path: Path) -> Path | None:
    """Wan 2.2 A14B ships its experts as two files, "…high_noise…" and "…low_noise…": the second of a pair."""
    for high, low in LOW_NOISE_NAMES:
        if high in path.name:
            twin = path.with_name(path.name.replace(high, low))
            return twin if twin.is_file() else None
    return None


# ---- loading ----------------------------------------------------------------------------------------
def load(model: ModelInfo, device: str, dtype):
    import torch
    from diffusers import WanImageToVideoPipeline, WanPipeline, WanVACEPipeline

    folder = _config_folder(model)
    pipeline_class = {"WanImageToVideoPipeline": WanImageToVideoPipeline, wan_vace.PIPELINE_CLASS: WanVACEPipeline
                      }.get(index_of(model)["_class_name"], WanPipeline)
    parts = {}
    if not model.path.is_dir():
        from .single_file import load_transformer

        parts["transformer"] = load_transformer(model.path, folder, "transformer", dtype)
        if model.transformer_2 is not None:
            parts["transformer_2"] = load_transformer(model.transformer_2, folder, "transformer_2", dtype)
    with loading(str(model.path)):
        # The VAE and the CLIP image encoder in float32, as diffusers' Wan examples load them (Wan's reference
        # code keeps its VAE in float32 too); they are small beside the transformer (~0.5 GB and ~2.5 GB).
        from diffusers import AutoencoderKLWan

        parts["vae"] = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", local_files_only=True,
                                                        dtype=torch.float32)
        pipe = pipeline_class.from_pretrained(folder, local_files_only=True, dtype=dtype, use_safetensors=True,
                                              **parts)
    if getattr(pipe, "image_encoder", None) is not None:
        pipe.image_encoder.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe  # on the CPU; the engine places it on the device under the memory plan


# ---- running ----------------------------------------------------------------------------------------
def image_pipeline(pipe):
    """The image-to-video pipeline over `pipe`'s modules: itself, or for TI2V-5B (a `WanPipeline` folder)
    diffusers' `WanImageToVideoPipeline` sharing every module (no copy)."""
    from diffusers import WanImageToVideoPipeline

    if isinstance(pipe, WanImageToVideoPipeline):
        return pipe
    video_pipe = getattr(pipe, "_video_gen_image_pipeline", None)
    if video_pipe is None:
        video_pipe = WanImageToVideoPipeline(
            tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae, scheduler=pipe.scheduler,
            transformer=pipe.transformer, transformer_2=pipe.transformer_2,
            boundary_ratio=pipe.config.boundary_ratio, expand_timesteps=pipe.config.expand_timesteps)
        video_pipe.set_progress_bar_config(disable=True)
        pipe._video_gen_image_pipeline = video_pipe
    return video_pipe


def encode_prompt(pipe, request, device, guidance: bool):
    """(prompt_embeds, negative_prompt_embeds), from the pipeline's cache when this prompt was encoded before."""
    dtype = pipe.transformer.dtype if pipe.transformer is not None else pipe.transformer_2.dtype
    key = ("wan", request.prompt, request.negative_prompt, guidance, MAX_SEQUENCE_LENGTH, str(device), str(dtype))
    return prompts.cached(pipe, key, lambda: pipe.encode_prompt(
        prompt=request.prompt, negative_prompt=request.negative_prompt or None,
        do_classifier_free_guidance=guidance, max_sequence_length=MAX_SEQUENCE_LENGTH, device=device, dtype=dtype))


def run(pipe, request, image, job) -> np.ndarray:
    """Generate the frames of `request`; `image` (already width x height) is the first frame when given (for VACE:
    the previous segment's last frame, continued; its reference picture is the request's own)."""
    from diffusers import WanImageToVideoPipeline, WanVACEPipeline

    # 1. Speed options on every transformer (the pipeline stays resident; a previous job's hook is replaced)
    speed.apply_speed(pipe, request.speed)
    device = pipe._execution_device
    backend = speed.set_attention(pipe, str(device))
    job.info.update(attention=backend, speed=request.speed)

    # 2. Encode the prompt once per (prompt, negative prompt, guidance on/off) for this resident pipeline
    vace = isinstance(pipe, WanVACEPipeline)
    job.stage(ENCODING_IMAGE, "encoding prompt and control" if vace else
              "encoding prompt" if image is None else "encoding prompt and image")
    guidance = request.max_guidance_scale > 1  # the pipelines' do_classifier_free_guidance
    prompt_embeds, negative_embeds = encode_prompt(pipe, request, device, guidance)

    runner = pipe if image is None or vace else image_pipeline(pipe)  # VACE never runs as image to video
    channels = runner.vae.config.z_dim
    latent_frames = (request.num_frames - 1) // runner.vae_scale_factor_temporal + 1
    middle = latent_frames // 2
    references = 0  # VACE's reference picture: a leading latent frame, not part of the video
    steps = request.num_inference_steps
    previews = len(SPEC.latent_rgb_factors) == channels  # TI2V-5B's 48 channels have no map (module docstring)

    def on_step_end(pipeline, index, timestep, tensors):
        preview = (lambda: tensors["latents"][0, :, references + middle]) if previews else None
        job.step(DENOISING, index + 1, steps, preview=preview)
        return tensors

    arguments = dict(
        prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds, height=request.height,
        width=request.width, num_frames=request.num_frames, num_inference_steps=steps,
        guidance_scale=request.max_guidance_scale, generator=job.generator, output_type="latent",
        callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"],
    )
    if runner.config.boundary_ratio is not None:
        arguments["guidance_scale_2"] = request.min_guidance_scale  # the low-noise expert's
    if isinstance(runner, WanImageToVideoPipeline):
        from .common import last_picture

        arguments.update(image=image, last_image=last_picture(request))
    if vace:
        vace_arguments, references = wan_vace.run_arguments(request, image, job, width=request.width,
                                                            height=request.height)
        arguments.update(vace_arguments)
    # The pipeline encodes the picture (CLIP, VAE; VACE: the control and reference) and then denoises: the first
    # transformer call marks the switch
    hooks = [module.register_forward_pre_hook(lambda module, args: job.enter(DENOISING))
             for module in speed.transformers(runner)]
    try:
        # 3. Denoise, stopping at latents
        latents = runner(**arguments).frames
        # 4. Decode with progress; out of memory decodes again, tiled (the memory plan's smaller decode chunk)
        latents = latents[:, :, references:]
        return job.decode_with_retries(lambda chunk_size: decode(runner, latents, chunk_size, job))
    finally:
        for hook in hooks:
            hook.remove()
        pipe.maybe_free_model_hooks()


def decode(pipe, latents, chunk_size: int, job) -> np.ndarray:
    """Latents (1, C, f, h, w) to uint8 frames (F, H, W, 3) as the pipeline decodes them, reporting each latent
    frame the VAE's decoder finishes (and honouring cancel there). A decode chunk below one latent frame's 4 frames
    tiles the decode spatially (diffusers' `enable_tiling`), which lowers its memory."""
    import torch
    from diffusers.utils.torch_utils import get_module_execution_device

    vae = pipe.vae
    frames = latents.shape[2]
    job.stage(DECODING, f"decoding {frames} latent frames")
    done = [0]

    def frame_decoded(module, args, output):
        done[0] += 1
        job.step(DECODING, min(done[0], frames), frames)

    hook = vae.decoder.register_forward_hook(frame_decoded)
    tiled = chunk_size < pipe.vae_scale_factor_temporal
    if tiled:
        vae.enable_tiling()
    try:
        with torch.no_grad():
            latents = latents.to(device=get_module_execution_device(vae), dtype=vae.dtype)
            mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
            inverse_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
            video = vae.decode(latents / inverse_std + mean, return_dict=False)[0]
            video = pipe.video_processor.postprocess_video(video, output_type="np")[0]
    finally:
        hook.remove()
        if tiled:
            vae.disable_tiling()
    # The same rounding as diffusers' numpy_to_pil, so PNG frames equal the pipeline's PIL output.
    return (video * 255).round().astype(np.uint8)


# ---- LoRAs (loras.py loads them, a Wan 2.2 pair's half on its own expert) ------------------------------------
# Step-distilled LoRAs: lightx2v's step/CFG distillation and Wan 2.2 Lightning run 4 steps without classifier-free
# guidance (guidance 1: one transformer call a step), by their model cards.
DISTILL_DEFAULTS = {"num_inference_steps": 4, "max_guidance_scale": 1.0, "min_guidance_scale": 1.0}


def lora_defaults(model: ModelInfo, loras) -> dict:
    """The request defaults a step-distill LoRA among `loras` sets (4 steps, guidance 1), else none."""
    if any(lora.info.distill in ("lightx2v", "lightning", "causvid") for lora in loras):
        return dict(DISTILL_DEFAULTS)
    return {}


# Wan 2.2 A14B runs two transformers (high noise first, then low noise), and its LoRAs come in pairs whose file
# names say which half they are (lightx2v's and Lightning's "high_noise"/"low_noise", "HN"/"LN").
_HIGH_NOISE = re.compile(r"high[\W_]?noise|(^|[\W_])hn([\W_]|$)|(^|[\W_])high([\W_]|$)", re.IGNORECASE)
_LOW_NOISE = re.compile(r"low[\W_]?noise|(^|[\W_])ln([\W_]|$)|(^|[\W_])low([\W_]|$)", re.IGNORECASE)


def noise_half(lora) -> str | None:
    """"high" or "low" for one half of a Wan 2.2 LoRA pair (by its file's name), else None."""
    return "high" if _HIGH_NOISE.search(lora.name) else "low" if _LOW_NOISE.search(lora.name) else None


def lora_load_options(model: ModelInfo, lora) -> list[dict]:
    """Where a LoRA goes (one `load_lora_weights` call each): on Wan 2.2 A14B a pair's low-noise half to the second
    transformer, its high-noise half to the first, and any other LoRA to both (as Wan2GP and ComfyUI apply them)."""
    if variant(model) not in (A14B, VACE_A14B):
        return [{}]
    return {"low": [{"load_into_transformer_2": True}], "high": [{}]}.get(
        noise_half(lora), [{}, {"load_into_transformer_2": True}])
