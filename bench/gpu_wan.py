"""The Wan benchmark: full-size Wan 2.2 TI2V-5B (121 frames, 1280x704) and Wan 2.1 I2V 14B 480P (81 frames,
832x480) with random bf16 weights, through the app's own code path, uncapped and under a 12 GiB cap.

    .venv/bin/python bench/gpu_wan.py --tiny --device cpu        # anywhere: tiny Wan models (CI runs it)
    bench/gpu/run.sh wan                                         # a GPU machine without network (see there)

Random weights cost exactly the real FLOPs, so speed and memory are the real model's. The configs below are
copied from the Wan-AI/*-Diffusers repositories' transformer/, text_encoder/ and vae/ config.json; umT5-XXL is
built once and linked into both folders. Steps default to 4 (`--steps`): seconds per step is the measure, and
50 steps of the 14B at 480P would take most of a 10-minute GPU call.

Rows (`--out`, rewritten after every row, so an interrupted run keeps what it measured), per model:
  uncapped        the engine's own plan: seconds per step, peak reserved and allocated memory, the plan
  capped          the same under the cap (`torch.cuda.set_per_process_memory_fraction`, planned for it):
                  the target is a peak reserved <= 11.5 GiB
  prompt-cache    the prompt stage's seconds on the first job and on a second job with the same prompt
                  (served from the embedding cache: the text encoder does not run)
  speed           seconds per step with FirstBlockCache (threshold 0.05) against the uncapped row: the speedup
A failing row (out of memory included) records its error and the run goes on.
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
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GiB = 2**30
TARGET_CAPPED_GIB = 11.5

# Wan-AI/Wan2.2-TI2V-5B-Diffusers and Wan-AI/Wan2.1-I2V-14B-480P-Diffusers, transformer/config.json
TRANSFORMERS = {
    "ti2v-5b": dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48,
                    out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30, cross_attn_norm=True,
                    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
    "i2v-14b-480p": dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36,
                         out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40,
                         cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280,
                         added_kv_proj_dim=5120, rope_max_seq_len=1024),
    # Wan-AI/Wan2.1-VACE-1.3B-diffusers and Wan-AI/Wan2.1-VACE-14B-diffusers, transformer/config.json (bench/gpu/
    # runs them: `build_full("vace-1.3b", …)`)
    "vace-1.3b": dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                      out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                      qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
                      vace_layers=list(range(0, 30, 2)), vace_in_channels=96),
    "vace-14b": dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16,
                     out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
                     qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
                     vace_layers=list(range(0, 40, 5)), vace_in_channels=96),
}
# The job of each: (frames, width, height)
JOBS = {"ti2v-5b": (121, 1280, 704), "i2v-14b-480p": (81, 832, 480), "vace-1.3b": (81, 832, 480),
        "vace-14b": (81, 832, 480)}
# google/umt5-xxl's encoder (text_encoder/config.json of both repositories)
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                dense_act_fn="gelu_new", is_gated_act=True, tie_word_embeddings=False)
# The 2.2 VAE (48 channels, 16x spatial) and the 2.1 VAE (16 channels, 8x): vae/config.json
VAE_22 = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
              temperal_downsample=[False, True, True], in_channels=12, out_channels=12, is_residual=True,
              patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4, latents_mean=[0.0] * 48,
              latents_std=[1.0] * 48)
VAE_21 = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True])
# laion/CLIP-ViT-H-14's vision tower (Wan 2.1 I2V's image_encoder/config.json)
CLIP_H = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
              patch_size=14, projection_dim=1024, hidden_act="gelu")


def build_full(variant: str, folder: Path, device: str) -> Path:
    """A full-size Wan model with random bf16 weights in the diffusers layout (initialised on `device`: minutes
    on a CPU for the 14B, seconds on a GPU)."""
    import torch
    from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler,
                           WanImageToVideoPipeline, WanPipeline, WanTransformer3DModel, WanVACEPipeline,
                           WanVACETransformer3DModel)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    from tiny_models import build_tiny_t5_tokenizer

    if (folder / "model_index.json").is_file():
        return folder
    tokenizer = build_tiny_t5_tokenizer(folder.parent / "_tokenizer")  # the vocabulary does not change the cost
    # umT5-XXL (11 GB) is written once and linked into the second model's folder: the GPU machine's disk is 64 GB
    shared = next((other / "text_encoder" for other in folder.parent.glob("random-wan-*")
                   if (other / "text_encoder" / "config.json").is_file() and not (other / "text_encoder").is_symlink()),
                  None)
    previous = torch.get_default_dtype()
    with torch.device(device):
        torch.manual_seed(0)
        size = UMT5_XXL if shared is None else {**UMT5_XXL, "d_model": 32, "d_ff": 32, "num_layers": 1,
                                                "num_heads": 2, "d_kv": 16, "vocab_size": 128}
        # Born in bf16: made in float32 and cast, the 14B (56 GB) beside umT5-XXL (23 GB) and the cast's copy
        # would not fit an 80 GB H100
        torch.set_default_dtype(torch.bfloat16)
        try:
            text_encoder = UMT5EncoderModel(UMT5Config(**size)).to(torch.bfloat16).eval()
            vace = variant.startswith("vace")
            transformer = (WanVACETransformer3DModel if vace else WanTransformer3DModel)(**TRANSFORMERS[variant])
        finally:
            torch.set_default_dtype(previous)
        vae = AutoencoderKLWan(**(VAE_22 if variant == "ti2v-5b" else VAE_21))
        if vace:  # the official repositories' scheduler: UniPC over flow sigmas, flow_shift 3.0 (480P)
            pipe = WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                                   scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction",
                                                                     use_flow_sigmas=True, flow_shift=3.0))
        elif variant == "ti2v-5b":
            pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                               scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction",
                                                                 use_flow_sigmas=True, flow_shift=5.0),
                               expand_timesteps=True)
        else:
            image_encoder = CLIPVisionModel(CLIPVisionConfig(**CLIP_H)).eval()
            pipe = WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                           transformer=transformer, image_encoder=image_encoder,
                                           image_processor=CLIPImageProcessor(crop_size=224, size=224),
                                           scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.save_pretrained(folder)
    del pipe, transformer, text_encoder, vae
    if shared is not None:
        import shutil

        shutil.rmtree(folder / "text_encoder")
        (folder / "text_encoder").symlink_to(shared.resolve(), target_is_directory=True)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return folder


def build_models(tiny: bool, model_dir: Path, device: str, variants: list[str]) -> dict[str, str]:
    from tiny_models import build_tiny_wan

    names = {}
    for variant in variants:
        name = f"{'tiny' if tiny else 'random'}-wan-{variant}"
        if tiny:
            if not (model_dir / name / "model_index.json").is_file():
                build_tiny_wan(model_dir / name, "ti2v-5b" if variant == "ti2v-5b" else "i2v")
        else:
            build_full(variant, model_dir / name, device)
        names[variant] = name
    return names


def one_job(generator, request) -> dict:
    """Run a job and measure it: seconds, seconds per denoising step, peaks, the plan, per-stage times."""
    import torch

    from video_gen.events import StepEvent

    steps: list[float] = []

    def on_event(event):
        if isinstance(event, StepEvent) and event.stage == "denoising":
            steps.append(time.perf_counter())

    cuda = generator.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = generator.generate(request, on_event=on_event)
    seconds = time.perf_counter() - started
    per_step = (steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else None
    return {
        "seconds": round(seconds, 3), "s_per_step": round(per_step, 4) if per_step else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GiB, 3) if cuda else None,
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / GiB, 3) if cuda else None,
        "plan": result.memory_plan.label() if result.memory_plan else None,
        "estimate_gib": round(result.memory_plan.estimate_bytes / GiB, 3) if result.memory_plan else None,
        "timings_s": {stage: round(value, 3) for stage, value in result.timings.items()},
        "run": result.info().get("run"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny Wan models (CPU-friendly; what CI runs)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default="ti2v-5b,i2v-14b-480p", help="comma list: ti2v-5b, i2v-14b-480p")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--cap-gib", type=float, default=12.0)
    parser.add_argument("--model-dir", type=Path, default=None, help="keep the built models here for the next run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_wan.json")
    args = parser.parse_args(argv)
    variants = [name.strip() for name in args.models.split(",") if name.strip()]
    own = ("ti2v-5b", "i2v-14b-480p")  # the VACE models run through bench/gpu/next.py (their control video)
    unknown = [name for name in variants if name not in own]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(own)}")

    import numpy as np
    import torch
    from PIL import Image

    from video_gen import GenerationRequest, Generator

    model_dir = args.model_dir or Path(tempfile.mkdtemp(prefix="wan-bench-models-"))
    model_dir.mkdir(parents=True, exist_ok=True)
    out = args.out if args.out.suffix == ".json" else args.out / "gpu_wan.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"started": datetime.now().isoformat(timespec="seconds"), "tiny": args.tiny, "device": args.device,
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor(),
              "torch": torch.__version__, "steps": args.steps, "cap_gib": args.cap_gib,
              "target_capped_peak_reserved_gib": TARGET_CAPPED_GIB, "rows": []}

    def write():
        temporary = out.with_suffix(".tmp")
        temporary.write_text(json.dumps(report, indent=2))
        os.replace(temporary, out)

    def row(model: str, case: str, measure):
        entry = {"model": model, "case": case}
        print(f"== {model} {case}", flush=True)
        try:
            entry.update(measure())
        except Exception as error:  # a benchmark row records any failure (OOM included) and the run goes on
            entry["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            traceback.print_exc()
        report["rows"].append(entry)
        write()
        print(json.dumps(entry), flush=True)
        return entry

    names = build_models(args.tiny, model_dir, args.device, variants)
    picture = model_dir / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (704, 1280, 3), dtype=np.uint8)).save(picture)
    outputs = Path(tempfile.mkdtemp(prefix="wan-bench-outputs-"))
    total = torch.cuda.get_device_properties(0).total_memory if args.device.startswith("cuda") else None
    for variant in variants:
        frames, width, height = (9, 64, 64) if args.tiny else JOBS[variant]
        base = dict(model=names[variant], image=str(picture), num_frames=frames, width=width, height=height,
                    num_inference_steps=args.steps, seed=1, prompt="a cat walks on the beach", interpolation=1)
        generator = Generator(models_dir=model_dir, outputs_dir=outputs, device=args.device)
        one_job(generator, GenerationRequest(**{**base, "prompt": "warm-up"}))  # load, warm the kernels
        uncapped = row(variant, "uncapped", lambda: one_job(generator, GenerationRequest(**base)))

        def prompt_cache():
            first = one_job(generator, GenerationRequest(**{**base, "prompt": "a new prompt for the cache"}))
            second = one_job(generator, GenerationRequest(**{**base, "prompt": "a new prompt for the cache", "seed": 2}))
            return {"encode_s_first": first["timings_s"].get("encoding_image"),
                    "encode_s_cached": second["timings_s"].get("encoding_image")}

        row(variant, "prompt-cache", prompt_cache)

        def with_speed():
            measured = one_job(generator, GenerationRequest(**{**base, "speed": "first-block-cache"}))
            if measured["s_per_step"] and uncapped.get("s_per_step"):
                measured["speedup"] = round(uncapped["s_per_step"] / measured["s_per_step"], 3)
            return measured

        row(variant, "speed", with_speed)
        generator.unload()
        if total:
            def capped():
                torch.cuda.empty_cache()
                torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gib * GiB / total))
                try:
                    capped_generator = Generator(models_dir=model_dir, outputs_dir=outputs, device=args.device,
                                                 vram_gb=args.cap_gib)
                    measured = one_job(capped_generator, GenerationRequest(**base))
                    capped_generator.unload()
                    measured["within_target"] = measured["peak_reserved_gib"] <= TARGET_CAPPED_GIB
                    return measured
                finally:
                    torch.cuda.set_per_process_memory_fraction(1.0)

            row(variant, "capped", capped)
    report["finished"] = datetime.now().isoformat(timespec="seconds")
    write()
    print(f"== wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
