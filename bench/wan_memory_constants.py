"""Measure Wan's activation constants for `video_gen.memory`: `python bench/wan_memory_constants.py`.

The method of bench/memory_constants.py (its `PeakTracker`: live bytes of every tensor storage made during a
call), on Wan's full-size widths with random weights on the CPU in float32:
- the transformer: Wan 2.1 I2V 14B's block (width 5120, FFN 13824, 40 heads, CLIP image tokens) with ONE block
  (`--blocks`): the blocks run one after another and only the residual stream passes between them, so the peak
  of activations does not grow with the block count (the weights do, and the estimator counts those apart).
  Wan runs classifier-free guidance as two calls of batch 1 (diffusers' WanImageToVideoPipeline), so the constant
  is per token of one call: latent frame x (height / 16) x (width / 16), patch 2 over the 8x VAE;
- the Wan 2.1 VAE decode (base width 96), which decodes one latent frame (4 output frames) at a time.
Both are fitted as a line through two sizes and printed in fp16/bf16 bytes (half of float32's) as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from memory_constants import PeakTracker  # noqa: E402

from gpu_wan import TRANSFORMERS, VAE_21  # noqa: E402


def transformer_peak(model, latent_frames: int, height: int, width: int) -> int:
    latents = torch.randn(1, 36, latent_frames, height, width)
    text = torch.randn(1, 512, 4096)
    image = torch.randn(1, 257, 1280)
    with torch.no_grad(), PeakTracker() as tracker:
        model(hidden_states=latents, timestep=torch.tensor([500.0]), encoder_hidden_states=text,
              encoder_hidden_states_image=image, return_dict=False)
    return tracker.peak


def decode_peak(vae, latent_frames: int, height: int, width: int) -> int:
    latents = torch.randn(1, 16, latent_frames, height, width)
    with torch.no_grad(), PeakTracker() as tracker:
        vae.decode(latents, return_dict=False)
    return tracker.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=1)
    args = parser.parse_args()
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    torch.manual_seed(0)
    started = time.perf_counter()
    model = WanTransformer3DModel(**{**TRANSFORMERS["i2v-14b-480p"], "num_layers": args.blocks}).eval()
    sizes = [(2, 8, 8), (3, 16, 16)]  # latent (frames, height, width): tokens = f x h/2 x w/2
    peaks = [transformer_peak(model, *size) for size in sizes]
    tokens = [frames * (height // 2) * (width // 2) for frames, height, width in sizes]
    per_token = (peaks[1] - peaks[0]) / (tokens[1] - tokens[0])
    base = peaks[0] - per_token * tokens[0]
    del model

    vae = AutoencoderKLWan(**VAE_21).eval()
    decode_sizes = [(2, 8, 8), (2, 16, 16)]  # 5 output frames at 64x64 and 128x128
    decode_peaks = [decode_peak(vae, *size) for size in decode_sizes]
    pixels = [height * 8 * width * 8 for _, height, width in decode_sizes]
    # A latent frame (4 output frames) is decoded at a time: bytes per (frame in flight x output pixel)
    per_pixel = (decode_peaks[1] - decode_peaks[0]) / (pixels[1] - pixels[0]) / 4
    print(json.dumps({
        "transformer_bytes_per_token_fp16": round(per_token / 2), "transformer_base_bytes_fp16": round(base / 2),
        "transformer_peaks_fp32": dict(zip(map(str, tokens), peaks)),
        "decode_bytes_per_pixel_fp16": round(per_pixel / 2),
        "decode_peaks_fp32": dict(zip(map(str, pixels), decode_peaks)),
        "blocks": args.blocks, "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
