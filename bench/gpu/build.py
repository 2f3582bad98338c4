"""Building the runner's models (bench/gpu/cases.py's MODELS) in one folder, at full size or tiny, once per machine.

Full size: the real architectures with random weights (the real FLOPs and bytes), initialised on the GPU and
written in the diffusers layout, through the builders of bench/gpu_svd.py, bench/gpu_wan.py, bench/gpu_ltx.py
and bench/gpu_ltx2.py. Tiny: the package's tiny builders (through bench/tiny_models.py). Each folder gets a marker
file when its build finished; a folder without one is built again. The machine's disk is 64 GiB and the models
together are larger, so `make_room` deletes built models that the rest of the call does not need.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

from cases import MODELS  # noqa: E402  (bench/gpu is on sys.path: this runs as bench/gpu/next.py's module)

MARKER = "bench-built.json"  # written last: a folder without it was not finished
LORA_FOLDER = "loras"
WAN_DISTILL_LORA = "Wan21_I2V_14B_lightx2v_cfg_step_distill_lora_rank64"  # the name says "lightx2v": 4 steps
LORA_RANK = 64  # lightx2v's published I2V step-distill LoRA is rank 64 (its file: ~740 MB for the 14B)
GiB = 2**30


def folder(models_dir: Path, key: str, tiny: bool) -> Path:
    model = MODELS[key]
    return models_dir / (model.tiny_folder if tiny else model.folder)


def is_built(models_dir: Path, key: str, tiny: bool) -> bool:
    return (folder(models_dir, key, tiny) / MARKER).is_file()


def build(models_dir: Path, key: str, tiny: bool, device: str) -> float:
    """Build model `key` in `models_dir` unless a finished build is there; returns the seconds spent (0 if built)."""
    path = folder(models_dir, key, tiny)
    if (path / MARKER).is_file():
        return 0.0
    started = time.perf_counter()
    shutil.rmtree(path, ignore_errors=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    BUILDERS[key](path, models_dir, tiny, device)
    (path / MARKER).write_text(json.dumps({"built": datetime.now().isoformat(timespec="seconds"), "tiny": tiny,
                                           "model": key}) + "\n")
    _free_device_memory()
    return time.perf_counter() - started


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---- the builders ----------------------------------------------------------------------------------------------
def _svd(path: Path, models_dir: Path, tiny: bool, device: str) -> None:
    import gpu_svd
    from tiny_models import build_tiny_svd

    if tiny:
        build_tiny_svd(path, num_frames=8)
    else:
        gpu_svd.build_svd_xt(path)


def _wan(variant: str, tiny_variant: str):
    def builder(path: Path, models_dir: Path, tiny: bool, device: str) -> None:
        import gpu_wan
        from tiny_models import build_tiny_wan

        if tiny:
            build_tiny_wan(path, tiny_variant)
        else:
            gpu_wan.build_full(variant, path, device)
        if variant == "i2v-14b-480p":
            build_distill_lora(path, models_dir / LORA_FOLDER / f"{WAN_DISTILL_LORA}.safetensors",
                               rank=4 if tiny else LORA_RANK)
    return builder


def _wan_vace(variant: str):
    def builder(path: Path, models_dir: Path, tiny: bool, device: str) -> None:
        import gpu_wan
        from tiny_models import build_tiny_wan_vace

        if tiny:
            build_tiny_wan_vace(path)
        else:
            gpu_wan.build_full(variant, path, device)
    return builder


def _ltx(name: str):
    def builder(path: Path, models_dir: Path, tiny: bool, device: str) -> None:
        import gpu_ltx

        gpu_ltx.build(path, name, tiny)
    return builder


def _ltx_upsampler(path: Path, models_dir: Path, tiny: bool, device: str) -> None:
    import gpu_ltx
    from tiny_models import build_tiny_ltx_upsampler

    base = folder(models_dir, "ltx-2b-distilled", tiny)
    if tiny:
        build_tiny_ltx_upsampler(path, base)
    else:
        gpu_ltx.build_upsampler(path, base)


def _ltx2(path: Path, models_dir: Path, tiny: bool, device: str) -> None:
    import gpu_ltx2

    gpu_ltx2.build(path, tiny, device)


def _ltx2_distilled(path: Path, models_dir: Path, tiny: bool, device: str) -> None:
    import gpu_ltx2

    gpu_ltx2.link_distilled(path, folder(models_dir, "ltx2-19b", tiny))


def _upscaler(path: Path, models_dir: Path, tiny: bool, device: str) -> None:
    """Real-ESRGAN x4plus's RRDBNet (64 features, 23 blocks) with random weights, as a .safetensors in the app's
    upscalers folder (the tiny one: 8 features, 1 block); named as cases.UPSCALE's `upscaler`."""
    from cases import UPSCALE
    from tiny_models import build_tiny_esrgan

    options = {} if tiny else dict(num_filters=64, num_blocks=23)
    build_tiny_esrgan(path / f"{UPSCALE['upscaler']}.safetensors", scale=4, **options)


def _hunyuan(name: str):
    def builder(path: Path, models_dir: Path, tiny: bool, device: str) -> None:
        import gpu_hunyuan

        gpu_hunyuan.build(path, name, tiny, device)
    return builder


BUILDERS = {
    "svd-xt": _svd,
    "wan2.1-i2v-14b": _wan("i2v-14b-480p", "i2v"),
    "wan2.2-ti2v-5b": _wan("ti2v-5b", "ti2v-5b"),
    "ltx-2b-distilled": _ltx("2b-distilled"),
    "ltx-upsampler": _ltx_upsampler,
    "ltx-13b-distilled": _ltx("13b-distilled"),
    "wan2.1-vace-1.3b": _wan_vace("vace-1.3b"),
    "wan2.1-vace-14b": _wan_vace("vace-14b"),
    "ltx2-19b": _ltx2,
    "ltx2-19b-distilled": _ltx2_distilled,
    "realesrgan-x4": _upscaler,
    "hunyuan15-480p-i2v": _hunyuan("hunyuan15-480p-i2v"),
    "framepack-f1": _hunyuan("framepack-f1"),
}


def build_distill_lora(model: Path, file: Path, *, rank: int, seed: int = 0) -> Path:
    """A random LoRA for the Wan transformer in `model`, in the layout of lightx2v's step-distill LoRAs (Wan's
    original module names: diffusion_model.blocks.N.self_attn.q.lora_down.weight / .lora_up.weight / .alpha, on
    every attention projection, the image keys k_img/v_img and both feed-forward layers), which diffusers
    converts on load. Its shapes come from the transformer's config, so the same code makes the full and tiny one.
    The up weights are small: the random adapter changes the frames a little, as a trained one does."""
    import torch
    from safetensors.torch import save_file

    config = json.loads((model / "transformer" / "config.json").read_text())
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    image_dim = config.get("added_kv_proj_dim")
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}

    def adapter(name: str, inputs: int, outputs: int) -> None:
        base = f"diffusion_model.{name}"
        tensors[f"{base}.lora_down.weight"] = (torch.randn(rank, inputs, generator=generator)
                                               / inputs ** 0.5).to(torch.bfloat16)
        tensors[f"{base}.lora_up.weight"] = (torch.randn(outputs, rank, generator=generator) * 1e-3).to(torch.bfloat16)
        tensors[f"{base}.alpha"] = torch.tensor(float(rank), dtype=torch.bfloat16)

    for block in range(config["num_layers"]):
        for projection in ("q", "k", "v", "o"):
            adapter(f"blocks.{block}.self_attn.{projection}", dim, dim)
            adapter(f"blocks.{block}.cross_attn.{projection}", dim, dim)
        if image_dim:
            for projection in ("k_img", "v_img"):
                adapter(f"blocks.{block}.cross_attn.{projection}", image_dim, dim)
        adapter(f"blocks.{block}.ffn.0", dim, config["ffn_dim"])
        adapter(f"blocks.{block}.ffn.2", config["ffn_dim"], dim)
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(file), metadata={"format": "pt"})
    return file


# ---- the disk ----------------------------------------------------------------------------------------------------
def make_room(models_dir: Path, key: str, tiny: bool, keep: set[str], log=print) -> None:
    """Delete built models outside `keep` (those the rest of the call needs) until `key` fits on the disk with
    2 GiB to spare. A folder that another model links its text encoder to is moved into that model first."""
    if tiny:
        return
    need = MODELS[key].disk_gib * GiB + 2 * GiB
    models_dir.mkdir(parents=True, exist_ok=True)
    for other in MODELS:
        if shutil.disk_usage(models_dir).free >= need:
            return
        if other == key or other in keep or not is_built(models_dir, other, tiny):
            continue
        path = folder(models_dir, other, tiny)
        _adopt_links_into(models_dir, path)
        log(f"== deleting {path.name} to make room for {key} (the rest of this call does not need it)")
        shutil.rmtree(path, ignore_errors=True)


def _adopt_links_into(models_dir: Path, doomed: Path) -> None:
    """Replace each link into `doomed` from another model folder by the folder it points to (a rename: the same
    disk), so deleting `doomed` breaks no other model (bench/gpu_wan.py links umT5-XXL into the second Wan)."""
    doomed = doomed.resolve()
    for link in models_dir.glob("*/*"):
        if link.is_symlink() and link.resolve().is_relative_to(doomed):
            target = link.resolve()
            link.unlink()
            shutil.move(str(target), str(link))
