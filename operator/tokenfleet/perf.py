"""Engine performance model: step time, throughput and price per token of one vLLM replica.

One model, used everywhere a throughput or a price is needed: the engine emulator's
continuous-batching simulation, the autoscaler benchmark, ``tokenfleet plan`` and the prices
the operator writes into the router config.

A decode step of vLLM's continuous batching costs (see ../shared/CALIBRATION.md)::

    step_ms = a + sum over running sequences of (b + context_tokens * kv_ms_per_token)
              + prefill_tokens_in_step * prefill_ms_per_token

- ``a``: 1.5 ms of fixed per-step work plus streaming the weights from HBM once per step at
  90% of the datasheet bandwidth, times the precision's kernel efficiency. H100 SXM, 8B:
  BF16 1.5 + 16 GB / 3.35 TB/s / 0.9 = 6.8 ms (published ITL 6.83), FP8 1.5 + 8 GB / 3.35 /
  0.9 / 0.92 = 4.4 ms (4.62); L4 7B FP16 53 ms (58.3); A100 40GB AWQ 5.5 ms (5.65).
- ``kv_ms_per_token``: reading one context token's KV cache = KV bytes / (bandwidth x 0.9);
  128 KiB / 3.35 TB/s / 0.9 = 4.35e-5 ms (vLLM blog: ITL = 6.44 ms + 4.37e-5 ms x context).
- ``b``: per-sequence work besides KV reads (sampling, scheduling), 0.045 ms x TB/s / bandwidth
  at 8B, scaled by sqrt(size / 8B) and by the precision (QUANT_SEQ_FACTOR).
- ``prefill_ms_per_token``: 2 x parameters FLOPs at 65% of peak dense BF16 tensor throughput.
- tensor parallelism multiplies every term by 1.5 (all-reduces), fitted on the one published
  row: Llama-3-70B TP4 on H100, 8 x 32/128 tokens in 2,445 ms (model 2,460).

Checked against the published figures by tests/unit/test_perf.py (steady-state output tok/s,
model vs published): H100 8B BF16 128/128 gives 146 at concurrency 1 (145), 6.5k at 64 (6,958),
13.7k at 256 (13,093); FP8 226 (213) and 15.5k (15,704); L4 7B FP16 ~200/128 19 (17) and 730
at 64 (832). Every throughput row of CALIBRATION.md is within 15% except AWQ-Marlin at
concurrency 64: -16% on A100, +16% on L4 (no linear step model fits both GPUs' AWQ rows).
Decode steps (ITL) match within 4% up to 256 running sequences on H100 BF16 and 7% on FP8; at
512 the model is 17-19% short, as decode turns compute-bound there and the model has no such term.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenfleet.gpus import GPU_TYPES, WEIGHT_BYTES, kv_bytes_per_token

HBM_EFFICIENCY = 0.9  # with STEP_OVERHEAD_MS, fits H100 BF16 (6.8 ms) and FP8 (4.6 ms) steps at once
STEP_OVERHEAD_MS = 1.5  # kernel launches, scheduling and sampling per step, independent of model size
PREFILL_MFU = 0.65
PER_SEQ_MS_TBPS = 0.045  # b x bandwidth for an 8B model, fitted to H100/A100/L4 rows of CALIBRATION.md

# Peak dense 16-bit tensor TFLOPs (vendor datasheets): H100 SXM 989, A100 312, L40S 362,
# L4 121, A10G 70 (AWS g5 documentation), T4 65.
PEAK_TFLOPS = {
    "nvidia-h100": 989.0,
    "nvidia-a100-80gb": 312.0,
    "nvidia-a100-40gb": 312.0,
    "nvidia-l40s": 362.0,
    "nvidia-l4": 121.0,
    "nvidia-a10g": 70.0,
    "nvidia-t4": 65.0,
}
DEFAULT_BANDWIDTH_TBPS = 1.0
DEFAULT_TFLOPS = 150.0
# Weight streaming speed of each precision's kernels relative to 16-bit ones, at small batch.
# Fitted on CALIBRATION.md: FP8 on H100 (4.62 ms ITL at concurrency 1, not the 2.4 ms that half
# the bytes would give at full speed); AWQ-Marlin on A100 (177 tok/s) and L4 (43 tok/s) at
# concurrency 1, where both read 4-bit weights at ~2/3 of the speed of 16-bit ones.
QUANT_STREAM_EFFICIENCY = {"none": 1.0, "fp8": 0.92, "int8": 0.92, "awq": 0.66, "gptq": 0.66, "int4": 0.66}
# Per-sequence work of each precision relative to 16-bit, fitted on the same rows at concurrency
# 16 to 512 (int8 assumed like fp8; gptq and int4 like awq: no published rows).
QUANT_SEQ_FACTOR = {"none": 1.0, "fp8": 1.05, "int8": 1.05, "awq": 1.0, "gptq": 1.0, "int4": 1.0}
TENSOR_PARALLEL_OVERHEAD = 1.5  # all-reduces when weights are split across GPUs; fitted on 70B TP4 H100
DEFAULT_MAX_NUM_SEQS = 256  # vLLM's default on GPUs under 70 GiB and on A100 (see default_batch_limits)
LARGE_GPU_GIB = 70.0
STARTUP_SECONDS = 90.0  # pod start + weight load of a warm-cache 8B model; a default, not a measurement


def default_batch_limits(gpu_type: str, memory_gib: float | None = None) -> tuple[int, int]:
    """vLLM's defaults for (max_num_seqs, max_num_batched_tokens) of its OpenAI server on this GPU.

    vLLM's EngineArgs.get_batch_defaults: 1024 sequences and 8192 tokens per step on GPUs with at
    least 70 GiB other than A100 (H100, H200), else 256 and 2048.
    """
    gpu = GPU_TYPES.get(gpu_type)
    mem = memory_gib or (gpu.memory_gib if gpu else 24.0)
    if mem >= LARGE_GPU_GIB and "a100" not in gpu_type:
        return 1024, 8192
    return DEFAULT_MAX_NUM_SEQS, 2048


@dataclass(frozen=True)
class EngineProfile:
    """The step-time parameters of one replica (all milliseconds)."""

    a_ms: float
    b_ms: float
    kv_ms_per_token: float
    prefill_ms_per_token: float
    max_num_seqs: int
    kv_capacity_tokens: float  # KV cache tokens that fit beside the weights
    hourly_usd: float  # price of the whole replica (all its GPUs)

    def step_ms(self, running: int, context_tokens: float, prefill_tokens: float = 0.0) -> float:
        """Duration of one scheduler step with ``running`` sequences holding ``context_tokens`` in total."""
        if running <= 0 and prefill_tokens <= 0:
            return 0.0
        return (
            self.a_ms
            + self.b_ms * running
            + self.kv_ms_per_token * context_tokens
            + self.prefill_ms_per_token * prefill_tokens
        )

    def steady_output_tps(self, concurrency: int, prompt_tokens: float, output_tokens: float) -> float:
        """Generated tokens/s at a steady ``concurrency`` of requests of the given mean sizes.

        Each step decodes one token per running sequence and, on average, prefills the prompts of
        the ``concurrency / output_tokens`` requests that replace those finishing in that step.
        """
        n = max(1, min(concurrency, self.max_num_seqs))
        mean_context = prompt_tokens + output_tokens / 2.0
        prefill_per_step = n / max(output_tokens, 1.0) * prompt_tokens
        step = self.step_ms(n, n * mean_context, prefill_per_step)
        return n / step * 1000.0

    def saturation_output_tps(self, prompt_tokens: float, output_tokens: float) -> float:
        """Generated tokens/s with the batch as full as max-num-seqs and the KV cache allow."""
        mean_context = prompt_tokens + output_tokens / 2.0
        kv_limit = int(self.kv_capacity_tokens // max(mean_context, 1.0))
        return self.steady_output_tps(max(1, min(self.max_num_seqs, kv_limit)), prompt_tokens, output_tokens)


def build_profile(
    *,
    parameters_b: float,
    weights: str = "none",
    kv_cache: str = "auto",
    gpu_type: str = "nvidia-l4",
    gpu_count: int = 1,
    hourly_usd_per_gpu: float | None = None,
    memory_gib: float | None = None,
    max_num_seqs: int | None = None,
    gpu_memory_utilization: float = 0.9,
) -> EngineProfile:
    """The step-time parameters of one replica of the given shape."""
    gpu = GPU_TYPES.get(gpu_type)
    bandwidth = (gpu.hbm_tb_per_s if gpu else DEFAULT_BANDWIDTH_TBPS) * 1e12 * HBM_EFFICIENCY
    tflops = PEAK_TFLOPS.get(gpu_type, DEFAULT_TFLOPS) * 1e12 * PREFILL_MFU
    mem_gib = memory_gib or (gpu.memory_gib if gpu else 24.0)
    hourly = hourly_usd_per_gpu if hourly_usd_per_gpu is not None else (gpu.hourly_usd if gpu else 0.0)
    tp = TENSOR_PARALLEL_OVERHEAD if gpu_count > 1 else 1.0
    weight_bytes = parameters_b * 1e9 * WEIGHT_BYTES[weights]
    kv_bytes = kv_bytes_per_token(parameters_b, kv_cache)
    a_ms = STEP_OVERHEAD_MS + weight_bytes / (bandwidth * QUANT_STREAM_EFFICIENCY[weights] * gpu_count) * 1000.0 * tp
    b_ms = (
        PER_SEQ_MS_TBPS * 1e12 / (bandwidth / HBM_EFFICIENCY) * (parameters_b / 8.0) ** 0.5
        * QUANT_SEQ_FACTOR[weights] / gpu_count * tp
    )
    kv_ms = kv_bytes / (bandwidth * gpu_count) * 1000.0
    prefill_ms = 2.0 * parameters_b * 1e9 / (tflops * gpu_count) * 1000.0 * tp
    free_bytes = mem_gib * (1024**3) * gpu_count * gpu_memory_utilization - weight_bytes - 1.5 * (1024**3) * gpu_count
    return EngineProfile(
        a_ms=a_ms,
        b_ms=b_ms,
        kv_ms_per_token=kv_ms,
        prefill_ms_per_token=prefill_ms,
        max_num_seqs=max_num_seqs or default_batch_limits(gpu_type, mem_gib)[0],
        kv_capacity_tokens=max(free_bytes, 0.0) / kv_bytes,
        hourly_usd=hourly * gpu_count,
    )


def profile_for_tier(spec) -> EngineProfile:
    """The profile of a ModelTierSpec (tokenfleet.api.v1alpha1)."""
    return build_profile(
        parameters_b=spec.model.parameters_b,
        weights=spec.quantization.weights,
        kv_cache=spec.quantization.kv_cache,
        gpu_type=spec.gpu.type,
        gpu_count=spec.gpu.count,
        hourly_usd_per_gpu=spec.gpu.hourly_cost_usd,
        memory_gib=spec.gpu.memory_gib,
        max_num_seqs=spec.engine.max_num_seqs,
        gpu_memory_utilization=spec.engine.gpu_memory_utilization,
    )


def cost_per_million_tokens(replicas: float, hourly_usd_per_replica: float, tokens_per_second: float) -> float | None:
    """USD per 1M tokens: replicas x replica price / (tokens/s x 3600) x 1e6; None with no tokens."""
    if tokens_per_second <= 0:
        return None
    return replicas * hourly_usd_per_replica / (tokens_per_second * 3600.0) * 1e6


# Prompt and output lengths of the reference workload used to price a tier: the means of the
# Azure LLM inference trace 2023 (conversation), ../shared/data/traces/azure_llm_2023_conv.csv.
REFERENCE_PROMPT_TOKENS = 1155.0
REFERENCE_OUTPUT_TOKENS = 211.0


def token_prices(profile: EngineProfile, prompt_tokens: float = REFERENCE_PROMPT_TOKENS,
                 output_tokens: float = REFERENCE_OUTPUT_TOKENS) -> tuple[float, float]:
    """USD per 1M prompt tokens and per 1M output tokens at saturation.

    The replica's cost per second is split between prefill and decode in proportion to the
    step time each takes at saturation; each share is divided by the tokens it produced.
    """
    mean_context = prompt_tokens + output_tokens / 2.0
    n = max(1, min(profile.max_num_seqs, int(profile.kv_capacity_tokens // max(mean_context, 1.0))))
    prefill_per_step = n / max(output_tokens, 1.0) * prompt_tokens
    step = profile.step_ms(n, n * mean_context, prefill_per_step)
    prefill_share = profile.prefill_ms_per_token * prefill_per_step / step
    usd_per_ms = profile.hourly_usd / 3_600_000.0
    usd_per_step = usd_per_ms * step
    in_price = usd_per_step * prefill_share / max(prefill_per_step, 1e-9) * 1e6
    out_price = usd_per_step * (1 - prefill_share) / n * 1e6
    return in_price, out_price
