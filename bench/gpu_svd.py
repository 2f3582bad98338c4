"""The GPU benchmark: full-size SVD-XT with random fp16 weights, image in -> MP4 out, each case in one run.

    .venv/bin/python bench/gpu_svd.py                                  # every case, CUDA, 25 frames 1024x576 25 steps
    .venv/bin/python bench/gpu_svd.py --cases headline --model-dir /tmp/bench-models
    .venv/bin/python bench/gpu_svd.py --tiny --device cpu              # anywhere: a tiny SVD (CI runs it)
    bench/gpu/run.sh part1 | part2                                     # a GPU machine without network (see there)

Random weights cost exactly the real FLOPs, so speed and memory are the real model's. The architecture:
diffusers' default `UNetSpatioTemporalConditionModel` config is SVD-XT's UNet; the VAE and the CLIP
image encoder configs below are copied from stabilityai/stable-video-diffusion-img2vid-xt. The model
is saved in that repository's layout (fp16 variant) and loaded through the app's own code path;
`--model-dir` keeps it for the next call (building it takes ~1 minute).

Cases (`--cases`, a comma list of names or groups; each after one warm-up job):
  seed            the first version's recipe (a plain diffusers script): fp16 + `enable_model_cpu_offload`,
                  decode chunk 4, the pipeline called directly, then `export_to_video`
  seed-capped     the same under the cap (`--cap-gib`, `torch.cuda.set_per_process_memory_fraction`)
  default         our engine's own choice of plan
  capped          our default under the cap, planned for the cap (the 12 GB reference user)
  plan:none, plan:model, plan:group, plan:sequential   our engine with that memory plan forced
  compile         our default with `pipe.unet.forward = torch.compile(pipe.unet.forward)`: its first run
                  (compile included) and its second run are reported apart
  channels-last   our default with channels-last convolution weights
  groups: headline = seed,default,seed-capped,capped; plans = every plan the device has; all
Every case runs in its own `try`: a failure (out of memory included) becomes its row's `error` and the
run goes on. The JSON (`--out`, a file or a folder; default bench/results/) is rewritten atomically after
every row, so an interrupted run keeps what it measured.

Each row: seconds end to end, seconds per denoising step, `max_memory_allocated` and
`max_memory_reserved` over the job and per stage (peaks reset at each stage the engine reports), the
lowest free memory `torch.cuda.mem_get_info` showed (sampled at each stage and step), the estimator's
estimate beside each, and the share of the FLOP floor (UNet with CFG + VAE decode FLOPs, counted with
PyTorch's FlopCounterMode, at 989 TFLOP/s dense bf16 on an H100/H200).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

H100_DENSE_BF16_FLOPS = 989e12
GiB = 2**30
FULL_MODEL = "svd-xt-random"  # the folder name under --model-dir
TINY_MODEL = "tiny-svd"
SEED_DECODE_CHUNK = 4  # that first script's `decode_chunk_size`

CASES = {
    "seed": "fp16 + enable_model_cpu_offload, decode 4, the pipeline called directly (the seed's recipe)",
    "default": "our engine, its own plan",
    "seed-capped": "the seed's recipe under the cap",
    "capped": "our engine under the cap, planned for it",
    "plan:none": "our engine, everything on the GPU",
    "plan:model": "our engine, model offload",
    "plan:group": "our engine, group offload",
    "plan:sequential": "our engine, sequential offload",
    "compile": "our default + torch.compile(unet.forward)",
    "channels-last": "our default + channels-last convolutions",
}
GROUPS = {
    "headline": ["seed", "default", "seed-capped", "capped"],
    "plans": None,  # the plans the device has (memory.offloads_for)
    "all": list(CASES),
}

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

    from tiny_models import SVD_SCHEDULER_CONFIG

    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # random init is slow on the CPU
        unet, vae, encoder = svd_xt_unet(), svd_xt_vae(), svd_xt_image_encoder()
    pipe = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=encoder, unet=unet, scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG),
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )
    pipe.to(torch.float16)  # cast where it was made (fast on the GPU), save from the CPU
    pipe.to("cpu").save_pretrained(path, safe_serialization=True, variant="fp16")
    del pipe, unet, vae, encoder
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path


def ensure_model(models_dir: Path, tiny: bool, frames: int) -> tuple[Path, float]:
    """The benchmark's model in `models_dir`, built unless an earlier call finished building it there."""
    path = models_dir / (TINY_MODEL if tiny else FULL_MODEL)
    marker = path / "bench-built.json"  # written last: a half-written model is built again
    if marker.is_file():
        return path, 0.0
    import shutil

    started = time.perf_counter()
    shutil.rmtree(path, ignore_errors=True)
    if tiny:
        from tiny_models import build_tiny_svd

        build_tiny_svd(path, num_frames=frames)
    else:
        build_svd_xt(path)
    marker.write_text(json.dumps({"built": datetime.now().isoformat(timespec="seconds"), "tiny": tiny}) + "\n")
    return path, time.perf_counter() - started


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


def expand_cases(text: str, device: str) -> list[str]:
    """'headline,plan:group' -> the case names, in the order given, each once. Unknown names raise."""
    from video_gen import memory

    names: list[str] = []
    for part in (part.strip() for part in text.split(",") if part.strip()):
        if part == "plans":
            expanded = [f"plan:{offload}" for offload in memory.offloads_for(device)]
        elif part in GROUPS:
            expanded = GROUPS[part]
        elif part in CASES:
            expanded = [part]
        else:
            raise SystemExit(f"--cases: unknown case {part!r}; known: {', '.join([*CASES, *GROUPS])}")
        names += [name for name in expanded if name not in names]
    return names


class MemoryWatch:
    """Device memory over one timed job: the peaks of each stage (the peak statistics are reset whenever
    the job enters a stage) and the lowest free memory seen at each stage change and step. On the CPU
    every number is None."""

    def __init__(self, cuda: bool):
        import torch

        self.torch, self.cuda = torch, cuda
        self.stage: str | None = None
        self.stages: dict[str, dict[str, int]] = {}
        self.min_free: int | None = None

    def start(self, stage: str | None = None) -> None:
        self.stage, self.stages, self.min_free = None, {}, None
        if stage:
            self.enter(stage)

    def enter(self, stage: str) -> None:
        if stage != self.stage:
            self._close()
            self.stage = stage
            if self.cuda:
                self.torch.cuda.reset_peak_memory_stats()
        self.sample()

    def sample(self) -> None:
        if self.cuda:
            free, _ = self.torch.cuda.mem_get_info()
            self.min_free = free if self.min_free is None else min(self.min_free, free)

    def finish(self) -> dict:
        self._close()
        self.stage = None
        peaks = list(self.stages.values())
        return {
            "max_memory_allocated": max((peak["max_memory_allocated"] for peak in peaks), default=None),
            "max_memory_reserved": max((peak["max_memory_reserved"] for peak in peaks), default=None),
            "min_free_bytes": self.min_free,
        }

    def _close(self) -> None:
        if self.stage is None or not self.cuda:
            return
        self.sample()
        seen = self.stages.setdefault(self.stage, {"max_memory_allocated": 0, "max_memory_reserved": 0})
        seen["max_memory_allocated"] = max(seen["max_memory_allocated"], self.torch.cuda.max_memory_allocated())
        seen["max_memory_reserved"] = max(seen["max_memory_reserved"], self.torch.cuda.max_memory_reserved())


class Bench:
    def __init__(self, args, models_dir: Path, model_path: Path, photo: Path, work: Path, floor_s: float | None):
        import torch

        self.args, self.models_dir, self.model_path, self.photo, self.work = args, models_dir, model_path, photo, work
        self.floor_s = floor_s
        self.cuda = args.device.startswith("cuda")
        self.torch = torch
        self.watch = MemoryWatch(self.cuda)

    # ---- pieces ---------------------------------------------------------------------------------
    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def free(self) -> None:
        import gc

        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()

    def request(self, steps: int, **changes):
        from video_gen import GenerationRequest

        return GenerationRequest(image=str(self.photo), model=self.model_path.name, num_frames=self.args.frames,
                                 fps=7, width=self.args.width, height=self.args.height, num_inference_steps=steps,
                                 seed=1, output_path=str(self.work / "engine.mp4"), **changes)

    def cap(self) -> None:
        """Limit this process to `--cap-gib` of device memory (what a 12 GB card leaves PyTorch)."""
        if not self.cuda:
            raise RuntimeError("the cap needs a CUDA device (torch.cuda.set_per_process_memory_fraction)")
        total = self.torch.cuda.get_device_properties(self.torch.cuda.current_device()).total_memory
        self.torch.cuda.set_per_process_memory_fraction(min(1.0, self.args.cap_gib * GiB / total))

    def uncap(self) -> None:
        if self.cuda:
            self.torch.cuda.set_per_process_memory_fraction(1.0)

    def measurement(self, seconds: float, step_times: list[float], memory_peaks: dict, estimates: dict | None) -> dict:
        """A row's numbers: time, steps, memory over the job and per stage, each beside its estimate."""
        gaps = [later - earlier for earlier, later in zip(step_times, step_times[1:])]
        estimates = estimates or {}
        stages = {stage: {**peaks, "estimate_bytes": estimates.get(stage)}
                  for stage, peaks in self.watch.stages.items()}
        for stage, estimate in estimates.items():
            stages.setdefault(stage, {"max_memory_allocated": None, "max_memory_reserved": None,
                                      "estimate_bytes": estimate})
        return {
            "seconds": round(seconds, 3),
            "seconds_per_step": round(statistics.median(gaps), 4) if gaps else None,
            "steps": len(step_times),
            **memory_peaks,
            "estimate_bytes": max(estimates.values()) if estimates else None,
            "stages": stages,
            "floor_fraction": round(self.floor_s / seconds, 3) if self.floor_s else None,
        }

    # ---- cases ----------------------------------------------------------------------------------
    def run_case(self, case: str) -> dict:
        if case in ("seed", "seed-capped"):
            return self.seed_recipe(capped=case == "seed-capped")
        if case == "default":
            return self.engine()
        if case == "capped":
            return self.engine(capped=True)
        if case.startswith("plan:"):
            return self.engine(memory_plan=case.split(":", 1)[1])
        if case == "compile":
            return self.engine(compile_unet=True)
        if case == "channels-last":
            return self.engine(tweak=self.channels_last)
        raise ValueError(f"unknown case {case!r}")

    def seed_estimates(self) -> dict | None:
        """The estimator's numbers for the seed's recipe: model offload, decode 4, no feed-forward chunking."""
        from video_gen import Generator

        generator = Generator(models_dir=self.models_dir, outputs_dir=self.work, device=self.args.device,
                              vram_gb=self.args.cap_gib if self.cuda else None)
        offload = "model" if self.cuda else "none"
        request = self.request(self.args.steps, memory_plan=offload, decode_chunk_size=SEED_DECODE_CHUNK)
        for plan in generator.memory_ladder(request):
            if (plan.offload, plan.decode_chunk_size, plan.forward_chunking) == (offload, SEED_DECODE_CHUNK, False):
                return dict(plan.stage_bytes)
        return None

    def seed_recipe(self, capped: bool = False) -> dict:
        """fp16 + enable_model_cpu_offload, the pipeline called directly, then export_to_video."""
        import torch
        from diffusers import StableVideoDiffusionPipeline
        from diffusers.utils import export_to_video, load_image

        from video_gen.events import DECODING, DENOISING, ENCODING_IMAGE, WRITING

        try:
            estimates, estimate_error = self.seed_estimates(), None
        except Exception as error:  # the estimate is beside the point of this row: record why it is missing
            estimates, estimate_error = None, f"{type(error).__name__}: {_first_line(error)}"
        if capped:
            self.cap()
        pipe = None
        try:
            dtype = torch.float16 if self.cuda else torch.float32
            pipe = StableVideoDiffusionPipeline.from_pretrained(self.model_path, variant="fp16", dtype=dtype)
            if self.cuda:
                pipe.enable_model_cpu_offload()
            pipe.set_progress_bar_config(disable=True)
            step_times: list[float] = []
            watch = self.watch
            denoising = pipe.unet.register_forward_pre_hook(lambda module, args: watch.enter(DENOISING))

            def on_step_end(pipeline, index, timestep, tensors):
                step_times.append(time.perf_counter())
                watch.sample()
                if index + 1 == pipeline.num_timesteps:
                    watch.enter(DECODING)  # the pipeline decodes next
                return tensors

            def run(steps: int) -> None:
                step_times.clear()
                watch.start(ENCODING_IMAGE)
                image = load_image(str(self.photo))
                frames = pipe(image, height=self.args.height, width=self.args.width, num_frames=self.args.frames,
                              num_inference_steps=steps, decode_chunk_size=SEED_DECODE_CHUNK,
                              generator=torch.manual_seed(1), callback_on_step_end=on_step_end).frames[0]
                watch.enter(WRITING)
                export_to_video(frames, str(self.work / "seed.mp4"), fps=7)

            run(2)  # warm-up
            self.sync()
            started = time.perf_counter()
            run(self.args.steps)
            self.sync()
            seconds = time.perf_counter() - started
            peaks = watch.finish()
            denoising.remove()
            label = (f"fp16 + enable_model_cpu_offload, decode {SEED_DECODE_CHUNK}" if self.cuda
                     else f"float32 on the CPU (offload needs an accelerator), decode {SEED_DECODE_CHUNK}")
            row = {"plan": label, **self.measurement(seconds, step_times, peaks, estimates)}
            if estimate_error:
                row["estimate_error"] = estimate_error
            return row
        finally:
            if pipe is not None:
                pipe.remove_all_hooks()
            pipe = None  # its weights go before the next case
            if capped:
                self.uncap()
            self.free()

    def engine(self, *, memory_plan: str = "auto", capped: bool = False, tweak=None,
               compile_unet: bool = False) -> dict:
        import torch

        from video_gen import Generator
        from video_gen.events import DENOISING, StageEvent, StepEvent

        if capped:
            self.cap()
        generator = Generator(models_dir=self.models_dir, outputs_dir=self.work, device=self.args.device,
                              vram_gb=self.args.cap_gib if capped else None)
        watch = self.watch
        step_times: list[float] = []

        def on_event(event) -> None:
            if isinstance(event, (StageEvent, StepEvent)):
                watch.enter(event.stage)
            if isinstance(event, StepEvent) and event.stage == DENOISING:
                step_times.append(time.perf_counter())

        def timed():
            step_times.clear()
            watch.start()
            self.sync()
            started = time.perf_counter()
            result = generator.generate(self.request(self.args.steps, memory_plan=memory_plan), on_event=on_event)
            self.sync()
            return result, time.perf_counter() - started, watch.finish()

        try:
            generator.generate(self.request(2, memory_plan=memory_plan))  # warm-up: load, place, autotune
            pipe = generator.resident_pipeline
            # The family enters "denoising" without an event (the first step's event comes after the step)
            denoising = pipe.unet.register_forward_pre_hook(lambda module, args: watch.enter(DENOISING))
            extra = {}
            if compile_unet:
                # The forward, not the module call: the module call carries the job's hooks, which change per job
                pipe.unet.forward = torch.compile(pipe.unet.forward, backend=self.args.compile_backend)
                _, first_seconds, _ = timed()
                extra = {"compile_backend": self.args.compile_backend, "first_run_s": round(first_seconds, 3)}
            elif tweak is not None:
                tweak(pipe)
                generator.generate(self.request(2, memory_plan=memory_plan))  # re-tune outside the timing
            result, seconds, peaks = timed()
            denoising.remove()
            if compile_unet:
                extra["compile_s"] = round(extra["first_run_s"] - seconds, 3)
            plan = result.memory_plan
            return {"plan": plan.label(), **self.measurement(seconds, step_times, peaks, dict(plan.stage_bytes)),
                    **extra, "retries": result.retries, "frames": result.frames_written}
        finally:
            generator.unload()
            generator = None
            if compile_unet:
                torch._dynamo.reset()  # its caches keep the compiled UNet (and its weights) alive
            if capped:
                self.uncap()
            self.free()

    def channels_last(self, pipe) -> None:
        import torch

        for module in pipe.unet.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.to(memory_format=torch.channels_last)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def write_atomically(path: Path, data: dict) -> None:
    """Replace `path` in one step: a reader (or a killed run) sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(partial, path)


def summarize(rows: list[dict]) -> dict:
    """Ratios between rows of this run (only rows that finished)."""
    done = {row["case"]: row for row in rows if not row.get("error")}
    summary: dict = {}

    def ratio(name: str, numerator: str, denominator: str, field: str = "seconds") -> None:
        a, b = done.get(numerator, {}).get(field), done.get(denominator, {}).get(field)
        if a and b:
            summary[name] = round(a / b, 3)

    ratio("speedup_default_vs_seed", "seed", "default")
    ratio("speedup_capped_vs_seed_capped", "seed-capped", "capped")
    ratio("capped_over_uncapped_time", "capped", "default")
    ratio("seed_capped_over_seed_time", "seed-capped", "seed")
    ratio("peak_seed_over_default", "seed", "default", "max_memory_allocated")
    ratio("peak_seed_capped_over_capped", "seed-capped", "capped", "max_memory_allocated")
    ratio("speedup_compile_vs_default", "default", "compile")
    ratio("speedup_channels_last_vs_default", "default", "channels-last")
    if done.get("capped", {}).get("max_memory_allocated") is not None:
        summary["capped_peak_gib"] = round(done["capped"]["max_memory_allocated"] / GiB, 2)
    failed = {row["case"]: row["error"] for row in rows if row.get("error")}
    if failed:
        summary["failed"] = failed
    return summary


def gib(value) -> str:
    return f"{value / GiB:.2f}" if isinstance(value, (int, float)) else "-"


def print_table(rows: list[dict]) -> None:
    print(f"\n{'case':16} {'seconds':>8} {'s/step':>7} {'alloc GiB':>9} {'resv GiB':>8} {'minfree':>7} "
          f"{'est GiB':>7} {'floor':>6}  plan / error")
    for row in rows:
        if row.get("error"):
            print(f"{row['case']:16} {'-':>8} {'-':>7} {'-':>9} {'-':>8} {'-':>7} {'-':>7} {'-':>6}  {row['error']}")
            continue
        print(f"{row['case']:16} {row['seconds']:8.2f} {row['seconds_per_step'] or 0:7.3f} "
              f"{gib(row['max_memory_allocated']):>9} {gib(row['max_memory_reserved']):>8} "
              f"{gib(row['min_free_bytes']):>7} {gib(row['estimate_bytes']):>7} "
              f"{row['floor_fraction'] if row['floor_fraction'] is not None else '-':>6}  {row.get('plan', '')}")


def print_headline(rows: list[dict], cap_gib: float) -> None:
    """The seed's recipe against our default, uncapped and under the cap, from this run's rows."""
    done = {row["case"]: row for row in rows}
    for seed, ours, label in (("seed", "default", "uncapped"), ("seed-capped", "capped", f"under {cap_gib:g} GiB")):
        if seed not in done or ours not in done:
            continue
        a, b = done[seed], done[ours]
        if a.get("error") or b.get("error"):
            print(f"{label}: seed recipe {a.get('error') or 'ok'}; ours {b.get('error') or 'ok'}")
            continue
        line = f"{label}: seed recipe {a['seconds']:.2f} s, ours {b['seconds']:.2f} s ({a['seconds'] / b['seconds']:.2f}x)"
        if a.get("max_memory_allocated") and b.get("max_memory_allocated"):
            line += f"; peak {gib(a['max_memory_allocated'])} vs {gib(b['max_memory_allocated'])} GiB"
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a tiny SVD at 64x64, 8 frames, 3 steps (CPU, CI)")
    parser.add_argument("--device", help="cuda (the default where there is one) or cpu")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cap-gib", type=float, default=12.0, help="the memory cap of the capped cases")
    parser.add_argument("--cases", default="all", help="comma list of cases or groups (see above)")
    parser.add_argument("--model-dir", type=Path,
                        help="a folder to keep the random model in between calls (built there if missing)")
    parser.add_argument("--out", type=Path, help="the JSON file, or a folder for gpu_svd-DEVICE-TIME.json "
                                                 "(default bench/results/)")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile's backend for the compile case (aot_eager: the plumbing only, fast)")
    parser.add_argument("--budget-s", type=float,
                        help="start no case after this many seconds (its row says so): keeps a run inside a limit")
    args = parser.parse_args()
    began = time.perf_counter()

    import torch

    from video_gen import memory

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.tiny:
        args.frames, args.width, args.height, args.steps = 8, 64, 64, 3
    cases = expand_cases(args.cases, args.device)
    cuda = args.device.startswith("cuda")
    report = memory.probe(args.device)
    out = args.out or REPO / "bench" / "results"
    if out.suffix != ".json":
        out = out / f"gpu_svd-{report.kind}{'-tiny' if args.tiny else ''}-{datetime.now():%Y%m%d-%H%M%S}.json"

    import diffusers

    result = {
        "benchmark": "gpu_svd", "when": datetime.now().isoformat(timespec="seconds"), "tiny": args.tiny,
        "complete": False, "cases": cases, "device": report.to_dict(), "python": platform.python_version(),
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "job": {"frames": args.frames, "width": args.width, "height": args.height, "steps": args.steps,
                "cap_gib": args.cap_gib},
        "flops": None, "floor_s": None, "build_model_s": None, "rows": [], "summary": {},
        "targets": {"default_seconds_max": 7.0, "speedup_vs_seed_min": 1.3, "capped_peak_gib_max": 11.0,
                    "capped_over_uncapped_max": 1.5},
    }
    write_atomically(out, result)
    print(f"writing {out}", flush=True)

    with tempfile.TemporaryDirectory(prefix="gpu-svd-bench-") as folder:
        work = Path(folder)
        models_dir = args.model_dir or work / "models"
        models_dir.mkdir(parents=True, exist_ok=True)
        model_path, built_s = ensure_model(models_dir, args.tiny, args.frames)
        result["build_model_s"] = round(built_s, 1)
        photo = synthetic_photo(work / "photo.png", args.width, args.height)
        flops = count_flops(model_path, args.frames, args.width, args.height, args.steps, SEED_DECODE_CHUNK)
        result["flops"] = flops
        result["floor_s"] = floor_s = flops["total_flops"] / H100_DENSE_BF16_FLOPS if cuda else None
        write_atomically(out, result)
        bench = Bench(args, models_dir, model_path, photo, work, floor_s)

        for case in cases:
            row = {"case": case, "description": CASES[case], "error": None}
            elapsed = time.perf_counter() - began
            if args.budget_s is not None and elapsed > args.budget_s:
                row["error"] = f"not started: {elapsed:.0f} s of the run's {args.budget_s:.0f} s budget were spent"
            else:
                started = time.perf_counter()
                try:
                    row.update(bench.run_case(case))
                except Exception as error:  # one case's failure (out of memory included) is its row, not the run's end
                    traceback.print_exc()
                    row["error"] = f"{type(error).__name__}: {_first_line(error)}"
                row["case_wall_s"] = round(time.perf_counter() - started, 1)
            result["rows"].append(row)
            result["summary"] = summarize(result["rows"])
            write_atomically(out, result)
            print(json.dumps(row), flush=True)

    result["complete"] = True
    result["wall_s"] = round(time.perf_counter() - began, 1)
    write_atomically(out, result)
    print_table(result["rows"])
    print_headline(result["rows"], args.cap_gib)
    print(json.dumps(result["summary"]))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
