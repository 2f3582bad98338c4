"""LTX-2 (Lightricks): image to video with its own sound, through diffusers 0.42.1's LTX-2 pipelines.

- The first picture alone runs `LTX2ImageToVideoPipeline`; a last frame or keyframes run `LTX2ConditionPipeline`
  (one `LTX2VideoCondition` per picture). Both share the resident pipeline's modules (no copy).
- Every video has sound: the pipeline's `audio` (stereo, at the vocoder's `output_sampling_rate`: 24 kHz on
  LTX-2.0, 48 kHz on LTX-2.3; not `audio_sampling_rate`, the audio VAE's 16 kHz), a little shorter than the
  frames, is cut or padded to exactly their length and returned beside them as an `audio.Sound`.
- What the pipeline does not check, or checks only after loading, is checked first: frames 8k+1 (it silently
  makes 9 of 10), sizes multiples of 32, at least 2 steps (one step gives NaN: the scheduler's
  `shift_terminal`), and `max_sequence_length` a multiple of the connectors' learnable registers (128).
- Conditions sit on LTX-2's latent grid: a picture at latent index k > 0 is placed at frame 8(k-1)+1
  (`pipeline_ltx2_condition.py`, as Lightricks' own code does). So a keyframe goes to the nearest of frames 1, 9,
  17, ... n-8 (a note says where), and the last frame to the last grid point, frame n-8 (113 of 121): what
  diffusers' `index=-1` means; the 7 frames after it continue from it. (Placing it at frame n-1 would need
  overriding a private method of the pipeline; we keep diffusers' frames.)
- Guidance: the default call makes the CFG pair, a spatio-temporal guidance (STG) pass and a modality pass each
  step. LTX-2.0's blocks have no perturbed attention, so its STG pass recomputes the conditional prediction: STG
  is off there (the same frames within one level, one pass fewer). Guidance 1 turns every pass off (the video's
  and the sound's: `guidance_scale=1` alone leaves 3 passes). Distilled checkpoints (told by their names, as no
  config says so) run diffusers' 8 `DISTILLED_SIGMA_VALUES` at guidance 1. `use_cross_timestep` is the model's:
  False for LTX-2.0 (its transformer has no `cross_attn_mod`), True for LTX-2.3.
- Memory: the 12B Gemma 3 text encoder never sits on the device with the 19B transformer (`apart`: it comes in
  only to encode, with the transformer out; the offload plans do the same by their hooks), and each prompt's
  stacked hidden states are kept on the CPU (`prompts.cached`): a second job with the same prompt skips Gemma.
- Two stages (`upscale="2x"`, with `latent_upsampler/` in the folder or an `LTX2LatentUpsamplePipeline` folder):
  the video at half size, its latents upsampled 2x, then refined at full size over diffusers' 3
  `STAGE_2_DISTILLED_SIGMA_VALUES` without guidance, the sound's latents carried through (diffusers' LTX-2 docs).
- Single files (the official `ltx-2-19b-*.safetensors`, transformer-only files and GGUF) run with an installed
  LTX-2 folder of the same architecture (`_ltx2_files.py`).
- The model's own prompt enhancement (`model_enhancer="on"`, where the folder has `processor/`): its Gemma 3
  rewrites the prompt from the picture (`enhance_prompt`, seeded by the job's seed) once per job; the job's
  metadata keeps the original and the enhanced prompt.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..audio import Sound
from ..checkpoints import HOW_TO_GET, UPSAMPLER, ModelInfo, component_files, read_safetensors_header, weight_header
from ..errors import InvalidRequest, ModelNotFound
from ..events import DECODING, DENOISING, ENCODING_IMAGE
from . import _ltx2_files as files
from . import prompts
from .common import encode_apart, last_picture, latent_upsampler, loading
from .spec import REQUIRED, Download, FamilySpec, MemoryConstants, ReferenceModel, SingleFile

FRAME_STEP = 8  # the video VAE packs 8 frames into one latent frame: 8k + 1 frames
SIZE_MULTIPLE = 32  # its spatial compression
MIN_STEPS = 2
MAX_SEQUENCE_LENGTH = 1024  # the pipelines' default prompt length (Gemma's tokens, left-padded)
AUDIO_GUIDANCE = 7.0  # the pipelines' defaults for the sound (LTX-2's authors: higher than the video's 3)
MODALITY_GUIDANCE = 3.0
ENHANCE_MAX_TOKENS = 512  # diffusers' GEMMA3_PROMPT_ENHANCEMENT_CONFIG
UPSAMPLER_CLASSES = ("LTX2LatentUpsamplePipeline", "LTX2LatentUpsamplerModel")

# Measured by `python bench/memory_constants_ltx2.py` on the CPU (torch 2.13, LTX-2.0's full-width blocks with random
# weights, fp32 halved to bf16, the connectors run in bf16) on 2026-12-06; GPU calibration owed:
# - the transformer: 300,276 B per (CFG batch x video token) with `use_cross_timestep=False` (LTX-2.0's, what runs
#   here; every video token carries its own timestep in image to video) + 80.3 MB; 24,834 B per audio token (252
#   for 5 s: ~12 MB, folded into the base), plus the 1.16 GB of text states the pipeline holds while denoising;
# - the video VAE decode 89 B per (frame x output pixel); the picture's encode 182 B per output pixel;
# - the text path (the encoding stage): the connectors' 2,069,765 B per (batch x text token), 4.24 GB at 1024
#   tokens with CFG, more than Gemma's stacked states (1024 x 3840 x 49 x 2 B = 385 MB a prompt, 0.77 GB at peak);
# - the audio VAE and vocoder: 15.4 MB per second of sound, far below the video decode (not a peak of its own);
#   their weights (0.1 GB each) are components the plan counts like the others.
# So 121 frames at 768x512 with CFG (12,288 tokens) need ~4.96 GB for the transformer's activations.
LTX2_MEMORY = MemoryConstants(
    denoise_bytes_per_token=300_276, denoise_base_bytes=80_300_000 + 25_000_000 + 1_160_000_000,
    forward_chunking_saving=0.0, decode_bytes_per_pixel=89, encode_bytes_per_pixel=182,
    encode_base_bytes=2 * MAX_SEQUENCE_LENGTH * 2_069_765,
    measured="CPU-measured: LTX-2.0 full-width blocks, VAEs, vocoder and connectors, bench/memory_constants_ltx2.py "
             "on the CPU, 2026-12-06 (GPU calibration owed)",
    spatial_compression=32, temporal_compression=8, apart=("text_encoder",),
)

SPEC = FamilySpec(
    name="ltx2",
    label="LTX-2",
    class_names=("LTX2Pipeline", "LTX2ImageToVideoPipeline", "LTX2ConditionPipeline", files.CHECKPOINT_CLASS,
                 files.TRANSFORMER_CLASS),
    memory=LTX2_MEMORY,
    image=REQUIRED,
    prompt=True,
    last_image=True,
    size_multiple=SIZE_MULTIPLE,
    frame_step=FRAME_STEP,
    exact_frames=True,
    dtype="bfloat16",
    native_frames=121,
    native_fps=24,
    steps_range=(MIN_STEPS, 50),  # distilled: 8 steps; the full model: 30-40
    latent_rgb_factors=None,  # no published latent-to-RGB map for LTX-2's 128-channel VAE: progress, no preview
    controls=frozenset({"max_guidance_scale", "keyframes", "upscale", "model_enhancer"}),
    lora_loader="LTX2Pipeline",
    sound=True,
    downloads=(
        Download("ltx-2", "Lightricks/LTX-2",
                 "LTX-2 19B dev with sound, diffusers layout (transformer ~38 GB and Gemma 3 12B ~24 GB in bf16, the "
                 "x2 latent upsampler in latent_upsampler/): 121 frames at 24 fps, 30 steps; also the other parts "
                 "for the official single files and GGUF transformers"),
        Download("ltx-2-distilled", "Lightricks/LTX-2",
                 "LTX-2 19B distilled, the official single file ltx-2-19b-distilled.safetensors (~43 GB: transformer, "
                 "VAEs, vocoder; 8 steps at guidance 1), with ltx-2's Gemma 3 and configs",
                 files=("ltx-2-19b-distilled.safetensors",), folder="ltx-2"),
        Download("ltx-2-distilled-fp8", "Lightricks/LTX-2",
                 "LTX-2 19B distilled in fp8, ltx-2-19b-distilled-fp8.safetensors (~27 GB), with ltx-2's other parts",
                 files=("ltx-2-19b-distilled-fp8.safetensors",), folder="ltx-2"),
        # GGUF transformers (QuantStack's LTX-2 conversions; the file is chosen by --quant). Sizes estimated from
        # the bits per weight (Q4_K_M ~4.8 bits: ~11 GB for 19B), not read from the listings.
        Download("ltx-2-gguf", "QuantStack/LTX-2-GGUF",
                 "LTX-2 19B dev as one GGUF transformer (Q4_K_M ~11 GB), with ltx-2's other parts",
                 files=("*dev*{quant}.gguf",), folder="ltx-2"),
        Download("ltx-2-distilled-gguf", "QuantStack/LTX-2-GGUF",
                 "LTX-2 19B distilled as one GGUF transformer (Q4_K_M ~11 GB), with ltx-2's other parts",
                 files=("*distilled*{quant}.gguf",), folder="ltx-2"),
    ),
    single_files=(
        # Asked before LTX-Video's (25, 26): an LTX-2 file also has `patchify_proj` and, whole, `vae.` keys.
        SingleFile("ltx2", files.CHECKPOINT_CLASS, matches=files.is_checkpoint, priority=20),
        SingleFile("ltx2-transformer", files.TRANSFORMER_CLASS, matches=files.is_transformer, priority=21),
    ),
    part_classes=(("LTX2LatentUpsamplePipeline", UPSAMPLER),),
    # LTX-2.0's parts counted on the meta device from diffusers' classes with the converter's 2.0 configs, and
    # Gemma 3 12B (its tied output embedding once, as the checkpoints store it).
    reference_model=ReferenceModel(
        "ltx-2",
        numel={"transformer": 18_876_174_592, "text_encoder": 12_202_563_392, "connectors": 1_431_475_200,
               "vae": 1_222_479_857, "audio_vae": 53_248_402, "vocoder": 55_592_802},
        largest_block={"transformer": 386_074_624, "text_encoder": 12_202_563_392, "connectors": 722_534_400,
                       "vae": 694_098_881, "audio_vae": 31_915_138, "vocoder": 17_304_576},
        largest_tensor=1_006_878_720,
        defaults={"num_frames": 121, "fps": 24, "decode_chunk_size": 128},
    ),
)


# ---- what a model is and its defaults -------------------------------------------------------------------
def is_distilled(model: ModelInfo) -> bool:
    """Distilled checkpoints say so in their names (ltx-2-19b-distilled, rootonchair/LTX-2-19b-distilled): no
    config field of LTX-2's classes does."""
    return any("distilled" in name.lower() for name in (model.name, model.path.name))


def _folder(model: ModelInfo) -> Path | None:
    return Path(model.config_dir) if model.single_file else model.path


def defaults(model: ModelInfo) -> dict:
    """121 frames at 24 fps, 768x512 (the pipelines' defaults), with sound; the full model 30 steps at guidance 3,
    distilled ones 8 steps at guidance 1 (diffusers' LTX-2 docs)."""
    distilled = is_distilled(model)
    return {
        "num_frames": 121, "fps": 24, "width": 768, "height": 512,
        "num_inference_steps": 8 if distilled else 30,
        "max_guidance_scale": 1.0 if distilled else 3.0,
        "min_guidance_scale": 0.0,  # unused: the guidance is one number, max_guidance_scale
        "decode_chunk_size": 128,  # all frames at once; the memory plan lowers it (temporal tiles)
        "audio": "on",
    }


def sequence_length(registers: int | None) -> int:
    """The prompt's length in tokens: the pipelines' 1024, rounded up to a multiple of the connectors' learnable
    registers (LTX2ConnectorTransformer1d refuses other lengths: 'sequence length ... should be divisible by the
    number of learnable registers')."""
    if not registers:
        return MAX_SEQUENCE_LENGTH
    return -(-MAX_SEQUENCE_LENGTH // registers) * registers


def has_enhancer(model: ModelInfo) -> bool:
    """The model's own prompt enhancement needs a Gemma3Processor (`processor/`): Lightricks/LTX-2's folder has
    none, diffusers' LTX-2.3 folders have one."""
    folder = _folder(model)
    return folder is not None and (folder / "processor").is_dir()


def model_spec(model: ModelInfo) -> FamilySpec:
    """The spec the page shows for one model: prompt enhancement where its folder can, two stages where an
    upsampler is installed."""
    controls = set(SPEC.controls)
    if not has_enhancer(model):
        controls.discard("model_enhancer")
    if model.upsampler is None:
        controls.discard("upscale")
    return replace(SPEC, controls=frozenset(controls))


# ---- checks -------------------------------------------------------------------------------------------------
def check(request, model: ModelInfo) -> list[str]:
    """LTX-2's rules beyond the spec's (8k+1 frames, sizes of 32): steps, two stages, prompt enhancement, where the
    last frame and the keyframes land. Returns notes for the user."""
    steps = request.num_inference_steps
    if steps is not None and steps < MIN_STEPS:
        raise InvalidRequest("num_inference_steps", f"must be at least {MIN_STEPS} for LTX-2 (its scheduler's "
                                                    f"terminal stretch makes one step NaN), got {steps}")
    if request.model_enhancer == "on" and not has_enhancer(model):
        raise InvalidRequest("model_enhancer", f"{model.name} has no processor/ for its own prompt enhancement "
                                               f"(LTX-2.3 folders have one); use off")
    if request.upscale == "2x":
        if model.upsampler is None:
            raise InvalidRequest("upscale", "2x needs LTX-2's latent upsampler (latent_upsampler/ in the model's "
                                            "folder, as `video-gen models download ltx-2` brings it); use off")
        if request.last_image or request.keyframes:
            raise InvalidRequest("upscale", "2x runs the first picture alone; leave out the last frame and the "
                                            "keyframes, or use off")
        for name in ("width", "height"):
            value = getattr(request, name)
            if value % (2 * SIZE_MULTIPLE):
                raise InvalidRequest(name, f"must be a multiple of 64 with upscale 2x (the first pass runs at half "
                                           f"size, a multiple of 32), got {value}; try "
                                           f"{max(64, round(value / 64) * 64)}")
    notes = []
    if request.last_image and request.num_frames:
        notes.append(last_frame_note(request, model))
    if request.keyframes:
        notes += keyframe_notes(request, model)
    return notes


def _one_generation(request, model: ModelInfo):
    """The request's length plan on `model`, and whether it is one generation of the model (one segment, no
    interpolation, no loop): the only video whose frames the last frame and keyframes are placed on exactly."""
    from ..planner import plan_length

    own = defaults(model)
    plan = plan_length(request.num_frames, request.fps, native_frames=own["num_frames"], native_fps=own["fps"],
                       interpolation=request.interpolation, loop=request.loop, frame_step=FRAME_STEP)
    return plan, plan.segments == 1 and plan.factor == 1 and plan.loop_frames == request.num_frames


def last_frame_note(request, model: ModelInfo) -> str:
    """Where the last frame lands: the last point of LTX-2's latent grid, 7 of the model's frames before the end."""
    why = "LTX-2's conditions sit on frames 8k+1; diffusers' last latent frame"
    if _one_generation(request, model)[1]:
        return f"the last frame is placed at frame {request.num_frames - FRAME_STEP} of {request.num_frames} ({why})"
    return f"the last frame is placed {FRAME_STEP - 1} of the model's frames before the end ({why})"


def keyframe_index(frame: int, num_frames: int) -> int:
    """The latent index a keyframe asked for at `frame` takes: the nearest grid frame 8(k-1)+1, 1 <= k <= last."""
    last = (num_frames - 1) // FRAME_STEP
    return min(last, max(1, round((frame - 1) / FRAME_STEP) + 1))


def keyframe_frame(index: int) -> int:
    return (index - 1) * FRAME_STEP + 1


def keyframe_notes(request, model: ModelInfo) -> list[str]:
    from ..images import check_image_file

    frames = request.num_frames
    plan, one = _one_generation(request, model)
    if not one:
        raise InvalidRequest("keyframes", f"need a video of one generation (at most {defaults(model)['num_frames']} "
                                          f"frames, no "
                                          f"interpolation, no loop); this one is {plan.describe()}")
    taken = {(frames - 1) // FRAME_STEP: "the last frame"} if request.last_image else {}
    notes = []
    for number, keyframe in enumerate(request.keyframes, 1):
        name = Path(keyframe.image).name
        if keyframe.frame > frames - 1:
            raise InvalidRequest("keyframes", f"keyframe {number} ({name}) at frame {keyframe.frame} is past the last "
                                              f"frame ({frames - 1}) of a {frames}-frame video")
        try:
            check_image_file(keyframe.image)
        except InvalidRequest as error:
            raise InvalidRequest("keyframes", f"keyframe {number} ({name}): {str(error).partition(': ')[2]}") from None
        index = keyframe_index(keyframe.frame, frames)
        placed = keyframe_frame(index)
        if index in taken:
            raise InvalidRequest("keyframes", f"keyframe {number} ({name}) lands on frame {placed}, which "
                                              f"{taken[index]} already holds (LTX-2's conditions sit on frames 8k+1); "
                                              f"move it {FRAME_STEP} frames or more away")
        taken[index] = f"keyframe {number}"
        moved = "" if placed == keyframe.frame else f" (asked for {keyframe.frame}; LTX-2's grid is frames 8k+1)"
        notes.append(f"keyframe {number} ({name}) at frame {placed}{moved}")
    return notes


# ---- finding the parts ------------------------------------------------------------------------------------------
def complete_model(model: ModelInfo, catalog, *, models_dir: Path, **_options) -> ModelInfo:
    """A single file gets the installed LTX-2 folder of its architecture (Gemma 3, configs, the parts it lacks);
    every model gets the latent upsampler found for it."""
    if model.single_file:
        from .single_file import pair_with_folder

        folder = pair_with_folder(model, catalog, family=SPEC.name, shape_of=files.transformer_shape,
                                  describe=files.describe_shape, download_hint="video-gen models download ltx-2")
        model = replace(model, config_dir=folder, component="transformer")
    return replace(model, upsampler=find_upsampler(model, Path(models_dir), catalog))


def find_upsampler(model: ModelInfo, models_dir: Path, catalog=()) -> Path | None:
    """The model folder's own `latent_upsampler/` (Lightricks/LTX-2 keeps it there), else an installed
    `LTX2LatentUpsamplePipeline` folder (or a folder holding an `LTX2LatentUpsamplerModel`)."""
    folder = _folder(model)
    candidates = [folder] if folder is not None else []
    candidates += [info.path for info in catalog if info.role == UPSAMPLER and info.family == SPEC.name]
    if models_dir.is_dir():
        candidates += sorted(child for child in models_dir.iterdir() if child.is_dir())
    for candidate in dict.fromkeys(candidates):
        found = upsampler_weights(candidate)
        if found is not None:
            return found
    return None


def upsampler_weights(folder: Path) -> Path | None:
    """The folder to load `LTX2LatentUpsamplerModel` from, if `folder` holds one."""
    for place in (folder / "latent_upsampler", folder):
        try:
            config = json.loads((place / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(config, dict) and config.get("_class_name") in UPSAMPLER_CLASSES:
            return place
    return None


def component_headers(model: ModelInfo) -> dict[str, list[dict]] | None:
    """For the memory plan: an official single file's tensors by component (transformer, VAEs, vocoder), the rest
    from its folder. None for a folder, which the estimator reads its own way."""
    if not model.single_file or model.config_dir is None:
        return None
    folder = Path(model.config_dir)
    headers = {component: [weight_header(file) for file in paths]
               for component, paths in component_files(folder).items()}
    if model.class_name == files.CHECKPOINT_CLASS:
        headers.update(files.split_header(read_safetensors_header(model.path)))
    else:
        headers["transformer"] = [weight_header(model.path)]
    return headers


# ---- loading ----------------------------------------------------------------------------------------------------
def load(model: ModelInfo, device: str, dtype):
    """`LTX2ConditionPipeline` over the model's parts, on the CPU (the engine places it under the memory plan)."""
    from diffusers import LTX2ConditionPipeline

    folder = _folder(model)
    if folder is None:
        raise ModelNotFound(f"{model.path}: no LTX-2 folder paired with this file ({HOW_TO_GET})")
    parts = {}
    with loading(str(model.path)):
        if model.single_file:
            from .single_file import load_transformer

            parts["transformer"] = load_transformer(model.path, folder, "transformer", dtype)
            if model.class_name == files.CHECKPOINT_CLASS:
                from diffusers import AutoencoderKLLTX2Video

                parts["vae"] = AutoencoderKLLTX2Video.from_single_file(
                    str(model.path), config=str(folder), subfolder="vae", local_files_only=True, torch_dtype=dtype)
            parts.update(files.file_parts(model.path, folder, dtype))
        pipe = LTX2ConditionPipeline.from_pretrained(folder, local_files_only=True, dtype=dtype, use_safetensors=True,
                                                     **parts)
    pipe.set_progress_bar_config(disable=True)
    pipe._video_gen_upsampler = model.upsampler  # loaded on the first job that asks for two stages
    pipe._video_gen_distilled = is_distilled(model)
    return pipe


def upsample_pipeline(pipe, job):
    """The resident pipeline's `LTX2LatentUpsamplePipeline`, sharing its VAE; the upsampler loaded once."""
    from diffusers import LTX2LatentUpsamplePipeline
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    return latent_upsampler(pipe, job, LTX2LatentUpsamplePipeline, LTX2LatentUpsamplerModel,
                            f"no LTX-2 latent upsampler is installed for two-stage output ({HOW_TO_GET})")


# ---- running ----------------------------------------------------------------------------------------------------
def call_options(pipe, request) -> dict:
    """The guidance passes and the cross-timestep mode of this model (see the module's docstring)."""
    config = pipe.transformer.config
    options = {"use_cross_timestep": bool(config.get("cross_attn_mod", False))}
    if request.max_guidance_scale <= 1.0:  # every pass off: one transformer call a step
        return {**options, "guidance_scale": 1.0, "audio_guidance_scale": 1.0, "stg_scale": 0.0,
                "audio_stg_scale": 0.0, "modality_scale": 1.0, "audio_modality_scale": 1.0}
    options.update(guidance_scale=request.max_guidance_scale, audio_guidance_scale=AUDIO_GUIDANCE,
                   modality_scale=MODALITY_GUIDANCE, audio_modality_scale=MODALITY_GUIDANCE)
    if not config.get("perturbed_attn", False):  # LTX-2.0: STG would recompute the conditional prediction
        options.update(stg_scale=0.0, audio_stg_scale=0.0)
    return options


def schedule(pipe, request) -> dict:
    """A distilled model's own sigmas when it runs their number of steps; the scheduler's otherwise."""
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    steps = request.num_inference_steps
    if getattr(pipe, "_video_gen_distilled", False) and steps == len(DISTILLED_SIGMA_VALUES):
        return {"num_inference_steps": steps, "sigmas": list(DISTILLED_SIGMA_VALUES)}
    return {"num_inference_steps": steps}


def prompt_embeddings(pipe, prompt: str, negative_prompt: str, guidance: bool, job) -> dict:
    """The prompt's stacked Gemma 3 states (and the negative prompt's, with guidance), cached per prompt on the
    CPU (385 MB each at 1024 tokens in bf16), encoded with Gemma on the device apart from the transformer."""
    import torch

    device = pipe._execution_device
    length = sequence_length(pipe.connectors.config.get("video_connector_num_learnable_registers"))
    key = ("ltx2", prompt, negative_prompt, guidance, length, str(pipe.text_encoder.dtype))

    def encode():
        with torch.no_grad(), encode_apart(pipe, job.plan, "text_encoder"):
            encoded = pipe.encode_prompt(prompt=prompt, negative_prompt=negative_prompt or None,
                                         do_classifier_free_guidance=guidance, max_sequence_length=length,
                                         device=pipe._execution_device)
        return tuple(None if tensor is None else tensor.to("cpu") for tensor in encoded)

    embeds, mask, negative, negative_mask = (None if tensor is None else tensor.to(device)
                                             for tensor in prompts.cached(pipe, key, encode))
    return {"prompt_embeds": embeds, "prompt_attention_mask": mask, "negative_prompt_embeds": negative,
            "negative_prompt_attention_mask": negative_mask, "max_sequence_length": length}


def enhanced_prompt(pipe, request, image, job) -> str:
    """The prompt rewritten by the model's own Gemma 3 from the picture (once per job: a long video's segments
    share it), recorded in the job's info with the original."""
    import torch
    from diffusers.pipelines.ltx2.utils import I2V_DEFAULT_SYSTEM_PROMPT

    done = job.info.get("prompt_enhancement")
    if done is not None:
        return done["enhanced"]
    job.stage(ENCODING_IMAGE, "enhancing the prompt with the model's Gemma 3")
    with torch.no_grad(), encode_apart(pipe, job.plan, "text_encoder"):
        enhanced = pipe.enhance_prompt(prompt=request.prompt, system_prompt=I2V_DEFAULT_SYSTEM_PROMPT, image=image,
                                       max_new_tokens=ENHANCE_MAX_TOKENS, generator=job.generator,
                                       device=pipe._execution_device)[0]
    job.info["prompt_enhancement"] = {"by": "the model's own Gemma 3 (LTX-2 enhance_prompt)",
                                      "original": request.prompt, "enhanced": enhanced}
    return enhanced


def conditions_for(image, last, keyframes, num_frames: int) -> list:
    """One `LTX2VideoCondition` per picture: the first at latent 0, keyframes at theirs, the last at the last."""
    from diffusers.pipelines.ltx2 import LTX2VideoCondition

    conditions = [LTX2VideoCondition(frames=image, index=0)]
    conditions += [LTX2VideoCondition(frames=picture, index=keyframe_index(frame, num_frames))
                   for picture, frame in keyframes]
    if last is not None:
        conditions.append(LTX2VideoCondition(frames=last, index=-1))
    return conditions


def image_pipeline(pipe, **changes):
    """`LTX2ImageToVideoPipeline` over the resident pipeline's modules (the same objects, not copies; not
    `from_pipe`, which casts every module to its `dtype`), with `changes` (another scheduler) over them."""
    import inspect

    from diffusers import LTX2ImageToVideoPipeline

    takes = inspect.signature(LTX2ImageToVideoPipeline.__init__).parameters
    runner = LTX2ImageToVideoPipeline(**{name: module for name, module in {**pipe.components, **changes}.items()
                                         if name in takes})
    runner.set_progress_bar_config(disable=True)
    return runner


def run(pipe, request, image, job) -> tuple[np.ndarray, Sound]:
    """The frames of `request` from the prepared `image` (already width x height), and their sound."""
    from ..images import fit_to_size, open_image

    # 1. The prompt: the model's own enhancement (once per job), then Gemma 3 once per prompt (cached)
    prompt = enhanced_prompt(pipe, request, image, job) if request.model_enhancer == "on" else request.prompt
    options = call_options(pipe, request)
    guidance = options["guidance_scale"] > 1 or options["audio_guidance_scale"] > 1  # do_classifier_free_guidance
    job.stage(ENCODING_IMAGE, "encoding the prompt and the pictures")
    common = dict(num_frames=request.num_frames, frame_rate=request.fps, generator=job.generator, output_type="np",
                  **options, **prompt_embeddings(pipe, prompt, request.negative_prompt, guidance, job))
    last = last_picture(request)
    keyframes = [(fit_to_size(open_image(keyframe.image), request.width, request.height, request.resize_mode),
                  keyframe.frame) for keyframe in request.keyframes]
    steps = schedule(pipe, request)

    entered = pipe.transformer.register_forward_pre_hook(lambda module, args: job.enter(DENOISING))
    decoding = pipe.vae.decoder.register_forward_pre_hook(lambda module, args: job.stage(DECODING))
    _decode_tiling(pipe.vae, job.decode_chunk_size, request.num_frames)
    try:
        if last is not None or keyframes:
            # 2. Denoise and decode with the pictures on the latent grid
            out = pipe(conditions=conditions_for(image, last, keyframes, request.num_frames), width=request.width,
                       height=request.height, callback_on_step_end=_on_step_end(job, steps), **steps, **common)
        else:
            # The same modules, not copies (not `from_pipe`, which casts every module to its `dtype`)
            runner = image_pipeline(pipe)
            if request.upscale == "2x":
                out = _two_stages(pipe, runner, request, image, job, steps, common)
            else:
                # 2. Denoise and decode: the first picture only
                out = runner(image=image, width=request.width, height=request.height,
                             callback_on_step_end=_on_step_end(job, steps), **steps, **common)
    finally:
        entered.remove()
        decoding.remove()
        pipe.maybe_free_model_hooks()
    frames = _uint8(out.frames[0])
    return frames, Sound.from_model(out.audio, pipe.vocoder.config.output_sampling_rate, len(frames), request.fps)


def _two_stages(pipe, runner, request, image, job, steps, common):
    """Half size, the latents upsampled 2x, refined at full size without guidance (diffusers' LTX-2 docs)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    half = dict(width=request.width // 2, height=request.height // 2)
    job.stage(DENOISING, "stage 1 of 2: denoising at half size")
    video_latents, audio_latents = runner(image=image, **half, callback_on_step_end=_on_step_end(job, steps),
                                          return_dict=False, **steps, **{**common, "output_type": "latent"})
    upsampler = upsample_pipeline(pipe, job)
    job.stage(DENOISING, "stage 2 of 2: upsampling the latents 2x and refining")
    latents = upsampler(latents=video_latents, output_type="latent", return_dict=False)[0]
    if job.plan.offload != "none":  # offloaded plans keep only the running part on the device
        upsampler.latent_upsampler.to("cpu")
    # The stage-2 sigmas as they are: no dynamic shift, no terminal stretch
    refine_scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, use_dynamic_shifting=False,
                                                                   shift_terminal=None)
    refine = image_pipeline(pipe, scheduler=refine_scheduler)
    sigmas = list(STAGE_2_DISTILLED_SIGMA_VALUES)
    unguided = dict(guidance_scale=1.0, audio_guidance_scale=1.0, stg_scale=0.0, audio_stg_scale=0.0,
                    modality_scale=1.0, audio_modality_scale=1.0)
    refine_steps = {"num_inference_steps": len(sigmas)}
    return refine(image=image, latents=latents, audio_latents=audio_latents, width=request.width,
                  height=request.height, sigmas=sigmas, noise_scale=sigmas[0],
                  callback_on_step_end=_on_step_end(job, refine_steps), **refine_steps, **{**common, **unguided})


def _on_step_end(job, steps: dict):
    """Progress and cancel at every step (no preview: no latent-to-RGB map is known for LTX-2)."""
    total = steps["num_inference_steps"]

    def on_step_end(pipeline, index, timestep, tensors):
        job.step(DENOISING, index + 1, total)
        return tensors

    return on_step_end


def _decode_tiling(vae, chunk_size: int, num_frames: int) -> None:
    """Decode all frames at once when the memory plan's chunk holds them; else in temporal tiles of about
    `chunk_size` frames (and spatial tiles), diffusers' own LTX-2 VAE tiling."""
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
