"""A tiny REAL Wan VACE model (diffusers' `WanVACEPipeline`) with random weights, saved in the layout of the official
VACE repositories (Wan-AI/Wan2.1-VACE-1.3B-diffusers, Wan-AI/Wan2.1-VACE-14B-diffusers): `model_index.json` names
`WanVACEPipeline`, the transformer folder `WanVACETransformer3DModel`, the scheduler `UniPCMultistepScheduler`
(flow_shift 3.0, as both repositories ship it). The sizes are those of diffusers' own tests/pipelines/wan/
test_wan_vace.py (3 blocks, VACE blocks at 0 and 2, 96 VACE input channels = 16 inactive + 16 reactive latent
channels + 8x8 mask channels). Nothing here downloads: the umT5 tokenizer is built locally.

Also the transformer as one file in Wan's original layout (`save_wan_vace_gguf`), as QuantStack's
Wan2.1_14B_VACE-GGUF files are made: VACE's own tensors there are `vace_blocks.N.before_proj` (block 0 only),
`vace_blocks.N.after_proj` and `vace_patch_embedding` (diffusers' `proj_in` / `proj_out`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

# diffusers' tests/pipelines/wan/test_wan_vace.py: 3 blocks with VACE blocks at 0 and 2 (VACE needs block 0)
VACE_LAYERS = (0, 2)
NUM_LAYERS = 3


def _vace_transformer(seed: int):
    import torch
    from diffusers import WanVACETransformer3DModel

    torch.manual_seed(seed)
    return WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=NUM_LAYERS, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, vace_layers=list(VACE_LAYERS), vace_in_channels=96,
    )


def build_tiny_wan_vace(folder: str | Path, *, two_experts: bool = False, seed: int = 0) -> Path:
    """A tiny Wan VACE diffusers folder at `folder`: Wan 2.1 VACE (one transformer), or with `two_experts` the
    layout of the Wan 2.2 VACE-Fun A14B conversions (`transformer` + `transformer_2`, `boundary_ratio` 0.875)."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline
    from transformers import UMT5Config, UMT5EncoderModel

    from .common import build_tiny_t5_tokenizer

    folder = Path(folder)
    tokenizer = build_tiny_t5_tokenizer(folder / "_tokenizer_source")
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=128, d_model=32, d_kv=8, d_ff=32, num_layers=2,
                                               num_heads=4, relative_attention_num_buckets=8,
                                               relative_attention_max_distance=16)).eval()
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    # The official repositories' scheduler_config.json: UniPC over flow sigmas, flow_shift 3.0 (480P)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    experts = dict(transformer_2=_vace_transformer(seed + 1), boundary_ratio=0.875) if two_experts else {}
    pipe = WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                           transformer=_vace_transformer(seed), **experts)
    pipe.save_pretrained(folder)
    shutil.rmtree(folder / "_tokenizer_source")
    return folder


def vace_original_layout(state_dict: dict) -> dict:
    """A diffusers WanVACETransformer3DModel state dict in Wan's original names (what ComfyUI and the GGUF files
    use): the plain Wan renames, and VACE's `proj_in` / `proj_out` back to `before_proj` / `after_proj` (the
    inverse of diffusers' `convert_wan_transformer_to_diffusers`)."""
    from .wan import to_original_layout

    vace, rest = {}, {}
    for key, tensor in state_dict.items():
        if key.startswith("vace_blocks."):
            # Renamed here first: the plain renames would turn `proj_out` into the output head's `head.head`
            key = key.replace(".proj_in.", ".before_proj.").replace(".proj_out.", ".after_proj.")
            vace[key] = tensor
        else:
            rest[key] = tensor
    return {**to_original_layout(rest), **to_original_layout(vace)}


def save_wan_vace_gguf(transformer_folder: str | Path, file: str | Path, *, quant: str = "Q8_0") -> Path:
    """The VACE transformer of a diffusers folder as a GGUF file in Wan's layout (architecture "wan", as
    QuantStack's VACE files say)."""
    from diffusers import WanVACETransformer3DModel

    from .common import save_gguf

    model = WanVACETransformer3DModel.from_pretrained(transformer_folder)
    return save_gguf(vace_original_layout(model.state_dict()), file, quant=quant, architecture="wan")


def build_tiny_plain_twin(vace_folder: str | Path, folder: str | Path, *, seed: int = 0) -> Path:
    """A plain Wan text-to-video folder (`WanPipeline`, `WanTransformer3DModel`) of exactly the VACE folder's width
    and blocks, with its text encoder, VAE and scheduler: what a VACE file must never be paired with, and the
    reverse."""
    import torch
    from diffusers import WanPipeline, WanTransformer3DModel, WanVACEPipeline

    vace = WanVACEPipeline.from_pretrained(vace_folder)
    config = {key: value for key, value in vace.transformer.config.items()
              if not key.startswith("_") and key not in ("vace_layers", "vace_in_channels")}
    torch.manual_seed(seed)
    pipe = WanPipeline(tokenizer=vace.tokenizer, text_encoder=vace.text_encoder, vae=vace.vae,
                       scheduler=vace.scheduler, transformer=WanTransformer3DModel(**config))
    pipe.save_pretrained(folder)
    return Path(folder)

