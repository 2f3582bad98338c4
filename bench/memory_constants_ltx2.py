"""Measure LTX-2's activation constants for the memory estimator: `python bench/memory_constants_ltx2.py`.

The method of bench/memory_constants_ltx.py (bench/memory_constants.py's dispatch-mode `PeakTracker`: the peak of
live activation bytes, weights excluded) on LTX-2.0's architecture with random weights on the CPU, measured in
float32 and halved for bf16:

- the transformer at full width (diffusers' `LTX2VideoTransformer3DModel` with the 19B's config from diffusers'
  scripts/convert_ltx2_to_diffusers.py, version 2.0: video width 4096, audio width 2048) with 2 of its 48 blocks
  (without gradients a block's activations are freed before the next block runs), one call on the CFG batch of 2
  as the image-to-video pipeline makes it: a timestep per video token (the picture's tokens at 0), 1024 text
  tokens from the connectors. Three calls: more video tokens, more audio tokens, from one point, give bytes per
  (CFG batch x video token), per (CFG batch x audio token) and a base; measured with `use_cross_timestep` False
  (LTX-2.0's own behaviour, the transformer's default) and True (the pipelines' default, LTX-2.3's), which
  modulates the audio-video cross attention with one sigma per clip instead of one per video token;
- the video VAE decode (frame x output pixel) and the picture's encode (output pixel), two sizes each;
- the audio VAE decode plus the vocoder, per second of sound (two lengths);
- the text connectors at full width (projection of 49 x 3840 Gemma-3 states, 2 blocks of 3840) per (batch x text
  token), at 128 and 256 tokens (the registers' multiple), to scale to the pipeline's 1024. These run in bf16 here,
  not halved from float32: their normalisation (`per_layer_masked_mean_norm`) divides by a float32 tensor, so
  with bf16 states it makes float32 copies of the whole stack anyway.

The Gemma 3 12B encoder itself is not run here (12B weights); its stacked hidden states are counted exactly
instead: 49 states of (batch, tokens, 3840) stacked into one tensor while the 49 are still alive.

Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_constants import PeakTracker  # noqa: E402
from memory_constants_ltx import slope  # noqa: E402

HALF = 0.5  # fp32 on the CPU; bf16 activations are half the bytes
FPS = 24.0
AUDIO_LATENTS_PER_SECOND = 16000 / 160 / 4  # LTX-2's audio VAE: 16 kHz, hop 160, 4x in time
TEXT_TOKENS = 1024  # the pipelines' default max_sequence_length

# diffusers' scripts/convert_ltx2_to_diffusers.py, version "2.0" (what differs from the classes' defaults)
TRANSFORMER_2_0 = dict(rope_type="split", rope_double_precision=True, cross_attn_timestep_scale_multiplier=1000)
VIDEO_VAE_2_0 = dict(decoder_causal=False, spatial_compression_ratio=32, temporal_compression_ratio=8)
CONNECTORS_2_0 = dict(rope_type="split", rope_double_precision=True)


def transformer_peak(transformer, frames: int, height: int, width: int, sound: int, cross_timestep: bool) -> int:
    config = transformer.config
    video = frames * height * width
    with torch.no_grad(), PeakTracker() as tracker:
        transformer(
            hidden_states=torch.randn(2, video, config.in_channels),
            audio_hidden_states=torch.randn(2, sound, config.audio_in_channels),
            encoder_hidden_states=torch.randn(2, TEXT_TOKENS, config.caption_channels),
            audio_encoder_hidden_states=torch.randn(2, TEXT_TOKENS, config.caption_channels),
            timestep=torch.full((2, video), 500.0), audio_timestep=torch.tensor([500.0, 500.0]),
            sigma=torch.tensor([500.0, 500.0]), encoder_attention_mask=torch.ones(2, TEXT_TOKENS),
            audio_encoder_attention_mask=torch.ones(2, TEXT_TOKENS), num_frames=frames, height=height, width=width,
            fps=FPS, audio_num_frames=sound, use_cross_timestep=cross_timestep, return_dict=False)
    return tracker.peak


def decode_peak(vae, frames: int, height: int, width: int) -> int:
    latents = torch.randn(1, vae.config.latent_channels, frames, height, width)
    with torch.no_grad(), PeakTracker() as tracker:
        vae.decode(latents, None)
    return tracker.peak


def encode_peak(vae, height: int, width: int) -> int:
    with torch.no_grad(), PeakTracker() as tracker:
        vae.encode(torch.randn(1, 3, 1, height * 32, width * 32))
    return tracker.peak


def sound_peak(audio_vae, vocoder, latents: int) -> int:
    mel_bins = audio_vae.config.mel_bins // 4
    with torch.no_grad(), PeakTracker() as tracker:
        mel = audio_vae.decode(torch.randn(1, audio_vae.config.latent_channels, latents, mel_bins)).sample
        vocoder(mel)
    return tracker.peak


def connectors_peak(connectors, tokens: int) -> int:
    width = connectors.config.caption_channels * connectors.config.text_proj_in_factor
    states = torch.randn(2, tokens, width, dtype=connectors.dtype)
    mask = torch.ones(2, tokens, dtype=torch.int64)
    mask[:, : tokens // 2] = 0  # left padding, as Gemma's tokenizer pads
    with torch.no_grad(), PeakTracker() as tracker:
        connectors(states, mask, padding_side="left")
    return tracker.peak


def main() -> None:
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2TextConnectors, LTX2Vocoder

    started = time.perf_counter()
    torch.manual_seed(0)
    result = {}

    transformer = LTX2VideoTransformer3DModel(num_layers=2, **TRANSFORMER_2_0).eval()
    # latent frames x height x width, audio tokens: 5 latent frames are 33 frames, 1.375 s, 34 audio tokens.
    sizes = [(5, 6, 8, 34), (5, 8, 12, 34), (5, 6, 8, 134)]
    for cross_timestep in (False, True):
        (video0, sound0, peak0), (video1, _, peak1), (_, sound2, peak2) = [
            (f * h * w, sound, transformer_peak(transformer, f, h, w, sound, cross_timestep) * HALF)
            for f, h, w, sound in sizes]
        per_video = (peak1 - peak0) / (2 * (video1 - video0))
        per_audio = (peak2 - peak0) / (2 * (sound2 - sound0))
        key = "cross_timestep" if cross_timestep else "own_timestep"
        result[key] = dict(denoise_bytes_per_video_token=round(per_video),
                           denoise_bytes_per_audio_token=round(per_audio),
                           denoise_base_bytes=round(peak0 - per_video * 2 * video0 - per_audio * 2 * sound0),
                           points=[round(peak0), round(peak1), round(peak2)])
    del transformer
    result["transformer_sizes"] = sizes

    vae = AutoencoderKLLTX2Video(**VIDEO_VAE_2_0).eval()
    vae_sizes = [(2, 2, 3), (3, 2, 4)]
    decode_points = [(((f - 1) * 8 + 1) * h * 32 * w * 32, decode_peak(vae, f, h, w) * HALF) for f, h, w in vae_sizes]
    encode_points = [(h * 32 * w * 32, encode_peak(vae, h, w) * HALF) for _, h, w in vae_sizes]
    del vae
    (decode_rate, decode_base), (encode_rate, encode_base) = slope(decode_points), slope(encode_points)
    result.update(decode_bytes_per_pixel=round(decode_rate), decode_base_bytes=round(decode_base),
                  encode_bytes_per_pixel=round(encode_rate), encode_base_bytes=round(encode_base),
                  decode_points=decode_points, encode_points=encode_points)

    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=128, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=None,
        in_channels=2, resolution=256, latent_channels=8, norm_type="pixel", causality_axis="height",
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=64).eval()
    vocoder = LTX2Vocoder().eval()  # the class's defaults are LTX-2.0's vocoder (24 kHz)
    sound_points = [(latents / AUDIO_LATENTS_PER_SECOND, sound_peak(audio_vae, vocoder, latents) * HALF)
                    for latents in (25, 50)]
    del audio_vae, vocoder
    sound_rate, sound_base = slope(sound_points)
    result.update(sound_bytes_per_second=round(sound_rate), sound_base_bytes=round(sound_base),
                  sound_points=sound_points)

    connectors = LTX2TextConnectors(**CONNECTORS_2_0).to(torch.bfloat16).eval()
    text_points = [(2 * tokens, connectors_peak(connectors, tokens)) for tokens in (128, 256)]
    del connectors
    text_rate, text_base = slope(text_points)
    # The pipeline's text path, counted exactly: each prompt's 49 Gemma states (1, tokens, 3840) stacked into one
    # bf16 tensor while the 49 are alive (twice its size for a moment); the negative and positive prompts are then
    # concatenated into the CFG batch, and both that batch and the negative prompt's own stack stay referenced
    # until the pipeline returns (its `prompt_embeds` and `negative_prompt_embeds` locals).
    per_prompt = TEXT_TOKENS * 3840 * 49 * 2
    result.update(connector_bytes_per_text_token=round(text_rate), connector_base_bytes=round(text_base),
                  connector_points=text_points,
                  connectors_at_1024_tokens_cfg=round(text_base + text_rate * 2 * TEXT_TOKENS),
                  gemma_states_bytes_per_prompt=per_prompt, gemma_stack_peak_bytes=2 * per_prompt,
                  text_states_held_while_denoising=3 * per_prompt)

    result.update(seconds=round(time.perf_counter() - started, 1), torch=torch.__version__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
