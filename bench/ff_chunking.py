"""One denoising step of a full-width AnimateDiff or ModelScope UNet with feed-forward chunking off, chunked
the old way (every block along dim 0) and the way `memory.set_job_options` chunks now (temporal blocks
per frame), with the number of feed-forward calls each makes (chunked along dim 0, a temporal block runs one
tiny feed-forward per batch x height x width position: tens of thousands a step at 512x512).

    .venv/bin/python bench/ff_chunking.py                           # AnimateDiff, 256x256, 8 frames, CPU
    .venv/bin/python bench/ff_chunking.py --family modelscope
    .venv/bin/python bench/ff_chunking.py --size 512 --frames 16 --device cuda   # the case in the issue
    .venv/bin/python bench/ff_chunking.py --size 512 --frames 16 --count-only    # its calls, on fake tensors

Random weights (the default configs of diffusers' `UNetMotionModel`, SD1.5's layout with motion modules,
and `UNet3DConditionModel`, ModelScope T2V's) cost the real FLOPs; the batch is two (classifier-free
guidance). Each setting runs once to warm up and count calls; then the settings take turns, best of three.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build(family: str, device: str, dtype):
    import torch
    from diffusers import UNet3DConditionModel, UNetMotionModel

    torch.manual_seed(0)
    with torch.device(device):
        if family == "animatediff":
            unet = UNetMotionModel(cross_attention_dim=768)  # SD1.5's text width
        else:
            unet = UNet3DConditionModel()
    return (unet if dtype == torch.float32 else unet.to(dtype)).eval()


def old_chunking(unet) -> None:
    """What `set_job_options` did before: every block chunked along dim 0."""
    for module in unet.modules():
        if hasattr(module, "set_chunk_feed_forward"):
            module.set_chunk_feed_forward(chunk_size=1, dim=0)


def main() -> int:
    import contextlib

    import torch
    from diffusers.models.attention import FeedForward

    from video_gen import memory

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=("animatediff", "modelscope"), default="animatediff")
    parser.add_argument("--size", type=int, default=256, help="picture width and height in pixels")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="CPU threads (1 gives steadier numbers on a shared machine)")
    parser.add_argument("--count-only", action="store_true",
                        help="fake tensors: count the feed-forward calls at any size without arithmetic (the "
                             "seconds are then PyTorch's dispatch of those calls alone)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.float32 if args.device == "cpu" else torch.float16
    dtype_name = str(dtype).removeprefix("torch.")
    fake = contextlib.nullcontext()
    if args.count_only:
        from torch._subclasses.fake_tensor import FakeTensorMode

        fake, args.repeats = FakeTensorMode(), 1
    with fake:
        started = time.perf_counter()
        unet = build(args.family, args.device, dtype)
        print(f"{args.family}: {sum(p.numel() for p in unet.parameters()) / 1e6:.0f} M parameters, built in "
              f"{time.perf_counter() - started:.0f} s; {args.size}x{args.size}, {args.frames} frames, batch 2, "
              f"{args.device}{' (fake tensors)' if args.count_only else ''}, torch {torch.__version__}", flush=True)

        latent = args.size // 8
        sample = torch.randn(2, 4, args.frames, latent, latent, device=args.device, dtype=dtype)
        context = torch.randn(2, 77, unet.config.cross_attention_dim, device=args.device, dtype=dtype)
        if args.family == "animatediff":  # AnimateDiff's pipeline hands its UNet one prompt embedding per frame
            context = context.repeat_interleave(args.frames, dim=0)
        timestep = torch.tensor(500, device=args.device)
        pipe = SimpleNamespace(unet=unet)
        settings = {
            "off": lambda: memory.set_job_options(pipe, memory.MemoryPlan(device=args.device, dtype=dtype_name)),
            "old: all dim 0": lambda: old_chunking(unet),
            "new: temporal per frame": lambda: memory.set_job_options(pipe, memory.MemoryPlan(
                device=args.device, dtype=dtype_name, forward_chunking=True)),
        }

        def step() -> float:
            if args.device.startswith("cuda") and not args.count_only:
                torch.cuda.synchronize()
            began = time.perf_counter()
            with torch.no_grad():
                unet(sample, timestep, encoder_hidden_states=context)
            if args.device.startswith("cuda") and not args.count_only:
                torch.cuda.synchronize()
            return time.perf_counter() - began

        calls = {}
        results = dict.fromkeys(settings, float("inf"))
        for name, apply in settings.items():
            apply()
            count = [0]
            hooks = [module.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1))
                     for module in unet.modules() if isinstance(module, FeedForward)]
            seconds = step()  # warm-up, counting feed-forward calls
            for hook in hooks:
                hook.remove()
            calls[name] = count[0]
            if args.count_only:
                results[name] = seconds
        # The settings take turns, best of `--repeats`: a shared machine's noise hits them alike.
        for _ in range(0 if args.count_only else args.repeats):
            for name, apply in settings.items():
                apply()
                results[name] = min(results[name], step())
    for name, seconds in results.items():
        print(f"  {name:24} {seconds:7.2f} s a step, {calls[name]:6d} feed-forward calls", flush=True)
    print(f"  old/new: {results['old: all dim 0'] / results['new: temporal per frame']:.2f}x; "
          f"new/off: {results['new: temporal per frame'] / results['off']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
