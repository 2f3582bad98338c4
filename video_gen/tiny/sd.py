"""Tiny Stable Video Diffusion, SD1.5 (AnimateDiff's base, its motion adapter and LoRAs) and ModelScope models
with random weights, saved in the real repositories' folder layouts (the SVD one exactly like
`stabilityai/stable-video-diffusion-img2vid(-xt)`, fp16 variant included)."""

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


# ---- AnimateDiff (SD1.5 base + motion adapter) and ModelScope ------------------------------------
# The scheduler configuration of stable-diffusion-v1-5 (scheduler/scheduler_config.json).
SD15_SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}
TINY_TEXT_WIDTH = 32


def build_tiny_tokenizer(path: str | Path):
    """A real CLIPTokenizer with a tiny BPE vocabulary built here: CLIP's 512 byte symbols, a few merges."""
    import json

    from transformers import CLIPTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    from ..families.animatediff import bytes_to_unicode

    symbols = bytes_to_unicode()
    vocab = symbols + [symbol + "</w>" for symbol in symbols]
    merges = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>"), ("r", "e"), ("e", "d</w>")]
    vocab += ["".join(pair) for pair in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (path / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tokenizer = CLIPTokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(path)
    return tokenizer


def _tiny_text_parts(path: Path, seed: int):
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tiny_tokenizer(path / "tokenizer")
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=TINY_TEXT_WIDTH, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=TINY_TEXT_WIDTH,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    # SD's VAE layout at toy width: four down blocks, latents at 1/8 of the image.
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64,
    )
    return tokenizer, text_encoder, vae


def build_tiny_sd15(path: str | Path, *, seed: int = 0, fp16_variant: bool = False) -> Path:
    """A tiny random Stable Diffusion 1.5 base (the layout of stable-diffusion-v1-5), for AnimateDiff."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    path = Path(path)
    tokenizer, text_encoder, vae = _tiny_text_parts(path, seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TINY_TEXT_WIDTH, attention_head_dim=8,
    )
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=PNDMScheduler(**SD15_SCHEDULER_CONFIG), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    if fp16_variant:
        pipe.to(torch.float16).save_pretrained(path, safe_serialization=True, variant="fp16")
    return path


def build_tiny_motion_adapter(path: str | Path, *, seed: int = 0) -> Path:
    """A tiny random AnimateDiff motion adapter matching `build_tiny_sd15`'s UNet (the layout of
    guoyww/animatediff-motion-adapter-v1-5-3: one folder with config.json and the weights)."""
    import torch
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    adapter = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_num_attention_heads=8,
                            motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=True)
    adapter.save_pretrained(path, safe_serialization=True)
    return Path(path)


def build_tiny_modelscope(path: str | Path, *, seed: int = 0) -> Path:
    """A tiny random ModelScope text-to-video model (the layout of ali-vilab/text-to-video-ms-1.7b)."""
    import torch
    from diffusers import DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel

    path = Path(path)
    tokenizer, text_encoder, vae = _tiny_text_parts(path, seed)
    unet = UNet3DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=TINY_TEXT_WIDTH, attention_head_dim=4, norm_num_groups=32,
    )
    # ModelScope's own scheduler (ali-vilab/text-to-video-ms-1.7b, scheduler/scheduler_config.json).
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    torch.manual_seed(seed)
    pipe = TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                 scheduler=scheduler)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def save_sd15_single_file(folder: str | Path, file: str | Path, *, dtype=None) -> Path:
    """Write a diffusers SD1.5 folder as one original-layout (LDM) .safetensors checkpoint, the way
    community checkpoints are shared (the inverse of diffusers' single-file conversion; after
    diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py, generalised to any depth)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    folder = Path(folder)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")
    state = {}
    state.update({f"model.diffusion_model.{k}": v for k, v in _unet_to_ldm(unet.state_dict(), unet.config).items()})
    state.update({f"first_stage_model.{k}": v for k, v in _vae_to_ldm(vae.state_dict(), vae.config).items()})
    # Real checkpoints name the text encoder's tensors text_model.* (transformers >= 5.6 leaves that level out).
    state.update({f"cond_stage_model.transformer.{'' if k.startswith('text_model.') else 'text_model.'}{k}": v
                  for k, v in text_encoder.state_dict().items()})
    state = {k: (v.to(dtype) if dtype is not None else v).contiguous() for k, v in state.items()}
    save_file(state, str(file))
    return Path(file)


def _unet_to_ldm(weights: dict, config) -> dict:
    layers = config.layers_per_block
    levels = len(config.block_out_channels)
    renames = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
               ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2.")]
    for i in range(levels):
        for j in range(layers):
            renames.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.0."))
            renames.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.1."))
        if i < levels - 1:
            renames.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(layers + 1) * (i + 1)}.0.op."))
        for j in range(layers + 1):
            renames.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(layers + 1) * i + j}.0."))
            renames.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(layers + 1) * i + j}.1."))
        if i < levels - 1:
            has_attention = "CrossAttn" in config.up_block_types[i]
            renames.append((f"up_blocks.{i}.upsamplers.0.",
                            f"output_blocks.{(layers + 1) * i + layers}.{2 if has_attention else 1}."))
    renames += [("mid_block.attentions.0.", "middle_block.1."), ("mid_block.resnets.0.", "middle_block.0."),
                ("mid_block.resnets.1.", "middle_block.2.")]
    resnet_parts = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                    ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
    converted = {}
    for key, value in weights.items():
        new = key
        if "resnets" in key:
            for hf, sd in resnet_parts:
                new = new.replace(hf, sd)
        for hf, sd in renames:
            if new.startswith(hf):
                new = sd + new[len(hf):]
                break
        converted[new] = value
    return converted


def _vae_to_ldm(weights: dict, config) -> dict:
    levels = len(config.block_out_channels)
    renames = [("conv_shortcut", "nin_shortcut"), ("conv_norm_out", "norm_out"), ("mid_block.attentions.0.", "mid.attn_1.")]
    for i in range(levels):
        renames.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        renames.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{levels - 1 - i}.block."))
        renames.append((f"down_blocks.{i}.downsamplers.0.", f"down.{i}.downsample."))
        renames.append((f"up_blocks.{i}.upsamplers.0.", f"up.{levels - 1 - i}.upsample."))
    renames += [("mid_block.resnets.0.", "mid.block_1."), ("mid_block.resnets.1.", "mid.block_2.")]
    attention = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]
    converted = {}
    for key, value in weights.items():
        new = key
        for hf, sd in renames:
            new = new.replace(hf, sd)
        if "mid.attn_1." in new:
            for hf, sd in attention:
                new = new.replace(hf, sd)
            if new.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")):
                value = value.reshape(*value.shape, 1, 1)  # SD stores these 1x1 convolutions as conv weights
        converted[new] = value
    return converted


def save_motion_adapter_single_file(folder: str | Path, file: str | Path) -> Path:
    """Write a diffusers motion adapter folder as one file in AnimateDiff's own layout (mm_sd_v15_v2 style),
    the inverse of diffusers' convert_animatediff_checkpoint_to_diffusers."""
    import re

    import torch
    from diffusers import MotionAdapter
    from safetensors.torch import save_file

    adapter = MotionAdapter.from_pretrained(folder)
    state = {}
    for key, value in adapter.state_dict().items():
        block, module, rest = re.match(r"(.*?motion_modules\.\d+\.)()(.*)", key).groups()
        rest = (rest.replace("norm1.", "norms.0.").replace("norm2.", "norms.1.").replace("norm3.", "ff_norm.")
                .replace("attn1.", "attention_blocks.0.").replace("attn2.", "attention_blocks.1."))
        state[f"{block}temporal_transformer.{rest}"] = value.contiguous()
    # AnimateDiff files carry the sinusoidal position tables too (diffusers rebuilds them and skips these).
    for key in list(state):
        if key.endswith("attention_blocks.0.to_q.weight"):
            width = state[key].shape[0]
            state[key.replace("to_q.weight", "pos_encoder.pe")] = torch.zeros(1, adapter.config.motion_max_seq_length, width)
    save_file(state, str(file))
    return Path(file)


# ---- LoRAs (loras.py) -----------------------------------------------------------------------------------
LORA_TARGETS = {
    "unet": r".*attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)",
    "motion": r".*motion_modules\.\d+\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)",
    "text_encoder": r".*self_attn\.(q_proj|k_proj|v_proj|out_proj)",
}


def build_tiny_lora(base: str | Path, file: str | Path, *, parts: tuple[str, ...] = ("unet",), style: str = "diffusers",
                    motion_adapter: str | Path | None = None, rank: int = 4, scale: float = 0.5, seed: int = 0,
                    metadata: dict[str, str] | None = None) -> Path:
    """A real PEFT LoRA with random weights on `build_tiny_sd15`'s model, saved as one .safetensors file.

    `parts`: "unet" (the SD1.5 UNet's attention, an SD1.5 LoRA), "text_encoder" (CLIP's attention) and/or
    "motion" (AnimateDiff's motion modules: a motion LoRA; needs `motion_adapter`). `style`: "diffusers"
    (what `save_lora_weights` writes: unet.….lora_A.weight) or "kohya" (sd-scripts' lora_unet_…_to_q.lora_down
    .weight with .alpha; UNet parts only). `scale` shrinks the random lora_B so that the tiny model stays in range.
    """
    import torch
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    base, file = Path(base), Path(file)
    torch.manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def adapted(model, target: str) -> dict:
        # peft's own injection (what diffusers' add_adapter calls), which transformers' models take too
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS[target],
                                           init_lora_weights=False), model, adapter_name=target)
        weights = get_peft_model_state_dict(model, adapter_name=target)
        return {key: value * scale if ".lora_B." in key else value for key, value in weights.items()}

    unet_parts = [part for part in parts if part in ("unet", "motion")]
    if unet_parts:
        unet = UNet2DConditionModel.from_pretrained(base / "unet")
        if "motion" in unet_parts:
            unet = UNetMotionModel.from_unet2d(unet, MotionAdapter.from_pretrained(motion_adapter))
        for target in unet_parts:
            state.update({f"unet.{key}": value for key, value in adapted(unet, target).items()})
    if "text_encoder" in parts:
        text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder")
        state.update({f"text_encoder.{key}": value for key, value in adapted(text_encoder, "text_encoder").items()})
    if style == "kohya":
        state = _to_kohya(state, rank)
    elif style != "diffusers":
        raise ValueError(f"style must be diffusers or kohya, got {style!r}")
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in state.items()}, str(file),
              metadata={"format": "pt", **(metadata or {})})
    return file


def _to_kohya(state: dict, rank: int) -> dict:
    """diffusers/PEFT LoRA names as sd-scripts writes them: lora_unet_<module with underscores>.lora_down.weight,
    .lora_up.weight and .alpha (alpha = rank: a scale of 1, as PEFT's lora_alpha = r)."""
    import torch

    converted = {}
    for key, value in state.items():
        part, _, rest = key.partition(".")
        if part != "unet":
            raise ValueError("kohya style: UNet LoRAs only")
        module, _, which = rest.rpartition(".lora_")
        name = "lora_unet_" + module.replace(".", "_")
        converted[f"{name}.{'lora_down' if which.startswith('A') else 'lora_up'}.weight"] = value
        converted[f"{name}.alpha"] = torch.tensor(float(rank))
    return converted
