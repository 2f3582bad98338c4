"""The LTX-Video GPU benchmark: full-size LTX-Video 2B distilled and 13B distilled with random bf16 weights,
161 frames at 768x512, image in -> MP4 out through the app's engine, under a 12 GiB cap and uncapped, with and
without the two-stage latent upsampler.

    .venv/bin/python bench/gpu_ltx.py                          # CUDA: every model and case (minutes per model)
    .venv/bin/python bench/gpu_ltx.py --models 2b-distilled --cases uncapped,capped
    .venv/bin/python bench/gpu_ltx.py --tiny --device cpu      # anywhere: tiny LTX models (CI runs it)
    bench/gpu/run.sh ltx                                       # a GPU machine without network (see there)

Random weights cost the real FLOPs and bytes, so time and memory are the real models'. The architectures:
diffusers' default `LTXVideoTransformer3DModel` config is LTX-Video 2B's (28 blocks, width 2048); the 13B has
48 blocks of width 4096 (ltxv-13b's transformer config); T5-XXL v1.1 (24 layers, width 4096, gated GELU,
4.7 B parameters) as the text encoder; diffusers' default `AutoencoderKLLTXVideo` with timestep conditioning;
the latent upsampler's default config. The models are named "...-distilled" so that the app uses the
distilled defaults (8 steps, guidance 1). Built once in --model-dir (default /tmp/video-gen-bench-models).

Cases (`--cases`): uncapped (the engine's own plan), capped (`torch.cuda.set_per_process_memory_fraction` to
--cap-gib and the engine planning for it: the 12 GB reference user), two-stage and two-stage-capped (the same
with `upscale="2x"`). Each row: seconds end to end, `max_memory_reserved`/`max_memory_allocated`, the memory
plan chosen and the estimator's estimate, or the error (a failing case never ends the run). The JSON (--out)
is rewritten after every row. The issue's target: peak reserved <= 11.5 GiB capped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GiB = 2**30
CAPPED_TARGET_GIB = 11.5  # the bar for a 12 GiB card
CASES = ("uncapped", "capped", "two-stage", "two-stage-capped")
MODELS = {  # name -> transformer config beyond diffusers' defaults (which are LTX-Video 2B's)
    "2b-distilled": {},
    "13b-distilled": {"num_attention_heads": 32, "attention_head_dim": 128, "num_layers": 48,
                      "cross_attention_dim": 4096},
}
UPSAMPLER = "ltx-upscaler-random"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models (seconds on a CPU)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--cap-gib", type=float, default=12.0)
    parser.add_argument("--frames", type=int, default=161)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "video-gen-bench-models")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_ltx.json")
    args = parser.parse_args(argv)
    args.models = [name for name in args.models.split(",") if name]
    args.cases = [name for name in args.cases.split(",") if name]
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    for name in args.cases:
        if name not in CASES:
            parser.error(f"unknown case {name!r}; known: {', '.join(CASES)}")
    if args.tiny:
        args.frames, args.width, args.height = 17, 64, 64
    return args


# ---- the models ---------------------------------------------------------------------------------------
def model_folder(models_dir: Path, name: str, tiny: bool) -> Path:
    return models_dir / (f"tiny-ltx-{name}" if tiny else f"ltx-{name}-random")


def ensure_models(args) -> float:
    """Build what is missing in --model-dir; returns the seconds spent."""
    started = time.perf_counter()
    args.model_dir.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        folder = model_folder(args.model_dir, name, args.tiny)
        if not (folder / "model_index.json").is_file():
            build(folder, name, args.tiny)
    upsampler = args.model_dir / UPSAMPLER
    if any(case.startswith("two-stage") for case in args.cases) and not (upsampler / "model_index.json").is_file():
        first = model_folder(args.model_dir, args.models[0], args.tiny)
        if args.tiny:
            from tiny_models import build_tiny_ltx_upsampler

            build_tiny_ltx_upsampler(upsampler, first)
        else:
            build_upsampler(upsampler, first)
    return time.perf_counter() - started


def build(folder: Path, name: str, tiny: bool) -> None:
    if tiny:
        from tiny_models import build_tiny_ltx

        build_tiny_ltx(folder, seed=len(name))
        return
    import torch
    from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline,
                           LTXVideoTransformer3DModel)
    from transformers import T5Config, T5EncoderModel

    from tiny_models import build_tiny_t5_tokenizer

    tokenizer = build_tiny_t5_tokenizer(folder / "tokenizer")  # token ids only: the encoder's cost is its width
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # half the memory while building (the 13B is 26 GB in bf16)
    try:
        # Random init of T5-XXL and the transformer is minutes on a CPU and seconds on a GPU
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            transformer = LTXVideoTransformer3DModel(**MODELS[name])
            vae = AutoencoderKLLTXVideo(timestep_conditioning=True)
            text_encoder = T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240,
                                                   num_layers=24, num_heads=64, feed_forward_proj="gated-gelu"))
    finally:
        torch.set_default_dtype(previous)
    LTXConditionPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                         tokenizer=tokenizer, transformer=transformer).save_pretrained(folder, safe_serialization=True)
    del transformer, vae, text_encoder
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_upsampler(folder: Path, model: Path) -> None:
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    upsampler = LTXLatentUpsamplerModel().to(torch.bfloat16)
    vae = AutoencoderKLLTXVideo.from_pretrained(model / "vae")
    LTXLatentUpsamplePipeline(vae=vae, latent_upsampler=upsampler).save_pretrained(folder, safe_serialization=True)


def synthetic_photo(path: Path, width: int, height: int) -> Path:
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1).astype("uint8")
    Image.fromarray(pixels).save(path)
    return path


# ---- one case -------------------------------------------------------------------------------------------
def run_case(args, name: str, case: str, photo: Path, outputs: Path) -> dict:
    import torch

    from video_gen import GenerationRequest, Generator

    cuda = args.device.startswith("cuda")
    capped = case.endswith("capped") and case != "uncapped"
    row = {"model": name, "case": case, "frames": args.frames, "size": f"{args.width}x{args.height}",
           "seconds": None, "max_memory_reserved": None, "max_memory_allocated": None, "memory_plan": None,
           "estimate_bytes": None, "within_target": None, "error": None}
    try:
        if capped:
            if not cuda:
                raise RuntimeError("the cap needs a CUDA device (torch.cuda.set_per_process_memory_fraction)")
            total = torch.cuda.get_device_properties(torch.device(args.device)).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gib * GiB / total))
        generator = Generator(models_dir=args.model_dir, outputs_dir=outputs, device=args.device,
                              vram_gb=args.cap_gib if capped else None)
        request = GenerationRequest(image=str(photo), model=model_folder(args.model_dir, name, args.tiny).name,
                                    num_frames=args.frames, width=args.width, height=args.height, seed=7,
                                    prompt="a lighthouse on a cliff, waves", upscale="2x" if "two-stage" in case
                                    else "off")
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = generator.generate(request)
        if cuda:
            torch.cuda.synchronize()
            row["max_memory_reserved"] = torch.cuda.max_memory_reserved()
            row["max_memory_allocated"] = torch.cuda.max_memory_allocated()
            if capped:
                row["within_target"] = row["max_memory_reserved"] <= CAPPED_TARGET_GIB * GiB
        row["seconds"] = round(time.perf_counter() - started, 3)
        row["memory_plan"] = result.memory_plan.label()
        row["estimate_bytes"] = result.memory_plan.estimate_bytes
        row["retries"] = result.retries
        generator.unload()
    except Exception as error:  # noqa: BLE001 - any failure (out of memory included) is this row's result
        row["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        traceback.print_exc()
    finally:
        if cuda:
            torch.cuda.set_per_process_memory_fraction(1.0)
            torch.cuda.empty_cache()
    return row


def write_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2))
    os.replace(temporary, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    result = {"device": args.device, "tiny": args.tiny, "python": platform.python_version(),
              "torch": torch.__version__, "cap_gib": args.cap_gib, "target_capped_reserved_gib": CAPPED_TARGET_GIB,
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
              "build_models_s": None, "rows": [], "complete": False}
    result["build_models_s"] = round(ensure_models(args), 1)
    write_atomically(args.out, result)
    with tempfile.TemporaryDirectory(prefix="gpu-ltx-") as work:
        photo = synthetic_photo(Path(work) / "photo.png", args.width, args.height)
        for name in args.models:
            for case in args.cases:
                row = run_case(args, name, case, photo, Path(work) / "outputs")
                result["rows"].append(row)
                write_atomically(args.out, result)
                print(json.dumps(row), flush=True)
    result["complete"] = True
    write_atomically(args.out, result)
    for row in result["rows"]:
        reserved = f"{row['max_memory_reserved'] / GiB:.2f} GiB" if row["max_memory_reserved"] else "n/a"
        print(f"{row['model']:>14} {row['case']:>17}: {row['seconds'] or '-':>8} s, reserved {reserved:>10}, "
              f"plan {row['memory_plan']}{'  ERROR ' + row['error'] if row['error'] else ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
