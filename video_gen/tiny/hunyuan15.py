"""Tiny REAL HunyuanVideo 1.5 models with random weights, saved in the diffusers layout of the official
repositories (hunyuanvideo-community/HunyuanVideo-1.5-480p_i2v, -480p_t2v, ...: `model_index.json` and one
subfolder per component, as `save_pretrained` writes them): for the tests and the CPU benchmarks. Nothing
here downloads: both tokenizers are built locally (`tokenizers` library; ByT5's needs no vocabulary).

Sizes keep the real model's factors where the app's rules come from them: the VAE compresses 16x in space and
4x in time (frames 4k+1, sizes in multiples of 16), so the size buckets are the real rule at a small
`target_size` (64: 13 buckets, 64x64 for a square picture, 80x48 for 16:9; the 480p model's 640 gives 121
buckets, 848x480 for 16:9).

The prompt template. Both pipelines tokenize `system message + prompt` with the tokenizer's chat template and
then drop the first `prompt_template_encode_start_idx` = 108 tokens (the Qwen2.5-VL tokenizer's length of
everything before the prompt). A tokenizer that spells that prefix in fewer tokens silently loses the first
prompt words (in more, it keeps template words). diffusers' own tests dodge it in two ways: HunyuanVideo 1.5's
(tests/pipelines/hunyuan_video1_5/test_hunyuan_1_5.py) load the full Qwen2 vocabulary from the hub
(hf-internal-testing/tiny-random-Qwen2VLForConditionalGeneration), and FramePack's replace the template at call
time (`prompt_template={"template": "{}", "crop_start": 0}`); this pipeline has no such argument. Here the
tokenizer is a byte-level BPE with Qwen2's own pre-tokenizer (the regex of `Qwen2Tokenizer`), trained on the
template's own words until each is one token, which is how the real vocabulary spells this English text: the
prefix is then exactly 108 tokens, with no padding trick and no change to the pipeline (checked by
`prompt_tokens_after_crop` and the tests).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# SigLIP so400m-patch14-384, as FramePack's: 1152 wide (transformer `image_embed_dim`), 384x384 pictures
from .framepack import SIGLIP_WIDTH, build_tiny_siglip

TASKS = ("i2v", "t2v")
LATENT_CHANNELS = 4  # the real VAE has 32; the transformer takes latents + first-frame latents + mask = 2C+1
TARGET_SIZE = 64  # the 480p models have 640, the 720p ones 960 (transformer/config.json `target_size`)
QWEN_HIDDEN = 16  # Qwen2.5-VL-7B: 3584 (transformer `text_embed_dim`)
BYT5_WIDTH = 32  # ByT5-small (Glyph-ByT5): 1472 (transformer `text_embed_2_dim`)
CROP_START = 108  # HunyuanVideo15(ImageToVideo)Pipeline.prompt_template_encode_start_idx
# Words the tests' prompts use, so that they are whole tokens (any other text still tokenizes, byte by byte).
PROMPT_WORDS = "a cat dog red blue the on walks runs video monkey dance snow penguin sign says hello".split()

# Qwen2-VL / Qwen2.5-VL-Instruct's chat template, the text-only branch (the real one also renders image and
# video content items, which these pipelines never send).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def _system_message() -> str:
    """The pipelines' own system message (a literal in `__init__`, not a module constant), so the tokenizer is
    trained on exactly the text the pipeline sends."""
    from diffusers import HunyuanVideo15Pipeline

    return next(const for const in HunyuanVideo15Pipeline.__init__.__code__.co_consts
                if isinstance(const, str) and const.startswith("You are a helpful assistant."))


def build_qwen_tokenizer(path: str | Path):
    """A real `Qwen2Tokenizer` over a byte-level BPE trained here on the template's text (see the module's
    docstring): every byte is in the vocabulary, so any prompt tokenizes; the template's words and
    `PROMPT_WORDS` are single tokens. Saved with `save_pretrained` (tokenizer.json, tokenizer_config.json with
    the chat template) and loaded back from there."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    path = Path(path)
    system = _system_message()
    # The chat template's text between its special tokens, and the tests' words (ByT5's glyph text too).
    corpus = ["system\n", system, "\n", "user\n", "assistant\n", " ".join(PROMPT_WORDS), "Text \"hello\". "]
    backend = Tokenizer(models.BPE())
    # The same pre-tokenization as Qwen2Tokenizer's own (which replaces whatever tokenizer.json says on load).
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=100_000, show_progress=False, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus, trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, model_max_length=131072)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS[1:])})
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    return Qwen2Tokenizer.from_pretrained(path)


def prompt_tokens_after_crop(pipe, prompt: str) -> list[str]:
    """The tokens of `prompt` that survive the pipeline's template crop, as `_get_mllm_prompt_embeds` computes
    them (chat template, then `[crop_start:]`), without padding: what the text encoder's kept states stand for."""
    conversation = [[{"role": "system", "content": pipe.system_message}, {"role": "user", "content": prompt}]]
    ids = pipe.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"][0]
    return pipe.tokenizer.convert_ids_to_tokens(ids[pipe.prompt_template_encode_start_idx:])


def build_tiny_hunyuan15(folder: str | Path, *, task: str = "i2v", seed: int = 0) -> Path:
    """A tiny `HunyuanVideo15ImageToVideoPipeline` (task "i2v") or `HunyuanVideo15Pipeline` ("t2v") saved with
    `save_pretrained` in `folder`: transformer, vae, scheduler, text_encoder (Qwen2.5-VL text model) + tokenizer,
    text_encoder_2 (T5 encoder, ByT5's) + tokenizer_2, guider (classifier-free, 6.0 like the real repository) and,
    for i2v, image_encoder (SigLIP) + feature_extractor. Float32 weights (the tests run on the CPU in float32:
    bfloat16 differs by up to 17 levels of 255 there)."""
    import torch
    from diffusers import (AutoencoderKLHunyuanVideo15, FlowMatchEulerDiscreteScheduler,
                           HunyuanVideo15ImageToVideoPipeline, HunyuanVideo15Pipeline,
                           HunyuanVideo15Transformer3DModel)
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import ByT5Tokenizer, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, T5Config, T5EncoderModel

    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    folder = Path(folder)
    source = folder.parent / f".{folder.name}-tokenizer-source"
    tokenizer = build_qwen_tokenizer(source)
    shutil.rmtree(source)

    torch.manual_seed(seed)
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=2 * LATENT_CHANNELS + 1, out_channels=LATENT_CHANNELS, num_attention_heads=2,
        attention_head_dim=8, num_layers=2, num_refiner_layers=1, mlp_ratio=2.0, patch_size=1, patch_size_t=1,
        text_embed_dim=QWEN_HIDDEN, text_embed_2_dim=BYT5_WIDTH, image_embed_dim=SIGLIP_WIDTH,
        rope_axes_dim=(2, 2, 4), target_size=TARGET_SIZE, task_type=task,
    ).eval()
    torch.manual_seed(seed)
    # Five blocks like the real VAE (128..1024 wide there): 16x in space (four downsamples), 4x in time.
    vae = AutoencoderKLHunyuanVideo15(
        latent_channels=LATENT_CHANNELS, block_out_channels=(8, 8, 8, 8, 8), layers_per_block=1,
        spatial_compression_ratio=16, temporal_compression_ratio=4,
    ).eval()
    torch.manual_seed(seed)
    # Three layers: the pipeline keeps hidden_states[-3] (num_hidden_layers_to_skip=2), so the kept states
    # come out of a real decoder layer, not the embedding table.
    text_encoder = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
        hidden_size=QWEN_HIDDEN, intermediate_size=16, num_hidden_layers=3, num_attention_heads=2,
        num_key_value_heads=2, vocab_size=len(tokenizer), rope_theta=1000000.0,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
    )).eval()
    torch.manual_seed(seed)
    tokenizer_2 = ByT5Tokenizer()
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_2), d_model=BYT5_WIDTH, d_kv=8, d_ff=32, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16,
    )).eval()
    components = dict(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
        text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
        guider=ClassifierFreeGuidance(guidance_scale=6.0),
    )
    if task == "i2v":
        components["image_encoder"], components["feature_extractor"] = build_tiny_siglip(seed)
        pipe = HunyuanVideo15ImageToVideoPipeline(**components)
    else:
        pipe = HunyuanVideo15Pipeline(**components)
    pipe.save_pretrained(folder)
    return folder


def bucket_sizes(target_size: int, vae_scale_factor: int = 16) -> list[tuple[int, int]]:
    """The (width, height) buckets HunyuanVideo 1.5 picks from: diffusers'
    `hunyuan_video1_5.image_processor.generate_crop_size_list` (a copy of the original repository's
    `hyvideo/utils/data_utils.py`): every (h, w) in multiples of the VAE factor with (h/f)(w/f) as large as
    possible up to (target_size/f)^2 patches and an aspect ratio of at most 4."""
    from diffusers.pipelines.hunyuan_video1_5.image_processor import generate_crop_size_list

    return [(width, height) for height, width in generate_crop_size_list(target_size, vae_scale_factor)]

