"""LTX-2's models for the GPU runner (bench/gpu/cases.py's "ltx2-19b" and "ltx2-19b-distilled", run by
`bench/gpu/run.sh next`): LTX-2.0 at full size with random weights, so that time and memory are the real
model's, or the package's tiny LTX-2 for the CPU dry run (`run.sh next --cpu-tiny`).

Full size, in Lightricks/LTX-2's diffusers layout (the model_index.json of `video_gen/tiny/ltx2.py`): the
transformer from diffusers' converter's 2.0 config (48 blocks of width 4096, audio width 2048: 18.9 B
parameters), the text connectors, the video VAE (32x in space, 8x in time), the audio VAE and the 24 kHz
vocoder (the classes' defaults are LTX-2.0's), Gemma 3 12B (48 layers of width 3840 and its SigLIP tower: 12.2 B
stored) with a tiny Gemma tokenizer (token ids only: the prompt is padded to 1024 tokens, so the encoder's cost is
the real one), the scheduler the converter writes, and the x2 latent upsampler in latent_upsampler/. Each part is
initialised on the GPU in bf16 and written in fp8 (float8_e4m3fn): diffusers and transformers load fp8 files
into bf16 models (`dtype=torch.bfloat16`), and the bf16 files (66 GiB) would not fit the machine's 64 GiB disk
beside anything else. The weights are random either way; only their sizes and the FLOPs matter.

The distilled model is the same weights under a distilled name (links to the dev folder's parts): the app tells
distilled checkpoints by their names (no config says so) and runs their defaults (8 steps, guidance 1, every
guidance pass off), which is what its cases measure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

# Gemma 3 12B (google/gemma-3-12b-it's config: the text model and its SigLIP vision tower)
GEMMA3_12B_TEXT = dict(vocab_size=262208, hidden_size=3840, intermediate_size=15360, num_hidden_layers=48,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=256, max_position_embeddings=131072)
GEMMA3_12B_VISION = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                         image_size=896, patch_size=14)
# What diffusers' scripts/convert_ltx2_to_diffusers.py sets for version 2.0 beyond the classes' defaults
TRANSFORMER_2_0 = dict(rope_type="split", rope_double_precision=True, cross_attn_timestep_scale_multiplier=1000)
VIDEO_VAE_2_0 = dict(decoder_causal=False, spatial_compression_ratio=32, temporal_compression_ratio=8)
CONNECTORS_2_0 = dict(rope_type="split", rope_double_precision=True)


def build(folder: Path, tiny: bool, device: str = "cuda") -> None:
    """LTX-2 dev with random weights in `folder`: the tiny one, or the full-size one (module docstring)."""
    from tiny_models import build_tiny_ltx2

    if tiny:
        build_tiny_ltx2(folder, upsampler=True)
        return
    import torch
    from diffusers import (AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler,
                           LTX2VideoTransformer3DModel)
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel, LTX2TextConnectors, LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    from tiny_models import LTX2_MODEL_INDEX, LTX2_SCHEDULER_CONFIG, build_tiny_gemma_tokenizer

    folder = Path(folder)
    tokenizer = build_tiny_gemma_tokenizer(folder / "tokenizer")
    FlowMatchEulerDiscreteScheduler(**LTX2_SCHEDULER_CONFIG).save_pretrained(folder / "scheduler")
    where = device if torch.cuda.is_available() and device.startswith("cuda") else "cpu"

    def gemma():
        text = Gemma3TextConfig(**GEMMA3_12B_TEXT, pad_token_id=0, eos_token_id=1, bos_token_id=2)
        config = Gemma3Config(text_config=text.to_dict(), vision_config=SiglipVisionConfig(**GEMMA3_12B_VISION).to_dict(),
                              mm_tokens_per_image=256, boi_token_index=tokenizer.boi_token_id,
                              eoi_token_index=tokenizer.eoi_token_id, image_token_index=tokenizer.image_token_id)
        return Gemma3ForConditionalGeneration(config)

    parts = {
        "transformer": lambda: LTX2VideoTransformer3DModel(**TRANSFORMER_2_0),
        "text_encoder": gemma,
        "connectors": lambda: LTX2TextConnectors(**CONNECTORS_2_0),
        "vae": lambda: AutoencoderKLLTX2Video(**VIDEO_VAE_2_0),
        "audio_vae": lambda: AutoencoderKLLTX2Audio(),
        "vocoder": lambda: LTX2Vocoder(),
        "latent_upsampler": lambda: LTX2LatentUpsamplerModel(),
    }
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # half the memory while building (the transformer is 38 GB in bf16)
    try:
        for name, make in parts.items():
            with torch.device(where):  # random init is minutes on a CPU and seconds on a GPU
                module = make().eval()
            if name in ("transformer", "text_encoder", "connectors"):  # the big ones: fp8 on disk
                module = module.to(torch.float8_e4m3fn)
            module.save_pretrained(folder / name, safe_serialization=True)
            del module
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    finally:
        torch.set_default_dtype(previous)
    (folder / "model_index.json").write_text(json.dumps(LTX2_MODEL_INDEX, indent=2) + "\n", encoding="utf-8")


def link_distilled(folder: Path, dev: Path) -> None:
    """A distilled-named model over the dev model's parts (links, no copies)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part in Path(dev).iterdir():
        if part.is_dir():
            (folder / part.name).symlink_to(part.resolve(), target_is_directory=True)
    (folder / "model_index.json").write_text((Path(dev) / "model_index.json").read_text(), encoding="utf-8")
    (folder / "README.md").write_text("# LTX-2 19B distilled (random weights; the dev model's, linked)\n",
                                      encoding="utf-8")
