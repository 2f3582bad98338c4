"""What the engine says beside its jobs: the device now (`device_report`), a job's memory ladder and the plan it
would run with, and the table of the longest videos each installed model makes in one pass (`video-gen info`, the
About tab). Reads safetensors headers (no weights) once per model."""

from __future__ import annotations

from collections.abc import Callable

from . import devices, memory
from . import loras as lora_support
from .catalog import Catalog
from .checkpoints import HOW_TO_GET, ModelInfo
from .errors import InvalidRequest, ModelNotFound, VideoGenError, first_line
from .families import load_family, specs
from .memory import MemoryPlan
from .results import PreparedJob, model_defaults


class Reports:
    """The reports of one engine: `device()` gives its device (probed on first use), `vram_gb` the memory to plan
    for instead of what is free (None: what is free)."""

    def __init__(self, device: Callable[[], str], catalog: Catalog, vram_gb: float | None):
        self._device = device
        self.catalog = catalog
        self.vram_gb = vram_gb
        self._weights: dict[ModelInfo, memory.ModelWeights] = {}

    def device_report(self) -> memory.DeviceReport:
        """What the device has now (initialises CUDA on first use)."""
        return memory.probe(self._device())

    def memory_ladder(self, job: PreparedJob, report: memory.DeviceReport | None = None) -> list[MemoryPlan]:
        """A job's memory plans on this device, fastest first."""
        device, request, report = self._device(), job.request, report or self.device_report()
        shape = memory.JobShape(job.spec.name, job.length.generated_frames[0], request.width, request.height,
                                request.decode_chunk_size)
        weights = self.model_weights(job.model)
        if job.loras:  # their adapters sit beside the denoiser's weights for the whole job
            weights = weights.plus(weights.denoiser, lora_support.lora_numel(job.loras))
        try:
            return memory.ladder(device, devices.dtype_name(device, job.spec.dtype), weights, shape,
                                 choice=request.memory_plan, attention=memory.default_attention(report),
                                 total_bytes=report.capacity(self.vram_gb))
        except ValueError as error:
            raise InvalidRequest("memory_plan", str(error)) from None

    def memory_plan(self, job: PreparedJob, report: memory.DeviceReport | None = None
                    ) -> tuple[list[MemoryPlan], MemoryPlan]:
        """(the ladder, the plan the job runs with now: the fastest that fits what is free)."""
        report = report or self.device_report()
        ladder = self.memory_ladder(job, report)
        return ladder, memory.choose(ladder, report.budget(self.vram_gb))

    def length_table(self, vram_gb: float | None = None) -> list[memory.LengthRow]:
        """For each installed model and preset size, the most frames that fit (the families' best-known models'
        when none is installed)."""
        report = self.device_report()
        vram_gb = vram_gb or self.vram_gb
        # --vram plans for another card: a CUDA one, with every offload level, whatever this machine has
        device = self._device()
        device = "cuda:0" if vram_gb and not device.startswith(("cuda", "mps")) else device
        models = []
        for model in self.catalog.models():
            try:
                family = load_family(model.family)
                models.append((model.name, family.SPEC, self.model_weights(model), model_defaults(family, model)))
            except (OSError, ValueError, KeyError, VideoGenError):
                continue  # an unreadable model is reported when it is used, not here
        if not models:  # the families' best-known models, as they would be once downloaded
            models += [(f"{spec.reference_model.name} (not installed)", spec,
                        memory.ModelWeights(spec.reference_model.numel, spec.reference_model.largest_block,
                                            spec.reference_model.largest_tensor), spec.reference_model.defaults)
                       for spec in specs() if spec.reference_model is not None]
        rows = []
        for name, spec, weights, defaults in models:
            rows += memory.length_rows(name, spec.name, weights, defaults, device=device,
                                       dtype=devices.dtype_name(device, spec.dtype), budget_bytes=report.budget(vram_gb),
                                       total_bytes=report.capacity(vram_gb), attention=memory.default_attention(report))
        return rows

    def model_weights(self, model: ModelInfo) -> memory.ModelWeights:
        """A model's parameter counts from its safetensors headers, read once per model."""
        weights = self._weights.get(model)
        if weights is None:
            try:
                weights = self._weights[model] = memory.ModelWeights.from_model(model)
            except (ValueError, KeyError, OSError) as error:
                raise ModelNotFound(f"{model.path} could not be loaded ({first_line(error)}); download it again "
                                    f"({HOW_TO_GET})") from None
        return weights
