"""ModelScope text-to-video (ali-vilab/text-to-video-ms-1.7b): `TextToVideoSDPipeline` with a UNet3D.

Prompt-driven. With a picture, the picture drives the result the same way as for AnimateDiff:
`VideoToVideoSDPipeline` (the same parts) over the picture repeated, denoised from `1 - image_strength`.
This pipeline still reports steps through the old `callback` argument, which is where progress, previews
and cancel are handled.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..events import DENOISING, ENCODING_IMAGE
from ..checkpoints import ModelInfo
from .common import fp16_variant, loading
from .animatediff import check_image_strength, denoise_strength
from .spec import OPTIONAL, SD_LATENT_RGB_FACTORS, SVD_MEMORY, Download, FamilySpec

SPEC = FamilySpec(
    name="modelscope",
    label="ModelScope T2V",
    class_names=("TextToVideoSDPipeline",),
    image=OPTIONAL,
    prompt=True,
    prompt_style="caption",  # trained on WebVid's one-sentence captions
    schedulers=("ddim",),  # its own
    native_frames=16,
    native_fps=8,
    latent_rgb_factors=SD_LATENT_RGB_FACTORS,  # the same SD VAE
    memory=replace(SVD_MEMORY, measured="estimated: SVD-XT's constants, not measured for ModelScope"),
    controls=frozenset({"image_strength"}),
    downloads=(Download("modelscope-t2v", "ali-vilab/text-to-video-ms-1.7b", "ModelScope text to video 1.7B, 256x256"),),
)


def defaults(model: ModelInfo) -> dict:
    """The settings of the model card: 16 frames at 8 fps, 256x256, 25 steps, guidance 9."""
    return {
        "num_frames": 16,
        "fps": 8,
        "width": 256,
        "height": 256,
        "num_inference_steps": 25,
        "max_guidance_scale": 9.0,
        "min_guidance_scale": 0.0,  # unused here: the guidance is one number, max_guidance_scale
        "decode_chunk_size": 16,
        "image_strength": 0.5,
    }


def check(request, model: ModelInfo) -> None:
    """Beyond the spec's checks (its own DDIM scheduler, a prompt): the picture must leave a step to denoise."""
    if request.image:
        check_image_strength(request)


def load(model: ModelInfo, device: str, dtype):
    from diffusers import TextToVideoSDPipeline

    with loading(str(model.path)):
        pipe = TextToVideoSDPipeline.from_pretrained(
            model.path, local_files_only=True, dtype=dtype, variant=fp16_variant(model.path / "unet", dtype),
            use_safetensors=not model.allow_pickle or any(model.path.rglob("*.safetensors")),
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe  # on the CPU; the engine places it on the device under the memory plan


def run(pipe, request, image, job) -> np.ndarray:
    from diffusers import VideoToVideoSDPipeline

    middle = request.num_frames // 2
    steps = request.num_inference_steps
    total = steps

    def on_step(index, timestep, latents):
        job.step(DENOISING, index + 1, total, preview=lambda: latents[0, :, middle])

    common = dict(prompt=request.prompt, negative_prompt=request.negative_prompt or None,
                  num_inference_steps=steps, guidance_scale=request.max_guidance_scale, generator=job.generator,
                  output_type="np", callback=on_step, callback_steps=1)
    try:
        if image is None:
            job.stage(DENOISING)
            frames = pipe(num_frames=request.num_frames, height=request.height, width=request.width,
                          **common).frames[0]
        else:
            job.stage(ENCODING_IMAGE, "encoding image")
            strength = denoise_strength(request)
            total = int(steps * strength)
            video_pipe = VideoToVideoSDPipeline(**pipe.components)  # shares every module: no copy
            video_pipe.set_progress_bar_config(disable=True)
            frames = video_pipe(video=[image] * request.num_frames, strength=strength, **common).frames[0]
        # The same rounding as diffusers' numpy_to_pil, so PNG frames equal the pipeline's PIL output.
        return (np.asarray(frames) * 255).round().astype(np.uint8)
    finally:
        pipe.maybe_free_model_hooks()
