"""What the device has and what it holds: `probe` → `DeviceReport`, the out-of-memory test, freeing memory and
reading peaks. Imports no torch until a function runs."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

GiB = 2**30
# The share of free memory kept back for fragmentation. Until the GPU run calibrates it this is conservative:
# the planner would rather pick a slower plan than crash (and a crash only steps down).
HEADROOM = 0.10


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
