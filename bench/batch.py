"""A batch of tiny jobs, locally and on Ray, measured in ONE run on one tiny real SVD model.

    .venv/bin/python bench/batch.py [--jobs 8] [--workers 2] [--steps 3] [--size 64] [--frames 8]

(a) `video-gen batch` locally: one resident `Generator` in this process (torch on every core), one job at a time
(a') the same with torch on one thread: the workers' setting, so that (b)/(a') shows what Ray itself adds
(b) the same batch on Ray: a local cluster on loopback, `--workers` workers of one core each, each holding its
    own resident `Generator` (`batch_ray.run_ray`, the `--ray local` path)

Printed: each path's wall time and throughput (jobs/s), the throughput ratio (b)/(a), and the per-job overhead of
each path: a job's time from being handed out (the batch's "started" event) to being recorded ("finished"),
minus the seconds the engine itself reports for it (`elapsed_s`): the runner, the transport, the results file.
The Ray overhead over the local one is the figure the target is for (<= 0.5 s a job). The fixed cost of starting
Ray and its workers (each loads torch and the model once) is printed apart: a batch of hundreds pays it once.
On a node with N GPUs the ratio should approach N (one worker per GPU); this 2-core machine has no such GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


class Clock:
    """Per-line times from a batch's events: handed out -> recorded, and the engine's own elapsed_s."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.overhead: dict[int, float] = {}
        self.finished: list[float] = []

    def __call__(self, event) -> None:
        now = time.perf_counter()
        if event.kind == "started":
            self.started[event.line] = now
        elif event.kind == "finished" and event.entry["status"] == "success":
            self.overhead[event.line] = now - self.started[event.line] - event.entry["elapsed_s"]
            self.finished.append(now)

    def steady_rate(self) -> float:
        """Jobs a second after the first one was recorded (so start-up costs are left out)."""
        return (len(self.finished) - 1) / (self.finished[-1] - self.finished[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()

    import numpy as np
    import ray
    from PIL import Image

    from video_gen import Generator, batch, batch_ray
    from tiny_models import build_tiny_svd

    with tempfile.TemporaryDirectory(prefix="video-gen-bench-batch-") as folder:
        folder = Path(folder)
        build_tiny_svd(folder / "models" / "tiny-svd")
        (folder / "pictures").mkdir()
        for number in range(args.jobs):
            pixels = (np.random.default_rng(number).random((args.size, args.size, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / "pictures" / f"{number:03d}.png")
        options = dict(width=args.size, height=args.size, num_frames=args.frames, num_inference_steps=args.steps,
                       seed=7)
        lines = batch.read_batch([folder / "pictures"], options)

        # A warm-up job: the local path's model load is a fixed cost too (each Ray worker's is counted apart)
        generator = Generator(models_dir=folder / "models", outputs_dir=folder / "local")
        warm_started = time.perf_counter()
        generator.generate(lines[0].request.replace(output_path=str(folder / "warm.mp4")))
        local_warm = time.perf_counter() - warm_started

        local_clock = Clock()
        started = time.perf_counter()
        summary = batch.run_local(lines, generator, batch.Results(folder / "local.jsonl"), on_event=local_clock)
        local_wall = time.perf_counter() - started
        assert len(summary.ran) == args.jobs, summary.line()

        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        single_clock = Clock()
        started = time.perf_counter()
        summary = batch.run_local(lines, generator, batch.Results(folder / "single.jsonl"), on_event=single_clock)
        single_wall = time.perf_counter() - started
        torch.set_num_threads(threads)
        assert len(summary.ran) == args.jobs, summary.line()

        started = time.perf_counter()
        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
        ray_init = time.perf_counter() - started
        ray_clock = Clock()
        started = time.perf_counter()
        summary = batch_ray.run_ray(lines, batch.Results(folder / "ray.jsonl"), models_dir=folder / "models",
                                    outputs_dir=folder / "ray", cpus_per_worker=1, max_workers=args.workers,
                                    on_event=ray_clock)
        ray_wall = time.perf_counter() - started
        ray.shutdown()
        assert len(summary.ran) == args.jobs, summary.line()

    local_overhead = statistics.median(local_clock.overhead.values())
    ray_overhead = statistics.median(ray_clock.overhead.values())
    import os

    load = os.getloadavg()[0]
    print(f"{args.jobs} jobs of {args.frames} frames {args.size}x{args.size}, {args.steps} steps; "
          f"Ray: {args.workers} workers of one core each; {os.cpu_count()} cores, load average {load:.1f}"
          + (" (a busy machine: torch with several threads suffers most, see (a) against (a'))"
             if load > (os.cpu_count() or 1) else ""))
    print(f"(a) local: {local_wall:.2f} s, {args.jobs / local_wall:.2f} jobs/s, after the first job "
          f"{local_clock.steady_rate():.2f} jobs/s ({threads} threads; its model load before: {local_warm:.2f} s)")
    print(f"(a') local, 1 thread: {single_wall:.2f} s, {args.jobs / single_wall:.2f} jobs/s, after the first job "
          f"{single_clock.steady_rate():.2f} jobs/s")
    print(f"(b) Ray:   {ray_wall:.2f} s, {args.jobs / ray_wall:.2f} jobs/s with the workers' start, after the first "
          f"job {ray_clock.steady_rate():.2f} jobs/s (ray.init before: {ray_init:.2f} s)")
    print(f"throughput ratio (b)/(a): {local_wall / ray_wall:.2f} with the workers' start, "
          f"{ray_clock.steady_rate() / local_clock.steady_rate():.2f} after the first job; "
          f"(b)/(a'): {single_wall / ray_wall:.2f} and {ray_clock.steady_rate() / single_clock.steady_rate():.2f}")
    print(f"per-job overhead, median: local {local_overhead:.3f} s, Ray {ray_overhead:.3f} s; Ray over local "
          f"{ray_overhead - local_overhead:.3f} s a job (target <= 0.5 s)")
    print(f"a Ray worker's first job also waits for its process to start (torch, the model): the most overhead "
          f"of one job on Ray was {max(ray_clock.overhead.values()):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
