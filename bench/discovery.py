"""Model discovery before and after the model catalog (`models.Catalog`), measured in ONE run.

    .venv/bin/python bench/discovery.py [--files 2000] [--repeats 5] [--no-before] [--before c286343]

Places: a models folder holding one tiny real SVD model, and an `--extra-models-dir` ComfyUI-style tree of
`--files` files (LoRAs, checkpoints, VAEs, motion modules, embeddings, ControlNet folders with their sidecars,
custom_nodes, output pictures; at most 4 levels deep, which `EXTRA_DIR_DEPTH` searches). The Hugging Face
cache is an empty temporary folder, so the user's own is not scanned.

Measured: on a resident model (one warm-up job first), the time from calling `Generator.generate` to the
first denoising `StepEvent` (median of `--repeats` jobs), and how many times `video_gen.catalog.discover`
ran per job and for how long. Each tree runs in its own interpreter with that tree first on `sys.path`:
- before: the code of `--before` (default c286343, the last commit without the catalog), exported with
  `git archive` into a temporary folder (read-only for the repository: no worktree, nothing to clean up);
- after: this working tree, with the catalog as it is;
- after, rescan every lookup: this working tree with `Catalog.entries` forced to scan each time (sanity
  check: the saving comes from the catalog, not from other changes between the two trees).
The two interpreters stay up and take their jobs in turns (before, after, after-rescan, then the next round
starting one later), with one torch thread each (`--threads`), so that a shared, busy CPU weighs on every case
alike. Also printed: submit -> first UNet forward (the work before diffusers' first step), and the median time
of one scan. Target: under 100 ms after. The JSON goes to bench/results/discovery-TIME.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE = "c286343"  # the last commit before the catalog: every lookup scanned every place
MODEL = "tiny-svd"
# The tests' fast job (tests/conftest.py): 64x64, 8 frames, 3 steps.
FAST = dict(width=64, height=64, num_frames=8, num_inference_steps=3)
TARGET_MS = 100.0  # submit -> first denoising step on a resident model
RESULT_PREFIX = "DISCOVERY-RESULT "

# What a ComfyUI tree holds, by share of its files: (weight, kind). The shares follow a tree of a few hundred
# LoRAs with their preview/info sidecars, a few checkpoints, and custom nodes and outputs that hold most of
# the rest; about a third of the files are .safetensors whose header the scan reads.
TREE_MIX = (
    (22, "lora"), (18, "lora-sidecar"), (3, "checkpoint"), (2, "checkpoint-pickle"), (2, "vae"),
    (2, "motion-module"), (4, "embedding"), (5, "controlnet"), (1, "upscale"), (25, "custom-node"),
    (14, "output"), (2, "config"),
)


# ---- the places ---------------------------------------------------------------------------------------
def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _lora_keys(rng: random.Random) -> list[str]:
    """Tensor names of a kohya SD1.5 LoRA (a few of its ~800): unet and text-encoder down/up/alpha triples."""
    keys = []
    for _ in range(rng.randint(2, 4)):
        block = rng.choice([
            f"lora_unet_down_blocks_{rng.randint(0, 2)}_attentions_{rng.randint(0, 1)}_transformer_blocks_0_attn"
            f"{rng.randint(1, 2)}_to_{rng.choice('qkv')}",
            f"lora_unet_up_blocks_{rng.randint(1, 3)}_attentions_{rng.randint(0, 2)}_proj_in",
            f"lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_{rng.choice((0, 2))}",
            f"lora_te_text_model_encoder_layers_{rng.randint(0, 11)}_self_attn_{rng.choice('qkv')}_proj",
        ])
        keys += [f"{block}.alpha", f"{block}.lora_down.weight", f"{block}.lora_up.weight"]
    return keys


def _safetensors(path: Path, keys: list[str]) -> None:
    import torch
    from safetensors.torch import save_file

    tensor = torch.zeros(2, 2, dtype=torch.float16)
    save_file({key: tensor.clone() for key in dict.fromkeys(keys)}, str(path))


def build_tree(root: Path, files: int, seed: int = 0) -> dict[str, int]:
    """A ComfyUI-style tree of exactly `files` files under `root`; returns how many of each suffix."""
    rng = random.Random(seed)
    png = _tiny_png()
    weights, kinds = zip(*TREE_MIX)
    groups = ("sd15", "characters", "styles", "concepts", "clothing", "poses")
    nodes = ("ComfyUI-Manager", "ComfyUI-AnimateDiff-Evolved", "comfyui_controlnet_aux", "ComfyUI-VideoHelperSuite",
             "was-node-suite-comfyui", "ComfyUI-Impact-Pack")
    counts: dict[str, int] = {}
    for index in range(files):
        kind = rng.choices(kinds, weights)[0]
        name = f"{kind}_{index:05d}"
        if kind == "lora":
            path, keys = root / "models" / "loras" / rng.choice(groups) / f"{name}.safetensors", _lora_keys(rng)
        elif kind == "lora-sidecar":
            suffix = rng.choice((".preview.png", ".civitai.info", ".json", ".txt"))
            path, keys = root / "models" / "loras" / rng.choice(groups) / f"{name}{suffix}", None
        elif kind == "checkpoint":  # an SD1.5 checkpoint's layout: listed as a runnable single-file model
            keys = ["model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.encoder.conv_in.weight",
                    "cond_stage_model.transformer.text_model.final_layer_norm.weight"]
            folder = root / "models" / "checkpoints" / (rng.choice(groups) if rng.random() < 0.5 else "")
            path = folder / f"{name}.safetensors"
        elif kind == "checkpoint-pickle":
            path, keys = root / "models" / "checkpoints" / f"{name}.ckpt", None
        elif kind == "vae":
            path, keys = root / "models" / "vae" / f"{name}.safetensors", ["encoder.conv_in.weight",
                                                                           "decoder.conv_out.weight"]
        elif kind == "motion-module":
            keys = [f"down_blocks.{block}.motion_modules.0.temporal_transformer.norm.weight" for block in range(2)]
            path = root / "models" / "animatediff_models" / f"{name}.safetensors"
        elif kind == "embedding":
            suffix = rng.choice((".pt", ".safetensors"))
            path, keys = root / "models" / "embeddings" / f"{name}{suffix}", ["emb_params"] if suffix != ".pt" else None
        elif kind == "controlnet":  # diffusers ControlNet folders: a config.json that is not a model's
            folder = root / "models" / "controlnet" / f"control_v11_{index % 40:02d}"
            suffix = rng.choice(("config.json", "diffusion_pytorch_model.safetensors", f"{name}.yaml"))
            path, keys = folder / suffix, ["conv_in.weight", "controlnet_cond_embedding.conv_in.weight"]
            if path.exists():
                path = folder / f"{name}.txt"
        elif kind == "upscale":
            path, keys = root / "models" / "upscale_models" / f"{name}.pth", None
        elif kind == "custom-node":
            suffix = rng.choice((".py", ".py", ".json", ".txt", ".png", ".md"))
            folder = root / "custom_nodes" / rng.choice(nodes) / rng.choice(("nodes", "js", "examples"))
            path = folder / f"{name}{suffix}"
            keys = None
        elif kind == "output":
            path, keys = root / "output" / f"2026-11-{index % 28 + 1:02d}" / f"ComfyUI_{index:05d}_.png", None
        else:  # config
            path, keys = root / "models" / "configs" / f"{name}{rng.choice(('.yaml', '.json', '.txt'))}", None
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            _safetensors(path, keys)
        elif path.suffix == ".png":
            path.write_bytes(png)
        elif path.name == "config.json":
            path.write_text(json.dumps({"_class_name": "ControlNetModel", "in_channels": 4}))
        elif path.suffix in (".json", ".info"):
            path.write_text(json.dumps({"name": name, "trainedWords": [name], "index": index}))
        else:
            path.write_bytes(rng.randbytes(rng.randint(16, 512)))
        suffix = path.suffix or path.name
        counts[suffix] = counts.get(suffix, 0) + 1
    assert sum(counts.values()) == files == sum(1 for path in root.rglob("*") if path.is_file())
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def export_commit(commit: str, target: Path) -> Path:
    """The files of `commit` in `target` (git archive: reads the repository, changes nothing in it)."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def working_tree() -> dict:
    """What "after" measured: this checkout's commit and how many files differ from it (read-only git)."""
    def git(*command: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *command], capture_output=True, text=True).stdout.strip()

    changed = git("status", "--porcelain").splitlines()
    return {"head": git("rev-parse", "--short", "HEAD"), "changed_files": len(changed)}


# ---- one tree, in its own interpreter -----------------------------------------------------------------
def worker(spec: dict) -> None:
    """Run in a fresh interpreter with `spec["tree"]` first on sys.path: one warm-up job (loads the model), then
    one timed job per line read from stdin (`cached`, or `rescan`: the catalog forced to scan on every lookup),
    each answered with one JSON line on stdout."""
    tree = spec["tree"]
    sys.path.insert(0, tree)  # before anything imports video_gen: the venv's editable install points elsewhere
    import video_gen

    if not Path(video_gen.__file__).resolve().is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"imported {video_gen.__file__}, not the tree {tree}")
    import torch

    try:
        import video_gen.catalog as models
    except ImportError:  # a tree from before discovery was split out of models.py
        import video_gen.models as models
    from video_gen import GenerationRequest, Generator

    torch.set_num_threads(spec["threads"])
    scans: list[float] = []  # seconds of each discover() call
    original_discover = models.discover

    def counted_discover(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original_discover(*args, **kwargs)
        finally:
            scans.append(time.perf_counter() - started)

    models.discover = counted_discover  # resolve_model and Catalog look `discover` up in the module each call
    state = {"rescan": False}
    catalog_class = getattr(models, "Catalog", None)  # None before the catalog
    if catalog_class is not None:
        cached_entries = catalog_class.entries

        def entries(self):
            if state["rescan"]:
                with self._lock:
                    self._entries = None  # forget the last scan: every lookup scans every place, as before
            return cached_entries(self)

        catalog_class.entries = entries

    generator = Generator(models_dir=spec["models_dir"], outputs_dir=spec["outputs_dir"],
                          extra_models_dirs=[spec["extra_dir"]])
    seeds = iter(range(10_000))

    def job() -> dict:
        marks: dict[str, float] = {}
        hook = None
        # the resident pipeline (`_pipe` in trees before the engine's split)
        resident = getattr(generator, "resident_pipeline", None) or getattr(generator, "_pipe", None)
        unet = getattr(resident, "unet", None)
        if unet is not None:  # resident: also mark the first UNet forward (our overhead before diffusers' step)
            def mark_unet(module, inputs):  # a pre-hook that returns None leaves the inputs alone
                marks.setdefault("unet", time.perf_counter())

            hook = unet.register_forward_pre_hook(mark_unet)

        def on_event(event):
            if getattr(event, "kind", "") == "step" and event.stage == "denoising":
                marks.setdefault("step", time.perf_counter())

        before = len(scans)
        submitted = time.perf_counter()
        generator.generate(GenerationRequest(image=spec["photo"], model=MODEL, seed=next(seeds), **FAST),
                           on_event=on_event)
        finished = time.perf_counter()
        if hook is not None:
            hook.remove()
        return {"to_first_step_ms": (marks["step"] - submitted) * 1000,
                "to_first_unet_ms": (marks["unet"] - submitted) * 1000 if "unet" in marks else None,
                "job_ms": (finished - submitted) * 1000, "scans": len(scans) - before,
                "scan_ms": [seconds * 1000 for seconds in scans[before:]]}

    def answer(prefix: str, message: dict) -> None:
        print(prefix + json.dumps(message), flush=True)

    warm_up = job()
    answer("READY ", {"video_gen_file": video_gen.__file__, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "catalog": catalog_class is not None,
                      "warm_up_ms": round(warm_up["job_ms"], 1), "warm_up_scans": warm_up["scans"],
                      "entries_found": len(original_discover(spec["models_dir"], [spec["extra_dir"]]))})
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        state["rescan"] = command == "rescan"
        answer("JOB ", job())


class Worker:
    """One tree's interpreter, driven a job at a time so that the trees take turns on a busy machine."""

    def __init__(self, spec: dict, log: Path):
        self.label, self.log = spec["label"], log
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)], cwd=spec["tree"],
            env=dict(os.environ, PYTHONPATH=spec["tree"]), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log.open("w"), text=True)

    def read(self, prefix: str) -> dict:
        for line in self.process.stdout:
            if line.startswith(prefix):
                return json.loads(line[len(prefix):])
        self.process.wait()
        raise SystemExit(f"{self.label} failed (exit {self.process.returncode}):\n{self.log.read_text()[-4000:]}")

    def job(self, mode: str) -> dict:
        self.process.stdin.write(mode + "\n")
        self.process.stdin.flush()
        return self.read("JOB ")

    def close(self) -> None:
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait(timeout=60)


def summary(label: str, jobs: list[dict]) -> dict:
    scan_ms = [ms for row in jobs for ms in row["scan_ms"]]
    to_unet = [row["to_first_unet_ms"] for row in jobs]
    return {
        "label": label,
        "median_ms": statistics.median(row["to_first_step_ms"] for row in jobs),
        "runs_ms": [round(row["to_first_step_ms"], 1) for row in jobs],
        "median_to_first_unet_ms": statistics.median(to_unet) if None not in to_unet else None,
        "median_job_ms": statistics.median(row["job_ms"] for row in jobs),
        "scans_per_job": [row["scans"] for row in jobs],
        "discover_ms_per_job": statistics.median(sum(row["scan_ms"]) for row in jobs),
        "median_scan_ms": statistics.median(scan_ms) if scan_ms else None,
    }


# ---- the run --------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000, help="files in the extra models tree")
    parser.add_argument("--repeats", type=int, default=5, help="timed jobs per case (after one warm-up job)")
    parser.add_argument("--before", default=BEFORE, help="the commit measured as 'before'")
    parser.add_argument("--no-before", action="store_true", help="measure this working tree only")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per interpreter (1: on a shared CPU a second thread waits for cores "
                             "and adds noise to the step that ends the measurement)")
    parser.add_argument("--out", type=Path, help="the JSON file (default bench/results/discovery-TIME.json)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return 0

    sys.path.insert(0, str(REPO))
    from PIL import Image

    from tiny_models import build_tiny_svd

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as work:
        work = Path(work)
        # Nothing may reach the hub, and the user's caches stay untouched (the tests do the same).
        os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_CACHE=str(work / "hf-cache"), VIDEO_GEN_CACHE_DIR=str(work / "video-gen-cache"))
        (work / "hf-cache").mkdir()
        build_tiny_svd(work / "models" / MODEL)
        built = time.perf_counter()
        suffixes = build_tree(work / "ComfyUI", args.files)
        tree_s = time.perf_counter() - built
        photo = work / "photo.png"
        Image.effect_mandelbrot((128, 96), (-2, -1, 1, 1), 60).convert("RGB").save(photo)
        print(f"places: models folder with {MODEL}; extra tree {work / 'ComfyUI'}: {args.files} files "
              f"({', '.join(f'{count} {suffix}' for suffix, count in suffixes.items())}; built in {tree_s:.1f} s); "
              f"HF cache empty", flush=True)
        common = dict(models_dir=str(work / "models"), extra_dir=str(work / "ComfyUI"), photo=str(photo),
                      threads=args.threads)

        specs = []
        if not args.no_before:
            before_tree = export_commit(args.before, work / f"before-{args.before}")
            specs.append(dict(common, tree=str(before_tree), label=f"before ({args.before})",
                              outputs_dir=str(work / "outputs-before")))
        specs.append(dict(common, tree=str(REPO), label="after (catalog)", outputs_dir=str(work / "outputs-after")))
        workers = [Worker(spec, work / f"worker-{index}.log") for index, spec in enumerate(specs)]
        processes = []
        for spec, process in zip(specs, workers):
            info = process.read("READY ")
            processes.append(dict(info, label=spec["label"], tree=spec["tree"]))
            print(f"{spec['label']}: video_gen from {info['video_gen_file']} (warm-up job {info['warm_up_ms']:.0f} ms, "
                  f"{info['warm_up_scans']} scans; {info['entries_found']} entries found)", flush=True)
        after_worker = workers[-1]
        cases = [(process, "cached", spec["label"]) for process, spec in zip(workers, specs)]
        cases.append((after_worker, "rescan", "after, rescan every lookup"))
        jobs: dict[str, list[dict]] = {label: [] for _, _, label in cases}
        for repeat in range(args.repeats):  # in turns, each round starting with the next case
            for process, mode, label in cases[repeat % len(cases):] + cases[:repeat % len(cases)]:
                jobs[label].append(process.job(mode))
        for process in workers:
            process.close()

    runs = [summary(label, rows) for label, rows in jobs.items()]
    by_label = {run["label"]: run for run in runs}
    after, rescan = by_label["after (catalog)"], by_label["after, rescan every lookup"]
    before = None if args.no_before else by_label[f"before ({args.before})"]
    ratio = before["median_ms"] / after["median_ms"] if before else None

    print(f"\nsubmit -> first denoising step on a resident model, {args.files}-file extra tree, "
          f"median of {args.repeats} ({args.threads} torch thread(s), jobs taken in turns)")
    print(f"{'':28} {'median ms':>9} {'to UNet ms':>10} {'scans/job':>9} {'ms/scan':>8} {'scan ms/job':>11}"
          f"   runs (ms)")
    for run in runs:
        unet = run["median_to_first_unet_ms"]
        per_scan = "-" if run["median_scan_ms"] is None else round(run["median_scan_ms"], 1)
        scans = "/".join(str(count) for count in sorted(set(run["scans_per_job"])))
        print(f"{run['label']:28} {run['median_ms']:9.1f} {unet if unet is None else round(unet, 1):>10} {scans:>9} "
              f"{per_scan:>8} {run['discover_ms_per_job']:11.1f}   {run['runs_ms']}")
    if ratio is not None:
        print(f"before / after: {ratio:.2f}x ({before['median_ms'] - after['median_ms']:+.1f} ms saved per job)")
    met = after["median_ms"] < TARGET_MS
    print(f"target < {TARGET_MS:.0f} ms after: {'met' if met else 'NOT met'} ({after['median_ms']:.1f} ms); "
          f"total {time.perf_counter() - started:.0f} s")

    out = args.out or REPO / "bench" / "results" / f"discovery-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "threads": args.threads, "files": args.files,
        "tree_suffixes": suffixes, "repeats": args.repeats, "job": dict(FAST, model=MODEL),
        "before_commit": None if args.no_before else args.before, "after_tree": working_tree(),
        "target_ms": TARGET_MS, "target_met": met,
        "ratio_before_after": ratio, "before": before, "after": after, "after_rescan": rescan,
        "processes": processes,
    }, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
