"""Tiny REAL FramePack models (HunyuanVideoFramepackPipeline) with random weights, in the two layouts a user
can have, for the tests and the CPU benchmarks. Nothing here downloads: the Llama and CLIP tokenizers are built
locally with the `tokenizers` library.

Layouts (`build_tiny_framepack(folder, layout=...)`):
- "combined": diffusers' documented way (docs/source/en/api/pipelines/framepack.md, and the pipeline's own
  example): three repositories side by side, as `huggingface-cli download` leaves them:
    folder/HunyuanVideo/          hunyuanvideo-community/HunyuanVideo: model_index.json (HunyuanVideoPipeline),
                                  text_encoder (LlamaModel), tokenizer, text_encoder_2 (CLIPTextModel),
                                  tokenizer_2, vae (AutoencoderKLHunyuanVideo), scheduler, transformer (the
                                  text-to-video HunyuanVideoTransformer3DModel, which FramePack does not use)
    folder/FramePackI2V_HY/       lllyasviel/FramePackI2V_HY (original) or
    folder/FramePack_F1_I2V_HY_20250503/   lllyasviel/FramePack_F1_I2V_HY_20250503 (F1): the transformer
                                  alone at the repository's root (config.json + safetensors); its config says
                                  `"_class_name": "HunyuanVideoTransformer3DModelPacked"` (FramePack's own
                                  class name, from its diffusers_helper) and diffusers' class loads it
    folder/flux_redux_bfl/        lllyasviel/flux_redux_bfl: feature_extractor/ and image_encoder/ (SigLIP);
                                  the real repository also holds Flux Redux's image_embedder, unused here
  loaded as the docs do: `HunyuanVideoFramepackPipeline.from_pretrained(HunyuanVideo, transformer=...,
  feature_extractor=..., image_encoder=...)` (`load_combined`).
- "saved": one `HunyuanVideoFramepackPipeline` written by `save_pretrained` (model_index.json names all nine
  components), which `from_pretrained` loads alone.

F1 or original: nothing in the model says which. The two transformers have the same class and the same
configuration (an architecture only; FramePack's original and F1 differ in training, not in shape). diffusers
tells them apart by repository name only: its docs' "Available models" table says FramePackI2V_HY needs
`sampling_type="inverted_anti_drifting"` (the pipeline's default) and FramePack_F1_I2V_HY_20250503 needs
`sampling_type="vanilla"`, and the pipeline's comment on its history sizes reads "Specific to the released
checkpoints". Here the variant is in the transformer folder's name (combined) and in nothing else (saved).

The Llama tokenizer (Llama-3's byte-level BPE, as in llava-llama-3-8b) is recorded as "LlamaTokenizerFast" in
model_index.json, as hunyuanvideo-community/HunyuanVideo records it; transformers 5 then builds a SentencePiece
Metaspace pre-tokenizer over it and the prompt loses its spaces (transformers issues #45488, #48206, open in
5.25; xDiT's fix for HunyuanVideo reloads it as PreTrainedTokenizerFast). `llama_tokenizer` loads it right.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ..families.animatediff import bytes_to_unicode
from ..families.framepack import llama_tokenizer, names_f1

VARIANTS = ("f1", "original")
LAYOUTS = ("combined", "saved")
TRANSFORMER_REPOSITORY = {"f1": "FramePack_F1_I2V_HY_20250503", "original": "FramePackI2V_HY"}
SAMPLING_TYPE = {"f1": "vanilla", "original": "inverted_anti_drifting"}
LATENT_CHANNELS = 16  # the real VAE's: the live preview's latent-to-RGB map needs them
LLAMA_HIDDEN = 16  # llava-llama-3-8b: 4096 (transformer `text_embed_dim`)
CLIP_WIDTH = 8  # CLIP-L: 768 (transformer `pooled_projection_dim`)
SIGLIP_WIDTH = 16  # SigLIP so400m: 1152 (transformer `image_proj_dim`)
SIGLIP_SIZE = 32  # the real feature extractor resizes to 384x384
CROP_START = 95  # DEFAULT_PROMPT_TEMPLATE["crop_start"] in pipeline_hunyuan_video_framepack.py
PROMPT_WORDS = "a cat dog red blue the on walks runs video monkey dance snow penguin".split()

LLAMA3_SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>")
# Llama-3's pre-tokenizer regex (tokenizer.json of Meta-Llama-3-8B and of llava-llama-3-8b).
LLAMA3_PRETOKENIZE_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
                            r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def build_llama3_tokenizer(path: str | Path):
    """A Llama-3 style tokenizer (byte-level BPE, Llama-3's regex, `<|begin_of_text|>` prepended) trained here on
    the pipeline's prompt template, so that the template's words are single tokens as in the real vocabulary:
    the template before the prompt is then exactly `crop_start` = 95 tokens, and the pipeline's crop keeps the
    prompt whole. Saved as a `PreTrainedTokenizerFast` (tokenizer.json) in `path`."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_framepack import DEFAULT_PROMPT_TEMPLATE
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    split = "|".join(map(re.escape, LLAMA3_SPECIAL_TOKENS + ("{}",)))
    corpus = [piece for piece in re.split(split, DEFAULT_PROMPT_TEMPLATE["template"]) if piece]
    corpus.append(" ".join(PROMPT_WORDS))
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=100_000, show_progress=False, special_tokens=list(LLAMA3_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = backend.token_to_id("<|begin_of_text|>")
    backend.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|begin_of_text|>",
                                        eos_token="<|end_of_text|>", pad_token="<|end_of_text|>",
                                        model_max_length=131072)
    tokenizer.save_pretrained(path)
    return PreTrainedTokenizerFast.from_pretrained(path)


def build_clip_tokenizer(path: str | Path):
    """A real CLIPTokenizer over a tiny BPE: CLIP's 512 byte symbols (with and without "</w>") and merges
    that make `PROMPT_WORDS` whole tokens."""
    from transformers import CLIPTokenizer

    symbols = bytes_to_unicode()
    vocab = symbols + [symbol + "</w>" for symbol in symbols]
    merges = []
    for word in PROMPT_WORDS:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merges:
                merges.append(pair)
            pieces = ["".join(pair)] + pieces[2:]
    vocab += [token for token in dict.fromkeys("".join(pair) for pair in merges) if token not in vocab]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={token: index for index, token in enumerate(vocab)}, merges=merges,
                              model_max_length=77)
    tokenizer.save_pretrained(path)
    return CLIPTokenizer.from_pretrained(path)


def framepack_transformer(seed: int = 0):
    import torch
    from diffusers import HunyuanVideoFramepackTransformer3DModel

    torch.manual_seed(seed)
    # diffusers' own test sizes (tests/pipelines/hunyuan_video/test_hunyuan_video_framepack.py); patch 2 and the
    # history embedder's (1,2,2)/(2,4,4)/(4,8,8) kernels are the real model's.
    return HunyuanVideoFramepackTransformer3DModel(
        in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, num_attention_heads=2, attention_head_dim=10,
        num_layers=1, num_single_layers=1, num_refiner_layers=1, patch_size=2, patch_size_t=1,
        guidance_embeds=True, text_embed_dim=LLAMA_HIDDEN, pooled_projection_dim=CLIP_WIDTH,
        rope_axes_dim=(2, 4, 4), image_condition_type=None, has_image_proj=True, image_proj_dim=SIGLIP_WIDTH,
        has_clean_x_embedder=True,
    ).eval()


def _base_parts(folder: Path, seed: int) -> dict:
    """HunyuanVideo's text encoders, tokenizers, VAE and scheduler at toy sizes."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    source = folder.parent / f".{folder.name}-tokenizer-source"
    tokenizer = build_llama3_tokenizer(source / "llama")
    tokenizer_2 = build_clip_tokenizer(source / "clip")
    shutil.rmtree(source)
    torch.manual_seed(seed)
    # Three layers: the pipeline keeps hidden_states[-3], the output of a real layer.
    text_encoder = LlamaModel(LlamaConfig(
        hidden_size=LLAMA_HIDDEN, intermediate_size=37, num_attention_heads=4, num_key_value_heads=4,
        num_hidden_layers=3, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )).eval()
    torch.manual_seed(seed)
    text_encoder_2 = CLIPTextModel(CLIPTextConfig(
        hidden_size=CLIP_WIDTH, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=len(tokenizer_2), max_position_embeddings=77, projection_dim=CLIP_WIDTH,
        bos_token_id=tokenizer_2.bos_token_id, eos_token_id=tokenizer_2.eos_token_id,
        pad_token_id=tokenizer_2.pad_token_id,
    )).eval()
    torch.manual_seed(seed)
    # The real factors: 8x in space, 4x in time (frames 4k+1); four blocks as the real VAE, 4 wide instead of
    # 128..512: its 3-D convolutions at full size are most of a tiny job's time on the CPU (8 wide, diffusers'
    # test size, took 3.7 of 3.8 s for two sections at 64x64).
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4, up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(4, 4, 4, 4), layers_per_block=1, act_fn="silu", norm_num_groups=2,
        scaling_factor=0.476986, spatial_compression_ratio=8, temporal_compression_ratio=4,
        mid_block_add_attention=True,
    ).eval()
    return dict(tokenizer=tokenizer, text_encoder=text_encoder, tokenizer_2=tokenizer_2,
                text_encoder_2=text_encoder_2, vae=vae,
                # hunyuanvideo-community/HunyuanVideo's scheduler_config.json: shift 7.0
                scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))


def build_tiny_siglip(seed: int):
    """A tiny SigLIP vision model (seeded with `seed`) and its feature extractor, the image encoder of FramePack
    and of HunyuanVideo 1.5's image-to-video pipeline."""
    import torch
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    image_encoder = SiglipVisionModel(SiglipVisionConfig(
        hidden_size=SIGLIP_WIDTH, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        image_size=SIGLIP_SIZE, patch_size=8,
    )).eval()
    # Without torchvision this is transformers' SiglipImageProcessorPil, and the saved files say so.
    feature_extractor = SiglipImageProcessor(size={"height": SIGLIP_SIZE, "width": SIGLIP_SIZE},
                                             image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return image_encoder, feature_extractor


def _record_llama_tokenizer_fast(pipeline_folder: Path) -> None:
    """Name the Llama tokenizer "LlamaTokenizerFast" in model_index.json and tokenizer_config.json, as the
    official repository (and any pipeline saved with transformers 4) does."""
    index_file = pipeline_folder / "model_index.json"
    index = json.loads(index_file.read_text())
    index["tokenizer"] = ["transformers", "LlamaTokenizerFast"]
    index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    config_file = pipeline_folder / "tokenizer" / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["tokenizer_class"] = "LlamaTokenizerFast"
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def build_tiny_framepack(folder: str | Path, *, variant: str = "f1", layout: str = "combined",
                         seed: int = 0) -> Path:
    """A tiny FramePack model of `variant` ("f1" or "original") in `layout` ("combined": the three
    repositories side by side under `folder`; "saved": one pipeline folder). Returns `folder`."""
    import torch
    from diffusers import HunyuanVideoFramepackPipeline, HunyuanVideoPipeline, HunyuanVideoTransformer3DModel

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    folder = Path(folder)
    parts = _base_parts(folder, seed)
    image_encoder, feature_extractor = build_tiny_siglip(seed)
    transformer = framepack_transformer(seed)
    if layout == "saved":
        HunyuanVideoFramepackPipeline(**parts, transformer=transformer, image_encoder=image_encoder,
                                      feature_extractor=feature_extractor).save_pretrained(folder)
        _record_llama_tokenizer_fast(folder)
        return folder

    torch.manual_seed(seed)
    base_transformer = HunyuanVideoTransformer3DModel(
        in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, num_attention_heads=2, attention_head_dim=10,
        num_layers=1, num_single_layers=1, num_refiner_layers=1, patch_size=1, patch_size_t=1,
        text_embed_dim=LLAMA_HIDDEN, pooled_projection_dim=CLIP_WIDTH, rope_axes_dim=(2, 4, 4),
    ).eval()
    HunyuanVideoPipeline(**parts, transformer=base_transformer).save_pretrained(folder / "HunyuanVideo")
    _record_llama_tokenizer_fast(folder / "HunyuanVideo")
    transformer_folder = folder / TRANSFORMER_REPOSITORY[variant]
    transformer.save_pretrained(transformer_folder)
    config_file = transformer_folder / "config.json"
    config = json.loads(config_file.read_text())
    config["_class_name"] = "HunyuanVideoTransformer3DModelPacked"
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    image_encoder.save_pretrained(folder / "flux_redux_bfl" / "image_encoder")
    feature_extractor.save_pretrained(folder / "flux_redux_bfl" / "feature_extractor")
    return folder


def combined_paths(folder: str | Path) -> dict[str, Path]:
    """The three repositories of a "combined" folder: base, transformer (whichever variant is there), siglip."""
    folder = Path(folder)
    transformers = [folder / name for name in TRANSFORMER_REPOSITORY.values() if (folder / name).is_dir()]
    if len(transformers) != 1:
        raise ValueError(f"{folder} holds {len(transformers)} FramePack transformer folders; expected one")
    return {"base": folder / "HunyuanVideo", "transformer": transformers[0], "siglip": folder / "flux_redux_bfl"}


def load_combined(folder: str | Path, **kwargs):
    """The docs' loading code for a "combined" folder, with the Llama tokenizer loaded as its tokenizer.json
    says (`llama_tokenizer`)."""
    from diffusers import HunyuanVideoFramepackPipeline, HunyuanVideoFramepackTransformer3DModel
    from transformers import SiglipImageProcessor, SiglipVisionModel

    paths = combined_paths(folder)
    return HunyuanVideoFramepackPipeline.from_pretrained(
        paths["base"],
        transformer=HunyuanVideoFramepackTransformer3DModel.from_pretrained(paths["transformer"], **kwargs),
        feature_extractor=SiglipImageProcessor.from_pretrained(paths["siglip"], subfolder="feature_extractor"),
        image_encoder=SiglipVisionModel.from_pretrained(paths["siglip"], subfolder="image_encoder", **kwargs),
        tokenizer=llama_tokenizer(paths["base"] / "tokenizer"),
        **kwargs,
    )


def sampling_type_for(name: str) -> str:
    """The pipeline's `sampling_type` for a FramePack model called `name` (a folder or file name), as the family
    decides it: "vanilla" for F1, else "inverted_anti_drifting"."""
    return SAMPLING_TYPE["f1"] if names_f1(name) else SAMPLING_TYPE["original"]
