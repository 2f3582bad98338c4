"""The GPU benchmark: full-size SVD-XT with random fp16 weights, image in -> MP4 out, every memory plan, ONE run.

    .venv/bin/python bench/gpu_svd.py                      # on a CUDA GPU: 25 frames, 1024x576, 25 steps
    .venv/bin/python bench/gpu_svd.py --tiny               # anywhere (CI runs it on the CPU): a tiny SVD

Random weights cost exactly the real FLOPs, so speed and memory are the real model's. The architecture:
diffusers' default `UNetSpatioTemporalConditionModel` config is SVD-XT's UNet; the VAE and the CLIP
image encoder configs below are copied from stabilityai/stable-video-diffusion-img2vid-xt. The model
is saved in that repository's layout (fp16 variant) and loaded through the app's own code path.

Measured, in this order, each after one warm-up job:
  seed      the seed document's recipe: fp16 + `enable_model_cpu_offload`, pipeline called directly,
            then `export_to_video`
  plan:X    our engine with each memory plan forced (none, model, group, sequential offload)
  default   our engine's own choice
  capped    our default under a 12 GiB cap (`torch.cuda.set_per_process_memory_fraction`), planned
            for 12 GiB
  compile   our default with `torch.compile` on the UNet; channels-last: with channels-last tensors
Each row: seconds end to end, seconds per denoising step, peak memory, the estimator's prediction,
and the share of the FLOP floor (UNet with CFG + VAE decode FLOPs, counted here with PyTorch's
FlopCounterMode, at 989 TFLOP/s dense bf16 on an H100).
The JSON goes to bench/results/ and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

H100_DENSE_BF16_FLOPS = 989e12
GiB = 2**30

# stabilityai/stable-video-diffusion-img2vid-xt: vae/config.json and image_encoder/config.json
SVD_XT_VAE = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
    "sample_size": 768, "scaling_factor": 0.18215, "force_upcast": True,
}
SVD_XT_IMAGE_ENCODER = {
    "hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 16, "num_hidden_layers": 32,
    "patch_size": 14, "image_size": 224, "projection_dim": 1024, "hidden_act": "gelu", "layer_norm_eps": 1e-5,
}


def svd_xt_unet():
    from diffusers import UNetSpatioTemporalConditionModel

    return UNetSpatioTemporalConditionModel()  # the defaults are SVD-XT's (num_frames 25)


def svd_xt_vae():
    from diffusers import AutoencoderKLTemporalDecoder

    return AutoencoderKLTemporalDecoder(**SVD_XT_VAE)


def svd_xt_image_encoder():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_XT_IMAGE_ENCODER))


def build_svd_xt(path: Path) -> Path:
    """Save a random full-size SVD-XT in the repository's layout, fp16 variant only (4.2 GB)."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline
    from transformers import CLIPImageProcessor

    from video_gen.testing import SVD_SCHEDULER_CONFIG

    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # random init is slow on the CPU
        unet, vae, encoder = svd_xt_unet(), svd_xt_vae(), svd_xt_image_encoder()
    pipe = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=encoder, unet=unet, scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG),
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )
    pipe.to(torch.float16).save_pretrained(path, safe_serialization=True, variant="fp16")
    return path


def synthetic_photo(path: Path, width: int, height: int) -> Path:
    """A picture with edges and gradients (SVD's cost does not depend on content; the encoder's input does not matter)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def count_flops(model_path: Path, frames: int, width: int, height: int, steps: int, decode_chunk: int) -> dict:
    """FLOPs of the denoising loop (UNet at CFG batch 2, once per step) and of the VAE decode, on the meta device."""
    import torch
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    # Fake tensors: shapes only, no memory and no arithmetic. The math attention backend spells attention
    # out as two batched matmuls, which the counter counts (the fused kernels do the same FLOPs).
    with FakeTensorMode(), sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        unet = UNetSpatioTemporalConditionModel.from_config(UNetSpatioTemporalConditionModel.load_config(
            model_path / "unet"))
        vae = AutoencoderKLTemporalDecoder.from_config(AutoencoderKLTemporalDecoder.load_config(model_path / "vae"))
        latents = torch.empty(2, frames, 8, height // 8, width // 8)
        context = torch.empty(2, 1, unet.config.cross_attention_dim)
        added = torch.empty(2, 3)
        with FlopCounterMode(display=False) as unet_counter:
            unet(latents, torch.tensor(10.0), context, added, return_dict=False)
        with FlopCounterMode(display=False) as vae_counter:
            for start in range(0, frames, decode_chunk):
                count = min(decode_chunk, frames - start)
                vae.decode(torch.empty(count, 4, height // 8, width // 8), num_frames=count)
    unet_flops = unet_counter.get_total_flops() * steps
    decode_flops = vae_counter.get_total_flops()
    return {"unet_flops": unet_flops, "decode_flops": decode_flops, "total_flops": unet_flops + decode_flops}


class Bench:
    def __init__(self, args, model_path: Path, photo: Path, work: Path, floor_s: float | None):
        import torch

        self.args, self.model_path, self.photo, self.work, self.floor_s = args, model_path, photo, work, floor_s
        self.cuda = args.device.startswith("cuda")
        self.torch = torch
        self.rows: list[dict] = []

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def request(self, steps: int, **changes):
        from video_gen import GenerationRequest

        return GenerationRequest(image=str(self.photo), model="bench", num_frames=self.args.frames, fps=7,
                                 width=self.args.width, height=self.args.height, num_inference_steps=steps,
                                 decode_chunk_size=8, seed=1, output_path=str(self.work / "engine.mp4"), **changes)

    def record(self, case: str, seconds: float, step_times: list[float], peak: int | None, **extra) -> dict:
        gaps = [later - earlier for earlier, later in zip(step_times, step_times[1:])]
        row = {
            "case": case, "seconds": round(seconds, 3),
            "seconds_per_step": round(statistics.median(gaps), 4) if gaps else None,
            "peak_gib": round(peak / GiB, 2) if peak is not None else None,
            "floor_fraction": round(self.floor_s / seconds, 3) if self.floor_s else None,
            **extra,
        }
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        return row

    def seed_recipe(self) -> dict:
        """fp16 + enable_model_cpu_offload, the pipeline called directly, then export_to_video."""
        import torch
        from diffusers import StableVideoDiffusionPipeline
        from diffusers.utils import export_to_video, load_image

        dtype = torch.float16 if self.cuda else torch.float32
        pipe = StableVideoDiffusionPipeline.from_pretrained(self.model_path, variant="fp16", dtype=dtype)
        if self.cuda:
            pipe.enable_model_cpu_offload()
        pipe.set_progress_bar_config(disable=True)
        step_times: list[float] = []

        def on_step_end(pipeline, index, timestep, tensors):
            step_times.append(time.perf_counter())
            return tensors

        def run(steps: int) -> None:
            step_times.clear()
            image = load_image(str(self.photo))
            frames = pipe(image, height=self.args.height, width=self.args.width, num_frames=self.args.frames,
                          num_inference_steps=steps, decode_chunk_size=8, generator=torch.manual_seed(1),
                          callback_on_step_end=on_step_end).frames[0]
            export_to_video(frames, str(self.work / "seed.mp4"), fps=7)

        run(2)  # warm-up
        self.reset_peak()
        self.sync()
        started = time.perf_counter()
        run(self.args.steps)
        self.sync()
        seconds = time.perf_counter() - started
        pipe.remove_all_hooks()
        pipe.to("cpu")
        self.free()
        return self.record("seed", seconds, step_times, self.peak(), plan="fp16 + enable_model_cpu_offload"
                           if self.cuda else "float32 on the CPU (offload needs an accelerator)")

    def engine(self, case: str, *, memory_plan: str = "auto", vram_gb: float | None = None, tweak=None) -> dict:
        from video_gen import Generator
        from video_gen.events import DENOISING, StepEvent

        generator = Generator(models_dir=self.model_path.parent, outputs_dir=self.work, device=self.args.device,
                              vram_gb=vram_gb)
        step_times: list[float] = []

        def on_event(event) -> None:
            if isinstance(event, StepEvent) and event.stage == DENOISING:
                step_times.append(time.perf_counter())

        generator.generate(self.request(2, memory_plan=memory_plan))  # warm-up: load, place, autotune
        if tweak is not None:
            tweak(generator._pipe)
            generator.generate(self.request(2, memory_plan=memory_plan))  # compile (or re-tune) outside the timing
        self.reset_peak()
        self.sync()
        started = time.perf_counter()
        result = generator.generate(self.request(self.args.steps, memory_plan=memory_plan), on_event=on_event)
        self.sync()
        seconds = time.perf_counter() - started
        plan = result.memory_plan
        row = self.record(case, seconds, step_times, self.peak(), plan=plan.label(),
                          estimate_gib=round(plan.estimate_bytes / GiB, 2), retries=len(result.retries),
                          frames=result.frames_written)
        generator.unload()
        del generator
        self.free()
        return row

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()

    def peak(self) -> int | None:
        return self.torch.cuda.max_memory_allocated() if self.cuda else None

    def free(self) -> None:
        import gc

        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()


def main() -> int:
    import torch

    from video_gen import memory

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a tiny SVD at 64x64, 8 frames, 3 steps (CPU, CI)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cap-gib", type=float, default=12.0)
    parser.add_argument("--cases", default="seed,plans,default,capped,compile,channels-last",
                        help="which rows to measure (comma-separated)")
    parser.add_argument("--out", type=Path, help="the JSON file (default bench/results/gpu_svd-DEVICE-TIME.json)")
    args = parser.parse_args()
    if args.tiny:
        args.frames, args.width, args.height, args.steps = 8, 64, 64, 3
    cases = set(args.cases.split(","))
    cuda = args.device.startswith("cuda")

    with tempfile.TemporaryDirectory(prefix="gpu-svd-bench-") as folder:
        work = Path(folder)
        started = time.perf_counter()
        model_path = work / "models" / "bench"
        if args.tiny:
            from video_gen.testing import build_tiny_svd

            build_tiny_svd(model_path, num_frames=args.frames)
        else:
            build_svd_xt(model_path)
        built_s = time.perf_counter() - started
        photo = synthetic_photo(work / "photo.png", args.width, args.height)
        flops = count_flops(model_path, args.frames, args.width, args.height, args.steps, 8)
        floor_s = flops["total_flops"] / H100_DENSE_BF16_FLOPS if cuda else None
        bench = Bench(args, model_path, photo, work, floor_s)
        report = memory.probe(args.device)

        if "seed" in cases:
            bench.seed_recipe()
        if "plans" in cases:
            for offload in memory.offloads_for(args.device):
                bench.engine(f"plan:{offload}", memory_plan=offload)
        if "default" in cases:
            bench.engine("default")
        if "capped" in cases and cuda:
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gib * GiB / total))
            try:
                bench.engine(f"capped {args.cap_gib:g} GiB", vram_gb=args.cap_gib)
            finally:
                torch.cuda.set_per_process_memory_fraction(1.0)
        if "compile" in cases and cuda:
            bench.engine("default + torch.compile(unet)", tweak=lambda pipe: pipe.unet.compile())
        if "channels-last" in cases:
            bench.engine("default + channels-last unet",
                         tweak=lambda pipe: [module.to(memory_format=torch.channels_last) for module in pipe.unet.modules()
                                             if isinstance(module, torch.nn.Conv2d)])

    rows = {row["case"]: row for row in bench.rows}
    summary = {}
    if "seed" in rows and "default" in rows:
        summary["speedup_default_vs_seed"] = round(rows["seed"]["seconds"] / rows["default"]["seconds"], 3)
    capped = next((row for case, row in rows.items() if case.startswith("capped")), None)
    if capped and "default" in rows:
        summary["capped_over_uncapped_time"] = round(capped["seconds"] / rows["default"]["seconds"], 3)
        summary["capped_peak_gib"] = capped["peak_gib"]
    result = {
        "benchmark": "gpu_svd", "when": datetime.now().isoformat(timespec="seconds"), "tiny": args.tiny,
        "device": report.to_dict(), "python": platform.python_version(), "torch": torch.__version__,
        "job": {"frames": args.frames, "width": args.width, "height": args.height, "steps": args.steps},
        "flops": flops, "floor_s": floor_s, "build_model_s": round(built_s, 1), "rows": bench.rows,
        "summary": summary,
        "targets": {"default_seconds_max": 7.0, "speedup_vs_seed_min": 1.3, "capped_peak_gib_max": 11.0,
                    "capped_over_uncapped_max": 1.5},
    }
    out = args.out or REPO / "bench" / "results" / f"gpu_svd-{report.kind}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'case':32} {'seconds':>8} {'s/step':>8} {'peak GiB':>9} {'est GiB':>8} {'floor':>6}  plan")
    for row in bench.rows:
        print(f"{row['case']:32} {row['seconds']:8.2f} {row['seconds_per_step'] or 0:8.3f} "
              f"{row['peak_gib'] if row['peak_gib'] is not None else '-':>9} {row.get('estimate_gib', '-'):>8} "
              f"{row['floor_fraction'] if row['floor_fraction'] is not None else '-':>6}  {row.get('plan', '')}")
    print(json.dumps(summary))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
