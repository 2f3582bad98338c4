"""Tiny upscaler files for tests: real spandrel architectures at toy width with random weights, saved in the
state-dict layouts real downloads have, so that they load through `video_gen.upscale` like a user's file.

- `build_tiny_esrgan(path, scale=4)`: the original ESRGAN layout (`model.0.weight`, `model.1.sub.0.RDB1...`), the
  one 4x-UltraSharp and most community ESRGAN files use.
- `build_tiny_esrgan(path, scale=2, layout="realesrgan")`: Real-ESRGAN's layout (`conv_first`, `body.0.rdb1...`,
  `conv_up1`, `conv_hr`, `conv_last`) with its pixel-unshuffle input (12 channels), like RealESRGAN_x2plus.
- `build_tiny_compact(path, scale=4)`: SRVGGNetCompact (`body.N`), the realesr-general-x4v3 / animevideov3 layout.

`.pth` gives a pickle wrapped as {"params_ema": state}, as Real-ESRGAN's releases are; `.safetensors` the bare
state dict, as converted files are.
"""

from __future__ import annotations

from pathlib import Path

# Output mean and spread the last layer is set to on a probe picture: random weights otherwise give a near-constant
# picture or one clamped to 0/1, in which a tiling seam or a wrong pixel would not show.
TARGET_MEAN, TARGET_STD = 0.5, 0.2


def _save(state: dict, path: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous().clone() for key, value in state.items()}
    if path.suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save({"params_ema": state}, path)
    return path


def _probe():
    import torch

    generator = torch.Generator().manual_seed(1234)
    # Smooth content plus noise: what a video frame has, at a size every tiny model accepts.
    ramp = torch.linspace(0, 1, 48)
    picture = torch.stack([ramp[None, :].expand(48, 48), ramp[:, None].expand(48, 48), (ramp[None, :] * ramp[:, None])])
    return (0.7 * picture + 0.3 * torch.rand((3, 48, 48), generator=generator)).unsqueeze(0)


def _calibrate_last(model, last) -> None:
    """Rescales the last conv so the model's output on the probe has TARGET_MEAN and TARGET_STD."""
    import torch

    with torch.no_grad():
        output = model(_probe())
        std = float(output.std())
        if std > 0:
            last.weight.mul_(TARGET_STD / std)
            if last.bias is not None:
                last.bias.mul_(TARGET_STD / std)
        output = model(_probe())
        if last.bias is not None:
            last.bias.add_(TARGET_MEAN - float(output.mean()))


def build_tiny_esrgan(path: str | Path, *, scale: int = 4, layout: str = "esrgan", num_filters: int = 8,
                      num_blocks: int = 1, seed: int = 0) -> Path:
    """An RRDBNet (ESRGAN) upscaler file; layout "esrgan" (old keys) or "realesrgan" (new keys, pixel-unshuffle
    input for scale 2 and 1, as RealESRGAN_x2plus has)."""
    import torch

    from ..upscale import import_spandrel

    import_spandrel()  # first: it lends torchvision's stand-in where torchvision is missing
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    if layout == "realesrgan" and scale in (1, 2):
        shuffle = 4 // scale
        model = ESRGAN(in_nc=3 * shuffle * shuffle, out_nc=3, num_filters=num_filters, num_blocks=num_blocks,
                       scale=4, shuffle_factor=shuffle)
    else:
        model = ESRGAN(in_nc=3, out_nc=3, num_filters=num_filters, num_blocks=num_blocks, scale=scale)
    model.eval()
    last_index = max(int(key.split(".")[1]) for key in model.state_dict() if key.startswith("model."))
    _calibrate_last(model, model.model[last_index])
    state = model.state_dict()
    if layout == "realesrgan":
        state = _to_realesrgan_keys(state, num_blocks, last_index)
    return _save(state, Path(path))


def _to_realesrgan_keys(state: dict, num_blocks: int, last_index: int) -> dict:
    """spandrel's (old ESRGAN) keys to Real-ESRGAN's RRDBNet keys (basicsr/archs/rrdbnet_arch.py)."""
    import re

    renamed = {}
    for key, value in state.items():
        match = re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", key)
        if match:
            block, rdb, conv, kind = match.groups()
            renamed[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
            continue
        index, kind = key.split(".")[1], key.split(".")[-1]
        if key.startswith(f"model.1.sub.{num_blocks}."):
            renamed[f"conv_body.{kind}"] = value
        elif index == "0":
            renamed[f"conv_first.{kind}"] = value
        elif int(index) == last_index:
            renamed[f"conv_last.{kind}"] = value
        elif int(index) == last_index - 2:
            renamed[f"conv_hr.{kind}"] = value
        else:  # upsampling convs sit at model.3, model.6, ...
            renamed[f"conv_up{int(index) // 3}.{kind}"] = value
    return renamed


def build_tiny_compact(path: str | Path, *, scale: int = 4, num_feat: int = 8, num_conv: int = 2,
                       channels: int = 3, seed: int = 0) -> Path:
    """An SRVGGNetCompact (Real-ESRGAN Compact) upscaler file; `channels` 1 makes a grayscale one."""
    import torch

    from ..upscale import import_spandrel

    import_spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    model = Compact(num_in_ch=channels, num_out_ch=channels, num_feat=num_feat, num_conv=num_conv, upscale=scale)
    model.eval()
    if channels == 3:
        # The model adds the nearest-upsampled input to what its body makes: keep the body's part visible.
        with torch.no_grad():
            model.body[-1].weight.mul_(4.0)
    return _save(model.state_dict(), Path(path))


def build_not_an_upscaler(path: str | Path, *, seed: int = 0) -> Path:
    """A .safetensors file of plain conv weights that no spandrel architecture matches."""
    import torch

    torch.manual_seed(seed)
    return _save({"encoder.conv_in.weight": torch.randn(8, 3, 3, 3), "encoder.conv_in.bias": torch.zeros(8),
                  "decoder.conv_out.weight": torch.randn(3, 8, 3, 3)}, Path(path))
