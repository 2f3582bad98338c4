"""Measure LTX-Video's activation constants for the memory estimator: `python bench/memory_constants_ltx.py`.

The method of bench/memory_constants.py (its dispatch-mode `PeakTracker`: the peak of live activation bytes,
weights excluded) on LTX-Video 2B's architecture with random weights on the CPU: the transformer at full
width (diffusers' default `LTXVideoTransformer3DModel` config is the 2B's) with 2 of its 28 blocks (without
gradients a block's activations are freed before the next block runs, so the peak does not grow with the
block count), with classifier-free guidance's batch of 2; the VAE decode (diffusers' default
`AutoencoderKLLTXVideo`, 0.9.0's; the timestep conditioning of later VAEs adds no activations
of note) and the VAE encode of the first picture, each
at two sizes. A line through the two points gives bytes per (CFG batch x latent token) and per (decoded frame
x output pixel), halved for bf16 (measured in fp32). Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_constants import PeakTracker  # noqa: E402


def transformer_peak(transformer, frames: int, height: int, width: int) -> int:
    tokens = frames * height * width
    hidden = torch.randn(2, tokens, transformer.config.in_channels)
    text = torch.randn(2, 128, transformer.config.caption_channels)
    mask = torch.ones(2, 128)
    with torch.no_grad(), PeakTracker() as tracker:
        transformer(hidden_states=hidden, encoder_hidden_states=text, timestep=torch.tensor([500.0, 500.0]),
                    encoder_attention_mask=mask, num_frames=frames, height=height, width=width, return_dict=False)
    return tracker.peak


def decode_peak(vae, frames: int, height: int, width: int) -> int:
    latents = torch.randn(1, vae.config.latent_channels, frames, height, width)
    with torch.no_grad(), PeakTracker() as tracker:
        vae.decode(latents, temb=torch.tensor([0.05]) if vae.config.timestep_conditioning else None)
    return tracker.peak


def encode_peak(vae, height: int, width: int) -> int:
    with torch.no_grad(), PeakTracker() as tracker:
        vae.encode(torch.randn(1, 3, 1, height * 32, width * 32))
    return tracker.peak


def slope(points):
    (x0, y0), (x1, y1) = points
    rate = (y1 - y0) / (x1 - x0)
    return rate, y0 - rate * x0


def main() -> None:
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel

    started = time.perf_counter()
    torch.manual_seed(0)
    sizes = [(2, 4, 4), (3, 4, 8)]  # latent frames x height x width (8 frames and 32x32 pixels per latent)
    half = 0.5  # fp32 on the CPU; bf16 activations are half the bytes
    transformer = LTXVideoTransformer3DModel(num_layers=2).eval()
    transformer_points = [(2 * f * h * w, transformer_peak(transformer, f, h, w) * half) for f, h, w in sizes]
    del transformer
    vae = AutoencoderKLLTXVideo().eval()
    decode_points = [(((f - 1) * 8 + 1) * h * 32 * w * 32, decode_peak(vae, f, h, w) * half) for f, h, w in sizes]
    encode_points = [(h * 32 * w * 32, encode_peak(vae, h, w) * half) for _, h, w in sizes]
    token_rate, token_base = slope(transformer_points)
    decode_rate, decode_base = slope(decode_points)
    encode_rate, encode_base = slope(encode_points)
    print(json.dumps({
        "denoise_bytes_per_token": round(token_rate), "denoise_base_bytes": round(token_base),
        "decode_bytes_per_pixel": round(decode_rate), "decode_base_bytes": round(decode_base),
        "encode_bytes_per_pixel": round(encode_rate), "encode_base_bytes": round(encode_base),
        "transformer_points": transformer_points, "decode_points": decode_points, "encode_points": encode_points,
        "sizes": sizes, "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
