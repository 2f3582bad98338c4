"""Tiny prompt enhancers for tests: real Qwen2-VL, Qwen2.5-VL, Qwen3-VL and Gemma 3 image-text-to-text models with
random weights, each saved as the folder its download is (config.json, model.safetensors, generation_config.json,
tokenizer files with the chat template, preprocessor_config.json), so they load through `video_gen.enhance` like
the real ones.

The tokenizers are real transformers classes over tiny vocabularies built here (the `tokenizers` library):
Qwen2Tokenizer (byte-level BPE: the 256 byte symbols, a few merges, Qwen's special tokens) and GemmaTokenizer
(BPE with byte fallback, Gemma 3's turn and image tokens). Their generation_config asks for sampling, as the real
ones do (Qwen: temperature 0.7, top_k 20, top_p 0.8): the enhancer must override it to stay deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

# Qwen2-VL / Qwen2.5-VL-Instruct's chat template (their chat_template.json), written from memory of it: the default
# system turn, <|im_start|>/<|im_end|> turns, and <|vision_start|><|image_pad|><|vision_end|> per picture.
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                       "<|image_pad|>", "<|video_pad|>")
WORDS = ("the", "a", "cat", "dog", "walks", "camera", "slowly", "light", "red", "on", "in", "and", "video", "moves")


def _byte_symbols() -> list[str]:
    """GPT-2's byte-to-unicode table (what byte-level BPE vocabularies are written in), in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    codes, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            codes[byte] = chr(byte)
        else:
            codes[byte] = chr(256 + extra)
            extra += 1
    return [codes[byte] for byte in range(256)]


def build_tiny_qwen_tokenizer(path: str | Path):
    """A Qwen2Tokenizer over byte symbols plus merges for WORDS (with and without the leading space 'Ġ')."""
    from transformers import Qwen2Tokenizer

    vocab = {symbol: index for index, symbol in enumerate(_byte_symbols())}
    merges = []

    def add_merges(word: str) -> None:
        current = word[0]
        for char in word[1:]:
            merged = current + char
            if merged not in vocab:
                merges.append((current, char))
                vocab[merged] = len(vocab)
            current = merged

    for word in WORDS:
        add_merges(word)
        add_merges("Ġ" + word)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", model_max_length=32768)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    tokenizer.chat_template = QWEN2_5_VL_CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    return Qwen2Tokenizer.from_pretrained(path)


def build_tiny_qwen2_5_vl(path: str | Path, *, seed: int = 0) -> Path:
    """The folder of a tiny Qwen2.5-VL-Instruct: 2 vision blocks and 2 text layers of width 32, 28 px per token."""
    return _build_tiny_qwen_vl(Path(path), "qwen2_5_vl", seed)


def build_tiny_qwen3_vl(path: str | Path, *, seed: int = 0) -> Path:
    """The folder of a tiny Qwen3-VL-Instruct: 2 vision blocks (one deepstack) and 2 text layers of width 32, 32 px
    per token (16 px patches). Same tokens and chat template placeholders as Qwen2.5-VL."""
    return _build_tiny_qwen_vl(Path(path), "qwen3_vl", seed)


def build_tiny_qwen2_vl(path: str | Path, *, seed: int = 0) -> Path:
    """The folder of a tiny Qwen2-VL-Instruct (the first of the family: no window attention in its vision part)."""
    return _build_tiny_qwen_vl(Path(path), "qwen2_vl", seed)


def _build_tiny_qwen_vl(path: Path, model_type: str, seed: int) -> Path:
    import torch
    from transformers import (GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration, Qwen3VLConfig, Qwen3VLForConditionalGeneration)

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_qwen_tokenizer(path)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    text = {
        "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
    }
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 32, "num_heads": 4, "out_hidden_size": 32,
              "spatial_merge_size": 2, "temporal_patch_size": 2}
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                  tie_word_embeddings=False)
    if model_type == "qwen3_vl":
        text.update(head_dim=8)
        text["rope_parameters"]["mrope_interleaved"] = True
        vision.update(patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[0])
        config, model_class = Qwen3VLConfig(text_config=text, vision_config=vision, **tokens), \
            Qwen3VLForConditionalGeneration
        patch_size = 16
    elif model_type == "qwen2_vl":
        vision = {"depth": 2, "embed_dim": 32, "hidden_size": 32, "mlp_ratio": 1, "num_heads": 4, "patch_size": 14,
                  "spatial_merge_size": 2, "temporal_patch_size": 2}
        config, model_class = Qwen2VLConfig(text_config=text, vision_config=vision, **tokens), \
            Qwen2VLForConditionalGeneration
        patch_size = 14
    else:
        vision.update(patch_size=14, window_size=56, fullatt_block_indexes=[1])
        config, model_class = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **tokens), \
            Qwen2_5_VLForConditionalGeneration
        patch_size = 14
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():
        # Random weights would pick <|im_end|> or another special token early and leave no text: the special
        # tokens' output rows are zeroed (logit 0, below the best of ~300 random logits), so the tiny model
        # writes ordinary bytes up to max_new_tokens.
        model.lm_head.weight[list(ids.values())] = 0
    model.save_pretrained(path)
    # Sampling on, as Qwen3-VL-Instruct's generation_config.json has it (Qwen2.5-VL's samples too, but with top_k 1,
    # which would hide a leak): if the enhancer let it through, two runs would differ.
    GenerationConfig(bos_token_id=ids["<|endoftext|>"], eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
                     pad_token_id=ids["<|endoftext|>"], do_sample=True, temperature=0.7, top_k=20, top_p=0.8,
                     repetition_penalty=1.05).save_pretrained(path)
    # The model's preprocessor_config.json, with fewer pixels: at most 64 merged tokens.
    factor = patch_size * 2
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": {"qwen3_vl": "Qwen3VLProcessor", "qwen2_vl": "Qwen2VLProcessor"}.get(
            model_type, "Qwen2_5_VLProcessor"),
        "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "do_convert_rgb": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "size": {"shortest_edge": factor * factor, "longest_edge": factor * factor * 64},
        "patch_size": patch_size, "temporal_patch_size": 2, "merge_size": 2,
    }, indent=2))
    (path / "chat_template.json").write_text(json.dumps({"chat_template": QWEN2_5_VL_CHAT_TEMPLATE}))
    return path


# Gemma 3 instruct's chat template (google/gemma-3-*-it), written from memory of it: <bos>, the system text folded
# into the first user turn, <start_of_turn>user/model turns, <start_of_image> per picture.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n{%- if messages[0]['content'] is string -%}\n"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n{%- else -%}\n"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n{%- endif -%}\n"
    "{%- set loop_messages = messages[1:] -%}\n{%- else -%}\n{%- set first_user_prefix = \"\" -%}\n"
    "{%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "{{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n{%- endif -%}\n"
    "{%- if (message['role'] == 'assistant') -%}\n{%- set role = \"model\" -%}\n{%- else -%}\n"
    "{%- set role = message['role'] -%}\n{%- endif -%}\n"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "{%- if message['content'] is string -%}\n{{ message['content'] | trim }}\n"
    "{%- elif message['content'] is iterable -%}\n{%- for item in message['content'] -%}\n"
    "{%- if item['type'] == 'image' -%}\n{{ '<start_of_image>' }}\n{%- elif item['type'] == 'text' -%}\n"
    "{{ item['text'] | trim }}\n{%- endif -%}\n{%- endfor -%}\n{%- else -%}\n"
    "{{ raise_exception(\"Invalid content type\") }}\n{%- endif -%}\n{{ '<end_of_turn>\n' }}\n{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n{{'<start_of_turn>model\n'}}\n{%- endif -%}\n"
)
GEMMA3_SPECIAL_TOKENS = ("<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
                         "<image_soft_token>")


def build_tiny_gemma_tokenizer(path: str | Path):
    """A GemmaTokenizer (SentencePiece-style BPE with byte fallback, the `tokenizers` library): Gemma's first five
    tokens, the 256 byte tokens, "▁", the letters and WORDS with their merges, then Gemma 3's turn and image tokens."""
    from transformers import GemmaTokenizer

    vocab = {token: index for index, token in enumerate(("<pad>", "<eos>", "<bos>", "<unk>", "<mask>"))}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for symbol in ["▁"] + list("abcdefghijklmnopqrstuvwxyz"):
        vocab.setdefault(symbol, len(vocab))
    merges = []
    for word in WORDS:
        current = "▁"
        for char in word:
            merged = current + char
            if merged not in vocab:
                merges.append((current, char))
                vocab[merged] = len(vocab)
            current = merged
    tokenizer = GemmaTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(GEMMA3_SPECIAL_TOKENS)})
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    return GemmaTokenizer.from_pretrained(path)


def build_tiny_gemma3(path: str | Path, *, seed: int = 0) -> Path:
    """The folder of a tiny Gemma 3 instruct model: a 2-layer SigLIP on 32x32 pictures (8 px patches) pooled to
    4 image tokens, a 2-layer Gemma 3 text model of width 32."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, GenerationConfig

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_gemma_tokenizer(path)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in GEMMA3_SPECIAL_TOKENS}
    config = Gemma3Config(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 4096,
            "sliding_window": 64, "query_pre_attn_scalar": 8, "pad_token_id": 0, "eos_token_id": 1,
            "bos_token_id": 2,
        },
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 37,
                       "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        mm_tokens_per_image=4, boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config).eval()
    specials = [0, 1, 2, 3, 4, *ids.values()]
    with torch.no_grad():  # as for Qwen above: never a special token, so the text is not empty
        model.lm_head.weight[specials] = 0
    model.save_pretrained(path)
    GenerationConfig(bos_token_id=2, eos_token_id=[1, ids["<end_of_turn>"]], pad_token_id=0, do_sample=True,
                     top_k=64, top_p=0.95).save_pretrained(path)  # as gemma-3-4b-it's: sampling
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Gemma3ImageProcessor", "processor_class": "Gemma3Processor",
        "do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": None, "do_pan_and_scan": None,
    }, indent=2))
    return path
