"""Finishing, the core (video_gen.upscale, video_gen.enhance): real spandrel architectures and a real
Qwen2.5-VL with tiny random weights, saved as the files users download and loaded through the app's code.

Upscaling is compared with spandrel's own loader and model applied to each frame; tiles with the whole-frame run.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from video_gen.errors import InvalidRequest
from video_gen.tiny.upscalers import build_not_an_upscaler, build_tiny_compact, build_tiny_esrgan
from video_gen.upscale import (TILE_OVERLAP, UpscalerInfo, check_output_size, describe_upscaler, import_spandrel,
                               load_upscaler, plan_tile, run_dtype, upscale_frames)

UPSCALERS = {
    "esrgan-x4.safetensors": lambda path: build_tiny_esrgan(path, scale=4),
    "realesrgan-x2.safetensors": lambda path: build_tiny_esrgan(path, scale=2, layout="realesrgan"),
    "compact-x4.safetensors": lambda path: build_tiny_compact(path, scale=4),
    "compact-x2.safetensors": lambda path: build_tiny_compact(path, scale=2),
}


@pytest.fixture(scope="session")
def upscalers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upscalers")
    return {name: build(folder / name) for name, build in UPSCALERS.items()}


def clip(count: int = 3, width: int = 64, height: int = 40) -> np.ndarray:
    """`count` frames panning across scikit-image's astronaut: real picture content, uint8 (F, H, W, 3)."""
    photo = data.astronaut()
    return np.stack([np.ascontiguousarray(photo[150:150 + height, 100 + 9 * index:100 + 9 * index + width])
                     for index in range(count)])


def spandrel_reference(path, frames: np.ndarray) -> np.ndarray:
    """spandrel on its own: its file loader, its model, each frame as a float tensor in [0, 1], rounded back."""
    spandrel = import_spandrel()
    model = spandrel.ModelLoader().load_from_file(path).eval()
    out = []
    for frame in frames:
        image = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float() / 255
        out.append((model(image) * 255).round().clamp(0, 255).byte()[0].permute(1, 2, 0).numpy())
    return np.stack(out)


def largest_difference(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


# ---- upscaling ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(UPSCALERS))
def test_upscaled_frames_equal_spandrels_model_on_each_frame(upscalers, name):
    frames = clip()
    upscaler = load_upscaler(upscalers[name])
    result = upscale_frames(upscaler, frames)
    scale = 4 if "x4" in name else 2
    assert upscaler.scale == scale
    assert result.shape == (3, 40 * scale, 64 * scale, 3) and result.dtype == np.uint8
    assert largest_difference(result, spandrel_reference(upscalers[name], frames)) <= 2
    # The model did something: not a plain resize, and the frames stay different from each other.
    assert not np.array_equal(result[0], result[1])


@pytest.mark.parametrize("name", ["esrgan-x4.safetensors", "realesrgan-x2.safetensors", "compact-x4.safetensors"])
def test_tiles_stay_within_two_of_the_whole_frame(upscalers, name):
    frames = clip(2, width=72, height=48)
    upscaler = load_upscaler(upscalers[name])
    whole = upscale_frames(upscaler, frames)
    tiled = upscale_frames(upscaler, frames, tile=24)  # 3x2 tiles with TILE_OVERLAP px of context
    assert largest_difference(tiled, whole) <= 2
    assert largest_difference(tiled, spandrel_reference(upscalers[name], frames)) <= 2
    # Without context the seams show: the overlap is what keeps the tiles honest.
    assert largest_difference(upscale_frames(upscaler, frames, tile=24, overlap=0), whole) > 2


def test_a_frame_over_the_memory_budget_is_tiled_within_two(upscalers):
    upscaler = load_upscaler(upscalers["esrgan-x4.safetensors"])
    frames = clip(1, width=176, height=144)
    per_pixel = 1000
    budget = 200 * 200 * per_pixel  # less than 176x144 plus its context would need... but the frame alone fits
    assert plan_tile(176, 144, per_pixel=per_pixel, budget_bytes=budget) is None
    budget = 150 * 150 * per_pixel
    tile = plan_tile(176, 144, per_pixel=per_pixel, budget_bytes=budget, multiple=upscaler.info.size_multiple)
    assert tile == 128  # isqrt(150*150) - 2*32 = 86, raised to the smallest tile tried (MIN_TILE)
    tiled = upscale_frames(upscaler, frames, budget_bytes=budget, per_pixel=per_pixel)
    assert largest_difference(tiled, upscale_frames(upscaler, frames)) <= 2
    big = plan_tile(2048, 1152, per_pixel=per_pixel, budget_bytes=600 * 600 * per_pixel, multiple=4)
    assert big == 536 and big % 4 == 0 and (big + 2 * TILE_OVERLAP) ** 2 * per_pixel <= 600 * 600 * per_pixel


def test_progress_per_frame_and_cancel_within_a_frame(upscalers):
    upscaler = load_upscaler(upscalers["compact-x2.safetensors"])
    frames = clip(4)
    progress = []
    upscale_frames(upscaler, frames, on_frame=lambda done, total: progress.append((done, total)))
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]

    class Stop(Exception):
        pass

    checks = []

    def check_cancel():
        checks.append(len(progress))
        if len(checks) == 7:  # frame 1 takes 5 checks (one before it, one per tile of its 2x2), then frame 2's
            raise Stop      # own, then its first tile's

    progress.clear()
    with pytest.raises(Stop):
        upscale_frames(upscaler, frames, tile=32, on_frame=lambda done, total: progress.append((done, total)),
                       check_cancel=check_cancel)
    assert progress == [(1, 4)] and len(checks) == 7  # stopped inside frame 2


def test_describe_says_architecture_scale_and_half_precision(upscalers):
    info = describe_upscaler(upscalers["realesrgan-x2.safetensors"])
    assert (info.architecture, info.scale, info.purpose) == ("ESRGAN", 2, "SR")
    assert info.supports_half and info.supports_bfloat16 and info.size_multiple == 4
    assert info.summary == "ESRGAN 2x (8nf, 1nb, unshuffle), fp16"
    compact = describe_upscaler(upscalers["compact-x4.safetensors"])
    assert compact.architecture == "RealESRGAN Compact" and compact.scale == 4


def test_dtype_is_float32_on_cpu_and_half_on_cuda_where_allowed(upscalers):
    info = describe_upscaler(upscalers["esrgan-x4.safetensors"])
    assert run_dtype(info, "cpu") == torch.float32
    assert run_dtype(info, "cuda") == torch.float16
    fp32_only = UpscalerInfo(**{**info.__dict__, "supports_half": False, "supports_bfloat16": False})
    assert run_dtype(fp32_only, "cuda") == torch.float32


def test_a_pickle_holding_code_is_refused_even_with_permission(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(1)}, "hook": print}, path)
    with pytest.raises(InvalidRequest, match=r"^upscaler: evil.pth could not be read with "
                                             r"torch.load\(weights_only=True\)"):
        load_upscaler(path, allow_pickle=True)


def test_a_file_that_is_not_an_upscaler_is_refused_in_one_line(tmp_path):
    with pytest.raises(InvalidRequest, match=r"^upscaler: vae.safetensors is not an upscaler spandrel \S+ knows"):
        load_upscaler(build_not_an_upscaler(tmp_path / "vae.safetensors"))
    (tmp_path / "notes.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(InvalidRequest, match=r"^upscaler: notes.safetensors is not a readable .safetensors file"):
        load_upscaler(tmp_path / "notes.safetensors")
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(InvalidRequest, match=r"^upscaler: model.onnx is not an upscaler file: expected .safetensors"):
        load_upscaler(tmp_path / "model.onnx")
    with pytest.raises(InvalidRequest, match=r"^upscaler: .*gray.safetensors works on 1-channel pictures"):
        load_upscaler(build_tiny_compact(tmp_path / "gray.safetensors", channels=1))


def test_a_damaged_upscaler_is_refused_in_one_line(tmp_path, upscalers):
    from safetensors.torch import load_file, save_file

    state = load_file(upscalers["esrgan-x4.safetensors"])
    del state["model.1.sub.0.RDB2.conv3.0.weight"]  # still detected as ESRGAN, no longer loadable
    save_file(state, tmp_path / "cut.safetensors")
    with pytest.raises(InvalidRequest, match=r"^upscaler: cut.safetensors has ESRGAN keys but its weights do not "
                                             r"fit that architecture \(\w+: ") as refused:
        load_upscaler(tmp_path / "cut.safetensors")
    assert "\n" not in str(refused.value)


def test_an_output_over_the_size_limit_is_refused_naming_the_largest_input():
    assert check_output_size(512, 288, 4, max_side=2048) == (2048, 1152)
    with pytest.raises(InvalidRequest) as refused:
        check_output_size(1024, 576, 4, max_side=2048)
    assert str(refused.value) == (
        "upscaler: 4x of the video (1024x576) would be 4096x2304, above the 2048 pixel limit per side; the largest "
        "input for a 4x upscaler is 512 pixels per side (512x288 at this shape)")
    assert check_output_size(1024, 576, 4) == (4096, 2304)  # the default limit (MAX_OUTPUT_SIDE) allows 4K


def test_spandrel_imports_without_torchvision_and_leaves_no_trace():
    """In a fresh interpreter: spandrel imports through the stand-in, which then leaves sys.modules, and
    transformers still sees no torchvision (its image processors keep their PIL backend)."""
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('torchvision') is None, 'torchvision is installed here'\n"
        "from video_gen.upscale import import_spandrel\n"
        "spandrel = import_spandrel()\n"
        "assert not [name for name in sys.modules if name.startswith('torchvision')]\n"
        "assert importlib.util.find_spec('torchvision') is None\n"
        "from transformers.utils import is_torchvision_available\n"
        "assert not is_torchvision_available()\n"
        "from spandrel.architectures.LaMa.__arch import LaMa as lama\n"
        "try:\n"
        "    lama.rotate(None, 0)\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    if __import__("importlib").util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: spandrel imports it directly")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("the LaMa architecture needs torchvision, which is not installed; it is not an "
                                     "upscaler anyway (install torchvision matching your torch to use it elsewhere)")


def test_a_torchvision_that_does_not_load_is_named_in_one_line(tmp_path):
    """The CUDA torchvision wheels beside the CPU torch fail at import ("operator torchvision::nms does not exist"):
    a stand-in package that fails the same way, found first on the path."""
    package = tmp_path / "torchvision"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    code = ("from video_gen.upscale import import_spandrel\n"
            "from video_gen.errors import InvalidRequest\n"
            "try:\n"
            "    import_spandrel()\n"
            "except InvalidRequest as error:\n"
            "    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "upscaler: spandrel could not import because torchvision does not load beside this torch (operator "
        "torchvision::nms does not exist); uninstall torchvision or install the build that matches your torch")


# ---- the prompt enhancer -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def enhancer_folder(tmp_path_factory):
    from video_gen.tiny.enhancer import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("enhancers") / "tiny-qwen2.5-vl")


@pytest.fixture(scope="session")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("pictures") / "cat.png"
    Image.fromarray(data.chelsea()[::3, ::3]).save(path)  # 151x100 (width x height)
    return path


def test_the_same_inputs_give_the_same_text_twice(enhancer_folder, picture):
    from video_gen.enhance import enhance

    torch.manual_seed(1)
    first = enhance(enhancer_folder, picture, "a cat looks around", "wan", max_new_tokens=24)
    torch.manual_seed(2)  # a leaked do_sample would now draw other tokens
    second = enhance(enhancer_folder, picture, "a cat looks around", "wan", max_new_tokens=24)
    assert first and first == second
    assert "\n" not in first and first == first.strip()
    other = enhance(enhancer_folder, picture, "a dog runs", "animatediff", max_new_tokens=24)
    assert other and other != first  # the prompt and the style reach the model


def test_the_picture_goes_in_with_its_token_type_ids(enhancer_folder, picture):
    from video_gen.enhance import STYLES, Enhancer, open_picture

    enhancer = Enhancer(enhancer_folder).load()
    inputs = enhancer.inputs(open_picture(picture), "a cat", STYLES["long"])
    image_token = enhancer.model.config.image_token_id
    grid = inputs["image_grid_thw"][0]
    # 100x151 (height x width) rounds to multiples of 28 (112x140): 8x10 patches of 14 px, merged 2x2 into 20 tokens.
    assert grid.tolist() == [1, 8, 10]
    assert int((inputs["input_ids"] == image_token).sum()) == int(grid.prod()) // 4 == 20
    assert torch.equal(inputs["mm_token_type_ids"], (inputs["input_ids"] == image_token).long())
    assert inputs["pixel_values"].shape == (80, 3 * 2 * 14 * 14)
    # What they are for: Qwen's 3-D rotary positions. With them the picture's tokens get (time, row, column)
    # positions and the text after it continues from the largest; without them transformers computes none.
    qwen = enhancer.model.model
    positions, _ = qwen.get_rope_index(inputs["input_ids"], image_grid_thw=inputs["image_grid_thw"],
                                       attention_mask=inputs["attention_mask"],
                                       mm_token_type_ids=inputs["mm_token_type_ids"])
    image = (inputs["input_ids"][0] == image_token).nonzero()[:, 0]
    start = int(positions[0, 0, image[0]])
    assert positions[1, 0, image].tolist() == [start + row for row in range(4) for _ in range(5)]
    assert positions[2, 0, image].tolist() == [start + column for _ in range(4) for column in range(5)]
    length = inputs["input_ids"].shape[1]
    assert int(positions[0, 0, -1]) == length - 1 - 20 + 5  # 20 tokens take 5 positions (the 4x5 grid's larger side)
    assert qwen.compute_3d_position_ids(inputs["input_ids"], inputs["image_grid_thw"], None, None,
                                        inputs["attention_mask"], None, mm_token_type_ids=None) is None
    with torch.inference_mode():
        logits = enhancer.model(**inputs).logits[0, -1]
        qwen.rope_deltas = None
        without = {key: value for key, value in inputs.items() if key != "mm_token_type_ids"}
        logits_without = enhancer.model(**without).logits[0, -1]
    assert not torch.equal(logits, logits_without)  # random weights: small, but the output moves
    enhancer.close()
    assert enhancer.model is None


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl", "gemma3"])
def test_qwen2_vl_qwen3_vl_and_gemma3_take_the_picture_and_repeat_their_text(tmp_path, picture, family):
    from video_gen.enhance import STYLES, Enhancer, open_picture
    from video_gen.tiny import enhancer as tiny

    builders = {"qwen2_vl": tiny.build_tiny_qwen2_vl, "qwen3_vl": tiny.build_tiny_qwen3_vl,
                "gemma3": tiny.build_tiny_gemma3}
    folder = builders[family](tmp_path / family)
    enhancer = Enhancer(folder).load()
    inputs = enhancer.inputs(open_picture(picture), "a cat", STYLES["long"])
    image_token = enhancer.model.config.image_token_id
    if family == "qwen2_vl":  # as Qwen2.5-VL: 112x140, 8x10 patches of 14 px, 20 tokens
        assert inputs["image_grid_thw"][0].tolist() == [1, 8, 10]
        type_ids, count = inputs["mm_token_type_ids"], 20
    elif family == "qwen3_vl":  # 16 px patches merged 2x2: 100x151 rounds to 96x160, 6x10 patches, 15 tokens
        assert inputs["image_grid_thw"][0].tolist() == [1, 6, 10]
        type_ids, count = inputs["mm_token_type_ids"], 15
    else:  # Gemma 3: a fixed 32x32 picture pooled into mm_tokens_per_image (4) soft tokens between boi and eoi
        assert inputs["pixel_values"].shape == (1, 3, 32, 32)
        type_ids, count = inputs["token_type_ids"], 4
        text = enhancer.tokenizer.decode(inputs["input_ids"][0])
        assert "\n\n<start_of_image>" + "<image_soft_token>" * 4 + "<end_of_image>\n\n" in text
        assert text.startswith("<bos><start_of_turn>user\nYou write prompts") and text.count("<bos>") == 1
    assert torch.equal(type_ids, (inputs["input_ids"] == image_token).long()) and int(type_ids.sum()) == count
    first = enhancer.rewrite(picture, "a cat", "wan", max_new_tokens=12)
    torch.manual_seed(5)
    assert first and enhancer.rewrite(picture, "a cat", "wan", max_new_tokens=12) == first
    enhancer.close()


def test_decoding_is_greedy_whatever_the_models_config_asks(enhancer_folder, picture):
    from transformers import GenerationConfig

    from video_gen.enhance import Enhancer

    assert GenerationConfig.from_pretrained(enhancer_folder).do_sample  # the tiny one asks for sampling
    enhancer = Enhancer(enhancer_folder).load()
    seen = []
    prepare = enhancer.model._prepare_generation_config

    def spy(*args, **kwargs):
        config, model_kwargs = prepare(*args, **kwargs)
        seen.append(config)
        return config, model_kwargs

    enhancer.model._prepare_generation_config = spy
    enhancer.rewrite(picture, "a cat", "ltx", max_new_tokens=8)
    assert len(seen) == 1 and seen[0].do_sample is False and seen[0].num_beams == 1
    assert seen[0].max_new_tokens == 8 and seen[0].repetition_penalty == 1.05


def test_tidy_makes_one_paragraph():
    from video_gen.enhance import STYLES, tidy

    long, tags = STYLES["long"], STYLES["tags"]
    assert tidy('  Enhanced prompt: "A cat turns its head.\n\nThe camera  pushes in."  ', long) == \
        "A cat turns its head. The camera pushes in."
    assert tidy("**Prompt:** A cat sits.", long) == "A cat sits."
    # Cut by the token limit: back to the last full sentence, unless that would drop more than half.
    assert tidy("A cat turns its head and looks at the window. The camera pushes in while the", long,
                cut_off=True) == "A cat turns its head and looks at the window."
    assert tidy("A cat turns its head and looks at the window. The camera pushes in while the", long) == \
        "A cat turns its head and looks at the window. The camera pushes in while the"
    assert tidy("A cat sits. The camera pushes in slowly while the light changes from", long, cut_off=True) == \
        "A cat sits. The camera pushes in slowly while the light changes from"
    assert tidy("1girl, cat ears, sitting, garden, soft light, master", tags, cut_off=True) == \
        "1girl, cat ears, sitting, garden, soft light"


def test_style_refusals():
    from video_gen.enhance import style_for

    assert style_for("wan").name == "long" and style_for("animatediff").tags
    assert style_for("modelscope").name == "caption"
    assert style_for("motion").name == "motion"
    with pytest.raises(InvalidRequest, match=r"^enhance_prompt: svd models take no prompt"):
        style_for("svd")
    with pytest.raises(InvalidRequest, match=r"^enhance_prompt: unknown prompt style 'poetry'"):
        style_for("poetry")


def test_enhancer_folder_refusals(tmp_path, enhancer_folder, picture):
    from video_gen.enhance import describe_enhancer, enhance

    info = describe_enhancer(enhancer_folder)
    assert (info.model_type, info.architecture) == ("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration")
    with pytest.raises(InvalidRequest, match=r"^enhancer: .*missing is not a folder"):
        describe_enhancer(tmp_path / "missing")
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(InvalidRequest, match=r"^enhancer: llama is a llama model; an enhancer is a Qwen2-VL"):
        describe_enhancer(llama)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    (pickled / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(InvalidRequest, match=r"^enhancer: pickled holds only .bin weights"):
        describe_enhancer(pickled)
    assert describe_enhancer(pickled, allow_pickle=True).weight_bytes == 6
    (tmp_path / "not-a-picture.png").write_text("text")
    with pytest.raises(InvalidRequest, match=r"^image: .*not-a-picture.png is not a picture"):
        enhance(enhancer_folder, tmp_path / "not-a-picture.png", "a cat", "wan")
    with pytest.raises(InvalidRequest, match=r"^enhance_prompt: svd models take no prompt"):
        enhance(enhancer_folder, picture, "a cat", "svd")
