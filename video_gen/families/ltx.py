"""LTX-Video 0.9.x: image to video with a text prompt, a last frame and keyframes, distilled checkpoints, the
official single files and optional two-stage output (diffusers 0.42's LTX pipelines).

- The first picture alone runs `LTXImageToVideoPipeline`; a last frame or keyframes run `LTXConditionPipeline`
  with one `LTXVideoCondition` per picture. Both share the resident pipeline's modules (no copy).
- Keyframes sit on LTX's 8-frame grid (LTX-Video's inference docs: conditioning frames "must be divisible by 8"):
  a keyframe asked for at frame 13 is placed at 16 and a note says so. Keyframes need one generation: a long
  video made of chained segments (or frame interpolation, or a loop) refuses them, since their frames would
  not be the model's frames.
- The prompt is encoded once per (prompt, negative prompt, guidance on/off, sequence length, device, dtype)
  and kept on the resident pipeline (`prompts.cached`): T5-XXL is most of the model's weights.
- `upscale="2x"` (with a latent upsampler installed: a folder holding `LTXLatentUpsamplerModel`) makes the
  video at half the size, upsamples its latents 2x with `LTXLatentUpsamplePipeline` and refines them at the
  full size (diffusers' LTX 0.9.7 recipe: denoise strength 0.4 over 10 steps).
- Single files (`ltxv-*.safetensors`, transformer and VAE in one file) take their configs, text encoder and
  tokenizer from an installed LTX diffusers folder whose transformer and VAE have the same shapes.
- A transformer alone (a GGUF such as city96's or QuantStack's LTX-Video files, or a transformer-only
  .safetensors in LTX-Video's names) runs with the VAE, text encoder, tokenizer and configs of an installed LTX
  diffusers folder whose transformer has its architecture (`single_file.pair_with_folder`); a GGUF stays
  quantised on the device and is dequantised layer by layer.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import InvalidRequest, ModelNotFound
from ..events import DECODING, DENOISING, ENCODING_IMAGE
from ..checkpoints import HOW_TO_GET, UPSAMPLER, ModelInfo, component_files, read_safetensors_header, weight_header
from .common import last_picture, latent_upsampler, loading
from . import prompts
from ._ltx_preview import LTX_LATENT_RGB_FACTORS
from .spec import REQUIRED, Download, FamilySpec, MemoryConstants, ReferenceModel, SingleFile
from .speed import apply_speed

FRAME_STEP = 8  # the VAE packs 8 frames into one latent frame: one generation makes 8k + 1 frames
KEYFRAME_GRID = 8  # LTX-Video's conditioning frames are multiples of 8 (its inference.py's rule)
# Timestep-aware VAEs (0.9.1 and later): diffusers' LTX docs and LTX-Video's configs
# (ltxv-2b-0.9.6-distilled.yaml: decode_timestep 0.05, decode_noise_scale 0.025, image_cond_noise_scale 0.025).
DECODE_TIMESTEP = 0.05
DECODE_NOISE_SCALE = 0.025
IMAGE_COND_NOISE_SCALE = 0.025
# Two-stage output, from diffusers' LTX 0.9.7 example: the second pass denoises 40 % of the way over 10 steps.
REFINE_STEPS = 10
REFINE_STRENGTH = 0.4
UPSAMPLER_CLASSES = ("LTXLatentUpsamplePipeline", "LTXLatentUpsamplerModel")
TRANSFORMER_CLASS = "LTXVideoTransformer3DModel"  # a file holding the transformer alone


def _is_ltx_checkpoint(keys) -> bool:
    """LTX-Video's own single file: its transformer (`patchify_proj`) and its VAE (`vae.`) in one file."""
    keys = list(keys)
    return (any(key in ("model.diffusion_model.patchify_proj.weight", "patchify_proj.weight") for key in keys)
            and any(key.startswith("vae.") for key in keys))


def _is_ltx_transformer(keys) -> bool:
    """An LTX-Video 0.9.x transformer alone in LTX-Video's own names (`patchify_proj`, `adaln_single`), with or
    without ComfyUI's `model.diffusion_model.` prefix: no VAE, and none of LTX-2's audio parts."""
    keys = list(keys)
    return (any(key.removeprefix("model.diffusion_model.") == "patchify_proj.weight" for key in keys)
            and not any(key.startswith("vae.") or "audio" in key or ".av_ca_" in key for key in keys))


# Measured by `python bench/memory_constants_ltx.py` (CPU, torch 2.13, full-width LTX-Video 2B blocks and
# diffusers' default LTX VAE, two sizes, bf16 = half the fp32 bytes) on 2026-11-25: the transformer 38,780 B per
# (CFG batch x latent token; one token is 8 frames x 32x32 pixels) + 4.7 MB, flat in the block count (without
# gradients a block's activations are gone before the next one runs); the VAE decode 71 B per (frame x output
# pixel), its last stages working at 1/4 of the size on 4x4 patches; the VAE encode of the picture 150 B per
# pixel. Plus T5-XXL's activations on 256 tokens, estimated at 32 MB (width 4096, 64 heads). So 161 frames at
# 768x512 need ~0.6 GB for the transformer with CFG and ~4.5 GB to decode every frame at once. LTX's blocks
# have no feed-forward chunking (diffusers 0.42.1), so that rung saves nothing here. GPU calibration owed.
LTX_MEMORY = MemoryConstants(
    denoise_bytes_per_token=38_780, denoise_base_bytes=4_700_000, forward_chunking_saving=0.0,
    decode_bytes_per_pixel=71, encode_bytes_per_pixel=150, encode_base_bytes=32_000_000,
    spatial_compression=32, temporal_compression=8,
    measured="LTX-Video 2B blocks and VAE, bench/memory_constants_ltx.py on the CPU, 2026-11-25",
)

SPEC = FamilySpec(
    name="ltx",
    label="LTX-Video",
    class_names=("LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline", "LTXCheckpoint",
                 TRANSFORMER_CLASS),
    memory=LTX_MEMORY,
    image=REQUIRED,
    prompt=True,
    last_image=True,
    size_multiple=32,
    frame_step=FRAME_STEP,
    exact_frames=True,  # keyframes are placed on the frames asked for: no hidden extra frames
    dtype="bfloat16",
    native_frames=161,
    native_fps=24,
    steps_range=(4, 50),  # distilled models: 4-10 steps (their model cards); the others 30-50
    latent_rgb_factors=LTX_LATENT_RGB_FACTORS,
    controls=frozenset({"speed", "max_guidance_scale", "keyframes", "upscale"}),
    lora_loader="LTXConditionPipeline",
    downloads=(
        Download("ltx-video", "Lightricks/LTX-Video",
                 "LTX-Video 2B in the diffusers layout (transformer ~3.8 GB, T5-XXL ~9.5 GB in bf16); also supplies "
                 "the text encoder for the official single files such as ltxv-2b-0.9.8-distilled.safetensors "
                 "(about 6.3 GB, as the 2B files are) and ltxv-13b-0.9.8-distilled.safetensors (28.6 GB)"),
        Download("ltx-13b-distilled", "Lightricks/LTX-Video-0.9.7-distilled",
                 "LTX-Video 13B distilled 0.9.7 (diffusers layout, ~28 GB transformer + ~9.5 GB T5-XXL in bf16): "
                 "8 steps at guidance 1"),
        Download("ltx-video-0.9.5", "Lightricks/LTX-Video-0.9.5",
                 "LTX-Video 2B 0.9.5 in the diffusers layout (diffusers' own config source for 0.9.5 single files; "
                 "its VAE is 0.9.5's): the other parts for ltx-2b-0.9.5-gguf"),
        Download("ltx-13b-dev", "Lightricks/LTX-Video-0.9.7-dev",
                 "LTX-Video 13B dev 0.9.7 (diffusers layout, ~28 GB transformer + ~9.5 GB T5-XXL in bf16): 40 steps "
                 "at guidance 3; the other parts for ltx-13b-dev-gguf"),
        # The official 2B distilled single file (6.34 GB in ComfyUI-Manager's list, Comfy-Org/ComfyUI-Manager#2005):
        # transformer and VAE; diffusers takes 0.9.5's configs for 2B files with 0.9.5's VAE, as here.
        Download("ltx-2b-distilled", "Lightricks/LTX-Video",
                 "LTX-Video 2B distilled 0.9.8, the official single file ltxv-2b-0.9.8-distilled.safetensors "
                 "(6.3 GB: transformer and VAE; 8 steps at guidance 1), with ltx-video-0.9.5's T5 and configs",
                 files=("ltxv-2b-0.9.8-distilled.safetensors",), folder="ltx-video-0.9.5"),
        # GGUF transformers (repositories named by city96 in ComfyUI-GGUF's issues #226 and #275; the file is
        # chosen from the repository's list by --quant). Sizes estimated from the bits per weight, not read from
        # the listings. The folder named comes without its transformer.
        Download("ltx-2b-0.9.5-gguf", "city96/LTX-Video-0.9.5-gguf",
                 "LTX-Video 2B 0.9.5 as one GGUF transformer (Q4_K_M ~1.3 GB), with ltx-video-0.9.5's other parts",
                 files=("*{quant}.gguf",), folder="ltx-video-0.9.5"),
        Download("ltx-13b-dev-gguf", "wsbagnsv1/ltxv-13b-0.9.7-dev-GGUF",
                 "LTX-Video 13B dev 0.9.7 as one GGUF transformer (Q4_K_M ~8 GB), with ltx-13b-dev's other parts",
                 files=("*{quant}.gguf",), folder="ltx-13b-dev"),
        Download("ltx-upscaler", "Lightricks/ltxv-spatial-upscaler-0.9.7",
                 "LTX-Video's 2x spatial latent upsampler (~0.5 GB) for two-stage output (--upscale 2x)"),
    ),
    single_files=(
        SingleFile("ltx", "LTXCheckpoint", matches=_is_ltx_checkpoint, priority=25),
        # A transformer alone (GGUF or .safetensors): runs with the other parts of an installed LTX folder.
        SingleFile("ltx-transformer", TRANSFORMER_CLASS, matches=_is_ltx_transformer, priority=26),
    ),
    part_classes=(("LTXLatentUpsamplePipeline", UPSAMPLER),),
    # LTX-Video 2B's parts counted on the meta device from diffusers' default transformer and VAE configs and
    # T5-XXL v1.1's (its input embedding once: the checkpoints store the tied copy once); tests recount them.
    reference_model=ReferenceModel(
        "ltx-video",
        numel={"transformer": 1_923_385_472, "vae": 419_193_905, "text_encoder": 4_762_310_656},
        largest_block={"transformer": 67_155_968, "vae": 238_789_296, "text_encoder": 4_762_310_656},
        largest_tensor=131_596_288,
        defaults={"num_frames": 161, "fps": 24, "decode_chunk_size": 128},
    ),
)


# ---- what a model is and its defaults -------------------------------------------------------------------
def is_distilled(model: ModelInfo) -> bool:
    """Guidance-distilled checkpoints say so in their names (LTX-Video-0.9.7-distilled, ltxv-2b-…-distilled)."""
    return any("distilled" in name.lower() for name in (model.name, model.path.name))


def _config(model: ModelInfo, part: str) -> dict:
    folder = model.config_dir if model.single_file else model.path
    if folder is None:
        return {}
    try:
        return json.loads((Path(folder) / part / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def defaults(model: ModelInfo) -> dict:
    """161 frames at 24 fps, 768x512 (LTX-Video's model card); distilled models 8 steps at guidance 1, the
    others 40 at 3 (diffusers' LTX docs). 0.9.0's VAE (no timestep conditioning) was trained at 25 fps."""
    distilled = is_distilled(model)
    vae = _config(model, "vae")
    return {
        "num_frames": 161,
        "fps": 24 if vae.get("timestep_conditioning", True) else 25,
        "width": 768,
        "height": 512,
        "num_inference_steps": 8 if distilled else 40,
        "max_guidance_scale": 1.0 if distilled else 3.0,
        "min_guidance_scale": 0.0,  # unused: the guidance is one number, max_guidance_scale
        # Frames decoded at once before the VAE decodes in temporal tiles (`_decode_tiling`): all of a
        # generation's (LIMITS' most), ~4.5 GB at 768x512 by the estimate above; the memory plan lowers it when
        # the card has less.
        "decode_chunk_size": 128,
    }


def complete_model(model: ModelInfo, catalog, *, motion_adapter, models_dir: Path, allow_pickle: bool,
                   **_options) -> ModelInfo:
    """Give a model the latent upsampler installed beside it and, for a single file, the folder its configs,
    text encoder and tokenizer come from."""
    model = replace(model, upsampler=find_upsampler(Path(models_dir), catalog))
    if model.single_file and model.class_name == TRANSFORMER_CLASS:
        from .single_file import pair_with_folder

        folder = pair_with_folder(model, catalog, family=SPEC.name, shape_of=_transformer_shape,
                                  describe=_describe_shape,
                                  download_hint="video-gen models download ltx-video (2B) or ltx-13b-distilled (13B)")
        return replace(model, config_dir=folder, component="transformer")
    if model.single_file:
        model = replace(model, config_dir=single_file_config_dir(model.path, catalog))
    return model


def _transformer_shape(keys_and_shapes: dict) -> tuple | None:
    """(blocks, width, latent channels, caption channels) of an LTX transformer, from a file's tensor shapes
    (LTX-Video's names) or from a diffusers config (a dict with `num_layers`)."""
    if "num_layers" in keys_and_shapes:  # a diffusers config
        config = keys_and_shapes
        return (config["num_layers"], config["num_attention_heads"] * config["attention_head_dim"],
                config["in_channels"], config["caption_channels"])
    shapes = {key.removeprefix("model.diffusion_model."): shape for key, shape in keys_and_shapes.items()}
    patch, caption = shapes.get("patchify_proj.weight"), shapes.get("caption_projection.linear_1.weight")
    if patch is None or caption is None:
        return None
    blocks = len({key.split(".")[1] for key in shapes if key.startswith("transformer_blocks.")})
    return blocks, patch[0], patch[1], caption[1]


def _describe_shape(shape: tuple) -> str:
    blocks, width, channels, caption = shape
    return f"{blocks} blocks, width {width}, {channels} latent channels, {caption} text channels"


def find_upsampler(models_dir: Path, catalog=()) -> Path | None:
    """An installed latent upsampler: a folder of the models dir (or beside an installed model) with a
    `LTXLatentUpsamplePipeline` model_index.json (its `latent_upsampler/`) or a `LTXLatentUpsamplerModel`
    config.json."""
    for info in catalog:  # found by discovery (the models folder, extra folders, the Hugging Face cache)
        if info.role == UPSAMPLER and info.family == SPEC.name:
            found = upsampler_weights(info.path)
            if found is not None:
                return found
    places = [models_dir] + [info.path.parent for info in catalog if info.family == SPEC.name]
    for place in dict.fromkeys(places):
        if not place.is_dir():
            continue
        for folder in sorted(child for child in place.iterdir() if child.is_dir()):
            found = upsampler_weights(folder)
            if found is not None:
                return found
    return None


def upsampler_weights(folder: Path) -> Path | None:
    """The folder to load `LTXLatentUpsamplerModel` from, if `folder` holds one."""
    for candidate, name in ((folder, "model_index.json"), (folder, "config.json"),
                            (folder / "latent_upsampler", "config.json")):
        try:
            config = json.loads((candidate / name).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(config, dict) and config.get("_class_name") in UPSAMPLER_CLASSES:
            return folder / "latent_upsampler" if name == "model_index.json" else candidate
    return None


def single_file_config_dir(checkpoint: Path, catalog) -> Path:
    """An installed LTX diffusers folder whose transformer and VAE have the checkpoint's shapes."""
    shapes = _checkpoint_shapes(checkpoint)
    folders = [info.path for info in catalog if info.family == SPEC.name and info.path.is_dir()]
    for folder in folders:
        if _folder_shapes(folder) == shapes:
            return folder
    raise ModelNotFound(
        f"{checkpoint} is an LTX-Video single file: its text encoder, tokenizer and configs come from an installed "
        f"LTX-Video diffusers folder of the same architecture and VAE version (transformer layers, width, VAE "
        f"channels in and deepest, timestep-conditioned decoder: {shapes}), and none is installed; get one with "
        f"`video-gen models download ltx-video-0.9.5` (2B 0.9.5 to 0.9.8) or `ltx-13b-distilled` (13B) ({HOW_TO_GET})"
    )


def _checkpoint_shapes(checkpoint: Path) -> tuple:
    header = read_safetensors_header(checkpoint)
    prefix = "model.diffusion_model." if "model.diffusion_model.patchify_proj.weight" in header else ""
    layers = len({key[len(prefix):].split(".")[1] for key in header
                  if key.startswith(prefix + "transformer_blocks.")})
    width = header[prefix + "patchify_proj.weight"]["shape"][0]
    vae_in = header.get("vae.encoder.conv_in.conv.weight", {}).get("shape", [None])[0]
    # The VAE's version: 0.9.5 and later end their encoder at 2048 channels (diffusers' own test), 0.9.1 and
    # later condition the decoder on the timestep. A 0.9.8 file beside a 0.9.0 folder would get a VAE config
    # that does not fit its weights.
    vae_deep = header.get("vae.encoder.conv_out.conv.weight", {}).get("shape", [None, None])[1]
    timestep = any(key.startswith("vae.decoder.last_time_embedder.") for key in header)
    return layers, width, vae_in, vae_deep, timestep


def _folder_shapes(folder: Path) -> tuple | None:
    try:
        transformer = json.loads((folder / "transformer" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        return (transformer["num_layers"], transformer["num_attention_heads"] * transformer["attention_head_dim"],
                vae["block_out_channels"][0], vae["block_out_channels"][-1], bool(vae.get("timestep_conditioning")))
    except (OSError, json.JSONDecodeError, KeyError, IndexError, TypeError):
        return None


def component_headers(model: ModelInfo) -> dict[str, list[dict]] | None:
    """Safetensors headers by component, for the memory plan, of an official single file: it holds the
    transformer (`model.diffusion_model.*`) and the VAE (`vae.*`); its T5 text encoder (~9.5 GB in bf16, the
    largest part) lives in the folder its configs come from, and is counted too. None for a folder or a
    transformer file (`component`), which the estimator reads its own way."""
    if not model.single_file or model.component:
        return None
    header = read_safetensors_header(model.path)
    headers = {"transformer": [{name: entry for name, entry in header.items() if not name.startswith("vae.")}],
               "vae": [{name: entry for name, entry in header.items() if name.startswith("vae.")}]}
    if model.config_dir is not None and (Path(model.config_dir) / "text_encoder").is_dir():
        files = component_files(Path(model.config_dir)).get("text_encoder", [])
        headers["text_encoder"] = [weight_header(file) for file in files]
    return headers


# ---- checks -------------------------------------------------------------------------------------------------
def check(request, model: ModelInfo) -> list[str]:
    """LTX's own rules beyond the spec's (8k+1 frames, size multiple of 32, picture): the upsampler, keyframes.
    Returns notes for the user (where each keyframe was placed)."""
    if request.upscale == "2x":
        if model.upsampler is None:
            raise InvalidRequest("upscale", "2x needs LTX-Video's latent upsampler installed (a folder with "
                                            "LTXLatentUpsamplerModel): `video-gen models download ltx-upscaler`")
        for name in ("width", "height"):
            value = getattr(request, name)
            if value % 64:
                nearest = max(64, round(value / 64) * 64)
                raise InvalidRequest(name, f"must be a multiple of 64 with upscale 2x (the first pass runs at half "
                                           f"size, a multiple of 32), got {value}; try {nearest}")
    return keyframe_notes(request, model) if request.keyframes else []


def place_keyframe(frame: int, num_frames: int) -> int:
    """A keyframe's frame on LTX's 8-frame grid: the nearest multiple of 8, not the first frame, at most the last."""
    return min(num_frames - 1, max(KEYFRAME_GRID, round(frame / KEYFRAME_GRID) * KEYFRAME_GRID))


def keyframe_notes(request, model: ModelInfo) -> list[str]:
    from ..images import check_image_file
    from ..planner import plan_length

    frames, keyframes = request.num_frames, request.keyframes
    model_defaults = defaults(model)
    plan = plan_length(frames, request.fps, native_frames=model_defaults["num_frames"],
                       native_fps=model_defaults["fps"], interpolation=request.interpolation, loop=request.loop,
                       frame_step=FRAME_STEP)
    if plan.segments > 1 or plan.factor > 1 or plan.loop_frames != frames:
        raise InvalidRequest("keyframes", f"need a video of one generation (at most {model_defaults['num_frames']} "
                                          f"frames, no interpolation, no loop); this one is {plan.describe()}")
    last = frames - 1
    places = last // KEYFRAME_GRID - (1 if request.last_image else 0)  # grid frames besides the first and last
    if len(keyframes) > places:
        raise InvalidRequest("keyframes", f"{len(keyframes)} keyframes do not fit a {frames}-frame video: keyframes "
                                          f"sit every {KEYFRAME_GRID} frames, so it has room for {max(places, 0)}")
    taken: dict[int, str] = {}
    if request.last_image:
        taken[last] = "the last frame"
    notes = []
    for number, keyframe in enumerate(keyframes, 1):
        name = Path(keyframe.image).name
        if keyframe.frame > last:
            raise InvalidRequest("keyframes", f"keyframe {number} ({name}) at frame {keyframe.frame} is past the last "
                                              f"frame ({last}) of a {frames}-frame video")
        try:
            check_image_file(keyframe.image)
        except InvalidRequest as error:
            raise InvalidRequest("keyframes", f"keyframe {number} ({name}): {str(error).partition(': ')[2]}") from None
        placed = place_keyframe(keyframe.frame, frames)
        if placed in taken:
            raise InvalidRequest("keyframes", f"keyframe {number} ({name}) lands on frame {placed}, which "
                                              f"{taken[placed]} already holds (keyframes sit every {KEYFRAME_GRID} "
                                              f"frames); move it {KEYFRAME_GRID} frames or more away")
        taken[placed] = f"keyframe {number}"
        moved = "" if placed == keyframe.frame else f" (asked for {keyframe.frame}; LTX's {KEYFRAME_GRID}-frame grid)"
        notes.append(f"keyframe {number} ({name}) at frame {placed}{moved}")
    return notes


# ---- loading ----------------------------------------------------------------------------------------------
def load(model: ModelInfo, device: str, dtype):
    from diffusers import LTXConditionPipeline

    with loading(str(model.path)):
        if model.component:
            from .single_file import load_transformer

            transformer = load_transformer(model.path, Path(model.config_dir), model.component, dtype)
            pipe = LTXConditionPipeline.from_pretrained(model.config_dir, transformer=transformer,
                                                        local_files_only=True, dtype=dtype, use_safetensors=True)
        elif model.single_file:
            pipe = _load_single_file(model, dtype)
        else:
            pipe = LTXConditionPipeline.from_pretrained(model.path, local_files_only=True, dtype=dtype,
                                                        use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    pipe._video_gen_upsampler = model.upsampler  # loaded on the first job that asks for two stages
    return pipe  # on the CPU; the engine places it on the device under the memory plan


def _load_single_file(model: ModelInfo, dtype):
    from diffusers import AutoencoderKLLTXVideo, LTXConditionPipeline, LTXVideoTransformer3DModel

    config_dir = model.config_dir
    if config_dir is None:
        raise ModelNotFound(f"{model.path}: no LTX-Video folder chosen for its configs ({HOW_TO_GET})")
    transformer = LTXVideoTransformer3DModel.from_single_file(
        str(model.path), config=str(config_dir), subfolder="transformer", local_files_only=True, torch_dtype=dtype)
    vae = AutoencoderKLLTXVideo.from_single_file(
        str(model.path), config=str(config_dir), subfolder="vae", local_files_only=True, torch_dtype=dtype)
    return LTXConditionPipeline.from_pretrained(config_dir, transformer=transformer, vae=vae, local_files_only=True,
                                                dtype=dtype, use_safetensors=True)


def upsample_pipeline(pipe, job):
    """The resident pipeline's `LTXLatentUpsamplePipeline`, sharing its VAE; its upsampler loaded once."""
    from diffusers import LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    return latent_upsampler(pipe, job, LTXLatentUpsamplePipeline, LTXLatentUpsamplerModel,
                            f"no latent upsampler is installed for two-stage output ({HOW_TO_GET})")


# ---- running ----------------------------------------------------------------------------------------------
def run(pipe, request, image, job) -> np.ndarray:
    """Generate the frames of `request` from the prepared `image` (already width x height)."""
    from diffusers import LTXImageToVideoPipeline

    from ..images import fit_to_size, open_image

    apply_speed(pipe, request.speed)
    last = last_picture(request)
    keyframes = [(fit_to_size(open_image(keyframe.image), request.width, request.height, request.resize_mode),
                  place_keyframe(keyframe.frame, request.num_frames)) for keyframe in request.keyframes]
    two_stages = request.upscale == "2x"
    conditioned = last is not None or bool(keyframes) or two_stages
    runner = pipe
    if not conditioned:
        # The same modules, not copies. Not `from_pipe`: it casts every shared module to its `dtype` argument
        # (float32 by default, diffusers 0.42.1 pipeline_utils.from_pipe), which a bf16 pipeline placed by the
        # memory plan must not get.
        runner = LTXImageToVideoPipeline(**pipe.components)
        runner.set_progress_bar_config(disable=True)

    entered_denoising = pipe.transformer.register_forward_pre_hook(lambda module, args: job.enter(DENOISING))
    decoding = pipe.vae.decoder.register_forward_pre_hook(lambda module, args: job.stage(DECODING))
    _decode_tiling(pipe.vae, job.decode_chunk_size, request.num_frames)
    try:
        # 1. Encode the prompt (once per prompt: cached on the resident pipeline) and the pictures
        job.stage(ENCODING_IMAGE, "encoding the prompt and the pictures")
        embeddings = prompt_embeddings(pipe, runner, request)
        options = dict(num_frames=request.num_frames, frame_rate=request.fps, guidance_scale=request.max_guidance_scale,
                       generator=job.generator, **embeddings, **decode_options(pipe))
        if not conditioned:
            # 2. Denoise and decode: the first picture only
            return _uint8(runner(image=image, width=request.width, height=request.height,
                                 num_inference_steps=request.num_inference_steps, output_type="np",
                                 callback_on_step_end=_on_step_end(job, request, pipe, request.num_inference_steps),
                                 **options).frames[0])
        conditions = conditions_for(image, last, keyframes, request.num_frames)
        if pipe.vae.config.timestep_conditioning:
            options["image_cond_noise_scale"] = IMAGE_COND_NOISE_SCALE
        if not two_stages:
            # 2. Denoise and decode with the pictures at their frames
            return _uint8(pipe(conditions=conditions, width=request.width, height=request.height,
                               num_inference_steps=request.num_inference_steps, output_type="np",
                               callback_on_step_end=_on_step_end(job, request, pipe, request.num_inference_steps),
                               **options).frames[0])
        # 2. Two stages: denoise at half size, upsample the latents 2x, refine at full size
        half = dict(width=request.width // 2, height=request.height // 2)
        job.stage(DENOISING, "stage 1 of 2: denoising at half size")
        latents = pipe(conditions=conditions, **half, num_inference_steps=request.num_inference_steps,
                       output_type="latent", callback_on_step_end=_on_step_end(job, request, pipe,
                                                                               request.num_inference_steps, **half),
                       **options).frames
        upsampler = upsample_pipeline(pipe, job)
        job.stage(DENOISING, "stage 2 of 2: upsampling the latents 2x and refining")
        latents = upsampler(latents=latents, output_type="latent").frames
        if job.plan.offload != "none":  # offloaded plans keep only the running part on the device (~0.5 GB)
            upsampler.latent_upsampler.to("cpu")
        refine_steps = max(1, int(REFINE_STEPS * REFINE_STRENGTH))
        return _uint8(pipe(conditions=conditions, width=request.width, height=request.height, latents=latents,
                           num_inference_steps=REFINE_STEPS, denoise_strength=REFINE_STRENGTH, output_type="np",
                           callback_on_step_end=_on_step_end(job, request, pipe, refine_steps), **options).frames[0])
    finally:
        entered_denoising.remove()
        decoding.remove()
        pipe.maybe_free_model_hooks()


def conditions_for(image, last, keyframes, num_frames: int) -> list:
    """One `LTXVideoCondition` per picture: the first at frame 0, the keyframes at theirs, the last at the end."""
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    conditions = [LTXVideoCondition(image=image, frame_index=0)]
    conditions += [LTXVideoCondition(image=picture, frame_index=frame) for picture, frame in keyframes]
    if last is not None:
        conditions.append(LTXVideoCondition(image=last, frame_index=num_frames - 1))
    return conditions


def decode_options(pipe) -> dict:
    """`decode_timestep` / `decode_noise_scale` for a timestep-aware VAE (0.9.1 and later), else nothing."""
    if pipe.vae.config.timestep_conditioning:
        return {"decode_timestep": DECODE_TIMESTEP, "decode_noise_scale": DECODE_NOISE_SCALE}
    return {}


def prompt_embeddings(pipe, runner, request) -> dict:
    """The prompt's T5 embeddings for `runner` (the pipeline that runs), cached on the resident `pipe`."""
    import torch

    guidance = request.max_guidance_scale > 1.0  # the pipelines' do_classifier_free_guidance
    max_length = inspect.signature(type(runner).__call__).parameters["max_sequence_length"].default
    device = runner._execution_device
    key = (request.prompt, request.negative_prompt, guidance, max_length, str(device), str(pipe.text_encoder.dtype))

    def encode():
        with torch.no_grad():
            return runner.encode_prompt(prompt=request.prompt, negative_prompt=request.negative_prompt or None,
                                        do_classifier_free_guidance=guidance, max_sequence_length=max_length,
                                        device=device)

    embeds, mask, negative_embeds, negative_mask = prompts.cached(pipe, key, encode)
    return {"prompt_embeds": embeds, "prompt_attention_mask": mask, "negative_prompt_embeds": negative_embeds,
            "negative_prompt_attention_mask": negative_mask}


def _on_step_end(job, request, pipe, total: int, width: int | None = None, height: int | None = None):
    """The step callback: progress, cancel, and a preview of the middle latent frame (128-channel models)."""
    width, height = width or request.width, height or request.height
    latent_frames = (request.num_frames - 1) // pipe.vae_temporal_compression_ratio + 1
    latent_height = height // pipe.vae_spatial_compression_ratio
    latent_width = width // pipe.vae_spatial_compression_ratio
    previewable = (pipe.transformer.config.in_channels == len(LTX_LATENT_RGB_FACTORS)
                   and pipe.transformer_spatial_patch_size == 1 and pipe.transformer_temporal_patch_size == 1)

    def on_step_end(pipeline, index, timestep, tensors):
        preview = None
        if previewable:
            preview = lambda: preview_latent(tensors["latents"], latent_frames, latent_height, latent_width)  # noqa: E731
        job.step(DENOISING, index + 1, total, preview=preview)
        return tensors

    return on_step_end


def preview_latent(packed, frames: int, height: int, width: int):
    """The middle latent frame (C, h, w) of packed latents (B, tokens, C); conditioning tokens of keyframes
    come first in LTXConditionPipeline's sequence, so the video's own are the last frames x h x w."""
    video = packed[0, -frames * height * width:]
    return video.reshape(frames, height, width, -1)[frames // 2].permute(2, 0, 1)


def _decode_tiling(vae, chunk_size: int, num_frames: int) -> None:
    """Decode all frames at once when the memory plan's chunk holds them; else in temporal tiles of about
    `chunk_size` frames (and 512-pixel spatial tiles), diffusers' own LTX VAE tiling."""
    if chunk_size >= num_frames:
        vae.use_tiling = False
        vae.use_framewise_decoding = False
        return
    tile = max(2 * FRAME_STEP, chunk_size // FRAME_STEP * FRAME_STEP)
    vae.enable_tiling(tile_sample_min_num_frames=tile, tile_sample_stride_num_frames=tile - FRAME_STEP)
    vae.use_framewise_decoding = True


def _uint8(frames) -> np.ndarray:
    # The same rounding as diffusers' numpy_to_pil, so PNG frames equal the pipeline's PIL output.
    return (np.asarray(frames) * 255).round().astype(np.uint8)
