"""Switching LoRAs on a resident model versus loading the base model fresh with the other LoRA, in ONE run.

    .venv/bin/python bench/lora_switch.py [--repeats 5] [--device cpu|cuda] [--models-dir DIR]

On a tiny real AnimateDiff model (`build_tiny_sd15` + `build_tiny_motion_adapter`, random weights) and two real
PEFT LoRAs on its UNet and text encoder (`build_tiny_lora`), through the engine's own code (`families.animatediff.
load`, `loras.resolve`, `loras.apply`):

(a) switch: the resident pipeline has both LoRAs loaded as adapters; a job with the other LoRA only changes
    the active adapter and its strength (`set_adapters`), what `Generator` does between two jobs;
(b) first use: the resident pipeline loads a LoRA it has not seen (`load_lora_weights`) and activates it;
(c) fresh: what a job would cost without residency: load the base model and its motion adapter from disk,
    then load and activate the LoRA.
Prints the medians and the ratios (a)/(c) and (b)/(c). Target: (a)/(c) <= 0.10.

`--models-dir` takes a folder with an SD1.5 base `sd15/`, a motion adapter `adapter/` and LoRAs
`loras/a.safetensors`, `loras/b.safetensors` (a full-size run on a GPU: owed, no GPU was lent for it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def median_seconds(function, repeats: int, before=lambda: None) -> float:
    samples = []
    for _ in range(repeats):
        before()
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def build(folder: Path) -> Path:
    from tiny_models import build_tiny_lora, build_tiny_motion_adapter, build_tiny_sd15

    build_tiny_sd15(folder / "sd15")
    build_tiny_motion_adapter(folder / "adapter")
    build_tiny_lora(folder / "sd15", folder / "loras" / "a.safetensors", parts=("unet", "text_encoder"), seed=1)
    build_tiny_lora(folder / "sd15", folder / "loras" / "b.safetensors", parts=("unet", "text_encoder"), seed=2)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models-dir", type=Path, help="an sd15/, adapter/ and loras/{a,b}.safetensors (default: tiny)")
    args = parser.parse_args()

    import torch
    from diffusers.utils import logging as diffusers_logging

    from video_gen import loras
    from video_gen.families import animatediff
    from video_gen.loras import LoraChoice
    from video_gen.catalog import Catalog

    diffusers_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="lora-switch-") as temporary:
        folder = args.models_dir or build(Path(temporary))
        catalog = Catalog(folder)
        model = catalog.resolve("sd15", motion_adapter="adapter")
        dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
        a, b = (loras.resolve((LoraChoice(name, 0.8),), catalog, animatediff.SPEC, model_name=model.name,
                              models_dir=folder)[0] for name in ("a", "b"))

        def fresh_with_b():
            pipe = animatediff.load(model, args.device, dtype).to(args.device)
            loras.apply(pipe, b)
            return pipe

        fresh_with_b()  # warm-up: imports, file cache
        fresh = median_seconds(fresh_with_b, args.repeats)

        resident = animatediff.load(model, args.device, dtype).to(args.device)
        loras.apply(resident, a)
        loras.apply(resident, b)  # both loaded: switching is now only set_adapters
        state = {"next": a}

        def switch():
            loras.apply(resident, state["next"])
            state["next"] = b if state["next"] is a else a

        switched = median_seconds(switch, max(args.repeats, 20))

        def forget_b():  # the resident pipeline without b's adapter, so that the next apply loads it
            if b[0].adapter_name in loras.loaded_adapters(resident):
                resident.delete_adapters([b[0].adapter_name])
                loras._state[resident].loaded.remove(b[0].adapter_name)
            loras.apply(resident, a)

        first_use = median_seconds(lambda: loras.apply(resident, b), args.repeats, before=forget_b)
        assert len(loras.loaded_adapters(resident)) == 2
    result = {
        "device": args.device, "repeats": args.repeats, "model": "tiny" if args.models_dir is None else str(folder),
        "fresh_load_with_lora_s": round(fresh, 4), "switch_s": round(switched, 5), "first_use_s": round(first_use, 4),
        "switch_over_fresh": round(switched / fresh, 4), "first_use_over_fresh": round(first_use / fresh, 4),
        "target_switch_over_fresh": 0.10,
    }
    print(f"fresh load of base + LoRA: {fresh:.3f} s; switch on the resident model: {switched * 1000:.1f} ms "
          f"({switched / fresh:.1%} of a fresh load; target <= 10%); a new LoRA on the resident model: "
          f"{first_use:.3f} s ({first_use / fresh:.1%})", file=sys.stderr)
    print(json.dumps(result))
    return 0 if switched / fresh <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
