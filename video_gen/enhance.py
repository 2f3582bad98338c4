"""The prompt enhancer: a local vision-language model rewrites the user's prompt from the picture, in the style the
video model was trained on.

A model folder is what transformers' image-text-to-text models download as (config.json, *.safetensors, the
tokenizer files with a chat template, preprocessor_config.json). Supported: Qwen2-VL, Qwen2.5-VL, Qwen3-VL (one
layout) and Gemma 3.

Why not `AutoProcessor`: in transformers 5 it builds Qwen's video processor too, which needs torchvision (missing on
these machines), and building `Qwen2_5_VLProcessor(video_processor=None)` by hand fails in its class check
(`VIDEO_PROCESSOR_MAPPING has no attribute '_extra_content'`, transformers 5.25). So the processing is put together
here from the same parts: the tokenizer and its chat template, `AutoImageProcessor` (its PIL backend without
torchvision), and the placeholder expansion each family's processor does (`replace_image_token`), plus the token
type ids its position encoding reads (`mm_token_type_ids`: Qwen's 3-D rotary positions are only computed from them;
without them the image tokens silently get text positions).

Decoding is greedy (`do_sample=False`, overriding the sampling that Qwen's generation_config.json asks for) with a
bounded `max_new_tokens`, so the same picture, prompt and style give the same text on the same machine.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidRequest
from .families import spec_for
from .families.spec import Download

FIELD = "enhancer"
FOLDERS = ("enhancers",)  # models/enhancers: one model folder each
# Visual tokens an enhancer may spend on the picture. Qwen2.5-VL's own default allows 16384 (12.8 M pixels); the
# rewrite needs the scene, not its fine print: 768 tokens is a 756x756 picture at Qwen2.5-VL's 28 px per token.
MAX_IMAGE_TOKENS = 768


# ---- styles ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Style:
    """How one kind of video model wants its prompt: the instruction, the length bound and the tidy-up."""

    name: str
    instruction: str
    max_new_tokens: int
    tags: bool = False  # comma-separated tags (cut an unfinished one) rather than sentences


_COMMON = ("Describe only what the picture shows or the user asks for, and keep the user's intent. Write in English. "
           "Answer with the prompt alone: no title, no quotes, no list, no line breaks, no explanation.")
STYLES = {
    # Wan 2.x, LTX-Video and HunyuanVideo were trained on long, dense captions; LTX's own prompt guide asks for
    # the main action first, then movements, appearance, background, camera and lighting, within 200 words.
    "long": Style("long", (
        "You write prompts for an image-to-video model. The video starts from the picture shown. Rewrite the "
        "user's prompt as one paragraph of 80 to 150 words in the present tense: start with the main action in "
        "one sentence, then describe the specific movements and gestures, the appearance of the people, animals "
        "or objects as the picture shows them, the background and setting, the camera's angle and movement, and "
        "the lighting and colours. " + _COMMON), max_new_tokens=320),
    # FramePack's guide: short prompts about the motion ("The girl dances gracefully, with clear movements.").
    "motion": Style("motion", (
        "You write prompts for an image-to-video model. The video starts from the picture shown. Rewrite the "
        "user's prompt as one or two short sentences that say how the subject moves and how the camera moves. "
        + _COMMON), max_new_tokens=80),
    # ModelScope's text-to-video model was trained on WebVid's one-sentence captions.
    "caption": Style("caption", (
        "You write prompts for a text-to-video model. Rewrite the user's prompt as one plain sentence of at most "
        "25 words saying who or what is in the video, what happens and where, as the picture shows it. "
        + _COMMON), max_new_tokens=60),
    # AnimateDiff runs on Stable Diffusion 1.5 checkpoints, prompted with comma-separated tags.
    "tags": Style("tags", (
        "You write prompts for a Stable Diffusion 1.5 animation model, which understands comma-separated tags. "
        "Rewrite the user's prompt as at most 40 short tags separated by commas: the subject and its appearance, "
        "the action, the setting, the lighting, the style, then quality tags such as masterpiece, best quality. "
        "No sentences. " + _COMMON), max_new_tokens=120, tags=True),
}


def style_for(name: str) -> Style:
    """A style by its name, or a family's (its spec's `prompt_style`); one-line refusals for unknown names and
    families that take no prompt."""
    if name in STYLES:
        return STYLES[name]
    try:
        spec = spec_for(name)
    except KeyError:
        raise InvalidRequest("enhance_prompt", f"unknown prompt style {name!r}: expected one of "
                                               f"{', '.join(STYLES)}, or a family's name") from None
    if not spec.prompt:
        raise InvalidRequest("enhance_prompt", f"{name} models take no prompt, so there is nothing to enhance")
    return STYLES[spec.prompt_style]


def messages_for(prompt: str, style: Style) -> list[dict]:
    """The chat: the style's instruction as the system turn, the picture and the user's prompt as the user turn."""
    prompt = " ".join(prompt.split())
    ask = (f"The user's prompt: {prompt}" if prompt else
           "The user gave no prompt: write one for the motion that suits this picture.")
    return [
        {"role": "system", "content": [{"type": "text", "text": style.instruction}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ask}]},
    ]


_LABEL = re.compile(r"^\s*(?:\*\*)?(?:here is |here's )?(?:the )?(?:enhanced |rewritten |improved |new )?"
                    r"(?:video )?prompt(?:\*\*)?\s*:(?:\*\*)?\s*", re.IGNORECASE)
_QUOTES = "\"'`“”‘’"


def tidy(text: str, style: Style, *, cut_off: bool = False) -> str:
    """One paragraph: no label ("Prompt:"), no wrapping quotes, whitespace collapsed; when the token limit cut the
    text, it ends at its last full sentence (tags: its last full tag) if that keeps at least half of it."""
    text = _LABEL.sub("", text.strip())
    text = " ".join(text.split())
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    if cut_off and text:
        ends = [match.end() for match in re.finditer(r"," if style.tags else r"[.!?](?=\s|$)", text)]
        if ends and ends[-1] >= len(text) / 2:
            text = text[:ends[-1]].rstrip(", ")
    return text


# ---- models ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How one model family puts a picture into its token sequence (its processor's `replace_image_token`)."""

    placeholder: str  # what the chat template writes for {"type": "image"}
    type_ids_key: str  # the model's name for the per-token modality ids (1 = image token)


# Qwen2-VL, Qwen2.5-VL and Qwen3-VL: "<|vision_start|><|image_pad|><|vision_end|>", the pad repeated once per
# merged patch (image_grid_thw.prod() // merge_size**2).
QWEN = Layout(placeholder="<|image_pad|>", type_ids_key="mm_token_type_ids")
# Gemma 3: "<start_of_image>" becomes "\n\n<start_of_image>" + mm_tokens_per_image x "<image_soft_token>" +
# "<end_of_image>\n\n" (Gemma3Processor.full_image_sequence); its attention is bidirectional over token_type_ids 1.
GEMMA3 = Layout(placeholder="<start_of_image>", type_ids_key="token_type_ids")
LAYOUTS = {"qwen2_vl": QWEN, "qwen2_5_vl": QWEN, "qwen3_vl": QWEN, "gemma3": GEMMA3}
SUPPORTED = "Qwen2-VL, Qwen2.5-VL, Qwen3-VL or Gemma 3 (transformers image-text-to-text folders)"

# `video-gen models download NAME` (downloads.py): folders into models/enhancers. Sizes are the bf16 weights;
# licences: models/README.md. Qwen3-VL needs transformers 4.57 or newer.
DOWNLOADS = (
    Download("qwen3-vl-4b", "Qwen/Qwen3-VL-4B-Instruct", "Qwen3-VL 4B Instruct, prompt enhancer (about 9 GB; fits "
             "a 12 GB card on its own: it is unloaded before the video model loads); Apache-2.0"),
    Download("qwen3-vl-2b", "Qwen/Qwen3-VL-2B-Instruct", "Qwen3-VL 2B Instruct, a smaller prompt enhancer (about "
             "4.5 GB); Apache-2.0"),
    Download("gemma-3-4b", "google/gemma-3-4b-it", "Gemma 3 4B instruct, prompt enhancer (about 8.6 GB); Gemma terms "
             "of use, gated: accept them on the hub and `hf auth login` first"),
)


@dataclass(frozen=True)
class EnhancerInfo:
    """What an enhancer folder holds, read from its files without loading it."""

    path: Path
    model_type: str
    architecture: str
    weight_bytes: int
    name: str = ""  # what the user types (`--enhancer`): the folder's name
    allow_pickle: bool = False  # its weights are .bin pickles the user allowed


def describe_enhancer(folder: str | Path, *, allow_pickle: bool = False) -> EnhancerInfo:
    """Model type, class and weight size of an enhancer folder, or a one-line refusal saying what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidRequest(FIELD, f"{folder} is not a folder; an enhancer is a model folder ({SUPPORTED})")
    try:
        config = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise InvalidRequest(FIELD, f"{folder.name} has no config.json; an enhancer is a {SUPPORTED}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidRequest(FIELD, f"{folder.name}/config.json is not valid JSON ({error})") from error
    model_type = config.get("model_type", "")
    architecture = (config.get("architectures") or [""])[0]
    if model_type not in LAYOUTS:
        raise InvalidRequest(FIELD, f"{folder.name} is a {model_type or 'unknown'} model; an enhancer is a "
                                    f"{SUPPORTED}")
    safetensors = sorted(folder.glob("*.safetensors"))
    pickles = sorted(folder.glob("*.bin"))
    if not safetensors and not pickles:
        raise InvalidRequest(FIELD, f"{folder.name} has no weights (*.safetensors)")
    if not safetensors and not allow_pickle:
        raise InvalidRequest(FIELD, f"{folder.name} holds only .bin weights, which are pickle files: loading a "
                                    "pickle can run any code hidden in it; pass --allow-pickle if you trust it")
    weights = safetensors or pickles
    return EnhancerInfo(path=folder, model_type=model_type, architecture=architecture,
                        weight_bytes=sum(file.stat().st_size for file in weights), name=folder.name,
                        allow_pickle=not safetensors)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype_for(device: str):
    """float32 on the CPU; bfloat16 on cards that have it (these models are trained in it), else float16."""
    import torch

    if not str(device).startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def open_picture(image_path: str | Path):
    """The picture as RGB, turned the way its EXIF says; a one-line refusal when it is not a picture."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(image_path) as picture:
            return ImageOps.exif_transpose(picture).convert("RGB")
    except FileNotFoundError:
        raise InvalidRequest("image", f"{image_path} does not exist") from None
    except (UnidentifiedImageError, OSError) as error:
        raise InvalidRequest("image", f"{image_path} is not a picture PIL can read ({error})") from error


class Enhancer:
    """A loaded enhancer. `rewrite` is deterministic; `close` frees its memory (before a video model loads)."""

    def __init__(self, folder: str | Path, *, device: str | None = None, dtype=None, allow_pickle: bool = False):
        self.info = describe_enhancer(folder, allow_pickle=allow_pickle)
        self.layout = LAYOUTS[self.info.model_type]
        self.device = device or _default_device()
        self.dtype = dtype if dtype is not None else dtype_for(self.device)
        self.model = self.tokenizer = self.image_processor = None

    # 1. Load the parts
    def load(self) -> Enhancer:
        if self.model is not None:
            return self
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        folder = self.info.path
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if not self.tokenizer.chat_template:
            self.tokenizer.chat_template = _template_file(folder)
        self.image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=self.dtype, local_files_only=True)
        self.model = model.to(self.device).eval()
        return self

    def close(self) -> None:
        """Drops the model (and the CUDA cache), so the video model gets the memory."""
        self.model = self.tokenizer = self.image_processor = None
        gc.collect()
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # 2. Put the picture and the prompt into the model's inputs
    def inputs(self, picture, prompt: str, style: Style) -> dict:
        """input_ids, attention_mask, the picture's tensors and the token type ids, on the model's device."""
        import torch

        self.load()
        text = self.tokenizer.apply_chat_template(messages_for(prompt, style), tokenize=False,
                                                  add_generation_prompt=True)
        if text.count(self.layout.placeholder) != 1:
            raise InvalidRequest(FIELD, f"{self.info.path.name}'s chat template does not place one picture "
                                        f"({self.layout.placeholder!r} appears {text.count(self.layout.placeholder)} "
                                        "times)")
        if self.layout is QWEN:
            pixels, text, image_token_id = self._qwen_picture(picture, text)
        else:
            pixels, text, image_token_id = self._gemma3_picture(picture, text)
        # The template already holds the special tokens (Gemma's <bos> too): add none.
        tokens = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")
        input_ids = tokens["input_ids"]
        inputs = {"input_ids": input_ids, "attention_mask": tokens["attention_mask"],
                  self.layout.type_ids_key: (input_ids == image_token_id).long(), **pixels}
        return {key: value.to(self.device, dtype=self.dtype if value.is_floating_point() else value.dtype)
                if isinstance(value, torch.Tensor) else value for key, value in inputs.items()}

    def _qwen_picture(self, picture, text: str):
        processor = self.image_processor
        merge = int(processor.merge_size)
        factor = int(processor.patch_size) * merge
        size = dict(processor.size)
        size["longest_edge"] = min(int(size["longest_edge"]), MAX_IMAGE_TOKENS * factor * factor)
        pixels = processor(images=[picture], size=size, return_tensors="pt")
        count = int(pixels["image_grid_thw"][0].prod()) // (merge * merge)
        pad = self.layout.placeholder
        image_token_id = self.tokenizer.convert_tokens_to_ids(pad)
        if image_token_id != self.model.config.image_token_id:
            raise InvalidRequest(FIELD, f"{self.info.path.name}: its tokenizer's {pad} is token {image_token_id}, "
                                        f"its config says {self.model.config.image_token_id}")
        return dict(pixels), text.replace(pad, pad * count), image_token_id

    def _gemma3_picture(self, picture, text: str):
        pixels = self.image_processor(images=[picture], do_pan_and_scan=False, return_tensors="pt")
        pixels = {key: value for key, value in pixels.items() if key != "num_crops"}
        config = self.model.config
        boi, eoi, soft = (self.tokenizer.convert_ids_to_tokens(index) for index in
                          (config.boi_token_id, config.eoi_token_id, config.image_token_id))
        sequence = f"\n\n{boi}{soft * int(config.mm_tokens_per_image)}{eoi}\n\n"
        return pixels, text.replace(self.layout.placeholder, sequence), config.image_token_id

    # 3. Generate greedily and tidy up
    def rewrite(self, image_path: str | Path, prompt: str, style: str | Style,
                max_new_tokens: int | None = None, check_cancel: Callable[[], None] | None = None) -> str:
        """The enhanced prompt: the same text for the same picture, prompt, style and model. `check_cancel` runs
        before each new token and raises to stop (the job's Cancel)."""
        import torch
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

        style = style if isinstance(style, Style) else style_for(style)
        picture = open_picture(image_path)
        inputs = self.inputs(picture, prompt, style)
        limit = max_new_tokens or style.max_new_tokens
        own = self.model.generation_config
        eos = own.eos_token_id if own.eos_token_id is not None else self.tokenizer.eos_token_id
        # Greedy, whatever the model's own config asks (Qwen's: do_sample, temperature 0.1, top_p 0.001, top_k 1).
        # generate() fills every field left unset here from that config, so the sampling fields are set to the
        # library's neutral values (no "flags ignored" warning). Its repetition penalty is kept: deterministic,
        # and it stops greedy decoding from looping on a phrase.
        generation = GenerationConfig(do_sample=False, num_beams=1, temperature=1.0, top_p=1.0, top_k=50,
                                      max_new_tokens=limit, eos_token_id=eos,
                                      pad_token_id=own.pad_token_id if own.pad_token_id is not None else
                                      self.tokenizer.pad_token_id,
                                      repetition_penalty=own.repetition_penalty or 1.0)
        stopping = None
        if check_cancel is not None:
            class Cancel(StoppingCriteria):
                def __call__(self, input_ids, scores, **kwargs):
                    check_cancel()  # raises to stop; otherwise no sequence is done
                    return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

            stopping = StoppingCriteriaList([Cancel()])
        with torch.inference_mode():
            output = self.model.generate(**inputs, generation_config=generation, stopping_criteria=stopping)
        new = output[0, inputs["input_ids"].shape[1]:]
        stops = set(eos if isinstance(eos, (list, tuple)) else [eos])
        cut_off = len(new) >= limit and int(new[-1]) not in stops
        text = tidy(self.tokenizer.decode(new, skip_special_tokens=True), style, cut_off=cut_off)
        if not text:
            raise InvalidRequest(FIELD, f"{self.info.path.name} wrote no prompt for this picture; write one "
                                        "yourself or try another enhancer")
        return text


def _template_file(folder: Path) -> str:
    """The chat template from chat_template.jinja or the processor's chat_template.json (older downloads)."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    if (folder / "chat_template.json").is_file():
        template = json.loads((folder / "chat_template.json").read_text()).get("chat_template")
        if template:
            return template
    raise InvalidRequest(FIELD, f"{folder.name} has no chat template (tokenizer_config.json, chat_template.jinja "
                                "or chat_template.json): it is not an instruct model")


def enhance(model_folder: str | Path, image_path: str | Path, prompt: str, style: str | Style, *,
            device: str | None = None, max_new_tokens: int | None = None, allow_pickle: bool = False,
            check_cancel: Callable[[], None] | None = None) -> str:
    """Loads the enhancer, rewrites `prompt` for the picture in `style` (a style or a family name), frees it."""
    enhancer = Enhancer(model_folder, device=device, allow_pickle=allow_pickle)
    try:
        return enhancer.rewrite(image_path, prompt, style, max_new_tokens=max_new_tokens, check_cancel=check_cancel)
    finally:
        enhancer.close()
