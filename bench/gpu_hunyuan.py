"""Full-size HunyuanVideo 1.5 and FramePack-F1 with random bf16 weights in the diffusers layout, for the GPU
runner (bench/gpu/build.py builds them through `build(path, name, tiny, device)`; tiny: the package's builders).

The real architectures (the real FLOPs and bytes): HunyuanVideo 1.5's 480p I2V transformer (diffusers' default
config, 8.3B) and VAE (1.26B), Qwen2.5-VL-7B's text model, Glyph-ByT5 (ByT5-small's encoder), SigLIP so400m;
FramePack's transformer (lllyasviel/FramePackI2V_HY's architecture, 12.9B), HunyuanVideo's VAE, llava-llama-3-8b's
text model, CLIP-L's and SigLIP, saved as one `HunyuanVideoFramepackPipeline` in a folder whose name says F1. The
tokenizers are the tiny ones built offline (the GPU machine has no network): their template prefixes are the
real token counts, and the vocabulary does not change the cost (the embedding tables keep their real sizes).
"""

from __future__ import annotations

import shutil
from pathlib import Path

NAMES = ("hunyuan15-480p-i2v", "framepack-f1")
QWEN_7B_TEXT = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                    num_key_value_heads=4, vocab_size=152064, rope_theta=1000000.0,
                    rope_scaling={"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"})
BYT5_SMALL = dict(d_model=1472, d_ff=3584, num_layers=12, num_heads=6, d_kv=64, vocab_size=384,
                  feed_forward_proj="gated-gelu")
SIGLIP_SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                     image_size=384, patch_size=14)
LLAMA_3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128320)
CLIP_L_TEXT = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   projection_dim=768)


def build(path: Path, name: str, tiny: bool, device: str = "cuda") -> Path:
    if name not in NAMES:
        raise ValueError(f"name must be one of {', '.join(NAMES)}, got {name!r}")
    if tiny:
        from video_gen.tiny.framepack import build_tiny_framepack
        from video_gen.tiny.hunyuan15 import build_tiny_hunyuan15

        if name == "hunyuan15-480p-i2v":
            return build_tiny_hunyuan15(path)
        return build_tiny_framepack(path, variant="f1", layout="saved")
    return (build_hunyuan15 if name == "hunyuan15-480p-i2v" else build_framepack_f1)(Path(path), device)


def _born_in_bf16(device: str, make):
    """Modules made on `device` directly in bf16: made in float32 and cast, the 13B and its text encoder would
    need twice the memory."""
    import torch

    previous = torch.get_default_dtype()
    with torch.device(device):
        torch.manual_seed(0)
        torch.set_default_dtype(torch.bfloat16)
        try:
            return make()
        finally:
            torch.set_default_dtype(previous)


def build_hunyuan15(folder: Path, device: str) -> Path:
    from diffusers import (AutoencoderKLHunyuanVideo15, FlowMatchEulerDiscreteScheduler,
                           HunyuanVideo15ImageToVideoPipeline, HunyuanVideo15Transformer3DModel)
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import (ByT5Tokenizer, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, SiglipImageProcessor,
                              SiglipVisionConfig, SiglipVisionModel, T5Config, T5EncoderModel)

    from video_gen.tiny.hunyuan15 import build_qwen_tokenizer

    source = folder.parent / f".{folder.name}-tokenizer"
    tokenizer = build_qwen_tokenizer(source)
    shutil.rmtree(source)

    def make():
        return dict(
            transformer=HunyuanVideo15Transformer3DModel().eval(), vae=AutoencoderKLHunyuanVideo15().eval(),
            text_encoder=Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
                **QWEN_7B_TEXT, bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))).eval(),
            text_encoder_2=T5EncoderModel(T5Config(**BYT5_SMALL)).eval(),
            image_encoder=SiglipVisionModel(SiglipVisionConfig(**SIGLIP_SO400M)).eval())

    parts = _born_in_bf16(device, make)
    pipe = HunyuanVideo15ImageToVideoPipeline(
        **parts, tokenizer=tokenizer, tokenizer_2=ByT5Tokenizer(), guider=ClassifierFreeGuidance(guidance_scale=6.0),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
        feature_extractor=SiglipImageProcessor(size={"height": 384, "width": 384}, image_mean=[0.5] * 3,
                                               image_std=[0.5] * 3))
    pipe.save_pretrained(folder)
    _free(device)
    return folder


def build_framepack_f1(folder: Path, device: str) -> Path:
    from diffusers import (AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoFramepackPipeline,
                           HunyuanVideoFramepackTransformer3DModel)
    from transformers import (CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel, SiglipImageProcessor,
                              SiglipVisionConfig, SiglipVisionModel)

    from video_gen.tiny.framepack import _record_llama_tokenizer_fast, build_clip_tokenizer, build_llama3_tokenizer

    source = folder.parent / f".{folder.name}-tokenizers"
    tokenizer, tokenizer_2 = build_llama3_tokenizer(source / "llama"), build_clip_tokenizer(source / "clip")
    shutil.rmtree(source)

    def make():
        return dict(
            transformer=HunyuanVideoFramepackTransformer3DModel(has_image_proj=True, image_proj_dim=1152,
                                                                has_clean_x_embedder=True).eval(),
            vae=AutoencoderKLHunyuanVideo().eval(),
            text_encoder=LlamaModel(LlamaConfig(**LLAMA_3_8B, bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.pad_token_id)).eval(),
            text_encoder_2=CLIPTextModel(CLIPTextConfig(**CLIP_L_TEXT)).eval(),
            image_encoder=SiglipVisionModel(SiglipVisionConfig(**SIGLIP_SO400M)).eval())

    parts = _born_in_bf16(device, make)
    HunyuanVideoFramepackPipeline(
        **parts, tokenizer=tokenizer, tokenizer_2=tokenizer_2, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        feature_extractor=SiglipImageProcessor(size={"height": 384, "width": 384}, image_mean=[0.5] * 3,
                                               image_std=[0.5] * 3)).save_pretrained(folder)
    _record_llama_tokenizer_fast(folder)
    _free(device)
    return folder


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
