"""Settings of the engine emulator, read once: from the command line or from a ModelTierSpec."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tokenfleet.engine.text import capability_for_size
from tokenfleet.perf import EngineProfile, build_profile, default_batch_limits

EMULATED_VLLM_VERSION = "0.30.0"  # the vLLM release whose API and metric names the emulator follows


@dataclass(frozen=True)
class EngineSettings:
    """Everything the emulator needs to run; see ``tokenfleet emulate-engine --help``."""

    models: tuple[str, ...] = ("llama-8b",)
    host: str = "127.0.0.1"
    port: int = 8000
    source: str | None = None  # the model's weights as vLLM would name them (the 'root' in /v1/models)
    parameters_b: float = 8.0
    weights: str = "none"
    kv_cache: str = "auto"
    gpu_type: str = "nvidia-l4"
    gpu_count: int = 1
    gpu_memory_gib: float | None = None
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    max_model_len: int = 8192
    kv_capacity_tokens: float | None = None  # override the KV cache size computed from GPU memory
    prefix_caching: bool = True  # vLLM's automatic prefix caching, on by default
    capability: float | None = None
    time_scale: float = 1.0
    instant: bool = False
    startup_delay: float = 0.0
    fail_rate: float = 0.0
    fail_seed: int = 0
    legacy_metric_names: bool = False
    log_level: str = "warning"

    @property
    def served_name(self) -> str:
        """The first served name: the ``model_name`` label of the metrics (as in vLLM)."""
        return self.models[0]

    def batch_limits(self) -> tuple[int, int]:
        """(max_num_seqs, max_num_batched_tokens), vLLM's defaults filling what is unset."""
        seqs, tokens = default_batch_limits(self.gpu_type, self.gpu_memory_gib)
        return self.max_num_seqs or seqs, self.max_num_batched_tokens or tokens

    def resolved_capability(self) -> float:
        """Capability in [0, 1]: the setting, else derived from the parameter count."""
        if self.capability is not None:
            return self.capability
        return capability_for_size(self.parameters_b)

    def profile(self) -> EngineProfile:
        """The performance model of this replica."""
        profile = build_profile(
            parameters_b=self.parameters_b, weights=self.weights, kv_cache=self.kv_cache,
            gpu_type=self.gpu_type, gpu_count=self.gpu_count, memory_gib=self.gpu_memory_gib,
            max_num_seqs=self.batch_limits()[0], gpu_memory_utilization=self.gpu_memory_utilization,
        )
        if self.kv_capacity_tokens is not None:
            profile = replace(profile, kv_capacity_tokens=float(self.kv_capacity_tokens))
        return profile

    def validate(self) -> list[str]:
        """Problems that make these settings unusable (empty when fine)."""
        problems = []
        if not self.models:
            problems.append("at least one --model is needed")
        if self.time_scale <= 0:
            problems.append("--time-scale must be > 0")
        if not 0.0 <= self.fail_rate <= 1.0:
            problems.append("--fail-rate must be within [0, 1]")
        if self.capability is not None and not 0.0 <= self.capability <= 1.0:
            problems.append("--capability must be within [0, 1]")
        if self.parameters_b <= 0:
            problems.append("--parameters-b must be > 0")
        if not self.instant and self.profile().kv_capacity_tokens < self.max_model_len:
            problems.append(
                f"the KV cache ({self.profile().kv_capacity_tokens:.0f} tokens) cannot hold one sequence of "
                f"--max-model-len {self.max_model_len}: the model does not fit this GPU (vLLM refuses to start)"
            )
        return problems


def settings_for_tier(name: str, spec, **overrides) -> EngineSettings:
    """Emulator settings for one replica of a ModelTier (``spec``: tokenfleet.api.v1alpha1.ModelTierSpec)."""
    values = dict(
        models=(spec.model.served_name or name,),
        source=spec.model.hf_id,
        parameters_b=spec.model.parameters_b,
        max_model_len=spec.model.max_model_len,
        weights=spec.quantization.weights,
        kv_cache=spec.quantization.kv_cache,
        gpu_type=spec.gpu.type,
        gpu_count=spec.gpu.count,
        gpu_memory_gib=spec.gpu.memory_gib,
        gpu_memory_utilization=spec.engine.gpu_memory_utilization,
        max_num_seqs=spec.engine.max_num_seqs,
        max_num_batched_tokens=spec.engine.max_num_batched_tokens,
        prefix_caching=spec.engine.prefix_caching,
        port=spec.engine.port,
    )
    values.update(overrides)
    return EngineSettings(**values)


def settings_args(settings: EngineSettings) -> list[str]:
    """The ``tokenfleet emulate-engine`` arguments that reproduce ``settings``."""
    args: list[str] = []
    for name in settings.models:
        args += ["--model", name]
    pairs = [
        ("--host", settings.host), ("--port", settings.port), ("--source", settings.source),
        ("--parameters-b", settings.parameters_b), ("--weights", settings.weights),
        ("--kv-cache", settings.kv_cache), ("--gpu-type", settings.gpu_type), ("--gpu-count", settings.gpu_count),
        ("--gpu-memory-gib", settings.gpu_memory_gib), ("--gpu-memory-utilization", settings.gpu_memory_utilization),
        ("--max-num-seqs", settings.max_num_seqs), ("--max-num-batched-tokens", settings.max_num_batched_tokens),
        ("--max-model-len", settings.max_model_len), ("--kv-capacity-tokens", settings.kv_capacity_tokens),
        ("--capability", settings.capability), ("--time-scale", settings.time_scale),
        ("--startup-delay", settings.startup_delay), ("--fail-rate", settings.fail_rate),
        ("--fail-seed", settings.fail_seed), ("--log-level", settings.log_level),
    ]
    for flag, value in pairs:
        if value is not None:
            args += [flag, str(value)]
    if settings.instant:
        args.append("--instant")
    if settings.legacy_metric_names:
        args.append("--legacy-metric-names")
    if not settings.prefix_caching:
        args.append("--no-enable-prefix-caching")
    return args


def tier_args(name: str, spec, **overrides) -> list[str]:
    """``tokenfleet emulate-engine`` arguments for one replica of a ModelTier (what the demo runs)."""
    return settings_args(settings_for_tier(name, spec, **overrides))
