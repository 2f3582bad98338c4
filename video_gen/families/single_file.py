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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ModelNotFound
from ..models import HOW_TO_GET, ModelInfo


@dataclass(frozen=True)
class GGUFInfo:
    architecture: str  # general.architecture ("wan", "ltxv", "flux", …), "" when the file does not say
    shapes: dict[str, list[int]]  # tensor name -> shape, in PyTorch's order
    bytes: dict[str, int]  # tensor name -> bytes stored (quantised)
    quant: str  # the quantisation holding the most bytes: "Q4_K", "Q8_0"; a float type if none is quantised


def read_gguf(path: str | Path) -> GGUFInfo:
    """The tensor table and architecture of a GGUF file. Raises ValueError when it is not a readable GGUF."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelNotFound(f"{Path(path).name} is a GGUF file: install the `gguf` package to read it "
                            f"(.venv/bin/pip install gguf)") from None
    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError, KeyError, IndexError) as error:  # gguf raises ValueError for a bad magic/version
        raise ValueError(f"{Path(path).name} is not a readable GGUF file ({error})") from None
    field = reader.fields.get("general.architecture")
    architecture = ""
    if field is not None and field.data:
        architecture = bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    shapes, sizes, by_type = {}, {}, {}
    for tensor in reader.tensors:
        shapes[tensor.name] = [int(side) for side in reversed(tensor.shape.tolist())]  # ggml stores them reversed
        sizes[tensor.name] = int(tensor.n_bytes)
        by_type[tensor.tensor_type.name] = by_type.get(tensor.tensor_type.name, 0) + int(tensor.n_bytes)
    # Float tensors (norms, biases, embeddings) are kept unquantised in every GGUF; the quantised type names it.
    quantised = {kind: size for kind, size in by_type.items() if kind not in ("F32", "F16", "BF16")}
    quant = max(quantised or by_type, key=(quantised or by_type).get) if by_type else ""
    return GGUFInfo(architecture=architecture, shapes=shapes, bytes=sizes, quant=quant)


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape of a single file (GGUF or safetensors), from its header."""
    if path.suffix.lower() == ".gguf":
        return read_gguf(path).shapes
    from ..models import read_safetensors_header

    return {name: entry["shape"] for name, entry in read_safetensors_header(path).items()}


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

    from . import loading

    config = json.loads((folder / subfolder / "config.json").read_text())
    model_class = getattr(diffusers, config["_class_name"])
    options = {}
    if path.suffix.lower() == ".gguf":
        options["quantization_config"] = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
    with loading(str(path)):
        return model_class.from_single_file(str(path), config=str(folder), subfolder=subfolder, dtype=dtype,
                                            local_files_only=True, **options)


def weight_headers(path: Path) -> list[dict]:
    """For the memory estimator: a GGUF's tensors sized by the bytes they keep on the device (quantised, in
    units of 2-byte elements, the estimator's bf16), since diffusers keeps GGUF weights quantised."""
    info = read_gguf(path)
    return [{name: {"shape": [max(1, size // 2)]} for name, size in info.bytes.items()}]
