"""Upscalers: any picture super-resolution model that spandrel recognises, run on a video frame by frame.

spandrel (the library ComfyUI and chaiNNer load upscalers with) tells 40+ architectures apart from a bare state
dict (ESRGAN, Real-ESRGAN and its Compact model, SwinIR, HAT, DAT, SPAN, OmniSR, ...) and builds the matching
torch module. This module adds what a video needs around it: the pickle policy, a one-line refusal for files that are
not upscalers, the output size check, tiles when a frame does not fit the memory budget, the dtype per device,
and progress / cancellation per frame.

spandrel imports torchvision when it is imported (its LaMa and RestoreFormer architectures, neither an upscaler,
use three of its names). Where torchvision is not installed, `import_spandrel` lends it a stand-in for those
three names during the import only; see `_torchvision_stand_in`.
"""

from __future__ import annotations

import enum
import importlib.util
import math
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoints import ALLOW_PICKLE_FLAG, PICKLE_SUFFIXES
from .errors import InvalidRequest, first_line
from .families.spec import Download

if TYPE_CHECKING:
    import numpy as np  # imported where it is used: `video-gen` starts without it (cli/models reads DOWNLOADS)

FIELD = "upscaler"
SPANDREL_VERSION = "0.4.2"
# spandrel's own requirements minus torchvision (torch, safetensors, numpy and typing_extensions come with the app).
SPANDREL_INSTALL = f'pip install --no-deps "spandrel=={SPANDREL_VERSION}" && pip install "einops>=0.7"'
SAFE_SUFFIXES = (".safetensors",)
# spandrel also reads pickles (checkpoints.PICKLE_SUFFIXES: .pth is the usual one for upscalers); they load only
# with --allow-pickle, and then with torch.load(weights_only=True).
UPSCALER_SUFFIXES = SAFE_SUFFIXES + PICKLE_SUFFIXES
# Where upscalers are found: models/upscalers, and ComfyUI's models/upscale_models (through --extra-models-dir).
FOLDERS = ("upscalers", "upscale_models")
# The largest output side, a parameter of `check_output_size`. The request's generation limits (request.LIMITS
# width/height, 2048) are what the VAEs make; an upscale exists to go past them: 4x of 1024x576 is 4096x2304 (the
# GPU runner's case), a 4K frame. Larger outputs are refused before anything loads, naming the largest input.
MAX_OUTPUT_SIDE = 4096

# `video-gen models download NAME` (downloads.py): single files into models/upscalers. Licences: models/README.md.
DOWNLOADS = (
    Download("realesrgan-x4", "Comfy-Org/Real-ESRGAN_repackaged", "Real-ESRGAN x4plus (ESRGAN, 23 blocks), 4x, "
             "general photos and video; 67 MB, BSD-3-Clause", files=("RealESRGAN_x4plus.safetensors",)),
    Download("realesrgan-x2", "Comfy-Org/Real-ESRGAN_repackaged", "Real-ESRGAN x2plus (ESRGAN with pixel-unshuffle), "
             "2x; 67 MB, BSD-3-Clause", files=("RealESRGAN_x2plus.safetensors",)),
    Download("realesrgan-x4-anime", "Comfy-Org/Real-ESRGAN_repackaged", "Real-ESRGAN x4plus anime (ESRGAN, 6 "
             "blocks), 4x, drawn and anime pictures; 18 MB, BSD-3-Clause",
             files=("RealESRGAN_x4plus_anime_6B.safetensors",)),
    Download("4x-ultrasharp", "Kim2091/UltraSharp", "4x-UltraSharp (ESRGAN), 4x, sharp detail; 67 MB, a .pth "
             "pickle (use it with --allow-pickle); CC BY-NC-SA 4.0: non-commercial", files=("4x-UltraSharp.pth",)),
)
# Purposes (spandrel's word) this app runs on a whole frame: "SR" upscales, "Restoration" is a 1x clean-up model
# (denoise, de-JPEG) kept in the same folders. "FaceSR" needs aligned face crops and "Inpainting" a mask.
RUNNABLE_PURPOSES = ("SR", "Restoration")
# Input pixels of context around each tile, cut off after the model (Real-ESRGAN's tile_pad idea, not blending).
# Measured on the tiny ESRGAN/Compact models (receptive field < 16 px): largest difference from the whole frame
# 30-113 levels with no context, 0-4 with 4 px, 0-1 with 8, 0 with 16 (the tests check 0 fails and 32 holds +-2).
# 32 is ComfyUI's overlap (ImageUpscaleWithModel); real weights were not at hand to measure: bench/upscale.py
# --upscaler FILE prints the tiled-vs-whole difference for any upscaler.
TILE_OVERLAP = 32
# The smallest tile tried after out-of-memory halvings (ComfyUI stops at 128 too).
MIN_TILE = 128
# Activation bytes per input pixel, per output pixel factor and per byte of the dtype, when no measurement is
# at hand (CPU): ComfyUI's estimate for ImageUpscaleWithModel (comfy_extras/nodes_upscale_model.py:
# 3 channels x element size x scale x 384). Measured here on the CPU (peak RSS, float32, 128x128 input): a
# full-size RRDBNet x4 (64 features, 23 blocks) 13.3 kB per input pixel, a full-size Compact x4 (64 features,
# 32 convs) 1.2 kB, against this formula's 18.4 kB: it errs on the safe side.
ACTIVATION_FACTOR = 3 * 384


def _pickle_refused(path: Path) -> str:
    return (f"{path.name} is a pickle file ({path.suffix}): loading a pickle can run any code hidden in it, so only "
            f".safetensors upscalers load by default. If you trust where it came from, pass {ALLOW_PICKLE_FLAG} (it "
            "is then read with torch.load(weights_only=True), which refuses code), or better, use a .safetensors "
            "version of it")


# ---- importing spandrel ------------------------------------------------------------------------------------
_IMPORT_LOCK = threading.Lock()
NEEDS_TORCHVISION = ("the {architecture} architecture needs torchvision, which is not installed; it is not an "
                     "upscaler anyway (install torchvision matching your torch to use it elsewhere)")


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    """The three torchvision names spandrel 0.4.2 imports, for a machine without torchvision.

    `spandrel/architectures/LaMa/__arch/LaMa.py` does `from torchvision.transforms.functional import
    InterpolationMode, rotate` (inpainting) and `RestoreFormer/__init__.py` imports `normalize` (face restoration).
    Both are only called when such a model runs, and this app refuses both kinds before that (RUNNABLE_PURPOSES);
    the stand-ins raise if anything calls them anyway. The modules have no `__spec__`, so nothing mistakes them for
    an installed torchvision, and they leave sys.modules as soon as spandrel is imported.
    """
    def refuse(architecture: str) -> Callable:
        def call(*args, **kwargs):
            raise RuntimeError(NEEDS_TORCHVISION.format(architecture=architecture))
        return call

    class InterpolationMode(enum.Enum):  # the members LaMa's code names; values as in torchvision
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    functional = types.ModuleType("torchvision.transforms.functional", "video_gen.upscale's torchvision stand-in")
    functional.InterpolationMode = InterpolationMode
    functional.rotate = refuse("LaMa")
    functional.normalize = refuse("RestoreFormer")
    transforms = types.ModuleType("torchvision.transforms", functional.__doc__)
    transforms.functional = functional
    torchvision = types.ModuleType("torchvision", functional.__doc__)
    torchvision.transforms = transforms
    for module in (torchvision, transforms, functional):
        module.__spec__ = None
    return {"torchvision": torchvision, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional}


def import_spandrel():
    """spandrel, imported with the torchvision stand-in where torchvision is missing; one-line errors otherwise."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    with _IMPORT_LOCK:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        if importlib.util.find_spec("spandrel") is None:
            raise InvalidRequest(FIELD, f"upscaling needs the spandrel package, which is not installed: "
                                        f"{SPANDREL_INSTALL}")
        if importlib.util.find_spec("torchvision") is not None:
            try:
                import spandrel
            except (RuntimeError, ImportError, AttributeError) as error:  # a torchvision built for another torch
                raise InvalidRequest(FIELD, "spandrel could not import because torchvision does not load beside "
                                            f"this torch ({str(error).strip().splitlines()[0]}); uninstall "
                                            "torchvision or install the build that matches your torch") from error
            return spandrel
        # transformers caches whether torchvision exists (lru_cache); ask it now, before the stand-in exists, so a
        # thread that asks during the import below still gets the true answer.
        if "transformers.utils.import_utils" in sys.modules:
            sys.modules["transformers.utils.import_utils"].is_torchvision_available()
        stand_in = _torchvision_stand_in()
        sys.modules.update(stand_in)
        try:
            import spandrel
        finally:
            for name, module in stand_in.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
        return spandrel


# ---- describing and loading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class UpscalerInfo:
    """What an upscaler file is, read by building (not running) its model."""

    path: Path
    architecture: str  # spandrel's name for it, e.g. "ESRGAN", "RealESRGAN Compact", "SwinIR"
    architecture_id: str
    scale: int
    purpose: str  # "SR" (upscales) or "Restoration" (1x clean-up)
    supports_half: bool  # float16 on CUDA
    supports_bfloat16: bool
    tiling: str  # "supported", "discouraged" (artefacts at seams) or "internal" (the model tiles itself)
    size_multiple: int  # spandrel pads inputs to this
    parameters: int
    tags: tuple[str, ...]
    name: str = ""  # what the user types (`--upscaler`): the file's name without its suffix
    allow_pickle: bool = False  # read from a pickle the user allowed (`--allow-pickle`): load it so again

    @property
    def summary(self) -> str:
        """One line for `models list`: 'ESRGAN 4x (64nf, 23nb), fp16'."""
        kind = f"{self.scale}x" if self.purpose == "SR" else "1x restoration"
        dtypes = "fp16" if self.supports_half else ("bf16" if self.supports_bfloat16 else "fp32 only")
        tags = f" ({', '.join(self.tags)})" if self.tags else ""
        return f"{self.architecture} {kind}{tags}, {dtypes}"


@dataclass
class Upscaler:
    """A loaded upscaler: spandrel's ImageModelDescriptor and what it is."""

    descriptor: object  # spandrel.ImageModelDescriptor
    info: UpscalerInfo

    @property
    def scale(self) -> int:
        return self.info.scale

    def to(self, device: str, dtype=None) -> Upscaler:
        """Moves the model; dtype None picks `run_dtype` for the device."""
        self.descriptor.to(device)
        self.descriptor.to(dtype if dtype is not None else run_dtype(self.info, device))
        self.descriptor.eval()
        return self


def _state_dict(path: Path, allow_pickle: bool) -> dict:
    import torch

    suffix = path.suffix.lower()
    if suffix in SAFE_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise InvalidRequest(FIELD, f"{path.name} is not a readable .safetensors file "
                                        f"({str(error).strip().splitlines()[0]})") from error
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise InvalidRequest(FIELD, _pickle_refused(path))
        import pickle
        import zipfile

        try:  # weights_only: tensors and plain containers only; no code runs (unlike spandrel's own .pth reader)
            return torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError) as error:
            raise InvalidRequest(FIELD, f"{path.name} could not be read with torch.load(weights_only=True): "
                                        f"{str(error).strip().splitlines()[0]}") from error
    raise InvalidRequest(FIELD, f"{path.name} is not an upscaler file: expected .safetensors "
                                f"(or {', '.join(PICKLE_SUFFIXES)} with {ALLOW_PICKLE_FLAG})")


def load_upscaler(path: str | Path, *, allow_pickle: bool = False) -> Upscaler:
    """Reads an upscaler file on the CPU in float32; refuses pickles without permission and non-upscalers."""
    spandrel = import_spandrel()
    path = Path(path)
    if not path.is_file():
        raise InvalidRequest(FIELD, f"{path} is not a file")
    state_dict = _state_dict(path, allow_pickle)
    if not isinstance(state_dict, dict):
        raise InvalidRequest(FIELD, f"{path.name} holds a {type(state_dict).__name__}, not model weights")
    # canonicalize_state_dict unwraps Real-ESRGAN's {"params_ema": ...} and strips "module." prefixes; it is
    # what spandrel's load_from_file does between reading and detecting.
    state_dict = spandrel.canonicalize_state_dict(state_dict)
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError as error:
        raise InvalidRequest(FIELD, f"{path.name} is not an upscaler spandrel {spandrel.__version__} knows "
                                    "(no supported architecture matches its weights)") from error
    except (KeyError, ValueError, RuntimeError, AssertionError) as error:  # matched, but the weights disagree
        raise InvalidRequest(FIELD, f"{path.name} has {_detected(spandrel, state_dict)} keys but its weights do not "
                                    f"fit that architecture ({type(error).__name__}: {first_line(error)})") from error
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose not in RUNNABLE_PURPOSES:
        raise InvalidRequest(FIELD, f"{path.name} is a {descriptor.architecture.name} {descriptor.purpose} model, "
                                    "not an upscaler (it needs a mask or aligned face crops)")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise InvalidRequest(FIELD, f"{path.name} works on {descriptor.input_channels}-channel pictures; video "
                                    "frames are RGB (3 channels)")
    descriptor.eval()
    info = UpscalerInfo(
        path=path, architecture=descriptor.architecture.name, architecture_id=str(descriptor.architecture.id),
        scale=int(descriptor.scale), purpose=descriptor.purpose, supports_half=bool(descriptor.supports_half),
        supports_bfloat16=bool(descriptor.supports_bfloat16), tiling=descriptor.tiling.name.lower(),
        size_multiple=int(descriptor.size_requirements.multiple_of),
        parameters=sum(parameter.numel() for parameter in descriptor.model.parameters()),
        tags=tuple(descriptor.tags), name=path.stem,
        allow_pickle=allow_pickle and path.suffix.lower() in PICKLE_SUFFIXES,
    )
    return Upscaler(descriptor=descriptor, info=info)


def _detected(spandrel, state_dict: dict) -> str:
    for support in spandrel.MAIN_REGISTRY.architectures("detection"):
        if support.architecture.detect(state_dict):
            return support.architecture.name
    return "an upscaler's"


_described: dict[tuple, UpscalerInfo] = {}
_described_lock = threading.Lock()


def describe_upscaler(path: str | Path, *, allow_pickle: bool = False) -> UpscalerInfo:
    """Architecture, scale and dtypes of an upscaler file, without running it (its module is built on the CPU,
    which reads the whole file: 67 MB for Real-ESRGAN x4). Remembered per file version (its size and modification
    time), since `models list`, the page's lists and every job's checks ask again."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return load_upscaler(path, allow_pickle=allow_pickle).info  # says what is wrong in one line
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, allow_pickle)
    with _described_lock:
        known = _described.get(key)
    if known is None:
        try:
            known = load_upscaler(path, allow_pickle=allow_pickle).info
        except InvalidRequest as error:  # not an upscaler: said again without reading the file again
            known = error
        with _described_lock:
            _described[key] = known
    if isinstance(known, InvalidRequest):
        raise InvalidRequest(known.field, str(known).split(": ", 1)[1])
    return known


def run_dtype(info: UpscalerInfo, device: str):
    """float32 on the CPU (half precision is slower there and rounds); on CUDA float16 where the architecture
    allows it, else bfloat16 where both it and the card do, else float32."""
    import torch

    if not str(device).startswith("cuda"):
        return torch.float32
    if info.supports_half:
        return torch.float16
    if info.supports_bfloat16 and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


# ---- sizes -------------------------------------------------------------------------------------------------
def check_output_size(width: int, height: int, scale: int, *, max_side: int = MAX_OUTPUT_SIDE,
                      name: str = "the video") -> tuple[int, int]:
    """The upscaled (width, height), or a one-line refusal naming the largest input this scale allows."""
    out_width, out_height = width * scale, height * scale
    if max(out_width, out_height) <= max_side:
        return out_width, out_height
    largest = max_side // scale
    shrink = min(largest / width, largest / height)
    fit_width, fit_height = max(1, math.floor(width * shrink)), max(1, math.floor(height * shrink))
    raise InvalidRequest(FIELD, f"{scale}x of {name} ({width}x{height}) would be {out_width}x{out_height}, above "
                                f"the {max_side} pixel limit per side; the largest input for a {scale}x upscaler is "
                                f"{largest} pixels per side ({fit_width}x{fit_height} at this shape)")


def bytes_per_pixel(info: UpscalerInfo, dtype) -> int:
    """Estimated activation memory per input pixel (see ACTIVATION_FACTOR); `measure_bytes_per_pixel` on CUDA."""
    import torch

    return ACTIVATION_FACTOR * max(info.scale, 1) * torch.empty((), dtype=dtype).element_size()


def measure_bytes_per_pixel(upscaler: Upscaler, device: str, dtype, side: int = 128) -> int:
    """Peak CUDA memory of one side x side run, per input pixel (activations only: the weights are already there)."""
    import torch

    probe = torch.rand(1, 3, side, side, device=device, dtype=dtype)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    upscaler.descriptor(probe)
    torch.cuda.synchronize(device)
    return max(1, math.ceil((torch.cuda.max_memory_allocated(device) - before) / (side * side)))


def plan_tile(width: int, height: int, *, per_pixel: int, budget_bytes: int | None, multiple: int = 1,
              overlap: int = TILE_OVERLAP, tiling: str = "supported") -> int | None:
    """The tile side (input pixels, a multiple of `multiple`) that keeps one run within `budget_bytes`, counting
    its overlap; None when the whole frame fits, no budget is given, or the model tiles internally."""
    if budget_bytes is None or tiling == "internal" or width * height * per_pixel <= budget_bytes:
        return None
    side = int(math.isqrt(max(budget_bytes // per_pixel, 1))) - 2 * overlap
    side = max(side // multiple * multiple, multiple, MIN_TILE // multiple * multiple)
    return side


# ---- running -----------------------------------------------------------------------------------------------
def _spans(length: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """(core start, core end, input start, input end) along one axis: cores tile the axis, inputs add context."""
    for start in range(0, length, tile):
        end = min(start + tile, length)
        yield start, end, max(0, start - overlap), min(length, end + overlap)


def _run_tiled(descriptor, image, scale: int, tile: int, overlap: int, check_cancel: Callable[[], None] | None):
    import torch

    _, channels, height, width = image.shape
    output = torch.empty((1, channels, height * scale, width * scale), dtype=image.dtype, device=image.device)
    for y0, y1, in_y0, in_y1 in _spans(height, tile, overlap):
        for x0, x1, in_x0, in_x1 in _spans(width, tile, overlap):
            if check_cancel is not None:
                check_cancel()
            result = descriptor(image[:, :, in_y0:in_y1, in_x0:in_x1])
            output[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = result[
                :, :, (y0 - in_y0) * scale:(y1 - in_y0) * scale, (x0 - in_x0) * scale:(x1 - in_x0) * scale]
    return output


def upscale_frame(upscaler: Upscaler, frame: np.ndarray, *, tile: int | None = None, overlap: int = TILE_OVERLAP,
                  check_cancel: Callable[[], None] | None = None) -> np.ndarray:
    """One uint8 (H, W, 3) frame through the model on its device and dtype; tiled when `tile` is given."""
    import numpy as np
    import torch

    descriptor = upscaler.descriptor
    parameter = next(descriptor.model.parameters())
    if not frame.flags.writeable:  # decoded from ffmpeg's bytes: torch only takes writable arrays without a warning
        frame = frame.copy()
    image = torch.from_numpy(np.ascontiguousarray(frame)).to(parameter.device)
    image = image.permute(2, 0, 1).unsqueeze(0).to(parameter.dtype).div_(255)
    # Every tile's input starts on the model's padding grid, so tiles that reach the right or bottom edge are padded
    # exactly as the whole frame is there.
    multiple = upscaler.info.size_multiple
    overlap += -overlap % multiple
    if tile is not None:
        tile += -tile % multiple
    with torch.inference_mode():
        if tile is None:
            result = descriptor(image)
        else:
            result = _run_tiled(descriptor, image, upscaler.scale, tile, overlap, check_cancel)
        # Round on the device and move uint8: a quarter of the bytes of float32 across PCIe.
        result = result.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
    return result[0].permute(1, 2, 0).cpu().numpy()


def iter_upscaled(upscaler: Upscaler, frames, *, budget_bytes: int | None = None, tile: int | None = None,
                  overlap: int = TILE_OVERLAP, per_pixel: int | None = None,
                  on_frame: Callable[[int, int], None] | None = None,
                  check_cancel: Callable[[], None] | None = None) -> Iterator[np.ndarray]:
    """Upscaled uint8 frames, one at a time (a writer can take them as they come).

    `frames` is a uint8 (F, H, W, 3) array (or a sequence of (H, W, 3) frames). The tile side is `tile` if given,
    else planned from `budget_bytes` (None: whole frames). `check_cancel` raises to stop (called before each frame
    and each tile), `on_frame(done, total)` runs after each frame. On CUDA out-of-memory the tile is halved and the
    frame run again, down to MIN_TILE.
    """
    import torch

    total = len(frames)
    if total == 0:
        return
    height, width = frames[0].shape[:2]
    if tile is None and budget_bytes is not None:
        dtype = next(upscaler.descriptor.model.parameters()).dtype
        tile = plan_tile(width, height, per_pixel=per_pixel or bytes_per_pixel(upscaler.info, dtype),
                         budget_bytes=budget_bytes, multiple=upscaler.info.size_multiple, overlap=overlap,
                         tiling=upscaler.info.tiling)
    for index in range(total):
        if check_cancel is not None:
            check_cancel()
        while True:
            try:
                result = upscale_frame(upscaler, frames[index], tile=tile, overlap=overlap, check_cancel=check_cancel)
                break
            except torch.cuda.OutOfMemoryError:
                side = tile if tile is not None else max(width, height)
                if side <= MIN_TILE:
                    raise
                tile = max(MIN_TILE, side // 2 // upscaler.info.size_multiple * upscaler.info.size_multiple)
                torch.cuda.empty_cache()
        yield result
        if on_frame is not None:
            on_frame(index + 1, total)


def upscale_frames(upscaler: Upscaler, frames, **options) -> np.ndarray:
    """All frames upscaled into one uint8 (F, H*scale, W*scale, 3) array; options as for `iter_upscaled`."""
    import numpy as np

    total = len(frames)
    if total == 0:
        raise InvalidRequest("video", "has no frames to upscale")
    height, width = frames[0].shape[:2]
    scale = upscaler.scale
    output = np.empty((total, height * scale, width * scale, 3), dtype=np.uint8)
    for index, frame in enumerate(iter_upscaled(upscaler, frames, **options)):
        output[index] = frame
    return output
