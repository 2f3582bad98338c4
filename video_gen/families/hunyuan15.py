"""HunyuanVideo 1.5 (Tencent, 8.3B): image to video with diffusers' `HunyuanVideo15ImageToVideoPipeline`, text to
video with `HunyuanVideo15Pipeline`, from the diffusers layout of the official repositories
(hunyuanvideo-community/HunyuanVideo-1.5-480p_i2v, -480p_t2v, -720p_i2v, ...): `model_index.json` names the
pipeline, `transformer/config.json` its `task_type`, `target_size` (640 for 480p, 960 for 720p) and `use_meanflow`
(the step-distilled model).

What the pipeline does not do for the app, and this module does (diffusers 0.42.1, read in its sources):
- It takes no size: the image-to-video pipeline picks the size bucket nearest the picture's shape among the
  buckets of its `target_size` (`image_processor.calculate_default_height_width`) and crops the picture to it.
  The app's sizes are the buckets a picture of exactly that size keeps (`buckets(model)`: 80 of the 121 at 480p;
  the others map to a neighbour), so the picture the engine fitted to the request's size comes out at that size;
  another size is refused naming the nearest buckets. The text-to-video pipeline floors any size to 16 without a
  word: the same buckets are its sizes here.
- It checks no frame count (10 frames silently become 9): 4k+1 is the spec's rule, refused off it.
- Its guidance is its guider's (`guider.new(guidance_scale=G)`, diffusers' docs): the request's max guidance.
- It has no step callback: a forward pre-hook on the transformer reads `scheduler.step_index` for progress and
  raises `Cancelled` there, so Cancel stops within a step (with guidance the transformer runs twice a step).
- No LoRA loader mixin (no `load_lora_weights`): LoRAs are refused in one line (spec `lora_loader` "").
- No single-file loader: `HunyuanVideo15Transformer3DModel.from_single_file` raises (the class is not among
  diffusers' `SINGLE_FILE_LOADABLE_CLASSES`), so single .safetensors and GGUF transformers cannot be loaded.
- Its attention builds two dense S x S masks in every block (10.5 GB at 848x480 x 121 frames): the family runs
  it without them (`prefix_attention_processor`, set through diffusers' `set_processor`), same frames.
- No preview: no latent-to-RGB factors are known for its 32-channel VAE (ComfyUI's are for HunyuanVideo's 16).
- No super-resolution: diffusers 0.42.1 has no HunyuanVideo 1.5 SR pipeline (its SR stages exist only in
  tencent/HunyuanVideo-1.5's own layout), so there is no two-stage option.
The prompt's embeddings (Qwen2.5-VL 7B and Glyph-ByT5) are encoded once per prompt per resident pipeline
(`prompts.cached`); on a 12 GB card the memory plan offloads, so Qwen (14 GB in bf16) never sits on the GPU with
the transformer.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from ..checkpoints import ModelInfo
from ..errors import GenerationFailed, InvalidRequest, ModelNotFound
from ..events import DECODING, DENOISING, ENCODING_IMAGE
from . import prompts
from .common import loading, read_json
from .spec import NONE, OPTIONAL, REQUIRED, Download, FamilySpec, MemoryConstants, ReferenceModel

I2V, T2V = "i2v", "t2v"
VAE_SPATIAL = 16  # the VAE's compression; the transformer's patch is 1: a latent pixel is a token
# The text and image tokens beside the latents in every block's sequence, padding included: Qwen's 1000
# (tokenizer_max_length), ByT5's 256 and SigLIP's 729 (HunyuanVideo15Transformer3DModel.forward)
TEXT_AND_IMAGE_TOKENS = 1000 + 256 + 729

# Measured by `python bench/memory_constants_hunyuan.py` (CPU, torch 2.13, float32 halved to bf16, full width;
# 2026-11-26). The transformer (one block of the 480p I2V model): one call of batch 1 (the guider runs the
# conditional and the unconditional prediction as two calls: cfg_batch 1) needs 22,983 B per token of its sequence
# S (+-10 %: the line is not quite straight) + 60.8 MB, where S = latent tokens + the 1985 text and image tokens,
# counted into the base here (1985 x 22,983 B = 45.6 MB): 1.2 GB at 848x480 x 121 frames (S = 51,275). diffusers'
# own attention adds two S x S boolean masks per block and SDPA's float mask of them: 6.0 B per S^2 measured in
# float32 (4 expected in bf16), 10.5 GB at that size; the family replaces that attention by one without the masks
# (`prefix_attention_processor`), so they are not counted. The VAE decode (`--only vae`: 2 latent frames, two
# sizes): 1,536 B per decoded frame and pixel, no base; it decodes every frame at once (75 GB for 121 frames at
# 848x480), so a smaller decode chunk tiles it spatially (`decode`). The image stage (SigLIP, the VAE encoder on
# one frame) is estimated as the decode's bytes.
HUNYUAN15_MEMORY = MemoryConstants(
    denoise_bytes_per_token=22_983, denoise_base_bytes=60_800_000 + TEXT_AND_IMAGE_TOKENS * 22_983,
    forward_chunking_saving=0.0, decode_bytes_per_pixel=1_536, encode_bytes_per_pixel=1_536,
    encode_base_bytes=64_000_000, spatial_compression=VAE_SPATIAL, temporal_compression=4, cfg_batch=1,
    measured="HunyuanVideo 1.5 480p I2V block and VAE, bench/memory_constants_hunyuan.py on the CPU, 2026-11-26 "
             "(image stage estimated)",
)

REPOSITORY = "hunyuanvideo-community/HunyuanVideo-1.5-"
SPEC = FamilySpec(
    name="hunyuan15",
    label="HunyuanVideo 1.5",
    class_names=("HunyuanVideo15ImageToVideoPipeline", "HunyuanVideo15Pipeline"),
    memory=HUNYUAN15_MEMORY,
    image=OPTIONAL,  # I2V needs a picture, T2V takes none (`model_spec`, `check`)
    prompt=True,
    size_multiple=VAE_SPATIAL,
    frame_step=4,
    exact_frames=True,  # the pipeline floors 10 frames to 9 without a word: 10 is refused naming 9 and 13
    dtype="bfloat16",
    native_frames=121,
    native_fps=24,
    steps_range=(4, 50),  # the step-distilled model runs 8-12
    controls=frozenset({"max_guidance_scale"}),
    downloads=(
        # Sizes from the parameter counts (bf16): transformer 16.7 GB, Qwen2.5-VL 7B text 14.1 GB, VAE 2.5 GB,
        # ByT5 0.4 GB, SigLIP 0.9 GB
        Download("hunyuanvideo-1.5-480p-i2v", REPOSITORY + "480p_i2v",
                 "HunyuanVideo 1.5 image to video, 480p buckets (848x480 for 16:9), 121 frames at 24 fps (~35 GB)"),
        Download("hunyuanvideo-1.5-720p-i2v", REPOSITORY + "720p_i2v",
                 "HunyuanVideo 1.5 image to video, 720p buckets (1280x720 for 16:9; dense attention masks need "
                 "an 80 GB card at 121 frames) (~35 GB)"),
        Download("hunyuanvideo-1.5-480p-t2v", REPOSITORY + "480p_t2v",
                 "HunyuanVideo 1.5 text to video, 480p buckets (~34 GB)"),
        Download("hunyuanvideo-1.5-480p-i2v-step-distilled",
                 "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v_step_distilled",
                 "HunyuanVideo 1.5 image to video, 480p, step-distilled (8 steps) (~35 GB)"),
    ),
    # The 480p I2V model's parts counted on the meta device from diffusers' default transformer and VAE configs
    # (which are the 480p model's), Qwen2.5-VL-7B's text model, Glyph-ByT5 (ByT5-small's encoder) and SigLIP
    # so400m-patch14-384 (2026-11-26; the 8.33B, 1.26B, 7.07B, 0.22B, 0.43B)
    reference_model=ReferenceModel(
        "hunyuanvideo-1.5-480p-i2v",
        numel={"transformer": 8_326_608_160, "vae": 1_260_634_115, "text_encoder": 7_070_619_136,
               "text_encoder_2": 218_222_720, "image_encoder": 428_225_600},
        largest_block={"transformer": 151_056_896, "vae": 871_309_571, "text_encoder": 544_997_376,
                       "text_encoder_2": 217_657_472, "image_encoder": 411_466_608},
        largest_tensor=544_997_376,
        defaults={"num_frames": 121, "fps": 24, "decode_chunk_size": 128},
    ),
)


# ---- what a model is ----------------------------------------------------------------------------------------
def transformer_config(model: ModelInfo) -> dict:
    return read_json(model.path, "transformer", "config.json")


def task(model: ModelInfo) -> str:
    """i2v or t2v, from model_index.json's pipeline class."""
    return I2V if read_json(model.path, "model_index.json")["_class_name"] == SPEC.class_names[0] else T2V


def buckets(model: ModelInfo) -> tuple[tuple[int, int], ...]:
    """The sizes (width, height) this model makes: its size buckets that a picture of exactly that size keeps."""
    return bucket_sizes(int(transformer_config(model).get("target_size", 640)))


@lru_cache(maxsize=8)
def _crops(target_size: int) -> tuple[tuple[int, int], ...]:
    """diffusers' `generate_crop_size_list` (HunyuanVideo 1.5's image_processor.py): every (height, width) in
    multiples of 16 with as many 16x16 patches as (target/16)^2 allows and an aspect ratio of at most 4. The same
    arithmetic in plain Python, so that the page can ask without importing torch (a test compares the two)."""
    patches = round((target_size / VAE_SPATIAL) ** 2)
    crops, wide, high = [], patches, 1
    while wide > 0:
        if max(wide, high) / min(wide, high) <= 4.0:
            crops.append((wide * VAE_SPATIAL, high * VAE_SPATIAL))  # (height, width), as diffusers reads them
        if (high + 1) * wide <= patches:
            high += 1
        else:
            wide -= 1
    return tuple(crops)


def bucket_for(target_size: int, width: int, height: int) -> tuple[int, int]:
    """The bucket (width, height) the pipeline makes from a picture of width x height: diffusers'
    `calculate_default_height_width` (the nearest ratio among those at least as tall for a landscape picture, at
    most as tall for a portrait one, ratios rounded to 5 decimals)."""
    crops = _crops(target_size)
    aspect = height / width
    candidates = [(index, round(h / w, 5) - aspect) for index, (h, w) in enumerate(crops)]
    candidates = [pair for pair in candidates if (pair[1] <= 0 if aspect >= 1 else pair[1] >= 0)]
    h, w = crops[min(candidates, key=lambda pair: abs(pair[1]))[0]]
    return w, h


@lru_cache(maxsize=8)
def bucket_sizes(target_size: int) -> tuple[tuple[int, int], ...]:
    """The sizes (width, height) the app makes: the buckets that a picture of exactly that size keeps (the engine
    fits the picture to the request's size before the pipeline picks its bucket). 80 of the 121 at 480p, 104 of
    181 at 720p: for the others the 5-decimal rounding of the ratios sends an exact-size picture to a neighbour
    (a 480x848 picture is made at 480x832)."""
    return tuple((w, h) for h, w in _crops(target_size) if bucket_for(target_size, w, h) == (w, h))


def picture_size(model: ModelInfo, width: int, height: int) -> tuple[int, int]:
    """The size this model makes from a picture of width x height when the request names none: the pipeline's
    bucket for the picture, or the nearest size it can keep."""
    target = int(transformer_config(model).get("target_size", 640))
    chosen = bucket_for(target, width, height)
    if chosen in bucket_sizes(target):
        return chosen
    return replace(SPEC, sizes=bucket_sizes(target)).nearest_sizes(*chosen, count=1)[0]


def default_size(target_size: int) -> tuple[int, int]:
    """The bucket nearest 16:9 (the text-to-video pipeline's `default_aspect_ratio`): 848x480 at 480p."""
    return min(bucket_sizes(target_size), key=lambda size: (abs(size[1] / size[0] - 9 / 16), -size[0]))


def is_step_distilled(model: ModelInfo) -> bool:
    return bool(transformer_config(model).get("use_meanflow"))


def guider_scale(model: ModelInfo) -> float:
    """The folder's own guidance (its guider_config.json; 6.0 in the 480p repositories)."""
    try:
        return float(read_json(model.path, "guider", "guider_config.json").get("guidance_scale", 6.0))
    except ModelNotFound:
        return 6.0


def defaults(model: ModelInfo) -> dict:
    """121 frames at 24 fps, the bucket nearest 16:9, 50 steps (8 for the step-distilled model, whose model card
    recommends 8-12) and the folder's own guidance."""
    width, height = default_size(int(transformer_config(model).get("target_size", 640)))
    return {
        "num_frames": 121, "fps": 24, "width": width, "height": height,
        "num_inference_steps": 8 if is_step_distilled(model) else 50,
        "max_guidance_scale": guider_scale(model), "min_guidance_scale": 0.0,  # unused: one guidance
        # All frames decoded at once; the memory plan lowers it, which tiles the decode spatially (`decode`)
        "decode_chunk_size": 128,
    }


def model_spec(model: ModelInfo) -> FamilySpec:
    """The spec narrowed to one model: a picture required (I2V) or refused (T2V), and its size buckets."""
    return replace(SPEC, image=REQUIRED if task(model) == I2V else NONE, sizes=buckets(model))


def check(request, model: ModelInfo) -> None:
    """A picture for I2V and none for T2V; a size of its buckets; T2V in one generation (a chained segment
    starts from a picture, which the text-to-video folder has no image encoder for)."""
    kind = task(model)
    if kind == I2V and not request.image:
        raise InvalidRequest("image", f"missing: {model.name} is a HunyuanVideo 1.5 image-to-video model; give the "
                                      f"first frame")
    if kind == T2V and request.image:
        raise InvalidRequest("image", f"{model.name} is a HunyuanVideo 1.5 text-to-video model; leave the picture "
                                      f"out or use an image-to-video model")
    replace(SPEC, sizes=buckets(model)).check_size(request.width, request.height)  # kind is read above
    if kind == T2V and request.num_frames is not None:
        from ..planner import plan_length

        settings = defaults(model)
        plan = plan_length(request.num_frames, request.fps or settings["fps"], native_frames=settings["num_frames"],
                           native_fps=settings["fps"], interpolation=request.interpolation, loop=request.loop,
                           frame_step=SPEC.frame_step)
        if plan.segments > 1:
            raise InvalidRequest("num_frames", f"{model.name} (text to video) makes one generation of at most "
                                               f"{settings['num_frames']} frames; ask for fewer, got "
                                               f"{request.num_frames}")


# ---- loading ------------------------------------------------------------------------------------------------
def load(model: ModelInfo, device: str, dtype):
    from diffusers import HunyuanVideo15ImageToVideoPipeline, HunyuanVideo15Pipeline

    pipeline_class = HunyuanVideo15ImageToVideoPipeline if task(model) == I2V else HunyuanVideo15Pipeline
    with loading(str(model.path)):
        pipe = pipeline_class.from_pretrained(model.path, local_files_only=True, dtype=dtype, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe  # on the CPU; the engine places it on the device under the memory plan


# ---- running ------------------------------------------------------------------------------------------------
def encode_prompt(pipe, request, guidance: bool) -> dict:
    """The prompt's (and, with guidance, the negative prompt's) Qwen and ByT5 embeddings as the pipeline's
    keyword arguments, from the resident pipeline's cache when this prompt was encoded before."""
    import torch

    device, dtype = pipe._execution_device, pipe.transformer.dtype
    key = ("hunyuan15", request.prompt, request.negative_prompt, guidance, str(device), str(dtype))

    def encode() -> dict:
        names = ("prompt_embeds", "prompt_embeds_mask", "prompt_embeds_2", "prompt_embeds_mask_2")
        with torch.no_grad():
            found = dict(zip(names, pipe.encode_prompt(prompt=request.prompt, device=device, dtype=dtype)))
            if guidance:  # the pipeline encodes the negative prompt only when its guider runs two predictions
                negative = pipe.encode_prompt(prompt=request.negative_prompt or None, device=device, dtype=dtype)
                found.update(zip((f"negative_{name}" for name in names), negative))
        return found

    return prompts.cached(pipe, key, encode)


def run(pipe, request, image, job) -> np.ndarray:
    """Generate the frames of `request`; `image` (already width x height, one of the buckets) is the first frame
    (I2V), None for text to video."""
    # 1. Guidance through the guider (a guidance of 1 turns it off: one transformer call a step)
    if pipe.guider.guidance_scale != request.max_guidance_scale:
        pipe.guider = pipe.guider.new(guidance_scale=request.max_guidance_scale)
    guidance = pipe.guider._enabled and pipe.guider.num_conditions > 1

    # 2. The prompt's embeddings, once per prompt for this resident pipeline
    job.stage(ENCODING_IMAGE, "encoding the prompt" + ("" if image is None else " and the picture"))
    arguments = dict(encode_prompt(pipe, request, guidance), num_frames=request.num_frames,
                     num_inference_steps=request.num_inference_steps, generator=job.generator, output_type="latent")
    if image is None:
        arguments.update(height=request.height, width=request.width)
    else:
        arguments["image"] = image

    # 3. Denoise: progress and cancel from a pre-hook on the transformer (the pipeline has no step callback)
    steps, seen = request.num_inference_steps, [-1]

    def before_transformer(module, args):
        done = pipe.scheduler.step_index or 0  # None before the first step
        if done != seen[0]:
            seen[0] = done
            if done:
                job.step(DENOISING, done, steps)
            else:
                job.enter(DENOISING)
        job.check_cancelled()  # within a step: with guidance the transformer runs twice in each

    use_prefix_attention(pipe.transformer)
    hook = pipe.transformer.register_forward_pre_hook(before_transformer)
    try:
        latents = pipe(**arguments).frames
        job.step(DENOISING, steps, steps)
        # 4. Decode; out of memory decodes again, tiled (the memory plan's smaller decode chunk)
        frames = job.decode_with_retries(lambda chunk_size: decode(pipe, latents, chunk_size, request.num_frames,
                                                                   job))
    finally:
        hook.remove()
        pipe.maybe_free_model_hooks()  # the pipeline skips it when a cancel leaves its call
    if frames.shape[1:3] != (request.height, request.width):  # the bucket rule changed under us: say so
        raise GenerationFailed(f"HunyuanVideo 1.5 made {frames.shape[2]}x{frames.shape[1]} instead of "
                               f"{request.width}x{request.height}")
    return frames


def decode(pipe, latents, chunk_size: int, num_frames: int, job) -> np.ndarray:
    """Latents to uint8 frames (F, H, W, 3) as the pipeline decodes them. Its VAE decodes all frames at once, or in
    square spatial tiles of all frames (diffusers' `enable_tiling`), so the memory plan's decode chunk (frames
    decoded at once, for the estimate) becomes tiles of as many pixels: a side of sqrt(chunk x W x H / frames),
    in multiples of 64 (at 848x480 x 121 frames: 16 frames' worth, 224-pixel tiles; 8, 128)."""
    import math

    import torch

    vae = pipe.vae
    job.stage(DECODING, f"decoding {num_frames} frames")
    tiled = chunk_size < num_frames
    if tiled:
        pixels = latents.shape[-2] * latents.shape[-1] * VAE_SPATIAL ** 2
        side = max(64, int(math.sqrt(chunk_size * pixels / num_frames)) // 64 * 64)
        vae.enable_tiling(tile_sample_min_height=side, tile_sample_min_width=side,
                          tile_latent_min_height=side // VAE_SPATIAL, tile_latent_min_width=side // VAE_SPATIAL)
    try:
        with torch.no_grad():
            video = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
            video = pipe.video_processor.postprocess_video(video, output_type="np")[0]
    finally:
        if tiled:
            vae.disable_tiling()
    # The same rounding as diffusers' numpy_to_pil, so PNG frames equal the pipeline's PIL output.
    return (video * 255).round().astype(np.uint8)


# ---- attention without the dense masks ------------------------------------------------------------------------
_prefix_processor = None


def use_prefix_attention(transformer) -> None:
    """Give each attention that runs diffusers' `HunyuanVideo15AttnProcessor2_0` (the blocks'; the token refiner
    has its own) `prefix_attention_processor()`, once per transformer."""
    from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15AttnProcessor2_0

    if getattr(transformer, "_video_gen_prefix_attention", False):
        return
    processor = prefix_attention_processor()
    for module in transformer.modules():
        if type(getattr(module, "processor", None)) is HunyuanVideo15AttnProcessor2_0:
            module.set_processor(processor)
    transformer._video_gen_prefix_attention = True


def prefix_attention_processor():
    """diffusers' `HunyuanVideo15AttnProcessor2_0` without its dense masks, through diffusers' own seam
    (`set_attn_processor`; made on first use: this module imports no torch).

    The stock processor builds, in every block, an S x S boolean mask twice over (a `repeat` and the `&` of it
    with its transpose) and SDPA turns it into a float mask: 6 bytes per S^2 in float32 measured on the CPU, 4
    expected in bf16: 10.5 GB at 848x480 x 121 frames, more than a 12 GB card has beside the model. But the
    transformer orders its sequence [latents, valid image, valid ByT5, valid Qwen, padding] ("combine valid tokens
    first", its forward), so for one video (the guider runs the conditional and the unconditional prediction as
    two calls of batch 1) the valid tokens are a prefix of length L and the mask says exactly "the first L attend
    to the first L": attention on [:L] with no mask (a flash kernel, linear memory) gives the valid rows, and a
    padded row, which the stock mask leaves nothing to attend to, gets 0 as SDPA gives a fully masked row. A batch
    of several, or a mask that is not a prefix, takes the stock way. The app's frames equal the stock pipeline's
    (tests/test_hunyuan15.py)."""
    global _prefix_processor
    if _prefix_processor is None:
        import torch
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15AttnProcessor2_0

        class PrefixAttention(HunyuanVideo15AttnProcessor2_0):
            _last_mask, _last_valid = None, 0  # the mask of the call before: all blocks of one forward share it

            def valid_tokens(self, attention_mask) -> int | None:
                """How many of the text tokens are valid when they are a prefix (else None: the stock way)."""
                if attention_mask is self._last_mask:
                    return self._last_valid
                valid = attention_mask[0].bool()
                count = int(valid.sum())  # one device sync per transformer call, not per block
                found = count if bool(valid[:count].all()) else None
                self._last_mask, self._last_valid = attention_mask, found
                return found

            def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                         image_rotary_emb=None):
                if attention_mask is None or encoder_hidden_states is None or hidden_states.shape[0] != 1 or (
                        (valid := self.valid_tokens(attention_mask)) is None):
                    return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask,
                                            image_rotary_emb)
                # 1-4. The stock processor's projections, normalisation and rotary embedding
                query, key, value = (projection(hidden_states).unflatten(2, (attn.heads, -1))
                                     for projection in (attn.to_q, attn.to_k, attn.to_v))
                query, key = attn.norm_q(query), attn.norm_k(key)
                if image_rotary_emb is not None:
                    from diffusers.models.embeddings import apply_rotary_emb

                    query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
                    key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
                encoder_query, encoder_key, encoder_value = (
                    projection(encoder_hidden_states).unflatten(2, (attn.heads, -1))
                    for projection in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
                if attn.norm_added_q is not None:
                    encoder_query = attn.norm_added_q(encoder_query)
                if attn.norm_added_k is not None:
                    encoder_key = attn.norm_added_k(encoder_key)
                query = torch.cat([query, encoder_query], dim=1)
                key = torch.cat([key, encoder_key], dim=1)
                value = torch.cat([value, encoder_value], dim=1)
                # 5. Attention over the valid prefix, without a mask; the padded rows stay 0
                length = hidden_states.shape[1] + valid
                attended = query.new_zeros(query.shape)
                attended[:, :length] = dispatch_attention_fn(
                    query[:, :length], key[:, :length], value[:, :length], attn_mask=None, dropout_p=0.0,
                    is_causal=False, backend=self._attention_backend, parallel_config=self._parallel_config)
                attended = attended.flatten(2, 3).to(query.dtype)
                # 6. The stock output projections
                latents, text = attended[:, :hidden_states.shape[1]], attended[:, hidden_states.shape[1]:]
                if getattr(attn, "to_out", None) is not None:
                    latents = attn.to_out[1](attn.to_out[0](latents))
                if getattr(attn, "to_add_out", None) is not None:
                    text = attn.to_add_out(text)
                return latents, text

        _prefix_processor = PrefixAttention
    return _prefix_processor()

