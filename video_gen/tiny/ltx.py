"""Tiny REAL LTX-Video models with random weights, for tests and the CPU mode of bench/gpu_ltx.py.

`build_tiny_ltx` saves an `LTXConditionPipeline` in the layout of Lightricks/LTX-Video (transformer/, vae/,
text_encoder/ (T5), tokenizer/, scheduler/); `save_ltx_single_file` writes its transformer and VAE as one
checkpoint in the layout of LTX-Video's own `ltxv-*.safetensors` files (the names diffusers' single-file
loader converts from); `build_tiny_ltx_upsampler` saves a latent upsampler in the layout of
Lightricks/ltxv-spatial-upscaler-0.9.7 (model_index.json + latent_upsampler/).
"""

from __future__ import annotations

import re
from pathlib import Path

TINY_LTX_CHANNELS = 8  # latent channels (LTX's own: 128)


def build_tiny_ltx(path: str | Path, *, seed: int = 0, timestep_conditioning: bool = True) -> Path:
    """A tiny random LTX-Video: 8x spatial and 8x temporal compression like the real VAE (so 8k+1 frames and
    sizes in multiples of 32 work as they do there), two transformer blocks (cache hooks need a first block and
    the rest), a two-layer T5."""
    import torch
    from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline,
                           LTXVideoTransformer3DModel)
    from transformers import T5Config, T5EncoderModel

    from .common import build_tiny_t5_tokenizer

    path = Path(path)
    tokenizer = build_tiny_t5_tokenizer(path / "tokenizer")
    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(
        in_channels=TINY_LTX_CHANNELS, out_channels=TINY_LTX_CHANNELS, patch_size=1, patch_size_t=1,
        num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32, num_layers=2, caption_channels=32)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=TINY_LTX_CHANNELS, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=timestep_conditioning,
        patch_size=1, patch_size_t=1, encoder_causal=True, decoder_causal=False)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                           num_heads=4, relative_attention_num_buckets=8))
    pipe = LTXConditionPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                                tokenizer=tokenizer, transformer=transformer)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_ltx_upsampler(path: str | Path, vae_folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny random latent upsampler for `build_tiny_ltx`'s latents, saved as an `LTXLatentUpsamplePipeline`
    (with the VAE of `vae_folder`, as Lightricks' upscaler repository ships one)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    torch.manual_seed(seed)
    upsampler = LTXLatentUpsamplerModel(in_channels=TINY_LTX_CHANNELS, mid_channels=32, num_blocks_per_stage=1,
                                        dims=3, spatial_upsample=True, temporal_upsample=False)
    vae = AutoencoderKLLTXVideo.from_pretrained(Path(vae_folder) / "vae")
    LTXLatentUpsamplePipeline(vae=vae, latent_upsampler=upsampler).save_pretrained(path, safe_serialization=True)
    return Path(path)


# diffusers' VAE names -> LTX-Video's original ones: the inverse of diffusers' 0.9.1 rename table
# (`convert_ltx_vae_checkpoint_to_diffusers`), for the tiny VAE's four levels.
_DECODER_BLOCKS = [("mid_block", "up_blocks.0")] + [
    pair for level in range(4) for pair in ((f"up_blocks.{level}.upsamplers.0", f"up_blocks.{2 * level + 1}"),
                                            (f"up_blocks.{level}", f"up_blocks.{2 * level + 2}"))]
_ENCODER_BLOCKS = [("mid_block", "down_blocks.9"), ("down_blocks.3", "down_blocks.8")] + [
    pair for level in range(3) for pair in ((f"down_blocks.{level}.downsamplers.0", f"down_blocks.{3 * level + 1}"),
                                            (f"down_blocks.{level}.conv_out", f"down_blocks.{3 * level + 2}"),
                                            (f"down_blocks.{level}", f"down_blocks.{3 * level}"))]
_TRANSFORMER_NAMES = (("proj_in", "patchify_proj"), ("time_embed", "adaln_single"), ("norm_q", "q_norm"),
                      ("norm_k", "k_norm"))


def _original_vae_name(name: str) -> str:
    if name == "latents_mean":
        return "vae.per_channel_statistics.mean-of-means"
    if name == "latents_std":
        return "vae.per_channel_statistics.std-of-means"
    part, _, rest = name.partition(".")
    for diffusers_name, original in _DECODER_BLOCKS if part == "decoder" else _ENCODER_BLOCKS:
        if rest.startswith(diffusers_name + "."):
            rest = original + rest[len(diffusers_name):]
            break
    else:
        rest = re.sub(r"^(time_embedder|scale_shift_table)", r"last_\1", rest)
    rest = rest.replace("resnets.", "res_blocks.").replace("conv_shortcut.conv", "conv_shortcut")
    return f"vae.{part}.{rest}"


def _original_transformer_name(name: str) -> str:
    for diffusers_name, original in _TRANSFORMER_NAMES:
        name = name.replace(diffusers_name, original)
    return "model.diffusion_model." + name


def save_ltx_single_file(folder: str | Path, file: str | Path) -> Path:
    """The transformer and VAE of a diffusers LTX folder as one checkpoint in LTX-Video's own layout, checked
    by converting it back with diffusers' own converters."""
    import torch
    from diffusers.loaders.single_file_utils import (convert_ltx_transformer_checkpoint_to_diffusers,
                                                     convert_ltx_vae_checkpoint_to_diffusers)
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    transformer = load_file(str(folder / "transformer" / "diffusion_pytorch_model.safetensors"))
    vae = load_file(str(folder / "vae" / "diffusion_pytorch_model.safetensors"))
    state = {_original_transformer_name(name): tensor for name, tensor in transformer.items()}
    state.update({_original_vae_name(name): tensor for name, tensor in vae.items()})
    back_transformer = convert_ltx_transformer_checkpoint_to_diffusers(dict(state))
    back_vae = convert_ltx_vae_checkpoint_to_diffusers(dict(state))
    for original, back in ((transformer, back_transformer), (vae, back_vae)):
        if set(original) != set(back) or not all(torch.equal(original[name], back[name]) for name in original):
            raise AssertionError(f"the single-file names do not convert back: {sorted(set(original) ^ set(back))[:5]}")
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(file))
    return Path(file)


def save_ltx_transformer(folder: str | Path, file: str | Path, *, quant: str = "Q8_0") -> Path:
    """The transformer of a diffusers LTX folder alone, in LTX-Video's own names: a `.gguf` as city96's LTX GGUF
    files are (no `model.diffusion_model.` prefix; 2-D weights quantised to `quant` but the `scale_shift_table`s,
    which his converter keeps in float32), or a `.safetensors` as
    ComfyUI's transformer-only files are (with the prefix, float32)."""
    from safetensors.torch import load_file, save_file

    from .common import save_gguf

    transformer = load_file(str(Path(folder) / "transformer" / "diffusion_pytorch_model.safetensors"))
    state = {_original_transformer_name(name): tensor for name, tensor in transformer.items()}
    if Path(file).suffix == ".gguf":
        state = {name.removeprefix("model.diffusion_model."): tensor for name, tensor in state.items()}
        return save_gguf(state, file, quant=quant, architecture="ltxv", keep_float=("scale_shift_table",))
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(file))
    return Path(file)


def dequantized_ltx_transformer(file: str | Path, folder: str | Path):
    """The diffusers LTX transformer holding a GGUF file's weights dequantised by the `gguf` package (not
    diffusers' GGUF loader), renamed by diffusers' converter: the reference for tests."""
    from diffusers import LTXVideoTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_ltx_transformer_checkpoint_to_diffusers

    from .common import dequantized_gguf

    model = LTXVideoTransformer3DModel.from_pretrained(Path(folder) / "transformer")
    model.load_state_dict(convert_ltx_transformer_checkpoint_to_diffusers(dequantized_gguf(file)), strict=True)
    return model.eval()
