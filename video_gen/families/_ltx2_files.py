"""LTX-2's official single files, for `families/ltx2.py`: recognising them from their tensor names, reading their
architecture for pairing with an installed folder, and loading the parts diffusers 0.42.1 cannot load from a
single file.

Lightricks/LTX-2 publishes `ltx-2-19b-dev.safetensors` and `ltx-2-19b-distilled.safetensors` (and their fp8
versions): the transformer with its text connectors under `model.diffusion_model.`, the video VAE under `vae.`,
the audio VAE under `audio_vae.`, the vocoder under `vocoder.` (no text encoder: Gemma 3 is its own download).
Transformer-only files (`.safetensors` with the same prefix, or GGUF without it) hold the transformer and its
connectors. diffusers loads the transformer and the video VAE with `from_single_file` (a `config=` folder
keeps it offline), but has no single-file loader for the audio VAE (`AutoencoderKLLTX2Audio` lacks
`from_single_file` in 0.42.1), the vocoder or the connectors: only scripts/convert_ltx2_to_diffusers.py renames
them. So their tensors are renamed here (the inverse of `video_gen/tiny/ltx2.py`'s tables, which mirror that
script, and diffusers' own `convert_ltx2_audio_vae_to_diffusers`) and loaded into the paired folder's
architecture: a distilled file's own connectors and sound parts are used, not the folder's.
"""

from __future__ import annotations

from pathlib import Path

PREFIX = "model.diffusion_model."
TRANSFORMER_CLASS = "LTX2VideoTransformer3DModel"  # a file holding the transformer (and its connectors) alone
CHECKPOINT_CLASS = "LTX2Checkpoint"  # the whole official file: transformer, connectors, VAEs and vocoder


def _stripped(keys) -> set[str]:
    return {key.removeprefix(PREFIX) for key in keys}


def _is_ltx2_transformer_keys(keys: set[str]) -> bool:
    # The audio-video cross attention (`av_ca_*`) is LTX-2's alone (diffusers' own detection key for "ltx2").
    return "patchify_proj.weight" in keys and any(key.startswith("av_ca_") for key in keys)


def is_checkpoint(keys) -> bool:
    """The whole official file: LTX-2's transformer with the VAE (`vae.`) beside it."""
    keys = list(keys)
    return _is_ltx2_transformer_keys(_stripped(keys)) and any(key.startswith("vae.") for key in keys)


def is_transformer(keys) -> bool:
    """LTX-2's transformer alone (with or without its connectors), prefixed or not (GGUF files drop it)."""
    keys = list(keys)
    return _is_ltx2_transformer_keys(_stripped(keys)) and not any(key.startswith("vae.") for key in keys)


def transformer_shape(keys_and_shapes: dict) -> tuple | None:
    """(blocks, video width, latent channels, audio width, text channels) of an LTX-2 transformer, from a file's
    tensor shapes or from a diffusers transformer config (a dict with `num_layers`)."""
    if "num_layers" in keys_and_shapes:
        config = keys_and_shapes
        return (config["num_layers"], config["num_attention_heads"] * config["attention_head_dim"],
                config["in_channels"], config["audio_num_attention_heads"] * config["audio_attention_head_dim"],
                config["caption_channels"])
    shapes = {key.removeprefix(PREFIX): shape for key, shape in keys_and_shapes.items()}
    patch, audio = shapes.get("patchify_proj.weight"), shapes.get("audio_patchify_proj.weight")
    caption = shapes.get("caption_projection.linear_1.weight")
    if patch is None or audio is None or caption is None:
        return None
    blocks = len({key.split(".")[1] for key in shapes if key.startswith("transformer_blocks.")})
    return blocks, patch[0], patch[1], audio[0], caption[1]


def describe_shape(shape: tuple) -> str:
    blocks, width, channels, audio, text = shape
    return f"{blocks} blocks, width {width} (audio {audio}), {channels} latent channels, {text} text channels"


# ---- the parts diffusers cannot load from a single file -----------------------------------------------------
_CONNECTOR_NAMES = (("video_embeddings_connector", "video_connector"), ("audio_embeddings_connector", "audio_connector"),
                    ("transformer_1d_blocks", "transformer_blocks"), ("q_norm", "norm_q"), ("k_norm", "norm_k"))
_VOCODER_PARTS = {"ups": "upsamplers", "resblocks": "resnets", "conv_pre": "conv_in", "conv_post": "conv_out"}


def connector_name(name: str) -> str:
    """An official connector tensor's name (without `model.diffusion_model.`) as `LTX2TextConnectors` names it."""
    if name.startswith("text_embedding_projection.aggregate_embed."):
        return "text_proj_in." + name.removeprefix("text_embedding_projection.aggregate_embed.")
    for original, diffusers_name in _CONNECTOR_NAMES:
        name = name.replace(original, diffusers_name)
    return name


def vocoder_name(name: str) -> str:
    return ".".join(_VOCODER_PARTS.get(part, part) for part in name.split("."))


def _read_tensors(path: Path, wanted) -> dict:
    """The tensors of `path` whose names `wanted(name)` accepts, as float tensors (a GGUF's dequantised)."""
    if path.suffix.lower() == ".gguf":
        # Only the tensors wanted are copied out of the memory-mapped file (diffusers' `load_gguf_checkpoint` copies
        # all of them: the whole transformer), then dequantised as diffusers' GGUF layers do
        import torch
        from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor
        from gguf import GGMLQuantizationType, GGUFReader

        found = {}
        for tensor in GGUFReader(str(path)).tensors:
            if not wanted(tensor.name):
                continue
            data = torch.from_numpy(tensor.data.copy())
            if tensor.tensor_type not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
                data = dequantize_gguf_tensor(GGUFParameter(data, quant_type=tensor.tensor_type))
            found[tensor.name] = data
        return found
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys() if wanted(name)}


def _into(model_class, folder: Path, state: dict, dtype):
    """`model_class` with the config of `folder`, its weights `state` (every one of them: strict)."""
    from accelerate import init_empty_weights

    config = model_class.load_config(str(folder))
    with init_empty_weights():
        model = model_class.from_config(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(dtype).eval()


def file_parts(path: Path, folder: Path, dtype) -> dict:
    """The parts of the single file `path` that diffusers cannot load from it, built with `folder`'s configs: the
    connectors (where the file holds them), and the audio VAE and vocoder (the whole official file). A part
    the file does not hold comes from the folder (not in the result)."""
    from diffusers import AutoencoderKLLTX2Audio
    from diffusers.loaders.single_file_utils import convert_ltx2_audio_vae_to_diffusers
    from diffusers.pipelines.ltx2 import LTX2TextConnectors, LTX2Vocoder

    connector_roots = ("text_embedding_projection.", "video_embeddings_connector.", "audio_embeddings_connector.")
    tensors = _read_tensors(path, lambda name: name.removeprefix(PREFIX).startswith(connector_roots)
                            or name.startswith(("audio_vae.", "vocoder.")))
    parts = {}
    connectors = {connector_name(name.removeprefix(PREFIX)): tensor for name, tensor in tensors.items()
                  if name.removeprefix(PREFIX).startswith(connector_roots)}
    if connectors:
        parts["connectors"] = _into(LTX2TextConnectors, folder / "connectors", connectors, dtype)
    audio_vae = {name: tensor for name, tensor in tensors.items() if name.startswith("audio_vae.")}
    if audio_vae:
        parts["audio_vae"] = _into(AutoencoderKLLTX2Audio, folder / "audio_vae",
                                   convert_ltx2_audio_vae_to_diffusers(audio_vae), dtype)
    vocoder = {vocoder_name(name.removeprefix("vocoder.")): tensor for name, tensor in tensors.items()
               if name.startswith("vocoder.")}
    if vocoder:
        parts["vocoder"] = _into(LTX2Vocoder, folder / "vocoder", vocoder, dtype)
    return parts


def split_header(header: dict) -> dict[str, list[dict]]:
    """An official single file's safetensors header split by the component each tensor belongs to (the memory
    plan counts each part where it runs)."""
    parts: dict[str, dict] = {"transformer": {}, "vae": {}, "audio_vae": {}, "vocoder": {}}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        part = next((part for part in ("audio_vae", "vae", "vocoder") if name.startswith(part + ".")), "transformer")
        parts[part][name] = entry
    return {part: [entries] for part, entries in parts.items() if entries}
