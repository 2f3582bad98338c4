"""What a job needs: a model's parameter counts from its safetensors headers (`ModelWeights`), the job's shape,
the `MemoryPlan` (a point on the ladder) and each stage's estimated peak bytes under it. Imports no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..checkpoints import component_files, weight_header
from .device import GiB

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
# What the CUDA context's kernels, cuBLAS/cuDNN workspaces and allocator rounding take beyond tensors. Until
# the GPU run calibrates it this is conservative: the planner would rather pick a slower plan than crash (and a
# crash only steps down).
RUNTIME_OVERHEAD_BYTES = 768 * 2**20

# The component that denoises, per family (its weights stay resident for the whole denoising loop).
DENOISERS = ("unet", "transformer")


def parse_plan_choice(choice: str) -> tuple[str, bool]:
    """'model+fp8' -> ('model', True). Raises ValueError naming what is allowed."""
    base, _, suffix = choice.partition("+")
    if base not in MEMORY_PLANS or suffix not in ("", "fp8"):
        allowed = ", ".join(MEMORY_PLANS)
        raise ValueError(f"must be one of {allowed}, optionally with {FP8_SUFFIX} (e.g. model{FP8_SUFFIX}); got {choice!r}")
    return base, suffix == "fp8"


# ---- what a job needs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelWeights:
    """Parameter counts of a model's components, read from safetensors headers (no weights loaded)."""

    numel: dict[str, int]  # component -> parameters
    largest_block: dict[str, int]  # component -> parameters of its largest top-level block (group offload)
    largest_tensor: int  # parameters of the largest single tensor (sequential offload)
    # Activation bytes per latent token (16-bit) that this model's denoiser holds for a whole call beyond its
    # family's constants, from its family's `denoise_extra_bytes_per_token(model)` (Wan VACE's hints); 0 for most
    denoise_extra_bytes_per_token: int = 0

    def bytes(self, component: str, itemsize: int) -> int:
        return self.numel.get(component, 0) * itemsize

    def plus(self, component: str, count: int) -> ModelWeights:
        """These weights with `count` more parameters in `component` (LoRA adapters loaded beside it)."""
        return replace(self, numel={**self.numel, component: self.numel.get(component, 0) + count})

    @property
    def denoiser(self) -> str:
        return next((name for name in DENOISERS if name in self.numel), max(self.numel, key=self.numel.get))

    @classmethod
    def from_model(cls, model) -> ModelWeights:
        """From a ModelInfo: a diffusers folder (one subfolder per component) or a single file, plus an
        AnimateDiff model's motion adapter (its modules join the UNet)."""
        from ..families import load_family

        family = load_family(model.family) if getattr(model, "family", "") else None
        extra = getattr(family, "denoise_extra_bytes_per_token", None)
        weights = cls._from_model_files(model, family)
        return replace(weights, denoise_extra_bytes_per_token=extra(model)) if extra is not None else weights

    @classmethod
    def _from_model_files(cls, model, family) -> ModelWeights:
        read_headers = getattr(family, "component_headers", None)  # a family whose files need reading its way
        headers = read_headers(model) if read_headers is not None else None  # None: the way below
        if headers is not None:
            return cls.from_headers(headers)
        component, config_dir = getattr(model, "component", ""), getattr(model, "config_dir", None)
        if component and config_dir is not None:  # one part in a file (a GGUF transformer), the rest in a folder
            files = component_files(Path(config_dir))
            files[component] = [Path(model.path)]
            if getattr(model, "transformer_2", None) is not None:
                files["transformer_2"] = [Path(model.transformer_2)]
        else:
            files = component_files(Path(model.path))
        adapter = getattr(model, "motion_adapter", None)
        if adapter:
            files.setdefault("unet", []).extend(sum(component_files(Path(adapter)).values(), []))
        return cls.from_headers({component: [weight_header(file) for file in paths] for component, paths in files.items()})

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
        from ..families import spec_for

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
        """One line for people: '12 GB GPU: model offload, decode 4 frames at a time, ~10.6 GB'. A plan whose
        estimate is more than the device has says so instead of promising it ('needs ~26.4 GB, more than the
        24 GB RAM'): on a CPU nothing cheaper exists, so the job swaps or fails."""
        kind = self.device.split(":")[0]
        where = {"cuda": "GPU", "mps": "Apple GPU", "cpu": "RAM"}.get(kind, kind)
        if self.total_bytes and self.estimate_bytes > self.total_bytes:
            text = (f"{self.summary()}, needs ~{self.estimate_bytes / GiB:.1f} GB, more than the "
                    f"{self.total_bytes / GiB:.0f} GB {where}: lower the resolution or the number of frames")
        else:
            text = f"{self.summary()}, ~{self.estimate_bytes / GiB:.1f} GB"
        if not with_device:
            return text
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
    # image/text encoders (Wan 2.2's second expert, `transformer_2`, is a denoiser: it runs after the first)
    encoders = max((bytes_ for name, bytes_ in others.items() if name not in ("vae", "transformer_2")), default=0)

    constants = shape.constants
    unet_activations = constants.denoise_base_bytes + constants.denoise_bytes_per_token * shape.latent_tokens * size // 2
    if plan.forward_chunking:
        unet_activations = int(unet_activations * (1 - constants.forward_chunking_saving))
    # held for the whole call, whatever the feed-forward does (Wan VACE's hints: calculated, not measured)
    unet_activations += weights.denoise_extra_bytes_per_token * shape.latent_tokens * size // 2
    pixels = shape.width * shape.height
    # What the pipeline keeps on the device for the whole job and that grows with the length (FramePack's history
    # latents; its decoded frames leave the device as they are made)
    kept = int(constants.kept_bytes_per_frame_pixel * shape.frames * pixels)
    decode_activations = (constants.decode_bytes_per_pixel * min(plan.decode_chunk_size, shape.frames) * pixels
                          * size // 2)
    encode_activations = constants.encode_base_bytes + constants.encode_bytes_per_pixel * pixels * size // 2

    if plan.offload == "none":  # everything resident all the time, but what the family keeps apart
        apart = shape.constants.apart
        resident = denoiser_weights + sum(bytes_ for name, bytes_ in others.items() if name not in apart)
        weights_at = dict.fromkeys(STAGES, resident)
        if apart:  # encoding: the encoders kept apart come in, the denoiser goes out (memory.encode_apart)
            weights_at["encoding_image"] = max(resident, sum(others.values()))
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
    activations = {"loading_model": 0, "encoding_image": encode_activations, "denoising": unet_activations + kept,
                   "decoding": decode_activations + kept}
    overhead = RUNTIME_OVERHEAD_BYTES if plan.device != "cpu" else 0
    return {stage: int(weights_at[stage] + activations[stage] + overhead) for stage in STAGES}


def estimate(plan: MemoryPlan, weights: ModelWeights, shape: JobShape) -> int:
    """Peak device bytes of a job under `plan`."""
    return max(estimate_stages(plan, weights, shape).values())
