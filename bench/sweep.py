"""Is computing the image encoding / prompt embeddings once worth it in a seed-only sweep? Measured in one run.

Where only the seed varies, a sweep's cells share their picture and prompt, so their encodings could be made
once. What could be saved is bounded by the time each cell spends in those encoders, which this script
measures two ways:

1. On this machine, a seed-only sweep of `--cells` cells with the tiny test SVD through the engine (the model
   resident, as the sweep keeps it): per cell, the seconds inside the CLIP image encoder and the VAE encoder
   (forward hooks) against the cell's whole time; and that the model was loaded once.
2. At full size, without running it: the FLOPs (PyTorch's FlopCounterMode on fake tensors, as
   bench/gpu_svd.py counts them) of SVD-XT's CLIP image encoder, its VAE encoder, 25 UNet steps with CFG at
   1024x576 x 25 frames and the decode; and of SD1.5's CLIP text encoder (prompt + negative) against SD1.5's
   UNet on every frame of 512x512 x 16 frames, 25 steps with CFG (AnimateDiff adds motion modules to it).

Only the CLIP image embedding could be shared in SVD: the noise augmentation draws from the seed's generator
before the VAE encodes the picture, so that encoding is per seed (sharing it would change frames).

    python bench/sweep.py [--cells 6] [--out bench/results/sweep-DATE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure_tiny(cells: int) -> dict:
    """A seed-only sweep on the tiny SVD: seconds per cell and inside its encoders."""
    import numpy as np
    from PIL import Image

    from video_gen import Generator, GenerationRequest
    from video_gen.sweep import Sweep, make_axis, plan_sweep
    from tiny_models import build_tiny_svd

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        folder = Path(folder)
        build_tiny_svd(folder / "models" / "tiny-svd")
        picture = folder / "picture.png"
        Image.fromarray(np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)).save(picture)
        generator = Generator(models_dir=folder / "models", outputs_dir=folder / "outputs")
        base = GenerationRequest(image=str(picture), width=64, height=64, num_frames=8, num_inference_steps=10)
        generator.generate(base.replace(seed=1))  # load once, as a sweep finds the model resident
        plan = plan_sweep(generator, base, [make_axis("seed", list(range(2, 2 + cells)))])
        pipe = generator.resident_pipeline
        inside = {"image_encoder": 0.0, "vae_encoder": 0.0}
        hooks = []
        for name, module in (("image_encoder", pipe.image_encoder), ("vae_encoder", pipe.vae.encoder)):
            started = {}
            hooks.append(module.register_forward_pre_hook(
                lambda m, a, s=started: s.__setitem__("t", time.perf_counter())))
            hooks.append(module.register_forward_hook(
                lambda m, a, o, s=started, n=name: inside.__setitem__(n, inside[n] + time.perf_counter() - s["t"])))
        started = time.perf_counter()
        result = Sweep(generator, plan).run()
        sweep_s = time.perf_counter() - started
        for hook in hooks:
            hook.remove()
        cells_s = sum(cell.elapsed_s for cell in result.results)
        return {"cells": cells, "loads": generator.loads, "sweep_s": round(sweep_s, 3),
                "cells_s": round(cells_s, 3), "comparison_s": round(sweep_s - cells_s, 3),
                "image_encoder_s": round(inside["image_encoder"], 4), "vae_encoder_s": round(inside["vae_encoder"], 4),
                "shareable_share": round(inside["image_encoder"] / cells_s, 4),
                "all_encoders_share": round((inside["image_encoder"] + inside["vae_encoder"]) / cells_s, 4)}


def count_svd_xt() -> dict:
    """FLOPs of SVD-XT's parts for one cell at 1024x576, 25 frames, 25 steps (CFG batch 2), decode 8 at a time."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from bench.gpu_svd import svd_xt_image_encoder, svd_xt_unet, svd_xt_vae

    frames, width, height, steps = 25, 1024, 576, 25
    counts = {}
    with FakeTensorMode(), sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        encoder, vae, unet = svd_xt_image_encoder(), svd_xt_vae(), svd_xt_unet()
        with FlopCounterMode(display=False) as counter:
            encoder(torch.empty(1, 3, 224, 224))
        counts["clip_image_encoder"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            vae.encode(torch.empty(1, 3, height, width))
        counts["vae_encoder"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            unet(torch.empty(2, frames, 8, height // 8, width // 8), torch.tensor(10.0),
                 torch.empty(2, 1, 1024), torch.empty(2, 3), return_dict=False)
        counts["unet_25_steps"] = counter.get_total_flops() * steps
        with FlopCounterMode(display=False) as counter:
            for start in range(0, frames, 8):
                count = min(8, frames - start)
                vae.decode(torch.empty(count, 4, height // 8, width // 8), num_frames=count)
        counts["vae_decode"] = counter.get_total_flops()
    total = sum(counts.values())
    return {"flops": counts, "total": total, "shareable_share": counts["clip_image_encoder"] / total}


def count_animatediff() -> dict:
    """FLOPs of SD1.5's text encoder (prompt and negative prompt) against SD1.5's UNet run on every frame of a
    512x512 x 16-frame clip, 25 steps with CFG: AnimateDiff's UNet is that plus its motion modules, so the
    text encoder's true share is below the one printed (an upper bound)."""
    import torch
    from diffusers import UNet2DConditionModel
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import CLIPTextConfig, CLIPTextModel

    frames, side, steps = 16, 512, 25
    config = UNet2DConditionModel.load_config(ROOT / "video_gen" / "configs" / "sd15" / "unet")
    counts = {}
    with FakeTensorMode(), sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                            num_hidden_layers=12, max_position_embeddings=77, projection_dim=768))
        unet = UNet2DConditionModel.from_config(config)
        with FlopCounterMode(display=False) as counter:
            text(torch.zeros(2, 77, dtype=torch.long))  # prompt and negative prompt
        counts["clip_text_encoder"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            unet(torch.empty(2 * frames, 4, side // 8, side // 8), torch.tensor(10.0), torch.empty(2 * frames, 77, 768),
                 return_dict=False)
        counts["sd15_unet_25_steps_without_motion_modules"] = counter.get_total_flops() * steps
    total = sum(counts.values())
    return {"flops": counts, "total": total, "shareable_share": counts["clip_text_encoder"] / total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / f"sweep-{datetime.now():%Y%m%d-%H%M%S}.json")
    args = parser.parse_args()
    result = {"tiny_svd_cpu": measure_tiny(args.cells)}
    tiny = result["tiny_svd_cpu"]
    print(f"tiny SVD, {tiny['cells']} seed-only cells on the CPU: {tiny['cells_s']:.2f} s in cells "
          f"(+{tiny['comparison_s']:.2f} s for the comparison), model loaded {tiny['loads']}x; CLIP image encoder "
          f"{tiny['image_encoder_s']:.3f} s = {100 * tiny['shareable_share']:.2f} % of the cells' time "
          f"(with the per-seed VAE encoder: {100 * tiny['all_encoders_share']:.2f} %)")
    for name, count in (("svd_xt_full_size_flops", count_svd_xt), ("animatediff_full_size_flops", count_animatediff)):
        try:
            result[name] = counted = count()
        except (RuntimeError, TypeError, ValueError, NotImplementedError) as error:
            result[name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
            print(f"{name}: not counted ({result[name]['error']})")
            continue
        parts = ", ".join(f"{part} {flops / 1e12:.3f} TFLOP" for part, flops in counted["flops"].items())
        print(f"{name}: {parts}; the shareable encoder is {100 * counted['shareable_share']:.4f} % of a cell")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
