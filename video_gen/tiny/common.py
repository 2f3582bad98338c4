"""What the tiny builders of several families share: a T5 tokenizer built offline (Wan's umT5, LTX's T5), GGUF
files quantised as city96's converter makes them, and a PEFT LoRA on any tiny transformer."""

from __future__ import annotations

from pathlib import Path


def build_tiny_t5_tokenizer(path: str | Path, *, model_max_length: int = 512):
    """A real T5TokenizerFast (the class Wan's umT5 and LTX's T5 load) over a tiny Unigram vocabulary built here
    with the `tokenizers` library: T5's special tokens (pad 0, </s> 1, <unk> 2), SentencePiece's "▁" word marks,
    the lower-case letters, digits and a few words. Saved with `save_pretrained`, so it loads offline."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{word}", -1.0) for word in ("a", "cat", "dog", "red", "the", "on", "walks", "video")]
    pieces += [(char, -3.0) for char in "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"]
    pieces += [(f"▁{char}", -3.5) for char in "bcdefghijklmnopqrstuvwxyz"]  # "▁a" is a word above
    backend = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    backend.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace("  ", " ")])
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", 1)])
    tokenizer = T5TokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                extra_ids=0, model_max_length=model_max_length)
    tokenizer.save_pretrained(path)
    return T5TokenizerFast.from_pretrained(path)


def build_tiny_transformer_lora(model: str | Path, file: str | Path, *, subfolder: str = "transformer", rank: int = 4,
                                scale: float = 0.3, seed: int = 0,
                                targets: str = r".*blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)") -> Path:
    """A real PEFT LoRA with random weights on a tiny transformer model (Wan's, LTX's, FramePack's: the class its
    config names), on the modules `targets` matches (its attention's q, k, v and out projections), saved as
    diffusers' `save_lora_weights` writes it (transformer.blocks.N.attn1.to_q.lora_A.weight for Wan,
    transformer.transformer_blocks.N... for LTX)."""
    import json

    import diffusers
    import torch
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
    from safetensors.torch import save_file

    folder = Path(model) / subfolder
    model_class = getattr(diffusers, json.loads((folder / "config.json").read_text())["_class_name"])
    transformer = model_class.from_pretrained(folder)
    torch.manual_seed(seed)
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=targets),
                            transformer, adapter_name="tiny")
    weights = get_peft_model_state_dict(transformer, adapter_name="tiny")
    state = {f"transformer.{key}": (value * scale if ".lora_B." in key else value).contiguous()
             for key, value in weights.items()}
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(file), metadata={"format": "pt"})
    return file


def save_gguf(state: dict, file: str | Path, *, quant: str = "Q8_0", architecture: str,
              keep_float: tuple[str, ...] = ()) -> Path:
    """Tensors (named in a model's original layout) as a GGUF file, as city96's and QuantStack's are made: every
    2-D weight whose rows are a multiple of the quantisation block is quantised to `quant`, the rest kept in
    float32, as are the tensors whose names contain one of `keep_float` (city96's converter's `keys_hiprec`:
    parameters used as they are, not through a layer, such as LTX's `scale_shift_table`)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(file), arch=architecture)
    kind = gguf.GGMLQuantizationType[quant]
    block = gguf.GGML_QUANT_SIZES[kind][0]
    for name, tensor in state.items():
        data = tensor.detach().float().numpy()
        if data.ndim == 2 and data.shape[-1] % block == 0 and not any(part in name for part in keep_float):
            writer.add_tensor(name, gguf.quants.quantize(data, kind), raw_dtype=kind)
        else:
            writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(file)


def dequantized_gguf(file: str | Path) -> dict:
    """A GGUF file's tensors dequantised to float32 by the `gguf` package itself (not diffusers' GGUF loader),
    under their names in the file: the reference the tests compare diffusers' loading with."""
    import gguf
    import numpy as np
    import torch

    state = {}
    for tensor in gguf.GGUFReader(str(file)).tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        shape = [int(side) for side in reversed(tensor.shape.tolist())]
        state[tensor.name] = torch.from_numpy(np.asarray(values, dtype=np.float32).reshape(shape).copy())
    return state
