"""A transformer that comes as one file (a GGUF, or a .safetensors in the model's original layout), run with the
other parts of an installed diffusers folder of the same architecture: what 12 GB users download (city96's and
QuantStack's GGUF files of Wan and LTX). Generic: a family declares how it recognises its tensor names (a
`SingleFile` entry of its spec) and how to read an architecture from tensors or a config (`shape_of`).

A GGUF file is read with the `gguf` package's `GGUFReader` (it memory-maps the file and reads the tensor table
only), never loaded; loading goes through diffusers' `from_single_file` with `GGUFQuantizationConfig`, which
keeps the weights quantised and dequantises each layer as it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..errors import ModelNotFound
from ..checkpoints import HOW_TO_GET, ModelInfo, tensor_shapes


def pair_with_folder(model: ModelInfo, catalog: list[ModelInfo], *, family: str,
                     shape_of: Callable[[dict], tuple | None], describe: Callable[[tuple], str] = str,
                     download_hint: str) -> Path:
    """The installed diffusers folder of `family` whose transformer has the architecture of the file `model`
    (`shape_of` reads it from the file's tensor shapes and from a transformer config alike)."""
    wanted = shape_of(tensor_shapes(model.path))
    if wanted is None:
        raise ModelNotFound(f"{model.path.name} does not hold a whole {family} transformer (its patch embedding "
                            f"is missing); {HOW_TO_GET}")
    folders = [info for info in catalog if info.family == family and info.path.is_dir()]
    for info in folders:
        for part in ("transformer", "transformer_2"):
            config_file = info.path / part / "config.json"
            if not config_file.is_file():
                continue
            try:
                config = json.loads(config_file.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if shape_of(config) == wanted:
                return info.path
    what = describe(wanted)
    installed = ", ".join(info.name for info in folders) or "none is installed"
    raise ModelNotFound(
        f"{model.path.name} is a {family} transformer ({what}) and needs an installed {family} diffusers folder of "
        f"the same architecture for its text encoder, VAE and configs ({family} folders: {installed}); get one with "
        f"`{download_hint}`")


def load_transformer(path: Path, folder: Path, subfolder: str, dtype):
    """A transformer from a single file, with the config of `folder/subfolder` (no network): a GGUF stays
    quantised (dequantised layer by layer to `dtype`), a .safetensors is cast to `dtype`."""
    import diffusers

    from .common import loading

    config = json.loads((folder / subfolder / "config.json").read_text())
    model_class = getattr(diffusers, config["_class_name"])
    options = {}
    if path.suffix.lower() == ".gguf":
        options["quantization_config"] = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
    with loading(str(path)):
        return model_class.from_single_file(str(path), config=str(folder), subfolder=subfolder, dtype=dtype,
                                            local_files_only=True, **options)
