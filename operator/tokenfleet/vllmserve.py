"""Pure: what ``vllm serve`` gets for a ModelTier: its arguments, replicas at creation, GPUs and node placement."""

from __future__ import annotations

from tokenfleet.api.v1alpha1 import ModelTierSpec
from tokenfleet.gpus import GPU_TYPES


def quantization_flag(weights: str, gpu_type: str) -> str | None:
    """vLLM --quantization value for a weight precision on a GPU type (None: no flag).

    awq and gptq use vLLM's Marlin kernels on GPUs of compute capability 8.0 and above
    (the fast path vLLM itself recommends) and the plain kernels elsewhere; int8 means
    W8A8 checkpoints in the compressed-tensors format; int4 quantizes 16-bit weights at
    load time with bitsandbytes.
    """
    gpu = GPU_TYPES.get(gpu_type)
    marlin = gpu is not None and gpu.compute_capability >= 8.0
    return {
        "none": None,
        "fp8": "fp8",
        "int8": "compressed-tensors",
        "awq": "awq_marlin" if marlin else "awq",
        "gptq": "gptq_marlin" if marlin else "gptq",
        "int4": "bitsandbytes",
    }[weights]


def vllm_args(name: str, spec: ModelTierSpec) -> list[str]:
    """Arguments after ``vllm serve``: the model, then flags derived from the spec, then extraArgs."""
    args = [
        spec.model.hf_id,
        "--served-model-name", spec.model.served_name or name,
        "--port", str(spec.engine.port),
        "--tensor-parallel-size", str(spec.gpu.count),
        "--max-model-len", str(spec.model.max_model_len),
        "--gpu-memory-utilization", str(spec.engine.gpu_memory_utilization),
    ]
    quant = quantization_flag(spec.quantization.weights, spec.gpu.type)
    if quant:
        args += ["--quantization", quant]
    if spec.quantization.kv_cache != "auto":
        args += ["--kv-cache-dtype", spec.quantization.kv_cache]
    if spec.engine.max_num_seqs is not None:
        args += ["--max-num-seqs", str(spec.engine.max_num_seqs)]
    if spec.engine.max_num_batched_tokens is not None:
        args += ["--max-num-batched-tokens", str(spec.engine.max_num_batched_tokens)]
    if not spec.engine.prefix_caching:
        args.append("--no-enable-prefix-caching")
    return args + list(spec.engine.extra_args)


def gpu_node_selector(spec: ModelTierSpec) -> dict[str, str]:
    """Node labels for the tier's GPU: the user's, or GPU feature discovery's product label."""
    if spec.gpu.node_selector:
        return dict(spec.gpu.node_selector)
    gpu = GPU_TYPES.get(spec.gpu.type)
    return {"nvidia.com/gpu.product": gpu.product_label} if gpu else {}


def initial_replicas(spec: ModelTierSpec) -> int:
    """Replicas at creation: the pin, or at least one (so a new tier proves it starts) within bounds."""
    if spec.replicas is not None:
        return spec.replicas
    return min(max(spec.scaling.min_replicas, 1), spec.scaling.max_replicas)


def engine_resources(spec: ModelTierSpec) -> dict:
    """The vLLM container's resources: the user's CPU/memory plus the GPUs of spec.gpu.count."""
    gpus = {"nvidia.com/gpu": str(spec.gpu.count)}
    user = spec.engine.resources
    return {
        "requests": {**(user.requests if user else {}), **gpus},
        "limits": {**(user.limits if user else {}), **gpus},
    }
