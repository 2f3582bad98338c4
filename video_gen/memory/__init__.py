"""Memory policy, all of it, in one package (as ComfyUI keeps it in `model_management.py`): what the device
has, what a job needs, which plan fits, how a plan is applied, and what to do when the device runs out anyway.

A `MemoryPlan` is a point on a ladder from fastest to cheapest. Every rung is a diffusers mechanism:
    offload  none → `enable_model_cpu_offload` → `enable_group_offload` (block level, CUDA streams)
             → `enable_sequential_cpu_offload`
    the VAE decode chunk (frames decoded at once), the UNet's feed-forward chunking
    (`set_chunk_feed_forward`), the attention backend (PyTorch SDPA, or xformers when installed),
    and optional fp8 weight storage (`enable_layerwise_casting`; opt-in only, because it changes
    the frames and we promise exact reproduction).
The planner estimates each rung's peak memory and picks the fastest that fits the free memory with
headroom; on out-of-memory the engine steps down to the next rung and tries again.

Importing this package imports no torch and probes nothing.

The package: `device` (what the device has: probe, out-of-memory test, freeing), `estimate` (what a job needs
under a plan), `apply` (placing a pipeline the way a plan says), `finishing` (the prompt enhancer beside a
resident model, an upscaler's budget: imported as `memory.finishing`), and here the ladder itself (which plans exist,
which one fits, which is next on out-of-memory) and the max-length table built on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .apply import *  # noqa: F401,F403
from .device import *  # noqa: F401,F403
from .device import GiB, HEADROOM, DeviceReport, gigabytes  # noqa: F401
from .estimate import *  # noqa: F401,F403
from .estimate import (FP8_SUFFIX, MEMORY_PLANS, OFFLOADS, JobShape, MemoryPlan, ModelWeights,  # noqa: F401
                       estimate, estimate_stages, parse_plan_choice)


def offloads_for(device: str) -> tuple[str, ...]:
    """Offload levels a device can use: all on CUDA; model offload on MPS; none on the CPU."""
    kind = device.split(":")[0]
    return {"cuda": OFFLOADS, "mps": ("none", "model")}.get(kind, ("none",))


def decode_chunks(requested: int) -> list[int]:
    """The requested decode chunk, then halvings down to 1: [8, 4, 2, 1]."""
    chunks = [requested]
    while chunks[-1] > 1:
        chunks.append(chunks[-1] // 2)
    return chunks


def ladder(device: str, dtype: str, weights: ModelWeights, shape: JobShape, *, choice: str = "auto",
           attention: str = "sdpa", total_bytes: int | None = None) -> list[MemoryPlan]:
    """The useful plans for a job, fastest first.

    Speed order: by `SLOWDOWN` (below). A plan that needs at least as much memory in every stage as a
    faster one is dropped.
    """
    base, fp8 = parse_plan_choice(choice)
    levels = offloads_for(device)
    if base != "auto":
        if base not in levels:
            raise ValueError(f"{base!r} offload needs a GPU; on {device} use one of {', '.join(('auto',) + levels)}")
        levels = levels[levels.index(base):]
    candidates = [
        MemoryPlan(device=device, dtype=dtype, offload=offload, decode_chunk_size=chunk, forward_chunking=chunking,
                   attention=attention, fp8_weights=fp8, total_bytes=total_bytes)
        for offload in levels for chunking in (False, True)
        for chunk in decode_chunks(min(shape.decode_chunk_size, shape.frames))
    ]
    candidates.sort(key=lambda plan: slowdown(plan, shape))  # stable: ties keep the order above
    plans: list[MemoryPlan] = []
    for plan in candidates:
        stages = estimate_stages(plan, weights, shape)
        if not any(all(stages[stage] >= kept.stage_bytes[stage] for stage in STAGES) for kept in plans):
            plans.append(replace(plan, estimate_bytes=max(stages.values()), stage_bytes=stages))
    return plans


# How much slower each mechanism makes a job, as a share of the job's time: the order the ladder is
# tried in. Estimates to be replaced by `bench/gpu_svd.py`'s rows (owed): model offload moves each
# model over PCIe once per job (~0.3 s of a 3-minute 3060 job); feed-forward chunking runs the
# feed-forward layers in 50 small matrix products instead of one; group offload overlaps most copies
# with compute on a stream; sequential offload copies every layer at every step.
SLOWDOWN = {"none": 0.0, "model": 0.01, "group": 0.15, "sequential": 1.0}
FORWARD_CHUNKING_SLOWDOWN = 0.10
DECODE_HALVING_SLOWDOWN = 0.005


def slowdown(plan: MemoryPlan, shape: JobShape) -> float:
    halvings = len(decode_chunks(min(shape.decode_chunk_size, shape.frames))) - len(decode_chunks(plan.decode_chunk_size))
    return (SLOWDOWN[plan.offload] + (FORWARD_CHUNKING_SLOWDOWN if plan.forward_chunking else 0.0)
            + DECODE_HALVING_SLOWDOWN * halvings)


def choose(plans: list[MemoryPlan], budget_bytes: int) -> MemoryPlan:
    """The fastest plan whose estimate fits the budget; the cheapest when none does (the run may still fit)."""
    for plan in plans:
        if plan.estimate_bytes <= budget_bytes:
            return replace(plan, budget_bytes=budget_bytes)
    return replace(min(plans, key=lambda plan: plan.estimate_bytes), budget_bytes=budget_bytes)


def next_cheaper(plans: list[MemoryPlan], current: MemoryPlan, stage: str | None = None, *,
                 decode_only: bool = False) -> MemoryPlan | None:
    """The first slower plan that needs less memory in `stage` (the one that ran out), or None.

    With `decode_only` the plan must be placed the same way (decode-time retries keep the denoised
    latents and only shrink the decode chunk).
    """
    position = next((index for index, plan in enumerate(plans) if _same(plan, current)), -1)
    stage = stage if stage in STAGES else None
    needed = current.stage_bytes.get(stage, current.estimate_bytes) if stage else current.estimate_bytes
    for plan in plans[position + 1:]:
        if decode_only and (plan.placement != current.placement or plan.forward_chunking != current.forward_chunking
                            or plan.decode_chunk_size >= current.decode_chunk_size):
            continue
        if (plan.stage_bytes.get(stage, plan.estimate_bytes) if stage else plan.estimate_bytes) < needed:
            return replace(plan, budget_bytes=current.budget_bytes)
    return None


def _same(a: MemoryPlan, b: MemoryPlan) -> bool:
    return (a.placement, a.decode_chunk_size, a.forward_chunking) == (b.placement, b.decode_chunk_size,
                                                                      b.forward_chunking)


def max_frames(weights: ModelWeights, family: str, width: int, height: int, budget_bytes: int, plan: MemoryPlan,
               limit: int = 720) -> int:
    """The most frames one pass can make under `plan` within `budget_bytes` (0 if not even one)."""
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        shape = JobShape(family, middle, width, height, plan.decode_chunk_size)
        if estimate(plan, weights, shape) <= budget_bytes:
            low = middle
        else:
            high = middle - 1
    return low


# ---- the max-length table -------------------------------------------------------------------------
PRESET_RESOLUTIONS = ((1024, 576), (768, 768), (512, 512))  # the page's presets (portrait costs as landscape)

@dataclass(frozen=True)
class LengthRow:
    model: str
    family: str
    width: int
    height: int
    fps: int
    fastest: MemoryPlan  # with the most frames it allows
    fastest_frames: int
    cheapest: MemoryPlan
    cheapest_frames: int
    # A family that makes any length in sections (FramePack): the frames of a section, and the request's limit
    section_frames: int = 0
    limit: int = 720

    def length_text(self, frames: int) -> str:
        """'25 frames (3.6 s)', or 'does not fit'; for a family of sections what fits per section."""
        if self.section_frames:
            if frames <= self.section_frames:  # less than one section (its decode of 16 frames at once) fits
                return f"a {self.section_frames}-frame section does not fit"
            if frames >= self.limit:
                return f"any length ({self.section_frames}-frame sections fit)"
            return f"{frames} frames ({frames / self.fps:.1f} s; {self.section_frames}-frame sections)"
        return f"{frames} frames ({frames / self.fps:.1f} s)" if frames else "does not fit"

    def to_dict(self) -> dict:
        return {"model": self.model, "family": self.family, "width": self.width, "height": self.height,
                "fps": self.fps, "fastest_plan": self.fastest.label(), "fastest_frames": self.fastest_frames,
                "cheapest_plan": self.cheapest.label(), "cheapest_frames": self.cheapest_frames,
                "section_frames": self.section_frames,
                "fastest_length": self.length_text(self.fastest_frames),
                "cheapest_length": self.length_text(self.cheapest_frames)}


def length_rows(name: str, family: str, weights: ModelWeights, defaults: dict, *, device: str, dtype: str,
                budget_bytes: int, total_bytes: int | None, attention: str = "sdpa",
                resolutions=PRESET_RESOLUTIONS) -> list[LengthRow]:
    """For each resolution: the most frames one pass can make under the fastest plan and under the cheapest."""
    from ..families import spec_for
    from ..planner import MAX_FRAMES

    sections = spec_for(family).section_frames  # a family of sections: its memory is one section's
    limit = MAX_FRAMES if sections else 720
    rows = []
    for width, height in resolutions:
        shape = JobShape(family, int(defaults.get("num_frames", 25)), width, height,
                         int(defaults.get("decode_chunk_size", 8)))
        plans = ladder(device, dtype, weights, shape, attention=attention, total_bytes=total_bytes)
        fastest, cheapest = plans[0], min(plans, key=lambda plan: plan.estimate_bytes)
        rows.append(LengthRow(
            model=name, family=family, width=width, height=height, fps=int(defaults.get("fps", 7)),
            fastest=fastest, fastest_frames=max_frames(weights, family, width, height, budget_bytes, fastest, limit),
            cheapest=cheapest,
            cheapest_frames=max_frames(weights, family, width, height, budget_bytes, cheapest, limit),
            section_frames=sections, limit=limit,
        ))
    return rows


def format_length_table(rows: list[LengthRow]) -> list[str]:
    """Plain-text lines (the command line's `info` and the page's panel)."""
    lines = [f"{'model':22} {'family':12} {'size':>9}  {'fastest plan':24} {'cheapest plan':24}"]
    for row in rows:
        lines.append(f"{row.model[:22]:22} {row.family:12} {row.width:>4}x{row.height:<4}  "
                     f"{row.length_text(row.fastest_frames):24} {row.length_text(row.cheapest_frames):24}")
    if rows:
        lines.append(f"fastest plan: {rows[0].fastest.summary()}; cheapest: {rows[0].cheapest.summary()}. Frames of "
                     f"one pass at the model's default fps; longer videos chain passes (README: length).")
        if any(row.section_frames for row in rows):
            lines.append("A model made in sections (FramePack) makes any length in one pass: its memory is one "
                         "section's, so its rows say whether a section fits.")
    return lines
