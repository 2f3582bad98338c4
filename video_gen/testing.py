"""Tiny real models with random weights, saved in the real repositories' folder layout.

No weights can be downloaded in CI, so tests, `video-gen selftest` and the benchmarks build the
same diffusers/transformers classes as Stable Video Diffusion at toy sizes and `save_pretrained`
them exactly like `stabilityai/stable-video-diffusion-img2vid(-xt)` (fp16 variant included).
They are then loaded through the user's code path, never handed to the engine as objects.
"""

from __future__ import annotations

from pathlib import Path

# SVD's own scheduler configuration (stabilityai/stable-video-diffusion-img2vid-xt,
# scheduler/scheduler_config.json): Karras sigmas, v-prediction, continuous timesteps.
SVD_SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
}


def build_tiny_svd(
    path: str | Path,
    *,
    num_frames: int = 8,
    unet_channels: tuple[int, ...] = (32, 64),
    vae_channels: tuple[int, ...] = (32, 32, 32, 32),
    fp16_variant: bool = True,
    seed: int = 0,
) -> Path:
    """Save a tiny random Stable Video Diffusion pipeline at `path` and return the path.

    The VAE keeps SVD's four down blocks (latents at 1/8 of the image, like the real one): with
    fewer, its mid-block attention runs at a higher resolution and a 512x512 job never ends on CPU.
    `unet_channels` scales the cost of a denoising step (the benchmark uses wider channels).
    """
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    path = Path(path)
    torch.manual_seed(seed)
    embed_dim = 32
    time_embed_dim = 32
    levels = len(unet_channels)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal",) * (levels - 1) + ("DownBlockSpatioTemporal",),
        up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * (levels - 1),
        block_out_channels=unet_channels,
        addition_time_embed_dim=time_embed_dim,
        # fps, motion bucket and noise augmentation each get a time embedding: 3 x addition_time_embed_dim
        projection_class_embeddings_input_dim=3 * time_embed_dim,
        layers_per_block=1,
        cross_attention_dim=embed_dim,
        num_attention_heads=tuple(max(1, c // 16) for c in unet_channels),
        num_frames=num_frames,
    )
    vae = AutoencoderKLTemporalDecoder(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(vae_channels),
        block_out_channels=vae_channels,
        layers_per_block=1,
        latent_channels=4,
    )
    # The pipeline always resizes the image to 224x224 for CLIP; 32-pixel patches keep that cheap.
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=embed_dim,
            projection_dim=embed_dim,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            image_size=224,
            patch_size=32,
        )
    )
    feature_extractor = CLIPImageProcessor(crop_size=224, size=224)
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    pipe = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler, feature_extractor=feature_extractor
    )
    pipe.save_pretrained(path, safe_serialization=True)
    if fp16_variant:
        pipe.to(torch.float16).save_pretrained(path, safe_serialization=True, variant="fp16")
    return path
