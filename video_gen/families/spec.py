"""`FamilySpec`: what a model family is, declared once in its module (ComfyUI's `supported_models.py`).

The rest of the program reads these fields instead of asking "is this SVD?": request validation (size
multiple, schedulers, picture, prompt, last frame), the length planner (native frames and fps, frame
rule), the precision (`dtype`), the memory estimator (`memory`), the live preview
(`latent_rgb_factors`), model discovery (`class_names`, `single_files`), downloads (`downloads`) and the
page's controls. This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

# How a family takes a picture.
REQUIRED, OPTIONAL, NONE = "required", "optional", "none"
# The roles of what discovery finds (model, motion adapter, LoRA, …) are the ground floor's (checkpoints.py).
from ..checkpoints import MODEL


@dataclass(frozen=True)
class MemoryConstants:
    """Activation bytes of a family's stages, for the memory estimator (`memory.estimate_stages`).

    Bytes are for fp16 (scaled by the element size); `measured` says where the numbers come from, or starts
    with "estimated" when they were not measured for this family.
    """

    denoise_bytes_per_token: int  # per (CFG batch x latent frame x latent pixel)
    denoise_base_bytes: int
    forward_chunking_saving: float  # the share of denoise activations that feed-forward chunking saves
    decode_bytes_per_pixel: int  # per (decoded frame x output pixel)
    encode_bytes_per_pixel: int  # the picture's encoders, per output pixel
    encode_base_bytes: int
    measured: str
    spatial_compression: int = 8  # output pixels per latent pixel, along each side
    temporal_compression: int = 1  # output frames per latent frame (Wan 4, LTX 8)
    cfg_batch: int = 2  # classifier-free guidance runs the denoiser on a batch of two
    # Encoders never on the device with the denoiser (LTX-2's 12B Gemma 3 beside its 19B transformer): under the
    # plan that keeps everything on the device they stay on the CPU, and the family moves one in (and the denoiser
    # out) only to encode a prompt (`memory.apply_plan`; the estimator counts them so).
    apart: tuple[str, ...] = ()
    # A pipeline that makes a long video section by section (FramePack): the tokens one transformer call sees at
    # (width, height), the same for every section whatever the length; None: latent frames x latent pixels.
    section_tokens: Callable[[int, int], int] | None = None
    # Bytes the pipeline keeps on the device for the whole job per output frame and pixel, in float32 whatever
    # the plan (FramePack's history latents); they grow with the length.
    kept_bytes_per_frame_pixel: float = 0.0

    def latent_tokens(self, frames: int, width: int, height: int) -> int:
        if self.section_tokens is not None:
            return self.cfg_batch * self.section_tokens(width, height)
        latent_frames = (frames - 1) // self.temporal_compression + 1
        side = self.spatial_compression
        return self.cfg_batch * latent_frames * (width // side) * (height // side)


@dataclass(frozen=True)
class Download:
    """A model `video-gen models download NAME` fetches: a diffusers repository (only configs and one
    .safetensors per weight), or single files of a repository (`files`, such as GGUF transformers)."""

    name: str
    repo: str
    description: str
    # Single files: glob patterns over the repository's file list, each choosing one file; `{quant}` stands for
    # the quantisation asked for (`--quant`, Q4_K_M by default). They go into the models folder itself.
    files: tuple[str, ...] = ()
    # For single files: the download entry whose folder gives them the other parts (text encoder, VAE, configs);
    # fetched without its transformer weights when it is not installed.
    folder: str = ""


@dataclass(frozen=True)
class SingleFile:
    """One kind of single-file checkpoint a family recognises from its safetensors tensor names alone."""

    kind: str  # what `catalog.classify_checkpoint` answers, e.g. "sd15"
    class_name: str  # ModelInfo.class_name of such a file
    matches: Callable[[Collection[str]], bool]
    role: str = MODEL
    note: str = ""  # for UNSUPPORTED: why, and what to use instead
    priority: int = 50  # lower is asked first (a more specific layout before the one it extends)


@dataclass(frozen=True)
class FolderLayout:
    """A folder without model_index.json that a family recognises by what it holds (FramePack's transformer
    repository, or the three repositories diffusers' docs combine, side by side in one folder)."""

    kind: str
    class_name: str  # ModelInfo.class_name of such a folder
    matches: Callable[[Path], bool]
    role: str = MODEL
    note: str = ""


@dataclass(frozen=True)
class ReferenceModel:
    """A family's best-known model, sized from its published parameter counts: `video-gen info` shows how long
    a video it makes before any model is installed."""

    name: str
    numel: dict[str, int]  # component -> parameters
    largest_block: dict[str, int]  # component -> parameters of its largest top-level block
    largest_tensor: int
    defaults: dict[str, int]  # num_frames, fps, decode_chunk_size


@dataclass(frozen=True)
class FamilySpec:
    name: str  # the module's name under video_gen.families, also what ModelInfo.family holds
    label: str  # for people: "Stable Video Diffusion"
    class_names: tuple[str, ...]  # model_index.json `_class_name`s (and single-file class names) it runs
    memory: MemoryConstants
    image: str = REQUIRED  # REQUIRED, OPTIONAL or NONE
    prompt: bool = False  # driven by a text prompt (prompt and negative prompt)
    # How the prompt enhancer rewrites a prompt for it (enhance.STYLES): "long" (80-150 words, the action first:
    # Wan, LTX), "motion" (a sentence or two of motion), "caption" (one WebVid-style sentence: ModelScope),
    # "tags" (comma-separated tags: AnimateDiff on SD1.5). Only read when `prompt` is True.
    prompt_style: str = "long"
    last_image: bool = False  # can take a last frame
    schedulers: tuple[str, ...] = ()  # the `scheduler` values it accepts (empty: its own, no choice)
    size_multiple: int = 8  # width and height must be multiples of this
    frame_step: int = 1  # one generation makes frame_step*k + 1 frames (1: any count; Wan 4, LTX 8)
    # num_frames must already keep to the frame rule (the family refuses others, naming the nearest); a length
    # given in seconds (the page, --duration) is rounded up to it. False: the planner generates more and cuts.
    exact_frames: bool = False
    dtype: str = "float16"  # on CUDA; the CPU always runs float32
    native_frames: int = 16  # frames of one generation when the model's config does not say
    native_fps: int = 8
    steps_range: tuple[int, int] = (10, 50)  # the page's slider (the request accepts 1-150)
    latent_rgb_factors: tuple[tuple[float, ...], ...] | None = None  # live preview; None: no preview
    downloads: tuple[Download, ...] = ()
    single_files: tuple[SingleFile, ...] = ()
    folder_layouts: tuple[FolderLayout, ...] = ()
    # (model_index.json class name, role) of folders that are parts for this family's models, not models:
    # discovery lists them with that role, and they cannot be chosen as --model.
    part_classes: tuple[tuple[str, str], ...] = ()
    reference_model: ReferenceModel | None = None
    # Family-specific parts of a request that the page shows (beyond the common ones): e.g. "motion_bucket_id".
    controls: frozenset[str] = field(default_factory=frozenset)
    # The diffusers pipeline class whose `lora_state_dict` reads this family's LoRAs (loras.py judges whether a LoRA
    # fits a model by the modules it changes, named as that function names them); "": no LoRAs, refused in one line.
    lora_loader: str = ""
    # It makes its own sound (LTX-2): the request's `audio` field is shown and on by default (its `defaults`
    # say so); asking a silent family for sound is refused in one line.
    sound: bool = False
    # The only sizes (width, height) it makes (HunyuanVideo 1.5's buckets: its pipeline takes no size); empty: any
    # multiple of size_multiple. A family narrows it per model (`model_spec`).
    sizes: tuple[tuple[int, int], ...] = ()
    # A pipeline that makes any length in one generation, section by section (FramePack): the frames one section
    # adds. The length planner then never chains segments, and progress says "section k of n". 0: one generation
    # makes at most native_frames.
    section_frames: int = 0
    # The page's Length slider in seconds (a family of long videos may allow more)
    duration_range: tuple[float, float] = (1, 10)
    # (request field, help) where a field means something of this family's own: shown under its control instead
    # of the field's help (FramePack's guidance is its distilled guidance)
    control_help: tuple[tuple[str, str], ...] = ()

    @property
    def takes_image(self) -> bool:
        return self.image != NONE

    def sections(self, frames: int) -> int:
        """The sections one generation of `frames` frames takes (1 for a family without sections)."""
        if not self.section_frames:
            return 1
        return max(1, -(-(frames - 1) // self.section_frames))

    def generation_frames(self, native_frames: int) -> int:
        """The most frames one generation makes: the model's native length, or any length for a family of
        sections (the request's limit)."""
        return 1_000_000 if self.section_frames else native_frames

    def check_size(self, width: int | None, height: int | None) -> None:
        """Refuse, in one line naming the nearest ones, a size that is not one of `sizes` (when it has any)."""
        from ..errors import InvalidRequest

        if self.sizes and width is not None and height is not None and (width, height) not in self.sizes:
            near = ", ".join(f"{w}x{h}" for w, h in self.nearest_sizes(width, height))
            raise InvalidRequest("width", f"{width}x{height} is not a size {self.label} makes: it makes only its "
                                          f"{len(self.sizes)} size buckets; the nearest in shape: {near}")

    def nearest_sizes(self, width: int, height: int, count: int = 3) -> list[tuple[int, int]]:
        """The `count` sizes of `sizes` nearest width x height in shape, then in pixels."""
        import math

        return sorted(self.sizes, key=lambda size: (abs(math.log(size[0] / size[1]) - math.log(width / height)),
                                                    abs(size[0] * size[1] - width * height)))[:count]

    def valid_frames(self, frames: int) -> int:
        """The fewest frames one generation can make that hold `frames` (the frame rule: step*k + 1)."""
        from ..planner import valid_frames

        return valid_frames(frames, self.frame_step)

    def check_request(self, request) -> None:
        """The checks every family shares, from this spec (each family's `check` adds its own)."""
        from ..errors import InvalidRequest

        if self.image == REQUIRED and not request.image:
            raise InvalidRequest("image", f"missing: {self.label} animates a picture; give its path")
        if self.image == NONE and request.image:
            raise InvalidRequest("image", f"{self.label} makes a video from text only; leave the picture out")
        if self.prompt and not request.image and not request.prompt.strip():
            raise InvalidRequest("prompt", f"missing: {self.label} makes a video from a text prompt; describe the video")
        if request.last_image and not self.last_image:
            raise InvalidRequest("last_image", f"{self.label} cannot take a last frame; leave it out")
        if request.scheduler is not None and self.schedulers and request.scheduler not in self.schedulers:
            raise InvalidRequest("scheduler", f"must be one of {', '.join(self.schedulers)} for {self.label}, "
                                              f"got {request.scheduler!r}")
        if request.speed != "off" and "speed" not in self.controls:
            raise InvalidRequest("speed", f"{self.label} has no cache hooks (they work on transformer models such as "
                                          f"Wan and LTX); use off, got {request.speed!r}")
        if getattr(request, "keyframes", ()) and "keyframes" not in self.controls:
            raise InvalidRequest("keyframes", f"{self.label} cannot take keyframes (LTX-Video can); leave them out")
        if getattr(request, "upscale", "off") != "off" and "upscale" not in self.controls:
            raise InvalidRequest("upscale", f"{self.label} has no latent upsampler (LTX-Video has); use off, "
                                            f"got {request.upscale!r}")
        if getattr(request, "audio", None) == "on" and not self.sound:
            raise InvalidRequest("audio", f"{self.label} makes no sound (LTX-2 does); use off or leave it out")
        frames, step = request.num_frames, self.frame_step
        if self.exact_frames and frames is not None and step > 1 and frames % step != 1:
            lower = max(1, (frames - 1) // step * step + 1)
            upper = lower + step
            nearest = lower if frames - lower <= upper - frames else upper
            raise InvalidRequest("num_frames", f"must be {step}k+1 for {self.label} (its VAE packs {step} frames into "
                                               f"one), got {frames}; the nearest is {nearest} ({lower} or {upper})")
        for name in ("width", "height"):
            value = getattr(request, name)
            if value is not None and value % self.size_multiple:
                nearest = max(self.size_multiple, round(value / self.size_multiple) * self.size_multiple)
                raise InvalidRequest(name, f"must be a multiple of {self.size_multiple} for {self.label}, got "
                                           f"{value}; try {nearest}")


# The SD VAE's latent space to RGB, a linear fit (ComfyUI comfy/latent_formats.py, SD15): SVD, AnimateDiff and
# ModelScope share this VAE. Used only for the live preview, which must cost far less than a VAE decode.
SD_LATENT_RGB_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)

# Activation bytes measured on the full-size SVD-XT architecture by `python bench/memory_constants.py` (CPU,
# torch 2.13, where SDPA is a fused flash kernel, so attention memory is linear in tokens as with CUDA's flash
# kernels), fitted as a line through two sizes (2x8x8 and 4x8x16 latents). Its output on 2026-11-24: UNet 18292 B
# per (CFG batch x frame x latent pixel), base 0.2 MB; feed-forward chunking 43.7 % lower; VAE decode 2048 B per
# (frame x output pixel); image stage (CLIP at 224x224 plus the VAE encoder on one frame) 571 B per output pixel
# + 5.9 MB. So SVD-XT at 1024x576 needs ~8.4 GB for the UNet's activations (25 frames, CFG) and ~9.7 GB to decode
# 8 frames at once, which is why 12 GB cards run out at decode (ComfyUI #7006). GPU calibration
# (`bench/gpu_svd.py` prints measured peaks next to these estimates) is still owed.
SVD_MEMORY = MemoryConstants(
    denoise_bytes_per_token=18_292, denoise_base_bytes=200_000, forward_chunking_saving=0.437,
    decode_bytes_per_pixel=2_048, encode_bytes_per_pixel=571, encode_base_bytes=5_900_000,
    measured="SVD-XT, bench/memory_constants.py on the CPU, 2026-11-24",
)
