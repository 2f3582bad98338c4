"""Stable Video Diffusion (SVD, SVD-XT): image to video with `StableVideoDiffusionPipeline`.

Every request field is passed to the pipeline as it is. The pipeline stops at latents
(`output_type="latent"`) and we decode them in `decode_chunk_size` chunks with the pipeline's own
`decode_latents` and `postprocess_video`, which gives the same frames as the pipeline's own decode
(tested to be identical) while reporting progress and honouring cancel between chunks.
"""

from __future__ import annotations

import numpy as np

from ..events import DECODING, DENOISING, ENCODING_IMAGE
from ..checkpoints import UNSUPPORTED, ModelInfo
from .common import fp16_variant, loading
from .spec import REQUIRED, SD_LATENT_RGB_FACTORS, SVD_MEMORY, Download, FamilySpec, ReferenceModel, SingleFile

SPEC = FamilySpec(
    name="svd",
    label="Stable Video Diffusion",
    class_names=("StableVideoDiffusionPipeline",),
    image=REQUIRED,
    native_frames=25,  # SVD-XT's; `defaults` reads the UNet's own (14 for SVD)
    native_fps=7,
    latent_rgb_factors=SD_LATENT_RGB_FACTORS,
    memory=SVD_MEMORY,
    controls=frozenset({"motion_bucket_id", "noise_aug_strength", "min_guidance_scale", "max_guidance_scale"}),
    downloads=(
        Download("svd", "stabilityai/stable-video-diffusion-img2vid",
                 "Stable Video Diffusion, 14 frames at 1024x576 (image to video)"),
        Download("svd-xt", "stabilityai/stable-video-diffusion-img2vid-xt",
                 "Stable Video Diffusion XT, 25 frames at 1024x576 (image to video)"),
    ),
    single_files=(
        # SVD's UNet has temporal "time_stack" blocks beside SD's spatial ones: asked before SD1.5's layout.
        SingleFile("svd", "SVDCheckpoint", role=UNSUPPORTED, priority=0,
                   note="single-file SVD is not supported yet: use the diffusers folder",
                   matches=lambda keys: any(".time_stack." in key for key in keys)
                   and any(key.startswith("model.diffusion_model.") for key in keys)),
    ),
    # stabilityai/stable-video-diffusion-img2vid-xt's parameter counts (tests check them against the architecture)
    reference_model=ReferenceModel(
        "svd-xt",
        numel={"unet": 1_524_623_082, "vae": 97_742_847, "image_encoder": 632_076_800},
        largest_block={"unet": 489_498_886, "vae": 63_579_183, "image_encoder": 630_766_080},
        largest_tensor=29_491_200,
        defaults={"num_frames": 25, "fps": 7, "decode_chunk_size": 8},
    ),
)


def defaults(model: ModelInfo) -> dict:
    """SVD's recommended settings; the frame count is the one the UNet was trained on (14 or 25 for XT)."""
    num_frames = int(model.read_config("unet").get("num_frames", 25))
    return {
        "num_frames": num_frames,
        "fps": 7,
        "width": 1024,
        "height": 576,
        "motion_bucket_id": 127,
        "noise_aug_strength": 0.02,
        # The temporal decoder mixes frames within a chunk; 8 is the diffusers documentation's value and
        # keeps 1024x576 decoding under ~6 GB in fp16.
        "decode_chunk_size": min(8, num_frames),
        "num_inference_steps": 25,
        "min_guidance_scale": 1.0,
        "max_guidance_scale": 3.0,
    }


def check(request, model: ModelInfo) -> None:
    """Nothing beyond the spec's checks (a picture is required)."""


def load(model: ModelInfo, device: str, dtype):
    from diffusers import StableVideoDiffusionPipeline

    with loading(str(model.path)):
        pipe = StableVideoDiffusionPipeline.from_pretrained(
            model.path, local_files_only=True, dtype=dtype, variant=fp16_variant(model.path / "unet", dtype),
            use_safetensors=True,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe  # on the CPU; the engine places it on the device under the memory plan


def run(pipe, request, image, job) -> np.ndarray:
    """Generate the frames of `request` from the prepared `image` (already width x height)."""
    middle = request.num_frames // 2

    def on_step_end(pipeline, index, timestep, tensors):
        job.step(DENOISING, index + 1, request.num_inference_steps, preview=lambda: tensors["latents"][0, middle])
        return tensors

    # The pipeline encodes the image and then denoises in one call: the UNet's first forward marks the switch.
    entered_denoising = pipe.unet.register_forward_pre_hook(lambda module, args: job.enter(DENOISING))
    try:
        # 1. Encode the image and denoise, stopping at latents
        job.stage(ENCODING_IMAGE, "encoding image")
        latents = pipe(
            image=image,
            height=request.height,
            width=request.width,
            num_frames=request.num_frames,
            num_inference_steps=request.num_inference_steps,
            min_guidance_scale=request.min_guidance_scale,
            max_guidance_scale=request.max_guidance_scale,
            fps=request.fps,
            motion_bucket_id=request.motion_bucket_id,
            noise_aug_strength=request.noise_aug_strength,
            decode_chunk_size=request.decode_chunk_size,
            generator=job.generator,
            output_type="latent",
            callback_on_step_end=on_step_end,
            callback_on_step_end_tensor_inputs=["latents"],
        ).frames

        # 2. Decode in chunks, as the pipeline would, with progress and cancel between chunks; out of
        #    memory here retries with smaller chunks and keeps the latents (the memory plan's decode chunk)
        return job.decode_with_retries(lambda chunk_size: decode(pipe, latents, chunk_size, job))
    finally:
        entered_denoising.remove()
        pipe.maybe_free_model_hooks()


def decode(pipe, latents, chunk_size: int, job) -> np.ndarray:
    """Latents (1, F, C, h, w) to uint8 frames, `chunk_size` frames at a time, with the pipeline's own decode."""
    import torch

    frames = latents.shape[1]
    starts = range(0, frames, chunk_size)
    job.stage(DECODING, f"decoding {frames} frames, {chunk_size} at a time")
    decoded = []
    with torch.no_grad():
        for number, start in enumerate(starts, 1):
            chunk = latents[:, start : start + chunk_size]
            decoded.append(pipe.decode_latents(chunk, chunk.shape[1], chunk_size))
            job.step(DECODING, number, len(starts))
        video = pipe.video_processor.postprocess_video(video=torch.cat(decoded, dim=2), output_type="np")[0]
    # The same rounding as diffusers' numpy_to_pil, so PNG frames equal the pipeline's PIL output.
    return (video * 255).round().astype(np.uint8)
