"""Tiny REAL LTX-2 models with random weights, for tests and the CPU mode of the LTX-2 benchmarks.

`build_tiny_ltx2` saves the real diffusers LTX-2 classes in the layout of Lightricks/LTX-2's diffusers weights
(model_index.json naming `LTX2Pipeline`; transformer/, vae/, audio_vae/, vocoder/, connectors/, text_encoder/ (Gemma 3),
tokenizer/, scheduler/, and latent_upsampler/ beside them as that repository keeps it). `build_tiny_ltx2_upsampler`
saves an `LTX2LatentUpsamplePipeline` folder (vae/ + latent_upsampler/). `save_ltx2_transformer` writes the
transformer alone in LTX-2's own key names: a `.safetensors` as the official transformer-only files are (with the
`model.diffusion_model.` prefix and the text connectors inside, as in ltx-2-19b-dev.safetensors), or a `.gguf` as
the community GGUF files are; `save_ltx2_single_file` writes the whole official single file (transformer +
connectors, video VAE, audio VAE, vocoder under their own prefixes).

The sizes keep what the app's rules hang on: the video VAE compresses 32x in space and 8x in time (so sizes are
multiples of 32 and frame counts 8k+1, as with the real one), the audio VAE runs at 16 kHz with a 160-sample hop and
the vocoder turns 100 mel frames a second into 24 kHz stereo (LTX-2.0's 240x upsampling), and the connectors have
128 learnable registers (so `max_sequence_length` must be a multiple of 128, as on LTX-2.0). Everything else is a
few channels wide: the folder is 4 MB (float32) and builds in 0.07 CPU s once diffusers and transformers are
imported (their import is 4.4 CPU s on the 2-core test machine); the same seed gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_LTX2_LATENT_CHANNELS = 8  # video latent channels (LTX-2's own: 128)
TINY_LTX2_TEXT_WIDTH = 32  # Gemma 3's hidden size here (12B: 3840)
TINY_LTX2_TEXT_LAYERS = 2  # Gemma 3 layers here (12B: 48), so the connectors stack 3 hidden states (12B: 49)
TINY_LTX2_REGISTERS = 128  # the connectors' learnable registers: LTX-2.0's own count, kept for its rule
TINY_LTX2_SAMPLE_RATE = 24000  # the vocoder's output rate, LTX-2.0's (LTX-2.3's vocoder with BWE: 48000)

# The scheduler LTX-2's diffusers weights ship (scripts/convert_ltx2_to_diffusers.py in diffusers; the same values
# are in the published scheduler_config.json files): a dynamic shift over 1024..4096 tokens and a terminal
# stretch to 0.1, which is why a single step gives NaN.
LTX2_SCHEDULER_CONFIG = {"use_dynamic_shifting": True, "base_shift": 0.95, "max_shift": 2.05,
                         "base_image_seq_len": 1024, "max_image_seq_len": 4096, "shift_terminal": 0.1}

# model_index.json as Lightricks/LTX-2 publishes it (its diffusers weights, "_diffusers_version": "0.37.0.dev0"):
# the connectors and the vocoder are recorded under the library "ltx2" (diffusers.pipelines.ltx2), the tokenizer
# as GemmaTokenizerFast (transformers 5 keeps that name as an alias of GemmaTokenizer), and no optional components.
LTX2_MODEL_INDEX = {
    "_class_name": "LTX2Pipeline",
    "_diffusers_version": "0.37.0.dev0",
    "audio_vae": ["diffusers", "AutoencoderKLLTX2Audio"],
    "connectors": ["ltx2", "LTX2TextConnectors"],
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "Gemma3ForConditionalGeneration"],
    "tokenizer": ["transformers", "GemmaTokenizerFast"],
    "transformer": ["diffusers", "LTX2VideoTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLLTX2Video"],
    "vocoder": ["ltx2", "LTX2Vocoder"],
}


# Gemma 3's chat and picture tokens (its tokenizer's extra special tokens), which prompt enhancement uses.
GEMMA3_TURN_TOKENS = ("<start_of_turn>", "<end_of_turn>")
GEMMA3_IMAGE_TOKENS = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                       "image_token": "<image_soft_token>"}
# Gemma 3's chat template reduced to what LTX-2's prompt enhancement sends: a system turn (folded into the first
# user turn, as Gemma's own template does), a user turn of text or of a picture and text, the model's turn opened.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set system = '' %}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set system = message['content'] + '\n\n' %}{% else %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n{{ system }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def build_tiny_gemma_tokenizer(path: str | Path):
    """A real GemmaTokenizerFast over a tiny byte-fallback BPE built here with the `tokenizers` library, set up as
    Gemma 3's own tokenizer.json is: <pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4, the 256 byte tokens, spaces
    written as "▁", <bos> put in front of every text, the turn and picture tokens as special tokens. Any text
    tokenizes (unknown letters fall back to bytes)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import GemmaTokenizerFast

    specials = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", *GEMMA3_TURN_TOKENS, *GEMMA3_IMAGE_TOKENS.values())
    vocab = {token: index for index, token in enumerate(specials)}
    vocab.update({f"<0x{byte:02X}>": len(vocab) + byte for byte in range(256)})
    for char in "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-":
        vocab[char] = len(vocab)
    merges = []
    for word in ("▁a", "▁the", "▁cat", "▁dog", "▁red", "▁walks", "▁sings", "▁rain"):
        piece = word[0]
        for char in word[1:]:
            if (piece, char) not in merges:
                merges.append((piece, char))
            piece += char
            vocab.setdefault(piece, len(vocab))
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous", invert=False)
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                           special_tokens=[("<bos>", 2)])
    backend.add_special_tokens(list(specials))
    tokenizer = GemmaTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", padding_side="left",
                                   extra_special_tokens=dict(GEMMA3_IMAGE_TOKENS))
    tokenizer.save_pretrained(path)
    return GemmaTokenizerFast.from_pretrained(path)


def _tiny_gemma3(tokenizer):
    """Gemma3ForConditionalGeneration (the class LTX-2 records) with a two-layer text model and a one-layer SigLIP
    of 28x28 pictures in 4 tokens (the vision tower is only used by prompt enhancement with a picture)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    text = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=TINY_LTX2_TEXT_WIDTH, intermediate_size=64,
                            num_hidden_layers=TINY_LTX2_TEXT_LAYERS, num_attention_heads=2, num_key_value_heads=1,
                            head_dim=16, max_position_embeddings=2048, pad_token_id=0, eos_token_id=1,
                            bos_token_id=2)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    config = Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4,
                          boi_token_index=tokenizer.boi_token_id, eoi_token_index=tokenizer.eoi_token_id,
                          image_token_index=tokenizer.image_token_id)
    return Gemma3ForConditionalGeneration(config).eval()


def _save_tiny_processor(path: Path, tokenizer) -> None:
    """A Gemma3Processor (the tokenizer, a 28x28 Gemma 3 image processor, the chat template) in processor/, as
    diffusers' LTX-2.3 folders ship one for prompt enhancement."""
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    images = Gemma3ImageProcessor(size={"height": 28, "width": 28})
    Gemma3Processor(image_processor=images, tokenizer=tokenizer, chat_template=GEMMA3_CHAT_TEMPLATE,
                    image_seq_length=4).save_pretrained(path)


def _tiny_components(seed: int) -> dict:
    import torch
    from diffusers import (AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler,
                           LTX2VideoTransformer3DModel)
    from diffusers.pipelines.ltx2 import LTX2TextConnectors, LTX2Vocoder

    torch.manual_seed(seed)
    components = {"scheduler": FlowMatchEulerDiscreteScheduler(**LTX2_SCHEDULER_CONFIG)}
    # LTX-2.0's transformer (scripts/convert_ltx2_to_diffusers.py, version "2.0") at two blocks of width 32 (the
    # smallest that Q8_0's 32-wide blocks quantise, so a GGUF of it holds quantised weights); the audio stream
    # takes 2 latent channels x 4 latent mel bins = 8 features per token.
    components["transformer"] = LTX2VideoTransformer3DModel(
        in_channels=TINY_LTX2_LATENT_CHANNELS, out_channels=TINY_LTX2_LATENT_CHANNELS, patch_size=1, patch_size_t=1,
        num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32, vae_scale_factors=(8, 32, 32),
        audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=2, audio_attention_head_dim=16,
        audio_cross_attention_dim=32, audio_scale_factor=4, audio_sampling_rate=16000, audio_hop_length=160,
        num_layers=2, caption_channels=TINY_LTX2_TEXT_WIDTH, rope_type="split", rope_double_precision=True,
        causal_offset=1, timestep_scale_multiplier=1000, cross_attn_timestep_scale_multiplier=1000)
    # The connectors: LTX-2.0's (one projection of the 3 stacked Gemma states, 128 registers per connector).
    components["connectors"] = LTX2TextConnectors(
        caption_channels=TINY_LTX2_TEXT_WIDTH, text_proj_in_factor=TINY_LTX2_TEXT_LAYERS + 1,
        video_connector_num_attention_heads=2, video_connector_attention_head_dim=16, video_connector_num_layers=1,
        video_connector_num_learnable_registers=TINY_LTX2_REGISTERS, audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=16, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=TINY_LTX2_REGISTERS, connector_rope_base_seq_len=4096,
        rope_theta=10000.0, rope_double_precision=True, causal_temporal_positioning=False, rope_type="split")
    # LTX-2.0's video VAE layout (patch 4, then spatial / temporal / spatiotemporal x2 downsampling: 32x in space,
    # 8x in time), one layer per block and a few channels.
    components["vae"] = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=TINY_LTX2_LATENT_CHANNELS, block_out_channels=(8, 16, 32, 32),
        decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, True),
        decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False, False, False, False),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=False,
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
        spatial_compression_ratio=32, temporal_compression_ratio=8)
    # LTX-2.0's audio VAE at 16 kHz, hop 160, (1, 2, 4) so the mel axis shrinks 4x; 16 mel bins (LTX-2: 64) and 2
    # latent channels give 2 x 4 = 8 features per audio token, which is also the size of its latent statistics.
    components["audio_vae"] = AutoencoderKLLTX2Audio(
        base_channels=8, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=None,
        in_channels=2, resolution=256, latent_channels=2, norm_type="pixel", causality_axis="height", dropout=0.0,
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=16)
    # 100 mel frames a second x (6 * 5 * 8) = 24000 samples a second, stereo, as LTX-2.0's vocoder (6,5,2,2,2).
    components["vocoder"] = LTX2Vocoder(
        in_channels=2 * 16, hidden_channels=32, out_channels=2, upsample_kernel_sizes=[12, 11, 16],
        upsample_factors=[6, 5, 8], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1, output_sampling_rate=TINY_LTX2_SAMPLE_RATE)
    return components


def build_tiny_ltx2(path: str | Path, *, distilled: bool = False, seed: int = 0, upsampler: bool = True,
                    processor: bool = False) -> Path:
    """A tiny random LTX-2 (2.0) saved in the layout of Lightricks/LTX-2's diffusers weights, loadable with
    `LTX2Pipeline`, `LTX2ImageToVideoPipeline` and `LTX2ConditionPipeline.from_pretrained`.

    `distilled` builds other random weights (seed + 1) and a model card naming the folder a distilled checkpoint:
    no config field of LTX-2's classes says "distilled" (diffusers' docs load rootonchair/LTX-2-19b-distilled with
    the same `LTX2Pipeline` and pass the distilled sigmas and guidance 1 by hand), so the name is what tells them
    apart, as for LTX-Video. `upsampler` adds latent_upsampler/ (an `LTX2LatentUpsamplerModel`), as
    Lightricks/LTX-2 keeps its x2 spatial upsampler beside the pipeline's folders. `processor` adds processor/ (a
    Gemma3Processor, listed in model_index.json), which `enable_prompt_enhancement` and `enhance_prompt` need:
    Lightricks/LTX-2's own folder has none, diffusers' LTX-2.3 folders do.
    """
    import torch

    path = Path(path)
    tokenizer = build_tiny_gemma_tokenizer(path / "tokenizer")
    components = _tiny_components(seed + 1 if distilled else seed)
    torch.manual_seed(seed + 2)
    text_encoder = _tiny_gemma3(tokenizer)
    for name, component in components.items():
        if name == "scheduler":
            component.save_pretrained(path / name)
        else:
            component.eval().save_pretrained(path / name, safe_serialization=True)
    text_encoder.save_pretrained(path / "text_encoder", safe_serialization=True)
    model_index = dict(LTX2_MODEL_INDEX)
    if processor:
        _save_tiny_processor(path / "processor", tokenizer)
        model_index["processor"] = ["transformers", "Gemma3Processor"]
    (path / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n", encoding="utf-8")
    if upsampler:
        _tiny_upsampler(seed).save_pretrained(path / "latent_upsampler", safe_serialization=True)
    if distilled:
        (path / "README.md").write_text(
            "---\nlibrary_name: diffusers\ntags:\n- ltx-2\n- distilled\n---\n\n"
            "# Tiny LTX-2 distilled (random weights)\n\n"
            "Runs in 8 steps with guidance 1 and diffusers' `DISTILLED_SIGMA_VALUES`, as LTX-2 19B distilled.\n",
            encoding="utf-8")
    return path


def _tiny_upsampler(seed: int):
    import torch
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    torch.manual_seed(seed + 3)
    # mid_channels: GroupNorm(32, ...) inside needs a multiple of 32 (LTX-2's own: 1024).
    return LTX2LatentUpsamplerModel(in_channels=TINY_LTX2_LATENT_CHANNELS, mid_channels=32, num_blocks_per_stage=1,
                                    dims=3, spatial_upsample=True, temporal_upsample=False,
                                    rational_spatial_scale=2.0).eval()


def build_tiny_ltx2_upsampler(path: str | Path, model_folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny random x2 latent upsampler for `build_tiny_ltx2`'s latents, saved as an `LTX2LatentUpsamplePipeline`
    folder (model_index.json, vae/ from `model_folder`, latent_upsampler/), as diffusers' converter writes
    `--upsample_pipeline` and the community's LTX-2.3 upsampler repositories are laid out."""
    from diffusers import AutoencoderKLLTX2Video, LTX2LatentUpsamplePipeline

    vae = AutoencoderKLLTX2Video.from_pretrained(Path(model_folder) / "vae")
    LTX2LatentUpsamplePipeline(vae=vae, latent_upsampler=_tiny_upsampler(seed)).save_pretrained(
        path, safe_serialization=True)
    return Path(path)


# ---- the official single files --------------------------------------------------------------------------------
# diffusers' converters (diffusers/loaders/single_file_utils.py: convert_ltx2_transformer_to_diffusers,
# convert_ltx2_vae_to_diffusers, convert_ltx2_audio_vae_to_diffusers) rename LTX-2's own keys to diffusers' ones;
# these tables invert them for the tiny model. The connectors and the vocoder are renamed only by
# scripts/convert_ltx2_to_diffusers.py (no single-file loader exists for them in diffusers 0.42.1).
_TRANSFORMER_RENAMES = (  # diffusers -> LTX-2, applied in this order
    ("audio_proj_in", "audio_patchify_proj"), ("proj_in", "patchify_proj"),
    ("av_cross_attn_video_scale_shift", "av_ca_video_scale_shift_adaln_single"),
    ("av_cross_attn_video_a2v_gate", "av_ca_a2v_gate_adaln_single"),
    ("av_cross_attn_audio_scale_shift", "av_ca_audio_scale_shift_adaln_single"),
    ("av_cross_attn_audio_v2a_gate", "av_ca_v2a_gate_adaln_single"),
    ("video_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_video"),
    ("audio_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_audio"),
    ("norm_q", "q_norm"), ("norm_k", "k_norm"))
_CONNECTOR_RENAMES = (("video_connector", "video_embeddings_connector"),
                      ("audio_connector", "audio_embeddings_connector"),
                      ("transformer_blocks", "transformer_1d_blocks"), ("norm_q", "q_norm"), ("norm_k", "k_norm"))
_VOCODER_RENAMES = (("upsamplers", "ups"), ("resnets", "resblocks"), ("conv_in", "conv_pre"),
                    ("conv_out", "conv_post"))
_VIDEO_VAE_ENCODER = (("mid_block", "down_blocks.8"),) + tuple(
    pair for level in (3, 2, 1, 0) for pair in ((f"down_blocks.{level}.downsamplers.0", f"down_blocks.{2 * level + 1}"),
                                                (f"down_blocks.{level}", f"down_blocks.{2 * level}")))
_VIDEO_VAE_DECODER = (("mid_block", "up_blocks.0"),) + tuple(
    pair for level in (2, 1, 0) for pair in ((f"up_blocks.{level}.upsamplers.0", f"up_blocks.{2 * level + 1}"),
                                             (f"up_blocks.{level}", f"up_blocks.{2 * level + 2}")))


def _renamed(name: str, renames) -> str:
    for diffusers_name, original in renames:
        name = name.replace(diffusers_name, original)
    return name


def _original_transformer_name(name: str) -> str:
    if name.startswith("time_embed."):
        name = "adaln_single." + name.removeprefix("time_embed.")
    elif name.startswith("audio_time_embed."):
        name = "audio_adaln_single." + name.removeprefix("audio_time_embed.")
    return _renamed(name, _TRANSFORMER_RENAMES)


def _original_connector_name(name: str) -> str:
    if name.startswith("text_proj_in."):
        return "text_embedding_projection.aggregate_embed." + name.removeprefix("text_proj_in.")
    return _renamed(name, _CONNECTOR_RENAMES)


def _original_video_vae_name(name: str) -> str:
    if name in ("latents_mean", "latents_std"):
        return "per_channel_statistics." + {"latents_mean": "mean-of-means", "latents_std": "std-of-means"}[name]
    part, _, rest = name.partition(".")
    for diffusers_name, original in _VIDEO_VAE_DECODER if part == "decoder" else _VIDEO_VAE_ENCODER:
        if rest.startswith(diffusers_name + "."):
            rest = original + rest[len(diffusers_name):]
            break
    return f"{part}.{rest.replace('resnets.', 'res_blocks.')}"


def _original_audio_vae_name(name: str) -> str:
    if name in ("latents_mean", "latents_std"):
        return "per_channel_statistics." + {"latents_mean": "mean-of-means", "latents_std": "std-of-means"}[name]
    return name


def _load(folder: Path, subfolder: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / subfolder / "diffusion_pytorch_model.safetensors"))


def ltx2_transformer_state(folder: str | Path) -> dict:
    """The transformer and text connectors of a diffusers LTX-2 folder in LTX-2's own names, as the official
    checkpoints hold them under `model.diffusion_model.` (the connectors included there, which diffusers'
    transformer converter drops and its pipeline converter splits off). Checked by converting it back with
    diffusers' own converter."""
    import torch
    from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers

    folder = Path(folder)
    transformer = _load(folder, "transformer")
    state = {"model.diffusion_model." + _original_transformer_name(name): tensor
             for name, tensor in transformer.items()}
    back = convert_ltx2_transformer_to_diffusers(dict(state))
    if set(back) != set(transformer) or not all(torch.equal(back[name], transformer[name]) for name in back):
        unmatched = sorted(set(back) ^ set(transformer))[:5]
        raise AssertionError(f"the LTX-2 transformer names do not convert back: {unmatched}")
    connectors = _load(folder, "connectors")
    state.update({"model.diffusion_model." + _original_connector_name(name): tensor
                  for name, tensor in connectors.items()})
    return state


def save_ltx2_transformer(folder: str | Path, file: str | Path, *, quant: str = "Q8_0") -> Path:
    """The transformer (with its text connectors) of a diffusers LTX-2 folder alone, in LTX-2's own names:
    a `.safetensors` with the `model.diffusion_model.` prefix, as the transformer-only files that are paired
    with a diffusers folder are (Kijai's ltx-2-19b-*_transformer_only files, float32 here), or a `.gguf` without
    the prefix, 2-D weights quantised to `quant` (QuantStack's and city96's LTX-2 GGUFs; the scale-shift tables
    and learnable registers kept in float32 as their converters keep parameters that are not run through a
    layer)."""
    from safetensors.torch import save_file

    state = ltx2_transformer_state(folder)
    if Path(file).suffix == ".gguf":
        from .common import save_gguf

        state = {name.removeprefix("model.diffusion_model."): tensor for name, tensor in state.items()}
        return save_gguf(state, file, quant=quant, architecture="ltxv",
                         keep_float=("scale_shift_table", "learnable_registers"))
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(file))
    return Path(file)


def save_ltx2_single_file(folder: str | Path, file: str | Path) -> Path:
    """A diffusers LTX-2 folder's transformer, connectors, video VAE, audio VAE and vocoder as one checkpoint in
    the layout of ltx-2-19b-dev.safetensors (`model.diffusion_model.`, `vae.`, `audio_vae.`, `vocoder.`), the
    VAEs checked by converting them back with diffusers' converters. The text encoder is not in it (Gemma 3 is a
    separate download for the official files too)."""
    import torch
    from diffusers.loaders.single_file_utils import (convert_ltx2_audio_vae_to_diffusers,
                                                     convert_ltx2_vae_to_diffusers)
    from safetensors.torch import save_file

    folder = Path(folder)
    state = ltx2_transformer_state(folder)
    for subfolder, prefix, rename, convert in (("vae", "vae.", _original_video_vae_name, convert_ltx2_vae_to_diffusers),
                                               ("audio_vae", "audio_vae.", _original_audio_vae_name,
                                                convert_ltx2_audio_vae_to_diffusers)):
        weights = _load(folder, subfolder)
        part = {prefix + rename(name): tensor for name, tensor in weights.items()}
        back = convert(dict(part))
        if set(back) != set(weights) or not all(torch.equal(back[name], weights[name]) for name in back):
            unmatched = sorted(set(back) ^ set(weights))[:5]
            raise AssertionError(f"the LTX-2 {subfolder} names do not convert back: {unmatched}")
        state.update(part)
    state.update({"vocoder." + _renamed(name, _VOCODER_RENAMES): tensor
                  for name, tensor in _load(folder, "vocoder").items()})
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(file))
    return Path(file)
