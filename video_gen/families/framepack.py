"""FramePack (lllyasviel) and FramePack-F1: long videos from a picture, section by section, on a HunyuanVideo
backbone, with diffusers' `HunyuanVideoFramepackPipeline` (diffusers 0.42.1, read in its sources).

- One job is ONE pipeline call, whatever the length: the pipeline makes the video in its own sections (each
  denoises `latent_window_size` = 9 latent frames, 36 video frames, with the history so far as context), so the
  length planner never chains segments here (spec `section_frames`), progress says "section k of n" and the
  preview shows each section's latents as they are denoised. The pipeline counts sections as
  ceil(num_frames / 33) and returns 36 x sections + 1 frames; the app asks it for 33 x n frames, n the fewest
  sections that hold the frames asked for (ceil((F - 1) / 36)), and writes the first F of its 36n + 1.
- F1 or the original: the two transformers have the same class and configuration; diffusers' docs tell them apart
  by repository only (FramePack_F1_I2V_HY_20250503: `sampling_type="vanilla"`, forward in time; FramePackI2V_HY:
  "inverted_anti_drifting", backward, the pipeline's default, and the only one that takes a last frame). So the
  app goes by name: "F1" as a word in the transformer folder's (or the model's) name means F1 (`variant`).
- Guidance: FramePack's distilled guidance (`guidance_scale`, fed to the transformer as an embedding; its demo's
  "Distilled CFG Scale", 10) is the request's max guidance; `true_cfg_scale` stays 1, so the negative prompt is
  not used (as in FramePack's demo) and each step is one transformer call.
- Memory: the transformer sees one section's tokens whatever the length. What grows with the length is the
  decoded video the pipeline keeps (`history_video`, blended section by section on the VAE's device): a forward
  hook on the VAE's decoder moves each decoded tile to the CPU as it comes, so the blend and the history live in
  host memory and the device's peak stays one section's. The history latents (float32, 0.25 B per pixel and
  frame: 0.18 GB for a minute at 640x640) stay on the device and are counted by the estimate.
- Layouts: a `HunyuanVideoFramepackPipeline` saved with `save_pretrained` (one folder); or diffusers' documented
  way, three repositories side by side in one folder (or in the models folder): hunyuanvideo-community/
  HunyuanVideo (text encoders, tokenizers, VAE, scheduler; its text-to-video transformer is not used), the
  FramePack transformer (lllyasviel/FramePackI2V_HY or FramePack_F1_I2V_HY_20250503, config and weights at its
  root) and lllyasviel/flux_redux_bfl (SigLIP). Single files and GGUF transformers cannot be loaded:
  `HunyuanVideoFramepackTransformer3DModel.from_single_file` raises (not among diffusers'
  `SINGLE_FILE_LOADABLE_CLASSES`).
- The Llama tokenizer: model_index.json names it `LlamaTokenizerFast`, which transformers 5 builds with a
  SentencePiece pre-tokenizer over Llama-3's byte-level vocabulary, and the prompt loses its spaces (transformers
  issues #45488, #48206; measured: "a red cat" reaches the text encoder as "aredcat"). It is loaded as the
  `PreTrainedTokenizerFast` its tokenizer.json defines (xDiT's fix).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..checkpoints import HOW_TO_GET, ModelInfo, component_files, component_shapes, weight_header
from ..errors import InvalidRequest, ModelNotFound
from ..events import DENOISING, ENCODING_IMAGE
from . import prompts
from .common import last_picture, loading
from .spec import REQUIRED, FamilySpec, FolderLayout, MemoryConstants, ReferenceModel

VANILLA, INVERTED = "vanilla", "inverted_anti_drifting"  # F1's sampling, the original's (the pipeline's default)
LATENT_WINDOW = 9  # the pipeline's default `latent_window_size`, the released checkpoints' (FramePack's demo)
SECTION_FRAMES = 4 * LATENT_WINDOW  # video frames a section adds: 36
PIPELINE_WINDOW = (LATENT_WINDOW - 1) * 4 + 1  # the pipeline's sections are ceil(num_frames / 33)
TRANSFORMER_CLASSES = ("HunyuanVideoFramepackTransformer3DModel", "HunyuanVideoTransformer3DModelPacked")
BASE_CLASSES = ("HunyuanVideoPipeline", "HunyuanVideoImageToVideoPipeline")

# ComfyUI comfy/latent_formats.py, class HunyuanVideo (16 channels), for the scaled latents the step callback sees
# (the bias is left out, as for Wan's).
HUNYUAN_VIDEO_LATENT_RGB_FACTORS = (
    (-0.0395, -0.0331, 0.0445), (0.0696, 0.0795, 0.0518), (0.0135, -0.0945, -0.0282), (0.0108, -0.0250, -0.0765),
    (-0.0209, 0.0032, 0.0224), (-0.0804, -0.0254, -0.0639), (-0.0991, 0.0271, -0.0669), (-0.0646, -0.0422, -0.0400),
    (-0.0696, -0.0595, -0.0894), (-0.0799, -0.0208, -0.0375), (0.1166, 0.1627, 0.0962), (0.1165, 0.0432, 0.0407),
    (-0.2315, -0.1920, -0.1355), (-0.0270, 0.0401, -0.0821), (-0.0616, -0.0997, -0.0727), (0.0249, -0.0469, -0.1703),
)


def section_tokens(width: int, height: int) -> int:
    """The latent-side tokens of one transformer call at width x height (VAE 8x, patch 2): the section's window
    and its two clean latents at 1x, its 2x history (patch 4) and its 4x history (patch 8): the same for every
    section whatever the video's length (bench/memory_constants_hunyuan.py's `framepack_tokens`)."""
    return ((LATENT_WINDOW + 2) * (height // 16) * (width // 16) + math.ceil(height / 32) * math.ceil(width / 32)
            + 4 * math.ceil(height / 64) * math.ceil(width / 64))


# Measured by `python bench/memory_constants_hunyuan.py` (CPU, torch 2.13, float32 halved to bf16, full width;
# 2026-11-26): the transformer (one block of each kind of lllyasviel/FramePackI2V_HY's), one call a step (true CFG
# off), needs 101,042 B per latent-side token + 82.5 MB (the prompt's 64 and SigLIP's 729 tokens): 1.9 GB at
# 640x640 (18,400 tokens), whatever the length. HunyuanVideo's VAE (`--only vae`) decodes a section 16 frames at a
# time (framewise): 2,319 B per frame in flight and pixel (+3 MB), 15 GB at 640x640 with 16 frames in flight,
# so the memory plan's smaller decode chunk tiles it spatially too (`set_decode_chunk`). The image stage is
# estimated as the decode's bytes. The history latents stay on the device: 16 channels x 4 bytes per 4 frames x
# 64 pixels = 0.25 B per output frame and pixel.
FRAMEPACK_MEMORY = MemoryConstants(
    denoise_bytes_per_token=101_042, denoise_base_bytes=82_500_000, forward_chunking_saving=0.0,
    decode_bytes_per_pixel=2_319, encode_bytes_per_pixel=2_319, encode_base_bytes=64_000_000,
    spatial_compression=8, temporal_compression=4, cfg_batch=1, section_tokens=section_tokens,
    kept_bytes_per_frame_pixel=16 * 4 / (4 * 64),
    measured="FramePack transformer blocks and HunyuanVideo VAE, bench/memory_constants_hunyuan.py on the CPU, "
             "2026-11-26 (image stage estimated)",
)


# ---- the layouts ----------------------------------------------------------------------------------------------
def _json(file: Path) -> dict:
    try:
        found = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def is_transformer_folder(path: Path) -> bool:
    """A FramePack transformer's repository: config.json at its root with the history embedder and the image
    projection that only FramePack's transformer has (its class is named either way: diffusers' or FramePack's)."""
    config = _json(path / "config.json")
    return bool(config.get("has_clean_x_embedder") and config.get("has_image_proj"))


def _children(path: Path) -> list[Path]:
    try:
        return sorted(child for child in path.iterdir() if child.is_dir() and not child.name.startswith("."))
    except OSError:
        return []


def is_combined_folder(path: Path) -> bool:
    """The docs' three repositories side by side in one folder (a FramePack transformer among its children)."""
    return not (path / "model_index.json").exists() and any(is_transformer_folder(child) for child in _children(path))


def _is_base(path: Path) -> bool:
    return _json(path / "model_index.json").get("_class_name") in BASE_CLASSES


def _is_siglip(path: Path) -> bool:
    return (_json(path / "image_encoder" / "config.json").get("model_type") == "siglip_vision_model"
            and (path / "feature_extractor").is_dir())


def parts(model: ModelInfo) -> dict[str, Path] | None:
    """{"transformer", "base", "siglip"}: the three repositories of a model in diffusers' documented layout, found
    beside its transformer folder (a missing one is None); None for a saved pipeline (one folder)."""
    if (model.path / "model_index.json").is_file():
        return None
    transformer = model.path if is_transformer_folder(model.path) else next(
        (child for child in _children(model.path) if is_transformer_folder(child)), model.path)
    beside = [child for child in _children(transformer.parent) if child != transformer]
    base = model.config_dir or next((child for child in beside if _is_base(child)), None)
    return {"transformer": transformer, "base": base, "siglip": next((child for child in beside if _is_siglip(child)),
                                                                     None)}


def variant(model: ModelInfo) -> str:
    """"f1" or "original", by name (nothing in the weights or configs says): "F1" as a word in the transformer
    folder's name, or the model's (FramePack_F1_I2V_HY_20250503, framepack-f1, …, as every published F1 is
    named); else the original FramePackI2V_HY."""
    found = parts(model)
    names = [model.name, model.path.name] + ([found["transformer"].name] if found else [])
    return "f1" if any(map(names_f1, names)) else "original"


def names_f1(name: str) -> bool:
    """Whether a folder or file name says F1 ("F1" as a word: FramePack_F1_I2V_HY_20250503, framepack-f1)."""
    return re.search(r"(?:^|[^a-z0-9])f1(?:[^a-z0-9]|$)", name.lower()) is not None


def sampling_type(model: ModelInfo) -> str:
    return VANILLA if variant(model) == "f1" else INVERTED


SPEC = FamilySpec(
    name="framepack",
    label="FramePack",
    class_names=("HunyuanVideoFramepackPipeline", "FramepackTransformer", "FramepackRepositories"),
    memory=FRAMEPACK_MEMORY,
    image=REQUIRED,
    prompt=True,
    last_image=True,  # the original (inverted sampling) only: `model_spec`, `check`
    size_multiple=16,  # the pipeline's check
    frame_step=4,  # the VAE packs 4 frames: 46 is refused naming 45 and 49
    exact_frames=True,
    dtype="bfloat16",
    native_frames=4 * SECTION_FRAMES + 1,  # FramePack's demo: 5 s at 30 fps are round(150 / 36) = 4 sections
    native_fps=30,
    steps_range=(4, 50),
    latent_rgb_factors=HUNYUAN_VIDEO_LATENT_RGB_FACTORS,
    controls=frozenset({"max_guidance_scale"}),
    control_help=(("max_guidance_scale", "FramePack's distilled guidance (its demo's \"Distilled CFG Scale\", 10 by "
                                         "default): how closely the video follows the prompt; the negative prompt "
                                         "is not used"),),
    lora_loader="HunyuanVideoFramepackPipeline",  # HunyuanVideoLoraLoaderMixin: HunyuanVideo's LoRA layouts
    section_frames=SECTION_FRAMES,
    duration_range=(1, 60),
    folder_layouts=(
        FolderLayout("framepack-transformer", "FramepackTransformer", is_transformer_folder),
        FolderLayout("framepack-repositories", "FramepackRepositories", is_combined_folder),
    ),
    # FramePackI2V_HY's transformer, HunyuanVideo's VAE, llava-llama-3-8b's text model, CLIP-L's and SigLIP
    # so400m's, counted on the meta device (2026-11-26; the 12.87B, 0.25B, 7.5B, 0.12B, 0.43B)
    reference_model=ReferenceModel(
        "framepack-f1",
        numel={"transformer": 12_874_314_816, "vae": 246_478_803, "text_encoder": 7_505_186_816,
               "text_encoder_2": 123_060_480, "image_encoder": 428_225_600},
        largest_block={"transformer": 339_831_296, "vae": 146_136_067, "text_encoder": 525_598_720,
                       "text_encoder_2": 85_054_464, "image_encoder": 411_466_608},
        largest_tensor=525_598_720,
        defaults={"num_frames": 4 * SECTION_FRAMES + 1, "fps": 30, "decode_chunk_size": 16},
    ),
)


# ---- what a model is ------------------------------------------------------------------------------------------
def complete_model(model: ModelInfo, catalog, **_options) -> ModelInfo:
    """A model in the documented layout gets its HunyuanVideo folder (text encoders, VAE) as `config_dir`; one
    line says which of the three repositories is missing, before anything loads."""
    found = parts(model)
    if found is None:
        return model
    place = found["transformer"].parent
    missing = [what for key, what in (("base", "hunyuanvideo-community/HunyuanVideo (its text encoders and VAE)"),
                                      ("siglip", "lllyasviel/flux_redux_bfl (its SigLIP image encoder)"))
               if found[key] is None]
    if missing:
        raise ModelNotFound(f"{model.name}: the FramePack transformer {found['transformer'].name} needs "
                            f"{' and '.join(missing)} beside it in {place}; {HOW_TO_GET}")
    return replace(model, config_dir=found["base"])


def model_spec(model: ModelInfo) -> FamilySpec:
    """The spec narrowed to one model: only the original FramePack (backward sampling) takes a last frame."""
    return replace(SPEC, last_image=variant(model) == "original")


def defaults(model: ModelInfo) -> dict:
    """FramePack's demo: 4 sections (145 frames, 4.8 s at its 30 fps), 25 steps, distilled guidance 10; 832x480
    (one of its 640-resolution buckets); the VAE's own temporal tile of 16 frames."""
    return {"num_frames": 4 * SECTION_FRAMES + 1, "fps": 30, "width": 832, "height": 480,
            "num_inference_steps": 25, "max_guidance_scale": 10.0, "min_guidance_scale": 0.0,
            "decode_chunk_size": 16}


def check(request, model: ModelInfo) -> list[str]:
    """F1 takes no last frame (the pipeline allows one with backward sampling only); a negative prompt is noted
    as unused."""
    if request.last_image and variant(model) == "f1":
        raise InvalidRequest("last_image", f"{model.name} is FramePack-F1, which samples forward in time and cannot "
                                           f"end on a last frame; use the original FramePack or leave it out")
    if request.negative_prompt.strip():
        return ["the negative prompt is not used: FramePack's guidance is distilled (true classifier-free guidance "
                "stays off, as in FramePack's demo)"]
    return []


def component_headers(model: ModelInfo) -> dict[str, list[dict]] | None:
    """The memory plan's parts of a model in the documented layout: HunyuanVideo's text encoders and VAE (not its
    text-to-video transformer), the FramePack transformer and SigLIP; None for a saved pipeline."""
    found = parts(model)
    if found is None or found["base"] is None:
        return None
    files = {name: paths for name, paths in component_files(found["base"]).items() if name != "transformer"}
    files["transformer"] = sorted(found["transformer"].glob("*.safetensors"))
    if found["siglip"] is not None:
        files["image_encoder"] = component_files(found["siglip"]).get("image_encoder", [])
    return {name: [weight_header(file) for file in paths] for name, paths in files.items()}


def lora_shapes(model: ModelInfo) -> dict[str, dict[str, list[int]]]:
    """The transformer's modules for judging LoRAs, where it is not the folder's `transformer/` (the documented
    layout keeps it in its own repository)."""
    found = parts(model)
    if found is None:
        return {}
    return {"transformer": component_shapes(found["transformer"]) or {}}


# ---- loading --------------------------------------------------------------------------------------------------
def llama_tokenizer(folder: Path):
    """The Llama-3 tokenizer as its tokenizer.json defines it (the module docstring says why)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(folder)


def load(model: ModelInfo, device: str, dtype):
    from diffusers import HunyuanVideoFramepackPipeline, HunyuanVideoFramepackTransformer3DModel

    found = parts(model)
    options = dict(local_files_only=True, dtype=dtype, use_safetensors=True)
    with loading(str(model.path)):
        if found is None:  # a saved pipeline
            pipe = HunyuanVideoFramepackPipeline.from_pretrained(
                model.path, tokenizer=llama_tokenizer(model.path / "tokenizer"), **options)
        else:
            from transformers import SiglipImageProcessor, SiglipVisionModel

            model = complete_model(model, ())
            transformer = HunyuanVideoFramepackTransformer3DModel.from_pretrained(found["transformer"], **options)
            # The base folder's model_index.json names HunyuanVideoPipeline; the parts passed here replace its
            # text-to-video transformer (never loaded) and add SigLIP (diffusers' docs load it the same way).
            pipe = HunyuanVideoFramepackPipeline.from_pretrained(
                model.config_dir, transformer=transformer, tokenizer=llama_tokenizer(model.config_dir / "tokenizer"),
                feature_extractor=SiglipImageProcessor.from_pretrained(found["siglip"], subfolder="feature_extractor"),
                image_encoder=SiglipVisionModel.from_pretrained(found["siglip"], subfolder="image_encoder",
                                                                local_files_only=True, dtype=dtype),
                **options)
    pipe.set_progress_bar_config(disable=True)
    pipe._video_gen_sampling = sampling_type(model)
    return pipe  # on the CPU; the engine places it on the device under the memory plan


# ---- running --------------------------------------------------------------------------------------------------
def pipeline_frames(frames: int) -> int:
    """What to ask the pipeline for so that it makes the fewest sections that hold `frames` (36 per section + 1):
    it counts sections as ceil(num_frames / 33)."""
    return PIPELINE_WINDOW * SPEC.sections(frames)


def encode_prompt(pipe, request) -> dict:
    """The prompt's Llama and CLIP embeddings, from the resident pipeline's cache when it was encoded before."""
    import torch

    device = pipe._execution_device
    key = ("framepack", request.prompt, str(device), str(pipe.text_encoder.dtype))

    def encode() -> dict:
        with torch.no_grad():
            embeds, pooled, mask = pipe.encode_prompt(prompt=request.prompt, device=device)
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled, "prompt_attention_mask": mask}

    return prompts.cached(pipe, key, encode)


def set_decode_chunk(vae, chunk_size: int) -> None:
    """The VAE decodes a section 16 frames at a time (diffusers' framewise decoding); a smaller decode chunk
    (the memory plan's) tiles it spatially too."""
    vae.use_tiling = chunk_size < 16


def run(pipe, request, image, job) -> np.ndarray:
    """The frames of `request` in one pipeline call of its own sections; `image` (already width x height) is the
    first frame."""
    import torch

    steps, sections = request.num_inference_steps, SPEC.sections(request.num_frames)
    total = steps * sections
    middle = LATENT_WINDOW // 2
    previews = pipe.transformer.config.in_channels == len(SPEC.latent_rgb_factors)  # the real 16 latent channels
    set_decode_chunk(pipe.vae, job.decode_chunk_size)

    # 1. The prompt's embeddings, once per prompt for this resident pipeline (the picture is encoded in the call)
    job.stage(ENCODING_IMAGE, "encoding the prompt and the picture")
    embeddings = encode_prompt(pipe, request)

    # 2. Progress per section: a pre-hook on the transformer (one call a step) says which section begins and
    # cancels within a step; the step callback reports the step and the section's latents for the preview
    calls = [0]

    def before_transformer(module, args, kwargs):
        if calls[0] % steps == 0:
            job.section = (calls[0] // steps + 1, sections)
            job.stage(DENOISING, f"section {job.section[0]} of {sections}: denoising {SECTION_FRAMES} frames")
        calls[0] += 1
        job.check_cancelled()

    def on_step_end(pipeline, index, timestep, tensors):
        done = (job.section[0] - 1) * steps + index + 1
        job.step(DENOISING, done, total, preview=(lambda: tensors["latents"][0, :, middle]) if previews else None)
        return {}

    # 3. Each decoded tile leaves the device at once: the decoded video the pipeline keeps and blends section by
    # section grows with the length, and lives in host memory (the module's docstring)
    hooks = [pipe.transformer.register_forward_pre_hook(before_transformer, with_kwargs=True),
             pipe.vae.decoder.register_forward_hook(lambda module, args, output: output.to("cpu"))]
    try:
        video = pipe(image=image, last_image=last_picture(request), height=request.height, width=request.width,
                     num_frames=pipeline_frames(request.num_frames), latent_window_size=LATENT_WINDOW,
                     num_inference_steps=steps, guidance_scale=request.max_guidance_scale, true_cfg_scale=1.0,
                     generator=job.generator, sampling_type=pipe._video_gen_sampling, output_type="pt",
                     callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"],
                     **embeddings).frames[0]
    finally:
        for hook in hooks:
            hook.remove()
        job.section = (0, 0)
        pipe.maybe_free_model_hooks()  # the pipeline skips it when a cancel leaves its call
    # 4. The frames asked for: the first F of the pipeline's 36 x sections + 1, as uint8 a chunk at a time (a
    # minute at 640x640 is 8.9 GB in float32, 2.2 GB in uint8)
    video = video[:request.num_frames]
    frames = np.empty((video.shape[0], video.shape[2], video.shape[3], 3), dtype=np.uint8)
    with torch.no_grad():
        for start in range(0, video.shape[0], 64):
            chunk = video[start:start + 64].float().permute(0, 2, 3, 1)
            # The same rounding as diffusers' numpy_to_pil, so PNG frames equal the pipeline's PIL output.
            frames[start:start + 64] = (chunk * 255).round().to(torch.uint8).numpy()
    return frames
