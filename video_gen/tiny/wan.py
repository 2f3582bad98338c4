"""Tiny REAL Wan models with random weights, saved in the diffusers layout (the sizes of diffusers' own
tests/pipelines/wan/ tests), and a tiny GGUF transformer in Wan's original layout: for the tests and the CPU mode
of bench/gpu_wan.py. Nothing here downloads: the umT5 tokenizer is built locally (`build_tiny_t5_tokenizer`)."""

from __future__ import annotations

from pathlib import Path

from .common import build_tiny_t5_tokenizer, dequantized_gguf, save_gguf

VARIANTS = ("i2v", "flf2v", "a14b", "ti2v-5b", "t2v")


def _transformer(seed: int, in_channels: int, out_channels: int = 16, image_dim: int | None = None,
                 pos_embed_seq_len: int | None = None):
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
        out_channels=out_channels, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=image_dim,
        pos_embed_seq_len=pos_embed_seq_len,
    )


def build_tiny_wan(path: str | Path, variant: str = "i2v", *, seed: int = 0) -> Path:
    """A tiny Wan model of `variant`: "i2v" (Wan 2.1 I2V: CLIP image encoder, `image_dim`), "flf2v" (the same
    with FLF2V's position table over two pictures' CLIP tokens, `pos_embed_seq_len`), "a14b" (Wan 2.2:
    two experts, `boundary_ratio` 0.875), "ti2v-5b" (a `WanPipeline` with `expand_timesteps` and the 48-channel
    VAE) or "t2v" (Wan 2.1 text to video)."""
    import torch
    from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler,
                           WanImageToVideoPipeline, WanPipeline)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection, UMT5Config, \
        UMT5EncoderModel

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    path = Path(path)
    tokenizer = build_tiny_t5_tokenizer(path / "_tokenizer_source")
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=128, d_model=32, d_kv=8, d_ff=32, num_layers=2,
                                               num_heads=4, relative_attention_num_buckets=8,
                                               relative_attention_max_distance=16)).eval()
    torch.manual_seed(seed)
    if variant == "ti2v-5b":
        vae = AutoencoderKLWan(base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
                               latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1],
                               num_res_blocks=1, scale_factor_spatial=16, scale_factor_temporal=4,
                               temperal_downsample=[False, True, True])
    else:
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True])
    common = dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae)
    if variant in ("i2v", "flf2v"):
        torch.manual_seed(seed)
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=32,
            intermediate_size=16, patch_size=1)).eval()
        pipe = WanImageToVideoPipeline(
            **common, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), image_encoder=image_encoder,
            image_processor=CLIPImageProcessor(crop_size=32, size=32),
            # FLF2V: the CLIP tokens of the first and the last frame (32x32 patches + the class token, twice)
            transformer=_transformer(seed, 36, image_dim=4,
                                     pos_embed_seq_len=2 * (32 * 32 + 1) if variant == "flf2v" else None))
    elif variant == "a14b":
        pipe = WanImageToVideoPipeline(
            **common, scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                                        flow_shift=3.0),
            transformer=_transformer(seed, 36), transformer_2=_transformer(seed + 1, 36), boundary_ratio=0.875)
    elif variant == "ti2v-5b":
        pipe = WanPipeline(**common, scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction",
                                                                       use_flow_sigmas=True, flow_shift=5.0),
                           transformer=_transformer(seed, 48, out_channels=48), expand_timesteps=True)
    else:
        pipe = WanPipeline(**common, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                           transformer=_transformer(seed, 16))
    pipe.save_pretrained(path)
    import shutil

    shutil.rmtree(path / "_tokenizer_source")
    return path


# diffusers' names -> Wan's original names: the inverse of diffusers' `convert_wan_transformer_to_diffusers`
# (loaders/single_file_utils.py), so a file in Wan's layout is made from a diffusers transformer.
_TO_ORIGINAL = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("attn1", "self_attn"), ("attn2", "cross_attn"),
    (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
    (".add_k_proj.", ".k_img."), (".add_v_proj.", ".v_img."), (".norm_added_k.", ".norm_k_img."),
    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
    ("proj_out", "head.head"),
)


def to_original_layout(state_dict: dict) -> dict:
    """A diffusers WanTransformer3DModel state dict in Wan's original names (ComfyUI's and the GGUF files')."""
    converted = {}
    for key, tensor in state_dict.items():
        new = key
        if key == "scale_shift_table":
            new = "head.modulation"
        elif key.endswith(".scale_shift_table"):
            new = key.replace("scale_shift_table", "modulation")
        else:
            for diffusers_name, original in _TO_ORIGINAL:
                new = new.replace(diffusers_name, original)
            if ".norm2." in new:  # diffusers swapped norm2 and norm3
                new = new.replace(".norm2.", ".norm3.")
            elif ".norm3." in new:
                new = new.replace(".norm3.", ".norm2.")
        converted[new] = tensor
    return converted


def save_wan_gguf(transformer_folder: str | Path, file: str | Path, *, quant: str = "Q8_0",
                  architecture: str = "wan") -> Path:
    """The transformer of a diffusers folder as a GGUF file in Wan's layout (as city96's files are)."""
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel.from_pretrained(transformer_folder)
    return save_gguf(to_original_layout(model.state_dict()), file, quant=quant, architecture=architecture)


def save_gguf_of_another_family(file: str | Path) -> Path:
    """A tiny GGUF with a Flux transformer's tensor names and architecture: a GGUF no family here runs."""
    import torch

    names = ("double_blocks.0.img_attn.qkv.weight", "img_in.weight", "final_layer.linear.weight")
    return save_gguf({name: torch.zeros(4, 4) for name in names}, file, architecture="flux")


def dequantized_transformer(file: str | Path, transformer_folder: str | Path):
    """The diffusers transformer holding a GGUF file's weights dequantised to float32, made without
    diffusers' GGUF loader (gguf's own `dequantize`, diffusers' layout conversion): the reference for tests."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    model = WanTransformer3DModel.from_pretrained(transformer_folder)
    model.load_state_dict(convert_wan_transformer_to_diffusers(dequantized_gguf(file)), strict=True)
    return model.eval()
