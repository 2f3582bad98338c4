"""Memory policy, all of it (STYLE.md: ComfyUI's `model_management.py`): what the device has, what a job
needs, which plan fits, how a plan is applied, and what to do when the device runs out anyway.

A `MemoryPlan` is a point on a ladder from fastest to cheapest. Every rung is a diffusers mechanism:
    offload  none → `enable_model_cpu_offload` → `enable_group_offload` (block level, CUDA streams)
             → `enable_sequential_cpu_offload`
    the VAE decode chunk (frames decoded at once), the UNet's feed-forward chunking
    (`set_chunk_feed_forward`), the attention backend (PyTorch SDPA, or xformers when installed),
    and optional fp8 weight storage (`enable_layerwise_casting`; opt-in only, because it changes
    the frames and we promise exact reproduction).
The planner estimates each rung's peak memory and picks the fastest that fits the free memory with
headroom; on out-of-memory the engine steps down to the next rung and tries again.

Importing this module imports no torch and probes nothing.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

GiB = 2**30

# Offload levels, fastest first. "auto" lets the planner choose; a "+fp8" suffix adds fp8 weight storage.
OFFLOADS = ("none", "model", "group", "sequential")
MEMORY_PLANS = ("auto",) + OFFLOADS
FP8_SUFFIX = "+fp8"
OFFLOAD_LABELS = {
    "none": "everything on the GPU",
    "model": "model offload",
    "group": "group offload",
    "sequential": "sequential offload",
}

# ---- the estimator's constants -----------------------------------------------------------------
# Each family's activation bytes are in its spec (`FamilySpec.memory`, families/spec.py), with where they were
# measured; SVD's come from `python bench/memory_constants.py`. These are the device's own:
# What the CUDA context's kernels, cuBLAS/cuDNN workspaces and allocator rounding take beyond tensors,
# and the share of free memory kept back for fragmentation. Until the GPU run calibrates them these are
# conservative: the planner would rather pick a slower plan than crash (and a crash only steps down).
RUNTIME_OVERHEAD_BYTES = 768 * 2**20
HEADROOM = 0.10

# The component that denoises, per family (its weights stay resident for the whole denoising loop).
DENOISERS = ("unet", "transformer")


def parse_plan_choice(choice: str) -> tuple[str, bool]:
    """'model+fp8' -> ('model', True). Raises ValueError naming what is allowed."""
    base, _, suffix = choice.partition("+")
    if base not in MEMORY_PLANS or suffix not in ("", "fp8"):
        allowed = ", ".join(MEMORY_PLANS)
        raise ValueError(f"must be one of {allowed}, optionally with {FP8_SUFFIX} (e.g. model{FP8_SUFFIX}); got {choice!r}")
    return base, suffix == "fp8"


# ---- the device --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceReport:
    device: str  # "cuda:0", "mps" or "cpu"
    name: str
    total_bytes: int  # device memory (system RAM for the CPU)
    free_bytes: int
    ram_total_bytes: int
    ram_available_bytes: int
    compute_capability: str | None = None
    attention: tuple[str, ...] = ()  # backends that ran a test call: "sdpa", "xformers"
    torch_version: str = ""
    cuda_version: str | None = None
    # What this process already holds in PyTorch's CUDA cache (the resident model, cached blocks): not free
    # to other programs, but ours to reuse, so it counts towards a job's budget.
    reusable_bytes: int = 0

    @property
    def kind(self) -> str:
        return self.device.split(":")[0]

    def budget(self, vram_gb: float | None = None) -> int:
        """Bytes a job may use: the free memory and what we hold (or `vram_gb`, to plan for another card),
        less headroom."""
        available = int(vram_gb * GiB) if vram_gb else self.free_bytes + self.reusable_bytes
        return int(available * (1 - HEADROOM))

    def capacity(self, vram_gb: float | None = None) -> int:
        """The device's memory (or `vram_gb`'s), for plan labels such as '12 GB GPU: …'."""
        return int(vram_gb * GiB) if vram_gb else self.total_bytes

    def lines(self) -> list[str]:
        lines = [f"device: {self.device} ({self.name})"]
        if self.kind == "cpu":
            lines.append(f"memory: {gigabytes(self.ram_available_bytes)} available of {gigabytes(self.ram_total_bytes)} RAM")
        else:
            lines.append(f"memory: {gigabytes(self.free_bytes)} free of {gigabytes(self.total_bytes)}; "
                         f"RAM {gigabytes(self.ram_available_bytes)} available of {gigabytes(self.ram_total_bytes)}")
        if self.compute_capability:
            lines.append(f"compute capability: {self.compute_capability}, CUDA {self.cuda_version}")
        lines.append(f"attention: {', '.join(self.attention) or 'none working'}; torch {self.torch_version}")
        return lines

    def to_dict(self) -> dict:
        return asdict(self)


def probe(device: str) -> DeviceReport:
    """What `device` has now. Cheap (no model), but it initialises CUDA: call it when a job needs it."""
    import torch

    ram_total, ram_available = _ram()
    kind = device.split(":")[0]
    common = dict(ram_total_bytes=ram_total, ram_available_bytes=ram_available, torch_version=torch.__version__,
                  attention=_attention_backends(device))
    if kind == "cuda":
        index = torch.device(device).index or 0
        free, total = torch.cuda.mem_get_info(index)
        props = torch.cuda.get_device_properties(index)
        return DeviceReport(device=f"cuda:{index}", name=props.name, total_bytes=total, free_bytes=free,
                            compute_capability=f"{props.major}.{props.minor}", cuda_version=torch.version.cuda,
                            reusable_bytes=torch.cuda.memory_reserved(index), **common)
    if kind == "mps":
        # Unified memory: what Metal recommends for one process, less what it already holds.
        total = int(torch.mps.recommended_max_memory())
        free = max(total - int(torch.mps.driver_allocated_memory()), 0)
        return DeviceReport(device="mps", name="Apple GPU (MPS)", total_bytes=total, free_bytes=free, **common)
    return DeviceReport(device="cpu", name=_cpu_name(), total_bytes=ram_total, free_bytes=ram_available, **common)


def _attention_backends(device: str) -> tuple[str, ...]:
    import importlib.util

    import torch

    working = []
    try:
        query = torch.zeros(1, 1, 8, 16, device=device, dtype=torch.float32 if device == "cpu" else torch.float16)
        torch.nn.functional.scaled_dot_product_attention(query, query, query)
        working.append("sdpa")
    except RuntimeError:
        pass
    if device.startswith("cuda") and importlib.util.find_spec("xformers") is not None:
        try:
            import xformers.ops

            query = torch.zeros(1, 8, 1, 16, device=device, dtype=torch.float16)
            xformers.ops.memory_efficient_attention(query, query, query)
            working.append("xformers")
        except (ImportError, RuntimeError, NotImplementedError):
            pass
    return tuple(working)


def _ram() -> tuple[int, int]:
    """(total, available) system RAM in bytes, from /proc/meminfo or sysconf."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        return int(fields["MemTotal"].split()[0]) * 1024, int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} threads"
    except OSError:
        pass
    import platform

    return platform.processor() or "CPU"


# ---- what a job needs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelWeights:
    """Parameter counts of a model's components, read from safetensors headers (no weights loaded)."""

    numel: dict[str, int]  # component -> parameters
    largest_block: dict[str, int]  # component -> parameters of its largest top-level block (group offload)
    largest_tensor: int  # parameters of the largest single tensor (sequential offload)

    def bytes(self, component: str, itemsize: int) -> int:
        return self.numel.get(component, 0) * itemsize

    @property
    def denoiser(self) -> str:
        return next((name for name in DENOISERS if name in self.numel), max(self.numel, key=self.numel.get))

    @classmethod
    def from_model(cls, model) -> ModelWeights:
        """From a ModelInfo: a diffusers folder (one subfolder per component) or a single file, plus an
        AnimateDiff model's motion adapter (its modules join the UNet)."""
        files = _component_files(Path(model.path))
        adapter = getattr(model, "motion_adapter", None)
        if adapter:
            files.setdefault("unet", []).extend(sum(_component_files(Path(adapter)).values(), []))
        return cls.from_headers({component: [_header(file) for file in paths] for component, paths in files.items()})

    @classmethod
    def from_modules(cls, modules: dict) -> ModelWeights:
        """From instantiated torch modules (the benchmark's full-size random models)."""
        headers = {name: [{key: {"shape": list(tensor.shape)} for key, tensor in module.state_dict().items()}]
                   for name, module in modules.items()}
        return cls.from_headers(headers)

    @classmethod
    def from_headers(cls, headers: dict[str, list[dict]]) -> ModelWeights:
        numel, largest_block, largest_tensor = {}, {}, 0
        for component, parts in headers.items():
            blocks: dict[str, int] = {}
            total = 0
            for header in parts:
                for key, entry in header.items():
                    if key == "__metadata__":
                        continue
                    count = 1
                    for dim in entry["shape"]:
                        count *= dim
                    total += count
                    largest_tensor = max(largest_tensor, count)
                    pieces = key.split(".")
                    block = ".".join(pieces[:2]) if len(pieces) > 2 and pieces[1].isdigit() else pieces[0]
                    blocks[block] = blocks.get(block, 0) + count
            numel[component] = total
            largest_block[component] = max(blocks.values(), default=0)
        return cls(numel=numel, largest_block=largest_block, largest_tensor=largest_tensor)


def safetensors_header(path: str | os.PathLike) -> dict:
    """The JSON header of a .safetensors file: `models.read_safetensors_header`, the one reader."""
    from .models import read_safetensors_header

    return read_safetensors_header(path)


def _component_files(path: Path) -> dict[str, list[Path]]:
    """Weight files by component: a single file counts as the denoiser (a checkpoint holds all of a model)."""
    if path.is_file():
        return {"unet": [path]}
    files = {}
    for folder in sorted(child for child in path.iterdir() if child.is_dir()):
        chosen = _variant_files(folder)
        if chosen:
            files[folder.name] = chosen
    top = _variant_files(path)  # a motion adapter folder keeps its weights at the top
    if top:
        files["unet"] = top
    return files


def _header(file: Path) -> dict:
    """A safetensors header; for a pickle checkpoint (opt-in only), one tensor the size of the file in fp16."""
    if file.suffix == ".safetensors":
        return safetensors_header(file)
    return {"weights": {"shape": [file.stat().st_size // 2]}}


def _variant_files(folder: Path) -> list[Path]:
    """One copy of a component's weights: the plain files, or the fp16 variant where that is all there is."""
    files = sorted(folder.glob("*.safetensors")) or sorted(
        file for pattern in ("*.bin", "*.ckpt", "*.pt") for file in folder.glob(pattern))
    plain = [file for file in files if ".fp16." not in file.name]
    return plain or files


@dataclass(frozen=True)
class JobShape:
    """What decides a job's activations."""

    family: str
    frames: int
    width: int
    height: int
    decode_chunk_size: int

    @property
    def constants(self):
        """The family's activation constants (`FamilySpec.memory`)."""
        from .families import spec_for

        return spec_for(self.family).memory

    @property
    def latent_tokens(self) -> int:
        return self.constants.latent_tokens(self.frames, self.width, self.height)


# ---- plans --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryPlan:
    device: str
    dtype: str  # "float16", "bfloat16", "float32"
    offload: str = "none"
    decode_chunk_size: int = 8
    forward_chunking: bool = False
    attention: str = "sdpa"
    fp8_weights: bool = False
    estimate_bytes: int = 0  # the peak over stages
    stage_bytes: dict[str, int] = field(default_factory=dict, compare=False)  # the estimate of each stage
    budget_bytes: int | None = None
    total_bytes: int | None = None  # the device's memory, for the label

    @property
    def placement(self) -> tuple:
        """What is fixed when the pipeline is placed; changing it means placing it again."""
        return (self.device, self.dtype, self.offload, self.fp8_weights, self.attention)

    @property
    def itemsize(self) -> int:
        return 4 if self.dtype == "float32" else 2

    def label(self, *, with_device: bool = True) -> str:
        """One line for people: '12 GB GPU: model offload, decode 4 frames at a time, ~10.6 GB'."""
        text = f"{self.summary()}, ~{self.estimate_bytes / GiB:.1f} GB"
        if not with_device:
            return text
        kind = self.device.split(":")[0]
        where = {"cuda": "GPU", "mps": "Apple GPU", "cpu": "RAM"}.get(kind, kind)
        if not self.total_bytes:
            where = "CPU" if kind == "cpu" else where
        else:
            where = f"{self.total_bytes / GiB:.0f} GB {where}"
        return f"{where}: {text}"

    def summary(self) -> str:
        """The mechanisms alone: 'model offload, decode 4 frames at a time, chunked feed-forward'."""
        on_cpu = self.device.split(":")[0] == "cpu" and self.offload == "none"
        parts = ["on the CPU" if on_cpu else OFFLOAD_LABELS[self.offload],
                 f"decode {self.decode_chunk_size} frame{'s' if self.decode_chunk_size > 1 else ''} at a time"]
        if self.forward_chunking:
            parts.append("chunked feed-forward")
        if self.fp8_weights:
            parts.append("fp8 weights")
        if self.attention != "sdpa":
            parts.append(self.attention)
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {**asdict(self), "label": self.label()}


STAGES = ("loading_model", "encoding_image", "denoising", "decoding")


def estimate_stages(plan: MemoryPlan, weights: ModelWeights, shape: JobShape) -> dict[str, int]:
    """Peak device bytes of each stage of a job under `plan`: resident weights plus that stage's activations."""
    size = plan.itemsize
    denoiser = weights.denoiser
    denoiser_weights = weights.numel.get(denoiser, 0) * (1 if plan.fp8_weights else size)
    others = {name: count * size for name, count in weights.numel.items() if name != denoiser}
    vae = others.get("vae", 0)
    encoders = max((bytes_ for name, bytes_ in others.items() if name != "vae"), default=0)  # image/text encoders

    constants = shape.constants
    unet_activations = constants.denoise_base_bytes + constants.denoise_bytes_per_token * shape.latent_tokens * size // 2
    if plan.forward_chunking:
        unet_activations = int(unet_activations * (1 - constants.forward_chunking_saving))
    pixels = shape.width * shape.height
    decode_activations = (constants.decode_bytes_per_pixel * min(plan.decode_chunk_size, shape.frames) * pixels
                          * size // 2)
    encode_activations = constants.encode_base_bytes + constants.encode_bytes_per_pixel * pixels * size // 2

    if plan.offload == "none":  # everything resident all the time
        resident = denoiser_weights + sum(others.values())
        weights_at = dict.fromkeys(STAGES, resident)
    elif plan.offload == "model":  # one component on the device at a time
        weights_at = {"loading_model": 0, "encoding_image": max(encoders, vae), "denoising": denoiser_weights,
                      "decoding": vae}
    elif plan.offload == "group":  # one block on the device and the next one prefetched on a stream
        def group(name: str, full: int) -> int:
            itemsize = 1 if plan.fp8_weights and name == denoiser else size
            return min(full, 2 * weights.largest_block.get(name, 0) * itemsize)

        weights_at = {"loading_model": 0, "denoising": group(denoiser, denoiser_weights),
                      "decoding": group("vae", vae),
                      "encoding_image": max((group(name, bytes_) for name, bytes_ in others.items()), default=0)}
    else:  # sequential: one layer at a time
        layer = 2 * weights.largest_tensor * size
        weights_at = {"loading_model": 0, "encoding_image": layer, "denoising": layer, "decoding": layer}
    activations = {"loading_model": 0, "encoding_image": encode_activations, "denoising": unet_activations,
                   "decoding": decode_activations}
    overhead = RUNTIME_OVERHEAD_BYTES if plan.device != "cpu" else 0
    return {stage: int(weights_at[stage] + activations[stage] + overhead) for stage in STAGES}


def estimate(plan: MemoryPlan, weights: ModelWeights, shape: JobShape) -> int:
    """Peak device bytes of a job under `plan`."""
    return max(estimate_stages(plan, weights, shape).values())


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


# ---- applying a plan ----------------------------------------------------------------------------
def apply_plan(pipe, plan: MemoryPlan):
    """Place a freshly loaded (CPU) pipeline on the device the way `plan` says, with diffusers' mechanisms."""
    import torch

    device = torch.device(plan.device)
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if plan.fp8_weights and denoiser is not None:
        denoiser.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=getattr(torch, plan.dtype))
    if plan.offload == "none":
        pipe.to(device)
    elif plan.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif plan.offload == "group":
        enable_group_offload(pipe, device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    if plan.attention == "xformers":
        pipe.enable_xformers_memory_efficient_attention()
    set_job_options(pipe, plan)
    return pipe


def group_offload_options(device, *, streamed: bool = True) -> dict:
    """diffusers' group-offload arguments for `device`: block by block, the next block prefetched on a CUDA
    stream. `record_stream` lets a block's weights be freed without the host waiting for the compute
    stream (with `record_stream=False` diffusers synchronises the host once per block); diffusers 0.42.1
    allows it only with `use_stream`, streams only on an accelerator, and streams only with one block a group."""
    import torch

    streamed = streamed and device.type == "cuda"
    return dict(onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
                num_blocks_per_group=1, use_stream=streamed, record_stream=streamed)


def enable_group_offload(pipe, device) -> None:
    """`pipe.enable_group_offload`, except for models the pipeline calls through `encode`/`decode`
    (autoencoders), which get:
    - every child as a block: diffusers hooks a model's `forward` unless its class names its blocks
      (`_group_offload_block_modules`); SVD's `AutoencoderKLTemporalDecoder` names none (diffusers 0.42.1),
      so its weights never reached the GPU;
    - no stream: SVD's pipeline casts its VAE to float32 to encode and back (`force_upcast`), and streamed
      offload copies the pinned float16 weights it made at setup back in, under float32 inputs. The VAE
      runs a few times a job, on big tensors: a stream would hide nothing worth hiding."""
    import torch
    from diffusers.hooks import apply_group_offloading

    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        if hasattr(component, "decode"):  # an autoencoder (every diffusers one supports group offload)
            options = group_offload_options(device, streamed=False)
            component.enable_group_offload(**options, block_modules=_group_offload_blocks(component))
        elif hasattr(component, "enable_group_offload"):  # the denoiser: called through forward
            component.enable_group_offload(**group_offload_options(device))
        else:  # an image or text encoder from transformers: the pipeline calls its forward
            apply_group_offloading(module=component, **group_offload_options(device))


def _group_offload_blocks(model) -> list[str] | None:
    """The blocks of a model entered through `encode`/`decode`; None leaves diffusers' own choice."""
    if getattr(model, "_group_offload_block_modules", None):
        return None
    return [name for name, child in model.named_children() if next(child.parameters(), None) is not None]


# Temporal transformers see (batch x height x width, frames, channels): AnimateDiff's motion modules and
# ModelScope's temporal attention (diffusers 0.42.1). SVD's `TemporalBasicTransformerBlock` chunks along
# frames by itself, whatever it is told.
TEMPORAL_TRANSFORMERS = frozenset({"AnimateDiffTransformer3D", "TransformerTemporalModel"})


def set_job_options(pipe, plan: MemoryPlan) -> None:
    """What may change between jobs without placing the pipeline again: the UNet's feed-forward chunking."""
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if denoiser is None:
        return
    chunk = 1 if plan.forward_chunking else None
    temporal = {id(block) for parent in denoiser.modules() if type(parent).__name__ in TEMPORAL_TRANSFORMERS
                for block in parent.modules()}
    for module in denoiser.modules():
        if hasattr(module, "set_chunk_feed_forward"):
            # Spatial blocks see (batch x frames, pixels, channels): one feed-forward per image (dim 0).
            # Temporal blocks chunked on dim 0 ran one per latent pixel, ~50,000 tiny feed-forwards a step
            # at 512x512 (issue 11): chunk them per frame (dim 1), as diffusers does for SVD's.
            module.set_chunk_feed_forward(chunk_size=chunk, dim=1 if id(module) in temporal else 0)


def default_attention(report: DeviceReport) -> str:
    return "xformers" if "xformers" in report.attention else "sdpa"


# ---- out of memory --------------------------------------------------------------------------------
# What cuBLAS and cuDNN say when the GPU is too full for their workspaces (PyTorch raises these as plain
# RuntimeErrors, not `torch.OutOfMemoryError`): a cheaper plan fixes them like any other out of memory.
ALLOCATION_FAILURES = ("CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's `torch.OutOfMemoryError`; a RuntimeError saying so (MPS's 'MPS backend out of memory', CUDA's
    'CUDA error: out of memory', raised as `torch.AcceleratorError` by torch >= 2.8); or cuBLAS/cuDNN failing
    to allocate their workspaces on a full GPU (`CUBLAS_STATUS_ALLOC_FAILED`, `CUDNN_STATUS_ALLOC_FAILED`)."""
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text.lower()
                                                or any(marker in text for marker in ALLOCATION_FAILURES))


def free_memory(device: str) -> None:
    """Return cached blocks to the driver (after a job, or before retrying on a cheaper plan)."""
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device == "mps":
        torch.mps.empty_cache()


def allocated_bytes(device: str) -> int | None:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.memory_allocated(device)
    return None


def peak_memory_bytes(device: str) -> int | None:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    return None


def reset_peak_memory(device: str) -> None:
    """Start counting the peak afresh; before CUDA is initialised there is nothing to reset (and resetting
    would initialise it, or raise on a machine without the device asked for)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats(device)


def gigabytes(count: int) -> str:
    return f"{count / GiB:.1f} GB"


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

    def length_text(self, frames: int) -> str:
        """'25 frames (3.6 s)', or 'does not fit'."""
        return f"{frames} frames ({frames / self.fps:.1f} s)" if frames else "does not fit"

    def to_dict(self) -> dict:
        return {"model": self.model, "family": self.family, "width": self.width, "height": self.height,
                "fps": self.fps, "fastest_plan": self.fastest.label(), "fastest_frames": self.fastest_frames,
                "cheapest_plan": self.cheapest.label(), "cheapest_frames": self.cheapest_frames}


def length_rows(name: str, family: str, weights: ModelWeights, defaults: dict, *, device: str, dtype: str,
                budget_bytes: int, total_bytes: int | None, attention: str = "sdpa",
                resolutions=PRESET_RESOLUTIONS) -> list[LengthRow]:
    """For each resolution: the most frames one pass can make under the fastest plan and under the cheapest."""
    rows = []
    for width, height in resolutions:
        shape = JobShape(family, int(defaults.get("num_frames", 25)), width, height,
                         int(defaults.get("decode_chunk_size", 8)))
        plans = ladder(device, dtype, weights, shape, attention=attention, total_bytes=total_bytes)
        fastest, cheapest = plans[0], min(plans, key=lambda plan: plan.estimate_bytes)
        rows.append(LengthRow(
            model=name, family=family, width=width, height=height, fps=int(defaults.get("fps", 7)),
            fastest=fastest, fastest_frames=max_frames(weights, family, width, height, budget_bytes, fastest),
            cheapest=cheapest, cheapest_frames=max_frames(weights, family, width, height, budget_bytes, cheapest),
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
    return lines
