"""Running one case of bench/gpu/cases.py and measuring it: the runner's side that touches torch and the app.

Three kinds of case:
- "svd": a case of bench/gpu_svd.py's `Bench` (the seed's recipe, our engine capped or not, a plan forced,
  compile, channels-last), each after a 2-step warm-up job, as that benchmark has always run them;
- "job": one job through the app's engine (`Generator.generate`), its model loaded by the job (the load is
  timed apart, `load_s`), under the cap or not, with the case's request fields (LoRAs, fp8 storage, a cache
  hook, two stages, a control video). A case with `compare_to` in `after` gets its speedup against that row of
  the same call;
- "upscale": `video-gen upscale` of a synthetic video (finishing.upscale_video): decode, every frame through the
  upscaler (tiled as the free memory allows), H.264 encode; `s_per_step` is the median seconds per frame.

Every row has the same fields (`ROW_FIELDS`) whatever the kind; bench/report.py reads them. The cap is
`torch.cuda.set_per_process_memory_fraction` with the engine planning for it; on the CPU (the tiny dry run)
nothing can enforce it, so the engine only plans for it and the row says `cap_enforced: false`.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import build  # noqa: E402
from cases import CAP_GIB, WITHIN_CAP_GIB, Case  # noqa: E402

GiB = 2**30
SVD_TINY = dict(frames=8, width=64, height=64, steps=3)
SVD_FULL = dict(frames=25, width=1024, height=576, steps=25)
ROW_FIELDS = ("seconds", "s_per_step", "s_per_video_s", "steps", "load_s", "peak_reserved_gib", "peak_allocated_gib", "min_free_gib",
              "estimate_gib", "plan", "retries", "capped", "cap_enforced", "within_cap", "speedup")


def gib(value) -> float | None:
    return round(value / GiB, 3) if isinstance(value, (int, float)) else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def unavailable(case: Case, device: str) -> str | None:
    """Why the app cannot run `case` here (a request field it does not take yet, a plan the device lacks), or
    None. Checked before anything is built, so a case waiting for the app costs no device time."""
    from video_gen import GenerationRequest, InvalidRequest
    from video_gen.memory import offloads_for

    if case.kind == "svd":
        name = case.params["case"]
        if name.startswith("plan:") and name.split(":", 1)[1] not in offloads_for(device):
            return f"the {name.split(':', 1)[1]} plan needs a GPU"
        return None
    if case.kind == "upscale":
        try:
            from video_gen.upscale import import_spandrel

            import_spandrel()
        except (ImportError, InvalidRequest) as error:
            return f"the app cannot upscale here ({_first_line(error)})"
        return None
    fields = {key: case.params[key] for key in ("memory_plan", "speed", "upscale") if key in case.params}
    try:
        GenerationRequest(**fields).validate()
    except InvalidRequest as error:
        return f"the app does not take it yet ({error})"
    return None


class Session:
    """One call's state: the device, the models folder, the pictures, and the generator kept loaded between
    consecutive cases of the same model and cap (a cache hook's case then finds the model its baseline loaded)."""

    def __init__(self, device: str, tiny: bool, models_dir: Path, cap_gib: float = CAP_GIB):
        import torch

        self.torch = torch
        self.device, self.tiny, self.models_dir, self.cap_gib = device, tiny, models_dir, cap_gib
        self.cuda = device.startswith("cuda")
        self.work = Path(tempfile.mkdtemp(prefix="video-gen-next-"))
        self.rows: dict[str, dict] = {}  # this call's rows by case id
        self._generator = None
        self._generator_key: tuple | None = None
        self._photos: dict[tuple[int, int], Path] = {}

    # ---- set-up and clean-up ------------------------------------------------------------------------------
    def warm_up_device(self) -> None:
        """Initialise CUDA, cuBLAS and cuDNN once, so the first case does not pay for the process's first kernels."""
        if not self.cuda:
            return
        torch = self.torch
        a = torch.randn(1024, 1024, device=self.device, dtype=torch.bfloat16)
        (a @ a).sum().item()
        torch.nn.functional.scaled_dot_product_attention(a[None, None], a[None, None], a[None, None]).sum().item()
        torch.nn.functional.conv3d(torch.randn(1, 4, 4, 16, 16, device=self.device),
                                   torch.randn(4, 4, 3, 3, 3, device=self.device)).sum().item()
        torch.cuda.synchronize()

    def photo(self, width: int, height: int) -> Path:
        if (width, height) not in self._photos:
            import gpu_svd

            self._photos[width, height] = gpu_svd.synthetic_photo(self.work / f"photo-{width}x{height}.png",
                                                                  width, height)
        return self._photos[width, height]

    def control_video(self, frames: int, width: int, height: int) -> Path:
        """A control video (VACE) of `frames` frames at 16 fps and the job's size: the photo panning, H.264."""
        path = self.work / f"control-{frames}x{width}x{height}.mp4"
        if not path.is_file():
            import numpy as np
            from PIL import Image

            from video_gen.control import write_control_video

            photo = np.asarray(Image.open(self.photo(width, height)).convert("RGB"))
            write_control_video(np.stack([np.roll(photo, 4 * index, axis=1) for index in range(frames)]), path,
                                fps=16)
        return path

    def release(self, keep: tuple | None = None) -> None:
        """Drop the kept generator unless it is `keep`'s, and give its memory back."""
        if self._generator is not None and self._generator_key != keep:
            self._generator.unload()
            self._generator, self._generator_key = None, None
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()

    def close(self) -> None:
        """Drop the generator and this call's pictures and videos."""
        import shutil

        self.release()
        shutil.rmtree(self.work, ignore_errors=True)

    def cap(self, capped: bool, cap_gib: float | None = None) -> bool:
        """Hold this process to the cap (`cap_gib`, else the call's; CUDA); returns whether it is enforced."""
        if not (capped and self.cuda):
            return False
        total = self.torch.cuda.get_device_properties(self.torch.device(self.device)).total_memory
        self.torch.cuda.set_per_process_memory_fraction(min(1.0, (cap_gib or self.cap_gib) * GiB / total))
        return True

    def uncap(self) -> None:
        if self.cuda:
            self.torch.cuda.set_per_process_memory_fraction(1.0)

    # ---- one case -------------------------------------------------------------------------------------------
    def run(self, case: Case) -> dict:
        if case.kind == "svd":
            self.release()
            return self.svd_case(case)
        if case.kind == "job":
            return self.job_case(case)
        if case.kind == "upscale":
            self.release()
            return self.upscale_case(case)
        raise ValueError(f"{case.id}: unknown kind {case.kind!r}")

    def upscale_case(self, case: Case) -> dict:
        """`video-gen upscale` of a `frames`-frame panning clip: seconds end to end, the median per frame, peaks."""
        import numpy as np

        from video_gen import Generator, video_io
        from video_gen.events import UPSCALING, StepEvent
        from video_gen.finishing import upscale_video
        from video_gen.images import open_image

        torch, cuda = self.torch, self.cuda
        frames, width, height = case.params["tiny_size"] if self.tiny else case.params["size"]
        picture = np.asarray(open_image(self.photo(width + frames * 4, height)))
        clip = self.work / f"clip-{frames}x{width}x{height}.mp4"
        video_io.write_video(np.stack([picture[:, index * 4:index * 4 + width] for index in range(frames)]), clip,
                             fps=24)
        generator = Generator(models_dir=self.models_dir, outputs_dir=self.work / "outputs", device=self.device)
        times: list[float] = []

        def on_event(event) -> None:
            if isinstance(event, StepEvent) and event.stage == UPSCALING:
                times.append(time.perf_counter())

        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = upscale_video(generator, clip, case.params["upscaler"], on_event=on_event)
        seconds = time.perf_counter() - started
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        plan = result.metadata["upscaled"].get("plan", {})
        return {
            "seconds": round(seconds, 3), "s_per_step": round(statistics.median(gaps), 4) if gaps else None,
            "steps": result.frames, "load_s": None,
            "peak_reserved_gib": gib(torch.cuda.max_memory_reserved()) if cuda else None,
            "peak_allocated_gib": gib(torch.cuda.max_memory_allocated()) if cuda else None,
            "min_free_gib": None, "estimate_gib": None, "retries": 0, "capped": False, "cap_enforced": False,
            "within_cap": None, "speedup": None, "frames": result.frames,
            "plan": f"tiles of {plan['tile']} px" if plan.get("tile") else "whole frames",
            "job": f"{frames} frames {width}x{height} -> {result.width}x{result.height}",
            "frames_per_s": round(result.frames / seconds, 3), "upscaled": result.metadata["upscaled"],
        }

    def svd_case(self, case: Case) -> dict:
        size = SVD_TINY if self.tiny else SVD_FULL
        args = Namespace(device=self.device, cap_gib=self.cap_gib,
                         compile_backend="aot_eager" if self.tiny else "inductor", **size)
        model_path = build.folder(self.models_dir, "svd-xt", self.tiny)
        bench = svd_bench(args, self.models_dir, model_path, self.photo(size["width"], size["height"]), self.work,
                          None)
        capped = case.params["case"] in ("capped", "seed-capped")
        detail = bench.run_case(case.params["case"])
        row = {
            "seconds": detail.get("seconds"), "s_per_step": detail.get("seconds_per_step"),
            "steps": detail.get("steps"), "load_s": None,
            "peak_reserved_gib": gib(detail.get("max_memory_reserved")),
            "peak_allocated_gib": gib(detail.get("max_memory_allocated")),
            "min_free_gib": gib(detail.get("min_free_bytes")), "estimate_gib": gib(detail.get("estimate_bytes")),
            "plan": detail.get("plan"), "retries": len(detail.get("retries") or []), "capped": capped,
            "cap_enforced": capped and self.cuda, "speedup": None,
            "job": f"{size['frames']} frames {size['width']}x{size['height']}, {size['steps']} steps",
            "detail": detail,
        }
        row["within_cap"] = _within_cap(row)
        return row

    def job_case(self, case: Case) -> dict:
        from video_gen import GenerationRequest, Generator

        params = case.params
        capped = bool(params.get("capped"))
        cap_gib = float(params.get("cap_gib", self.cap_gib))  # a case's own cap (LTX-2's 16 GiB), else the call's
        frames, width, height = params["tiny_size"] if self.tiny else params["size"]
        key = (case.model, capped, cap_gib)
        self.release(keep=key)
        enforced = self.cap(capped, cap_gib)
        try:
            if self._generator is None:
                self._generator = Generator(models_dir=self.models_dir, outputs_dir=self.work / "outputs",
                                            device=self.device, vram_gb=cap_gib if capped else None)
                self._generator_key = key
            fields = {name: params[name] for name in ("memory_plan", "speed", "upscale", "loras") if name in params}
            if "steps" in params:
                fields["num_inference_steps"] = params["steps"]
            if params.get("control"):  # VACE: the control video; the photo is its reference picture
                fields["control"] = str(self.control_video(frames, width, height))
            request = GenerationRequest.from_dict(dict(
                image=str(self.photo(width, height)), model=build.folder(self.models_dir, case.model, self.tiny).name,
                num_frames=frames, width=width, height=height, seed=1, prompt=params.get("prompt", ""),
                interpolation=1, **fields))
            row = self.timed_job(self._generator, request)
        finally:
            self.uncap()
        row.update(capped=capped, cap_enforced=enforced, job=f"{frames} frames {width}x{height}",
                   cap_gib=cap_gib if capped else None)
        row["within_cap"] = _within_cap(row)
        baseline = self.rows.get(case.compare_to) if case.compare_to in case.after else None
        if baseline and baseline.get("s_per_step") and row.get("s_per_step"):
            row["speedup"] = round(baseline["s_per_step"] / row["s_per_step"], 3)
        if capped:  # the next case starts from an empty device, as the cap's user would
            self.release()
        return row

    def timed_job(self, generator, request) -> dict:
        """One job: seconds end to end and with the model loaded, the median step, the peaks, the lowest free
        memory (sampled at every stage and step), the plan and its estimate."""
        from video_gen.events import DENOISING, StageEvent, StepEvent

        torch, cuda = self.torch, self.cuda
        step_times: list[float] = []
        lowest: list[int] = []

        def on_event(event) -> None:
            if isinstance(event, StepEvent) and event.stage == DENOISING:
                step_times.append(time.perf_counter())
            if cuda and isinstance(event, (StageEvent, StepEvent)):
                lowest.append(torch.cuda.mem_get_info()[0])

        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = generator.generate(request, on_event=on_event)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        gaps = [later - earlier for earlier, later in zip(step_times, step_times[1:])]
        plan = result.memory_plan
        load_s = result.timings.get("loading_model", 0.0)
        video_s = result.frames_written / result.request.fps  # seconds of video it made
        return {
            "seconds": round(seconds, 3), "seconds_loaded": round(seconds - load_s, 3), "load_s": round(load_s, 3),
            "video_s": round(video_s, 3), "s_per_video_s": round((seconds - load_s) / video_s, 3),
            "s_per_step": round(statistics.median(gaps), 4) if gaps else None,
            "steps": result.request.num_inference_steps,
            "peak_reserved_gib": gib(torch.cuda.max_memory_reserved()) if cuda else None,
            "peak_allocated_gib": gib(torch.cuda.max_memory_allocated()) if cuda else None,
            "min_free_gib": gib(min(lowest)) if lowest else None,
            "estimate_gib": gib(plan.estimate_bytes) if plan else None,
            "plan": plan.label() if plan else None, "retries": len(result.retries), "speedup": None,
            "timings_s": {stage: round(value, 3) for stage, value in result.timings.items()},
            "guidance": result.request.max_guidance_scale, "frames": result.frames_written,
            "loras": [lora.name for lora in result.request.loras],
            "run": result.info().get("run"),
            "sound": result.info().get("audio"),  # the job's sound (families that make it): rate and length
        }


def _within_cap(row: dict) -> bool | None:
    """The issues' bar: half a GiB under the cap (11.5 GiB under 12)."""
    if not row.get("capped") or row.get("peak_reserved_gib") is None:
        return None
    cap = row.get("cap_gib") or CAP_GIB
    return row["peak_reserved_gib"] <= WITHIN_CAP_GIB + (cap - CAP_GIB)


def svd_bench(*args):
    """bench/gpu_svd.py's Bench; on the CPU a capped case plans for the cap without enforcing it (nothing can)."""
    import gpu_svd

    class Bench(gpu_svd.Bench):
        def cap(self) -> None:
            if self.cuda:
                super().cap()

    return Bench(*args)
