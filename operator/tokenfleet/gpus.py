"""GPU catalogue (memory, bandwidth, default price) and the pure check that a model fits its GPUs.

Figures come from ../shared/CALIBRATION.md (vendor datasheets via stas00/ml-engineering,
AWS on-demand prices retrieved 2026-11-09 and the skypilot catalogue); users override the
price per ModelTier with ``spec.gpu.hourlyCostUSD`` and the memory with ``spec.gpu.memoryGiB``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class GpuType:
    """One GPU model as the operator needs to know it."""

    name: str
    memory_gib: float
    hbm_tb_per_s: float
    hourly_usd: float
    compute_capability: float
    product_label: str  # value of the nvidia.com/gpu.product node label (GPU feature discovery)


GPU_TYPES: dict[str, GpuType] = {
    g.name: g
    for g in (
        GpuType("nvidia-h100", 80, 3.35, 6.88, 9.0, "NVIDIA-H100-80GB-HBM3"),
        GpuType("nvidia-a100-80gb", 80, 2.04, 3.43, 8.0, "NVIDIA-A100-SXM4-80GB"),
        GpuType("nvidia-a100-40gb", 40, 1.56, 2.75, 8.0, "NVIDIA-A100-SXM4-40GB"),
        GpuType("nvidia-l40s", 48, 0.864, 1.86, 8.9, "NVIDIA-L40S"),
        GpuType("nvidia-l4", 24, 0.30, 0.80, 8.9, "NVIDIA-L4"),
        GpuType("nvidia-a10g", 24, 0.60, 1.01, 8.6, "NVIDIA-A10G"),
        GpuType("nvidia-t4", 16, 0.32, 0.53, 7.5, "Tesla-T4"),
    )
}

# Bytes per parameter of the weights at each precision (4-bit formats carry ~6% of scales/zeros).
WEIGHT_BYTES = {"none": 2.0, "fp8": 1.0, "int8": 1.0, "awq": 0.53, "gptq": 0.53, "int4": 0.53}
KV_BYTES = {"auto": 2.0, "fp8": 1.0}

# CUDA context, activations and the sampler's buffers, per GPU (vLLM profiles this; ~1-2 GiB seen).
RUNTIME_OVERHEAD_GIB = 1.5


# (parameters in billions, KiB of 16-bit KV cache per token) of Llama 3 models with grouped-query
# attention: 2 x layers x kv_heads x head_dim x 2 bytes. 3.2-1B: 16 x 8 x 64; 3.1-8B: 32 x 8 x 128;
# 3.1-70B: 80 x 8 x 128.
_KV_SHAPES = ((1.0, 32.0), (8.0, 128.0), (70.0, 320.0))


def kv_bytes_per_token(parameters_b: float, kv_cache: str = "auto") -> float:
    """Estimated KV-cache bytes per token for a dense decoder of this size.

    Interpolated in log-log space between the Llama 3 shapes above (extrapolated beyond them
    along the nearest segment), then scaled by the KV dtype's bytes per value.
    """
    x = math.log(max(parameters_b, 0.05))
    points = [(math.log(p), math.log(k)) for p, k in _KV_SHAPES]
    (x0, y0), (x1, y1) = points[0], points[1]
    for left, right in zip(points, points[1:]):
        (x0, y0), (x1, y1) = left, right
        if x <= right[0]:
            break
    kib_16bit = math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return kib_16bit * 1024 * KV_BYTES[kv_cache] / 2.0


@dataclass(frozen=True)
class MemoryFit:
    """Outcome of the GPU memory estimate for one replica."""

    fits: bool
    weights_gib: float
    kv_gib: float  # KV cache needed for one sequence of maxModelLen tokens
    overhead_gib: float
    required_gib: float
    usable_gib: float  # count x memory x gpuMemoryUtilization
    max_concurrent_full_sequences: float  # how many maxModelLen sequences the leftover KV space holds

    def message(self, gpu_type: str, count: int) -> str:
        verdict = "fits" if self.fits else "does not fit"
        return (
            f"model {verdict} on {count} x {gpu_type}: needs {self.required_gib:.1f} GiB "
            f"(weights {self.weights_gib:.1f} + KV for one max-length sequence {self.kv_gib:.1f} "
            f"+ runtime {self.overhead_gib:.1f}), usable {self.usable_gib:.1f} GiB"
        )


def estimate_memory_fit(
    *,
    parameters_b: float,
    weights: str,
    kv_cache: str,
    max_model_len: int,
    gpu_memory_gib: float,
    gpu_count: int,
    gpu_memory_utilization: float,
) -> MemoryFit:
    """Whether the weights plus the KV cache of one full-length sequence fit the usable GPU memory."""
    weights_gib = parameters_b * 1e9 * WEIGHT_BYTES[weights] / GIB
    kv_per_seq_gib = kv_bytes_per_token(parameters_b, kv_cache) * max_model_len / GIB
    overhead_gib = RUNTIME_OVERHEAD_GIB * gpu_count
    usable_gib = gpu_memory_gib * gpu_count * gpu_memory_utilization
    required = weights_gib + kv_per_seq_gib + overhead_gib
    leftover = usable_gib - weights_gib - overhead_gib
    return MemoryFit(
        fits=required <= usable_gib,
        weights_gib=weights_gib,
        kv_gib=kv_per_seq_gib,
        overhead_gib=overhead_gib,
        required_gib=required,
        usable_gib=usable_gib,
        max_concurrent_full_sequences=max(leftover, 0.0) / kv_per_seq_gib if kv_per_seq_gib else 0.0,
    )
