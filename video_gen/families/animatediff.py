"""AnimateDiff: a Stable Diffusion 1.5 base plus a motion adapter, prompt-driven (`AnimateDiffPipeline`).

The base is a diffusers folder or a single-file `.safetensors` checkpoint (the way community models are
shared); the adapter is a diffusers folder or AnimateDiff's own single file (`MotionAdapter.from_single_file`).
Single files load without the network: the configs come from video_gen/configs/sd15 (or an installed SD1.5
folder of the same widths, see `sd15_config_dir`) and the CLIP vocabulary from the `openai-clip`
package. With a picture, the picture drives the result: `AnimateDiffVideoToVideoPipeline` over the picture
repeated for every frame, denoised from `1 - image_strength` of the way (1.0 would keep it unchanged).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import InvalidRequest, ModelNotFound
from ..events import DENOISING, ENCODING_IMAGE
from ..checkpoints import (HOW_TO_GET, MOTION_ADAPTER, PICKLE_REFUSED, PICKLE_SUFFIXES, ModelInfo, cache_dir,
                           component_shapes, meta_shapes, pickle_state_dict, read_safetensors_header)
from .common import fp16_variant, loading
from .spec import OPTIONAL, SD_LATENT_RGB_FACTORS, SVD_MEMORY, Download, FamilySpec, SingleFile

# The default scheduler: Euler with trailing timestep spacing and linear betas, the setting the
# AnimateDiff adapters were trained with (diffusers' AnimateDiff docs, AnimateDiff-Lightning model card).
# DDIM with the same betas is AnimateDiff's original sampler; LCM is for AnimateLCM-style adapters.
SCHEDULERS = ("euler", "ddim", "lcm")


def _is_sd15_checkpoint(keys) -> bool:
    """An SD1.5 checkpoint in the original (LDM) layout, told from SD2's OpenCLIP text encoder and SDXL's."""
    return (any(key.startswith("model.diffusion_model.input_blocks.") for key in keys)
            and not any(key.startswith(("cond_stage_model.model.", "conditioner.embedders.")) for key in keys))


SPEC = FamilySpec(
    name="animatediff",
    label="AnimateDiff",
    # An SD1.5 base (a diffusers folder or a single-file checkpoint) plus a motion adapter.
    class_names=("AnimateDiffPipeline", "StableDiffusionPipeline", "StableDiffusionCheckpoint"),
    image=OPTIONAL,
    prompt=True,
    prompt_style="tags",  # SD1.5 checkpoints are prompted with comma-separated tags
    schedulers=SCHEDULERS,
    native_frames=16,  # what the v1.5 adapters were trained on
    native_fps=8,
    steps_range=(4, 50),  # AnimateLCM runs 4-8 steps
    latent_rgb_factors=SD_LATENT_RGB_FACTORS,
    # Estimated: SVD's UNet constants (both are SD1.5-width UNets with temporal layers); not yet measured.
    memory=replace(SVD_MEMORY, measured="estimated: SVD-XT's constants, not measured for AnimateDiff"),
    controls=frozenset({"image_strength"}),
    # SD1.5 LoRAs (UNet, text encoder) and AnimateDiff motion LoRAs, through diffusers' load_lora_weights.
    lora_loader="AnimateDiffPipeline",
    downloads=(
        Download("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5",
                 "Stable Diffusion 1.5 base for AnimateDiff (needs a motion adapter)"),
        Download("animatediff-v1-5-3", "guoyww/animatediff-motion-adapter-v1-5-3",
                 "AnimateDiff v3 motion adapter for SD1.5 bases"),
    ),
    single_files=(
        SingleFile("sd15", "StableDiffusionCheckpoint", matches=_is_sd15_checkpoint, priority=30),
        SingleFile("motion-adapter", "MotionAdapter", role=MOTION_ADAPTER, priority=40,
                   matches=lambda keys: any("motion_modules." in key for key in keys)),
    ),
)


def defaults(model: ModelInfo) -> dict:
    """AnimateDiff's settings: 16 frames (what the v1.5 adapters were trained on) at 8 fps, 512x512."""
    lcm = _is_lcm(model)
    return {
        "num_frames": 16,
        "fps": 8,
        "width": 512,
        "height": 512,
        # AnimateLCM's model card: 4-8 steps at guidance 1-2; otherwise the diffusers docs' 25 at 7.5.
        "num_inference_steps": 6 if lcm else 25,
        "max_guidance_scale": 1.5 if lcm else 7.5,
        "min_guidance_scale": 0.0,  # unused here: the guidance is one number, max_guidance_scale
        "decode_chunk_size": 16,
        "scheduler": "lcm" if lcm else "euler",
        "image_strength": 0.5,
    }


def lora_defaults(model: ModelInfo, loras) -> dict:
    """An LCM LoRA (AnimateLCM's, latent-consistency's lcm-lora-sdv1-5) sets what `defaults` gives an LCM
    adapter: its model card's 4-8 steps at guidance 1-2, with the LCM scheduler."""
    if any(lora.info.distill == "lcm" for lora in loras):
        return {"num_inference_steps": 6, "max_guidance_scale": 1.5, "scheduler": "lcm"}
    return {}


def lora_shapes(model: ModelInfo) -> dict[str, dict[str, list[int]]]:
    """What the model has beyond its base's folder, for judging LoRAs (loras.py): AnimateDiff runs the base's UNet
    with the motion adapter's modules added (the same names in `UNetMotionModel`), which motion LoRAs change."""
    adapter = model.motion_adapter
    if adapter is None:
        return {}
    if adapter.is_dir():
        return {"unet": component_shapes(adapter) or meta_shapes(adapter)}
    return {"unet": meta_shapes(motion_adapter_config_dir(adapter))}


def complete_model(model: ModelInfo, catalog, *, motion_adapter: str | None, models_dir: Path,
                   allow_pickle: bool, inspect, **_options) -> ModelInfo:
    """Give a resolved base the motion adapter it runs with (`motion_adapter`, else the base's own, else the
    first installed by name) and, for a single file, the configs it is built from, before anything loads.
    `inspect(path)` is discovery's reading of a folder or file given by path."""
    model = replace(model, motion_adapter=pick_motion_adapter(model, motion_adapter, catalog, models_dir, allow_pickle,
                                                              inspect))
    if model.class_name == "StableDiffusionCheckpoint":
        model = replace(model, config_dir=sd15_config_dir(model.path, catalog))
    return model


# ---- what goes with a base: its motion adapter, and the configs of a single file --------------------
def pick_motion_adapter(base: ModelInfo, requested: str | None, everything: list[ModelInfo], models_dir: Path,
                         allow_pickle: bool, inspect) -> Path:
    adapters = [info for info in everything if info.role == MOTION_ADAPTER]
    if requested:
        match = next((info for info in adapters if info.name == requested), None)
        if match is not None:
            return match.path
        path = Path(requested).expanduser()
        if not path.exists() and (models_dir / requested).exists():
            path = models_dir / requested
        if path.is_dir() and (path / "config.json").is_file() and not (path / "model_index.json").is_file():
            if inspect(path).role == MOTION_ADAPTER:
                return path.resolve()
        if path.is_file():
            if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
                raise ModelNotFound(f"{path} " + PICKLE_REFUSED.format(suffix=path.suffix))
            info = inspect(path)
            if info.role == MOTION_ADAPTER:
                return path.resolve()
            raise ModelNotFound(f"{path} is not a motion adapter (it holds {info.class_name})")
        names = ", ".join(info.name for info in adapters) or "none"
        raise ModelNotFound(f"motion adapter {requested!r} is not installed (installed: {names}); {HOW_TO_GET}")
    if base.motion_adapter is not None:
        return base.motion_adapter  # an AnimateDiffPipeline folder brings its own
    if adapters:
        return adapters[0].path  # the first by place (models folder first), then by name
    raise ModelNotFound(
        f"{base.name} is a Stable Diffusion 1.5 base: AnimateDiff also needs a motion adapter and none is "
        f"installed; get one with `video-gen models download animatediff-v1-5-3` ({HOW_TO_GET})"
    )


SHIPPED_SD15_CONFIG = Path(__file__).parent.parent / "configs" / "sd15"


def sd15_config_dir(checkpoint: Path, everything: list[ModelInfo] = ()) -> Path:
    """The configs that fit a single-file SD1.5 checkpoint, found offline.

    diffusers' single-file loader needs the diffusers configs of each part and would fetch them from the
    hub; video-gen ships SD1.5's (video_gen/configs/sd15) and checks that the checkpoint's tensor shapes
    agree with them. A checkpoint of other widths (a distilled or toy model) takes the configs of an
    installed SD1.5 diffusers folder whose widths agree instead.
    """
    widths = _sd15_widths_from_checkpoint(checkpoint)
    candidates = [SHIPPED_SD15_CONFIG] + [
        info.path for info in everything
        if info.path.is_dir() and info.class_name in ("StableDiffusionPipeline", "AnimateDiffPipeline")
    ]
    for candidate in candidates:
        if widths is None or _sd15_widths_from_configs(candidate) == widths:
            return candidate
    raise ModelNotFound(
        f"{checkpoint} has the layout of an SD1.5 checkpoint but not its sizes (UNet, text encoder, VAE widths "
        f"{widths}); install a diffusers folder of the same architecture next to it ({HOW_TO_GET})"
    )


def _sd15_widths_from_checkpoint(checkpoint: Path) -> tuple | None:
    names = ("model.diffusion_model.input_blocks.0.0.weight",
             "cond_stage_model.transformer.text_model.final_layer_norm.weight", "first_stage_model.encoder.conv_in.weight")
    if checkpoint.suffix.lower() != ".safetensors":  # reached only with --allow-pickle: read with weights_only
        state = pickle_state_dict(checkpoint)
        if not all(name in state for name in names):
            return None
        return tuple(state[name].shape[0] for name in names)
    header = read_safetensors_header(checkpoint)
    if not all(name in header for name in names):
        return None
    return tuple(header[name]["shape"][0] for name in names)


def _sd15_widths_from_configs(folder: Path) -> tuple | None:
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        text = json.loads((folder / "text_encoder" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        return (unet["block_out_channels"][0], text["hidden_size"], vae["block_out_channels"][0])
    except (OSError, json.JSONDecodeError, KeyError, IndexError, TypeError):
        return None


def check(request, model: ModelInfo) -> None:
    """Beyond the spec's checks (scheduler, prompt): the picture's strength must leave a step to denoise."""
    if request.image:
        check_image_strength(request)


def denoise_strength(request) -> float:
    """How far from the picture the video-to-video pipeline starts: 1 - image_strength, rounded so that
    float error does not lose a step (1 - 0.9 is 0.0999…, and diffusers takes int(steps x strength))."""
    return round(1 - request.image_strength, 6)


def check_image_strength(request) -> None:
    denoised_steps = int(request.num_inference_steps * denoise_strength(request))
    if denoised_steps < 1:
        allowed = 1 - 1 / request.num_inference_steps
        raise InvalidRequest(
            "image_strength", f"{request.image_strength} leaves no denoising step out of "
            f"{request.num_inference_steps}; use at most {allowed:.2f} or more steps"
        )


def load(model: ModelInfo, device: str, dtype):
    from diffusers import AnimateDiffPipeline

    adapter = load_motion_adapter(model.motion_adapter, dtype, model.allow_pickle)
    with loading(str(model.path)):
        if model.single_file:
            pipe = _load_single_file(model, adapter, dtype)
        else:
            safetensors = any(model.path.rglob("*.safetensors"))
            pipe = AnimateDiffPipeline.from_pretrained(
                model.path, motion_adapter=adapter, local_files_only=True, dtype=dtype,
                variant=fp16_variant(model.path / "unet", dtype),
                use_safetensors=safetensors or not model.allow_pickle,
            )
    pipe.set_progress_bar_config(disable=True)
    return pipe  # on the CPU; the engine places it on the device under the memory plan


def run(pipe, request, image, job) -> np.ndarray:
    """Generate the frames of `request`; `image` (already width x height) drives them when given."""
    from diffusers import AnimateDiffVideoToVideoPipeline

    middle = request.num_frames // 2
    steps = request.num_inference_steps
    pipe.scheduler = make_scheduler(request.scheduler, pipe.scheduler.config)
    common = dict(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt or None,
        num_inference_steps=steps,
        guidance_scale=request.max_guidance_scale,
        generator=job.generator,
        decode_chunk_size=job.decode_chunk_size,  # the memory plan's: lowered after out-of-memory
        output_type="np",
    )

    def on_step_end(pipeline, index, timestep, tensors):
        job.step(DENOISING, index + 1, total, preview=lambda: tensors["latents"][0, :, middle])
        return tensors

    try:
        if image is None:
            total = steps
            job.stage(DENOISING)
            frames = pipe(num_frames=request.num_frames, height=request.height, width=request.width,
                          callback_on_step_end=on_step_end, **common).frames[0]
        else:
            # 1. Encode the picture, repeated for every frame, and denoise from part of the way
            job.stage(ENCODING_IMAGE, "encoding image")
            strength = denoise_strength(request)
            total = int(steps * strength)
            video_pipe = AnimateDiffVideoToVideoPipeline.from_pipe(pipe)  # shares every module: no copy
            video_pipe.set_progress_bar_config(disable=True)
            frames = video_pipe(video=[image] * request.num_frames, strength=strength, height=request.height,
                                width=request.width, callback_on_step_end=on_step_end, **common).frames[0]
        frames = np.asarray(frames)
        # The same rounding as diffusers' numpy_to_pil, so PNG frames equal the pipeline's PIL output.
        return (frames * 255).round().astype(np.uint8)
    finally:
        pipe.maybe_free_model_hooks()


def make_scheduler(name: str | None, config):
    """The scheduler called `name`, made from the model's own scheduler config (its betas and timesteps)."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, LCMScheduler

    name = name or "euler"
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config, timestep_spacing="trailing", beta_schedule="linear")
    if name == "ddim":
        return DDIMScheduler.from_config(config, beta_schedule="linear", clip_sample=False,
                                         timestep_spacing="linspace", steps_offset=1)
    if name == "lcm":
        return LCMScheduler.from_config(config, beta_schedule="linear")
    raise InvalidRequest("scheduler", f"must be one of {', '.join(SCHEDULERS)}, got {name!r}")


# ---- loading the parts offline -----------------------------------------------------------------
def load_motion_adapter(path: Path | None, dtype, allow_pickle: bool = False):
    from diffusers import MotionAdapter

    if path is None:
        raise ModelNotFound(f"AnimateDiff needs a motion adapter and none is installed ({HOW_TO_GET})")
    with loading(f"motion adapter {path}"):
        if path.is_dir():
            safetensors = any(path.glob("*.safetensors"))
            return MotionAdapter.from_pretrained(path, local_files_only=True, dtype=dtype,
                                                 variant=fp16_variant(path, dtype),
                                                 use_safetensors=safetensors or not allow_pickle)
        if path.suffix.lower() != ".safetensors" and not allow_pickle:
            raise ModelNotFound(f"{path} is a pickle file; pass --allow-pickle to load it (with weights_only=True)")
        return MotionAdapter.from_single_file(str(path), config=str(motion_adapter_config_dir(path)),
                                              local_files_only=True, dtype=dtype)


def motion_adapter_config_dir(path: Path) -> Path:
    """A folder with the diffusers config of a single-file motion adapter, read off its tensor shapes.

    diffusers would fetch the config of guoyww's adapter from the hub; the shapes say everything it needs
    (widths per level, layers per block, mid block, position table length), so we write it locally.
    """
    if path.suffix.lower() == ".safetensors":
        shapes = {name: entry["shape"] for name, entry in read_safetensors_header(path).items()}
    else:
        import torch

        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        checkpoint = checkpoint.get("state_dict", checkpoint)
        shapes = {name: list(tensor.shape) for name, tensor in checkpoint.items()}
    config = motion_adapter_config(shapes)
    text = json.dumps(config, sort_keys=True, indent=2)
    folder = cache_dir() / "motion-adapter-configs" / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(text)
    return folder


def motion_adapter_config(shapes: dict[str, list[int]]) -> dict:
    widths, level = [], 0
    while f"down_blocks.{level}.motion_modules.0.temporal_transformer.proj_in.weight" in shapes:
        widths.append(shapes[f"down_blocks.{level}.motion_modules.0.temporal_transformer.proj_in.weight"][0])
        level += 1
    if not widths:
        raise ModelNotFound("not an AnimateDiff motion adapter: no down_blocks.*.motion_modules found")
    layers = len({name.split(".")[3] for name in shapes if name.startswith("down_blocks.0.motion_modules.")})
    transformer_layers = len({name.split(".")[6] for name in shapes
                              if name.startswith("down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.")})
    tables = [shape for name, shape in shapes.items() if name.endswith("pos_encoder.pe")]
    return {
        "_class_name": "MotionAdapter",
        "block_out_channels": widths,
        "motion_layers_per_block": layers,
        "motion_transformer_layers_per_block": transformer_layers,
        "motion_mid_block_layers_per_block": 1,
        "use_motion_mid_block": any(name.startswith("mid_block.motion_modules.") for name in shapes),
        "motion_num_attention_heads": 8,  # every released v1.5 adapter; the shapes cannot tell heads apart
        "motion_norm_num_groups": 32,
        "motion_max_seq_length": tables[0][1] if tables else 32,
    }


def _load_single_file(model: ModelInfo, adapter, dtype):
    from diffusers import AnimateDiffPipeline, StableDiffusionPipeline

    config_dir = model.config_dir
    if config_dir is None:
        raise ModelNotFound(f"{model.path}: no configs chosen for this checkpoint ({HOW_TO_GET})")
    parts = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    if not (config_dir / "tokenizer" / "vocab.json").is_file():
        parts["tokenizer"] = clip_tokenizer()
    base = StableDiffusionPipeline.from_single_file(str(model.path), config=str(config_dir), local_files_only=True,
                                                    dtype=dtype, **parts)
    return AnimateDiffPipeline.from_pipe(base, motion_adapter=adapter)


def clip_tokenizer():
    """CLIP ViT-L/14's tokenizer (SD1.5's), built from the BPE file that the `openai-clip` package ships.

    The vocabulary is OpenAI's `bpe_simple_vocab_16e6.txt.gz`, turned into the same vocab.json/merges.txt
    as openai/clip-vit-large-patch14 the way OpenAI's own SimpleTokenizer does (clip/simple_tokenizer.py):
    256 byte symbols, the same with "</w>", the first 48,894 merges, then the two special tokens.
    The package is found without importing it (its __init__ imports torchvision).
    """
    from transformers import CLIPTokenizer

    spec = importlib.util.find_spec("clip")
    vocab_file = None
    if spec is not None and spec.submodule_search_locations:
        vocab_file = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if vocab_file is None or not vocab_file.is_file():
        raise ModelNotFound("the CLIP tokenizer vocabulary is missing: install the `openai-clip` package "
                            "(pip install openai-clip), or put an SD1.5 diffusers folder in the models dir")
    lines = gzip.open(vocab_file, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = bytes_to_unicode()
    vocab = symbols + [symbol + "</w>" for symbol in symbols] + ["".join(merge) for merge in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: index for index, token in enumerate(vocab)},
                         merges=merges, model_max_length=77)


def bytes_to_unicode() -> list[str]:
    """CLIP's (and GPT-2's) printable stand-ins for the 256 byte values, in CLIP's vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def _is_lcm(model: ModelInfo) -> bool:
    names = [model.name, model.path.name] + ([model.motion_adapter.name] if model.motion_adapter else [])
    return any("lcm" in name.lower() for name in names)
