"""Measure HunyuanVideo 1.5's and FramePack's activation constants: `python bench/memory_constants_hunyuan.py`
(the transformers, ~2.5 minutes on 2 cores), `--only vae` (the two VAEs' decodes at full width, ~5 minutes).

The method of bench/memory_constants.py (its dispatch-mode `PeakTracker`: the peak of live bytes of every tensor
storage made during a call, weights excluded), on the full-width transformers with random weights on the CPU in
float32, with few blocks (`--blocks`, default 1 of each kind): without gradients a block's activations are freed
before the next one runs, so the peak does not grow with the block count (the weights do; the estimator counts
those apart). Printed in bf16 bytes (half of float32's) as one JSON line.

- HunyuanVideo 1.5 (diffusers' default `HunyuanVideo15Transformer3DModel` config is the 480p I2V model's: width
  2048, 54 blocks, text 3584 / 1472 / image 1152 wide). One call is batch 1: its guider runs the conditional and
  the unconditional prediction as two calls. Its sequence is the latent tokens (frames x h/16 x w/16, patch 1)
  plus 1000 Qwen + 256 ByT5 + 729 SigLIP tokens, padding included, and every attention builds a dense boolean
  mask over that whole sequence, twice over (`HunyuanVideo15AttnProcessor2_0`: a `repeat` to S x S and the `&`
  of it with its transpose, S^2 bytes each, both alive during the attention), and scaled-dot-product attention
  turns a boolean mask into an additive one in the query's dtype (S^2 x 4 bytes in float32 on the CPU, measured;
  2 in bf16). So one block's attention is measured alone at three sizes for its S^2 coefficient, and the whole
  transformer's peaks, less that S^2 term, give the per-token line. The S^2 term is printed in float32 and as
  its bf16 expectation (2 bool + 2 bf16 bytes), which a GPU run must confirm.
- FramePack (`HunyuanVideoFramepackTransformer3DModel`, lllyasviel/FramePackI2V_HY's config: width 3072, 20
  double + 40 single blocks, history embedder and image projection on). One call per step (distilled guidance;
  true CFG off), batch 1, so no attention mask. Its sequence per section is constant in the video's length:
  (latent_window_size + 2) x (h/16)(w/16) latent and clean tokens + ceil(h/32)ceil(w/32) 2x-history tokens
  + 4 ceil(h/64)ceil(w/64) 4x-history tokens (`framepack_tokens`), plus the prompt's tokens and 729 SigLIP ones.
  A line through two sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_constants import PeakTracker  # noqa: E402

HY15_TEXT_TOKENS = 1000 + 256 + 729  # Qwen (tokenizer_max_length) + ByT5 (tokenizer_2_max_length) + SigLIP
FRAMEPACK_PROMPT_TOKENS = 64  # valid Llama tokens kept (batch 1 drops the padding) + 729 SigLIP below


def framepack_tokens(height: int, width: int, latent_window_size: int = 9) -> int:
    """Latent-side tokens of one FramePack transformer call at (height, width) pixels (VAE 8x, patch 2)."""
    return ((latent_window_size + 2) * (height // 16) * (width // 16)
            + math.ceil(height / 32) * math.ceil(width / 32) + 4 * math.ceil(height / 64) * math.ceil(width / 64))


def hunyuan15_peak(model, frames: int, height: int, width: int) -> int:
    """One call of batch 1 at latent (frames, height, width); valid text: 40 Qwen, 8 ByT5, all 729 image."""
    qwen_mask = torch.zeros(1, 1000)
    qwen_mask[:, :40] = 1
    byt5_mask = torch.zeros(1, 256)
    byt5_mask[:, :8] = 1
    inputs = dict(
        hidden_states=torch.randn(1, model.config.in_channels, frames, height, width),
        timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, 1000, model.config.text_embed_dim), encoder_attention_mask=qwen_mask,
        encoder_hidden_states_2=torch.randn(1, 256, model.config.text_embed_2_dim),
        encoder_attention_mask_2=byt5_mask, image_embeds=torch.randn(1, 729, model.config.image_embed_dim),
    )
    with torch.no_grad(), PeakTracker() as tracker:
        model(**inputs, return_dict=False)
    return tracker.peak


def attention_peak(model, sequence: int, text: int = HY15_TEXT_TOKENS) -> int:
    """One block's attention alone at sequence length `sequence` (latent + text tokens), batch 1, 40 valid."""
    width = model.config.num_attention_heads * model.config.attention_head_dim
    mask = torch.zeros(1, text, dtype=torch.bool)
    mask[:, :40] = True
    attention = model.transformer_blocks[0].attn
    with torch.no_grad(), PeakTracker() as tracker:
        attention(hidden_states=torch.randn(1, sequence - text, width),
                  encoder_hidden_states=torch.randn(1, text, width), attention_mask=mask)
    return tracker.peak


def quadratic(sequences: list[int], peaks: list[int]) -> list[float]:
    """(a, b, c) of peak = a + b S + c S^2 through three points."""
    rows = torch.tensor([[1.0, s, s * s] for s in sequences], dtype=torch.float64)
    return torch.linalg.solve(rows, torch.tensor(peaks, dtype=torch.float64)).tolist()


def framepack_peak(model, height: int, width: int, latent_window_size: int = 9) -> int:
    """One call of batch 1 for a section at latent (height, width), vanilla (F1) history layout."""
    latent = dict(height=height, width=width)
    frames = torch.arange(0, 1 + 16 + 2 + 1 + latent_window_size)
    prefix, history_4x, history_2x, history_1x, window = frames.split([1, 16, 2, 1, latent_window_size])
    channels = model.config.in_channels
    inputs = dict(
        hidden_states=torch.randn(1, channels, latent_window_size, *latent.values()),
        timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, FRAMEPACK_PROMPT_TOKENS, model.config.text_embed_dim),
        encoder_attention_mask=torch.ones(1, FRAMEPACK_PROMPT_TOKENS),
        pooled_projections=torch.randn(1, model.config.pooled_projection_dim),
        image_embeds=torch.randn(1, 729, model.config.image_proj_dim),
        indices_latents=window, guidance=torch.tensor([9000.0]),
        latents_clean=torch.randn(1, channels, 2, *latent.values()),
        indices_latents_clean=torch.cat([prefix, history_1x]),
        latents_history_2x=torch.randn(1, channels, 2, *latent.values()), indices_latents_history_2x=history_2x,
        latents_history_4x=torch.randn(1, channels, 16, *latent.values()), indices_latents_history_4x=history_4x,
    )
    with torch.no_grad(), PeakTracker() as tracker:
        model(**inputs, return_dict=False)
    return tracker.peak


def decode_peak(vae, latent_frames: int, height: int, width: int) -> int:
    """One VAE decode of (latent frames, height, width) latents, batch 1, its weights excluded."""
    latents = torch.randn(1, vae.config.latent_channels, latent_frames, height, width)
    with torch.no_grad(), PeakTracker() as tracker:
        vae.decode(latents, return_dict=False)
    return tracker.peak


def vae_constants(vae, latent_frames: int, sizes: list[int], spatial: int) -> dict:
    """Bytes per (decoded frame x output pixel) (bf16: half of float32) of a decode of `latent_frames` latent
    frames, a line through two square latent sizes."""
    frames = (latent_frames - 1) * 4 + 1
    points = [(frames * (side * spatial) ** 2, decode_peak(vae, latent_frames, side, side)) for side in sizes]
    rate = (points[1][1] - points[0][1]) / (points[1][0] - points[0][0])
    return {"decode_bytes_per_pixel_bf16": round(rate / 2), "decode_base_bytes_bf16": round(
        (points[0][1] - rate * points[0][0]) / 2), "frames": frames, "points_fp32": points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--only", choices=("hunyuan15", "framepack", "vae"))
    args = parser.parse_args()
    if args.only == "vae":  # the two VAEs' decodes at full width (minutes on a CPU)
        from diffusers import AutoencoderKLHunyuanVideo, AutoencoderKLHunyuanVideo15

        torch.manual_seed(0)
        started = time.perf_counter()
        # FramePack's HunyuanVideo VAE decodes a section 16 frames at a time (framewise): 5 latent frames -> 17
        framepack = vae_constants(AutoencoderKLHunyuanVideo().eval(), 5, [16, 24], 8)
        # HunyuanVideo 1.5's decodes all frames at once (or in spatial tiles of all frames): 2 latent frames -> 5
        hunyuan15 = vae_constants(AutoencoderKLHunyuanVideo15().eval(), 2, [8, 12], 16)
        print(json.dumps({"framepack_vae": framepack, "hunyuan15_vae": hunyuan15,
                          "seconds": round(time.perf_counter() - started, 1)}))
        return
    from diffusers import HunyuanVideo15Transformer3DModel, HunyuanVideoFramepackTransformer3DModel

    torch.manual_seed(0)
    started = time.perf_counter()
    result: dict = {"blocks": args.blocks, "torch": torch.__version__}
    if args.only != "framepack":
        model = HunyuanVideo15Transformer3DModel(num_layers=args.blocks).eval()
        sizes = [(1, 16, 16), (2, 32, 32), (4, 32, 32)]  # latent frames, h/16, w/16 (patch 1)
        sequences = [f * h * w + HY15_TEXT_TOKENS for f, h, w in sizes]
        attention_peaks = [attention_peak(model, sequence) for sequence in sequences]
        squared = quadratic(sequences, attention_peaks)[2]  # float32 bytes per S^2 of one attention
        peaks = [hunyuan15_peak(model, *size) for size in sizes]
        linear = [peak - squared * sequence ** 2 for peak, sequence in zip(peaks, sequences)]
        rate = (linear[2] - linear[0]) / (sequences[2] - sequences[0])
        del model
        result["hunyuan15"] = {
            "bytes_per_token_bf16": round(rate / 2), "base_bytes_bf16": round((linear[0] - rate * sequences[0]) / 2),
            "bytes_per_token_squared_fp32": round(squared, 3), "bytes_per_token_squared_bf16_expected": 4,
            "sequence_lengths": sequences, "peaks_fp32": peaks, "attention_peaks_fp32": attention_peaks,
            "linear_check_fp32": [round(value) for value in linear],
            "note": "S = latent tokens + 1985 text/image tokens (padding included)",
        }
    if args.only != "hunyuan15":
        model = HunyuanVideoFramepackTransformer3DModel(
            num_layers=args.blocks, num_single_layers=args.blocks, has_image_proj=True, image_proj_dim=1152,
            has_clean_x_embedder=True).eval()
        sizes = [(16, 16), (24, 24)]  # latent h, w (pixels / 8)
        peaks = [framepack_peak(model, *size) for size in sizes]
        tokens = [framepack_tokens(h * 8, w * 8) for h, w in sizes]
        rate = (peaks[1] - peaks[0]) / (tokens[1] - tokens[0])
        del model
        result["framepack"] = {
            "bytes_per_token_bf16": round(rate / 2), "base_bytes_bf16": round((peaks[0] - rate * tokens[0]) / 2),
            "latent_tokens": tokens, "peaks_fp32": peaks,
            "tokens_640x640": framepack_tokens(640, 640), "tokens_832x480": framepack_tokens(832, 480),
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
